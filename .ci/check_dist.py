"""Check the built sdist and wheel: everything the package needs is inside, nothing else.

Usage: python .ci/check_dist.py DIST_DIR (run from the repository root). Standard library
only. Exits 1 naming every problem found.
"""

from __future__ import annotations

import re
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "panoply_async"
#: top-level files of the wheel besides the package: the `import panoply` startup hook
HOOK_FILES = ("_panoply_async_hook.py", "panoply_async_hook.pth")


def version() -> str:
    text = (PACKAGE / "_version.py").read_text("utf-8")
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if not match:
        sys.exit("src/panoply_async/_version.py does not set __version__")
    return match.group(1)


def package_files() -> set[str]:
    """The files of the package in the source tree, relative to src/."""
    return {
        str(path.relative_to(ROOT / "src"))
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def check_wheel(wheel: Path, expected_version: str) -> list[str]:
    problems = []
    if not wheel.name.endswith("-py3-none-any.whl"):
        problems.append(f"{wheel.name} is not a pure-Python wheel for every platform")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = f"panoply_async-{expected_version}.dist-info"
        metadata = Parser().parsestr(archive.read(f"{dist_info}/METADATA").decode("utf-8"))
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode("utf-8")
    missing = package_files() - names
    if missing:
        problems.append(f"wheel lacks {sorted(missing)}")
    if "panoply_async/py.typed" not in names:
        problems.append("wheel lacks panoply_async/py.typed (PEP 561 marker)")
    # The startup hook that makes `import panoply` work in plain scripts lives beside the package.
    for hook in HOOK_FILES:
        if hook not in names:
            problems.append(f"wheel lacks the startup hook {hook}")
    strays = sorted(
        n for n in names
        if not n.startswith(("panoply_async/", dist_info + "/")) and n not in HOOK_FILES
    )
    if strays:
        problems.append(f"wheel holds files outside the package: {strays}")
    if metadata["Version"] != expected_version:
        problems.append(f"wheel version {metadata['Version']} != _version.py {expected_version}")
    if metadata["License-Expression"] != "MIT":
        problems.append(f"wheel License-Expression is {metadata['License-Expression']!r}")
    if f"{dist_info}/licenses/LICENSE" not in names:
        problems.append("wheel lacks its LICENSE file")
    if "panoply-async = panoply_async.cli:main" not in entry_points:
        problems.append("wheel lacks the panoply-async console script")
    if "panoply_async = panoply_async.testing" not in entry_points:
        problems.append("wheel lacks the pytest11 entry point")
    tested = sorted(
        value.rsplit(":: ", 1)[1]
        for value in metadata.get_all("Classifier") or []
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", value)
    )
    if not tested:
        problems.append("wheel has no Python version classifiers")
    return problems


def check_sdist(sdist: Path, expected_version: str) -> list[str]:
    top = f"panoply_async-{expected_version}"
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    needed = {
        "LICENSE",
        "README.md",
        "CHANGELOG.md",
        "pyproject.toml",
        "noxfile.py",
        "tests/data/wire-vectors.json",
        *(f"src/{name}" for name in package_files()),
        *(f"src/{name}" for name in HOOK_FILES),
    }
    missing = sorted(needed - names)
    problems = [f"sdist lacks {missing}"] if missing else []
    if not sdist.name.startswith(top):
        problems.append(f"sdist is named {sdist.name}, expected {top}.tar.gz")
    return problems


def main() -> int:
    dist = Path(sys.argv[1])
    expected = version()
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        print(f"expected one wheel and one sdist in {dist}, found {wheels + sdists}")
        return 1
    problems = check_wheel(wheels[0], expected) + check_sdist(sdists[0], expected)
    for problem in problems:
        print(f"check_dist: {problem}")
    if problems:
        return 1
    print(f"check_dist: {wheels[0].name} and {sdists[0].name} hold the whole package")
    return 0


if __name__ == "__main__":
    sys.exit(main())
