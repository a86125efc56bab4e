"""The engine behind :class:`SyncSDK`: one thread running an event loop and an
:class:`SDK`, fed through a hand-off batch that caller threads append to.

Writes cross threads in batches, not one by one: a caller copies its encoded
line into the batch's one buffer under ``lock`` (orjson's output is not kept:
each such object holds a 4 KiB buffer); the pump takes the whole batch at once
and hands its buffer to ``SDK.write_lines`` (no record is encoded twice). A caller pays a thread hop
only when the pump was idle. While the batch holds ``handoff_bytes``, callers
wait on ``room``: backpressure reaches them from the SDK's own bounded buffer
through the pump, and nothing is dropped.

With a write-ahead log (``durable``) a write must not return before its
record is in the log, so callers also wait until the pump has written their
batch (``Batch.done``): writers that arrive while the pump is busy share one
batch and one wake-up. A batch the SDK refused (a full log disk, say) carries
the error, and every caller whose records were not accepted raises it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence

import anyio
import anyio.abc

from .._engine.sdk import SDK, Stats
from ._threads import new_loop, spare_thread

__all__ = ["CLOSED", "CLOSING", "NEW", "OPEN", "Batch", "Engine", "Line"]

logger = logging.getLogger("panoply_async")

NEW, OPEN, CLOSING, CLOSED = "new", "open", "closing", "closed"


class _Flush:
    """A flush request travelling through the hand-off with the records."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: concurrent.futures.Future[None] = concurrent.futures.Future()


#: a record's line as ``(body, tail)``: ``body[:-1] + b"," + tail`` when ``tail``
#: is not empty (the fast path's split form), else ``body`` itself
Line = tuple[bytes | bytearray, bytes]


class Batch:
    """Lines handed over together, in one buffer; ``done`` once the pump wrote
    them. ``failed_at``: the number of the first record the SDK did not accept."""

    __slots__ = ("data", "done", "error", "failed_at", "flushes", "records")

    def __init__(self) -> None:
        self.data = bytearray()
        self.records = 0
        #: flushes in order: (bytes of lines before it, the flush)
        self.flushes: list[tuple[int, _Flush]] = []
        self.done = False
        self.failed_at = -1
        self.error: BaseException | None = None

    def add(self, body: bytes | bytearray, tail: bytes, records: int = 1) -> None:
        """Append a line (``records`` whole lines when ``tail`` is empty)."""
        data = self.data
        data += body
        if tail:
            data[-1] = 0x2C  # the body's closing brace becomes a comma
            data += tail
        self.records += records

    def fail(self, at: int, error: BaseException) -> None:
        if self.failed_at < 0 or at < self.failed_at:
            self.failed_at, self.error = at, error


