"""CPU per record on the connector path: ``ingest()`` against ``write_many()``,
``write()`` and the orjson floor, side by side in one run.

Same method as :mod:`benchmarks.cpu` (whose helpers it reuses): the SDK runs
with ``MemoryTransport(keep_bodies=False)``, which acknowledges at once, so
the process CPU time is the SDK's own, and each figure is the least of
several runs. The data source yields the records in batches of
``cpu.WRITE_MANY_CHUNK``, the size ``write_many()`` is called with, so the
two do the same work apart from what the pipeline adds (routing, progress,
state bookkeeping, the async generator).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from panoply_async import DataSource

from . import cpu
from .records import TABLE, Record
from .report import Results, Row

SECTION = "connector path: ~100 B records"


class BatchSource(DataSource):
    """Yields ``records`` in batches; optionally reports a state per batch and tags
    every record with it (the state-tagging path of the pipeline)."""

    def __init__(self, records: list[Record], *, states: bool = False) -> None:
        super().__init__({"type": TABLE})
        self._records = records
        self._states = states

    async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        records, chunk = self._records, cpu.WRITE_MANY_CHUNK
        for offset in range(0, len(records), chunk):
            batch = records[offset : offset + chunk]
            if self._states:
                self.state(offset, {"offset": offset + len(batch)})
            yield batch


def tagged(records: list[Record]) -> list[Record]:
    """The records with ``"__state"`` set as :class:`BatchSource` reports it (made
    before the clock starts)."""
    chunk = cpu.WRITE_MANY_CHUNK
    return [{**r, "__state": i - i % chunk} for i, r in enumerate(records)]


async def _sdk_ingest(records: list[Record], states: bool) -> cpu.CpuResult:
    sdk = cpu._memory_sdk()
    committed = 0

    def on_state(state_id: Any, state: Any) -> None:
        nonlocal committed
        committed += 1

    start = time.process_time()
    async with sdk as conn:
        result = await conn.ingest(BatchSource(records, states=states), on_state=on_state)
    cpu_seconds = time.process_time() - start
    if states and committed != result.batches:
        raise RuntimeError(f"ingest committed {committed} of {result.batches} states")
    return cpu._from_stats(sdk, len(records), cpu_seconds)


def sdk_ingest(records: list[Record], *, states: bool = False) -> cpu.CpuResult:
    return asyncio.run(_sdk_ingest(records, states))


def figures(results: Results, records: list[Record], repeats: int) -> None:
    """Add the connector-path rows for ``records`` (~100 B each) to ``results``."""
    print(f"== {SECTION}", flush=True)
    with_tags = tagged(records)
    floor = cpu.best_of(repeats, lambda: cpu.floor(records))
    write = cpu.best_of(repeats, lambda: cpu.sdk_write(records))
    many = cpu.best_of(repeats, lambda: cpu.sdk_write_many(records))
    ingest = cpu.best_of(repeats, lambda: sdk_ingest(records))
    many_tagged = cpu.best_of(repeats, lambda: cpu.sdk_write_many(with_tags))
    ingest_states = cpu.best_of(repeats, lambda: sdk_ingest(with_tags, states=True))
    floor_us = floor.us_per_record
    batches = f"batches of {cpu.WRITE_MANY_CHUNK:,}; {len(records):,} records"
    results.add(Row(SECTION, "floor: orjson.dumps(record)", floor_us, "µs/record"))
    results.add(
        Row(SECTION, "SDK write()", write.us_per_record, "µs/record",
            "orjson.dumps(record)", floor_us)
    )
    results.add(
        Row(SECTION, "SDK write_many()", many.us_per_record, "µs/record",
            "orjson.dumps(record)", floor_us, "≤ 2.0 ×", batches)
    )
    results.add(
        Row(SECTION, "SDK ingest()", ingest.us_per_record, "µs/record",
            "write_many(), same records", many.us_per_record, "≤ 1.2 ×",
            "DataSource yielding the same batches; no state")
    )
    results.add(
        Row(SECTION, "SDK ingest() vs floor", ingest.us_per_record, "µs/record",
            "orjson.dumps(record)", floor_us, plot=False)
    )
    results.add(
        Row(SECTION, "SDK ingest(), a state per batch, records tagged",
            ingest_states.us_per_record, "µs/record",
            "write_many(), same tagged records", many_tagged.us_per_record,
            note="every state committed after its records were acknowledged")
    )
