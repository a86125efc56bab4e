"""A log directory's lock, and what a forked child must not inherit of it.

The lock is an ``flock`` on the directory's ``lock`` file, held through a
descriptor opened ``O_CLOEXEC``: it ends with the process (SIGKILL included)
and an ``exec`` does not carry it. A ``fork`` does: the child's descriptor
shares the parent's open file description, so a parent killed while a child
lives would leave a lock nobody holds on purpose. :func:`forget_in_child`
registers objects whose ``forget_after_fork()`` runs in every forked child,
which closes the child's copies (never ``LOCK_UN``: that would release the
parent's lock too).
"""

from __future__ import annotations

import errno
import fcntl
import os
import weakref
from pathlib import Path
from typing import Protocol

from ...errors import WALError, WALLockedError
from .. import fileio
from .format import LOCK_NAME

__all__ = ["DirectoryLock", "forget_in_child"]


class _Forgetful(Protocol):
    def forget_after_fork(self) -> None: ...


_IN_PARENT: weakref.WeakSet[_Forgetful] = weakref.WeakSet()


def _forget_all_in_child() -> None:
    for owner in list(_IN_PARENT):
        owner.forget_after_fork()
    _IN_PARENT.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_all_in_child)


def forget_in_child(owner: _Forgetful, *, registered: bool = True) -> None:
    """Have ``owner.forget_after_fork()`` run in forked children (or no longer)."""
    if registered:
        _IN_PARENT.add(owner)
    else:
        _IN_PARENT.discard(owner)


class DirectoryLock:
    """The ``lock`` file of one log directory, held by at most one live process."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.fd = -1

    @property
    def held(self) -> bool:
        return self.fd >= 0

    def acquire(self) -> None:
        """Create the directory (0700) and take its lock, or raise :class:`WALLockedError`."""
        try:
            fileio.mkdir(self.directory, 0o700)
            fd = fileio.open(
                self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
        except OSError as exc:
            raise WALError(f"cannot use wal_dir {self.directory}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise WALLockedError(
                    f"wal_dir {self.directory} is in use by another live SDK (pid {holder})"
                ) from None
            raise WALError(f"cannot lock wal_dir {self.directory}: {exc.strerror}") from exc
        try:
            fileio.ftruncate(fd, 0)
            fileio.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise WALError(f"cannot use wal_dir {self.directory}: {exc.strerror}") from exc
        self.fd = fd

    def release(self) -> None:
        """Close the descriptor: in the process that took the lock, that releases it."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def forget(self) -> None:
        """In a forked child: close the inherited descriptor; the parent keeps its lock."""
        try:
            self.release()
        except OSError:
            self.fd = -1
