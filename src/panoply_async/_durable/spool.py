"""The dead-letter spool: messages that could not be delivered, kept on disk.

A spool file is JSON lines, one undelivered message per line:
``{"v": 2, "queue": DIGEST, "body": ..., "records": N, "error": ..., "spooled_at": ...}``.
It never holds the api secret nor the queue URL (whose queue name holds part of
the secret): ``queue`` is a digest of the queue name (:func:`queue_tag`), and
replay takes credentials anew. Version 1 lines, which named the ``queue_url``,
are still read. Appends are flushed and fsynced before the SDK reports the
records as spooled; an append that fails is cut back to where it began, so
that the next append starts on a line of its own (should even that fail, the
next append starts with a newline: the broken line stays unreadable, never
joined to a good one). Replay
rewrites a file atomically (write, fsync, rename) with only what is still
undelivered, so an interrupted replay loses nothing.

Writing and replaying a file exclude each other through ``flock``: the SDK
that writes a spool file holds an exclusive lock on it from the moment the file
appears under its name until the SDK closes (the file is created under a
temporary name, locked, then renamed, so no one can see it unlocked while its
writer lives; the kernel drops the lock if the process dies). Replay takes the
lock without waiting, skips a file whose writer is alive, and keeps holding it
across its rewrites (each new version is locked before it is renamed into
place). Whatever a rewrite finds beyond the bytes replay read is kept, so
replay never deletes or replaces bytes it did not read.

Locks are not inherited: a forked child closes its copies of every lock fd
(``os.register_at_fork``) and forgets the files, so a parent's closed spool
is never held by a child that lives on (``close`` would not release a lock
whose open file another process shares). The fds are ``O_CLOEXEC`` too.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import os
import secrets
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

from . import fileio
from .spool_format import SUFFIX, SpoolEntry, parse_lines, queue_tag, read_spool, spool_files

__all__ = [
    "SpoolClaim",
    "SpoolEntry",
    "SpoolFile",
    "claim_spool",
    "queue_tag",
    "read_spool",
    "rewrite_spool",
    "spool_files",
]

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class _LockHolders:
    """Every open spool fd of this process, so that a forked child can drop them."""

    def __init__(self) -> None:
        self._holders: weakref.WeakSet[SpoolFile | SpoolClaim] = weakref.WeakSet()

    def add(self, holder: SpoolFile | SpoolClaim) -> None:
        self._holders.add(holder)

    def after_fork_in_child(self) -> None:
        # No lock taken here: another thread of the parent may have held one at
        # the fork, and only this thread exists in the child.
        for holder in list(self._holders):
            holder.forget_after_fork()
        self._holders = weakref.WeakSet()


_lock_holders = _LockHolders()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_lock_holders.after_fork_in_child)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


class SpoolFile:
    """Append-only spool file of one SDK instance, created on first use.

    From its creation until :meth:`close` the file is locked (``flock``), so
    that a replay elsewhere leaves it alone.
    """

    def __init__(self, directory: str | os.PathLike[str], account: str) -> None:
        self._directory = Path(directory)
        self._account = account
        self._path: Path | None = None
        self._fd: int | None = None
        self._closed = False
        #: the file ends inside a line that a failed append left behind
        self._torn = False
        # give-ups of several senders may append from worker threads at once
        self._lock = threading.Lock()
        _lock_holders.add(self)

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def path(self) -> Path | None:
        """The file written so far, or None while nothing was spooled."""
        return self._path

    def _open(self) -> int:
        if self._fd is not None:
            return self._fd
        if self._closed:
            raise OSError(errno.EBADF, f"spool file {self._path} was closed")
        fileio.mkdir(self._directory, 0o700)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        name = f"panoply-{self._account}-{stamp}-{os.getpid()}-{secrets.token_hex(3)}{SUFFIX}"
        path = self._directory / name
        # Locked under a name replay does not look at, then renamed: replay can
        # never find this file unlocked while this SDK is open.
        hidden = path.with_name(f".{name}.new")
        # Readable too: hand_over() reads it through this descriptor, under its lock.
        fd = fileio.open(
            hidden, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | _CLOEXEC, 0o600
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fileio.rename(hidden, path)
        except BaseException:
            os.close(fd)
            hidden.unlink(missing_ok=True)
            raise
        self._fd, self._path = fd, path
        return fd

    def append(self, queue_url: str, bodies: Iterable[tuple[bytes, int]], error: str) -> Path:
        """Durably append ``(body, records)`` pairs; returns the file's path. Blocking.

        Raises OSError when the append cannot be made durable; then none of
        ``bodies`` counts as spooled, and the file is as it was before the call.
        """
        at = _now()
        tag = queue_tag(queue_url)
        lines = b"".join(
            orjson.dumps(
                {
                    "v": 2,
                    "queue": tag,
                    "body": body.decode("utf-8"),
                    "records": records,
                    "error": error,
                    "spooled_at": at,
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
            for body, records in bodies
        )
        with self._lock:
            fd = self._open()
            start = os.fstat(fd).st_size
            if self._torn:
                lines = b"\n" + lines
            try:
                _write_all(fd, lines)
                fileio.fsync(fd)
            except OSError:
                self._cut_back(fd, start)
                raise
            self._torn = False
            assert self._path is not None
            return self._path

    def hand_over(self) -> SpoolClaim | None:
        """The file written so far as a replay claim, still locked (so no other
        replay takes it), or None if nothing was appended since the last hand-over.
        Later appends go to a new file. Blocking."""
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is None:
                return None
            assert self._path is not None
            try:
                return _claim_from(self._path, fd)
            except BaseException:
                os.close(fd)
                raise

    def _cut_back(self, fd: int, start: int) -> None:
        """Undo a failed append: the file ends where the append began, or (when
        the disk refuses even that) the next append starts on a new line."""
        try:
            fileio.ftruncate(fd, start)
            fileio.fsync(fd)
        except OSError:
            self._torn = self._torn or os.fstat(fd).st_size > start

    def close(self) -> None:
        """Release the file (and its lock) for replay. Idempotent; later appends fail."""
        with self._lock:
            self._closed = True
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)

    def forget_after_fork(self) -> None:
        """In a forked child: close this copy of the fd (the parent's lock stays
        the parent's) and start afresh; a later append makes a file of its own."""
        fd, self._fd, self._path = self._fd, None, None
        self._lock = threading.Lock()
        if fd is not None:
            _close_quietly(fd)

    def __del__(self) -> None:
        # A safety net only: the SDK closes its spool when it closes.
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[fileio.write(fd, view) :]


def _write_durably(path: Path, data: bytes, flags: int) -> None:
    fd = fileio.open(path, flags, 0o600)
    try:
        _write_all(fd, data)
        fileio.fsync(fd)
    finally:
        os.close(fd)


def rewrite_spool(path: Path, keep: Iterable[bytes]) -> None:
    """Atomically replace ``path`` with the ``keep`` lines; remove it when none remain."""
    lines = [line for line in keep if line.strip()]
    if not lines:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    _write_durably(tmp, b"\n".join(lines) + b"\n", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    fileio.replace(tmp, path)


@dataclass(eq=False)  # hashable by identity: fork bookkeeping holds it in a WeakSet
class SpoolClaim:
    """A spool file held by one replay: its entries, and the lock on it.

    ``entries`` and ``invalid`` are what the file held when it was claimed. Call
    :meth:`rewrite` with the raw lines still undelivered and :meth:`release`
    when done (blocking calls).
    """

    path: Path
    entries: list[SpoolEntry]
    invalid: list[bytes]
    _fd: int | None
    #: where the bytes replay has not read begin, in the current version: they are
    #: carried over verbatim by every rewrite
    _known: int

    def rewrite(self, keep: Iterable[bytes]) -> None:
        """Atomically replace the file with ``keep`` plus any bytes it gained since
        it was read; remove it when nothing at all remains."""
        fd = self._fd
        if fd is None:
            raise RuntimeError(f"{self.path} was already released")
        lines = [line for line in keep if line.strip()]
        # Bytes someone appended without the lock (a writer that does not take
        # it): never ours to drop.
        size = os.fstat(fd).st_size
        extra = os.pread(fd, size - self._known, self._known) if size > self._known else b""
        kept = b"".join(line + b"\n" for line in lines)
        data = kept + extra
        if not data.strip():
            self.path.unlink(missing_ok=True)
            _fsync_directory(self.path.parent)
            self.release()  # nothing left to hold
            return
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        new = fileio.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o600)
        try:
            # The new version is locked before it takes the name, so the claim
            # never lapses (another replay would skip it, not race us).
            fcntl.flock(new, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _write_all(new, data)
            fileio.fsync(new)
            fileio.replace(tmp, self.path)
        except BaseException:
            os.close(new)
            tmp.unlink(missing_ok=True)
            raise
        _fsync_directory(self.path.parent)
        self._fd, self._known = new, len(kept)
        os.close(fd)

    def __post_init__(self) -> None:
        _lock_holders.add(self)

    @property
    def held(self) -> bool:
        """False once released, or once a rewrite removed the emptied file."""
        return self._fd is not None

    def reload(self) -> None:
        """Read the file again (``entries``, ``invalid``), e.g. after a rewrite."""
        if self._fd is None:
            raise RuntimeError(f"{self.path} was already released")
        data = _read_all(self._fd)
        self._known = data.rfind(b"\n") + 1
        self.entries, self.invalid = parse_lines(data[: self._known])

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def forget_after_fork(self) -> None:
        """In a forked child: drop this copy of the lock; the claim is the parent's."""
        fd, self._fd = self._fd, None
        if fd is not None:
            _close_quietly(fd)


def claim_spool(path: Path) -> SpoolClaim | str:
    """Lock ``path`` for replay and read it; or say why not (its writer is alive,
    or it is gone). Never waits. Blocking I/O."""
    for _ in range(3):
        try:
            fd = os.open(path, os.O_RDONLY | _CLOEXEC)
        except FileNotFoundError:
            return "gone (replayed or removed meanwhile)"
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return "in use by a running writer or another replay"
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if not same:
            # Replaced or removed between our open and our lock: look again.
            os.close(fd)
            continue
        try:
            return _claim_from(path, fd)
        except BaseException:
            os.close(fd)
            raise
    return "in use: it keeps changing"


def _claim_from(path: Path, fd: int) -> SpoolClaim:
    """A claim on ``path`` through ``fd``, which holds its lock."""
    claim = SpoolClaim(path, [], [], fd, 0)
    # A last line without its newline is being written by someone who does
    # not lock, or was cut short by a crash: not read here, so a rewrite
    # copies it verbatim with whatever follows it.
    claim.reload()
    return claim


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on directories; the rename still happened
    finally:
        os.close(fd)
