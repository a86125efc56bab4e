"""The write path (DESIGN §2): record -> line -> open message -> closed message.

:class:`WriteBuffer` encodes each record at the call, appends its line to the
open message, and closes the message when it is full, when the flush timer
fires (``flush_interval`` after its first record), on ``flush()`` or at exit.
A closed message gets the next sequence number and is handed to delivery
through ``submit``. Buffered bytes (open message, queued and in flight) are
bounded by ``max_buffer_bytes``: a write that would pass the bound waits for
:meth:`WriteBuffer.release`, which delivery calls when messages finish.

A write-ahead log plugs in as the ``packer`` (its open message lives in a log
frame) and around ``submit``/``release`` (see ``journal.py``); the write path
itself knows nothing of it.

Speed: ``SDK.write`` and ``SDK.write_many`` are this class's bound methods
(the SDK binds them on its instance), so the common case of ``await
conn.write()`` is one coroutine that appends to a ``bytearray``: no further
Python call per record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
import anyio.lowlevel
from orjson import dumps as _dumps

from .._wire.batch import encode_batch, encode_each
from .._wire.encoding import NONCHARACTER_LEAD, TABLE_KEY, Encoder
from .._wire.encoding import default as _default
from .._wire.packing import Packer
from ..errors import BufferFullError, RecordError
from .stats import Stats
from .transport import Message

__all__ = ["WriteBuffer"]

#: batches of a table that skip the one-call serialisation after it missed
WHOLE_BATCH_RETRY = 16


def _not_wired(message: Message) -> None:
    raise RuntimeError("WriteBuffer.submit was not wired to delivery")


class WriteBuffer:
    """Reservation, the open message, the flush timer and backpressure."""

    def __init__(
        self,
        *,
        body_limit: int,
        max_buffer_bytes: int,
        flush_interval: float,
        attributes_size: int,
        stats: Stats,
        not_open: Callable[[str], RuntimeError],
        packer: Packer | None = None,
    ) -> None:
        self.encoder = Encoder(body_limit)
        self._tails = self.encoder.tails
        self._line_limit = body_limit
        self._whole_batch_skips: dict[bytes, int] = {}
        self._max_buffer = max_buffer_bytes
        self._flush_interval = flush_interval
        self._attributes_size = attributes_size
        # A write-ahead log's packer builds the open message in the log itself.
        self._packer = packer or Packer(body_limit)
        self._stats = stats
        self._not_open = not_open
        #: where closed messages go (delivery's ``submit``)
        self.submit: Callable[[Message], None] = _not_wired
        #: False before entry and once shutdown sealed the buffer: writes raise
        self.accepting = False
        # Writes waiting inside _reserve(): shutdown lets them finish (seal() then
        # makes those still waiting raise), so a write either lands or raises.
        self._writers = 0
        self._writers_idle: anyio.Event | None = None
        self._sealed = False
        #: bytes accepted and not yet finished: open message, queued and in flight
        self.buffered = 0
        #: seq of the next message to close
        self.next_seq = 0
        self._opened_at = 0.0
        self._open_generation = 0

    def start(self) -> None:
        """Create the events; call inside the event loop, before the timer runs."""
        self._room_event = anyio.Event()
        self._timer_event = anyio.Event()
        self._timer_scope = anyio.CancelScope()

    def ticket(self) -> int:
        """The highest message seq that holds any record written so far."""
        return self.next_seq if self._packer.records else self.next_seq - 1

    # -- writing (the hot path) ------------------------------------------------------

    async def write(self, table: str, data: Mapping[str, Any]) -> None:
        """Accept one record for ``table``.

        The record is encoded now: a bad record raises a :class:`RecordError`
        (``ValueError``; :class:`RecordTypeError` is also a ``TypeError``) here
        and is not buffered, and later changes to ``data`` do not affect what
        is sent. Waits only when ``max_buffer_bytes`` are already buffered.
        """
        if not self.accepting:
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
                if size <= packer.room and self.buffered + size <= self._max_buffer:
                    # The common case: the record fits without closing the message.
                    if not packer.records:
                        self._opened()
                    packer.append_record(body, tail)
                    self.buffered += size
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
        wait were accepted and the others were not; if the SDK's drain passes
        ``shutdown_timeout`` meanwhile, ``RuntimeError`` says how many were.
        """
        if not self.accepting:
            raise self._not_open("write_many")
        tail = self._tails.get(table) if type(table) is str else None
        if tail is None:
            tail = self.encoder.tail(table)
        if type(records) is not list:
            records = list(records)
        if not records:
            return 0
        # After the one-call path missed for a table (its records hold "},{"),
        # the next batches of that table skip it for a while instead of paying
        # for orjson twice; it is tried again now and then, as records change.
        skip = self._whole_batch_skips.get(tail, 0)
        encoded = encode_batch(records, tail, self._line_limit, whole=not skip)
        if encoded is None:
            return await self._write_each(table, records, tail)
        if skip:
            self._whole_batch_skips[tail] = skip - 1
        elif not encoded.whole:
            self._whole_batch_skips[tail] = WHOLE_BATCH_RETRY
        await self._append_lines(encoded.lines, len(records))
        return len(records)

    async def write_lines(self, lines: bytes | bytearray, count: int) -> None:
        """Accept ``count`` records already encoded as whole lines by an
        :class:`Encoder` with this buffer's line limit, joined; ``count`` must be
        their number (not recounted: this path exists to save passes over the
        bytes). A line over the limit raises ``ValueError`` when reached (the
        lines before it are accepted)."""
        if not self.accepting:
            raise self._not_open("write_lines")
        if count < 0 or (count and not lines.endswith(b"\n")) or count > len(lines) // 3:
            raise ValueError(f"write_lines(): expected {count} whole lines")
        if count:
            await self._append_lines(lines, count)

    async def _append_lines(self, lines: bytes | bytearray, count: int) -> None:
        """Buffer ``count`` whole lines: as many at a time as the open message and
        the buffer bound allow; a line that does not fit goes through ``_accept``
        (which closes the message, or waits for room)."""
        packer, stats = self._packer, self._stats
        pos, total, left = 0, len(lines), count
        with memoryview(lines) as view:
            while pos < total:
                room = min(packer.room, self._max_buffer - self.buffered)
                if total - pos <= room:
                    end, taken = total, left
                else:
                    end = lines.rfind(b"\n", pos, pos + room) + 1
                    if end <= pos:  # not even the next line fits
                        end = lines.index(b"\n", pos) + 1
                        if end - pos > self._line_limit:  # only write_lines() can get here
                            raise ValueError(
                                f"write_lines(): a line exceeds {self._line_limit} bytes; "
                                f"{count - left} of {count} records were accepted"
                            )
                        try:
                            await self._accept(bytes(view[pos:end]))
                        except RuntimeError as exc:  # sealed by shutdown while waiting
                            raise RuntimeError(
                                f"write_many(): {exc}; {count - left} of {count} records "
                                "were accepted"
                            ) from None
                        pos, left = end, left - 1
                        continue
                    # Count the lines on the shorter side of the cut.
                    if end - pos <= total - end:
                        taken = lines.count(b"\n", pos, end)
                    else:
                        taken = left - lines.count(b"\n", end, total)
                if not packer.records:
                    self._opened()
                packer.extend(view[pos:end], taken)
                self.buffered += end - pos
                stats.records_accepted += taken
                stats.records_pending += taken
                pos, left = end, left - taken

    async def _write_each(
        self, table: str, records: list[Mapping[str, Any]], tail: bytes
    ) -> int:
        """``write_many()`` record by record, for batches ``encode_batch`` refuses."""
        try:
            bodies, general = encode_each(self.encoder, table, records, tail)
        except RecordError:
            self._stats.records_rejected += 1
            raise
        tail_len = len(tail)
        for taken, body in enumerate(bodies):
            try:
                if general and id(body) in general:
                    await self._accept(body)
                else:
                    await self._reserve(len(body) + tail_len)
                    self._add_record(body, tail, len(body) + tail_len)
            except RuntimeError as exc:  # sealed by shutdown while waiting
                raise RuntimeError(
                    f"write_many(): {exc}; {taken} of {len(bodies)} records were accepted"
                ) from None
        return len(bodies)

    # -- the slow path -------------------------------------------------------------

    def _encode(self, table: str, data: Mapping[str, Any]) -> bytes:
        try:
            return self.encoder.encode(table, data)
        except RecordError:
            self._stats.records_rejected += 1
            raise

    def write_nowait(self, table: str, data: Mapping[str, Any]) -> None:
        """Accept one record as :meth:`write` does, or raise :class:`BufferFullError`
        at once, counted in ``stats.records_shed``, when it does not fit now."""
        if not self.accepting:
            raise self._not_open("write_nowait")
        line = self._encode(table, data)
        size, packer = len(line), self._packer
        if self.buffered + size > self._max_buffer:
            self._shed(f"buffer ({self.buffered:,} bytes)")
        if packer.closes(size) and packer.size + size > packer.body_limit:
            self.close_open_message("full")
        if packer.room < 0 and not packer.records:
            # No frame can begin now: the log is full, or its next segment is not
            # ready yet. write() would wait; this one must not.
            self._shed("write-ahead log")
        self._append_line(line)

    def _shed(self, where: str) -> None:
        self._stats.records_shed += 1
        raise BufferFullError(f"write_nowait(): the {where} is full; the record was not accepted")

    async def _accept(self, line: bytes) -> None:
        """Buffer a whole line from the general encoder, waiting for room if needed."""
        await self._reserve(len(line))
        self._append_line(line)

    def _append_line(self, line: bytes) -> None:
        size = len(line)
        stats = self._stats
        finished = self._packer.add(line)
        self.buffered += size
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
        After every await it checks that shutdown has not sealed the buffer: a
        line added after the last message was closed would never be sent.
        """
        self._writers += 1
        try:
            yielded = False
            while True:
                # A write-ahead log's packer has no room while the log is full.
                log_full = self._packer.room < 0 and not self._packer.records
                if self.buffered + size > self._max_buffer or log_full:
                    await self._room_event.wait()
                elif not yielded and self._packer.closes(size):
                    if self._packer.size + size > self._packer.body_limit:
                        self.close_open_message("full")
                    await anyio.lowlevel.checkpoint()
                    yielded = True
                else:
                    return
                if self._sealed:
                    raise RuntimeError(
                        "the SDK closed while this write waited for buffer room "
                        "(shutdown_timeout passed); the record was not accepted"
                    )
        finally:
            self._writers -= 1
            if not self._writers and self._writers_idle is not None:
                self._writers_idle.set()

    def _add_record(self, body: bytes, tail: bytes, size: int) -> None:
        """Buffer one encoded record; the caller checked the room."""
        finished = self._packer.add_record(body, tail)
        self.buffered += size
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
            self.close_open_message("full")

    # -- shutdown ------------------------------------------------------------------

    @property
    def quiet(self) -> bool:
        """No write is waiting and the open message is empty."""
        return not self._writers and not self._packer.records

    async def wait_writers(self) -> None:
        """Wait until no write waits inside the write path (they land or raise)."""
        while self._writers:
            self._writers_idle = anyio.Event()
            await self._writers_idle.wait()

    def seal(self) -> None:
        """No line may enter from now on: new writes raise, and so do writes still
        waiting (they wake up and see it). Then close the open message."""
        self.accepting = False
        self._sealed = True
        self._room_event.set()
        self.close_open_message("close")

    # -- messages ------------------------------------------------------------------

    def _opened(self) -> None:
        self._opened_at = anyio.current_time()
        self._open_generation += 1
        self._timer_event.set()

    def close_open_message(self, reason: str) -> None:
        """Close the open message (if it holds records) and submit it."""
        taken = self._packer.take()
        if taken is not None:
            self._enqueue(taken[0], taken[1], reason)

    def _enqueue(self, body: bytes, records: int, reason: str) -> None:
        message = Message(
            seq=self.next_seq,
            body=body,
            records=records,
            size=len(body) + self._attributes_size,
            reason=reason,
            opened=0.0 if reason == "recover" else self._opened_at,
        )
        self.next_seq += 1
        self.submit(message)

    def submit_recovered(self, body: bytes, records: int) -> int:
        """Count a message recovered from a write-ahead log as accepted and submit
        it (the log maps it to its frame); returns its seq."""
        self.buffered += len(body)
        self._stats.records_accepted += records
        self._stats.records_pending += records
        self._enqueue(body, records, "recover")
        return self.next_seq - 1

    def release(self, messages: Sequence[Message], delivered: bool) -> None:
        """Messages finished (delivery calls this): free their room, wake writers."""
        stats = self._stats
        for message in messages:
            self.buffered -= len(message.body)
            stats.records_pending -= message.records
        self._room_event.set()
        self._room_event = anyio.Event()

    # -- the flush timer -------------------------------------------------------------

    async def run_timer(self) -> None:
        """Close the open message ``flush_interval`` after its first record."""
        with self._timer_scope:
            while True:
                await self._timer_event.wait()
                self._timer_event = anyio.Event()
                generation = self._open_generation
                await anyio.sleep_until(self._opened_at + self._flush_interval)
                if self._packer.records and generation == self._open_generation:
                    self.close_open_message("timer")

    def stop_timer(self) -> None:
        self._timer_scope.cancel()
