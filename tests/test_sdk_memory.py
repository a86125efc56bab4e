"""Unit tests of the SDK's batching and delivery logic over the in-memory transport."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from panoply_async import (
    SDK,
    DeliveryError,
    EntryFailure,
    MemoryTransport,
    Message,
    RecordError,
    SendError,
    SendOutcome,
    decode_body,
)
from panoply_async._durable.spool import queue_tag


def ids(transport: MemoryTransport) -> list[int]:
    return [r["id"] for body in transport.bodies for r in decode_body(body)]


def check_invariant(conn: SDK) -> None:
    s = conn.stats
    assert s.records_accepted == (
        s.records_delivered + s.records_spooled + s.records_failed + s.records_pending
    )


async def test_write_needs_an_open_sdk(vector_credentials: tuple[str, str]) -> None:
    sdk = SDK(*vector_credentials, transport=MemoryTransport())
    with pytest.raises(RuntimeError, match="async with"):
        await sdk.write("t", {})
    async with sdk:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        await sdk.write("t", {})
    with pytest.raises(RuntimeError, match="only once"):
        await sdk.__aenter__()


async def test_flush_delivers_before_returning(vector_credentials: tuple[str, str]) -> None:
    transport = MemoryTransport()
    async with SDK(*vector_credentials, transport=transport, flush_interval=3600) as conn:
        for i in range(10):
            await conn.write("t", {"id": i})
        await anyio.wait_all_tasks_blocked()
        assert transport.bodies == []  # long interval: nothing sent yet
        await conn.flush()
        assert ids(transport) == list(range(10))
        assert conn.stats.records_delivered == 10
        assert conn.stats.records_pending == 0
    assert transport.closed


async def test_exit_delivers_everything(vector_credentials: tuple[str, str]) -> None:
    transport = MemoryTransport()
    async with SDK(*vector_credentials, transport=transport, flush_interval=3600) as conn:
        for i in range(30_000):
            await conn.write("t" if i % 2 else "u", {"id": i, "pad": "x" * 40})
    assert sorted(ids(transport)) == list(range(30_000))
    assert conn.stats.records_pending == 0
    check_invariant(conn)


async def test_full_messages_go_without_waiting_for_the_timer(
    vector_credentials: tuple[str, str],
) -> None:
    transport = MemoryTransport()
    flushed = anyio.Event()
    reasons: list[dict[str, int]] = []

    def on_flush(data: dict[str, Any]) -> None:
        reasons.append(data["reasons"])
        flushed.set()

    async with SDK(
        *vector_credentials, transport=transport, flush_interval=3600, max_message_bytes=4096
    ) as conn:
        conn.on("flush", on_flush)
        for i in range(200):
            await conn.write("t", {"id": i, "pad": "x" * 40})
        with anyio.fail_after(10):
            await flushed.wait()
        assert reasons[0] == {"full": 1}
        assert all(len(b) <= 4096 for b in transport.bodies)


async def test_trickle_is_sent_on_the_timer(vector_credentials: tuple[str, str]) -> None:
    transport = MemoryTransport()
    seen: list[dict[str, Any]] = []
    flushed = anyio.Event()

    def on_flush(data: dict[str, Any]) -> None:
        seen.append(data)
        flushed.set()

    async with SDK(*vector_credentials, transport=transport, flush_interval=0.05) as conn:
        conn.on("flush", on_flush)
        await conn.write("t", {"id": 1})
        with anyio.fail_after(10):
            await flushed.wait()
        assert len(seen) == 1
        timing = {key: seen[0].pop(key) for key in ("seconds", "ages")}
        assert seen == [{"messages": 1, "records": 1, "bytes": len(transport.bodies[0]),
                         "reasons": {"timer": 1}}]
        # Added for the metrics: the request's duration and the message's age at its ack.
        assert timing["seconds"] >= 0
        assert len(timing["ages"]) == 1
        assert timing["ages"][0] >= timing["seconds"]


async def test_events_and_failing_handlers(
    vector_credentials: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    transport = MemoryTransport()
    star: list[str] = []
    async_calls: list[int] = []

    def broken(data: Any) -> None:
        raise ZeroDivisionError("handler bug")

    async def async_handler(data: dict[str, Any]) -> None:
        await anyio.lowlevel.checkpoint()
        async_calls.append(data["records"])

    sdk = SDK(*vector_credentials, transport=transport, flush_interval=3600)
    assert sdk.on("send", broken) is sdk
    sdk.on("flush", async_handler).on("*", lambda name, data: star.append(name))
    with pytest.raises(ValueError, match="unknown event"):
        sdk.on("flsuh", broken)
    with caplog.at_level(logging.ERROR, logger="panoply_async"):
        async with sdk as conn:
            await conn.write("t", {"id": 1})
            await conn.flush()
            await conn.write("t", {"id": 2})
    assert ids(transport) == [1, 2]
    assert star == ["send", "flush", "send", "flush"]
    assert async_calls == [1, 1]
    assert "handler for event 'send' raised" in caplog.text


async def test_bad_records_do_not_disturb_neighbours(vector_credentials: tuple[str, str]) -> None:
    transport = MemoryTransport()
    bad: list[tuple[Any, Any]] = [
        (None, {"id": -1}),
        ("", {"id": -1}),
        ("t", ["not", "a", "mapping"]),
        ("t", {"id": -1, "obj": object()}),
        ("t", {"id": -1, 5: "int key"}),
        ("t", {"id": -1, "s": "\ud800"}),
        ("t", {"id": -1, "big": "x" * 300_000}),
    ]
    async with SDK(*vector_credentials, transport=transport) as conn:
        for i, (table, data) in enumerate(bad):
            await conn.write("t", {"id": i})
            with pytest.raises(RecordError):
                await conn.write(table, data)
        await conn.write("t", {"id": len(bad)})
    assert ids(transport) == list(range(len(bad) + 1))
    assert conn.stats.records_rejected == len(bad)
    assert conn.stats.records_accepted == len(bad) + 1


async def test_write_many_is_all_or_nothing(vector_credentials: tuple[str, str]) -> None:
    transport = MemoryTransport()
    async with SDK(*vector_credentials, transport=transport) as conn:
        assert await conn.write_many("t", [{"id": 0}, {"id": 1}]) == 2
        with pytest.raises(RecordError):
            await conn.write_many("t", [{"id": 2}, {"id": object()}])
        await conn.write_many("t", [{"id": 3}])
    assert ids(transport) == [0, 1, 3]


class GatedTransport(MemoryTransport):
    """Holds every request until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = anyio.Event()
        self.waiting = 0

    async def send(self, messages: Sequence[Message]) -> SendOutcome:
        self.waiting += 1
        await self.gate.wait()
        return await super().send(messages)


