"""Running a DataSource into an SDK: table routing, retries of ``read()``, and
committing states only after their records were acknowledged (DESIGN §2)."""

from __future__ import annotations

import inspect
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from ._checkpoint import Checkpoint
from ._config import SDKConfig
from ._exceptions import RecordError, RecordTypeError
from ._routing import TableRouter
from ._stats import Stats
from .errors import PanoplyException

if TYPE_CHECKING:
    from .datasource import DataSource

__all__ = ["IngestResult", "TableRouter", "ingest"]

logger = logging.getLogger("panoply_async.pipeline")

STATE_KEY = "__state"
READ_ATTEMPTS = 3

Emit = Callable[[str, Any], None]


def _no_event(name: str, data: Any) -> None:
    pass


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
    #: True when every record written by this run was acknowledged by SQS
    delivered: bool = True


def _group_of(batch: Any) -> tuple[list[Any], str | None]:
    """Split a batch into its records and, for a RecordGroup, its resource id."""
    if isinstance(batch, Mapping) and "data" in batch and "metadata" in batch:
        metadata = batch["metadata"]
        resource = metadata.get("resource_id") if isinstance(metadata, Mapping) else None
        data = batch["data"]
        return (list(data) if isinstance(data, list) else [data]), resource
    if isinstance(batch, list):
        return batch, None
    if isinstance(batch, Mapping):
        return [batch], None
    raise PanoplyException(
        f"read() yielded a {type(batch).__name__}; expected a list of dicts or a RecordGroup",
        retryable=False,
    )


def _check_records(records: Sequence[Any]) -> None:
    for record in records:
        if not isinstance(record, Mapping):
            raise PanoplyException(
                f"read() yielded a record of type {type(record).__name__}; expected a dict",
                retryable=False,
            )


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


class _StateCommitter:
    """Commits states in the order reported, each after its records were acknowledged."""

    def __init__(self, conn: Sink, result: IngestResult,
                 on_commit: Callable[[Any, Any], None] | None, emit: Emit) -> None:
        self._conn = conn
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

    def report(self, state_id: Any, state: Any) -> None:
        # Called from the DataSource's event (possibly hopped from a worker
        # thread); the checkpoint is taken after the current batch is written.
        self._reported.append((state_id, state))

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


async def _legacy_batches(ds: DataSource, n: int | None) -> AsyncIterator[Any]:
    """Drive a legacy ``read(n)`` (a plain method returning a list, None at the end)."""
    read: Callable[..., Any] = ds.read
    while True:
        batch = await anyio.to_thread.run_sync(read, n)
        if batch is None:
            return
        yield batch


async def _close(ds: DataSource) -> None:
    """``close()``; a legacy connector's plain ``close()`` runs in a worker thread."""
    close: Callable[[], Any] = ds.close
    if inspect.iscoroutinefunction(close):
        await close()
    else:
        result = await anyio.to_thread.run_sync(close)
        if inspect.isawaitable(result):
            await result


def _batches(ds: DataSource, n: int | None) -> AsyncIterator[Any]:
    read: Callable[..., Any] = ds.read
    if inspect.isasyncgenfunction(read):
        result: AsyncIterator[Any] = read(n)
        return result
    return _legacy_batches(ds, n)


async def ingest(
    conn: Sink,
    ds: DataSource,
    *,
    batch_size: int | None = None,
    on_state: Callable[[Any, Any], None] | None = None,
    emit: Emit | None = None,
    read_attempts: int = READ_ATTEMPTS,
    backoff: float = 1.0,
) -> IngestResult:
    """Run ``ds`` into ``conn`` until ``read()`` is exhausted. See :meth:`SDK.ingest`.

    ``emit(name, data)`` fires the SDK's events (``progress``,
    ``source-change``, ``source-state``); :meth:`SDK.ingest` passes its own.
    Without it no event is fired.
    """
    if emit is None:
        emit = _no_event
    router = TableRouter(ds.source)
    result = IngestResult()
    tables: Counter[str] = Counter()
    committer = _StateCommitter(conn, result, on_state, emit)
    failed_before = conn.stats.records_spooled + conn.stats.records_failed
    started = time.monotonic()

    def forward(name: str) -> Callable[[Any], None]:
        def handler(data: Any) -> None:
            emit(name, data)
        return handler

    def on_source_state(data: Any) -> None:
        if isinstance(data, Mapping) and "state_id" in data:
            committer.report(data["state_id"], data.get("state"))
        else:
            committer.report(None, data)

    ds.on("progress", forward("progress"))
    ds.on("source-change", forward("source-change"))
    ds.on("source-state", on_source_state)

    async def read_all() -> None:
        attempt = 0
        while True:
            try:
                async for batch in _batches(ds, batch_size):
                    attempt = 0
                    await write_batch(batch)
                return
            except (RecordError, RuntimeError):
                # A record the SDK refused, or a closed SDK: reading again cannot help.
                raise
            except PanoplyException as exc:
                if not exc.retryable:
                    raise
                attempt += 1
                error: Exception = exc
            except Exception as exc:
                attempt += 1
                error = exc
            if attempt >= read_attempts:
                raise error
            delay = random.uniform(0, backoff * 2 ** (attempt - 1))
            logger.warning("read() failed (%s); retrying in %.1fs (attempt %d of %d)",
                           error, delay, attempt + 1, read_attempts)
            await anyio.sleep(delay)

    async def write_group(table: str, records: list[Any]) -> None:
        try:
            await conn.write_many(table, records)
        except RecordTypeError:
            _check_records(records)
            raise
        tables[table] += len(records)

    async def write_batch(batch: Any) -> None:
        # A batch goes in as few write_many() calls as it has tables; none of a
        # group is accepted when one of its records is refused.
        records, resource = _group_of(batch)
        committer.before_batch(records)
        if records:
            table = router.fixed(resource)
            if table is not None:
                await write_group(table, records)
            else:
                groups: dict[str, list[Any]] = {}
                for record in records:
                    _check_records((record,))
                    groups.setdefault(router.table(record, resource), []).append(record)
                for table, group in groups.items():
                    await write_group(table, group)
        result.records += len(records)
        result.batches += 1
        committer.after_batch()

    error: Exception | None = None
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(committer.run)
            try:
                await read_all()
                # Make sure the last records go now and the last states can commit.
                committer.after_batch()
                await conn.flush()
            except Exception as exc:
                # Raised after the task group, so the caller gets it as it is
                # rather than inside an exception group.
                error = exc
            finally:
                committer.close()
        if error is not None:
            raise error
    except anyio.get_cancelled_exc_class():
        # Interrupted: still commit the states of complete batches whose records
        # reach SQS within the shutdown deadline, so a resumed run starts there.
        # States of the batch being written when cancelled are never committed.
        with anyio.CancelScope(shield=True) as scope:
            scope.deadline = anyio.current_time() + conn.config.shutdown_timeout
            await conn.flush()
            committer.close()
            await committer.run()
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await _close(ds)
        result.tables = dict(tables)
        result.elapsed = time.monotonic() - started
        result.delivered = (
            not committer.failed
            and conn.stats.records_spooled + conn.stats.records_failed == failed_before
        )
    return result
