"""Delivery guarantees under injected faults, through the real client, a fault proxy
and the local SQS server."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from faultproxy import FaultPlan, FaultProxy, digest
from panoply_async import SDK, decode_body
from panoply_async.local import LocalSQS, ReceivedMessage
from panoply_async.testing import LocalQueue

# Every tenth send request fails, the kinds in turn (deterministic, so that each kind
# surely happens): 500, throttling, connection dropped before or after the server
# stored the messages, and a partial failure of a multi-entry batch.
TEN_PERCENT = FaultPlan(
    every=10, rotation=("http_500", "throttle", "drop_before", "drop_after", "partial")
)


@pytest.fixture
def proxy(panoply_server: LocalSQS) -> Iterator[FaultProxy]:
    with FaultProxy(panoply_server.endpoint_url, seed=1234) as running:
        yield running


def reconcile(conn: SDK) -> None:
    s = conn.stats
    assert s.records_pending == 0
    assert s.records_accepted == s.records_delivered + s.records_spooled + s.records_failed


async def test_two_hundred_thousand_records_under_ten_percent_faults(
    proxy: FaultProxy, panoply_queue: LocalQueue
) -> None:
    proxy.plan = TEN_PERCENT
    bulk, small = 190_000, 10_000
    messages: list[ReceivedMessage] = []
    sent = anyio.Event()

    async def consume() -> None:
        # moto's per-request cost grows with the queue's length: consume as we go.
        while not sent.is_set():
            messages.extend(await panoply_queue.amessages(wait_seconds=1))
        messages.extend(await panoply_queue.amessages())

    # Small messages make many requests, so that every fault kind happens often.
    conn = SDK(
        panoply_queue.apikey, panoply_queue.apisecret, endpoint_url=proxy.endpoint_url,
        backoff_base=0.01, backoff_max=0.2, max_attempts=20, max_concurrent_sends=2,
        max_message_bytes=16 * 1024,
    )

    async def producer(first: int) -> None:
        for start in range(first, first + 500, 20):
            for i in range(start, start + 20):
                await conn.write("d", {"id": i})
            await conn.flush()

    async with anyio.create_task_group() as consumer:
        consumer.start_soon(consume)
        async with conn:
            for i in range(bulk):
                await conn.write(("a", "b", "c")[i % 3], {"id": i, "v": "x" * (i % 40)})
            # Many producers flushing small chunks: small messages queue up behind
            # each other, so batches of several entries form and partial failures happen.
            async with anyio.create_task_group() as producers:
                for k in range(20):
                    producers.start_soon(producer, bulk + k * 500)
        sent.set()

    stats = proxy.snapshot()
    ids = Counter(r["id"] for m in messages for r in decode_body(m.body))
    assert set(ids) == set(range(bulk + small))
    # Every fault kind happened, partial batch failures included.
    assert {"http_500", "throttle", "drop_before", "drop_after", "partial"} <= set(stats.faults)
    assert stats.entries_failed_partial > 0
    assert stats.limit_violations == 0
    # An entry whose acknowledgement the client received was never sent again ...
    assert max(Counter(stats.acked_bodies).values()) == 1
    # ... so the only duplicates are bodies whose answer was lost (at-least-once).
    unseen = set(stats.acked_unseen_bodies)
    body_counts = Counter(digest(m.body) for m in messages)
    assert {body for body, n in body_counts.items() if n > 1} <= unseen
    duplicated_ids = {i for i, n in ids.items() if n > 1}
    dup_bodies = {digest(m.body) for m in messages
                  if any(r["id"] in duplicated_ids for r in decode_body(m.body))}
    assert dup_bodies <= unseen
    reconcile(conn)
    assert conn.stats.records_delivered == bulk + small
    assert conn.stats.retries > 0


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_unreachable_server_spools_everything_then_replay_delivers_once(
    panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    errors: list[dict[str, Any]] = []
    dead = f"http://127.0.0.1:{closed_port()}"
    async with SDK(
        panoply_queue.apikey, panoply_queue.apisecret, endpoint_url=dead, spool_dir=tmp_path,
        max_attempts=3, backoff_base=0.01,
    ) as conn:
        conn.on("error", errors.append)
        for i in range(20_000):
            await conn.write("t", {"id": i})
    assert conn.stats.records_spooled == 20_000
    assert conn.stats.records_delivered == 0
    reconcile(conn)
    assert errors
    assert all(e["spooled"] and e["spool_path"] for e in errors)
    assert sum(e["records"] for e in errors) == 20_000

    async with panoply_queue.sdk() as again:
        result = await again.replay(tmp_path)
    assert result.records_sent == 20_000
    assert result.messages_left == 0
    ids = Counter(r["id"] for r in await panoply_queue.arecords())
    assert ids == Counter(range(20_000))
    assert list(tmp_path.iterdir()) == []


async def test_cancelled_mid_stream_reconciles(
    proxy: FaultProxy, panoply_queue: LocalQueue
) -> None:
    proxy.plan = FaultPlan(http_500=0.1, drop_before=0.1)
    written = 0
    with anyio.CancelScope() as scope:
        async with SDK(
            panoply_queue.apikey, panoply_queue.apisecret, endpoint_url=proxy.endpoint_url,
            backoff_base=0.01, max_attempts=20,
        ) as conn:
            for i in range(100_000):
                await conn.write("t", {"id": i})
                written += 1
                if i == 30_000:
                    scope.cancel()
    assert scope.cancelled_caught
    reconcile(conn)
    assert conn.stats.records_accepted == written
    ids = {r["id"] for r in await panoply_queue.arecords()}
    assert ids == set(range(written))


async def test_fast_producer_into_slow_server_stays_within_the_buffer(
    proxy: FaultProxy, panoply_queue: LocalQueue
) -> None:
    proxy.plan = FaultPlan(slow=1.0, slow_seconds=0.05)
    limit = 512 * 1024
    peak = 0
    async with SDK(
        panoply_queue.apikey, panoply_queue.apisecret, endpoint_url=proxy.endpoint_url,
        max_buffer_bytes=limit, max_message_bytes=64 * 1024, max_concurrent_sends=2,
    ) as conn:
        for i in range(40_000):
            await conn.write("t", {"id": i, "pad": "p" * 60})
            peak = max(peak, conn.buffered_bytes)
    assert peak <= limit
    # The bound was reached: the producer really outran the server and waited.
    assert peak > limit - 64 * 1024
    assert len(await panoply_queue.arecords()) == 40_000
