"""Peak memory while millions of records are written into a deliberately slow server.

Run in a fresh process (``python -m benchmarks.memory``) so that the peak
(``VmHWM``) reflects this scenario only, not the benchmarks that ran before.
The transport acknowledges one request per ``interval`` seconds, whatever
the number of senders, so the buffer fills and ``write()`` must wait.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from collections.abc import Sequence
from pathlib import Path

import anyio

import panoply_async
from panoply_async import Message, SendOutcome
from panoply_async.local import make_credentials

from .records import TABLE, cycle, make_pool

SAMPLE_EVERY = 4096


class SlowTransport:
    """Acknowledges every request, at most one per ``interval`` seconds overall."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._next_slot = 0.0
        self.requests = 0

    async def open(self) -> None:
        self._next_slot = anyio.current_time()

    async def aclose(self) -> None:
        pass

    async def send(self, messages: Sequence[Message]) -> SendOutcome:
        # Reserve the next free slot before sleeping, so concurrent senders queue up.
        slot = max(self._next_slot, anyio.current_time()) + self._interval
        self._next_slot = slot
        await anyio.sleep_until(slot)
        self.requests += 1
        return SendOutcome(acked=[m.id for m in messages])


def peak_rss_mb() -> float:
    """The process's peak resident set (VmHWM), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def run(records: int, interval: float) -> dict[str, float]:
    pool = make_pool("small")
    apikey, apisecret = make_credentials("bench")
    transport = SlowTransport(interval)
    conn = panoply_async.SDK(apikey, apisecret, transport=transport)
    max_buffer = conn.config.max_buffer_bytes
    before = peak_rss_mb()
    most_buffered = 0
    start = time.perf_counter()
    async with conn:
        write = conn.write
        for index, record in enumerate(cycle(pool, records)):
            await write(TABLE, record)
            if index % SAMPLE_EVERY == 0:
                most_buffered = max(most_buffered, conn.buffered_bytes)
    seconds = time.perf_counter() - start
    after = peak_rss_mb()
    stats = conn.stats
    return {
        "records": records,
        "delivered": stats.records_delivered,
        "requests": stats.requests,
        "bytes_sent": stats.bytes_sent,
        "seconds": seconds,
        "peak_before_mb": before,
        "peak_after_mb": after,
        "growth_mb": after - before,
        "max_buffer_bytes": max_buffer,
        "most_buffered_bytes": most_buffered,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    parser.add_argument("--records", type=int, default=5_000_000)
    parser.add_argument(
        "--interval", type=float, default=0.02, help="seconds between acknowledged requests"
    )
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args.records, args.interval))))


if __name__ == "__main__":
    main()
