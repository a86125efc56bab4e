"""Disk faults for the tests: fail chosen calls of the durable layer's I/O seam.

:class:`FaultPlan` is a hook for ``fileio.inject``: it counts every call with
its call site (file and line of the caller), and fails the calls it is told
to with an ``OSError`` carrying a real errno, as a full or failing disk would.
"""

from __future__ import annotations

import errno
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panoply_async import Message, SendError, decode_body
from panoply_async._durable import fileio

Call = tuple[str, str]  # operation, call site


@dataclass
class FaultPlan:
    """Fail call number ``fail_at`` (1-based), or every call ``should_fail`` picks."""

    fail_at: int | None = None
    error: int = errno.ENOSPC
    should_fail: Callable[[int, str, str], bool] | None = None
    calls: list[Call] = field(default_factory=list)
    failed: list[Call] = field(default_factory=list)
    threads: list[tuple[str, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, operation: str) -> None:
        caller = sys._getframe(2)  # the seam's wrapper is frame 1
        site = f"{Path(caller.f_code.co_filename).name}:{caller.f_lineno}"
        with self._lock:
            self.calls.append((operation, site))
            self.threads.append((operation, threading.current_thread() is threading.main_thread()))
            number = len(self.calls)
        fail = number == self.fail_at or (
            self.should_fail is not None and self.should_fail(number, operation, site)
        )
        if fail:
            with self._lock:
                self.failed.append((operation, site))
            raise OSError(self.error, os.strerror(self.error))

    @property
    def sites(self) -> set[Call]:
        return set(self.calls)


@contextmanager
def faults(plan: FaultPlan) -> Iterator[FaultPlan]:
    with fileio.inject(plan):
        yield plan


def sample_calls(calls: Sequence[Call], per_site: int = 2, limit: int = 40) -> list[int]:
    """1-based call numbers to fail: the first ``per_site`` calls of every call site
    (so every site is covered), then evenly spread others up to ``limit``."""
    chosen: list[int] = []
    seen: dict[Call, int] = {}
    for number, call in enumerate(calls, 1):
        if seen.get(call, 0) < per_site:
            seen[call] = seen.get(call, 0) + 1
            chosen.append(number)
    rest = [n for n in range(1, len(calls) + 1) if n not in set(chosen)]
    room = max(0, limit - len(chosen))
    if rest and room:
        step = max(1, len(rest) // room)
        chosen += rest[::step][:room]
    return sorted(set(chosen))


def ids_of(bodies: Iterable[bytes | str]) -> list[Any]:
    found: list[Any] = []
    for body in bodies:
        raw = body.encode() if isinstance(body, str) else body
        found += [r["id"] for r in decode_body(raw)]
    return found


def refuse(messages: Sequence[Message]) -> BaseException:
    return SendError("refused (test)", retryable=False, code="AccessDenied")
