"""The engine behind :class:`SyncSDK`: one thread running an event loop and an
:class:`SDK`, fed through a hand-off list that caller threads append to.

Writes cross threads in batches, not one by one: a caller appends an encoded
record under ``lock`` and returns; the pump takes the whole list at once and
feeds it to ``SDK.write_many``. A caller pays a thread hop only when the pump
was idle. While the list holds ``handoff_bytes``, callers wait on ``room``:
backpressure reaches them from the SDK's own bounded buffer through the pump,
and nothing is dropped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import anyio.abc
from orjson import loads as _loads

from .._engine.sdk import SDK, Stats
from ..errors import RecordError
from ._support import new_loop

__all__ = ["CLOSED", "CLOSING", "NEW", "OPEN", "Engine"]

logger = logging.getLogger("panoply_async")

NEW, OPEN, CLOSING, CLOSED = "new", "open", "closing", "closed"
# Records decoded and handed to write_many() at a time: short-lived dicts keep
# the garbage collector's work and the memory touched small.
_RUN_RECORDS = 256


class _Flush:
    """A flush request travelling through the hand-off list with the records."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: concurrent.futures.Future[None] = concurrent.futures.Future()


class Engine:
    """One SDK on one event-loop thread; everything here is shared with callers
    under ``lock`` unless it says otherwise."""

    def __init__(self, make_sdk: Callable[[], SDK], sdk: SDK | None, handoff_bytes: int) -> None:
        self._make_sdk = make_sdk
        self.sdk = sdk
        self.handoff_bytes = handoff_bytes
        self.lock = threading.Lock()
        self.room = threading.Condition(self.lock)
        self.state = NEW
        self.pending: list[tuple[str | None, Any]] = []
        self.pending_records = 0
        self.pending_bytes = 0
        self.pump_idle = False
        self.rejected = 0
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._flushes: set[concurrent.futures.Future[None]] = set()
        # The pump's current batch, for stats (engine thread only).
        self._taken = 0
        self._base = 0

    # -- caller side ---------------------------------------------------------------

    def start(self) -> None:
        with self._start_lock:
            if self.state is OPEN:
                return
            if self.state is not NEW:
                raise RuntimeError(f"this SyncSDK is {self.state}; create a new one")
            sdk = self.sdk = self.sdk or self._make_sdk()
            started = threading.Event()
            # A daemon: the interpreter's exit must never wait on it; the exit
            # hooks (process_hooks) drain it instead.
            thread = threading.Thread(
                target=self._run, args=(sdk, started), name="panoply-async-engine", daemon=True
            )
            self.thread = thread
            thread.start()
            started.wait()  # the engine sets OPEN once the SDK is entered
            if self.state is not OPEN:
                error, self.error = self.error, None
                raise error or RuntimeError("the SyncSDK engine stopped while starting")

    def put(self, items: Sequence[tuple[str | None, Any]], records: int, size: int) -> None:
        if self.state is not OPEN:
            self.start()
        with self.lock:
            while self.pending_bytes >= self.handoff_bytes and self.state is OPEN:
                if threading.current_thread() is self.thread:
                    raise RuntimeError("the buffer is full: a coroutine handler must not write")
                self.room.wait()
            if self.state is not OPEN:
                raise RuntimeError(f"write() called on a SyncSDK that is {self.state}")
            self.pending.extend(items)
            self.pending_records += records
            self.pending_bytes += size
            if self.pump_idle:
                self.wake()

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
            return
        marker = _Flush()
        self.put(((None, marker),), 0, 0)
        try:
            marker.future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"flush() did not finish within {timeout}s") from None

    def close(self, timeout: float | None) -> None:
        thread = self.thread
        if thread is not None and threading.current_thread() is thread:
            raise RuntimeError("close() cannot be called from a coroutine event handler")
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
            waiting = self.pending_records
            if self._taken:
                waiting += self._taken - (stats.records_accepted - self._base)
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
            with self.lock:
                self.state = CLOSED
                self._loop = None
                lost, self.pending = self.pending_records, []
                self.room.notify_all()
                flushes, self._flushes = self._flushes, set()
            for future in flushes:
                future.set_result(None)
            if lost:  # only after an engine failure: a clean close drains the list
                logger.error("%d records written to a failed SyncSDK engine were lost", lost)
            started.set()

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
                batch, self.pending = self.pending, []
                self._taken, self.pending_records = self.pending_records, 0
                self._base = conn.stats.records_accepted
                if batch:
                    # Writers may refill the list while this batch goes in: at
                    # most twice handoff_bytes wait outside the SDK's buffer.
                    self.pending_bytes = 0
                    self.room.notify_all()
                elif self.state is not OPEN:
                    return
                else:
                    self.pump_idle = True
            if not batch:
                await wakeup.wait()
                wakeup.clear()
                continue
            await self._write_batch(conn, task_group, batch)
            self._taken = 0

    async def _write_batch(
        self, conn: SDK, task_group: anyio.abc.TaskGroup, batch: list[tuple[str | None, Any]]
    ) -> None:
        # Runs of one table go in one write_many(); the order of writes is kept.
        run: list[Any] = []
        run_table: str | None = None
        for table, payload in batch:
            if table != run_table:
                if run:
                    await self._write_run(conn, run_table, run)
                    run = []
                run_table = table
            if table is None:  # a flush: what came before it went first
                self._flushes.add(payload.future)
                task_group.start_soon(self._flush, conn, payload.future)
                continue
            run.append(_loads(payload) if type(payload) is bytes else payload)
            if len(run) == _RUN_RECORDS:
                await self._write_run(conn, run_table, run)
                run = []
        if run:
            await self._write_run(conn, run_table, run)

    async def _write_run(self, conn: SDK, table: Any, records: list[Any]) -> None:
        try:
            await conn.write_many(table, records)
        except RecordError:
            # Unreachable while the callers' checks match the SDK's; never lose
            # the batch for it.
            for record in records:
                try:
                    await conn.write(table, record)
                except RecordError as exc:
                    logger.error("record refused after write() returned: %s", exc)

    async def _flush(self, conn: SDK, future: concurrent.futures.Future[None]) -> None:
        try:
            await conn.flush()
        except Exception as exc:
            self._flushes.discard(future)
            future.set_exception(exc)
        else:
            self._flushes.discard(future)
            future.set_result(None)
