"""The test suite on every supported Python: ``make test-matrix`` (``.ci/run`` runs it too).

Each version in ``SUPPORTED`` is looked up in pyenv's versions (``$PYENV_ROOT``, else
``pyenv root``, else ``~/.pyenv``), then as ``python3.X`` on ``PATH``; every candidate is
run once to check that it really is that version (a pyenv shim for a version that is
not selected only prints an error). A version found nowhere is reported as not installed
and gets no session (skipped, not failed). Nothing is downloaded.

Each session gets a fresh virtualenv under ``.nox/`` with the package installed from
this tree (a wheel, not editable) and its ``test`` and ``local`` extras: nothing comes
from the developer's ``.venv``. Only pytest runs there; lint, types, docs and
benchmarks run once, in ``make test``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nox

#: The Python versions the package supports and tests, oldest first. The classifiers
#: in pyproject.toml and the README name exactly these (tests/test_release.py checks).
SUPPORTED = ("3.10", "3.11", "3.12", "3.13")

nox.options.sessions = ["tests"]
nox.options.download_python = "never"
# Sessions exist only for the interpreters found below: one nox cannot find is an error.
nox.options.error_on_missing_interpreters = True


def _pyenv_root() -> Path:
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    if shutil.which("pyenv"):
        done = subprocess.run(
            ["pyenv", "root"], capture_output=True, text=True, check=False, timeout=30
        )
        if done.returncode == 0 and done.stdout.strip():
            return Path(done.stdout.strip())
    return Path.home() / ".pyenv"


def _reports(executable: str, version: str) -> bool:
    """Whether ``executable`` runs, is Python ``version`` and is not a virtualenv's
    (an activated .venv's python3.X comes first on PATH)."""
    probe = "import sys; print('%d.%d' % sys.version_info[:2], sys.prefix != sys.base_prefix)"
    try:
        done = subprocess.run(
            [executable, "-c", probe],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and done.stdout.split() == [version, "False"]


def _candidates(version: str, pyenv_versions: Path) -> list[str]:
    patch = re.compile(re.escape(version) + r"\.(\d+)")
    found = []
    if pyenv_versions.is_dir():
        for entry in pyenv_versions.iterdir():
            match = patch.fullmatch(entry.name)
            if match:
                found.append((int(match.group(1)), str(entry / "bin" / f"python{version}")))
    candidates = [path for _, path in sorted(found, reverse=True)]
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        on_path = shutil.which(f"python{version}", path=directory) if directory else None
        if on_path and on_path not in candidates:
            candidates.append(on_path)
    return candidates


def find_interpreters() -> dict[str, str | None]:
    """Each supported version -> the interpreter that runs its session, or None."""
    versions = _pyenv_root() / "versions"
    return {
        version: next(
            (path for path in _candidates(version, versions) if _reports(path, version)), None
        )
        for version in SUPPORTED
    }


INTERPRETERS = find_interpreters()

# nox looks interpreters up by name (python3.X) on PATH; put the ones found first, so
# that it takes them rather than a pyenv shim or an activated virtualenv's python.
_found_dirs = [str(Path(path).parent) for path in INTERPRETERS.values() if path]
os.environ["PATH"] = os.pathsep.join([*dict.fromkeys(_found_dirs), os.environ.get("PATH", "")])

for _version, _path in INTERPRETERS.items():
    if _path:
        print(f"test matrix: Python {_version}: {_path}", file=sys.stderr)
    else:
        print(
            f"test matrix: Python {_version}: NOT INSTALLED, skipped "
            f"(looked in {_pyenv_root() / 'versions'} and for python{_version} on PATH)",
            file=sys.stderr,
        )


@nox.session(python=[version for version, path in INTERPRETERS.items() if path])
def tests(session: nox.Session) -> None:
    """The test suite (pytest only) against the package built from this tree."""
    # Only what this tree and the session's virtualenv provide.
    session.env.pop("PYTHONPATH", None)
    session.install(".[test,local]")
    # No .pytest_cache: sessions of different interpreters would share it.
    session.run(
        "python", "-m", "pytest", "-p", "no:cacheprovider", "-m", "not main_only", *session.posargs
    )
