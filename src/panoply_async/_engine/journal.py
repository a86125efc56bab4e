"""The write-ahead log inside an SDK: recovery on entry, syncing, and the write path's hooks.

The records reach the log through :class:`WalPacker`, which the write buffer
uses as its open message, so the log needs no per-record hook (the SDK does
not install it as the buffer's ``journal``, whose per-line call would cost a
call per record). The SDK wraps the buffer's ``submit`` and delivery's
``on_finished`` instead: ``closed`` maps the message's seq to its frame and
asks for a sync, ``finished`` logs acknowledgements (or leaves the frame for
the next start when a message was neither delivered nor spooled). A syncer task coalesces
sync requests into ``fdatasync`` calls in a worker thread (group commit).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import anyio

from .._durable.wal.log import (
    DELIVERED,
    FAILED,
    SPOOLED,
    RecoveredFrame,
    RecoveryReport,
    WriteAheadLog,
    fdatasync_all,
    queue_digest,
)
from .._durable.wal.packer import WalPacker
from .._wire.packing import pack_lines
from ..errors import WALError, WALRecoveryError
from .blocking import run_blocking
from .transport import Message

if TYPE_CHECKING:
    from .events import EventEmitter
    from .stats import Stats

__all__ = ["WALRecoveryError", "WalJournal"]

logger = logging.getLogger("panoply_async")

#: frame headers and segment header around a message body, with alignment
_FRAME_OVERHEAD = 128
_MAX_SEGMENT = 32 * 1024 * 1024


def segment_bytes_for(max_wal_bytes: int, body_limit: int) -> int:
    """Segment size: an eighth of the budget, at most 32 MiB, at least one message.

    The SDK requires ``max_wal_bytes >= 4 * max_message_bytes``, so at least two
    segments fit: the one written and one of messages in flight.
    """
    return max(body_limit + _FRAME_OVERHEAD, min(max_wal_bytes // 8, _MAX_SEGMENT))


class WalJournal:
    """One SDK's write-ahead log: lock, recovery, frames of its messages, syncs."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        queue_name: str,
        body_limit: int,
        max_wal_bytes: int,
    ) -> None:
        self._wal = WriteAheadLog(
            directory,
            queue_digest(queue_name),
            frame_limit=body_limit,
            segment_bytes=segment_bytes_for(max_wal_bytes, body_limit),
            max_bytes=max_wal_bytes,
        )
        self._body_limit = body_limit
        self.packer: WalPacker = self._wal.packer(body_limit)
        #: message seq -> frame id, for messages not finished yet
        self._frames: dict[int, int] = {}
        #: recovered frames split into several messages: parts left, worst outcome
        self._parts: dict[int, list[int]] = {}
        self._undelivered: list[Message] = []
        self._recovered: list[RecoveredFrame] = []
        self.report = RecoveryReport()
        self._requested = self._completed = 0
        self._sync_error: OSError | None = None
        #: the recovered frame being enqueued, while :meth:`resend` enqueues it
        self._resending: int | None = None
        self._open = False

    @property
    def directory(self) -> str:
        return str(self._wal.directory)

    # -- lifetime --------------------------------------------------------------------

    async def open(self, undelivered: list[Message]) -> None:
        """Lock the directory and read what a previous process left (worker thread)."""
        self._undelivered = undelivered
        self._wakeup = anyio.Event()
        self._synced = anyio.Event()
        try:
            # Inside the try: a cancellation that lands while the thread takes the
            # lock must still release it.
            await run_blocking(self._wal.open)
            self._recovered, self.report = await run_blocking(self._wal.recover)
            await self._prepare_spare()
        except BaseException:
            self._wal.close()
            raise
        self._open = True

    async def _prepare_spare(self) -> None:
        """Create the next segment in a worker thread, so that rotating to it does
        not stop the event loop (creating and zeroing a file takes milliseconds)."""
        segno = self._wal.reserve_spare()
        if segno is None:
            return
        segment = None
        try:
            # Shielded: a cancellation must not drop a segment the thread created.
            with anyio.CancelScope(shield=True):
                segment = await run_blocking(self._wal.create_segment, segno)
        except OSError as exc:
            logger.error("could not prepare a write-ahead log segment: %s", exc)
        finally:
            self._wal.add_spare(segment)

    async def aclose(self) -> None:
        """Sync what stays on disk, delete what is finished, release the lock."""
        if not self._open:
            return
        self._open = False
        try:
            await run_blocking(self._wal.close)
        except OSError as exc:
            logger.error("could not sync the write-ahead log in %s: %s", self.directory, exc)

    # -- recovery --------------------------------------------------------------------

    async def resend(
        self,
        enqueue: Callable[[bytes, int], int],
        wait_through: Callable[[int], Awaitable[None]],
        buffered: Callable[[], int],
        max_buffer_bytes: int,
        stats: Stats,
        events: EventEmitter,
    ) -> None:
        """Send what a previous process left unacknowledged, and wait until it finished.

        Runs before the SDK accepts writes. ``enqueue(body, records)`` counts a
        message as buffered and pending, closes it (calling :meth:`closed`) and
        returns its seq; ``wait_through(seq)`` waits until every message up to
        it finished. At most ``max_buffer_bytes`` of recovered bodies are
        buffered at a time.
        """
        report, frames = self.report, self._recovered
        self._recovered = []
        if report.records or report.dropped or report.foreign_files:
            logger.warning("wal_dir %s: %s", self.directory, report.describe())
        if report.dropped or report.foreign_files or report.other_queue_segments:
            await events.emit_async(
                "error",
                {
                    "operation": "recover",
                    "records": 0,
                    "messages": 0,
                    "spooled": False,
                    "spool_path": None,
                    "exception": WALRecoveryError(report),
                },
            )
        in_flight: deque[int] = deque()
        for frame in frames:
            bodies = [frame.body]
            if len(frame.body) > self._body_limit:  # logged under a larger limit
                bodies = pack_lines(frame.body.splitlines(keepends=True), self._body_limit)
                self._parts[frame.frame_id] = [len(bodies), DELIVERED]
            for body in bodies:
                while in_flight and buffered() + len(body) > max_buffer_bytes:
                    await wait_through(in_flight.popleft())
                records = body.count(b"\n")
                stats.records_recovered += records
                self._resending = frame.frame_id
                try:
                    in_flight.append(enqueue(body, records))
                finally:
                    self._resending = None
        if in_flight:
            await wait_through(in_flight[-1])

    # -- the write path's hooks ------------------------------------------------------

    def closed_before(self, submit: Callable[[Message], None]) -> Callable[[Message], None]:
        """``submit`` (closed messages to delivery), noting each message's frame first."""

        def submit_logged(message: Message) -> None:
            self.closed(message)
            submit(message)

        return submit_logged

    def finished_after(
        self, release: Callable[[Sequence[Message], bool], None]
    ) -> Callable[[Sequence[Message], bool], None]:
        """``release`` (finished messages to the buffer), then logging their outcome."""

        def release_logged(messages: Sequence[Message], delivered: bool) -> None:
            release(messages, delivered)
            self.finished(messages, delivered)

        return release_logged

    def closed(self, message: Message) -> None:
        frame = self._resending
        self._frames[message.seq] = self.packer.last_sealed if frame is None else frame
        self._request_sync()

    def finished(self, messages: Sequence[Message], delivered: bool) -> None:
        failed: set[int] = set()
        if not delivered:
            failed = {id(m) for m in self._undelivered}
        outcomes: list[tuple[int, int]] = []
        for message in messages:
            frame = self._frames.pop(message.seq, None)
            if frame is None:
                continue
            outcome = DELIVERED if delivered else FAILED if id(message) in failed else SPOOLED
            parts = self._parts.get(frame)
            if parts is not None:
                parts[0] -= 1
                parts[1] = max(parts[1], outcome)
                if parts[0]:
                    continue
                del self._parts[frame]
                outcome = parts[1]
            outcomes.append((frame, outcome))
        self._wal.finish(outcomes)
        self.packer.unblock()

    # -- syncing ---------------------------------------------------------------------

    def _request_sync(self) -> None:
        self._requested += 1
        self._wakeup.set()

    async def run_syncer(self) -> None:
        """Sync the log after message closes and on request, coalescing requests."""
        while True:
            while self._completed >= self._requested:
                await self._wakeup.wait()
                self._wakeup = anyio.Event()
            target = self._requested
            fds = self._wal.sync_fds()
            try:
                await run_blocking(fdatasync_all, fds)
            except OSError as exc:
                self._sync_error = exc
                logger.error("could not sync the write-ahead log in %s: %s", self.directory, exc)
            self._completed = target
            self._synced.set()
            self._synced = anyio.Event()
            await self._prepare_spare()

    async def sync(self) -> None:
        """Return once every record accepted so far is on stable storage."""
        self._wal.mark_dirty()
        self._request_sync()
        target = self._requested
        while self._completed < target:
            await self._synced.wait()
        error, self._sync_error = self._sync_error, None
        if error is not None:
            raise WALError(f"could not sync the write-ahead log in {self.directory}: {error}")
