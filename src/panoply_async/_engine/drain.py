"""Leaving the block: the drain that delivers what was accepted, within a deadline."""

from __future__ import annotations

import anyio

from .._durable.spool import SpoolFile
from ..errors import PanoplyError
from .buffer import WriteBuffer
from .delivery import Delivery
from .events import EventEmitter
from .journal import WalJournal
from .transport import Transport

__all__ = ["close_parts", "drain"]


async def drain(
    buffer: WriteBuffer, delivery: Delivery, events: EventEmitter, deadline: float
) -> None:
    """Deliver everything accepted, then stop the senders, by ``deadline`` (anyio time).

    Writes still running (or made by event handlers while the block drains) are
    accepted and go out too; the drain ends when everything written was sent and
    nothing more arrives, or at the deadline. Then ``seal()``: later writes raise,
    none is left behind. Run it shielded: it is the shutdown path.
    """

    def remaining() -> float:
        return max(0.0, deadline - anyio.current_time())

    with anyio.move_on_after(remaining()):
        while True:
            await buffer.wait_writers()
            buffer.close_open_message("close")
            last = buffer.next_seq - 1
            await delivery.watermark.wait_through(last)
            await events.wait_handlers()
            if buffer.quiet and buffer.next_seq - 1 == last:
                break
    buffer.seal()
    delivery.stop()
    buffer.stop_timer()
    with anyio.move_on_after(remaining()):
        await delivery.wait_stopped()
    delivery.cancel()
    with anyio.move_on_after(remaining()):
        await events.wait_handlers()


async def close_parts(
    delivery: Delivery,
    spool: SpoolFile | None,
    transport: Transport,
    journal: WalJournal | None,
    shutdown_timeout: float,
) -> None:
    """After the drain and the task group: give up what is left (spooled or reported),
    then close the spool, the transport and the log, whatever fails on the way."""
    with anyio.CancelScope(shield=True):
        try:
            leftovers = delivery.leftovers()
            if leftovers:
                timeout = PanoplyError(
                    f"shutdown_timeout ({shutdown_timeout}s) passed before "
                    "these messages were acknowledged"
                )
                await delivery.give_up(leftovers, timeout, "shutdown")
        finally:
            if spool is not None:
                spool.close()  # releases its lock: replay may take the file now
            try:
                await transport.aclose()
            finally:
                if journal is not None:
                    await journal.aclose()
