"""The SDK: buffered, batched, at-least-once delivery of records to a Panoply queue.

Data flow (DESIGN §2): ``write()`` encodes at the call and appends the line to
the open message; a full message (or the flush timer, ``flush()`` or leaving
the block) closes it into the ready queue; sender tasks take up to ten ready
messages per request, retry what failed, and hand what still fails to the
spool (or keep it for the :class:`DeliveryError` raised on exit).

Every background task lives in one anyio task group owned by the ``SDK`` and
bounded by its ``async with`` block. Senders run inside shielded cancel scopes
so that cancelling the block still lets the drain finish within
``shutdown_timeout``; only then are they cancelled.
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
from orjson import dumps as _dumps

from ._credentials import Credentials, parse_credentials
from ._encoding import NONCHARACTER_LEAD, TABLE_KEY, Encoder
from ._encoding import default as _default
from ._events import EventEmitter, Handler
from ._exceptions import ConfigurationError, DeliveryError, PanoplyError, RecordError
from ._packing import Packer, attributes_size
from ._redact import redactor
from ._spool import SpoolFile, read_spool, rewrite_spool, spool_files
from ._transport import Message, SendError, SQSTransport, Transport
from ._version import __version__
from ._wal_journal import WalJournal

if TYPE_CHECKING:
    from ._pipeline import IngestResult
    from .datasource import DataSource

__all__ = ["SDK", "ReplayResult", "SDKConfig", "Stats"]

logger = logging.getLogger("panoply_async")

SDK_NAME = f"panoply-async-{__version__}"
MAX_BATCH_ENTRIES = 10
SDK_EVENTS = frozenset({"send", "flush", "error", "progress", "source-state", "source-change"})


@dataclass(frozen=True)
class SDKConfig:
    """Tuning knobs of :class:`SDK`; see docs/operations.md for what each costs."""

    endpoint_url: str | None = None
    flush_interval: float = 2.0
    max_message_bytes: int = 262_144
    max_buffer_bytes: int = 16 * 1024 * 1024
    max_concurrent_sends: int = 4
    max_attempts: int = 8
    retry_budget: float = 120.0
    backoff_base: float = 0.1
    backoff_max: float = 10.0
    request_timeout: float = 30.0
    shutdown_timeout: float = 30.0
    spool_dir: str | os.PathLike[str] | None = None
    sign: bool = False
    wal_dir: str | os.PathLike[str] | None = None
    max_wal_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        def positive(name: str, value: object, *, integer: bool = False) -> None:
            kind = int if integer else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ConfigurationError(
                    f"{name} must be a {'whole' if integer else ''} number, "
                    f"not {type(value).__name__}".replace("a  ", "a ")
                )
            if not value > 0 or (isinstance(value, float) and math.isnan(value)):
                raise ConfigurationError(f"{name} must be greater than 0, got {value!r}")

        positive("flush_interval", self.flush_interval)
        positive("max_message_bytes", self.max_message_bytes, integer=True)
        positive("max_buffer_bytes", self.max_buffer_bytes, integer=True)
        positive("max_concurrent_sends", self.max_concurrent_sends, integer=True)
        positive("max_attempts", self.max_attempts, integer=True)
        positive("retry_budget", self.retry_budget)
        positive("backoff_base", self.backoff_base)
        positive("backoff_max", self.backoff_max)
        positive("request_timeout", self.request_timeout)
        positive("shutdown_timeout", self.shutdown_timeout)
        positive("max_wal_bytes", self.max_wal_bytes, integer=True)
        if self.max_wal_bytes < 4 * self.max_message_bytes:
            raise ConfigurationError(
                "max_wal_bytes must be at least four times max_message_bytes "
                f"({4 * self.max_message_bytes}), got {self.max_wal_bytes}"
            )
        if self.wal_dir is not None and not isinstance(self.wal_dir, (str, os.PathLike)):
            raise ConfigurationError("wal_dir must be a path")
        if self.max_message_bytes < 1024:
            raise ConfigurationError("max_message_bytes must be at least 1024")
        if self.max_buffer_bytes < 2 * self.max_message_bytes:
            raise ConfigurationError(
                "max_buffer_bytes must be at least twice max_message_bytes "
                f"({2 * self.max_message_bytes}), got {self.max_buffer_bytes}"
            )
        if self.endpoint_url is not None and not (
            isinstance(self.endpoint_url, str)
            and self.endpoint_url.startswith(("http://", "https://"))
        ):
            raise ConfigurationError("endpoint_url must be an http:// or https:// URL")
        if not isinstance(self.sign, bool):
            raise ConfigurationError("sign must be True or False")


class Stats:
    """Live counters.

    ``records_accepted == records_delivered + records_spooled + records_failed +
    records_pending`` holds at every moment (``records_pending`` is counted on
    its own, from the buffers, not derived); ``records_failed`` stays 0 whenever
    a spool is configured, and ``records_pending`` is 0 after the block.
    """

    __slots__ = (
        "bytes_sent",
        "messages_failed",
        "messages_replayed",
        "messages_sent",
        "messages_spooled",
        "records_accepted",
        "records_delivered",
        "records_failed",
        "records_pending",
        "records_recovered",
        "records_rejected",
        "records_replayed",
        "records_spooled",
        "requests",
        "retries",
    )

    def __init__(self) -> None:
        self.records_accepted = 0
        self.records_delivered = 0
        self.records_spooled = 0
        self.records_failed = 0
        #: accepted records still in the open message, queued or in flight
        self.records_pending = 0
        self.records_rejected = 0
        self.records_replayed = 0
        #: records a previous process left in the write-ahead log, sent again
        self.records_recovered = 0
        self.messages_sent = 0
        self.messages_spooled = 0
        self.messages_failed = 0
        self.messages_replayed = 0
        self.requests = 0
        self.retries = 0
        self.bytes_sent = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in self.as_dict().items())
        return f"Stats({fields})"


@dataclass
class ReplayResult:
    """What :meth:`SDK.replay` did."""

    files: list[Path] = field(default_factory=list)
    messages_sent: int = 0
    records_sent: int = 0
    messages_left: int = 0
    records_left: int = 0
    #: entries kept because they were spooled for another queue
    messages_other_queue: int = 0


class _Watermark:
    """Tracks which message sequence numbers are finished, in order.

    ``through`` is the highest seq such that every message up to it finished
    (delivered, spooled or failed); ``first_failure`` is the lowest seq that was
    not delivered. Waiters are woken whenever ``through`` advances.
    """

    def __init__(self) -> None:
        self.through = -1
        self.first_failure: int | None = None
        self._ahead: set[int] = set()
        self._advanced = anyio.Event()

    def finish(self, seq: int, delivered: bool) -> None:
        if not delivered and (self.first_failure is None or seq < self.first_failure):
            self.first_failure = seq
        if seq != self.through + 1:
            self._ahead.add(seq)
            return
        self.through = seq
        while self.through + 1 in self._ahead:
            self._ahead.remove(self.through + 1)
            self.through += 1
        self._advanced.set()
        self._advanced = anyio.Event()

    def delivered_through(self, seq: int) -> bool:
        """True when every message up to ``seq`` finished and all were delivered."""
        return self.through >= seq and (self.first_failure is None or self.first_failure > seq)

    async def wait_through(self, seq: int) -> None:
        while self.through < seq:
            await self._advanced.wait()


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
    (:class:`CredentialsError`, :class:`ConfigurationError`).
    """

    def __init__(
        self,
        apikey: str | bytes,
        apisecret: str | bytes,
        *,
        endpoint_url: str | None = None,
        flush_interval: float = 2.0,
        max_message_bytes: int = 262_144,
        max_buffer_bytes: int = 16 * 1024 * 1024,
        max_concurrent_sends: int = 4,
        max_attempts: int = 8,
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
        self._credentials: Credentials = parse_credentials(apikey, apisecret)
        self._config = SDKConfig(
            endpoint_url=endpoint_url,
            flush_interval=flush_interval,
            max_message_bytes=max_message_bytes,
            max_buffer_bytes=max_buffer_bytes,
            max_concurrent_sends=max_concurrent_sends,
            max_attempts=max_attempts,
            retry_budget=retry_budget,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            request_timeout=request_timeout,
            shutdown_timeout=shutdown_timeout,
            spool_dir=spool_dir,
            sign=sign,
            wal_dir=wal_dir,
            max_wal_bytes=max_wal_bytes,
        )
        if transport is not None and not isinstance(transport, Transport):
            raise ConfigurationError("transport must implement open(), send() and aclose()")
        self._queue_url = self._credentials.queue_url(endpoint_url)
        self._attributes = {
            "key": self._credentials.apikey,
            "secret": self._credentials.apisecret,
            "sdk": SDK_NAME,
        }
        self._attributes_size = attributes_size(self._attributes)
        body_limit = max_message_bytes - self._attributes_size
        if body_limit < 1024:
            raise ConfigurationError(
                f"max_message_bytes={max_message_bytes} leaves too little room for records "
                f"after the {self._attributes_size} bytes of message attributes"
            )
        self._transport: Transport = transport or SQSTransport(
            self._queue_url,
            self._credentials.region,
            self._attributes,
            endpoint_url=endpoint_url,
            sign=sign,
            request_timeout=request_timeout,
            max_connections=max(10, max_concurrent_sends),
        )
        self._encoder = Encoder(body_limit)
        self._tails = self._encoder.tails
        self._line_limit = body_limit
        self._max_buffer = max_buffer_bytes
        self._packer = Packer(body_limit)
        self._journal: WalJournal | None = None
        if wal_dir is not None:
            self._journal = WalJournal(
                wal_dir,
                queue_name=self._queue_url.rsplit("/", 1)[-1],
                body_limit=body_limit,
                max_wal_bytes=max_wal_bytes,
            )
            self._packer = self._journal.packer
        self._spool = (
            SpoolFile(spool_dir, self._credentials.account) if spool_dir is not None else None
        )
        self._events = EventEmitter()
        self._stats = Stats()
        self._state = _NEW
        self._random = random.Random()

        # Delivery state; events are created on entry, inside the event loop.
        self._next_seq = 0
        self._buffered = 0
        self._ready: deque[Message] = deque()
        self._unfinished: dict[int, Message] = {}
        self._undelivered: list[Message] = []
        self._opened_at = 0.0
        self._open_generation = 0
        self._task_group: anyio.abc.TaskGroup | None = None
        self._sender_scopes: list[anyio.CancelScope] = []
        self._senders_running = 0
        self._handlers_running = 0
        self._stopping = False

    def _create_events(self) -> None:
        self._watermark = _Watermark()
        self._ready_event = anyio.Event()
        self._room_event = anyio.Event()
        self._timer_event = anyio.Event()
        self._timer_scope = anyio.CancelScope()
        self._senders_done = anyio.Event()
        self._handlers_idle = anyio.Event()

    # -- public surface -------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"SDK(account={self._credentials.account!r}, queue_url={self._queue_url!r}, "
            f"state={self._state!r})"
        )

    @property
    def stats(self) -> Stats:
        """Live delivery counters (see :class:`Stats`)."""
        return self._stats

    @property
    def buffered_bytes(self) -> int:
        """Bytes accepted and not yet finished: open message, queued and in flight.

        Never more than ``max_buffer_bytes``: ``write()`` waits instead."""
        return self._buffered

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
        """The spool file this SDK wrote, if it spooled anything."""
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
        self._create_events()
        journal = self._journal
        if journal is not None:
            try:
                await journal.open(self._undelivered)
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
        self._events.set_spawner(self._spawn_handler)
        self._senders_running = self._config.max_concurrent_sends
        for _ in range(self._config.max_concurrent_sends):
            task_group.start_soon(self._sender)
        task_group.start_soon(self._timer)
        self._state = _OPEN
        if journal is not None:
            task_group.start_soon(journal.run_syncer)
            try:
                await journal.resend(
                    self._enqueue_recovered,
                    self._watermark.wait_through,
                    lambda: self._buffered,
                    self._max_buffer,
                    self._stats,
                    self._events,
                )
            except BaseException:
                await self._shutdown()
                raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._shutdown()
        if self._undelivered:
            records = sum(m.records for m in self._undelivered)
            messages = len(self._undelivered)
            raise DeliveryError(
                f"{records} records in {messages} messages were not delivered to "
                f"{self._queue_url} and no spool_dir is configured",
                records=records,
                messages=messages,
                bodies=[m.body.decode("utf-8") for m in self._undelivered],
            )

    async def write(self, table: str, data: Mapping[str, Any]) -> None:
        """Accept one record for ``table``.

        The record is encoded now: a bad record raises a :class:`RecordError`
        (``ValueError``; :class:`RecordTypeError` is also a ``TypeError``) here
        and is not buffered, and later changes to ``data`` do not affect what
        is sent. Waits only when ``max_buffer_bytes`` are already buffered.
        """
        if self._state is not _OPEN:
            raise self._not_open("write")
        # Fast path: a known table, a plain dict that orjson takes as it is, and
        # room in the buffer. Everything else goes through the general encoder,
        # which also raises the precise errors.
        tail = self._tails.get(table) if type(table) is str else None
        if tail is not None and type(data) is dict and TABLE_KEY not in data:
            try:
                body: bytes | None = _dumps(data, default=_default)
            except TypeError:
                body = None
            if body is not None and NONCHARACTER_LEAD not in body and len(body) > 2:
                size = len(body) + len(tail)
                packer = self._packer
                if size <= packer.room and self._buffered + size <= self._max_buffer:
                    # The common case: the record fits without closing the message.
                    if not packer.records:
                        self._opened()
                    packer.append_record(body, tail)
                    self._buffered += size
                    stats = self._stats
                    stats.records_accepted += 1
                    stats.records_pending += 1
                    return
                if size <= self._line_limit:
                    await self._reserve(size)
                    self._add_record(body, tail, size)
                    return
        await self._accept(self._encode(table, data))

    async def write_many(self, table: str, records: Sequence[Mapping[str, Any]]) -> int:
        """Accept several records for ``table``; returns how many were accepted.

        Every record is encoded before any is buffered, so a bad record raises
        and none of ``records`` is accepted. Cheaper per record than ``write()``.
        If cancelled while waiting for buffer room, the records before the
        wait were accepted and the others were not.
        """
        if self._state is not _OPEN:
            raise self._not_open("write_many")
        tail = self._tails.get(table) if type(table) is str else None
        if tail is None:
            tail = self._encoder.tail(table)
        tail_len = len(tail)
        body_limit = self._line_limit - tail_len
        bodies: list[bytes] = []
        # Lines the fast path cannot take come whole from the general encoder.
        general: set[int] = set()
        append, dumps, default = bodies.append, _dumps, _default
        try:
            for data in records:
                if type(data) is dict and TABLE_KEY not in data:
                    try:
                        body = dumps(data, default=default)
                    except TypeError:
                        body = b""
                    if 2 < len(body) <= body_limit and NONCHARACTER_LEAD not in body:
                        append(body)
                        continue
                line = self._encoder.encode(table, data)
                general.add(id(line))
                append(line)
        except RecordError:
            self._stats.records_rejected += 1
            raise

        packer, stats = self._packer, self._stats
        append_record = packer.append_record
        max_buffer = self._max_buffer
        # Counters are kept in locals and stored before every await: nothing else
        # runs (or observes them) between awaits.
        buffered, accepted = self._buffered, 0
        for body in bodies:
            size = len(body) + tail_len
            if (
                size <= packer.room
                and buffered + size <= max_buffer
                and not (general and id(body) in general)
            ):
                if not packer.records:
                    self._opened()
                append_record(body, tail)
                buffered += size
                accepted += 1
                continue
            self._buffered = buffered
            stats.records_accepted += accepted
            stats.records_pending += accepted
            accepted = 0
            if general and id(body) in general:
                await self._accept(body)
            else:
                await self._reserve(size)
                self._add_record(body, tail, size)
            buffered = self._buffered
        self._buffered = buffered
        stats.records_accepted += accepted
        stats.records_pending += accepted
        return len(bodies)

    async def flush(self) -> None:
        """Send everything written so far and return once each message was
        acknowledged by SQS, or finally failed (then the ``error`` event fired
        and the records were spooled or counted in ``stats.records_failed``)."""
        if self._state is not _OPEN:
            raise self._not_open("flush")
        self._close_open_message("flush")
        await self._watermark.wait_through(self._next_seq - 1)

    async def sync(self) -> None:
        """Return once every record accepted so far is on stable storage (``wal_dir``).

        Without ``wal_dir`` there is nothing to sync and this returns at once.
        Raises :class:`WALError` when the operating system reports a failed sync.
        """
        if self._state is not _OPEN:
            raise self._not_open("sync")
        if self._journal is not None:
            await self._journal.sync()

    async def replay(self, path: str | os.PathLike[str]) -> ReplayResult:
        """Resend spooled messages from a spool file or directory to this SDK's queue.

        Acknowledged entries are removed from the file (the file is deleted
        when empty); entries that fail again, or were spooled for another
        queue, stay. The file is rewritten atomically after every request, so
        an interrupted replay can only resend, never lose.
        """
        if self._state is not _OPEN:
            raise self._not_open("replay")
        result = ReplayResult()
        own = self.spool_path
        for spool_path in await anyio.to_thread.run_sync(spool_files, path):
            if own is not None and spool_path.resolve() == own.resolve():
                continue  # this SDK is still appending to it
            result.files.append(spool_path)
            await self._replay_file(spool_path, result)
        return result

    async def ingest(
        self,
        source: DataSource,
        *,
        batch_size: int | None = None,
        on_state: Callable[[Any, Any], None] | None = None,
    ) -> IngestResult:
        """Run a :class:`DataSource` into this SDK until its ``read()`` is exhausted.

        Records go to the table the source names (see docs/connectors.md for
        the routing rule). A state reported with ``source.state(id, state)`` is
        committed (event ``source-state``, and ``on_state(id, merged_state)``)
        only once every record written before it, and every record tagged
        ``"__state": id``, was acknowledged by SQS. Retryable errors from
        ``read()`` are retried (3 attempts); ``close()`` always runs.
        """
        if self._state is not _OPEN:
            raise self._not_open("ingest")
        from ._pipeline import ingest

        return await ingest(self, source, batch_size=batch_size, on_state=on_state)

    # -- internals used by the pipeline --------------------------------------------

    def _ticket(self) -> int:
        """The highest message seq that holds any record written so far."""
        return self._next_seq if self._packer.records else self._next_seq - 1

    async def _wait_ticket(self, ticket: int) -> bool:
        """Wait until every message up to ``ticket`` finished; True if all were delivered."""
        # A ticket in the still-open message is waited for too: the timer (or
        # the message filling up) closes it.
        await self._watermark.wait_through(ticket)
        return self._watermark.delivered_through(ticket)

    def _emit(self, name: str, data: Any) -> None:
        if self._events.has_handlers(name):
            self._events.emit(name, data)

    # -- writing -------------------------------------------------------------------

    def _not_open(self, what: str) -> RuntimeError:
        if self._state is _NEW:
            return RuntimeError(f"{what}() needs an open SDK: use 'async with SDK(...) as conn'")
        return RuntimeError(f"{what}() called on an SDK that is {self._state}")

    def _encode(self, table: str, data: Mapping[str, Any]) -> bytes:
        try:
            return self._encoder.encode(table, data)
        except RecordError:
            self._stats.records_rejected += 1
            raise

    async def _accept(self, line: bytes) -> None:
        """Buffer a whole line from the general encoder, waiting for room if needed."""
        size = len(line)
        await self._reserve(size)
        stats = self._stats
        finished = self._packer.add(line)
        self._buffered += size
        stats.records_accepted += 1
        stats.records_pending += 1
        self._after_add(finished)

    async def _reserve(self, size: int) -> None:
        """Wait until ``size`` more bytes fit in the buffer; when the record will
        close the open message, first close it (if the record does not fit) and
        yield so that the senders start on it.

        The caller adds the record right after this returns, with no await in
        between: so the buffer bound holds with concurrent writers, a cancelled
        ``write()`` never accepted its record, and an accepted one never raises.
        """
        yielded = False
        while True:
            if self._buffered + size > self._max_buffer or self._wal_full():
                await self._wait_for_room(size)
                continue
            if not yielded and self._packer.closes(size):
                if self._packer.size + size > self._packer.body_limit:
                    self._close_open_message("full")
                await anyio.lowlevel.checkpoint()
                yielded = True
                continue
            return

    def _add_record(self, body: bytes, tail: bytes, size: int) -> None:
        """Buffer one encoded record; the caller checked the room."""
        finished = self._packer.add_record(body, tail)
        self._buffered += size
        stats = self._stats
        stats.records_accepted += 1
        stats.records_pending += 1
        self._after_add(finished)

    def _after_add(self, finished: tuple[bytes, int] | None) -> None:
        packer = self._packer
        if finished is not None:
            self._enqueue(finished[0], finished[1], "full")
            self._opened()
        elif packer.records == 1:
            self._opened()
        if packer.full():
            self._close_open_message("full")

    def _wal_full(self) -> bool:
        # Only a write-ahead log's packer has no room while empty (max_wal_bytes).
        return self._packer.room < 0 and not self._packer.records

    def _enqueue_recovered(self, body: bytes, records: int) -> int:
        self._buffered += len(body)
        self._stats.records_accepted += records
        self._stats.records_pending += records
        self._enqueue(body, records, "recover")
        return self._next_seq - 1

    async def _wait_for_room(self, size: int) -> None:
        while self._buffered + size > self._max_buffer or self._wal_full():
            if self._state is not _OPEN:
                raise self._not_open("write")
            await self._room_event.wait()

    def _opened(self) -> None:
        self._opened_at = anyio.current_time()
        self._open_generation += 1
        self._timer_event.set()

    def _close_open_message(self, reason: str) -> None:
        taken = self._packer.take()
        if taken is not None:
            self._enqueue(taken[0], taken[1], reason)

    def _enqueue(self, body: bytes, records: int, reason: str) -> None:
        message = Message(
            seq=self._next_seq,
            body=body,
            records=records,
            size=len(body) + self._attributes_size,
            reason=reason,
        )
        self._next_seq += 1
        if self._journal is not None:
            self._journal.closed(message)
        self._unfinished[message.seq] = message
        self._ready.append(message)
        self._ready_event.set()
        self._ready_event = anyio.Event()

    def _finish(self, messages: Sequence[Message], delivered: bool) -> None:
        for message in messages:
            if self._unfinished.pop(message.seq, None) is None:
                continue
            self._buffered -= len(message.body)
            self._stats.records_pending -= message.records
            self._watermark.finish(message.seq, delivered)
        if self._journal is not None:
            self._journal.finished(messages, delivered)
        self._room_event.set()
        self._room_event = anyio.Event()

    # -- background tasks ----------------------------------------------------------

    async def _timer(self) -> None:
        with self._timer_scope:
            while True:
                await self._timer_event.wait()
                self._timer_event = anyio.Event()
                generation = self._open_generation
                await anyio.sleep_until(self._opened_at + self._config.flush_interval)
                if self._packer.records and generation == self._open_generation:
                    self._close_open_message("timer")

    def _next_batch(self) -> list[Message]:
        ready = self._ready
        batch = [ready.popleft()]
        size = batch[0].size
        limit = self._config.max_message_bytes
        while ready and len(batch) < MAX_BATCH_ENTRIES and size + ready[0].size <= limit:
            message = ready.popleft()
            batch.append(message)
            size += message.size
        return batch

    async def _sender(self) -> None:
        # Shielded: cancelling the SDK's block must not abort the drain; the
        # shutdown code cancels this scope itself once the deadline passes.
        with anyio.CancelScope(shield=True) as scope:
            self._sender_scopes.append(scope)
            try:
                while True:
                    while not self._ready:
                        if self._stopping:
                            return
                        await self._ready_event.wait()
                    batch = self._next_batch()
                    failed, error = await self._deliver(batch, self._acknowledge)
                    if failed:
                        await self._give_up(failed, error, "send")
            finally:
                self._senders_running -= 1
                if self._senders_running == 0:
                    self._senders_done.set()

    async def _spawn_handler_task(self, handler: Callable[[], Any]) -> None:
        try:
            await handler()
        finally:
            self._handlers_running -= 1
            if self._handlers_running == 0:
                self._handlers_idle.set()

    def _spawn_handler(self, handler: Callable[[], Any]) -> None:
        if self._task_group is None or self._state is _CLOSED:
            logger.error("event handler coroutine dropped: the SDK is closed")
            return
        if self._handlers_running == 0:
            self._handlers_idle = anyio.Event()
        self._handlers_running += 1
        self._task_group.start_soon(self._spawn_handler_task, handler)

    # -- delivery ------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        # Exponential backoff with full jitter (AWS architecture blog's "Full Jitter").
        cap = min(self._config.backoff_max, self._config.backoff_base * 2 ** (attempt - 1))
        return self._random.uniform(0, cap)

    def _acknowledge(self, messages: Sequence[Message]) -> None:
        records = sum(m.records for m in messages)
        size = sum(len(m.body) for m in messages)
        stats = self._stats
        stats.records_delivered += records
        stats.messages_sent += len(messages)
        stats.bytes_sent += size
        self._finish(messages, delivered=True)
        if self._events.has_handlers("flush"):
            self._events.emit(
                "flush",
                {
                    "messages": len(messages),
                    "records": records,
                    "bytes": size,
                    "reasons": dict(Counter(m.reason for m in messages)),
                },
            )

    async def _deliver(
        self,
        batch: list[Message],
        on_ack: Callable[[Sequence[Message]], None],
    ) -> tuple[list[Message], BaseException | None]:
        """Send ``batch`` with retries; returns the messages that finally failed and why.

        Only entries that failed are resent, so an acknowledged entry is never
        sent twice by this loop (a lost answer can still cause a duplicate:
        delivery is at-least-once).
        """
        config = self._config
        pending = batch
        gave_up: list[Message] = []
        error: BaseException | None = None
        give_up_at = anyio.current_time() + config.retry_budget
        attempt = 0
        while pending:
            attempt += 1
            self._stats.requests += 1
            if self._events.has_handlers("send"):
                self._events.emit(
                    "send",
                    {
                        "messages": len(pending),
                        "records": sum(m.records for m in pending),
                        "bytes": sum(len(m.body) for m in pending),
                        "attempt": attempt,
                    },
                )
            retry: list[Message] = []
            try:
                with anyio.fail_after(config.request_timeout * 2):
                    outcome = await self._transport.send(pending)
            except SendError as exc:
                error = exc
                (retry if exc.retryable else gave_up).extend(pending)
            except TimeoutError as exc:
                error = SendError(f"request timed out: {exc}", retryable=True, code="Timeout")
                retry.extend(pending)
            except Exception as exc:  # a transport bug must not kill the sender
                logger.exception("transport raised unexpectedly")
                error = exc
                gave_up.extend(pending)
            else:
                by_id = {m.id: m for m in pending}
                acked = [by_id[i] for i in outcome.acked if i in by_id]
                if acked:
                    on_ack(acked)
                for failure in outcome.failed:
                    message = by_id.get(failure.id)
                    if message is None:
                        continue
                    error = SendError(
                        f"SQS refused a message: {failure.code}: {failure.message}",
                        retryable=failure.retryable,
                        code=failure.code,
                    )
                    (retry if failure.retryable else gave_up).append(message)
                answered = {m.id for m in acked} | {f.id for f in outcome.failed}
                missing = [m for m in pending if m.id not in answered]
                if missing:  # an answer that skips entries: treat them as failed, retryable
                    error = SendError("SQS answer did not mention some entries", retryable=True)
                    retry.extend(missing)
            if not retry:
                break
            delay = self._backoff(attempt)
            if attempt >= config.max_attempts or anyio.current_time() + delay > give_up_at:
                gave_up.extend(retry)
                break
            self._stats.retries += 1
            logger.info("retrying %d messages in %.2fs after: %s", len(retry), delay, error)
            await anyio.sleep(delay)
            pending = retry
        return gave_up, error

    async def _give_up(
        self, messages: list[Message], error: BaseException | None, operation: str
    ) -> None:
        """Spool ``messages`` (or keep them for DeliveryError) and fire ``error``."""
        records = sum(m.records for m in messages)
        reason = str(error) if error is not None else "not delivered"
        spooled_to: Path | None = None
        spool_error: BaseException | None = None
        if self._spool is not None:
            spool = self._spool
            try:
                # Shielded so that a deadline cannot interrupt a half-written append
                # between the file write and the bookkeeping below.
                with anyio.CancelScope(shield=True):
                    spooled_to = await anyio.to_thread.run_sync(
                        spool.append,
                        self._queue_url,
                        [(m.body, m.records) for m in messages],
                        reason,
                    )
            except OSError as exc:
                spool_error = exc
                logger.error("could not write the spool file: %s", exc)
        if spooled_to is not None:
            self._stats.records_spooled += records
            self._stats.messages_spooled += len(messages)
        else:
            self._stats.records_failed += records
            self._stats.messages_failed += len(messages)
            self._undelivered.extend(messages)
        self._finish(messages, delivered=False)
        logger.warning(
            "%d records in %d messages not delivered (%s): %s",
            records,
            len(messages),
            f"spooled to {spooled_to}" if spooled_to else "not spooled",
            reason,
        )
        await self._events.emit_async(
            "error",
            {
                "operation": operation,
                "records": records,
                "messages": len(messages),
                "spooled": spooled_to is not None,
                "spool_path": str(spooled_to) if spooled_to else None,
                "exception": error if spool_error is None else spool_error,
            },
        )

    # -- replay --------------------------------------------------------------------

    async def _replay_file(self, path: Path, result: ReplayResult) -> None:
        entries, invalid = await anyio.to_thread.run_sync(read_spool, path)
        if invalid:
            logger.warning("%s: %d unreadable lines kept in place", path, len(invalid))
        queue_name = self._queue_url.rsplit("/", 1)[-1]
        keep: list[bytes] = list(invalid)
        todo: deque[tuple[Message, bytes]] = deque()
        for index, entry in enumerate(entries):
            if entry.queue_url.rsplit("/", 1)[-1] != queue_name:
                keep.append(entry.raw)
                result.messages_other_queue += 1
                continue
            body = entry.body.encode("utf-8")
            message = Message(
                seq=index,
                body=body,
                records=entry.records,
                size=len(body) + self._attributes_size,
                reason="replay",
            )
            todo.append((message, entry.raw))

        def acknowledge(messages: Sequence[Message]) -> None:
            self._stats.messages_replayed += len(messages)
            self._stats.records_replayed += sum(m.records for m in messages)
            self._stats.bytes_sent += sum(len(m.body) for m in messages)
            result.messages_sent += len(messages)
            result.records_sent += sum(m.records for m in messages)

        while todo:
            batch: list[tuple[Message, bytes]] = [todo.popleft()]
            size = batch[0][0].size
            while (
                todo
                and len(batch) < MAX_BATCH_ENTRIES
                and size + todo[0][0].size <= self._config.max_message_bytes
            ):
                size += todo[0][0].size
                batch.append(todo.popleft())
            raw_by_seq = {m.seq: raw for m, raw in batch}
            failed, error = await self._deliver([m for m, _ in batch], acknowledge)
            for message in failed:
                keep.append(raw_by_seq[message.seq])
                result.messages_left += 1
                result.records_left += message.records
            if failed:
                await self._events.emit_async(
                    "error",
                    {
                        "operation": "replay",
                        "records": sum(m.records for m in failed),
                        "messages": len(failed),
                        "spooled": True,
                        "spool_path": str(path),
                        "exception": error,
                    },
                )
            remaining = keep + [raw for _, raw in todo]
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(rewrite_spool, path, remaining)

    # -- shutdown ------------------------------------------------------------------

    async def _shutdown(self) -> None:
        if self._state is not _OPEN:
            return
        self._state = _CLOSING
        deadline = anyio.current_time() + self._config.shutdown_timeout

        def remaining() -> float:
            return max(0.0, deadline - anyio.current_time())

        task_group = self._task_group
        assert task_group is not None
        try:
            with anyio.CancelScope(shield=True):
                self._close_open_message("close")
                with anyio.move_on_after(remaining()):
                    await self._watermark.wait_through(self._next_seq - 1)
                self._stopping = True
                self._ready_event.set()
                self._timer_scope.cancel()
                with anyio.move_on_after(remaining()):
                    await self._senders_done.wait()
                for scope in self._sender_scopes:
                    scope.cancel()
                if self._handlers_running:
                    with anyio.move_on_after(remaining()):
                        await self._handlers_idle.wait()
        finally:
            # The task group must be exited outside our own scopes (anyio scopes
            # nest strictly); every task in it has stopped or was cancelled above.
            task_group.cancel_scope.cancel()
            try:
                await task_group.__aexit__(None, None, None)
            finally:
                self._task_group = None
                await self._close_after_tasks()

    async def _close_after_tasks(self) -> None:
        with anyio.CancelScope(shield=True):
            try:
                leftovers = [self._unfinished[seq] for seq in sorted(self._unfinished)]
                self._ready.clear()
                if leftovers:
                    timeout = PanoplyError(
                        f"shutdown_timeout ({self._config.shutdown_timeout}s) passed before "
                        "these messages were acknowledged"
                    )
                    await self._give_up(leftovers, timeout, "shutdown")
            finally:
                self._state = _CLOSED
                self._events.set_spawner(None)
                try:
                    await self._transport.aclose()
                finally:
                    redactor.remove(self._credentials.apisecret)
                    if self._journal is not None:
                        await self._journal.aclose()
