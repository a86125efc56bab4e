"""Latency from ``write()`` to acknowledgement at a low, steady rate.

Timestamps of writes wait in a FIFO; every ``flush`` event (fired after a
request is acknowledged, with how many records it held) pops that many. At a
low rate one message is in flight at a time, so acknowledgements come in
write order and the FIFO pairs each record with its own acknowledgement.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import anyio

import panoply_async

from .records import TABLE, Record
from .server import fresh_queue

_SETTLE = 0.5


@dataclass(frozen=True)
class Latency:
    samples: int
    p50: float
    p99: float
    maximum: float


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile of ``values`` (``share`` in 0..1)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def measure(
    endpoint: str, records: list[Record], rate: float, flush_interval: float
) -> Latency:
    written: deque[float] = deque()
    latencies: list[float] = []

    def on_flush(event: dict[str, Any]) -> None:
        now = time.perf_counter()
        for _ in range(event["records"]):
            latencies.append(now - written.popleft())

    async with fresh_queue(endpoint) as queue:
        conn = panoply_async.SDK(
            queue.apikey, queue.apisecret, endpoint_url=endpoint, flush_interval=flush_interval
        )
        conn.on("flush", on_flush)
        async with conn:
            start = anyio.current_time()
            for index, record in enumerate(records):
                await anyio.sleep_until(start + index / rate)
                written.append(time.perf_counter())
                await conn.write(TABLE, record)
            # Let the timer send the last message, so that leaving the block (which
            # sends at once) does not flatter the figure.
            await anyio.sleep(flush_interval + _SETTLE)
    if len(latencies) != len(records):
        raise RuntimeError(f"{len(latencies)} of {len(records)} records acknowledged")
    return Latency(
        len(latencies), percentile(latencies, 0.50), percentile(latencies, 0.99), max(latencies)
    )
