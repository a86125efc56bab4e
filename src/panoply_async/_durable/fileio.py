"""The one seam through which the durable files are written (issue 19).

The write-ahead log, its journal, the spool and the CLI's state file do every
file operation that can fail on a full or failing disk through this module's
functions, called as ``fileio.write(...)`` (looked up at the call, so that
:func:`inject` reaches every caller). Unwrapped, each name *is* the ``os``
function (or ``mmap.mmap``): no extra call, and nothing on the per-record
path, which stores into a mapping and makes no system call.

Tests wrap the seam with :func:`inject` to fail the k-th call with ``ENOSPC``
or ``EIO`` and check that every outcome is defined (delivered, kept for a
retry, or reported by an exception).
"""

from __future__ import annotations

import mmap as _mmap
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "OPERATIONS",
    "fallocate",
    "fdatasync",
    "fsync",
    "ftruncate",
    "inject",
    "mkdir",
    "mmap",
    "open",
    "pwrite",
    "read_bytes",
    "rename",
    "replace",
    "unlink",
    "write",
]


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    return Path(path).read_bytes()


def _mkdir(path: str | os.PathLike[str], mode: int = 0o700) -> None:
    Path(path).mkdir(mode=mode, parents=True, exist_ok=True)


def _unlink(path: str | os.PathLike[str]) -> None:
    Path(path).unlink(missing_ok=True)


def _map(fd: int, size: int) -> _mmap.mmap:
    return _mmap.mmap(fd, size)


open = os.open
write = os.write
pwrite = os.pwrite
fsync = os.fsync
fdatasync = os.fdatasync
ftruncate = os.ftruncate
fallocate = os.posix_fallocate
rename = os.rename
replace = os.replace
unlink = _unlink
mkdir = _mkdir
mmap = _map
read_bytes = _read_bytes

#: every operation of the seam, by name: what :func:`inject` wraps
OPERATIONS: tuple[str, ...] = (
    "open",
    "write",
    "pwrite",
    "fsync",
    "fdatasync",
    "ftruncate",
    "fallocate",
    "rename",
    "replace",
    "unlink",
    "mkdir",
    "mmap",
    "read_bytes",
)


@contextmanager
def inject(hook: Callable[[str], None]) -> Iterator[None]:
    """Call ``hook(operation)`` before every operation of the seam while the block runs.

    The hook may raise (an ``OSError`` stands for the disk's answer); it runs in
    whatever thread makes the call. For tests: not meant for concurrent use.
    """
    module = sys.modules[__name__]
    real: dict[str, Callable[..., Any]] = {name: getattr(module, name) for name in OPERATIONS}

    def wrapped(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            hook(name)
            return function(*args, **kwargs)

        return call

    for name, function in real.items():
        setattr(module, name, wrapped(name, function))
    try:
        yield
    finally:
        for name, function in real.items():
            setattr(module, name, function)
