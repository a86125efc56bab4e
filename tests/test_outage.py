"""SQS outages (issue 19, item 8): nothing accepted is abandoned while the SDK is open.

Through the real client, the fault proxy (its ``unavailable`` and ``fail_first``
modes answer 503) and the local SQS server. Without a spool a failing message is
retried for as long as the SDK is open; with ``spool_dir`` it overflows to disk
after ``retry_budget`` and the SDK sends it back by itself once SQS answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from faultproxy import FaultPlan, FaultProxy
from panoply_async import SDK, ConfigurationError
from panoply_async.local import LocalSQS
from panoply_async.testing import LocalQueue, new_queue

OUTAGE_SECONDS = 21


@pytest.fixture
def proxy(panoply_server: LocalSQS) -> Iterator[FaultProxy]:
    with FaultProxy(panoply_server.endpoint_url, seed=19) as running:
        yield running


def through(proxy: FaultProxy, queue: LocalQueue, **options: Any) -> SDK:
    return SDK(queue.apikey, queue.apisecret, endpoint_url=proxy.endpoint_url, **options)


def reconcile(conn: SDK) -> None:
    s = conn.stats
    assert s.records_pending == 0
    assert s.records_accepted == s.records_delivered + s.records_spooled + s.records_failed


def when_spool_drained(conn: SDK) -> anyio.Event:
    """Set once a drain-back acknowledgement (``flush`` with reason ``unspool``)
    leaves this SDK's spool empty."""
    drained = anyio.Event()

    def on_flush(data: dict[str, Any]) -> None:
        if data["reasons"].get("unspool") and conn.stats.records_spooled == 0:
            drained.set()

    conn.on("flush", on_flush)
    return drained


async def test_a_message_is_retried_past_eight_attempts_and_delivered(
    proxy: FaultProxy, panoply_queue: LocalQueue
) -> None:
    # The old policy gave a message up after 8 attempts (DeliveryError at exit).
    proxy.plan = FaultPlan(fail_first=15)
    conn = through(proxy, panoply_queue, backoff_base=0.001, backoff_max=0.01)
    async with conn:
        await conn.write("t", {"id": 1})
        mark = conn.checkpoint()
        await conn.flush()
        assert mark.delivered
    assert proxy.snapshot().faults["unavailable"] == 15
    assert conn.stats.requests == 16
    assert conn.stats.records_delivered == 1
    assert conn.stats.records_failed == 0
    assert [r["id"] for r in await panoply_queue.arecords()] == [1]


