"""Drain-back: the SDK's own spool sent again once SQS answers (outages of minutes).

With ``spool_dir``, a message that keeps failing for ``retry_budget`` seconds
overflows to the spool, so that the write buffer frees up and ``write()`` goes
on. While the SDK is open this task sends those messages back by itself: after
an acknowledgement (a request succeeded: the queue answers again) and, while
none succeeds, as a probe every ``backoff_max`` seconds.

A round takes the spool file written so far (:meth:`SpoolFile.hand_over`: it
stays locked, so no ``replay`` elsewhere takes it, and later overflow goes to a
new file), resends it with :func:`replay_claimed` and stops at the first
request that fails for good. A file that still holds entries stays claimed for
the next round; at close every claim is released, and what is left is an
ordinary spool file for ``replay``.

Counting: a message drained back leaves ``records_spooled`` (which means "in
the spool now") and joins ``records_delivered``; ``records_unspooled`` counts
such records, so ``accepted == delivered + spooled + failed + pending`` holds;
their acknowledgement fires ``flush`` with the reason ``"unspool"``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

import anyio
import anyio.abc

from .._durable.spool import SpoolClaim, SpoolFile
from .delivery import Delivery
from .replay import ReplayResult, replay_claimed
from .transport import Message

__all__ = ["DrainBack"]

logger = logging.getLogger("panoply_async")

T = TypeVar("T")

#: seconds between rewrites of a spool file while it drains (a crash resends at
#: most this much; rewriting after every request would copy the file each time)
REWRITE_EVERY = 1.0


class DrainBack:
    """Sends an SDK's own spooled messages back to its queue while the SDK is open."""

    def __init__(
        self, spool: SpoolFile | None, delivery: Delivery, attributes_size: int
    ) -> None:
        # Without a spool there is nothing to drain: run() returns at once.
        self._spool = spool
        self._delivery = delivery
        self._attributes_size = attributes_size
        #: the file handed over that still holds entries, if any
        self._claim: SpoolClaim | None = None
        #: entries SQS refused (a non-retryable answer): kept in their file, not resent
        self._refused: set[bytes] = set()
        self._stopping = False

    def start(self, task_group: anyio.abc.TaskGroup) -> None:
        """Create the events and start :meth:`run` in ``task_group`` (the SDK's)."""
        self._idle = anyio.Event()
        self._idle.set()
        self._scope: anyio.CancelScope | None = None
        task_group.start_soon(self.run)

    @property
    def _spooled(self) -> bool:
        return self._delivery.stats.messages_spooled > 0 or self._claim is not None

    async def run(self) -> None:
        """The background task: a round whenever the queue answers, or to probe it."""
        delivery = self._delivery
        probe = delivery.config.backoff_max
        while self._spool is not None and not self._stopping:
            # Woken by every acknowledgement, and every backoff_max seconds so that
            # a spool is probed when no live traffic succeeds to signal recovery.
            with anyio.move_on_after(probe):
                await delivery.wait_acknowledged()
            if not self._stopping and self._spooled:
                await self._guarded_round()

    async def finish(self, deadline: float) -> None:
        """At shutdown, after the live drain: end the running round (at once while
        the queue fails, else by ``deadline``) and, if the queue answers, run a
        last round so that a healthy exit leaves no spool behind."""
        self._stopping = True
        delivery = self._delivery
        if not delivery.healthy and self._scope is not None:
            self._scope.cancel()
        with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
            await self._idle.wait()
            if delivery.healthy and self._spooled:
                await self._guarded_round()
        if self._scope is not None:  # the deadline passed during a round
            self._scope.cancel()
            await self._idle.wait()

    def close(self) -> None:
        """Release the files still claimed: they are ordinary spool files now."""
        claim, self._claim = self._claim, None
        if claim is not None:
            claim.release()

    async def _guarded_round(self) -> None:
        self._idle = anyio.Event()
        try:
            with anyio.CancelScope() as self._scope:
                await self._round()
        except OSError as exc:  # a disk fault: the entries stay where they are
            logger.error("could not drain the spool back: %s", exc)
        finally:
            self._scope = None
            self._idle.set()

    async def _round(self) -> None:
        # One file at a time: the oldest held first, then whatever overflowed since,
        # so that probes during a long outage do not pile up claimed files.
        assert self._spool is not None
        while True:
            claim = self._claim
            if claim is None:
                claim = self._claim = await self._blocking(self._spool.hand_over)
                if claim is None:
                    return
            else:  # rewritten by an earlier round
                await self._blocking(claim.reload)
            clean = await replay_claimed(
                claim, ReplayResult(), self._delivery, self._attributes_size,
                on_ack=self._count, stop_on_failure=True, rewrite_every=REWRITE_EVERY,
                report=False, refused=self._refused, blocking=self._blocking,
            )
            if claim.held and not clean:
                return  # the queue fails again: the next round goes on from here
            if claim.held:  # what is left was refused or is unreadable: not ours to send
                logger.warning("%s: entries SQS refused or unreadable lines left", claim.path)
                claim.release()
            self._claim = None

    async def _blocking(self, fn: Callable[[], T]) -> T:
        if self._stopping:
            # Shutdown may run at interpreter exit, where Python 3.12 refuses new
            # threads: the last round's few file operations run on the loop.
            return fn()
        return await anyio.to_thread.run_sync(fn)

    def _count(self, messages: Sequence[Message]) -> None:
        stats = self._delivery.stats
        records, count = sum(m.records for m in messages), len(messages)
        stats.records_spooled -= records
        stats.messages_spooled -= count
        stats.records_unspooled += records
        stats.messages_unspooled += count
        stats.records_delivered += records
        stats.messages_sent += count
        size = sum(len(m.body) for m in messages)
        stats.bytes_sent += size
        events = self._delivery.events
        if events.has_handlers("flush"):
            events.emit("flush", {"messages": count, "records": records, "bytes": size,
                                  "reasons": {"unspool": count}})
