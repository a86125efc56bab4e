"""``conn.checkpoint()``: a mark after everything written so far, awaited for its
delivery, through the real client, the fault proxy and the local SQS server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faultproxy import FaultPlan, FaultProxy, digest
from panoply_async import SDK, Checkpoint
from panoply_async.local import LocalSQS
from panoply_async.testing import LocalQueue


@pytest.fixture
def proxy(panoply_server: LocalSQS) -> Iterator[FaultProxy]:
    with FaultProxy(panoply_server.endpoint_url, seed=3) as running:
        yield running


def through(proxy: FaultProxy, queue: LocalQueue, **options: Any) -> SDK:
    return SDK(queue.apikey, queue.apisecret, endpoint_url=proxy.endpoint_url, **options)


async def test_checkpoint_is_true_only_after_acknowledgement(
    proxy: FaultProxy, panoply_queue: LocalQueue
) -> None:
    # Every answer is held back a while, so the request is surely in flight first.
    proxy.plan = FaultPlan(slow=1.0, slow_seconds=0.3)
    seen_at_send: list[tuple[bool, bool]] = []
    bodies: list[str] = []
    conn = through(proxy, panoply_queue, flush_interval=0.05)
    async with conn:
        await conn.write("t", {"id": 1})
        cp = conn.checkpoint()
        assert isinstance(cp, Checkpoint)
        assert (cp.done, cp.delivered, cp.failed) == (False, False, False)
        conn.on("send", lambda data: seen_at_send.append((cp.done, cp.delivered)))
        assert await cp is True
        # By now SQS acknowledged the body, and the client saw that answer.
        acked = proxy.snapshot().acked_bodies
        bodies = [m.body for m in await panoply_queue.amessages()]
        assert (cp.done, cp.delivered, cp.failed) == (True, True, False)
        assert await cp.wait() is True  # awaiting again answers at once
    assert seen_at_send == [(False, False)]
    assert len(bodies) == 1
    assert digest(bodies[0]) in acked
    assert "delivered" in repr(cp)


async def test_checkpoint_is_false_when_anything_before_it_was_spooled(
    proxy: FaultProxy, panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    conn = through(proxy, panoply_queue, max_attempts=1, spool_dir=tmp_path, flush_interval=0.05)
    async with conn:
        await conn.write("t", {"id": "before"})
        early = conn.checkpoint()
        assert await early is True

        proxy.plan = FaultPlan(fail_all=True)
        await conn.write("t", {"id": "spooled"})
        failing = conn.checkpoint()
        assert await failing is False
        assert (failing.done, failing.delivered, failing.failed) == (True, False, True)

        proxy.plan = FaultPlan()  # the server recovers; the failure before stays
        await conn.write("t", {"id": "after"})
        later = conn.checkpoint()
        assert await later is False
    assert early.delivered  # a mark before the failure is not affected by it
    # Once the server answered again the SDK drained the spooled record back; the
    # checkpoint still said False: it was spooled when the checkpoint settled.
    assert conn.stats.records_unspooled == 1
    assert conn.stats.records_spooled == 0
    assert sorted(r["id"] for r in await panoply_queue.arecords()) == [
        "after", "before", "spooled"
    ]


async def test_checkpoint_of_nothing_written_is_delivered_at_once(
    panoply_queue: LocalQueue,
) -> None:
    async with panoply_queue.sdk() as conn:
        cp = conn.checkpoint()
        assert (cp.done, cp.delivered) == (True, True)
        assert await cp is True
    with pytest.raises(RuntimeError, match="closed"):
        conn.checkpoint()
