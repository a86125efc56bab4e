"""Adaptive send concurrency through the fault proxy, the real client and the local
SQS server: a throttling storm makes the SDK back off, not retry harder, and loses
nothing."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faultproxy import FaultPlan, FaultProxy
from panoply_async import SDK
from panoply_async.local import LocalSQS
from panoply_async.testing import LocalQueue

CHANGE = re.compile(r"send concurrency (\d+) -> (\d+): (.*)")
#: throttled requests that end the storm if the limit never reaches 1 (a failure)
STORM_CAP = 300


@pytest.fixture
def proxy(panoply_server: LocalSQS) -> Iterator[FaultProxy]:
    with FaultProxy(panoply_server.endpoint_url, seed=99) as running:
        yield running


def changes(caplog: pytest.LogCaptureFixture) -> list[tuple[int, int, str]]:
    found = []
    for record in caplog.records:
        match = CHANGE.fullmatch(record.getMessage())
        if record.name == "panoply_async" and match:
            found.append((int(match[1]), int(match[2]), match[3]))
    return found


async def test_throttling_storm_backs_off_without_a_retry_storm_and_loses_nothing(
    proxy: FaultProxy, panoply_queue: LocalQueue, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="panoply_async")
    # Every send is throttled until the SDK is down to one request in flight.
    proxy.plan = FaultPlan(throttle=1.0)
    conn = SDK(
        panoply_queue.apikey, panoply_queue.apisecret, endpoint_url=proxy.endpoint_url,
        max_message_bytes=16 * 1024, backoff_base=0.01, backoff_max=0.1, max_attempts=100,
        retry_budget=600, spool_dir=tmp_path,
    )
    limits: list[int] = []
    storm: dict[str, int] = {}

    def on_send(event: dict[str, Any]) -> None:
        limits.append(conn.stats.send_concurrency)
        if storm:
            return
        throttled = proxy.snapshot().faults["throttle"]
        if conn.stats.send_concurrency == 1 or throttled >= STORM_CAP:
            proxy.plan = FaultPlan()
            storm.update(throttled=throttled, limit=conn.stats.send_concurrency)

    conn.on("send", on_send)
    async with conn:
        assert conn.stats.send_concurrency == 16
        await conn.write_many("t", [{"id": i, "pad": "p" * 40} for i in range(30_000)])

    # The limit fell by halving, each time for the throttling, down to 1 ...
    assert storm["limit"] == 1
    seen = changes(caplog)
    throttled = "throttled (RequestThrottled); backing off"
    falls = [(a, b, why) for a, b, why in seen if b < a]
    assert falls[:4] == [(16, 8, throttled), (8, 4, throttled), (4, 2, throttled),
                         (2, 1, throttled)]
    # (later, a probe for one more that did not pay is undone)
    assert {why for _, _, why in falls[4:]} <= {throttled, "probe did not raise throughput"}
    # ... after at most about one window of refusals per halving (16 + 8 + 4 + 2 + 1,
    # and as many answers to requests of an earlier window), not a refusal and
    # immediate retry per message: no retry storm.
    assert storm["throttled"] <= 2 * (16 + 8 + 4 + 2 + 1)
    # Every request the SDK made reached the proxy once (no hidden client retries),
    # and every retry answered a refusal.
    stats = proxy.snapshot()
    assert stats.send_requests == conn.stats.requests
    assert conn.stats.retries <= stats.faults["throttle"]
    assert conn.stats.requests <= conn.stats.messages_sent + stats.faults["throttle"]
    # Once the storm is over the limit grows again.
    assert max(limits[limits.index(1):]) > 1
    assert any(why.startswith("recovering") for _, _, why in seen)
    # Nothing lost: accepted == delivered + spooled, every record arrived once.
    s = conn.stats
    assert s.records_pending == 0
    assert s.records_accepted == s.records_delivered + s.records_spooled == 30_000
    assert s.records_spooled == 0
    ids = Counter(r["id"] for r in await panoply_queue.arecords())
    assert ids == Counter(range(30_000))
