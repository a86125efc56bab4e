"""Committing a source's states: each after every record written before it, and every
record tagged with its id, was acknowledged by SQS (DESIGN §2)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from .bad_records import BadRecord
from .checkpoint import Checkpoint, Coverage
from .config import SDKConfig
from .stats import Stats

__all__ = ["STATE_KEY", "Emit", "IngestResult", "Sink", "StateCommitter"]

logger = logging.getLogger("panoply_async.pipeline")

STATE_KEY = "__state"

Emit = Callable[[str, Any], None]



class Sink(Protocol):
    """The public SDK surface that the pipeline uses (:class:`SDK` provides it)."""

    @property
    def config(self) -> SDKConfig: ...

    @property
    def stats(self) -> Stats: ...

    async def write(self, table: str, data: Mapping[str, Any]) -> None: ...

    async def write_many(self, table: str, records: Sequence[Mapping[str, Any]]) -> int: ...

    async def flush(self) -> None: ...

    def checkpoint(self) -> Checkpoint: ...


@dataclass
class IngestResult:
    """What :meth:`SDK.ingest` did."""

    records: int = 0
    batches: int = 0
    tables: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    #: the last committed (merged) state, or None when no state was committed
    state: Any = None
    state_id: Any = None
    states_committed: int = 0
    #: True when every record written by this run was acknowledged by SQS (other
    #: tasks' records count only where they share a message with the run's)
    delivered: bool = True
    #: records ``write()`` refused that the run skipped (``on_bad_record="skip"``)
    records_skipped: int = 0
    #: records ``write()`` refused that went to the dead-letter file
    records_dead_lettered: int = 0
    #: the first refused records, identified (table, batch, position, key path, reason)
    bad_records: list[BadRecord] = field(default_factory=list)




def _tags(records: list[Any]) -> set[Any]:
    """The ``__state`` values of ``records`` (one set comprehension in the common case)."""
    try:
        return {record.get(STATE_KEY) for record in records}
    except (AttributeError, TypeError):  # a record that is no dict, or an unhashable tag
        tags: set[Any] = set()
        for record in records:
            if isinstance(record, Mapping):
                tag = record.get(STATE_KEY)
                try:
                    tags.add(tag)
                except TypeError:
                    continue
        return tags


def _merge(previous: Any, new: Any) -> Any:
    # The legacy platform merged reported states key by key, newest winning.
    if isinstance(previous, Mapping) and isinstance(new, Mapping):
        return {**previous, **new}
    return new


@dataclass(frozen=True)
class _Mark:
    """A checkpoint with its place in this run's order of checkpoints."""

    number: int
    checkpoint: Checkpoint


@dataclass
class _PendingState:
    state_id: Any
    state: Any
    mark: _Mark


class _StateLogger:
    """Logs each state with the records written before it (``wal_dir``), as the
    value a commit of it would pass to ``on_state``; a state that records of a
    later batch are tagged with is logged again, after them."""

    def __init__(self, log_state: Callable[[Any, Any], None]) -> None:
        self._log_state = log_state
        self._merged: Any = None
        self._values: dict[Any, Any] = {}

    def reported(self, state_id: Any, state: Any) -> None:
        self._merged = _merge(self._merged, state)
        self._log_state(state_id, self._merged)
        try:
            self._values[state_id] = self._merged
        except TypeError:  # an unhashable id is never a tag either
            return
        if len(self._values) > 1024:  # only recent states are still pending
            del self._values[next(iter(self._values))]

    def tagged_again(self, state_ids: set[Any]) -> None:
        for state_id in state_ids:
            if state_id in self._values:
                self._log_state(state_id, self._values[state_id])