async def test_backpressure_bounds_the_buffer(vector_credentials: tuple[str, str]) -> None:
    transport = GatedTransport()
    limit = 64 * 1024
    peak = 0
    async with SDK(
        *vector_credentials,
        transport=transport,
        max_message_bytes=8 * 1024,
        max_buffer_bytes=limit,
        max_concurrent_sends=2,
    ) as conn:
        done = anyio.Event()

        async def producer() -> None:
            nonlocal peak
            for i in range(5_000):
                await conn.write("t", {"id": i, "pad": "y" * 80})
                peak = max(peak, conn._buffered)
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(producer)
            await anyio.wait_all_tasks_blocked()
            # The producer is stuck on a full buffer, not finished.
            assert not done.is_set()
            assert conn._buffered <= limit
            assert conn.stats.records_accepted < 5_000
            transport.gate.set()
    assert peak <= limit
    assert sorted(ids(transport)) == list(range(5_000))


async def test_retries_then_delivers(vector_credentials: tuple[str, str]) -> None:
    failures = iter([SendError("throttled", retryable=True, code="RequestThrottled")] * 3)

    def fault(messages: Sequence[Message]) -> BaseException | None:
        return next(failures, None)

    transport = MemoryTransport(fault=fault)
    async with SDK(*vector_credentials, transport=transport, backoff_base=0.001) as conn:
        await conn.write("t", {"id": 1})
    assert ids(transport) == [1]
    assert conn.stats.retries == 3
    assert conn.stats.requests == 4


