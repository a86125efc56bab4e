"""Running a DataSource into an SDK: table routing, retries of ``read()``, and
committing states only after their records were acknowledged (DESIGN §2)."""

from __future__ import annotations

import inspect
import logging
import os
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from ..errors import PanoplyException, RecordError, RecordTypeError
from .bad_records import BadRecord, BadRecords, source_mask
from .checkpoint import Coverage
from .routing import TableRouter
from .trial import Trial

if TYPE_CHECKING:
    from .source import Source

from .state import STATE_KEY, Emit, IngestResult, Sink, StateCommitter

__all__ = ["READ_ATTEMPTS", "STATE_KEY", "IngestResult", "TableRouter", "ingest"]

READ_ATTEMPTS = 3

logger = logging.getLogger("panoply_async.pipeline")


def _no_event(name: str, data: Any) -> None:
    pass


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


async def _legacy_batches(ds: Source, n: int | None) -> AsyncIterator[Any]:
    """Drive a legacy ``read(n)`` or ``read()`` (a plain method returning a list, None
    at the end) in a thread of its own; see :mod:`panoply_async._engine.legacy_read`."""
    from .legacy_read import call_read, read_arguments

    def is_group(item: Any) -> bool:
        metadata = item.get("metadata") if isinstance(item, Mapping) else None
        return isinstance(metadata, Mapping) and "data" in item and "resource_id" in metadata

    read: Callable[..., Any] = ds.read
    args = read_arguments(read, n)
    while True:
        batch = await call_read(ds, read, args)
        if batch is None:
            return
        if not isinstance(batch, list) or not any(is_group(item) for item in batch):
            yield batch
            continue
        # A legacy read() returns a list of records and RecordGroups mixed: each group
        # is a batch of its own resource, and each run of plain records one batch.
        plain: list[Any] = []
        for item in batch:
            if is_group(item):
                if plain:
                    yield plain
                    plain = []
                yield item
            else:
                plain.append(item)
        if plain:
            yield plain


async def _close(ds: Source, read_wait: float | None = None) -> None:
    """``close()``, once no ``read()`` runs any more; a legacy connector's plain
    ``close()`` runs in a worker thread.

    A legacy ``read()`` still blocked in its thread (the run was interrupted) is
    waited for up to ``read_wait`` seconds (default: the SDK's default
    ``shutdown_timeout``); past that its thread is abandoned and ``close()`` is not
    called, since it must never run at the same time as ``read()``.
    """
    from .legacy_read import DEFAULT_READ_WAIT, wait_read_done

    wait = DEFAULT_READ_WAIT if read_wait is None else read_wait
    if not await wait_read_done(ds, wait):
        logger.warning(
            "%s.read() is still running %gs after the run stopped: its thread is "
            "abandoned, and close() is not called because it must not run during read()",
            type(ds).__name__, wait,
        )
        return
    close: Callable[[], Any] = ds.close
    if inspect.iscoroutinefunction(close):
        await close()
    else:
        result = await anyio.to_thread.run_sync(close)
        if inspect.isawaitable(result):
            await result


def _batches(ds: Source, n: int | None) -> AsyncIterator[Any]:
    read: Callable[..., Any] = ds.read
    if inspect.isasyncgenfunction(read):
        from .legacy_read import read_arguments

        result: AsyncIterator[Any] = read(*read_arguments(read, n))
        return result
    return _legacy_batches(ds, n)


