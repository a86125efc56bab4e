"""The write-ahead log inside an SDK: its slot, recovery, syncing, and the write path's hooks.

The records reach the log through :class:`WalPacker`, which the write buffer
uses as its open message, so the log needs no per-record hook (the SDK does
not install it as the buffer's ``journal``, whose per-line call would cost a
call per record). The SDK wraps the buffer's ``submit`` and delivery's
``on_finished`` instead: ``closed`` maps the message's seq to its frame and
asks for a sync, ``finished`` logs acknowledgements (or leaves the frame for
the next start when a message was neither delivered nor spooled). A syncer task coalesces
sync requests into ``fdatasync`` calls in a worker thread (group commit).

The SDK's log is one slot of a ``wal_dir`` a service's processes may share
(``_durable/wal/slots.py``). Entering claims a free slot and reads what its
previous owner left; resending that, and adopting the slots of dead owners,
runs in the background (``recovery.py``) while new writes go on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

from .._durable.wal.lock import forget_in_child
from .._durable.wal.log import (
    DELIVERED,
    FAILED,
    SPOOLED,
    WriteAheadLog,
    fdatasync_all,
    queue_digest,
)
from .._durable.wal.packer import WalPacker
from .._durable.wal.slots import claim_slot
from .._durable.wal.states import StateLog, read_states
from ..errors import WALError, WALRecoveryError
from .blocking import run_blocking
from .recovery import Recovery, RecoveryHooks, Unit
from .transport import Message

__all__ = ["RecoveryHooks", "WALRecoveryError", "WalJournal"]

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
    """One SDK's write-ahead log: its slot, recovery, frames of its messages, syncs."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        queue_name: str,
        body_limit: int,
        max_wal_bytes: int,
    ) -> None:
        self._root = Path(directory)
        digest = queue_digest(queue_name)
        segment_bytes = segment_bytes_for(max_wal_bytes, body_limit)

        def make(path: Path) -> WriteAheadLog:
            return WriteAheadLog(
                path, digest, frame_limit=body_limit, segment_bytes=segment_bytes,
                max_bytes=max_wal_bytes,
            )

        self._wal = make(self._root)
        self._states = StateLog(self._root)
        self._body_limit = body_limit
        self.packer: WalPacker = self._wal.packer(body_limit)
        #: the slot claimed on entry (-1 before)
        self.slot = -1
        #: message seq -> its log and frame id, for messages not finished yet
        self._frames: dict[int, tuple[WriteAheadLog, int]] = {}
        #: recovered frames split into several messages: parts left, worst outcome
        self._parts: dict[tuple[WriteAheadLog, int], list[int]] = {}
        self._undelivered: list[Message] = []
        self.recovery = Recovery(self._root, make, body_limit)
        self._requested = self._completed = 0
        self._sync_error: OSError | None = None
        #: the recovered frame being enqueued, while recovery enqueues it
        self._resending: tuple[WriteAheadLog, int] | None = None
        self._open = False
        self._clear_states = True
        #: the buffer's ``release``: called with no messages, it wakes waiting writers
        self._release: Callable[[Sequence[Message], bool], None] | None = None

    @property
    def directory(self) -> str:
        """The slot this SDK writes."""
        return str(self._wal.directory)

    @property
    def report(self) -> Any:
        """What recovery found in this SDK's own slot."""
        return self.recovery.own_report

    # -- lifetime --------------------------------------------------------------------

    async def open(self, undelivered: list[Message]) -> None:
        """Claim a slot and read what its previous owner left (worker thread)."""
        self._undelivered = undelivered
        self.recovery.begin()
        self._wakeup = anyio.Event()
        self._synced = anyio.Event()
        self._wal.spare.on_wanted = self._wake_syncer
        try:
            # Inside the try: a cancellation that lands while the thread takes the
            # lock must still release it.
            try:
                await run_blocking(self._claim)
            except OSError as exc:
                raise WALError(f"cannot use wal_dir {self.directory}: {exc.strerror}") from exc
            await self._prepare_spare()
        except BaseException:
            try:
                self._wal.close()
            except OSError as exc:
                logger.error("could not close the write-ahead log in %s: %s", self.directory, exc)
            self._states.close()
            raise
        self._open = True

    def _claim(self) -> None:
        self.slot = claim_slot(self._wal, self._root)
        self._states = StateLog(self._wal.directory)
        forget_in_child(self._states)
        frames, report = self._wal.recover()
        # States another queue's process logged here are not ours to empty.
        self._clear_states = not report.other_queue_segments
        states, spooled = read_states(self._states.read())
        # Frame ids logged as watermarks stay meaningful: new frames number above them.
        self._wal.number_frames_above(max((s.watermark for s in states), default=0))
        self.recovery.add(Unit(self._wal, frames, report, states, spooled, own=True))

    async def _prepare_spare(self) -> None:
        """Create the next segment in a worker thread, so that rotating to it does
        not stop the event loop (creating and zeroing a file takes milliseconds)."""
        segno = self._wal.reserve_spare()
        if segno is None:
            return
        segment = error = None
        try:
            # Shielded: a cancellation must not drop a segment the thread created.
            with anyio.CancelScope(shield=True):
                segment = await run_blocking(self._wal.create_segment, segno)
        except OSError as exc:
            error = exc
            logger.error("could not prepare a write-ahead log segment: %s", exc)
        finally:
            # A failure too is news for a waiting writer: its write raises it.
            self._wal.add_spare(segment, error)
            if self.packer.unblock() and self._release is not None:
                self._release((), True)

    async def aclose(self) -> None:
        """Sync what stays on disk, delete what is finished, release the locks."""
        if not self._open:
            return
        self._open = False
        self._states.close()
        forget_in_child(self._states, registered=False)
        unlogged, error = 0, None
        for wal in [self._wal, *self.recovery.adopted()]:
            try:
                await run_blocking(wal.close)
            except OSError as exc:
                logger.error("could not sync the write-ahead log in %s: %s", wal.directory, exc)
            if wal.ack_error is not None:
                unlogged, error = unlogged + wal.acks_unlogged, wal.ack_error
        if error is None:
            return
        message = (
            f"could not log {unlogged} acknowledgements in wal_dir {self.directory} "
            f"({error.strerror}): those messages were delivered or spooled, and may be "
            "sent again on the next start"
        )
        if self._undelivered:  # the DeliveryError raised next says more
            logger.error("%s", message)
        else:
            raise WALError(message) from error

    # -- recovery --------------------------------------------------------------------

    def start_recovery(self, task_group: anyio.abc.TaskGroup, hooks: RecoveryHooks) -> None:
        """Start the syncer, and the recovery: this slot's leftovers, then dead
        owners' slots, resent while the SDK accepts new writes."""
        task_group.start_soon(self.run_syncer)
        task_group.start_soon(self.recovery.run, hooks, self._enqueue_recovered)

    def _enqueue_recovered(
        self, wal: WriteAheadLog, frame_id: int, enqueue: Callable[[], int], parts: int
    ) -> int:
        if parts > 1:
            self._parts[(wal, frame_id)] = [parts, DELIVERED]
        self._resending = (wal, frame_id)
        try:
            return enqueue()
        finally:
            self._resending = None

    def log_state(self, key: str, state_id: Any, state: Any) -> None:
        """Log a state reported now, after the records written so far (``states.py``)."""
        self._states.log_state(key, state_id, state, self._wal.last_frame)

    async def recovered_state(self, key: str) -> tuple[Any, Any] | None:
        """Once recovery is over: the last state logged under ``key`` whose records
        recovery delivered (None if there is none)."""
        await self.recovery.done.wait()
        return self.recovery.states.get(key)

    async def finish_recovery(self, deadline: float) -> None:
        """Leaving the block: let recovery finish until ``deadline`` (anyio time), then
        stop it; what it did not resend stays on disk for the next start."""
        with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
            await self.recovery.done.wait()
        self.recovery.stop()

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

        self._release = release
        return release_logged

    def closed(self, message: Message) -> None:
        frame = self._resending
        self._frames[message.seq] = (self._wal, self.packer.last_sealed) if frame is None else frame
        self._request_sync()

    def finished(self, messages: Sequence[Message], delivered: bool) -> None:
        failed: set[int] = set()
        if not delivered:
            failed = {id(m) for m in self._undelivered}
        outcomes: dict[WriteAheadLog, list[tuple[int, int]]] = {}
        for message in messages:
            entry = self._frames.pop(message.seq, None)
            if entry is None:
                continue
            outcome = DELIVERED if delivered else FAILED if id(message) in failed else SPOOLED
            parts = self._parts.get(entry)
            if parts is not None:
                parts[0] -= 1
                parts[1] = max(parts[1], outcome)
                if parts[0]:
                    continue
                del self._parts[entry]
                outcome = parts[1]
            outcomes.setdefault(entry[0], []).append((entry[1], outcome))
        for wal, finished in outcomes.items():
            self.recovery.note(wal, finished)
            if wal is self._wal:
                # Before the acknowledgements: a crash between the two only resends.
                self._states.log_spooled([f for f, outcome in finished if outcome == SPOOLED])
            wal.finish(finished)
        if self._clear_states and self._wal.idle:
            self._states.clear()
        self.packer.unblock()

    # -- syncing ---------------------------------------------------------------------

    def _request_sync(self) -> None:
        self._requested += 1
        self._wakeup.set()

    def _wake_syncer(self) -> None:
        self._wakeup.set()

    async def run_syncer(self) -> None:
        """Sync the log after message closes and on request, coalescing requests."""
        wal = self._wal
        while True:
            while self._completed >= self._requested and not wal.spare.wanted:
                await self._wakeup.wait()
                self._wakeup = anyio.Event()
            if self._completed < self._requested:
                await self._sync_once()
            await self._prepare_spare()

    async def _sync_once(self) -> None:
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
