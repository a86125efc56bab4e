"""Which messages are finished, in order; and checkpoints over that order.

Every closed message gets the next sequence number (``seq``). A message is
*finished* when it was acknowledged by SQS, spooled or given up on. The
watermark turns those out-of-order events into "everything up to seq N is
finished", which is what ``flush()``, shutdown and :class:`Checkpoint` wait for.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import anyio

__all__ = ["Checkpoint", "Watermark"]


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

    __slots__ = ("_seq", "_watermark")

    def __init__(self, watermark: Watermark, seq: int) -> None:
        self._watermark = watermark
        self._seq = seq

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

    def __repr__(self) -> str:
        state = "delivered" if self.delivered else "failed" if self.failed else "pending"
        return f"<Checkpoint {state}>"
