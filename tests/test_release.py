"""Release hygiene: one version, the tested Pythons named everywhere alike, license, changelog.

pyproject.toml is read as text: Python 3.10, which the matrix tests, has no tomllib.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import panoply_async
from panoply_async._engine.sdk import SDK_NAME

ROOT = Path(__file__).resolve().parents[1]


def read(name: str) -> str:
    return (ROOT / name).read_text("utf-8")


def supported() -> tuple[str, ...]:
    """``SUPPORTED`` from noxfile.py, read without importing nox."""
    for node in ast.parse(read("noxfile.py")).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "SUPPORTED" for t in targets):
                value = ast.literal_eval(node.value)  # type: ignore[arg-type]
                assert isinstance(value, tuple)
                return value
    raise AssertionError("noxfile.py defines no SUPPORTED")


def test_the_version_is_written_once() -> None:
    pyproject = read("pyproject.toml")
    assert 'dynamic = ["version"]' in pyproject
    assert 'path = "src/panoply_async/_version.py"' in pyproject
    version = panoply_async.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert f"panoply-async-{version}" == SDK_NAME  # the `sdk` message attribute
    script = Path(sys.executable).with_name("panoply-async")
    shown = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, check=True, timeout=60
    )
    assert version in shown.stdout
    if importlib.util.find_spec("panoply_async.compat") is not None:
        compat = importlib.import_module("panoply_async.compat")
        assert compat.__version__ == version
    sources = [p for p in (ROOT / "src").rglob("*.py") if f'"{version}"' in p.read_text("utf-8")]
    assert sources == [ROOT / "src" / "panoply_async" / "_version.py"]


def test_classifiers_and_readme_name_the_tested_versions() -> None:
    versions = supported()
    assert versions == tuple(sorted(versions, key=lambda v: tuple(map(int, v.split(".")))))
    pyproject = read("pyproject.toml")
    classified = re.findall(r'"Programming Language :: Python :: (3\.\d+)"', pyproject)
    assert tuple(classified) == versions
    oldest = versions[0]
    assert f'requires-python = ">={oldest}"' in pyproject
    assert f'python_version = "{oldest}"' in pyproject  # mypy
    assert f'target-version = "py{oldest.replace(".", "")}"' in pyproject  # ruff
    named = ", ".join(versions[:-1]) + f" or {versions[-1]}"
    assert f"Python {named} (each is tested" in read("README.md")


def test_license_file_matches_pyproject() -> None:
    assert 'license = "MIT"' in read("pyproject.toml")
    assert 'license-files = ["LICENSE"]' in read("pyproject.toml")
    text = read("LICENSE")
    assert text.startswith("MIT License\n")
    assert "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND" in text


def test_changelog_has_a_section_per_version() -> None:
    text = read("CHANGELOG.md")
    sections = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    versions = [section.split(maxsplit=1)[0] for section in sections]
    assert versions[0] == panoply_async.__version__
    assert "0.1.0" in versions
    for section in sections:
        kinds = re.findall(r"^### (.+)$", section, flags=re.MULTILINE)
        assert kinds, section.splitlines()[0]
        assert set(kinds) <= {"Added", "Changed", "Fixed"}, section.splitlines()[0]
