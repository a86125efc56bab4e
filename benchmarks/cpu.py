"""CPU per record: the SDK's ``write()``/``write_many()`` against the serialisation floor.

The SDK runs with ``MemoryTransport(keep_bodies=False)``, which acknowledges
at once, so the process CPU time is the SDK's own (encoding, packing,
batching, bookkeeping, events), with nothing spent waiting on a server. The
floor is ``orjson.dumps`` of the same records in a plain loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

import panoply_async
from panoply_async.local import make_credentials

from .legacy_style import LegacyStyleSender, null_poster
from .records import TABLE, Record

WRITE_MANY_CHUNK = 1000


@dataclass(frozen=True)
class CpuResult:
    records: int
    cpu_seconds: float
    requests: int = 0
    messages: int = 0
    bytes_sent: int = 0

    @property
    def us_per_record(self) -> float:
        return self.cpu_seconds / self.records * 1e6


def best_of(repeats: int, run: Callable[[], CpuResult]) -> CpuResult:
    """The least CPU of ``repeats`` runs: other load only ever adds time."""
    return min((run() for _ in range(repeats)), key=lambda result: result.cpu_seconds)


def floor(records: list[Record]) -> CpuResult:
    dumps = orjson.dumps
    start = time.process_time()
    for record in records:
        dumps(record)
    return CpuResult(len(records), time.process_time() - start)


def floor_with_table(records: list[Record], table: str = TABLE) -> CpuResult:
    # The wire object is the record plus "__table": the honest floor of the format.
    dumps = orjson.dumps
    start = time.process_time()
    for record in records:
        dumps({**record, "__table": table})
    return CpuResult(len(records), time.process_time() - start)


async def _await_floor(records: list[Record], table: str) -> float:
    dumps = orjson.dumps

    async def write(table: str, record: Record) -> None:
        dumps(record)

    start = time.process_time()
    for record in records:
        await write(table, record)
    return time.process_time() - start


def await_floor(records: list[Record], table: str = TABLE) -> CpuResult:
    """``orjson.dumps`` inside an awaited coroutine: what any ``await write()`` costs at least.

    CPython spends a coroutine creation and an await per call; no async API
    taking one record per call can go below this.
    """
    return CpuResult(len(records), asyncio.run(_await_floor(records, table)))


def _memory_sdk() -> panoply_async.SDK:
    apikey, apisecret = make_credentials("bench")
    transport = panoply_async.MemoryTransport(keep_bodies=False)
    return panoply_async.SDK(apikey, apisecret, transport=transport)


async def _sdk_write(records: list[Record]) -> CpuResult:
    sdk = _memory_sdk()
    start = time.process_time()
    async with sdk as conn:
        write = conn.write
        for record in records:
            await write(TABLE, record)
    cpu = time.process_time() - start
    return _from_stats(sdk, len(records), cpu)


async def _sdk_write_many(records: list[Record]) -> CpuResult:
    sdk = _memory_sdk()
    start = time.process_time()
    async with sdk as conn:
        for offset in range(0, len(records), WRITE_MANY_CHUNK):
            await conn.write_many(TABLE, records[offset : offset + WRITE_MANY_CHUNK])
    cpu = time.process_time() - start
    return _from_stats(sdk, len(records), cpu)


def _from_stats(sdk: panoply_async.SDK, records: int, cpu: float) -> CpuResult:
    stats = sdk.stats
    if stats.records_delivered != records:
        raise RuntimeError(f"SDK delivered {stats.records_delivered} of {records} records")
    return CpuResult(records, cpu, stats.requests, stats.messages_sent, stats.bytes_sent)


def sdk_write(records: list[Record]) -> CpuResult:
    return asyncio.run(_sdk_write(records))


def sdk_write_many(records: list[Record]) -> CpuResult:
    return asyncio.run(_sdk_write_many(records))


def legacy(records: list[Record]) -> CpuResult:
    """The legacy-style sender with a poster that only builds the form (no network)."""
    apikey, apisecret = make_credentials("bench")
    start = time.process_time()
    sender = LegacyStyleSender(apikey, apisecret, null_poster, "legacy-style-bench")
    for record in records:
        sender.write(TABLE, record)
    sender.close()
    cpu = time.process_time() - start
    stats = sender.stats
    return CpuResult(len(records), cpu, stats.requests, stats.requests, stats.bytes_sent)
