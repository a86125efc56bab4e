"""The SDK through the real aiobotocore client against a local SQS server (moto)."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from panoply_async import SDK, RecordError, decode_body
from panoply_async._engine.sdk import SDK_NAME
from panoply_async._wire.encoding import is_sqs_safe
from panoply_async.local import LocalSQS, ReceivedMessage
from panoply_async.testing import LocalQueue

LIMIT = 262_144


def records_of(messages: list[ReceivedMessage]) -> list[dict[str, Any]]:
    return [r for m in messages for r in decode_body(m.body)]


def check_messages(messages: list[ReceivedMessage], q: LocalQueue) -> None:
    for m in messages:
        assert m.size <= LIMIT
        assert m.attributes == {"key": q.apikey, "secret": q.apisecret, "sdk": SDK_NAME}
        assert is_sqs_safe(m.body)


async def test_fifty_thousand_records_arrive_exactly_once(
    panoply_server: LocalSQS, panoply_queue: LocalQueue
) -> None:
    tables = ("events", "users", "orders", "wide")
    written: dict[int, dict[str, Any]] = {}
    async with panoply_queue.sdk() as conn:
        for i in range(50_000):
            table = tables[i % 4]
            record: dict[str, Any] = {"id": i, "name": f"n{i}", "v": i * 0.5, "ok": i % 3 == 0}
            if table == "wide":
                record.update({f"c{j}": "é" * (i % 50) for j in range(20)})
            await conn.write(table, record)
            written[i] = {**record, "__table": table}
    messages = await panoply_server.areceive(panoply_queue.queue_url)
    check_messages(messages, panoply_queue)
    received = records_of(messages)
    counts = Counter(r["id"] for r in received)
    assert len(received) == 50_000
    assert set(counts.values()) == {1}
    for record in received:
        assert record == written[record["id"]]
    # Packed by real size: each message was closed only when the next record did
    # not fit, so no message wastes more than one record's worth of room.
    longest = max(len(line) + 1 for m in messages for line in m.body.split("\n"))
    total = sum(m.size for m in messages)
    assert len(messages) <= total // (LIMIT - longest) + 1
    assert conn.stats.records_delivered == 50_000
    assert conn.stats.messages_sent == len(messages)


async def test_vectors_arrive_as_delivered(
    panoply_server: LocalSQS, panoply_queue: LocalQueue, vectors: dict[str, Any]
) -> None:
    async with panoply_queue.sdk() as conn:
        for case in vectors["records"]:
            await conn.write(case["table"], case["data"])
    messages = await panoply_server.areceive(panoply_queue.queue_url)
    check_messages(messages, panoply_queue)
    assert records_of(messages) == [case["delivered"] for case in vectors["records"]]


async def test_signed_requests_work(
    panoply_server: LocalSQS, panoply_queue: LocalQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    async with panoply_queue.sdk(sign=True) as conn:
        await conn.write("t", {"id": 1})
    got = await panoply_server.areceive(panoply_queue.queue_url)
    assert [r["id"] for r in records_of(got)] == [1]


async def test_flush_delivers_before_it_returns_and_timer_waits(
    panoply_server: LocalSQS, panoply_queue: LocalQueue
) -> None:
    async with panoply_queue.sdk(flush_interval=3600) as conn:
        for i in range(10):
            await conn.write("t", {"id": i})
        await anyio.wait_all_tasks_blocked()
        assert conn.stats.requests == 0
        assert await panoply_server.areceive(panoply_queue.queue_url) == []
        await conn.flush()
        got = await panoply_server.areceive(panoply_queue.queue_url)
        assert [r["id"] for r in records_of(got)] == list(range(10))
        await conn.write("t", {"id": 10})
    got = await panoply_server.areceive(panoply_queue.queue_url)
    assert [r["id"] for r in records_of(got)] == [10]


async def test_trickle_goes_on_the_timer(
    panoply_server: LocalSQS, panoply_queue: LocalQueue
) -> None:
    flushed = anyio.Event()
    payloads: list[dict[str, Any]] = []

    def on_flush(data: dict[str, Any]) -> None:
        payloads.append(data)
        flushed.set()

    async with panoply_queue.sdk(flush_interval=0.1) as conn:
        conn.on("flush", on_flush)
        await conn.write("t", {"id": 1})
        with anyio.fail_after(30):
            await flushed.wait()
        got = await panoply_server.areceive(panoply_queue.queue_url)
        assert [r["id"] for r in records_of(got)] == [1]
    assert payloads[0]["reasons"] == {"timer": 1}


async def test_bad_records_rejected_neighbours_arrive(
    panoply_server: LocalSQS, panoply_queue: LocalQueue
) -> None:
    bad: list[tuple[Any, Any]] = [
        (None, {}),
        ("", {}),
        ("t", 42),
        ("t", {"x": {1, object()}}),
        ("t", {("tuple", "key"): 1}),
        ("t", {"s": "bad \udfff"}),
        ("t", {"huge": "h" * LIMIT}),
    ]
    async with panoply_queue.sdk() as conn:
        for i, (table, data) in enumerate(bad):
            await conn.write("t", {"id": i})
            with pytest.raises(RecordError) as info:
                await conn.write(table, data)
            assert isinstance(info.value, (TypeError, ValueError))
        await conn.write("t", {"id": len(bad)})
    got = records_of(await panoply_server.areceive(panoply_queue.queue_url))
    assert [r["id"] for r in got] == list(range(len(bad) + 1))


async def test_secret_never_leaks(
    panoply_server: LocalSQS,
    panoply_queue: LocalQueue,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    secret = panoply_queue.apisecret
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        conn = panoply_queue.sdk(spool_dir=tmp_path)
        texts.append(repr(conn))
        async with conn:
            await conn.write("t", {"id": 1})
            try:
                await conn.write("t", {"bad": object()})
            except RecordError as exc:
                texts.append(str(exc))
            await conn.flush()
            texts.append(repr(conn.stats))
        # A queue that does not exist: the error path, spooled.
        dead = SDK(panoply_queue.apikey, secret, endpoint_url="http://127.0.0.1:9",
                   spool_dir=tmp_path, max_attempts=1, request_timeout=5)
        dead.on("error", lambda data: texts.append(repr(data)))
        async with dead:
            await dead.write("t", {"id": 2})
    texts.append(caplog.text)
    texts.extend(p.read_text() for p in tmp_path.iterdir())
    assert "Making request" in caplog.text or "botocore" in caplog.text  # DEBUG was on
    for text in texts:
        assert secret not in text
    assert json.loads((tmp_path / next(iter(p.name for p in tmp_path.iterdir()))).read_text()
                      .splitlines()[0])["records"] == 1