async def ingest(
    conn: Sink,
    ds: Source,
    *,
    batch_size: int | None = None,
    on_state: Callable[[Any, Any], None] | None = None,
    emit: Emit | None = None,
    read_attempts: int = READ_ATTEMPTS,
    backoff: float = 1.0,
    on_bad_record: str = "fail",
    dead_letter_file: str | os.PathLike[str] | None = None,
    max_records: int | None = None,
    log_state: Callable[[Any, Any], None] | None = None,
) -> IngestResult:
    """Run ``ds`` into ``conn`` until ``read()`` is exhausted. See :meth:`SDK.ingest`.

    ``emit(name, data)`` fires the SDK's events (``progress``,
    ``source-change``, ``source-state``); :meth:`SDK.ingest` passes its own.
    Without it no event is fired. ``log_state(state_id, merged_state)`` logs each
    state as it is reported, after its records (the SDK's write-ahead log).

    ``max_records`` (a trial): at most that many records per table are written,
    and reading stops once the trial has them (see :class:`Trial`). A trial commits
    no state: the records it left unread must be read by the next run.
    """
    if emit is None:
        emit = _no_event
    bad = BadRecords(on_bad_record, dead_letter_file, source_mask(ds))
    trial = Trial(max_records) if max_records is not None else None
    router = TableRouter(ds.source)
    result = IngestResult()
    tables: Counter[str] = Counter()
    # The messages holding this run's records: its outcome and its states depend
    # on those only, not on what other tasks writing to the same SDK sent.
    coverage = Coverage()
    untracked = False
    committer = StateCommitter(conn, result, on_state, emit, log_state, coverage)
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
    if max_records is None:
        ds.on("source-state", on_source_state)

    async def read_all() -> None:
        # A retry calls read() again. A pass that gets further than every earlier
        # failed pass is progress and starts the count again; one that does not
        # (a source that restarts from its first batch and fails at the same
        # place) counts, so such a source cannot be retried forever.
        attempt = 0
        furthest = 0
        while True:
            batches = 0
            try:
                reading = _batches(ds, batch_size)
                async for batch in reading:
                    batches += 1
                    if batches > furthest:
                        furthest, attempt = batches, 0
                    await write_batch(batch)
                    if trial is not None and trial.enough(tables):
                        # The trial has its records: end read() here (its finally
                        # blocks run now), then close() runs as after a full read.
                        aclose = getattr(reading, "aclose", None)
                        if aclose is not None:
                            await aclose()
                        return
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

    def quota(table: str, records: list[Any], positions: Sequence[int]
              ) -> tuple[list[Any], Sequence[int]]:
        # A trial writes at most max_records per table; the rest is not written.
        if trial is None:
            return records, positions
        room = trial.room(tables[table], len(records))
        return records[:room], positions[:room]

    async def write_each(table: str, records: list[Any], positions: Sequence[int],
                         resource: str | None) -> int:
        """One ``write()`` per record, to tell the refused ones from the others: only
        a batch holding a bad record pays for encoding its good ones again."""
        accepted = 0
        for record, position in zip(records, positions, strict=True):
            try:
                await conn.write(table, record)
            except RecordError as error:
                bad.refused(BadRecord(table, resource, result.batches + 1, position,
                                      error.path, ""), record, error)
            else:
                accepted += 1
        return accepted

    async def write_group(table: str, records: list[Any], positions: Sequence[int],
                          resource: str | None) -> int:
        nonlocal untracked
        records, positions = quota(table, records, positions)
        if not records:
            return 0
        before = conn.checkpoint()
        try:
            try:
                await conn.write_many(table, records)
                accepted = len(records)
            except RecordError as error:
                if isinstance(error, RecordTypeError):
                    _check_records(records)  # a record that is no dict: read() is broken
                if bad.fail:
                    raise
                accepted = await write_each(table, records, positions, resource)
        except RecordError:
            raise  # none of the group was accepted
        except BaseException:
            untracked = True  # some may have been accepted, in messages not known
            raise
        coverage.add(before, conn.checkpoint())
        tables[table] += accepted
        return accepted

    async def write_batch(batch: Any) -> None:
        # A batch goes in as few write_many() calls as it has tables; under
        # on_bad_record="fail" none of a group is accepted when one of its
        # records is refused.
        records, resource = _group_of(batch)
        committer.before_batch(records)
        written = 0
        if records:
            table = router.fixed(resource)
            if table is not None:
                written = await write_group(table, records, range(len(records)), resource)
            else:
                groups: dict[str, tuple[list[Any], list[int]]] = {}
                for position, record in enumerate(records):
                    _check_records((record,))
                    group = groups.setdefault(router.table(record, resource), ([], []))
                    group[0].append(record)
                    group[1].append(position)
                for table, (group_records, positions) in groups.items():
                    written += await write_group(table, group_records, positions, resource)
        result.records += written
        result.batches += 1
        if trial is not None:
            trial.batch_done()
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
        bad.close()
        with anyio.CancelScope(shield=True):
            await _close(ds, conn.config.shutdown_timeout)
        result.records_skipped, result.records_dead_lettered = bad.skipped, bad.dead_lettered
        result.bad_records = list(bad.identified)
        result.tables = dict(tables)
        result.elapsed = time.monotonic() - started
        result.delivered = not committer.failed and not untracked and coverage.delivered()
    return result
