"""What ``wal_dir`` costs: ``write()`` CPU and end-to-end throughput, against the same
SDK without it, measured side by side in one run.

CPU: ``MemoryTransport(keep_bodies=False)`` acknowledges at once, so process CPU
(the sync thread's included) is the SDK's own work plus the log's: the mapped
segment, sealing, acknowledgement entries, ``fdatasync`` at every message close
and retirement. Throughput: the local server in its own process, from the first
write to leaving the block. Baseline and log runs alternate, best of each. The
log lives in the system's temporary directory (a real disk on the reference
machine, see the note).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import panoply_async
from panoply_async.local import make_credentials

from .records import Record, make_pool, take
from .report import Results, Row
from .server import fresh_queue
from .throughput import write_all

SECTION = "write-ahead log (wal_dir)"


@dataclass(frozen=True)
class WalSizes:
    cpu_records: int
    throughput_records: int
    repeats: int


FULL = WalSizes(cpu_records=300_000, throughput_records=150_000, repeats=5)
QUICK = WalSizes(cpu_records=10_000, throughput_records=5_000, repeats=1)


@dataclass(frozen=True)
class Pass:
    records: int
    seconds: float
    #: CPU of the whole process (the log's sync thread included)
    cpu_seconds: float
    #: CPU of the event loop's thread: write() and everything else on the loop
    loop_cpu_seconds: float

    @property
    def us_per_record(self) -> float:
        return self.cpu_seconds / self.records * 1e6

    @property
    def loop_us_per_record(self) -> float:
        return self.loop_cpu_seconds / self.records * 1e6

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds


async def _timed(conn: panoply_async.SDK, records: list[Record], write_many: bool) -> Pass:
    async with conn:
        # From the first write to the last acknowledgement (leaving the block);
        # opening the client and recovery are left out.
        wall, cpu, loop = time.perf_counter(), time.process_time(), time.thread_time()
        await write_all(conn, records, write_many)
    loop = time.thread_time() - loop
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if conn.stats.records_delivered != len(records):
        raise RuntimeError(f"SDK delivered {conn.stats.records_delivered} of {len(records)}")
    return Pass(len(records), wall, cpu, loop)


def _log_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="panoply-bench-wal-")


def cpu_pass(records: list[Record], *, wal: bool, write_many: bool = False) -> Pass:
    apikey, apisecret = make_credentials("bench")
    with _log_dir() as directory:
        conn = panoply_async.SDK(
            apikey,
            apisecret,
            transport=panoply_async.MemoryTransport(keep_bodies=False),
            wal_dir=directory if wal else None,
        )
        return asyncio.run(_timed(conn, records, write_many))


async def _throughput(endpoint: str, records: list[Record], wal: bool) -> Pass:
    async with fresh_queue(endpoint) as queue:
        with _log_dir() as directory:
            conn = panoply_async.SDK(
                queue.apikey,
                queue.apisecret,
                endpoint_url=endpoint,
                wal_dir=directory if wal else None,
            )
            return await _timed(conn, records, write_many=False)


def throughput_pass(endpoint: str, records: list[Record], *, wal: bool) -> Pass:
    return asyncio.run(_throughput(endpoint, records, wal))


def _alternating(
    repeats: int, run: Callable[[bool], Pass], key: Callable[[Pass], float]
) -> tuple[Pass, Pass]:
    """The best pass by ``key`` (least is best) without and with the log, runs interleaved:
    other load on the machine only ever makes a pass worse."""
    without: list[Pass] = []
    with_log: list[Pass] = []
    for _ in range(repeats):
        without.append(run(False))
        with_log.append(run(True))
    return min(without, key=key), min(with_log, key=key)


def figures(results: Results, *, quick: bool, endpoint: str) -> None:
    sizes = QUICK if quick else FULL
    print(f"== {SECTION}", flush=True)
    pool = make_pool("small")
    records = take(pool, sizes.cpu_records)
    where = f"log in {Path(tempfile.gettempdir()).resolve()}"
    for name, many in (("write()", False), ("write_many()", True)):
        base, logged = _alternating(
            sizes.repeats,
            lambda wal, many=many: cpu_pass(records, wal=wal, write_many=many),
            key=lambda p: p.loop_us_per_record,
        )
        results.add(
            Row(
                SECTION,
                f"SDK {name} CPU with wal_dir (event-loop thread)",
                logged.loop_us_per_record,
                "µs/record",
                f"SDK {name} without wal_dir",
                base.loop_us_per_record,
                "≤ 1.5 ×",
                f"MemoryTransport; {logged.records:,} records; {where}",
            )
        )
        results.add(
            Row(
                SECTION,
                f"SDK {name} CPU with wal_dir (process, sync thread included)",
                logged.us_per_record,
                "µs/record",
                f"SDK {name} without wal_dir",
                base.us_per_record,
                note="fdatasync at every message close runs in a worker thread",
                plot=False,
            )
        )
    records = take(pool, sizes.throughput_records)
    base_run, wal_run = _alternating(
        sizes.repeats,
        lambda wal: throughput_pass(endpoint, records, wal=wal),
        key=lambda p: -p.records_per_second,
    )
    results.add(
        Row(
            SECTION,
            "SDK write() end to end with wal_dir",
            wal_run.records_per_second,
            "records/s",
            "same, without wal_dir",
            base_run.records_per_second,
            "≥ 0.90 ×",
            f"local server; {wal_run.records:,} records; fdatasync at every message close",
        )
    )
    results.add(
        Row(
            SECTION,
            "client CPU end to end with wal_dir",
            wal_run.us_per_record,
            "µs/record",
            "same, without wal_dir",
            base_run.us_per_record,
            note="process CPU, aiobotocore included",
            plot=False,
        )
    )
