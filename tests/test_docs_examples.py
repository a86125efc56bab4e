"""Every ```python block of README.md and docs/*.md runs against the local SQS server.

A block is skipped only when the line just before its fence is
``<!-- not-run: REASON -->``. The blocks of one Markdown file run in order in one
namespace (a module of its own, so that classes defined there find their
``CONFIG``), pre-filled with ``apikey``/``apisecret`` of a fresh local queue;
``panoply_async.SDK`` is swapped for a subclass whose ``endpoint_url`` defaults
to the local server, so examples read as users write them. Top-level ``await``
is allowed: such blocks run on one event loop per file; plain blocks run
outside it (so ``asyncio.run(main())`` works too).
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import sys
import traceback
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import panoply_async
import panoply_async.sync._sdk
from panoply_async._engine.sdk import SDK as RealSDK
from panoply_async.testing import LocalQueue

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)")
PYTHON_LANGS = {"python", "py", "python3"}
NOT_RUN = re.compile(r"^\s*<!--\s*not-run:\s*(?P<reason>.*?)\s*-->\s*$")


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the first line of code
    code: str
    skip_reason: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def python_blocks(path: Path) -> list[Block]:
    """The fenced Python blocks of ``path``, with their not-run reasons."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, ticks, lang = match["indent"], match["ticks"], match["lang"].lower()
        start = i + 1
        end = start
        while end < len(lines) and not lines[end].strip().startswith(ticks):
            end += 1
        if lang in PYTHON_LANGS:
            body = [line[len(indent):] if line.startswith(indent) else line
                    for line in lines[start:end]]
            previous = lines[i - 1] if i > 0 else ""
            marker = NOT_RUN.match(previous)
            reason = marker["reason"] if marker else None
            blocks.append(Block(path, start + 1, "\n".join(body) + "\n", reason))
        i = end + 1
    return blocks


def misplaced_markers(path: Path) -> list[str]:
    """``not-run`` comments that do not sit just before a Python fence, or lack a reason."""
    lines = path.read_text(encoding="utf-8").splitlines()
    problems = []
    for index, line in enumerate(lines):
        if "not-run" not in line or "<!--" not in line:
            continue
        marker = NOT_RUN.match(line)
        following = FENCE.match(lines[index + 1]) if index + 1 < len(lines) else None
        if marker is None or not marker["reason"]:
            problems.append(f"{path.name}:{index + 1}: not-run comment without a reason")
        elif following is None or following["lang"].lower() not in PYTHON_LANGS:
            problems.append(f"{path.name}:{index + 1}: not-run comment not followed by ```python")
    return problems


FILES_WITH_BLOCKS = [p for p in DOC_FILES if python_blocks(p)]


def local_sdk_class(endpoint_url: str) -> type[RealSDK]:
    class SDK(RealSDK):
        __doc__ = RealSDK.__doc__

        def __init__(self, apikey: Any, apisecret: Any, **options: Any) -> None:
            if options.get("endpoint_url") is None:
                options["endpoint_url"] = endpoint_url
            super().__init__(apikey, apisecret, **options)

    SDK.__module__ = "panoply_async"
    return SDK


def test_doc_files_are_found() -> None:
    assert (ROOT / "README.md") in FILES_WITH_BLOCKS
    assert len(DOC_FILES) > 5


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.name)
def test_not_run_markers_are_well_placed(path: Path) -> None:
    assert misplaced_markers(path) == []


@pytest.mark.parametrize("path", FILES_WITH_BLOCKS, ids=lambda p: p.name)
def test_doc_examples_run(
    path: Path,
    panoply_queue: LocalQueue,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    blocks = python_blocks(path)
    runnable = [b for b in blocks if b.skip_reason is None]
    if not runnable:
        pytest.skip("every block is marked not-run: "
                    + "; ".join(f"{b.where}: {b.skip_reason}" for b in blocks))

    local_sdk = local_sdk_class(panoply_queue.endpoint_url)
    monkeypatch.setattr(panoply_async, "SDK", local_sdk)
    # SyncSDK (and so the legacy-shaped compat.SDK) builds its SDK from its own module.
    monkeypatch.setattr(panoply_async.sync._sdk, "SDK", local_sdk)
    monkeypatch.chdir(tmp_path)
    module_name = f"panoply_docs_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}"
    module = types.ModuleType(module_name)
    module.__dict__.update(apikey=panoply_queue.apikey, apisecret=panoply_queue.apisecret)
    monkeypatch.setitem(sys.modules, module_name, module)

    loop = asyncio.new_event_loop()
    try:
        for index, block in enumerate(blocks):
            if block.skip_reason is not None:
                continue
            # Padding keeps tracebacks pointing at the Markdown file's own lines.
            source = "\n" * (block.line - 1) + block.code
            try:
                code = compile(source, str(block.path), "exec",
                               flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
                if code.co_flags & inspect.CO_COROUTINE:
                    loop.run_until_complete(eval(code, module.__dict__))
                else:
                    exec(code, module.__dict__)
            except Exception:
                pytest.fail(f"block {index} of {path.name} ({block.where}) failed:\n"
                            f"{traceback.format_exc()}", pytrace=False)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)
