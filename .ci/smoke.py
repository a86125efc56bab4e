"""Smoke test of the installed wheel, run by ``make release-check``.

Runs with the clean virtualenv's python in isolated mode (``-I``), from a directory
outside the source tree, so every import comes from the installed wheel: if the package
needed a file that lives only in the repository, this fails.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import pkgutil
import subprocess
import sys
from pathlib import Path

# Modules that need a package the ``local`` extra does not bring, and that package.
OPTIONAL = {"panoply_async.testing": "pytest", "panoply_async.metrics": "opentelemetry"}


def main() -> int:
    import panoply_async
    from panoply_async import errors

    location = Path(panoply_async.__file__).resolve()
    assert location.is_relative_to(Path(sys.prefix).resolve()), (
        f"panoply_async imported from {location}, not from the virtualenv {sys.prefix}"
    )
    version = importlib.metadata.version("panoply-async")
    assert panoply_async.__version__ == version, (panoply_async.__version__, version)
    assert importlib.resources.files("panoply_async").joinpath("py.typed").is_file()

    imported = 0
    for info in pkgutil.walk_packages(panoply_async.__path__, "panoply_async."):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as exc:
            if OPTIONAL.get(info.name) != exc.name:
                raise
            print(f"smoke: {info.name} needs {exc.name}, which the local extra does not bring")
            continue
        imported += 1
    names = [getattr(errors, name) for name in errors.__all__]
    print(f"smoke: panoply-async {version} from {location.parent}: "
          f"{imported} modules import, {len(names)} names in panoply_async.errors")

    # The wheel's startup hook: a plain script's `import panoply` gives the compat layer.
    legacy = subprocess.run(
        [sys.executable, "-I", "-c", "import panoply; print(panoply.__name__)"],
        capture_output=True, text=True, check=True, timeout=120,
    )
    assert legacy.stdout.strip() == "panoply_async.compat", legacy.stdout

    script = Path(sys.executable).with_name("panoply-async")
    shown = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, check=True, timeout=120
    )
    assert version in shown.stdout, shown.stdout
    # The demo starts the embedded local SQS server (the local extra), streams the
    # records through it and checks that every one arrived; it exits non-zero otherwise.
    subprocess.run(
        [str(script), "demo", "--records", "2000"],
        check=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    print("smoke: the installed wheel imports and runs the demo")
    return 0


if __name__ == "__main__":
    sys.exit(main())
