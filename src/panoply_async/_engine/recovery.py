"""Recovery in the background: what dead processes left in a ``wal_dir``, resent.

First this SDK's own slot (what its previous owner left), then every other slot
whose lock is free: its owner died (SIGKILL, OOM, a recycled worker), so its
records would otherwise wait on disk for someone to open that directory. Each
slot's unacknowledged frames go through delivery as messages of their own,
sharing ``max_buffer_bytes`` with new writes, which are accepted meanwhile.
An adopted slot is closed (its finished segments deleted, its lock released)
once its frames finished. States logged with the records (``states.py``)
are committed once recovery delivered what they cover: event ``source-state``
with ``"recovered": True``, and :meth:`Recovery.states` for the CLI.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from .._durable.wal.format import DELIVERED, SPOOLED, RecoveredFrame, RecoveryReport
from .._durable.wal.log import WriteAheadLog
from .._durable.wal.slots import open_if_free, other_slots
from .._durable.wal.states import LoggedState, StateLog, committable_states, read_states
from .._wire.packing import pack_lines
from ..errors import WALError, WALRecoveryError
from .blocking import run_blocking
from .events import EventEmitter
from .stats import Stats

__all__ = ["Recovery", "RecoveryHooks", "Unit"]

logger = logging.getLogger("panoply_async")

#: (log, frame id, enqueue(), parts) -> seq: the journal maps the message to its frame
EnqueueFrame = Callable[[WriteAheadLog, int, Callable[[], int], int], int]


def split_body(body: bytes, body_limit: int) -> list[bytes]:
    """A recovered body logged under a larger ``max_message_bytes``, as bodies of at
    most ``body_limit`` bytes; a record longer than that alone goes as it is (the
    queue may take it: its limit is its own; if not, it is spooled or reported)."""
    bodies: list[bytes] = []
    lines: list[bytes] = []
    for line in body.splitlines(keepends=True):
        if len(line) > body_limit:
            bodies.append(line)
        else:
            lines.append(line)
    return pack_lines(lines, body_limit) + bodies


@dataclass
class RecoveryHooks:
    """What recovery needs of the SDK's write path and delivery."""

    #: ``enqueue(body, records)``: count a message as accepted, submit it, return its seq
    enqueue: Callable[[bytes, int], int]
    #: wait until every message up to a seq finished
    wait_through: Callable[[int], Awaitable[None]]
    buffered: Callable[[], int]
    max_buffer_bytes: int
    stats: Stats
    events: EventEmitter


@dataclass
class Unit:
    """One slot's leftovers: its frames, its logged states, and their outcomes."""

    wal: WriteAheadLog
    frames: list[RecoveredFrame]
    report: RecoveryReport
    states: list[LoggedState]
    spooled: set[int]
    own: bool = False
    outcomes: dict[int, int] = field(default_factory=dict)


