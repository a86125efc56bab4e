"""``import panoply`` in a plain script, once the wheel is installed (issue 20, item 8).

The wheel is built from this tree and installed into a fresh virtualenv, offline: the
package without its dependencies, which come from this interpreter's site-packages
through a path entry. Every script runs from a directory outside the source tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from panoply_async.testing import LocalQueue

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.main_only


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv's interpreter with the wheel of this tree installed."""
    pytest.importorskip("hatchling", reason="the dev extra builds the wheel with hatchling")
    from hatchling.builders.wheel import WheelBuilder

    base = tmp_path_factory.mktemp("hook")
    (wheel,) = WheelBuilder(str(ROOT)).build(directory=str(base / "dist"))
    venv.EnvBuilder(with_pip=False).create(base / "venv")
    python = base / "venv" / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--no-index", wheel],
        check=True, timeout=120,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()
    # The dependencies: this interpreter's site-packages, after the new venv's own.
    (Path(purelib) / "zz_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8"
    )
    return python


def run(
    python: Path, script: str, cwd: Path, **environment: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-c", script], cwd=cwd, capture_output=True, text=True, timeout=120,
        env={"PATH": os.environ.get("PATH", ""), **environment}, check=False,
    )


def test_a_plain_script_imports_panoply(fresh_python: Path, tmp_path: Path) -> None:
    done = run(fresh_python, "import sys, panoply, panoply.errors, panoply_async\n"
                             "print(panoply.__name__, panoply.SDK.__module__,\n"
                             "      panoply_async.__file__.startswith(sys.prefix))", tmp_path)
    assert done.returncode == 0, done.stderr
    # ... and the package is the wheel's, in the new venv, not this tree's.
    assert done.stdout.split() == [
        "panoply_async.compat", "panoply_async.sync._legacy_sdk", "True"
    ]


def test_the_hook_costs_no_import_of_the_package(fresh_python: Path, tmp_path: Path) -> None:
    # It ran, and imported neither the package nor typing (10 ms at every start).
    done = run(fresh_python, "import sys\n"
                             "print('_panoply_async_hook' in sys.modules, 'typing' in sys.modules,"
                             " sorted(m for m in sys.modules if m.startswith('panoply')))",
               tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True False []"


def test_the_variable_switches_it_off(fresh_python: Path, tmp_path: Path) -> None:
    done = run(fresh_python, "import panoply", tmp_path, PANOPLY_ASYNC_NO_ALIAS="1")
    assert done.returncode == 1
    assert "ModuleNotFoundError: No module named 'panoply'" in done.stderr


def test_a_real_panoply_is_never_shadowed(fresh_python: Path, tmp_path: Path) -> None:
    real = tmp_path / "real" / "panoply"
    real.mkdir(parents=True)
    (real / "__init__.py").write_text("REAL = True\n", encoding="utf-8")
    done = run(fresh_python, "import panoply; print(panoply.REAL)", tmp_path,
               PYTHONPATH=str(real.parent))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_a_legacy_script_runs_unedited_against_a_local_server(
    fresh_python: Path, tmp_path: Path, panoply_queue: LocalQueue
) -> None:
    script = (
        "import panoply\n"
        "sdk = panoply.SDK()\n"  # the legacy script passed its keys; here they are variables
        "for i in range(3):\n"
        "    sdk.write('events', {'id': i})\n"
    )
    done = run(fresh_python, script, tmp_path,
               PANOPLY_APIKEY=panoply_queue.apikey, PANOPLY_APISECRET=panoply_queue.apisecret,
               PANOPLY_ENDPOINT_URL=panoply_queue.endpoint_url)
    assert done.returncode == 0, done.stderr
    assert panoply_queue.tables() == {"events": [{"id": 0}, {"id": 1}, {"id": 2}]}
