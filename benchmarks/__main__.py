"""``python -m benchmarks [--quick] [--out DIR]``: run every figure and write the report."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import connector_path, cpu, latency, latency_sweep, throughput
from .records import KINDS, Record, line_bytes, make_pool, take
from .report import Results, Row, machine_info, to_markdown, write_outputs
from .server import ServerProcess
from .wal import figures as wal_figures

SQS_LIMIT = throughput.SQS_LIMIT
MEGABYTE = 1e6


@dataclass(frozen=True)
class Sizes:
    """How much each scenario does; ``--quick`` runs the same code on tiny inputs."""

    naive_one_by_one: int
    naive_gather: int
    legacy: dict[str, int]
    sdk: dict[str, int]
    cpu: dict[str, int]
    cpu_legacy: dict[str, int]
    cpu_repeats: int
    throughput_repeats: int
    memory_records: int
    latency_seconds: float


FULL = Sizes(
    naive_one_by_one=500,
    naive_gather=500,
    legacy={"small": 200_000, "wide": 10_000},
    sdk={"small": 1_000_000, "wide": 50_000},
    cpu={"small": 1_000_000, "wide": 100_000},
    cpu_legacy={"small": 200_000, "wide": 20_000},
    cpu_repeats=3,
    throughput_repeats=2,
    memory_records=5_000_000,
    latency_seconds=6.0,
)
QUICK = Sizes(
    naive_one_by_one=20,
    naive_gather=50,
    legacy={"small": 5_000, "wide": 500},
    sdk={"small": 20_000, "wide": 1_000},
    cpu={"small": 20_000, "wide": 2_000},
    cpu_legacy={"small": 5_000, "wide": 500},
    cpu_repeats=1,
    throughput_repeats=1,
    memory_records=200_000,
    latency_seconds=0.5,
)
RESULTS_DIR = Path(__file__).resolve().parent / "results"
LATENCY_RATE = 50.0
#: A 1-minute load average above this means other work competes for the CPUs.
BUSY_LOAD = 0.5
MEMORY_INTERVAL = 0.02
FRESH_QUEUE_NOTE = f"a fresh queue per {throughput.NAIVE_QUEUE_MESSAGES} records"
LABEL = {"small": "~100 B records", "wide": "~2 KB records"}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny inputs, same code paths (for CI); figures mean nothing",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS_DIR,
        help="directory for results.md, results.json and results.png",
    )
    return parser.parse_args(argv)


# -- sections ------------------------------------------------------------------------------


def server_figures(results: Results, sizes: Sizes, endpoint: str) -> None:
    """Throughput (SDK vs baselines vs capacity) and SQS requests per million records."""
    for kind in KINDS:
        _throughput_for(results, sizes, endpoint, kind, make_pool(kind))


def _fastest(
    repeats: int, scenario: Callable[[], Coroutine[Any, Any, throughput.Run]]
) -> throughput.Run:
    """The fastest of ``repeats`` runs: other load on the machine only ever slows one down."""
    runs = [asyncio.run(scenario()) for _ in range(repeats)]
    return max(runs, key=lambda run: run.records_per_second)


def _capacity_messages(pool: list[Record], records: int) -> int:
    # moto slows down as a queue fills, so the capacity run sends as many bytes
    # into a fresh queue as the SDK run will: same work, same server state.
    return max(2, math.ceil(records * line_bytes(pool) / SQS_LIMIT))


def _throughput_for(
    results: Results, sizes: Sizes, endpoint: str, kind: str, pool: list[Record]
) -> None:
    section = f"throughput: {LABEL[kind]}"
    print(f"== {section}", flush=True)
    messages = _capacity_messages(pool, sizes.sdk[kind])
    best = functools.partial(_fastest, sizes.throughput_repeats)
    capacity = best(lambda: throughput.capacity(endpoint, pool, messages, in_flight=1))
    concurrent = best(lambda: throughput.capacity(endpoint, pool, messages, in_flight=4))
    sdk_run = best(lambda: throughput.sdk(endpoint, take(pool, sizes.sdk[kind])))
    many_run = best(lambda: throughput.sdk(endpoint, take(pool, sizes.sdk[kind]), write_many=True))
    legacy_run = best(lambda: throughput.legacy(endpoint, take(pool, sizes.legacy[kind])))
    one_by_one = asyncio.run(throughput.naive(endpoint, take(pool, sizes.naive_one_by_one), 1))
    gathered = asyncio.run(
        throughput.naive(endpoint, take(pool, sizes.naive_gather), throughput.GATHER_IN_FLIGHT)
    )
    bytes_per_record = sdk_run.bytes_sent / sdk_run.records
    capacity_records = capacity.mb_per_second * MEGABYTE / bytes_per_record
    concurrent_records = concurrent.mb_per_second * MEGABYTE / bytes_per_record
    legacy_rps = legacy_run.records_per_second
    results.add(
        Row(
            section,
            "server capacity: 256 KiB messages back to back",
            capacity.mb_per_second,
            "MB/s",
            target="reference for the 90% target",
            note=f"plain aiobotocore send_message, {messages} messages (the SDK run's bytes)",
        )
    )
    results.add(
        Row(
            section,
            "server capacity: 256 KiB messages, 4 in flight",
            concurrent.mb_per_second,
            "MB/s",
            "back to back",
            capacity.mb_per_second,
            note="the SDK's former fixed number of requests in flight",
        )
    )
    results.add(
        Row(
            section,
            "SDK write()",
            sdk_run.mb_per_second,
            "MB/s",
            "server capacity, back to back",
            capacity.mb_per_second,
            "≥ 0.90 ×",
            f"{sdk_run.records:,} records",
        )
    )
    results.add(
        Row(
            section,
            "server capacity (back to back) as records/s",
            capacity_records,
            "records/s",
            note=f"{capacity.mb_per_second:.1f} MB/s ÷ {bytes_per_record:.0f} B/record",
        )
    )
    results.add(
        Row(section, "server capacity (4 in flight) as records/s", concurrent_records, "records/s")
    )
    results.add(
        Row(
            section,
            "SDK write()",
            sdk_run.records_per_second,
            "records/s",
            "server capacity, back to back",
            capacity_records,
            "≥ 0.90 ×",
            f"{sdk_run.records:,} records, {sdk_run.mb_per_second:.1f} MB/s",
        )
    )
    results.add(
        Row(
            section,
            "SDK write() vs 4 in flight",
            sdk_run.records_per_second,
            "records/s",
            "server capacity, 4 in flight",
            concurrent_records,
            plot=False,
        )
    )
    results.add(
        Row(
            section,
            "SDK write() vs legacy style",
            sdk_run.records_per_second,
            "records/s",
            "legacy style",
            legacy_rps,
            "≥ 5 ×",
            plot=False,
        )
    )
    results.add(
        Row(
            section,
            "SDK write_many()",
            many_run.records_per_second,
            "records/s",
            "server capacity, back to back",
            capacity_records,
            note=f"{many_run.records:,} records, {many_run.mb_per_second:.1f} MB/s",
        )
    )
    results.add(
        Row(
            section,
            "legacy style (thread + queue)",
            legacy_rps,
            "records/s",
            note=f"{legacy_run.records:,} records, {legacy_run.mb_per_second:.2f} MB/s",
        )
    )
    results.add(
        Row(
            section,
            "naive send_message, one by one",
            one_by_one.records_per_second,
            "records/s",
            note=f"{one_by_one.records:,} records; {FRESH_QUEUE_NOTE}",
        )
    )
    results.add(
        Row(
            section,
            f"naive send_message, gather {throughput.GATHER_IN_FLIGHT}",
            gathered.records_per_second,
            "records/s",
            note=f"{gathered.records:,} records; {FRESH_QUEUE_NOTE}",
        )
    )
    client_cpu = sdk_run.cpu_seconds / sdk_run.records * 1e6
    results.add(
        Row(
            section,
            "SDK client CPU with the real transport",
            client_cpu,
            "µs/record",
            "legacy style, same",
            legacy_run.cpu_seconds / legacy_run.records * 1e6,
            note="process CPU during the run, aiobotocore included",
        )
    )
    _requests_for(results, kind, sdk_run, legacy_run)


def _requests_for(
    results: Results, kind: str, sdk_run: throughput.Run, legacy_run: throughput.Run
) -> None:
    section = f"requests: {LABEL[kind]}"
    for name, run in (("SDK", sdk_run), ("legacy style", legacy_run)):
        per_million = run.requests / run.records * 1e6
        minimum = run.bytes_sent / SQS_LIMIT / run.records * 1e6
        results.add(
            Row(
                section,
                f"{name}: SQS requests per million records",
                per_million,
                "requests",
                "minimum (bytes / 262144)",
                minimum,
                "≤ 1.05 ×" if name == "SDK" else "",
                f"{run.requests:,} requests, {run.messages:,} messages",
            )
        )
        results.add(
            Row(
                section,
                f"{name}: bytes per million records",
                run.bytes_sent / run.records * 1e6 / MEGABYTE,
                "MB",
            )
        )


def cpu_figures(results: Results, sizes: Sizes) -> None:
    for kind in KINDS:
        section = f"cpu: {LABEL[kind]}"
        print(f"== {section}", flush=True)
        records = take(make_pool(kind), sizes.cpu[kind])
        legacy_records = records[: sizes.cpu_legacy[kind]]
        repeats = sizes.cpu_repeats
        floor = cpu.best_of(repeats, lambda records=records: cpu.floor(records))
        floor_table = cpu.best_of(repeats, lambda records=records: cpu.floor_with_table(records))
        awaited = cpu.best_of(repeats, lambda records=records: cpu.await_floor(records))
        write = cpu.best_of(repeats, lambda records=records: cpu.sdk_write(records))
        many = cpu.best_of(repeats, lambda records=records: cpu.sdk_write_many(records))
        legacy = cpu.best_of(repeats, lambda records=legacy_records: cpu.legacy(records))
        results.add(Row(section, "floor: orjson.dumps(record)", floor.us_per_record, "µs/record"))
        results.add(
            Row(
                section,
                "floor: orjson.dumps({**record, '__table': t})",
                floor_table.us_per_record,
                "µs/record",
                "orjson.dumps(record)",
                floor.us_per_record,
            )
        )
        results.add(
            Row(
                section,
                "floor: await of a coroutine doing orjson.dumps(record)",
                awaited.us_per_record,
                "µs/record",
                "orjson.dumps(record)",
                floor.us_per_record,
                note="the least any await write(table, record) costs",
            )
        )
        for name, run in (("SDK write()", write), ("SDK write_many()", many)):
            results.add(
                Row(
                    section,
                    name,
                    run.us_per_record,
                    "µs/record",
                    "orjson.dumps(record)",
                    floor.us_per_record,
                    "≤ 2.0 ×",
                    "MemoryTransport(keep_bodies=False); whole SDK, sending included",
                )
            )
            results.add(
                Row(
                    section,
                    f"{name} vs floor with __table",
                    run.us_per_record,
                    "µs/record",
                    "orjson.dumps({**record, '__table': t})",
                    floor_table.us_per_record,
                    plot=False,
                )
            )
        results.add(
            Row(
                section,
                "SDK write() vs await floor",
                write.us_per_record,
                "µs/record",
                "await of a coroutine doing orjson.dumps(record)",
                awaited.us_per_record,
                plot=False,
            )
        )
        results.add(
            Row(
                section,
                "legacy style",
                legacy.us_per_record,
                "µs/record",
                "orjson.dumps(record)",
                floor.us_per_record,
                note="json.dumps + quote + queue.Queue + thread, form built, no network",
            )
        )
        results.add(
            Row(
                section,
                "SDK write() vs legacy style",
                write.us_per_record,
                "µs/record",
                "legacy style",
                legacy.us_per_record,
                plot=False,
            )
        )


def memory_figures(results: Results, sizes: Sizes) -> None:
    section = "memory"
    print(f"== {section}: {sizes.memory_records:,} ~100 B records into a slow server", flush=True)
    # A fresh process: its peak RSS then belongs to this scenario alone.
    command = [
        sys.executable,
        "-m",
        "benchmarks.memory",
        "--records",
        str(sizes.memory_records),
        "--interval",
        str(MEMORY_INTERVAL),
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    figures = json.loads(output.strip().splitlines()[-1])
    if figures["delivered"] != figures["records"]:
        raise RuntimeError(f"memory run delivered {figures['delivered']} of {figures['records']}")
    bound_mb = figures["max_buffer_bytes"] / 2**20
    results.add(
        Row(
            section,
            "peak RSS growth (VmHWM)",
            figures["growth_mb"],
            "MB",
            "64 MB target",
            64.0,
            "≤ 64 MB",
            f"{figures['records']:,} records in {figures['seconds']:.0f} s; "
            f"one request acknowledged per {MEMORY_INTERVAL * 1000:.0f} ms",
        )
    )
    results.add(
        Row(
            section,
            "most bytes buffered (sampled)",
            figures["most_buffered_bytes"] / 2**20,
            "MiB",
            "max_buffer_bytes",
            bound_mb,
            "≤ 1.0 ×",
            "backpressure: write() waited for room",
        )
    )


def latency_figures(results: Results, sizes: Sizes, endpoint: str) -> None:
    section = f"latency at {LATENCY_RATE:.0f} records/s"
    print(f"== {section}", flush=True)
    pool = make_pool("small")
    count = max(2, int(LATENCY_RATE * sizes.latency_seconds))
    for interval in (2.0, 0.05):
        measured = asyncio.run(latency.measure(endpoint, take(pool, count), LATENCY_RATE, interval))
        note = f"{measured.samples} records; max {measured.maximum * 1000:.0f} ms"
        results.add(
            Row(
                section,
                f"p50, flush_interval={interval}",
                measured.p50 * 1000,
                "ms",
                "flush_interval",
                interval * 1000,
                note=note,
            )
        )
        results.add(
            Row(
                section,
                f"p99, flush_interval={interval}",
                measured.p99 * 1000,
                "ms",
                "flush_interval",
                interval * 1000,
                "≤ flush_interval + a request",
            )
        )


# -- entry point ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    sizes = QUICK if args.quick else FULL
    results = Results(mode="quick" if args.quick else "full", machine=machine_info())
    arguments = sys.argv[1:] if argv is None else argv
    results.commands.append(" ".join(["python -m benchmarks", *arguments]))
    started = time.perf_counter()
    if hasattr(os, "getloadavg") and os.getloadavg()[0] > BUSY_LOAD:
        print(
            f"warning: the machine is busy (load average {os.getloadavg()[0]:.2f}); "
            "figures will be noisy",
            flush=True,
        )
    cpu_figures(results, sizes)
    connector_path.figures(results, take(make_pool("small"), sizes.cpu["small"]), sizes.cpu_repeats)
    with ServerProcess() as server:
        print(f"local SQS server (own process) at {server.endpoint_url}", flush=True)
        server_figures(results, sizes, server.endpoint_url)
        wal_figures(results, quick=args.quick, endpoint=server.endpoint_url)
        latency_figures(results, sizes, server.endpoint_url)
        sweep_sizes = latency_sweep.QUICK if args.quick else latency_sweep.FULL
        latency_sweep.sweep(results, sweep_sizes, server.endpoint_url)
    memory_figures(results, sizes)
    results.commands.append(
        f"python -m benchmarks.memory --records {sizes.memory_records} --interval {MEMORY_INTERVAL}"
    )
    results.seconds = time.perf_counter() - started
    if hasattr(os, "getloadavg"):
        results.machine["load average at end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print()
    print(to_markdown(results))
    for path in write_outputs(results, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