class StateCommitter:
    """Commits states in the order reported, each after its records were acknowledged."""

    def __init__(self, conn: Sink, result: IngestResult,
                 on_commit: Callable[[Any, Any], None] | None, emit: Emit,
                 log_state: Callable[[Any, Any], None] | None = None,
                 coverage: Coverage | None = None) -> None:
        self._conn = conn
        #: the run's own messages; without it, every message up to a mark counts
        self._coverage = coverage
        self._result = result
        self._on_commit = on_commit
        self._emit = emit
        self._queue: list[_PendingState] = []
        self._wakeup = anyio.Event()
        self._marks = 0
        self._last_mark_of: dict[Any, _Mark] = {}
        self._merged: Any = None
        self._closed = False
        self.failed = False
        self._reported: list[tuple[Any, Any]] = []
        # Pending states that records of the batch being written are tagged with:
        # they cannot commit before that batch is written and its mark delivered.
        self._writing: set[Any] = set()
        # States tagged in a batch that was interrupted: never committed.
        self._blocked: set[Any] = set()
        self._logger = _StateLogger(log_state) if log_state is not None else None

    def report(self, state_id: Any, state: Any) -> None:
        # Called from the DataSource's event (possibly hopped from a worker
        # thread); the checkpoint is taken after the current batch is written.
        self._reported.append((state_id, state))
        if self._logger is not None:
            self._logger.reported(state_id, state)

    def before_batch(self, records: list[Any]) -> None:
        """Note which pending states ``records`` are tagged with, before writing them.

        Only tags of states reported and not yet committed matter (the mark of a
        state reported later covers every record written before it), so a
        source without pending states costs nothing per record here.
        """
        pending = {p.state_id for p in self._queue} | {i for i, _ in self._reported}
        if pending:
            self._writing = _tags(records) & pending

    def after_batch(self) -> None:
        mark = _Mark(self._marks, self._conn.checkpoint())
        self._marks += 1
        for state_id in self._writing:
            self._last_mark_of[state_id] = mark
        if self._logger is not None:
            self._logger.tagged_again(self._writing)
        self._writing = set()
        for state_id, state in self._reported:
            self._queue.append(_PendingState(state_id, state, mark))
        self._reported.clear()
        self._wakeup.set()

    def close(self) -> None:
        # A batch still being written was interrupted: its tagged states never commit.
        self._blocked |= self._writing
        self._writing = set()
        self._closed = True
        self._wakeup.set()

    async def _batch_written(self) -> None:
        self._wakeup = anyio.Event()
        await self._wakeup.wait()

    def _needed(self, pending: _PendingState, floor: _Mark | None) -> _Mark:
        """The latest mark the state must wait for."""
        marks = [pending.mark, self._last_mark_of.get(pending.state_id, pending.mark)]
        if floor is not None:
            marks.append(floor)
        return max(marks, key=lambda mark: mark.number)

    async def run(self) -> None:
        floor: _Mark | None = None
        while True:
            while not self._queue:
                if self._closed:
                    return
                self._wakeup = anyio.Event()
                await self._wakeup.wait()
            if self.failed:
                self._queue.clear()
                continue
            pending = self._queue[0]
            while True:
                # Records tagged with this state may still arrive in later batches.
                mark = self._needed(pending, floor)
                delivered = await mark.checkpoint
                if self._coverage is not None:
                    delivered = self._coverage.delivered(mark.checkpoint)
                while pending.state_id in self._writing:
                    await self._batch_written()
                if self._needed(pending, floor).number == mark.number:
                    break
            if pending.state_id in self._blocked:
                self._queue.clear()  # nor any later state: they are committed in order
                continue
            if not delivered:
                # A record up to this state was spooled or lost: never commit it,
                # nor any later state, so a resumed run re-reads from the last good one.
                self.failed = True
                continue
            self._queue.pop(0)
            floor = mark
            self._merged = _merge(self._merged, pending.state)
            self._result.state = self._merged
            self._result.state_id = pending.state_id
            self._result.states_committed += 1
            payload = {"state_id": pending.state_id, "state": self._merged}
            if self._on_commit is not None:
                self._on_commit(pending.state_id, self._merged)
            self._emit("source-state", payload)


