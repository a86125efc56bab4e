"""Regression tests for promises of the delivery engine (issue 14, items 1, 2 and 6),
through the real client and the local SQS server (behind the fault proxy where faults
matter)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from faultproxy import FaultPlan, FaultProxy
from panoply_async import SDK, DataSource
from panoply_async.local import LocalSQS
from panoply_async.testing import LocalQueue


@pytest.fixture
def proxy(panoply_server: LocalSQS) -> Iterator[FaultProxy]:
    with FaultProxy(panoply_server.endpoint_url, seed=14) as running:
        yield running


def reconcile(conn: SDK) -> None:
    s = conn.stats
    assert s.records_pending == 0
    assert s.records_accepted == s.records_delivered + s.records_spooled + s.records_failed


# -- 14.1: a write racing shutdown is delivered or raises ----------------------------------


async def test_write_racing_shutdown_is_delivered_or_raises(panoply_queue: LocalQueue) -> None:
    returned: list[int] = []
    refused: list[int] = []

    async def writer(conn: SDK, i: int) -> None:
        try:
            await conn.write("t", {"id": i, "pad": "x" * 100})
        except RuntimeError:
            refused.append(i)
        else:
            returned.append(i)

    # Small messages: among the writers, some close the open message and yield
    # inside write() while the block is being left.
    conn = panoply_queue.sdk(max_message_bytes=2048, flush_interval=3600)
    # The writers' task group outlives the SDK's block.
    async with anyio.create_task_group() as writers, conn:
        for i in range(60):
            writers.start_soon(writer, conn, i)
        await anyio.lowlevel.checkpoint()  # the writers start; then the block ends
    assert sorted(returned + refused) == list(range(60))
    reconcile(conn)
    assert conn.stats.records_delivered == len(returned)
    assert sorted(r["id"] for r in await panoply_queue.arecords()) == sorted(returned)


async def test_write_many_racing_shutdown_is_delivered_or_raises(
    panoply_queue: LocalQueue,
) -> None:
    outcome: dict[str, Any] = {}
    records = [{"id": i, "pad": "x" * 80} for i in range(1000)]

    async def writer(conn: SDK) -> None:
        try:
            outcome["accepted"] = await conn.write_many("t", records)
        except RuntimeError as exc:
            outcome["error"] = exc

    conn = panoply_queue.sdk(max_message_bytes=4096)
    async with anyio.create_task_group() as writers, conn:
        writers.start_soon(writer, conn)
        await anyio.lowlevel.checkpoint()  # write_many starts; then the block ends
    reconcile(conn)
    arrived = sorted(r["id"] for r in await panoply_queue.arecords())
    if "accepted" in outcome:
        assert outcome["accepted"] == 1000
        assert arrived == list(range(1000))
    else:  # refused: what it accepted before (stated in the error) arrived, nothing else
        assert arrived == list(range(conn.stats.records_accepted))
    assert conn.stats.records_delivered == len(arrived)


# -- 14.2: a state commits only after every record tagged with it was acknowledged ---------


class TaggedSource(DataSource):
    """State ``X``: one tagged record, then a second, large batch tagged ``X``."""

    async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        self.state("X", {"cursor": 2})
        yield [{"id": 0, "__state": "X"}]
        yield [{"id": i, "__state": "X", "pad": "y" * 200} for i in range(1, 5001)]


async def test_state_waits_for_tagged_records_of_a_batch_still_being_written(
    proxy: FaultProxy, panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    committed: list[Any] = []
    requests = 0

    def on_send(data: Any) -> None:
        # The first request (the first batch) goes through; every later one fails,
        # so the second batch is spooled while it is still being written.
        nonlocal requests
        requests += 1
        if requests == 2:
            proxy.plan = FaultPlan(fail_all=True)

    conn = SDK(
        panoply_queue.apikey, panoply_queue.apisecret, endpoint_url=proxy.endpoint_url,
        max_message_bytes=16 * 1024, max_buffer_bytes=64 * 1024, max_concurrent_sends=1,
        flush_interval=0.01, max_attempts=1, spool_dir=tmp_path,
    )
    conn.on("send", on_send)
    async with conn:
        result = await conn.ingest(
            TaggedSource({"type": "tagged"}), on_state=lambda i, s: committed.append(i)
        )
    assert conn.stats.records_spooled > 0
    assert committed == []
    assert result.states_committed == 0
    assert not result.delivered
    reconcile(conn)


# -- 14.6: a coroutine error handler that writes and flushes does not deadlock -------------


async def test_async_error_handler_that_writes_and_flushes_does_not_deadlock(
    proxy: FaultProxy, panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    handled: list[str] = []
    proxy.plan = FaultPlan(fail_all=True)
    conn = SDK(
        panoply_queue.apikey, panoply_queue.apisecret, endpoint_url=proxy.endpoint_url,
        max_concurrent_sends=1, max_attempts=1, spool_dir=tmp_path, shutdown_timeout=5,
    )

    async def record_failure(data: dict[str, Any]) -> None:
        proxy.plan = FaultPlan()  # the server recovers
        await conn.write("failures", {"operation": data["operation"], "n": data["records"]})
        await conn.flush()
        handled.append(data["operation"])

    conn.on("error", record_failure)
    async with conn:
        await conn.write("t", {"id": 1})
        await conn.flush()
    assert handled == ["send"]
    # The failed record was spooled, not the handler's; the server answered again,
    # so the SDK drained it back from the spool before it closed.
    assert conn.stats.records_unspooled == 1
    assert conn.stats.records_spooled == 0
    assert conn.stats.records_delivered == 2
    reconcile(conn)
    tables = await panoply_queue.atables()
    assert tables == {"failures": [{"operation": "send", "n": 1}], "t": [{"id": 1}]}
