"""``SDK.write_nowait()``: explicit load shedding for request paths (issue 20, item 6).

A transport that holds every request until the test opens a gate fills the buffer
deterministically: nothing is acknowledged, so nothing is released.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from panoply_async import (
    SDK,
    BufferFullError,
    MemoryTransport,
    Message,
    RecordError,
    SendOutcome,
    decode_body,
)

MESSAGE_BYTES = 4096
BUFFER_BYTES = 2 * MESSAGE_BYTES
PAD = "x" * 400


class GatedTransport(MemoryTransport):
    """Answers no request until :attr:`gate` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = anyio.Event()

    async def send(self, messages: Sequence[Message]) -> SendOutcome:
        await self.gate.wait()
        return await super().send(messages)


def ids(transport: MemoryTransport) -> list[int]:
    return [record["id"] for body in transport.bodies for record in decode_body(body)]


def gated_sdk(credentials: tuple[str, str], transport: GatedTransport) -> SDK:
    return SDK(*credentials, transport=transport, flush_interval=3600,
               max_message_bytes=MESSAGE_BYTES, max_buffer_bytes=BUFFER_BYTES)


async def fill(conn: SDK) -> int:
    """write_nowait() until it sheds; returns how many were accepted."""
    for accepted in range(1000):
        try:
            conn.write_nowait("t", {"id": accepted, "pad": PAD})
        except BufferFullError:
            return accepted
        await anyio.lowlevel.checkpoint()  # let the senders take closed messages
    raise AssertionError("the buffer never filled")


async def test_a_full_buffer_sheds_at_once_and_counts_it(
    vector_credentials: tuple[str, str],
) -> None:
    transport = GatedTransport()
    async with gated_sdk(vector_credentials, transport) as conn:
        accepted = await fill(conn)
        assert accepted > 0
        assert conn.buffered_bytes <= BUFFER_BYTES
        with pytest.raises(BufferFullError, match=r"buffer \([\d,]+ bytes\) is full.*not accepted"):
            conn.write_nowait("t", {"id": -1, "pad": PAD})
        stats = conn.stats
        assert stats.records_shed == 2
        assert stats.records_accepted == accepted
        transport.gate.set()
        await conn.flush()
        # Room again: the next write is accepted, and nothing accepted was lost.
        conn.write_nowait("t", {"id": accepted, "pad": PAD})
    assert sorted(ids(transport)) == list(range(accepted + 1))
    assert conn.stats.records_delivered == accepted + 1
    assert conn.stats.records_shed == 2


async def test_write_still_waits_for_room(vector_credentials: tuple[str, str]) -> None:
    transport = GatedTransport()
    async with gated_sdk(vector_credentials, transport) as conn:
        accepted = await fill(conn)
        done = anyio.Event()

        async def waiting_write() -> None:
            await conn.write("t", {"id": accepted, "pad": PAD})
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiting_write)
            await anyio.wait_all_tasks_blocked()
            assert not done.is_set()  # the default: wait, never drop
            transport.gate.set()
            with anyio.fail_after(10):
                await done.wait()
    assert sorted(ids(transport)) == list(range(accepted + 1))
    assert conn.stats.records_shed == 1


async def test_bad_records_and_closed_sdks_raise_as_write_does(
    vector_credentials: tuple[str, str],
) -> None:
    transport = MemoryTransport()
    conn = SDK(*vector_credentials, transport=transport)
    with pytest.raises(RuntimeError, match="async with"):
        conn.write_nowait("t", {})
    async with conn:
        with pytest.raises(RecordError):
            conn.write_nowait("t", {"bad": object()})
        with pytest.raises(RecordError):
            conn.write_nowait("t", {"lone": "\ud800"})
        record = {"id": 1}
        conn.write_nowait("t", record)
        record["id"] = 2  # encoded at the call: later changes are not sent
    assert conn.stats.records_rejected == 2
    assert conn.stats.records_shed == 0
    assert ids(transport) == [1]
    with pytest.raises(RuntimeError, match="closed"):
        conn.write_nowait("t", {})


async def test_a_full_write_ahead_log_sheds_too(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    transport = GatedTransport()
    conn = SDK(*vector_credentials, transport=transport, flush_interval=3600,
               max_message_bytes=MESSAGE_BYTES, max_buffer_bytes=64 * MESSAGE_BYTES,
               wal_dir=tmp_path, max_wal_bytes=4 * MESSAGE_BYTES)
    async with conn:
        accepted = await fill(conn)
        assert conn.buffered_bytes < 64 * MESSAGE_BYTES  # the log filled, not the buffer
        with pytest.raises(BufferFullError, match="write-ahead log is full"):
            conn.write_nowait("t", {"id": -1, "pad": PAD})
        transport.gate.set()
    assert sorted(ids(transport)) == list(range(accepted))
    assert conn.stats.records_shed == 2


async def test_the_shed_records_reach_the_metrics(vector_credentials: tuple[str, str]) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from panoply_async.metrics import instrument

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    transport = GatedTransport()
    conn = gated_sdk(vector_credentials, transport)
    instrument(conn, meter_provider=provider)
    try:
        async with conn:
            await fill(conn)
            data = reader.get_metrics_data()
            transport.gate.set()
    finally:
        provider.shutdown()
    assert data is not None
    shed = [
        point.value
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "panoply.sdk.records.shed"
        for point in metric.data.data_points
    ]
    assert shed == [1]
