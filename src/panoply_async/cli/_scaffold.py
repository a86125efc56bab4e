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

from panoply_async import DataSource, PanoplyException, StreamSpec, StreamState

CONFIG: dict[str, Any] = {{
    "title": "{title}",
    "icon": "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4=",
    "params": [
        {{"name": "count", "title": "How many records", "type": "number", "default": 10}},
        {{"name": "token", "title": "API token", "type": "password", "secret": True}},
    ],
}}

PAGE = 100


class Stream(DataSource):
    """Two streams (`panoply-async discover {name}` lists them): ``items``, read in
    full each run, and ``events``, read incrementally after the last ``at`` delivered."""

    streams = (
        StreamSpec("items", table="{name}", primary_key="id"),
        StreamSpec("events", table="{name}_events", primary_key="id", cursor_field="at",
                   initial_value=0),
    )

    async def check(self) -> str:
        """`panoply-async check {name}`: make one cheap authenticated call here, and
        raise when it is refused."""
        if self.source.get("token") == "bad-token":
            raise PanoplyException("the API refused the token", retryable=False)
        return "nothing to connect to yet: the records are generated"

    async def read_stream(self, stream: StreamSpec,
                          state: StreamState) -> AsyncIterator[list[dict[str, Any]]]:
        total = int(self.source.get("count", 10))
        if stream.name == "items":
            # Full refresh, page by page; an interrupted run resumes at state.position.
            for start in range(state.position or 0, total, PAGE):
                stop = min(total, start + PAGE)
                state.position = stop
                self.progress(stop, total, "reading items")
                yield [{{"id": i, "name": f"item {{i}}"}} for i in range(start, stop)]
        else:
            # Incremental: only events after the cursor committed by earlier runs.
            first = int(state.start_value) + 1
            for start in range(first, total + 1, PAGE):
                stop = min(total + 1, start + PAGE)
                yield [{{"id": i, "at": i}} for i in range(start, stop)]
'''

_TEST = '''from {name} import Stream


async def test_every_record_arrives_and_events_resume_from_their_cursor(panoply_queue):
    assert "nothing to connect to" in await Stream({{"type": "{name}"}}).check()
    async with panoply_queue.sdk() as conn:
        result = await conn.ingest(Stream({{"type": "{name}", "count": 25}}))
    assert result.records == 50
    assert result.state == {{"streams": {{"items": {{}}, "events": {{"cursor": 25}}}}}}
    tables = await panoply_queue.atables()
    assert sorted(r["id"] for r in tables["{name}"]) == list(range(25))
    assert sorted(r["id"] for r in tables["{name}_events"]) == list(range(1, 26))

    # The next run reads every item again, and only the events after the cursor.
    source = {{"type": "{name}", "count": 30, "state": result.state}}
    async with panoply_queue.sdk() as conn:
        again = await conn.ingest(Stream(source))
    assert again.tables == {{"{name}": 30, "{name}_events": 5}}
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
    root = Path(__file__).resolve().parents[3]  # src/panoply_async/cli/_scaffold.py
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
        root / name / "__init__.py": _MODULE.format(title=title, name=name),
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
