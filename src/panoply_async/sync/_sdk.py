"""SyncSDK: the async :class:`SDK` for synchronous callers, on one event-loop thread it owns.

``write()`` encodes and validates in the caller's thread, so a bad record
raises there and later changes to the caller's dict cannot change what is
sent; the encoded line then goes to the engine (``_engine.py``) in a batch
with the others, and on to the SDK as it is (each record is encoded once).
The engine starts with :meth:`SyncSDK.start` or on first use; ``close()``,
leaving the ``with`` block, or interpreter exit drains it. After
``os.fork()`` the child forgets the parent's engine without touching it (its
sockets and buffers belong to the parent) and starts a fresh one on first use.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from orjson import dumps as _dumps

from .._engine.events import Handler
from .._engine.sdk import SDK, SDK_NAME, Stats
from .._wire.batch import encode_batch
from .._wire.credentials import resolve_credentials
from .._wire.encoding import NONCHARACTER_LEAD, TABLE_KEY, Encoder
from .._wire.encoding import default as _default
from .._wire.packing import attributes_size
from ..errors import RecordError
from ._engine import CLOSED, NEW, OPEN, Engine, Line
from ._support import pin_forever, process_hooks
from ._threads import EventThread, spare_thread

__all__ = ["SyncSDK"]

logger = logging.getLogger("panoply_async")

# Bytes waiting in the hand-off list before writers block: enough for the pump
# to move large batches, small next to the SDK's own buffer.
_HANDOFF_BYTES = 1024 * 1024


class SyncSDK:
    """The :class:`SDK` for synchronous code: ``with SyncSDK(key, secret) as conn:
    conn.write(table, record)``.

    Keyword options are those of :class:`SDK`, passed on unchanged and
    validated here. ``write()`` and ``write_many()`` may be called from any
    number of threads; they raise a bad record's :class:`RecordError` in the
    caller's thread and block (never drop) while the buffer is full. Handlers
    given to :meth:`on` never run on the caller's thread, and a slow or raising
    one does not hold up delivery. Everything accepted is delivered (or
    spooled) by :meth:`close`, by leaving the ``with`` block, or at
    interpreter exit.
    """

    def __init__(
        self, apikey: str | bytes | None = None, apisecret: str | bytes | None = None,
        **options: Any,
    ) -> None:
        # Resolved once, here: every SDK this object makes (after a fork too) gets the same.
        credentials, endpoint_url = resolve_credentials(
            apikey, apisecret, options.get("endpoint_url"), os.environ
        )
        self._apikey = credentials.apikey
        self._apisecret = credentials.apisecret
        self._options = {**options, "endpoint_url": endpoint_url}
        self._handlers: list[tuple[str, Handler]] = []
        sdk = self._new_sdk()  # raises on bad options
        attributes = {"key": credentials.apikey, "secret": credentials.apisecret, "sdk": SDK_NAME}
        self._shutdown_timeout = sdk.config.shutdown_timeout
        self._encoder = Encoder(sdk.config.max_message_bytes - attributes_size(attributes))
        self._tails = self._encoder.tails
        self._line_limit = self._encoder.max_line_bytes
        self._account = sdk.account
        self._queue_url = sdk.queue_url
        self._durable = sdk.config.wal_dir is not None
        self._engine = Engine(self._new_sdk, sdk, _HANDOFF_BYTES, self._durable)
        self._events = EventThread()
        process_hooks.track(self)
        # Python 3.12 refuses new threads once the main thread ended: a worker's
        # first write after that starts the engine on this spare.
        spare_thread.ensure()

    def _new_sdk(self) -> SDK:
        sdk = SDK(self._apikey, self._apisecret, **self._options)
        for name, handler in self._handlers:
            sdk.on(name, handler)
        return sdk

    def __repr__(self) -> str:
        return (
            f"SyncSDK(account={self._account!r}, "
            f"state={self._engine.state!r})"
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

        Plain functions run on an event thread of this object, one at a time,
        in the order the events happened; coroutine functions run on the
        engine's event loop, as with :class:`SDK`.
        """
        wrapped = handler
        if callable(handler) and not inspect.iscoroutinefunction(handler):
            wrapped = self._on_event_thread(handler)
            if self._engine.thread is not None:
                self._events.start()
        # The engine's SDK, or (not started since a fork) a throwaway one, validates.
        (self._engine.sdk or self._new_sdk()).on(name, wrapped)
        self._handlers.append((name, wrapped))
        return self

    def _on_event_thread(self, handler: Handler) -> Handler:
        def enqueue(*args: Any) -> None:
            # self._events at call time: a forked child gets a new thread.
            self._events.submit(handler, args)

        return enqueue

    def start(self) -> SyncSDK:
        """Start the engine now rather than at the first write; returns ``self``.

        Idempotent. After it the first write costs what later ones do; call it
        where a worker process begins (gunicorn's ``post_fork``, say). Raises
        what opening the SDK raises (a locked ``wal_dir``, for instance).
        """
        self._start()
        return self

    def write(self, table: str, data: Mapping[str, Any]) -> None:
        """Accept one record for ``table``; see :meth:`SDK.write` for the encoding rules.

        Blocks while the buffer is full; raises :class:`RecordError` here for a
        record that cannot be sent (nothing of it is buffered). With
        ``wal_dir`` it returns once the record is in the log, and raises what
        the log raised (a full disk) when it could not take the record.
        """
        # The common case inlined (this is the hot path): a known table, a plain
        # dict that orjson takes as it is, an engine running with room.
        tail = self._tails.get(table) if type(table) is str else None
        if tail is not None and type(data) is dict and TABLE_KEY not in data and not self._durable:
            try:
                body = _dumps(data, default=_default)
            except TypeError:
                body = b""
            size = len(body) + len(tail)
            if len(body) > 2 and size <= self._line_limit and NONCHARACTER_LEAD not in body:
                if self._engine.offer(body, tail, size):
                    return
                self._put(((body, tail),))  # waits for room, or starts the engine
                return
        self._put((self._encode(table, data),))

    def write_many(self, table: str, records: Sequence[Mapping[str, Any]]) -> int:
        """Accept several records for ``table``; returns how many were accepted.

        Every record is encoded first: if one is bad, it raises and none is
        accepted. With ``wal_dir`` it returns once they are in the log.
        """
        if type(records) is not list:
            records = list(records)
        if not records:
            return 0
        tail = self._tails.get(table) if type(table) is str else None
        encoded = None if tail is None else encode_batch(records, tail, self._line_limit)
        if encoded is not None:  # every line in one buffer, made by C code
            self._put(((encoded.lines, b""),), len(records))
        else:  # records that need the general encoder (or an unknown table)
            self._put([self._encode(table, data) for data in records])
        return len(records)

    def flush(self, timeout: float | None = None) -> None:
        """Send everything written so far; return once SQS acknowledged it (or it
        finally failed: then the ``error`` event fired and it was spooled).

        Raises ``TimeoutError`` after ``timeout`` seconds; delivery goes on.
        """
        self._engine.flush(timeout)

    @property
    def stats(self) -> Stats:
        """A snapshot of the delivery counters; records still on their way to the
        engine count as accepted and pending."""
        return self._engine.stats()

    def close(self, timeout: float | None = None) -> None:
        """Deliver (or spool) everything accepted and stop the engine.

        The SDK's ``shutdown_timeout`` bounds the drain; ``timeout`` bounds how
        long this call waits (``TimeoutError``; the drain goes on in the
        background). Raises :class:`DeliveryError` as the SDK does when records
        were neither delivered nor spooled. Calling it again does nothing.
        """
        try:
            self._engine.close(timeout)
        finally:
            if not self._engine.thread or not self._engine.thread.is_alive():
                self._events.stop(self._shutdown_timeout if timeout is None else timeout)
                process_hooks.stopped(self)

    # -- internals -----------------------------------------------------------------

    def _encode(self, table: str, data: Mapping[str, Any]) -> Line:
        """The record's line as the SDK's write path makes it: ``(body, tail)`` for
        the line ``body[:-1] + b"," + tail``, else ``(line, b"")`` from the general
        encoder, which also raises the precise :class:`RecordError`."""
        tail = self._tails.get(table) if type(table) is str else None
        if tail is not None and type(data) is dict and TABLE_KEY not in data:
            try:
                body: bytes | None = _dumps(data, default=_default)
            except TypeError:
                body = None
            if (
                body is not None
                and NONCHARACTER_LEAD not in body
                and 2 < len(body) <= self._line_limit - len(tail)
            ):
                return body, tail
        try:
            return self._encoder.encode(table, data), b""
        except RecordError:
            self._engine.count_rejected()
            raise

    def _put(self, lines: Sequence[Line], records: int | None = None) -> None:
        if self._engine.state is not OPEN:
            self._start()
        size = sum(len(body) + len(tail) for body, tail in lines)
        self._engine.put(lines, size, records=records)

    def _start(self) -> None:
        if self._engine.state is NEW and any(
            not inspect.iscoroutinefunction(h) for _, h in self._handlers
        ):
            # Now, not at the first event: Python 3.12 refuses new threads once
            # the main thread has ended, when the exit hooks drain.
            self._events.start()
        self._engine.start()
        process_hooks.started(self)

    def reset_after_fork(self) -> None:
        """In a forked child: drop the parent's engine without touching it."""
        old = self._engine
        pin_forever((old, self._events))
        self._engine = Engine(self._new_sdk, None, _HANDOFF_BYTES, self._durable)
        self._events = EventThread()
        if old.state is not NEW and old.state is not OPEN:
            self._engine.state = CLOSED

    def drain_at_exit(self, *, close: bool) -> None:
        """``flush()`` when the main thread ends, ``close()`` at interpreter exit;
        says how many records were left undelivered, if any."""
        if self._engine.state is CLOSED:  # closed by its user, who saw the outcome
            return
        try:
            if close:
                # Bounded: an engine stuck in its start must not hang the exit.
                self.close(2 * self._shutdown_timeout + 5)
            else:
                self.flush(self._shutdown_timeout)
        except TimeoutError:
            logger.warning(
                "%r: %d records still pending %s", self, self.stats.records_pending,
                "at exit" if close else "as the main thread ended; delivery goes on until exit",
            )
        except Exception as exc:
            logger.error("%r: delivery at exit did not complete: %s", self, exc)
        if close:
            stats = self.stats
            left = stats.records_spooled + stats.records_failed + stats.records_pending
            if left:
                logger.warning(
                    "%r at exit: %d records not delivered (%d spooled, %d failed, %d pending)",
                    self, left, stats.records_spooled, stats.records_failed,
                    stats.records_pending,
                )


process_hooks.install()