async def test_a_set_max_attempts_still_gives_up(
    proxy: FaultProxy, panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    proxy.plan = FaultPlan(fail_all=True)
    conn = through(proxy, panoply_queue, backoff_base=0.001, backoff_max=0.01,
                   max_attempts=3, spool_dir=tmp_path)
    async with conn:
        await conn.write("t", {"id": 1})
        await conn.flush()
        assert conn.stats.requests == 3
        assert conn.stats.records_spooled == 1
    reconcile(conn)


def test_backoff_max_below_backoff_base_is_refused(panoply_queue: LocalQueue) -> None:
    with pytest.raises(ConfigurationError, match="backoff_max"):
        panoply_queue.sdk(backoff_base=2.0, backoff_max=1.0)
    with pytest.raises(ConfigurationError, match="max_attempts"):
        panoply_queue.sdk(max_attempts=0)


async def test_overflowed_messages_drain_back_without_live_traffic(
    proxy: FaultProxy, panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    spooled = anyio.Event()
    proxy.plan = FaultPlan(fail_all=True)
    conn = through(proxy, panoply_queue, backoff_base=0.01, backoff_max=0.2,
                   retry_budget=0.5, spool_dir=tmp_path, flush_interval=0.05)
    conn.on("error", lambda data: spooled.set())
    drained = when_spool_drained(conn)
    async with conn:
        await conn.write("t", {"id": 1})
        with anyio.fail_after(10):
            await spooled.wait()
        assert conn.stats.records_spooled == 1
        assert list(tmp_path.glob("*.jsonl"))
        proxy.plan = FaultPlan()  # SQS is back; nothing else is written
        # The drain-back probes the queue by itself every backoff_max seconds.
        with anyio.fail_after(10):
            await drained.wait()
        assert conn.stats.records_unspooled == 1
        assert conn.stats.records_spooled == 0
    assert not list(tmp_path.glob("*.jsonl"))
    reconcile(conn)
    assert conn.stats.records_delivered == 1
    assert [r["id"] for r in await panoply_queue.arecords()] == [1]


async def test_a_spool_file_being_sent_back_stays_locked_until_the_sdk_closes(
    proxy: FaultProxy, panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    spooled, probed = anyio.Event(), anyio.Event()
    proxy.plan = FaultPlan(fail_all=True)
    conn = through(proxy, panoply_queue, backoff_base=0.01, backoff_max=0.2,
                   retry_budget=0.3, spool_dir=tmp_path, flush_interval=0.05)
    conn.on("error", lambda data: spooled.set())
    # A request after the overflow is the drain-back's probe: it holds the file now.
    conn.on("send", lambda data: probed.set() if spooled.is_set() else None)
    async with conn, panoply_queue.sdk() as other:
        await conn.write("t", {"id": 1})
        with anyio.fail_after(10):
            await spooled.wait()
            await probed.wait()
        elsewhere = await other.replay(tmp_path)
        assert elsewhere.records_sent == 0
        assert [reason for _, reason in elsewhere.files_skipped] == [
            "in use by a running writer or another replay"
        ]
    # SQS still fails: the entry stays in the file, released for replay.
    assert conn.stats.records_spooled == 1
    reconcile(conn)
    async with panoply_queue.sdk() as later:
        result = await later.replay(tmp_path)
    assert result.records_sent == 1
    assert [r["id"] for r in await panoply_queue.arecords()] == [1]


async def test_a_refused_spooled_message_is_not_resent_forever(
    panoply_server: LocalSQS, panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    # The proxy refuses messages over 8 KiB (a sender fault): spooled at once, and
    # the drain-back tries it once more at most, while the others go through.
    with FaultProxy(panoply_server.endpoint_url, max_message_bytes=8 * 1024) as small:
        conn = through(small, panoply_queue, spool_dir=tmp_path, flush_interval=0.05,
                       backoff_base=0.01, backoff_max=0.1)
        async with conn:
            await conn.write("big", {"pad": "x" * 10_000})
            await conn.flush()
            for i in range(5):
                await conn.write("t", {"id": i})
                await conn.flush()
        violations = small.snapshot().limit_violations
    assert 1 <= violations <= 2
    assert conn.stats.records_spooled == 1
    assert len(list(tmp_path.glob("*.jsonl"))) == 1
    assert sorted(r["id"] for r in await panoply_queue.arecords()) == list(range(5))
    reconcile(conn)


@pytest.mark.main_only
async def test_an_outage_of_minutes_loses_nothing_with_or_without_a_spool(
    proxy: FaultProxy, panoply_server: LocalSQS, tmp_path: Path
) -> None:
    """SQS answers 503 to everything for 21 s in the middle of two streams of writes,
    one SDK in memory only and one with ``spool_dir``; then it comes back. Every
    record arrives, without a restart, and the spool is empty at the end."""
    memory_queue, disk_queue = new_queue(panoply_server), new_queue(panoply_server)
    spool_dir = tmp_path / "spool"
    options: dict[str, Any] = dict(
        backoff_base=0.05, backoff_max=1.0, flush_interval=0.1,
        max_message_bytes=8 * 1024, max_buffer_bytes=64 * 1024,
    )
    memory = through(proxy, memory_queue, **options)
    disk = through(proxy, disk_queue, spool_dir=spool_dir, retry_budget=2.0, **options)
    written: dict[str, list[int]] = {"memory": [], "disk": []}
    phase = {"name": "before"}
    during: dict[str, dict[str, int]] = {}
    stop = anyio.Event()
    drained = when_spool_drained(disk)
    warmed_up = {"memory": anyio.Event(), "disk": anyio.Event()}

    async def stream(name: str, conn: SDK) -> None:
        i = 0
        while not stop.is_set():
            await conn.write("events", {"id": i, "phase": phase["name"], "pad": "p" * 80})
            written[name].append(i)
            i += 1
            if i == 500:
                warmed_up[name].set()
            if i % 20 == 0:
                await anyio.sleep(0.02)  # a steady stream, not a flood

    async with memory, disk, anyio.create_task_group() as writers:
        writers.start_soon(stream, "memory", memory)
        writers.start_soon(stream, "disk", disk)
        with anyio.fail_after(30):
            for event in warmed_up.values():
                await event.wait()
        assert await memory.checkpoint()
        assert await disk.checkpoint()

        proxy.plan = FaultPlan(unavailable=True)
        phase["name"] = "outage"
        await anyio.sleep(OUTAGE_SECONDS)  # the outage's length, not a synchronisation
        during = {"memory": memory.stats.as_dict(), "disk": disk.stats.as_dict()}
        # Backpressure: the memory variant's buffer is full and its writer waits.
        assert memory.buffered_bytes > options["max_buffer_bytes"] // 2
        proxy.plan = FaultPlan()
        phase["name"] = "after"

        # The disk variant's overflow drains back while both streams go on.
        with anyio.fail_after(120):
            await drained.wait()
        stop.set()

    assert proxy.snapshot().faults["unavailable"] > 0
    # During the outage the memory variant held everything and lost nothing; the
    # disk variant overflowed to its spool after retry_budget.
    assert during["memory"]["records_failed"] == during["memory"]["records_spooled"] == 0
    assert during["memory"]["records_pending"] > 0
    assert during["disk"]["records_spooled"] > 0
    assert disk.stats.records_unspooled >= during["disk"]["records_spooled"]
    assert disk.stats.records_spooled == 0
    assert not list(spool_dir.glob("*.jsonl"))
    for name, conn, queue in (("memory", memory, memory_queue), ("disk", disk, disk_queue)):
        reconcile(conn)
        assert conn.stats.records_failed == 0
        received = {r["id"] for r in await queue.arecords()}
        assert received == set(written[name]), name
