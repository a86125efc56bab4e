"""SyncSDK: the async :class:`SDK` for synchronous callers, on one event-loop thread it owns.

Writes cross threads in batches, not one by one: ``write()`` encodes and
validates in the caller's thread (so a bad record raises there, and later
changes to the caller's dict cannot change what is sent), appends the encoded
record to a hand-off list under a lock and returns. The engine thread's pump
takes the whole list at once and feeds it to ``SDK.write_many``. A caller pays
a thread hop only when the pump was idle; while the hand-off list holds
``_HANDOFF_BYTES``, callers wait (backpressure reaches them from the SDK's own
bounded buffer through the pump), they never drop.

Lifetimes: the engine starts on first use; ``close()``, leaving the ``with``
block, or interpreter exit drains it. After ``os.fork()`` the child forgets the
parent's engine (without touching it: its sockets and buffers belong to the
parent) and starts a fresh one on first use.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import threading
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import anyio
from orjson import loads as _loads

from ._credentials import parse_credentials
from ._encoding import TABLE_KEY, Encoder
from ._events import Handler
from ._exceptions import RecordError
from ._packing import attributes_size
from ._sdk import SDK, SDK_NAME, Stats
from ._sync_support import (
    EventThread,
    caller_body,
    exact_copy,
    new_loop,
    pin_forever,
    process_hooks,
)

__all__ = ["SyncSDK"]

logger = logging.getLogger("panoply_async")

_NEW, _OPEN, _CLOSING, _CLOSED = "new", "open", "closing", "closed"
# Bytes waiting in the hand-off list before writers block: enough for the pump
# to move large batches, small next to the SDK's own buffer.
_HANDOFF_BYTES = 1024 * 1024

class _Flush:
    """A flush request travelling through the hand-off list with the records."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: concurrent.futures.Future[None] = concurrent.futures.Future()


