"""``panoply-async init NAME``: a new connector package that passes its own tests."""

from __future__ import annotations

import importlib.util
import json
import keyword
import re
import sys
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

from .._version import __version__
from ..errors import ScaffoldError

__all__ = ["ScaffoldError", "scaffold"]

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


_MODULE = '''"""{title}: a Panoply data source."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from panoply_async import DataSource

CONFIG: dict[str, Any] = {{
    "title": "{title}",
    "icon": "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4=",
    "params": [
        {{"name": "count", "title": "How many records", "type": "number", "default": 10}},
        {{"name": "token", "title": "API token", "type": "password", "secret": True}},
    ],
}}


class Stream(DataSource):
    """Yields ``count`` records in pages of at most ``n``."""

    async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        total = int(self.source.get("count", 10))
        page = n or 100
        for start in range(0, total, page):
            stop = min(total, start + page)
            batch = [{{"id": i, "name": f"item {{i}}"}} for i in range(start, stop)]
            self.progress(start + len(batch), total, "reading items")
            yield batch
'''

_TEST = '''from {name} import Stream


async def test_every_record_arrives(panoply_queue):
    async with panoply_queue.sdk() as conn:
        result = await conn.ingest(Stream({{"type": "{name}", "count": 25}}))
    assert result.records == 25
    tables = await panoply_queue.atables()
    assert sorted(r["id"] for r in tables["{name}"]) == list(range(25))
'''

_PYPROJECT = '''[build-system]
requires = ["hatchling>=1.18"]
build-backend = "hatchling.build"

[project]
name = "{dist}"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = ["panoply-async>={version}"]

[project.optional-dependencies]
dev = ["panoply-async[local]>={version}", "pytest>=8", "pytest-asyncio>=0.24"]

[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
pythonpath = ["."]
testpaths = ["tests"]
'''

_README = '''# {title}

A Panoply data source built with panoply-async.

panoply-async is not on the package index: install it first from a clone of its
repository (or from a wheel built there with `python -m build`), then this package:

```bash
python -m venv .venv && . .venv/bin/activate
pip install -e '{sdk}[local]'
pip install -e '.[dev]'
pytest                                    # runs the connector against a local SQS server
panoply-async run {name} --local          # run it, see what arrives
```
'''

_GENERIC_SDK = "../panoply-async"


def _is_clone(root: Path) -> bool:
    try:
        text = (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return False
    return 'name = "panoply-async"' in text


def _sdk_location() -> str:
    """Where this panoply-async was installed from, when that is a clone of its repository:
    the source tree it runs from (an editable install), else the directory that pip
    recorded in the distribution's ``direct_url.json`` (PEP 610; a plain ``pip install
    CLONE``)."""
    root = Path(__file__).resolve().parents[2]
    if _is_clone(root):
        return str(root)
    try:
        recorded = json.loads(metadata.distribution("panoply-async").read_text(
            "direct_url.json") or "{}")
    except (metadata.PackageNotFoundError, ValueError):
        return _GENERIC_SDK
    url = recorded.get("url", "") if isinstance(recorded, dict) else ""
    if url.startswith("file://"):
        source = Path(unquote(urlparse(url).path))
        if source.is_dir() and _is_clone(source):
            return str(source)
    return _GENERIC_SDK


def _shadowed(name: str) -> str | None:
    """What an importable module called ``name`` already is, or None."""
    if name in sys.stdlib_module_names:
        return "a standard-library module"
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    return f"an installed module ({spec.origin or 'a namespace package'})"


def scaffold(name: str, directory: Path) -> Path:
    """Create ``directory/name`` holding the package, a test and a pyproject."""
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise ScaffoldError(
            f"{name!r} is not a valid package name: use lowercase letters, digits and "
            "underscores, starting with a letter"
        )
    shadowed = _shadowed(name)
    if shadowed is not None:
        raise ScaffoldError(
            f"{name!r} is already the name of {shadowed}: a package called {name} would "
            "shadow it (or be shadowed by it); choose another name"
        )
    root = directory / name
    if root.exists():
        raise ScaffoldError(f"{root} already exists")
    title = name.replace("_", " ").title()
    files = {
        root / name / "__init__.py": _MODULE.format(title=title),
        root / "tests" / f"test_{name}.py": _TEST.format(name=name),
        root / "pyproject.toml": _PYPROJECT.format(
            dist=name.replace("_", "-"), version=__version__
        ),
        root / "README.md": _README.format(title=title, name=name, sdk=_sdk_location()),
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
