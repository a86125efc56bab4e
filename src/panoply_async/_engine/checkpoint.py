"""Which messages are finished, in order; and checkpoints over that order.

Every closed message gets the next sequence number (``seq``). A message is
*finished* when it was acknowledged by SQS, spooled or given up on. The
watermark turns those out-of-order events into "everything up to seq N is
finished", which is what ``flush()``, shutdown and :class:`Checkpoint` wait for.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Generator
from typing import Any

import anyio

__all__ = ["Checkpoint", "Coverage", "Watermark"]


class Watermark:
    """Tracks which message sequence numbers are finished, in order.

    ``through`` is the highest seq such that every message up to it finished
    (delivered, spooled or failed); ``first_failure`` is the lowest seq that was
    not delivered. Waiters are woken whenever ``through`` advances. Create it
    inside the event loop.
    """

    def __init__(self) -> None:
        self.through = -1
        self.first_failure: int | None = None
        #: every seq not delivered, in order (few: each is a spooled or failed message)
        self._failures: list[int] = []
        self._ahead: set[int] = set()
        self._advanced = anyio.Event()

    def finish(self, seq: int, delivered: bool) -> None:
        if not delivered:
            insort(self._failures, seq)
            self.first_failure = self._failures[0]
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

    def failed_between(self, first: int, last: int) -> bool:
        """True when a message from ``first`` to ``last`` (inclusive) was not delivered."""
        index = bisect_left(self._failures, first)
        return index < len(self._failures) and self._failures[index] <= last

    async def wait_through(self, seq: int) -> None:
        while self.through < seq:
            await self._advanced.wait()


class Checkpoint:
    """A mark after everything written to an SDK so far (see :meth:`SDK.checkpoint`).

    ``await cp`` (or ``await cp.wait()``) returns once every record written
    before the mark is settled: ``True`` when all of them were acknowledged
    by SQS, ``False`` when any of them was spooled or could not be
    delivered. The properties give the same answer without waiting.

    Records still in the open message when the mark was taken are covered;
    the open message is not sent early for it, so the wait lasts up to
    ``flush_interval`` plus a request (call ``flush()`` to send at once).
    """

    __slots__ = ("_next", "_seq", "_watermark")

    def __init__(self, watermark: Watermark, seq: int, next_seq: int | None = None) -> None:
        self._watermark = watermark
        self._seq = seq
        #: the seq of the first message that records written after the mark can be in
        self._next = seq + 1 if next_seq is None else next_seq

    @property
    def done(self) -> bool:
        """True once every record before the mark is settled (acknowledged, spooled or failed)."""
        return self._watermark.through >= self._seq

    @property
    def delivered(self) -> bool:
        """True once every record before the mark was acknowledged by SQS."""
        return self._watermark.delivered_through(self._seq)

    @property
    def failed(self) -> bool:
        """True as soon as any record before the mark was spooled or failed (it may not be done)."""
        first = self._watermark.first_failure
        return first is not None and first <= self._seq

    async def wait(self) -> bool:
        """Wait until :attr:`done`; returns :attr:`delivered`."""
        await self._watermark.wait_through(self._seq)
        return self.delivered

    def __await__(self) -> Generator[Any, None, bool]:
        return self.wait().__await__()

    # For combining marks (:class:`Coverage`): messages are numbered in order.

    @property
    def last_message(self) -> int:
        """The number of the last message holding a record written before the mark."""
        return self._seq

    @property
    def next_message(self) -> int:
        """The number of the first message records written after the mark can be in."""
        return self._next

    def settled_between(self, first: int, last: int) -> bool | None:
        """None while a message numbered ``first`` to ``last`` is unfinished, else
        whether all of them were acknowledged by SQS."""
        watermark = self._watermark
        if watermark.through < last:
            return None
        return not watermark.failed_between(first, last)

    def __repr__(self) -> str:
        state = "delivered" if self.delivered else "failed" if self.failed else "pending"
        return f"<Checkpoint {state}>"


class Coverage:
    """The messages that hold one producer's records, among those of others writing
    to the same SDK (e.g. one :meth:`SDK.ingest` run), so that its outcome depends
    on its own records only.

    :meth:`add` takes the marks taken just before and just after each write; the
    messages between them hold that write's records (they may hold other tasks'
    records too: a message is delivered or not as a whole). A write that waited for
    buffer room can span a message only others wrote to; that message then counts.
    """

    def __init__(self) -> None:
        self._ranges: list[list[int]] = []  # [first, last] seqs, merged, in order
        self._latest: Checkpoint | None = None

    def add(self, before: Checkpoint, after: Checkpoint) -> None:
        first, last = before.next_message, after.last_message
        self._latest = after
        if first > last:  # nothing written in between
            return
        ranges = self._ranges
        if ranges and first <= ranges[-1][1] + 1:
            ranges[-1][1] = max(ranges[-1][1], last)
        else:
            ranges.append([first, last])

    def delivered(self, through: Checkpoint | None = None) -> bool:
        """True when every message holding the producer's records (up to ``through``,
        or all) was acknowledged by SQS; False while any is unfinished."""
        latest = self._latest
        if latest is None:
            return True
        limit = through.last_message if through is not None else latest.last_message
        for first, last in self._ranges:
            if first > limit:
                break
            if not latest.settled_between(first, min(last, limit)):
                return False
        return True