class SyncSDK:
    """The :class:`SDK` for synchronous code: ``with SyncSDK(key, secret) as conn:
    conn.write(table, record)``.

    Keyword options are those of :class:`SDK`, passed on unchanged and
    validated here. ``write()`` and ``write_many()`` may be called from any
    number of threads; they raise a bad record's :class:`RecordError` in the
    caller's thread and block (never drop) while the buffer is full. Handlers
    given to :meth:`on` run on a background thread of this object, in order,
    never on the caller's thread; a slow or raising one does not hold up
    delivery. Everything accepted is delivered (or spooled) by :meth:`close`,
    by leaving the ``with`` block, or at interpreter exit.
    """

    def __init__(self, apikey: str | bytes, apisecret: str | bytes, **options: Any) -> None:
        self._apikey = apikey
        self._apisecret = apisecret
        self._options = options
        self._handlers: list[tuple[str, Handler]] = []
        self._sdk: SDK | None = self._new_sdk()  # raises on bad credentials or options
        credentials = parse_credentials(apikey, apisecret)
        attributes = {"key": credentials.apikey, "secret": credentials.apisecret, "sdk": SDK_NAME}
        self._shutdown_timeout = self._sdk.config.shutdown_timeout
        self._encoder = Encoder(self._sdk.config.max_message_bytes - attributes_size(attributes))
        self._tails = self._encoder.tails
        self._line_limit = self._encoder.max_line_bytes
        self._account = self._sdk.account
        self._queue_url = self._sdk.queue_url
        self._state = _NEW
        self._engine_error: BaseException | None = None
        self._start_lock = threading.Lock()
        self._reset_engine_state()
        process_hooks.track(self)

    def _new_sdk(self) -> SDK:
        # Looked up on the package, so that a subclass installed there (the docs
        # examples' test harness points it at a local server) is what runs.
        from . import SDK as sdk_class

        sdk = sdk_class(self._apikey, self._apisecret, **self._options)
        for name, handler in self._handlers:
            sdk.on(name, handler)
        return sdk

    def _reset_engine_state(self) -> None:
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._pending: list[tuple[str | None, Any]] = []
        self._pending_records = 0  # records in ``_pending``
        self._pending_bytes = 0  # their encoded size
        self._pump_idle = False
        self._rejected = 0
        self._pump_taken = 0
        self._pump_base = 0
        self._flushes: set[concurrent.futures.Future[None]] = set()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._events = EventThread()

    # -- public surface -------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"SyncSDK(account={self._account!r}, queue_url={self._queue_url!r}, "
            f"state={self._state!r})"
        )

    @property
    def account(self) -> str:
        return self._account

    @property
    def queue_url(self) -> str:
        return self._queue_url

    def __enter__(self) -> SyncSDK:
        self._start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def on(self, name: str, handler: Handler) -> SyncSDK:
        """Register ``handler`` for event ``name`` (as :meth:`SDK.on`); returns ``self``.

        Plain functions run on this object's event thread, one at a time, in
        the order the events happened; coroutine functions run on the engine's
        event loop, as with :class:`SDK`.
        """
        if inspect.iscoroutinefunction(handler) or not callable(handler):
            wrapped: Handler = handler
        else:
            wrapped = self._plain_handler(handler)
            if self._thread is not None:
                self._events.start()
        sdk = self._sdk
        if sdk is None:  # forked, not yet restarted: validate on a throwaway instance
            sdk = self._new_sdk()
        sdk.on(name, wrapped)
        self._handlers.append((name, wrapped))
        return self

    def _plain_handler(self, handler: Handler) -> Handler:
        def enqueue(*args: Any) -> None:
            # self._events, not a captured one: a forked child gets a new thread.
            self._events.submit(handler, args)

        return enqueue

    def write(self, table: str, data: Mapping[str, Any]) -> None:
        """Accept one record for ``table``; see :meth:`SDK.write` for the encoding rules.

        Blocks while the buffer is full; raises :class:`RecordError` here for a
        record that cannot be sent (nothing of it is buffered).
        """
        tail = self._tails.get(table) if type(table) is str else None
        if tail is not None and type(data) is dict and TABLE_KEY not in data:
            body = caller_body(data)
            if body is not None:
                size = len(body) + len(tail)
                # The common case, inlined: room in the hand-off list, engine running.
                if size <= self._line_limit:
                    with self._lock:
                        if self._pending_bytes < _HANDOFF_BYTES and self._state is _OPEN:
                            self._pending.append((table, body))
                            self._pending_records += 1
                            self._pending_bytes += size
                            if self._pump_idle:
                                self._wake()
                            return
                    self._put(((table, body),), 1, size)
                    return
        line = self._encode(table, data)
        self._put(((table, exact_copy(line)),), 1, len(line))

    def write_many(self, table: str, records: Sequence[Mapping[str, Any]]) -> int:
        """Accept several records for ``table``; returns how many were accepted.

        Every record is encoded first: if one is bad, it raises and none is accepted.
        """
        items: list[tuple[str | None, Any]] = []
        size = 0
        for data in records:
            tail = self._tails.get(table) if type(table) is str else None
            if tail is not None and type(data) is dict and TABLE_KEY not in data:
                body = caller_body(data)
                if body is not None and len(body) + len(tail) <= self._line_limit:
                    items.append((table, body))
                    size += len(body) + len(tail)
                    continue
            line = self._encode(table, data)
            items.append((table, exact_copy(line)))
            size += len(line)
        if items:
            self._put(items, len(items), size)
        return len(items)

    def flush(self, timeout: float | None = None) -> None:
        """Send everything written so far; return once SQS acknowledged it (or it
        finally failed: then the ``error`` event fired and it was spooled).

        Raises ``TimeoutError`` after ``timeout`` seconds; delivery goes on.
        """
        if self._state is _NEW or self._state is _CLOSED:
            return
        if self._state is _CLOSING:  # close() drains everything: wait for it
            thread = self._thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout)
            return
        marker = _Flush()
        self._put(((None, marker),), 0, 0)
        try:
            marker.future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"flush() did not finish within {timeout}s") from None

    @property
    def stats(self) -> Stats:
        """A snapshot of the delivery counters; records still on their way to the
        engine count as accepted and pending."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or threading.current_thread() is thread:
            return self._snapshot()
        future: concurrent.futures.Future[Stats] = concurrent.futures.Future()

        def take() -> None:
            future.set_result(self._snapshot())

        try:
            loop.call_soon_threadsafe(take)
        except RuntimeError:  # the loop closed meanwhile: nothing runs there any more
            return self._snapshot()
        return future.result()

    def close(self, timeout: float | None = None) -> None:
        """Deliver (or spool) everything accepted and stop the engine.

        The SDK's ``shutdown_timeout`` bounds the drain; ``timeout`` bounds how
        long this call waits (``TimeoutError``; the drain goes on in the
        background). Raises :class:`DeliveryError` as the SDK does when records
        were neither delivered nor spooled. Calling it again does nothing.
        """
        thread = self._thread
        if thread is not None and threading.current_thread() is thread:
            raise RuntimeError("close() cannot be called from a coroutine event handler")
        with self._lock:
            if self._state is _NEW or self._state is _CLOSED:
                self._state = _CLOSED
                self._room.notify_all()
                error, self._engine_error = self._engine_error, None
                if error is not None:  # the engine failed on its own earlier
                    raise error
                return
            self._state = _CLOSING
            self._wake()
            self._room.notify_all()
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError(f"close() did not finish within {timeout}s; still draining")
        self._events.stop(self._shutdown_timeout if timeout is None else timeout)
        error, self._engine_error = self._engine_error, None
        if error is not None:
            raise error

    # -- writing -------------------------------------------------------------------

    def _encode(self, table: str, data: Mapping[str, Any]) -> bytes:
        try:
            return self._encoder.encode(table, data)
        except RecordError:
            with self._lock:
                self._rejected += 1
            raise

    def _put(self, items: Sequence[tuple[str | None, Any]], records: int, size: int) -> None:
        if self._state is not _OPEN:
            self._start()
        with self._lock:
            while self._pending_bytes >= _HANDOFF_BYTES and self._state is _OPEN:
                if threading.current_thread() is self._thread:
                    raise RuntimeError("the buffer is full: a coroutine handler must not write")
                self._room.wait()
            if self._state is not _OPEN:
                raise RuntimeError(f"write() called on a SyncSDK that is {self._state}")
            self._pending.extend(items)
            self._pending_records += records
            self._pending_bytes += size
            if self._pump_idle:
                self._wake()

    def _wake(self) -> None:
        """Wake the pump; called with the lock held."""
        self._pump_idle = False
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None:
            # RuntimeError: the engine failed and its loop closed; nothing to wake.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wakeup.set)

    # -- the engine thread ---------------------------------------------------------

    def _start(self) -> None:
        with self._start_lock:
            if self._state is _OPEN:
                return
            if self._state is not _NEW:
                raise RuntimeError(f"this SyncSDK is {self._state}; create a new one")
            sdk = self._sdk = self._sdk or self._new_sdk()
            if any(not inspect.iscoroutinefunction(h) for _, h in self._handlers):
                self._events.start()
            started = threading.Event()
            # A daemon: the interpreter's exit must never wait on it; the exit
            # hooks (process_hooks) drain it instead.
            thread = threading.Thread(
                target=self._run, args=(sdk, started), name="panoply-async-engine", daemon=True
            )
            self._thread = thread
            thread.start()
            started.wait()  # the engine sets _OPEN once the SDK is entered
            if self._state is not _OPEN:
                error, self._engine_error = self._engine_error, None
                raise error or RuntimeError("the SyncSDK engine stopped while starting")

    def _run(self, sdk: SDK, started: threading.Event) -> None:
        loop, executor = new_loop()
        try:
            loop.run_until_complete(self._main(sdk, started))
        except BaseException as exc:
            self._engine_error = exc
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                # Not loop.shutdown_default_executor(): it starts a thread, which
                # Python 3.12 refuses during interpreter exit.
                executor.shutdown(wait=False)
                loop.close()
            with self._lock:
                self._state = _CLOSED
                self._loop = None
                lost, self._pending = self._pending_records, []
                self._room.notify_all()
                flushes, self._flushes = self._flushes, set()
            for future in flushes:
                future.set_result(None)
            if lost:  # only after an engine failure: a clean close drains the list
                logger.error("%d records written to a failed SyncSDK engine were lost", lost)
            started.set()

    async def _main(self, sdk: SDK, started: threading.Event) -> None:
        self._wakeup = asyncio.Event()
        async with sdk as conn:
            with self._lock:
                self._loop = asyncio.get_running_loop()
                if self._state is _NEW:
                    self._state = _OPEN
            started.set()
            async with anyio.create_task_group() as task_group:
                await self._pump(conn, task_group)
                # Flushes still waiting are answered once the SDK drained, below.
                task_group.cancel_scope.cancel()

    async def _pump(self, conn: SDK, task_group: anyio.abc.TaskGroup) -> None:
        wakeup = self._wakeup
        assert wakeup is not None
        while True:
            with self._lock:
                batch, self._pending = self._pending, []
                self._pump_taken, self._pending_records = self._pending_records, 0
                self._pump_base = conn.stats.records_accepted
                if batch:
                    # Writers may refill the list while this batch goes in: at
                    # most twice _HANDOFF_BYTES wait outside the SDK's buffer.
                    self._pending_bytes = 0
                    self._room.notify_all()
                elif self._state is not _OPEN:
                    return
                else:
                    self._pump_idle = True
            if not batch:
                await wakeup.wait()
                wakeup.clear()
                continue
            await self._write_batch(conn, task_group, batch)
            self._pump_taken = 0

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
            else:
                run.append(_loads(payload) if type(payload) is bytes else payload)
        if run:
            await self._write_run(conn, run_table, run)

    async def _write_run(self, conn: SDK, table: Any, records: list[Any]) -> None:
        try:
            await conn.write_many(table, records)
        except RecordError:
            # Unreachable while our checks match the SDK's; never lose the batch for it.
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

    def _snapshot(self) -> Stats:
        sdk = self._sdk
        stats = Stats()
        if sdk is not None:
            for name, value in sdk.stats.as_dict().items():
                setattr(stats, name, value)
        with self._lock:
            waiting = self._pending_records
            if self._pump_taken:
                waiting += self._pump_taken - (stats.records_accepted - self._pump_base)
            stats.records_rejected += self._rejected
        stats.records_accepted += waiting
        stats.records_pending += waiting
        return stats

    # -- process lifetime ----------------------------------------------------------

    def _forget_engine_after_fork(self) -> None:
        """In a forked child: drop the parent's engine without touching it."""
        pin_forever((self._sdk, self._loop, self._thread, self._pending, self._events))
        was = self._state
        self._reset_engine_state()
        self._engine_error = None
        if was is _OPEN or was is _NEW:
            self._state = _NEW
            self._sdk = None
        else:
            self._state = _CLOSED

    def _drain_at_exit(self, *, close: bool) -> None:
        """``flush()`` when the main thread ends, ``close()`` at interpreter exit."""
        try:
            if close:
                self.close()
            else:
                self.flush(self._shutdown_timeout)
        except Exception as exc:
            logger.error("%r: delivery at exit did not complete: %s", self, exc)


process_hooks.install()
