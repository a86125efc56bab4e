"""panoply_async.metrics (issue 20.7): OpenTelemetry instruments read by the OTel SDK's
in-memory reader, against the real local SQS server (and the fault proxy for throttling)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

from faultproxy import FaultPlan, FaultProxy
from panoply_async import SDK
from panoply_async.local import LocalSQS
from panoply_async.metrics import COUNTERS, GAUGES, HISTOGRAMS, instrument
from panoply_async.testing import LocalQueue, new_queue


def collect(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    """Metric name -> its data points, from one collection."""
    data = reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: list(metric.data.data_points)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


def value(points: dict[str, list[Any]], name: str) -> Any:
    (point,) = points[name]
    return point.value


@pytest.fixture
def meter_provider() -> Iterator[tuple[MeterProvider, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield provider, reader
    provider.shutdown()


async def test_counters_gauges_and_histograms_follow_a_real_delivery(
    panoply_queue: LocalQueue,
    meter_provider: tuple[MeterProvider, InMemoryMetricReader],
    tmp_path: Path,
) -> None:
    provider, reader = meter_provider
    conn = panoply_queue.sdk(flush_interval=60, wal_dir=tmp_path / "wal")
    instrument(conn, meter_provider=provider, attributes={"service": "shop"})
    async with conn:
        for i in range(250):
            await conn.write("events", {"id": i})
        during = collect(reader)
        await conn.flush()
        for i in range(250, 300):
            await conn.write("events", {"id": i})
        await conn.flush()
        after = collect(reader)
    arrived = {r["id"] for r in await panoply_queue.arecords()}
    assert arrived == set(range(300))

    assert set(during) >= set(COUNTERS) | set(GAUGES)
    # Before the first flush everything is buffered and nothing delivered.
    assert value(during, "panoply.sdk.records.accepted") == 250
    assert value(during, "panoply.sdk.records.delivered") == 0
    assert value(during, "panoply.sdk.buffer.size") > 0
    assert value(during, "panoply.sdk.wal.size") > 0

    assert value(after, "panoply.sdk.records.accepted") == 300
    assert value(after, "panoply.sdk.records.delivered") == 300
    assert value(after, "panoply.sdk.records.spooled") == 0
    assert value(after, "panoply.sdk.records.failed") == 0
    assert value(after, "panoply.sdk.records.shed") == 0
    assert value(after, "panoply.sdk.send.requests") == conn.stats.requests >= 2
    assert value(after, "panoply.sdk.buffer.size") == 0
    assert value(after, "panoply.sdk.send.in_flight") == 0
    assert value(after, "panoply.sdk.send.concurrency_limit") == conn.stats.send_concurrency > 0

    # One acknowledged request per flush, one message each: two points in each histogram.
    for name in HISTOGRAMS:
        (point,) = after[name]
        assert isinstance(point, HistogramDataPoint)
        assert point.count == 2
        assert point.min >= 0
        assert dict(point.attributes) == {"panoply.account": conn.account, "service": "shop"}
    # A message's first record waited at least as long as its request took.
    assert after["panoply.sdk.delivery.latency"][0].sum >= (
        after["panoply.sdk.send.duration"][0].sum
    )
    for name in COUNTERS:
        assert dict(after[name][0].attributes)["panoply.account"] == conn.account


async def test_throttles_and_retries_are_counted(
    panoply_server: LocalSQS,
    panoply_queue: LocalQueue,
    meter_provider: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    provider, reader = meter_provider
    # Every second send request is throttled: requests 2, 4 and 6 of the 7 (the first
    # batch goes at once, the three others are throttled once each, then go).
    plan = FaultPlan(every=2, rotation=("throttle",))
    with FaultProxy(panoply_server.endpoint_url, seed=7, faults=plan) as proxy:
        conn = SDK(
            panoply_queue.apikey, panoply_queue.apisecret, endpoint_url=proxy.endpoint_url,
            backoff_base=0.001, backoff_max=0.01, max_concurrent_sends=1,
        )
        instrument(conn, meter_provider=provider)
        async with conn:
            for i in range(4):
                await conn.write("t", {"id": i})
                await conn.flush()
        points = collect(reader)
    assert value(points, "panoply.sdk.send.requests") == 7
    assert value(points, "panoply.sdk.send.throttles") == conn.stats.throttles == 3
    assert value(points, "panoply.sdk.send.retries") == conn.stats.retries == 3
    assert value(points, "panoply.sdk.records.delivered") == 4
    # Only acknowledged requests are timed.
    (duration,) = points["panoply.sdk.send.duration"]
    assert duration.count == 4
    assert len(await panoply_queue.arecords()) == 4


async def test_closed_instrumentation_reports_nothing(
    panoply_queue: LocalQueue, meter_provider: tuple[MeterProvider, InMemoryMetricReader]
) -> None:
    provider, reader = meter_provider
    conn = panoply_queue.sdk()
    handle = instrument(conn, meter_provider=provider)
    handle.close()
    async with conn:
        await conn.write("t", {"id": 1})
    data = reader.get_metrics_data()
    points = [] if data is None else [
        p
        for r in data.resource_metrics
        for s in r.scope_metrics
        for m in s.metrics
        for p in m.data.data_points
    ]
    assert points == []
    assert await panoply_queue.arecords() == [{"__table": "t", "id": 1}]


async def test_without_an_otel_sdk_nothing_is_observed(panoply_queue: LocalQueue) -> None:
    # The API's no-op provider: instruments exist but nothing calls back or records.
    conn = panoply_queue.sdk()
    instrument(conn, meter_provider=NoOpMeterProvider())
    async with conn:
        await conn.write("t", {"id": 1})
    assert conn.stats.records_delivered == 1


def test_bad_arguments_raise_typed_errors(panoply_queue: LocalQueue) -> None:
    with pytest.raises(TypeError, match="takes an SDK"):
        instrument(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="attributes"):
        instrument(panoply_queue.sdk(), attributes={"n": 1})  # type: ignore[dict-item]


async def test_two_sdks_on_one_provider_are_told_apart_by_their_attributes(
    panoply_server: LocalSQS, meter_provider: tuple[MeterProvider, InMemoryMetricReader]
) -> None:
    provider, reader = meter_provider
    first, second = new_queue(panoply_server), new_queue(panoply_server)
    a, b = first.sdk(), second.sdk()
    instrument(a, meter_provider=provider, attributes={"sdk": "a"})
    handle_b = instrument(b, meter_provider=provider, attributes={"sdk": "b"})
    async with a, b:
        await a.write("t", {"id": 1})
        for i in range(3):
            await b.write("t", {"id": i})
    points = collect(reader)
    delivered = {
        dict(p.attributes)["sdk"]: p.value for p in points["panoply.sdk.records.delivered"]
    }
    assert delivered == {"a": 1, "b": 3}
    handle_b.close()
    points = collect(reader)
    assert [dict(p.attributes)["sdk"] for p in points["panoply.sdk.records.delivered"]] == ["a"]
