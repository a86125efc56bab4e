"""The SDK facade: options, the lifetimes of the parts, events and stats.

Data flow (DESIGN §2), one module per stage: ``buffer.py`` (records into
messages), ``delivery.py`` (to SQS, or the spool), ``drainback.py`` (the spool back),
``replay.py``, ``checkpoint.py``, ``journal.py`` (the write-ahead log).

Every background task lives in one anyio task group owned by the ``SDK`` and
bounded by its ``async with`` block. Delivery runs inside a shielded cancel scope
so that cancelling the block still lets the drain finish within ``shutdown_timeout``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from .._durable.spool import SpoolFile
from .._version import __version__
from .._wire.credentials import Credentials, resolve_credentials
from .._wire.packing import attributes_size
from ..errors import ConfigurationError
from .buffer import WriteBuffer
from .checkpoint import Checkpoint
from .concurrency import DEFAULT_CEILING
from .config import SDKConfig
from .delivery import MAX_BATCH_ENTRIES, Delivery
from .drain import close_parts, drain
from .drainback import DrainBack
from .events import EventEmitter, Handler
from .journal import RecoveryHooks, WalJournal
from .pipeline import IngestResult, ingest
from .redact import redactor
from .replay import ReplayResult, replay_path
from .stats import Stats
from .transport import SQSTransport, Transport

if TYPE_CHECKING:
    from .source import Source

__all__ = [
    "MAX_BATCH_ENTRIES", "SDK", "SDK_NAME", "Checkpoint", "ReplayResult", "SDKConfig", "Stats",
]

logger = logging.getLogger("panoply_async")

SDK_NAME = f"panoply-async-{__version__}"
SDK_EVENTS = frozenset({"send", "flush", "error", "progress", "source-state", "source-change"})

_NEW, _OPEN, _CLOSING, _CLOSED = "new", "open", "closing", "closed"


class SDK:
    """Streams records to a Panoply account's SQS queue.

    Use it as ``async with SDK(apikey, apisecret) as conn:`` and ``await
    conn.write(table, record)``. Records are encoded at the call, packed into
    messages of up to ``max_message_bytes`` (attributes included) and sent
    within ``flush_interval`` seconds, or as soon as a message is full. Leaving
    the block delivers everything, or spools it (``spool_dir``), or raises
    :class:`DeliveryError` saying how many records were not delivered.

    Parameters are described in docs/sdk.md; all but the credentials are
    keyword-only and validated here, raising ``ValueError`` subclasses
    (:class:`CredentialsError`, :class:`ConfigurationError`). Credentials and
    endpoint not given come from the environment (``PANOPLY_APIKEY``...).
    """

    def __init__(
        self,
        apikey: str | bytes | None = None,
        apisecret: str | bytes | None = None,
        *,
        endpoint_url: str | None = None,
        flush_interval: float = 2.0,
        max_message_bytes: int = 262_144,
        max_buffer_bytes: int = 16 * 1024 * 1024,
        max_concurrent_sends: int = DEFAULT_CEILING,
        adaptive_concurrency: bool = True,
        max_attempts: int | None = None,
        retry_budget: float = 120.0,
        backoff_base: float = 0.1,
        backoff_max: float = 10.0,
        request_timeout: float = 30.0,
        shutdown_timeout: float = 30.0,
        spool_dir: str | os.PathLike[str] | None = None,
        sign: bool = False,
        transport: Transport | None = None,
        wal_dir: str | os.PathLike[str] | None = None,
        max_wal_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        credentials, endpoint_url = resolve_credentials(apikey, apisecret, endpoint_url, os.environ)
        self._credentials: Credentials = credentials
        self._config = SDKConfig(
            endpoint_url=endpoint_url, flush_interval=flush_interval,
            max_message_bytes=max_message_bytes, max_buffer_bytes=max_buffer_bytes,
            max_concurrent_sends=max_concurrent_sends,
            adaptive_concurrency=adaptive_concurrency, max_attempts=max_attempts,
            retry_budget=retry_budget, backoff_base=backoff_base, backoff_max=backoff_max,
            request_timeout=request_timeout, shutdown_timeout=shutdown_timeout,
            spool_dir=spool_dir, sign=sign, wal_dir=wal_dir, max_wal_bytes=max_wal_bytes,
        )
        if transport is not None and not isinstance(transport, Transport):
            raise ConfigurationError("transport must implement open(), send() and aclose()")
        self._queue_url = self._credentials.queue_url(endpoint_url)
        self._attributes = {
            "key": self._credentials.apikey, "secret": self._credentials.apisecret, "sdk": SDK_NAME,
        }
        self._attributes_size = attributes_size(self._attributes)
        body_limit = self._config.body_limit(self._attributes_size)
        self._transport: Transport = transport or SQSTransport(
            self._queue_url, self._credentials.region, self._attributes,
            endpoint_url=endpoint_url, sign=sign, request_timeout=request_timeout,
            # one connection per request in flight, up to the ceiling
            max_connections=max(10, max_concurrent_sends),
        )
        self._spool = (
            SpoolFile(spool_dir, self._credentials.account) if spool_dir is not None else None
        )
        self._events = EventEmitter()
        self._stats = Stats()
        self._state = _NEW

        self._journal: WalJournal | None = None
        if wal_dir is not None:
            self._journal = WalJournal(
                wal_dir,
                queue_name=self._queue_url.rsplit("/", 1)[-1],
                body_limit=body_limit,
                max_wal_bytes=max_wal_bytes,
            )

        # The parts, one per stage; the SDK wires them and owns their lifetimes.
        self._buffer = WriteBuffer(
            body_limit=body_limit,
            max_buffer_bytes=max_buffer_bytes,
            flush_interval=flush_interval,
            attributes_size=self._attributes_size,
            stats=self._stats,
            not_open=self._not_open,
            packer=self._journal.packer if self._journal is not None else None,
        )
        journal, release = self._journal, self._buffer.release
        self._delivery = Delivery(
            config=self._config,
            transport=self._transport,
            stats=self._stats,
            events=self._events,
            spool=self._spool,
            queue_url=self._queue_url,
            on_finished=journal.finished_after(release) if journal else release,
        )
        self._buffer.submit = self._delivery.submit
        self._drain_back = DrainBack(self._spool, self._delivery, self._attributes_size)
        if journal is not None:
            # The log's packer already holds every line; it learns of closed and
            # finished messages by wrapping submit and release.
            self._buffer.submit = journal.closed_before(self._delivery.submit)
        if type(self).write is SDK.write and type(self).write_many is SDK.write_many:
            # The hot path: ``conn.write`` is the buffer's own bound method, so a
            # write costs no extra Python call (subclasses that override keep theirs).
            self.write = self._buffer.write  # type: ignore[method-assign]
            self.write_many = self._buffer.write_many  # type: ignore[method-assign]

        self._task_group: anyio.abc.TaskGroup | None = None

    # -- public surface -------------------------------------------------------------

    def __repr__(self) -> str:
        return f"SDK(account={self._credentials.account!r}, state={self._state!r})"

    @property
    def stats(self) -> Stats:
        """Live delivery counters (see :class:`Stats`)."""
        return self._stats

    @property
    def buffered_bytes(self) -> int:
        """Bytes accepted and not yet finished: open message, queued and in flight.

        Never more than ``max_buffer_bytes``: ``write()`` waits instead."""
        return self._buffer.buffered

    @property
    def config(self) -> SDKConfig:
        return self._config

    @property
    def queue_url(self) -> str:
        return self._queue_url

    @property
    def account(self) -> str:
        return self._credentials.account

    @property
    def spool_path(self) -> Path | None:
        """The spool file this SDK wrote last, if any (gone once drained back)."""
        return self._spool.path if self._spool is not None else None

    def on(self, name: str, handler: Handler) -> SDK:
        """Register ``handler`` for event ``name`` (or ``"*"`` for all); returns ``self``.

        Events: ``send`` (before each request), ``flush`` (after a successful
        request), ``error`` (records that could not be delivered) and, for data
        sources run by :meth:`ingest`, ``progress``, ``source-state`` and
        ``source-change``. See docs/sdk.md for the payloads.
        """
        if name != "*" and name not in SDK_EVENTS:
            known = ", ".join(sorted(SDK_EVENTS))
            raise ValueError(f"unknown event {name!r}; known events: {known} and '*'")
        self._events.on(name, handler)
        return self
    async def __aenter__(self) -> SDK:
        if self._state is not _NEW:
            raise RuntimeError("an SDK instance can be entered only once; create a new one")
        self._buffer.start()
        self._delivery.start()
        journal = self._journal
        if journal is not None:
            try:
                await journal.open(self._delivery.undelivered)
            except BaseException:
                self._state = _CLOSED
                raise
        redactor.add(self._credentials.apisecret)
        try:
            await self._transport.open()
        except BaseException:
            redactor.remove(self._credentials.apisecret)
            self._state = _CLOSED
            if journal is not None:
                with anyio.CancelScope(shield=True):
                    await journal.aclose()
            raise
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        self._events.run_handlers_in(task_group)
        task_group.start_soon(self._delivery.run)
        task_group.start_soon(self._buffer.run_timer)
        self._drain_back.start(task_group)
        self._state = _OPEN
        if journal is not None:
            # What dead processes left goes out in the background, beside new writes.
            journal.start_recovery(task_group, RecoveryHooks(
                self._buffer.submit_recovered, self._delivery.watermark.wait_through,
                lambda: self._buffer.buffered, self._config.max_buffer_bytes,
                self._stats, self._events,
            ))
        self._buffer.accepting = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._shutdown()
        error = self._delivery.undelivered_error()
        if error is not None:
            raise error

    # The writes live in the write path (``buffer``); these carry the documentation.

    async def write(self, table: str, data: Mapping[str, Any]) -> None:
        """Accept one record for ``table``.

        The record is encoded now: a bad record raises a :class:`RecordError`
        (``ValueError``; :class:`RecordTypeError` is also a ``TypeError``) here
        and is not buffered, and later changes to ``data`` do not affect what
        is sent. Waits only when ``max_buffer_bytes`` are already buffered.
        """
        await self._buffer.write(table, data)

    async def write_many(self, table: str, records: Sequence[Mapping[str, Any]]) -> int:
        """Accept several records for ``table``; returns how many were accepted.

        Every record is encoded before any is buffered, so a bad record raises
        and none of ``records`` is accepted. Cheaper per record than ``write()``.
        If cancelled while waiting for buffer room, the records before the
        wait were accepted and the others were not; if the SDK's drain passes
        ``shutdown_timeout`` meanwhile, ``RuntimeError`` says how many were.
        """
        return await self._buffer.write_many(table, records)

    def write_nowait(self, table: str, data: Mapping[str, Any]) -> None:
        """:meth:`write` without waiting: when ``max_buffer_bytes`` are buffered, raise
        :class:`BufferFullError` at once (counted in ``stats.records_shed``)."""
        self._buffer.write_nowait(table, data)

    async def write_lines(self, lines: bytes | bytearray, count: int) -> None:
        """Accept ``count`` records already encoded by :func:`encode_record` (within
        ``max_message_bytes``), as whole lines joined; :class:`SyncSDK` passes its
        callers' lines on this way, so each record is encoded once."""
        await self._buffer.write_lines(lines, count)

    async def flush(self) -> None:
        """Send everything written so far and return once each message was
        acknowledged by SQS, or finally failed (then the ``error`` event fired
        and the records were spooled or counted in ``stats.records_failed``)."""
        if not self._buffer.accepting:
            raise self._not_open("flush")
        self._buffer.close_open_message("flush")
        await self._delivery.watermark.wait_through(self._buffer.next_seq - 1)

    async def sync(self) -> None:
        """Return once every record accepted so far is on stable storage (``wal_dir``).

        Without ``wal_dir`` there is nothing to sync and this returns at once.
        Raises :class:`WALError` when the operating system reports a failed sync.
        """
        if not self._buffer.accepting:
            raise self._not_open("sync")
        if self._journal is not None:
            await self._journal.sync()

    async def replay(self, path: str | os.PathLike[str]) -> ReplayResult:
        """Resend spooled messages from a spool file or directory to this SDK's queue.

        Acknowledged entries leave the file (deleted when empty); entries that
        fail again, or were spooled for another queue, stay. The file is rewritten
        atomically after every request: an interrupted replay can only resend,
        never lose. A file whose writer is still open (or that another replay
        holds) is skipped and listed in ``files_skipped``.
        """
        if self._state is not _OPEN:
            raise self._not_open("replay")
        return await replay_path(path, self.spool_path, self._delivery, self._attributes_size)

    async def ingest(
        self,
        source: Source,
        *,
        batch_size: int | None = None,
        on_state: Callable[[Any, Any], None] | None = None,
        state_key: str | None = None,
        on_bad_record: str = "fail",
        dead_letter_file: str | os.PathLike[str] | None = None,
        max_records: int | None = None,
    ) -> IngestResult:
        """Run a :class:`DataSource` into this SDK until its ``read()`` is exhausted.

        Records go to the table the source names (see docs/connectors.md for
        the routing rule). A state reported with ``source.state(id, state)`` is
        committed (event ``source-state``, and ``on_state(id, merged_state)``)
        only once every record written before it, and every record tagged
        ``"__state": id``, was acknowledged by SQS. Retryable errors from
        ``read()`` are retried (3 attempts); ``close()`` always runs. With ``wal_dir``
        and ``state_key``, states ride the log (see :meth:`recovered_state`). A record
        ``write()`` refuses stops the run (``on_bad_record="fail"``) or is counted and
        identified (``"skip"``), and kept in ``dead_letter_file`` (``"dead-letter"``).
        ``max_records`` (per table) ends a trial run early.
        """
        if self._state is not _OPEN:
            raise self._not_open("ingest")
        journal = self._journal
        logged = None if journal is None or state_key is None else partial(
            journal.log_state, state_key)
        return await ingest(
            self, source, batch_size=batch_size, on_state=on_state, emit=self._emit,
            log_state=logged, on_bad_record=on_bad_record,
            dead_letter_file=dead_letter_file, max_records=max_records)

    async def recovered_state(self, state_key: str) -> tuple[Any, Any] | None:
        """Once ``wal_dir`` recovery is over: the last ``(state_id, state)`` that
        :meth:`ingest` logged under ``state_key`` and recovery delivered, or None."""
        if self._state is not _OPEN:
            raise self._not_open("recovered_state")
        journal = self._journal
        return None if journal is None else await journal.recovered_state(state_key)

    def checkpoint(self) -> Checkpoint:
        """Mark everything written so far, the open message included.

        ``await cp`` returns ``True`` once all of it was acknowledged by SQS,
        ``False`` if any of it was spooled or failed (see :class:`Checkpoint`).
        Use it to commit your own offsets (a Kafka or database cursor) once
        the records before them reached SQS.
        """
        if not self._buffer.accepting:
            raise self._not_open("checkpoint")
        return Checkpoint(self._delivery.watermark, self._buffer.ticket(), self._buffer.next_seq)

    def _emit(self, name: str, data: Any) -> None:
        if self._events.has_handlers(name):
            self._events.emit(name, data)
    @property
    def _buffered(self) -> int:
        return self._buffer.buffered

    def _close_open_message(self, reason: str) -> None:
        self._buffer.close_open_message(reason)

    # -- lifetimes -----------------------------------------------------------------

    def _not_open(self, what: str) -> RuntimeError:
        if self._state is _NEW:
            return RuntimeError(f"{what}() needs an open SDK: use 'async with SDK(...) as conn'")
        return RuntimeError(f"{what}() called on an SDK that is {self._state}")

    async def _shutdown(self) -> None:
        if self._state is not _OPEN:
            return
        self._state = _CLOSING
        deadline = anyio.current_time() + self._config.shutdown_timeout

        task_group = self._task_group
        assert task_group is not None
        buffer, delivery = self._buffer, self._delivery
        try:
            with anyio.CancelScope(shield=True):
                if self._journal is not None:  # recovered records go out too, by the deadline
                    await self._journal.finish_recovery(deadline)
                await drain(buffer, delivery, self._events, deadline)
                await self._drain_back.finish(deadline)
        finally:
            # The task group must be exited outside our own scopes (anyio scopes
            # nest strictly); every task in it has stopped or was cancelled above.
            task_group.cancel_scope.cancel()
            try:
                await task_group.__aexit__(None, None, None)
            finally:
                self._task_group = None
                self._events.run_handlers_in(None)
                await self._close_after_tasks()

    async def _close_after_tasks(self) -> None:
        self._drain_back.close()
        try:
            await close_parts(
                self._delivery, self._spool, self._transport, self._journal,
                self._config.shutdown_timeout,
            )
        finally:
            self._state = _CLOSED
            redactor.remove(self._credentials.apisecret)