class Recovery:
    """Resends the leftovers of this SDK's slot and of dead owners' slots."""

    def __init__(
        self, root: Path, make: Callable[[Path], WriteAheadLog], body_limit: int
    ) -> None:
        self._root = root
        self._make = make
        self._body_limit = body_limit
        self._units: list[Unit] = []
        self._by_wal: dict[WriteAheadLog, Unit] = {}
        self._adopted: list[WriteAheadLog] = []
        self._own_dir = root
        self._stopped = False
        #: key -> (state_id, state): the states recovery committed
        self.states: dict[str, tuple[Any, Any]] = {}
        self.own_report = RecoveryReport()

    def begin(self) -> None:
        """On the event loop (an SDK may be created outside one), before :meth:`run`."""
        self._scope = anyio.CancelScope()
        #: set once recovery is over (or was stopped)
        self.done = anyio.Event()

    def add(self, unit: Unit) -> None:
        self._units.append(unit)
        self._by_wal[unit.wal] = unit
        if unit.own:
            self.own_report = unit.report
            self._own_dir = unit.wal.directory

    def adopted(self) -> list[WriteAheadLog]:
        """Adopted slots still open (closed by the journal when the SDK closes)."""
        return [wal for wal in self._adopted if wal.is_open]

    def note(self, wal: WriteAheadLog, outcomes: list[tuple[int, int]]) -> None:
        """Outcomes of frames of ``wal``: kept when they are recovered frames."""
        unit = self._by_wal.get(wal)
        if unit is not None:
            unit.outcomes.update(outcomes)

    def stop(self) -> None:
        # The flag as well as the cancellation: the task may not have reached a
        # checkpoint yet, and nothing may be enqueued once the drain began.
        self._stopped = True
        self._scope.cancel()

    async def run(self, hooks: RecoveryHooks, enqueue_frame: EnqueueFrame) -> None:
        try:
            with self._scope:
                for unit in list(self._units):
                    await self._resend(unit, hooks, enqueue_frame)
                    self._done_with(unit)
                for number in other_slots(self._root, self._own_slot()):
                    if self._stopped:
                        return
                    await self._adopt(number, hooks, enqueue_frame)
        finally:
            self.done.set()

    async def _adopt(self, number: int, hooks: RecoveryHooks, enqueue_frame: EnqueueFrame) -> None:
        """Resend a dead owner's slot, then release it; a slot that cannot be read is
        left as it is (logged), never a failure of this SDK."""
        try:
            wal = await run_blocking(open_if_free, self._root, number, self._make)
        except (OSError, WALError) as exc:
            logger.error("could not adopt slot %d of %s: %s", number, self._root, exc)
            return
        if wal is None:
            return  # its owner lives
        self._adopted.append(wal)
        try:
            unit = await run_blocking(self._read, wal)
        except OSError as exc:
            logger.error("could not read the write-ahead log in %s: %s", wal.directory, exc)
            wal.abandon()  # not close(): that would retire segments it did not read
            return
        self.add(unit)
        await self._resend(unit, hooks, enqueue_frame)
        keep_states = self._done_with(unit)
        await run_blocking(self._close_adopted, wal, keep_states)

    def _own_slot(self) -> int:
        own = self._own_dir
        return 0 if own == self._root else int(own.name.split("-", 1)[1])

    @staticmethod
    def _read(wal: WriteAheadLog) -> Unit:
        frames, report = wal.recover()
        states, spooled = read_states(StateLog(wal.directory).read())
        return Unit(wal, frames, report, states, spooled)

    def _done_with(self, unit: Unit) -> bool:
        """Forget a resent unit's bodies; True when its slot's states must stay: some
        frame is still in the log, or the slot holds another queue's segments."""
        keep = bool(unit.report.other_queue_segments) or any(
            unit.outcomes.get(f.frame_id) not in (DELIVERED, SPOOLED) for f in unit.frames
        )
        self._by_wal.pop(unit.wal, None)
        self._units.remove(unit)
        return keep

    @staticmethod
    def _close_adopted(wal: WriteAheadLog, keep_states: bool) -> None:
        try:
            if not keep_states:  # every state was resolved: none is left to recover
                StateLog(wal.directory).remove()
            wal.close()
        except OSError as exc:
            logger.error("could not close the adopted log in %s: %s", wal.directory, exc)

    async def _resend(self, unit: Unit, hooks: RecoveryHooks, enqueue_frame: EnqueueFrame) -> None:
        report = unit.report
        where = unit.wal.directory
        if report.records or report.dropped or report.foreign_files:
            logger.warning("wal_dir %s: %s", where, report.describe())
        if report.dropped or report.foreign_files or report.other_queue_segments:
            await hooks.events.emit_async("error", {
                "operation": "recover", "records": 0, "messages": 0, "spooled": False,
                "spool_path": None, "exception": WALRecoveryError(report),
            })
        in_flight: deque[int] = deque()
        for frame in unit.frames:
            bodies = [frame.body]
            if len(frame.body) > self._body_limit:  # logged under a larger limit
                bodies = split_body(frame.body, self._body_limit)
            for body in bodies:
                if self._stopped:
                    return
                while in_flight and hooks.buffered() + len(body) > hooks.max_buffer_bytes:
                    await hooks.wait_through(in_flight.popleft())
                hooks.stats.records_recovered += body.count(b"\n")
                enqueue = partial(hooks.enqueue, body, body.count(b"\n"))
                in_flight.append(enqueue_frame(unit.wal, frame.frame_id, enqueue, len(bodies)))
        if in_flight:
            await hooks.wait_through(in_flight[-1])
        self._commit_states(unit, hooks.events)

    def _commit_states(self, unit: Unit, events: EventEmitter) -> None:
        not_delivered = set(unit.spooled)
        not_delivered.update(
            f.frame_id for f in unit.frames if unit.outcomes.get(f.frame_id) != DELIVERED
        )
        for key, (state_id, state) in committable_states(unit.states, not_delivered).items():
            self.states[key] = (state_id, state)
            if events.has_handlers("source-state"):
                events.emit("source-state", {
                    "state_id": state_id, "state": state, "key": key, "recovered": True,
                })