async def test_non_retryable_is_not_retried(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    def fault(messages: Sequence[Message]) -> BaseException:
        return SendError("no queue", retryable=False, code="QueueDoesNotExist")

    errors: list[dict[str, Any]] = []
    transport = MemoryTransport(fault=fault)
    async with SDK(*vector_credentials, transport=transport, spool_dir=tmp_path) as conn:
        conn.on("error", errors.append)
        await conn.write("t", {"id": 1})
    assert conn.stats.requests == 1
    assert conn.stats.records_spooled == 1
    assert errors[0]["operation"] == "send"
    assert errors[0]["spooled"] is True
    assert isinstance(errors[0]["exception"], SendError)


async def test_partial_failure_resends_only_failed_entries(
    vector_credentials: tuple[str, str],
) -> None:
    sent_bodies: list[bytes] = []
    acked_bodies: list[bytes] = []
    calls = 0

    def fault(messages: Sequence[Message]) -> SendOutcome:
        nonlocal calls
        calls += 1
        sent_bodies.extend(m.body for m in messages)
        if calls == 1 and len(messages) > 1:
            fail = messages[::2]
            ok = [m for m in messages if m not in fail]
            acked_bodies.extend(m.body for m in ok)
            return SendOutcome(
                acked=[m.id for m in ok],
                failed=[EntryFailure(m.id, "InternalError", "x", False) for m in fail],
            )
        acked_bodies.extend(m.body for m in messages)
        return SendOutcome(acked=[m.id for m in messages])

    transport = MemoryTransport(fault=fault)
    async with SDK(
        *vector_credentials, transport=transport, flush_interval=3600, backoff_base=0.001,
        max_message_bytes=2048, max_concurrent_sends=1,
    ) as conn:
        # Small messages queue up behind the first request so that a batch forms.
        for i in range(40):
            await conn.write("t", {"id": i})
            conn._close_open_message("flush")
    assert sorted(ids(transport)) == list(range(40))
    assert len(acked_bodies) == len(set(acked_bodies))  # an acked entry is never resent
    assert len(sent_bodies) > 40  # something was resent
    assert conn.stats.retries >= 1


async def test_sender_fault_entries_are_spooled_not_retried(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    def fault(messages: Sequence[Message]) -> SendOutcome:
        return SendOutcome(failed=[EntryFailure(m.id, "InvalidMessageContents", "bad", True)
                                   for m in messages])

    transport = MemoryTransport(fault=fault)
    async with SDK(*vector_credentials, transport=transport, spool_dir=tmp_path) as conn:
        await conn.write("t", {"id": 1})
    assert conn.stats.requests == 1
    assert conn.stats.records_spooled == 1


async def test_no_spool_raises_delivery_error_with_counts(
    vector_credentials: tuple[str, str],
) -> None:
    def fault(messages: Sequence[Message]) -> BaseException:
        return SendError("down", retryable=False)

    conn = SDK(*vector_credentials, transport=MemoryTransport(fault=fault))

    async def run() -> None:
        async with conn:
            for i in range(5):
                await conn.write("t", {"id": i})

    with pytest.raises(DeliveryError) as info:
        await run()
    assert info.value.records == 5
    assert "5 records" in str(info.value)
    assert [r["id"] for b in info.value.bodies for r in decode_body(b)] == list(range(5))
    check_invariant(conn)
    assert conn.stats.records_failed == 5


async def test_spool_then_replay_delivers_exactly_once(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    def down(messages: Sequence[Message]) -> BaseException:
        return SendError("connection refused", retryable=True)

    errors: list[dict[str, Any]] = []
    async with SDK(
        *vector_credentials, transport=MemoryTransport(fault=down), spool_dir=tmp_path,
        max_attempts=2, backoff_base=0.001, max_message_bytes=4096,
    ) as conn:
        conn.on("error", errors.append)
        for i in range(500):
            await conn.write("t", {"id": i, "pad": "z" * 30})
    assert conn.stats.records_spooled == 500
    assert conn.stats.records_delivered == 0
    assert errors
    assert all(e["spooled"] for e in errors)
    spool = conn.spool_path
    assert spool is not None
    assert spool.exists()
    lines = [json.loads(line) for line in spool.read_text().splitlines()]
    # Lines name the queue by a digest: its name holds part of the api secret (issue 19).
    assert {line["queue"] for line in lines} == {queue_tag(conn.queue_url)}
    assert conn.queue_url.rsplit("/", 1)[-1] not in spool.read_text()
    assert vector_credentials[1] not in spool.read_text()

    healthy = MemoryTransport()
    async with SDK(*vector_credentials, transport=healthy) as again:
        result = await again.replay(tmp_path)
    assert result.records_sent == 500
    assert result.messages_left == 0
    assert sorted(ids(healthy)) == list(range(500))
    assert not spool.exists()


async def test_interrupted_replay_keeps_unsent_entries(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    def down(messages: Sequence[Message]) -> BaseException:
        return SendError("refused", retryable=False)

    async with SDK(
        *vector_credentials, transport=MemoryTransport(fault=down), spool_dir=tmp_path,
        max_message_bytes=2048,
    ) as conn:
        for i in range(300):
            await conn.write("t", {"id": i, "pad": "q" * 30})
    spool = conn.spool_path
    assert spool is not None
    total = len(spool.read_text().splitlines())
    assert total > 3

    calls = 0

    def fail_after_two(messages: Sequence[Message]) -> BaseException | None:
        nonlocal calls
        calls += 1
        return SendError("gone", retryable=False) if calls > 2 else None

    first = MemoryTransport(fault=fail_after_two)
    # Same message limit as the spooling SDK: one message per request.
    async with SDK(*vector_credentials, transport=first, max_message_bytes=2048) as again:
        result = await again.replay(spool)
    assert result.messages_left > 0
    remaining = len(spool.read_text().splitlines())
    assert remaining == result.messages_left
    second = MemoryTransport()
    async with SDK(*vector_credentials, transport=second) as third:
        await third.replay(spool)
    assert sorted(ids(first) + ids(second)) == list(range(300))
    assert not spool.exists()


class HangingTransport(MemoryTransport):
    async def send(self, messages: Sequence[Message]) -> SendOutcome:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


async def test_shutdown_deadline_spools_the_rest(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    transport = HangingTransport()
    async with SDK(
        *vector_credentials, transport=transport, spool_dir=tmp_path, shutdown_timeout=0.1
    ) as conn:
        for i in range(100):
            await conn.write("t", {"id": i})
    assert conn.stats.records_spooled == 100
    assert conn.stats.records_pending == 0
    assert transport.closed
    spool = conn.spool_path
    assert spool is not None
    recs = [r for line in spool.read_text().splitlines()
            for r in decode_body(json.loads(line)["body"])]
    assert [r["id"] for r in recs] == list(range(100))


async def test_cancellation_still_drains(vector_credentials: tuple[str, str]) -> None:
    transport = MemoryTransport()
    written = 0
    with anyio.CancelScope() as outer:
        async with SDK(*vector_credentials, transport=transport, flush_interval=3600) as conn:
            for i in range(50_000):
                await conn.write("t", {"id": i})
                written += 1
                if i == 20_000:
                    outer.cancel()
                    await anyio.lowlevel.checkpoint()
    assert outer.cancelled_caught
    assert conn.stats.records_accepted == written
    assert sorted(ids(transport)) == list(range(written))
    check_invariant(conn)
    assert conn.stats.records_pending == 0
    assert transport.closed


async def test_invariant_holds_at_every_event(vector_credentials: tuple[str, str]) -> None:
    calls = 0

    def flaky(messages: Sequence[Message]) -> BaseException | None:
        nonlocal calls
        calls += 1
        return SendError("flaky", retryable=True) if calls % 3 == 0 else None

    checks = 0

    def check(name: str, data: Any) -> None:
        nonlocal checks
        check_invariant(conn)
        checks += 1

    async with SDK(
        *vector_credentials, transport=MemoryTransport(fault=flaky), backoff_base=0.001,
        max_message_bytes=4096,
    ) as conn:
        conn.on("*", check)
        for i in range(3_000):
            await conn.write("t", {"id": i})
            if i % 500 == 0:
                check_invariant(conn)
    assert checks > 10
    assert conn.stats.records_delivered == 3_000


async def test_native_task_cancel_still_drains(vector_credentials: tuple[str, str]) -> None:
    """Ctrl-C under asyncio.run cancels the main task natively, not through anyio."""
    import asyncio

    transport = MemoryTransport()
    started = asyncio.Event()
    written = 0
    conn = SDK(*vector_credentials, transport=transport, flush_interval=3600)

    async def producer() -> None:
        nonlocal written
        async with conn:
            for i in range(1_000_000):
                await conn.write("t", {"id": i})
                written += 1
                if i == 5_000:
                    started.set()
                if i % 100 == 0:
                    await asyncio.sleep(0)

    task = asyncio.create_task(producer())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 5_000 < written < 1_000_000
    assert sorted(ids(transport)) == list(range(written))
    assert conn.stats.records_pending == 0
    assert transport.closed


MIXED: list[dict[str, Any]] = [
    {"id": 0},
    {},
    {"__table": "spoof", "id": 1},
    {"s": "\ufffe \uffff \uff21", "id": 2},
    {"big": 2**90, "id": 3},
    {"ctrl": "\x00\x07", "id": 4},
    {"set": {1}, "id": 5},
]


@pytest.mark.parametrize("many", [False, True])
async def test_fast_and_general_paths_agree(
    vector_credentials: tuple[str, str], many: bool
) -> None:
    from panoply_async import encode_record

    transport = MemoryTransport()
    async with SDK(*vector_credentials, transport=transport) as conn:
        for table in ("t", "u"):
            if many:
                await conn.write_many(table, MIXED)
            else:
                for record in MIXED:
                    await conn.write(table, record)
    expected = b"".join(encode_record(t, r) for t in ("t", "u") for r in MIXED)
    assert b"".join(transport.bodies) == expected


async def test_buffer_bound_holds_with_concurrent_writers(
    vector_credentials: tuple[str, str],
) -> None:
    transport = GatedTransport()
    limit = 64 * 1024
    peak = 0
    async with SDK(
        *vector_credentials,
        transport=transport,
        max_message_bytes=8 * 1024,
        max_buffer_bytes=limit,
        max_concurrent_sends=1,
    ) as conn:

        async def producer(first: int) -> None:
            nonlocal peak
            for i in range(first, first + 1_000):
                await conn.write("t", {"id": i, "pad": "w" * 90})
                peak = max(peak, conn.buffered_bytes)

        async with anyio.create_task_group() as tg:
            for k in range(8):
                tg.start_soon(producer, k * 1_000)
            await anyio.wait_all_tasks_blocked()
            assert conn.buffered_bytes <= limit
            transport.gate.set()
    assert peak <= limit
    assert sorted(ids(transport)) == list(range(8_000))
