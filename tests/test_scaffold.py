"""`panoply-async init`: names that would shadow a module are refused, and the
project installs and passes its test in a fresh venv, following its own README."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from cli_child import SCRIPT

ROOT = Path(__file__).resolve().parents[1]


def init(name: str, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCRIPT, "init", name, "--directory", str(directory)],
                          capture_output=True, text=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(("name", "words"), [
    ("json", "standard-library module"),
    ("asyncio", "standard-library module"),
    ("click", "installed module"),
    ("panoply_async", "installed module"),
])
def test_issue14_item15_init_refuses_names_that_shadow_a_module(
    tmp_path: Path, name: str, words: str
) -> None:
    done = init(name, tmp_path)
    assert done.returncode == 2
    assert words in done.stderr
    assert "choose another name" in done.stderr
    assert not (tmp_path / name).exists()


def _dependencies_without_panoply(into: Path) -> Path:
    """A directory holding this venv's installed distributions except panoply-async."""
    into.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if entry.name.startswith(("panoply_async", "_editable_impl_panoply", "__editable__")):
            continue
        if entry.suffix == ".pth" or entry.name == "__pycache__":
            continue
        (into / entry.name).symlink_to(entry)
    return into


def test_issue14_item14_init_project_installs_and_passes_in_a_fresh_venv(
    tmp_path: Path,
) -> None:
    assert init("fresh_source", tmp_path).returncode == 0
    project = tmp_path / "fresh_source"
    readme = (project / "README.md").read_text(encoding="utf-8")
    installs = [line.split("#")[0].strip() for line in readme.splitlines()
                if line.startswith("pip install")]
    # First panoply-async from this clone (it is not on the package index), then the project.
    assert installs == [f"pip install -e '{ROOT}[local]'", "pip install -e '.[dev]'"]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    # Third-party packages are shared (installing them again takes minutes); panoply-async
    # is not: the fresh venv must get it the way the README says.
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60).stdout.strip())
    (site / "shared.pth").write_text(str(_dependencies_without_panoply(tmp_path / "deps")))
    absent = subprocess.run([str(python), "-c", "import panoply_async"], capture_output=True,
                            timeout=60, check=False)
    assert absent.returncode != 0
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PIP_"))}
    for command in installs:
        args = shlex.split(command)[2:]
        done = subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", *args],
            cwd=project, capture_output=True, text=True, timeout=600, check=False, env=env)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    tests = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                           cwd=project, capture_output=True, text=True, timeout=300,
                           check=False, env=env)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "1 passed" in tests.stdout
    assert re.search(r"^panoply-async run fresh_source --local", readme, re.M)