class Engine:
    """One SDK on one event-loop thread; everything here is shared with callers
    under ``lock`` unless it says otherwise."""

    def __init__(
        self, make_sdk: Callable[[], SDK], sdk: SDK | None, handoff_bytes: int, durable: bool
    ) -> None:
        self._make_sdk = make_sdk
        self.sdk = sdk
        self.handoff_bytes = handoff_bytes
        self.durable = durable
        self.lock = threading.Lock()
        self.room = threading.Condition(self.lock)
        self.landed = threading.Condition(self.lock)
        self.state = NEW
        self.batch = Batch()
        self.pending_bytes = 0
        self.pump_idle = False
        self.rejected = 0
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._flushes: set[concurrent.futures.Future[None]] = set()
        # The pump's current batch, for stats and failures (engine thread only).
        self._taken: Batch | None = None
        self._taken_records = 0
        self._base = 0

    # -- caller side ---------------------------------------------------------------

    def start(self) -> None:
        """Start the engine thread and wait until the SDK is open; idempotent."""
        with self._start_lock:
            if self.state is OPEN:
                return
            if self.state is not NEW:
                raise RuntimeError(f"this SyncSDK is {self.state}; create a new one")
            sdk = self.sdk = self.sdk or self._make_sdk()
            started = threading.Event()
            # A daemon: the interpreter's exit must never wait on it; the exit
            # hooks (process_hooks) drain it instead. On the spare thread when
            # no new thread may start (a worker's first write after the main
            # thread ended, on Python 3.12).
            self.thread = spare_thread.start(
                lambda: self._run(sdk, started), "panoply-async-engine"
            )
            started.wait()  # the engine sets OPEN once the SDK is entered
            if self.state is not OPEN:
                error, self.error = self.error, None
                raise error or RuntimeError("the SyncSDK engine stopped while starting")

    def offer(self, body: bytes, tail: bytes, size: int) -> bool:
        """Take one encoded record (orjson's object ``body`` and its table ``tail``)
        if the engine runs and has room now; False means: call :meth:`put`."""
        with self.lock:
            if self.pending_bytes >= self.handoff_bytes or self.state is not OPEN:
                return False
            batch = self.batch
            buffer = batch.data
            buffer += body
            buffer[-1] = 0x2C  # as Batch.add(): the closing brace becomes a comma
            buffer += tail
            batch.records += 1
            self.pending_bytes += size
            if self.pump_idle:
                self.wake()
            return True

    def count_rejected(self) -> None:
        """A record the caller's thread refused (for ``stats.records_rejected``)."""
        with self.lock:
            self.rejected += 1

    def put(
        self,
        lines: Sequence[Line],
        size: int,
        flush: _Flush | None = None,
        records: int | None = None,
    ) -> None:
        """Hand ``lines`` (and then ``flush``) to the pump; with a log, return once
        the lines are in it, or raise what the log raised. ``records``: set when
        ``lines`` is one buffer of that many whole lines."""
        if self.state is not OPEN:
            self.start()
        with self.lock:
            while self.pending_bytes >= self.handoff_bytes and self.state is OPEN:
                if threading.current_thread() is self.thread:
                    raise RuntimeError("the buffer is full: a coroutine handler must not write")
                self.room.wait()
            if self.state is not OPEN:
                raise RuntimeError(f"write() called on a SyncSDK that is {self.state}")
            batch = self.batch
            first = batch.records
            if records is None:
                records = len(lines)
                for body, tail in lines:
                    batch.add(body, tail)
            else:
                for body, _ in lines:
                    batch.add(body, b"", records)
            if flush is not None:
                batch.flushes.append((len(batch.data), flush))
            self.pending_bytes += size
            if self.pump_idle:
                self.wake()
            if not self.durable or not records or threading.current_thread() is self.thread:
                return
            while not batch.done:
                self.landed.wait()
        if 0 <= batch.failed_at < first + records:
            assert batch.error is not None
            raise batch.error

    def wake(self) -> None:
        """Wake the pump; called with ``lock`` held."""
        self.pump_idle = False
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None:
            # RuntimeError: the engine failed and its loop closed; nothing to wake.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wakeup.set)

    def flush(self, timeout: float | None) -> None:
        if self.thread is not None and threading.current_thread() is self.thread:
            raise RuntimeError("flush() cannot be called from a coroutine event handler")
        if self.state is NEW or self.state is CLOSED:
            return
        if self.state is CLOSING:  # close() drains everything: wait for it
            thread = self.thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout)
                if thread.is_alive():
                    raise TimeoutError(
                        f"flush() did not finish within {timeout}s; close() is still draining"
                    )
            return
        marker = _Flush()
        self.put((), 0, marker)
        try:
            marker.future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"flush() did not finish within {timeout}s") from None

    def close(self, timeout: float | None) -> None:
        thread = self.thread
        if thread is not None and threading.current_thread() is thread:
            raise RuntimeError("close() cannot be called from a coroutine event handler")
        # An engine still starting is let finish starting, then drained like any other.
        if not self._start_lock.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError(f"close() did not finish within {timeout}s; still starting")
        try:
            with self.lock:
                if self.state is NEW or self.state is CLOSED:
                    self.state = CLOSED
                    self.room.notify_all()
                    error, self.error = self.error, None
                    if error is not None:  # the engine failed on its own earlier
                        raise error
                    return
                self.state = CLOSING
                self.wake()
                self.room.notify_all()
        finally:
            self._start_lock.release()
        thread = self.thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError(f"close() did not finish within {timeout}s; still draining")
        error, self.error = self.error, None
        if error is not None:
            raise error

    def stats(self) -> Stats:
        loop, thread = self._loop, self.thread
        if loop is None or thread is None or threading.current_thread() is thread:
            return self._snapshot()
        future: concurrent.futures.Future[Stats] = concurrent.futures.Future()

        def take() -> None:
            future.set_result(self._snapshot())

        try:  # on the loop, so that the SDK's counters are read between two steps
            loop.call_soon_threadsafe(take)
        except RuntimeError:  # the loop closed meanwhile: nothing runs there any more
            return self._snapshot()
        return future.result()

    def _snapshot(self) -> Stats:
        stats = Stats()
        if self.sdk is not None:
            for name, value in self.sdk.stats.as_dict().items():
                setattr(stats, name, value)
        with self.lock:
            # Records on their way to the SDK count as accepted and pending.
            waiting = self.batch.records
            if self._taken is not None:
                waiting += self._taken_records - (stats.records_accepted - self._base)
            stats.records_rejected += self.rejected
        stats.records_accepted += waiting
        stats.records_pending += waiting
        return stats

    # -- the engine thread ---------------------------------------------------------

    def _run(self, sdk: SDK, started: threading.Event) -> None:
        loop, executor = new_loop()
        try:
            loop.run_until_complete(self._main(sdk, started))
        except BaseException as exc:
            self.error = exc
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                # Not loop.shutdown_default_executor(): it starts a thread, which
                # Python 3.12 refuses during interpreter exit.
                executor.shutdown(wait=False)
                loop.close()
            self._stopped()
            started.set()

    def _stopped(self) -> None:
        """The loop ended: fail what never reached the SDK, answer waiting flushes."""
        error = self.error or RuntimeError("the SyncSDK engine stopped")
        with self.lock:
            self.state = CLOSED
            self._loop = None
            lost = self.batch.records
            for batch in (self._taken, self.batch):
                if batch is not None and not batch.done:
                    batch.fail(0, error)
                    batch.done = True
            self.room.notify_all()
            self.landed.notify_all()
            flushes, self._flushes = self._flushes, set()
        for future in flushes:
            future.set_result(None)
        if lost:  # only after an engine failure: a clean close drains the batch
            logger.error("%d records written to a failed SyncSDK engine were lost", lost)

    async def _main(self, sdk: SDK, started: threading.Event) -> None:
        self._wakeup = asyncio.Event()
        async with sdk as conn:
            with self.lock:
                self._loop = asyncio.get_running_loop()
                if self.state is NEW:
                    self.state = OPEN
            started.set()
            async with anyio.create_task_group() as task_group:
                await self._pump(conn, task_group)
                # Flushes still waiting are answered once the SDK drained (_run).
                task_group.cancel_scope.cancel()

    async def _pump(self, conn: SDK, task_group: anyio.abc.TaskGroup) -> None:
        wakeup = self._wakeup
        assert wakeup is not None
        while True:
            with self.lock:
                batch = self.batch
                taken = bool(batch.data or batch.flushes)  # writers may add to it below
                if taken:
                    self.batch = Batch()
                    self._taken, self._taken_records = batch, batch.records
                    self._base = conn.stats.records_accepted
                    # Writers may refill the hand-off while this batch goes in: at
                    # most twice handoff_bytes wait outside the SDK's buffer.
                    self.pending_bytes = 0
                    self.room.notify_all()
                elif self.state is not OPEN:
                    return
                else:
                    self.pump_idle = True
            if not taken:
                await wakeup.wait()
                wakeup.clear()
                continue
            try:
                await self._write_batch(conn, task_group, batch)
            finally:
                with self.lock:
                    batch.done = True
                    self._taken = None
                    self.landed.notify_all()

    async def _write_batch(
        self, conn: SDK, task_group: anyio.abc.TaskGroup, batch: Batch
    ) -> None:
        # The order of writes is kept: a flush goes after what came before it.
        data, pos = batch.data, 0
        for offset, flush in batch.flushes:
            if offset > pos and batch.failed_at < 0:
                part = bytes(data[pos:offset])
                await self._write_lines(conn, batch, part, part.count(b"\n"))
            pos = offset
            if batch.failed_at >= 0:  # what it waits for was refused
                flush.future.set_exception(batch.error or RuntimeError("write failed"))
                continue
            self._flushes.add(flush.future)
            task_group.start_soon(self._flush, conn, flush.future)
        if len(data) > pos and batch.failed_at < 0:
            if pos == 0:  # the common case: no flush in the batch, no pass over it
                await self._write_lines(conn, batch, data, batch.records)
            else:
                part = bytes(data[pos:])
                await self._write_lines(conn, batch, part, part.count(b"\n"))

    async def _write_lines(
        self, conn: SDK, batch: Batch, lines: bytes | bytearray, count: int
    ) -> None:
        try:
            await conn.write_lines(lines, count)
        except Exception as exc:
            if not self.durable:
                raise  # the writers are gone: the engine fails and says what was lost
            # The writers wait: those whose records were not accepted raise this.
            batch.fail(conn.stats.records_accepted - self._base, exc)

    async def _flush(self, conn: SDK, future: concurrent.futures.Future[None]) -> None:
        try:
            await conn.flush()
        except Exception as exc:
            self._flushes.discard(future)
            future.set_exception(exc)
        else:
            self._flushes.discard(future)
            future.set_result(None)
