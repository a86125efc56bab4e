"""Throughput under network latency: default settings against fixed concurrency.

The local server sits behind :mod:`benchmarks.delay_proxy`, which adds a fixed
round trip (0, 50, 100, 200 ms). At each latency the SDK with its defaults (the
adaptive controller) runs against the same SDK with the number of requests in
flight fixed at 1, 4, 16 and 64, and the best of those is the baseline; the
legacy-style sender runs at 100 ms. Each configuration gets a fresh queue; the
configurations take turns, ``repeats`` times, and the fastest run of each
counts (other load on the machine only ever slows a run down); a fixed setting
at less than half the speed of the best fixed one runs once only.

``python -m benchmarks.latency_sweep [--quick] [--records N] [--repeats N]`` runs it
alone and prints the rows.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, replace
from typing import Any

import panoply_async

from . import throughput
from .delay_proxy import DelayProxy
from .records import TABLE, Record, make_pool, take
from .report import Results, Row, machine_info, to_markdown
from .server import ServerProcess, fresh_queue

RTTS_MS = (0.0, 50.0, 100.0, 200.0)
FIXED = (1, 4, 16, 64)
LEGACY_RTT_MS = 100.0
SECTION = "latency sweep: ~100 B records, round trip added by a proxy"


@dataclass(frozen=True)
class SweepSizes:
    records: int
    legacy_records: int
    repeats: int
    rtts_ms: tuple[float, ...] = RTTS_MS
    fixed: tuple[int, ...] = FIXED


FULL = SweepSizes(records=100_000, legacy_records=100_000, repeats=4)
# The same code on tiny inputs and fewer points (make test runs it): figures mean nothing.
QUICK = SweepSizes(
    records=1_000, legacy_records=500, repeats=1, rtts_ms=(0.0, LEGACY_RTT_MS), fixed=(1, 16)
)


@dataclass(frozen=True)
class Outcome:
    run: throughput.Run
    #: the in-flight limit at the end and the highest it reached
    final_limit: int
    peak_limit: int


async def sdk_run(endpoint: str, records: list[Record], **options: Any) -> Outcome:
    """The SDK with ``options``, timed from the first write to leaving the block."""
    async with fresh_queue(endpoint) as queue:
        conn = panoply_async.SDK(queue.apikey, queue.apisecret, endpoint_url=endpoint, **options)
        peak = 0

        def on_send(event: dict[str, Any]) -> None:
            nonlocal peak
            peak = max(peak, conn.stats.send_concurrency)

        conn.on("send", on_send)
        async with conn:
            started_wall, started_cpu = time.perf_counter(), time.process_time()
            write = conn.write
            for record in records:
                await write(TABLE, record)
        wall = time.perf_counter() - started_wall
        cpu = time.process_time() - started_cpu
        stats = conn.stats
        if stats.records_delivered != len(records):
            raise RuntimeError(f"SDK delivered {stats.records_delivered} of {len(records)}")
        run = throughput.Run(
            len(records), wall, cpu, stats.requests, stats.messages_sent, stats.bytes_sent
        )
        return Outcome(run, stats.send_concurrency, max(peak, stats.send_concurrency))


def _configurations(sizes: SweepSizes) -> dict[str, dict[str, Any]]:
    configurations: dict[str, dict[str, Any]] = {"default": {}}
    for fixed in sizes.fixed:
        configurations[f"fixed {fixed}"] = {
            "max_concurrent_sends": fixed,
            "adaptive_concurrency": False,
        }
    return configurations


def sweep(results: Results, sizes: SweepSizes, server_endpoint: str) -> None:
    """Add the sweep's rows to ``results`` (the server runs already)."""
    print(f"== {SECTION}", flush=True)
    records = take(make_pool("small"), sizes.records)
    configurations = _configurations(sizes)
    with DelayProxy(server_endpoint, list(sizes.rtts_ms)) as proxy:
        for rtt in sizes.rtts_ms:
            endpoint = proxy.endpoints[rtt]
            best: dict[str, Outcome] = {}
            names = list(configurations)
            for turn in range(sizes.repeats):
                # Each repeat starts with another configuration, so that none is
                # always the one run right after the slowest.
                for name in names[turn % len(names) :] + names[: turn % len(names)]:
                    if turn and _out_of_the_race(name, best):
                        continue
                    outcome = asyncio.run(sdk_run(endpoint, records, **configurations[name]))
                    if name not in best or outcome.run.seconds < best[name].run.seconds:
                        best[name] = outcome
            _rows_for(results, rtt, best)
            if rtt == LEGACY_RTT_MS:
                legacy_records = take(make_pool("small"), sizes.legacy_records)
                legacy = asyncio.run(throughput.legacy(endpoint, legacy_records))
                default = best["default"].run
                results.add(
                    Row(
                        SECTION,
                        f"default vs legacy style, {rtt:g} ms",
                        default.records_per_second,
                        "records/s",
                        "legacy style (thread + queue)",
                        legacy.records_per_second,
                        "≥ 10 ×",
                        f"legacy style: {legacy.records:,} records, {legacy.requests} requests",
                    )
                )


def _out_of_the_race(name: str, best: dict[str, Outcome]) -> bool:
    """A fixed setting at less than half the best fixed one's speed cannot become the
    best by a rerun: it is run once only, which leaves time to repeat the others."""
    if name == "default":
        return False
    fastest = min(o.run.seconds for n, o in best.items() if n != "default")
    return best[name].run.seconds > 2 * fastest


def _rows_for(results: Results, rtt: float, best: dict[str, Outcome]) -> None:
    fixed = {name: outcome for name, outcome in best.items() if name != "default"}
    best_name = max(fixed, key=lambda name: fixed[name].run.records_per_second)
    for name, outcome in fixed.items():
        results.add(
            Row(
                SECTION,
                f"{name}, {rtt:g} ms",
                outcome.run.records_per_second,
                "records/s",
                note=f"{outcome.run.requests} requests, {outcome.run.seconds:.2f} s",
                plot=False,
            )
        )
    default = best["default"]
    results.add(
        Row(
            SECTION,
            f"default, {rtt:g} ms",
            default.run.records_per_second,
            "records/s",
            f"best fixed ({best_name})",
            fixed[best_name].run.records_per_second,
            "≥ 0.90 ×",
            f"{default.run.records:,} records, {default.run.requests} requests, "
            f"{default.run.seconds:.2f} s; in flight: up to {default.peak_limit}, "
            f"{default.final_limit} at the end",
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.latency_sweep",
                                     description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny inputs, same code paths")
    parser.add_argument("--records", type=int, help="records per run (default 100,000)")
    parser.add_argument("--repeats", type=int, help="runs of each configuration (default 4)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.records or args.repeats:
        sizes = replace(
            sizes,
            records=args.records or sizes.records,
            legacy_records=args.records or sizes.legacy_records,
            repeats=args.repeats or sizes.repeats,
        )
    results = Results(mode="quick" if args.quick else "full", machine=machine_info())
    results.commands.append(" ".join(["python -m benchmarks.latency_sweep", *(argv or [])]))
    started = time.perf_counter()
    with ServerProcess() as server:
        sweep(results, sizes, server.endpoint_url)
    results.seconds = time.perf_counter() - started
    print()
    print(to_markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
