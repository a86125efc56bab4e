"""The write path on its own (in-memory transport): write_many()'s batch fast path
packs exactly like write() one by one, falls back to the general encoder where it
must, and passes every accepted line through the journal seam."""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from typing import Any

import pytest

from panoply_async import SDK, MemoryTransport, Message, RecordError, decode_body
from panoply_async._buffer import Journal


def decoded(transport: MemoryTransport) -> list[dict[str, Any]]:
    return [r for body in transport.bodies for r in decode_body(body)]


class ListJournal:
    """Keeps what the write path tells a write-ahead log."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.closed: list[Message] = []
        self.finished: list[tuple[int, bool]] = []

    def line(self, body: bytes, tail: bytes) -> None:
        self.lines.append(body[:-1] + b"," + tail if tail else body)


def attach(conn: SDK) -> ListJournal:
    journal = ListJournal()

    class Adapter:
        def line(self, body: bytes, tail: bytes) -> None:
            journal.line(body, tail)

        def closed(self, message: Message) -> None:
            journal.closed.append(message)

        def finished(self, messages: Sequence[Message], delivered: bool) -> None:
            journal.finished.extend((m.seq, delivered) for m in messages)

    adapter: Journal = Adapter()
    conn._buffer.journal = adapter
    return journal


RECORDS = [{"id": i, "pad": "p" * (i % 97)} for i in range(3_000)]


async def test_write_many_packs_like_write(vector_credentials: tuple[str, str]) -> None:
    one, many = MemoryTransport(), MemoryTransport()
    options: dict[str, Any] = {"max_message_bytes": 4096, "flush_interval": 3600}
    async with SDK(*vector_credentials, transport=one, **options) as conn:
        for record in RECORDS:
            await conn.write("t", record)
    async with SDK(*vector_credentials, transport=many, **options) as conn:
        for start in range(0, len(RECORDS), 600):
            assert await conn.write_many("t", RECORDS[start : start + 600]) == 600
    assert many.bodies == one.bodies  # same messages, byte for byte
    assert [r["id"] for r in decoded(many)] == list(range(3_000))
    assert conn.stats.records_pending == 0


async def test_write_many_within_a_small_buffer_waits_and_delivers_all(
    vector_credentials: tuple[str, str],
) -> None:
    transport = MemoryTransport()
    async with SDK(
        *vector_credentials, transport=transport, max_message_bytes=2048,
        max_buffer_bytes=4096, max_concurrent_sends=1,
    ) as conn:
        assert await conn.write_many("t", RECORDS) == len(RECORDS)
        assert conn.buffered_bytes <= 4096
    assert [r["id"] for r in decoded(transport)] == list(range(3_000))


@pytest.mark.parametrize(
    "odd",
    [
        {"__table": "other", "id": -1},  # overwritten by the table
        {},  # an empty record
        {"id": -1, "d": decimal.Decimal("1.10")},  # orjson needs the default hook
        {"id": -1, "s": "\ufffe"},  # a noncharacter to escape
        {"id": -1, "nested": {"__table": "kept"}},
    ],
    ids=["table-key", "empty", "decimal", "noncharacter", "nested-table-key"],
)
async def test_write_many_falls_back_where_the_batch_path_cannot_go(
    vector_credentials: tuple[str, str], odd: dict[str, Any]
) -> None:
    transport = MemoryTransport()
    records = [{"id": 0}, odd, {"id": 1}]
    async with SDK(*vector_credentials, transport=transport) as conn:
        assert await conn.write_many("t", records) == 3
    got = decoded(transport)
    assert [r["__table"] for r in got] == ["t", "t", "t"]
    assert got[0] == {"id": 0, "__table": "t"}
    assert got[2] == {"id": 1, "__table": "t"}
    expected = {k: v for k, v in odd.items() if k != "__table"}
    if "d" in expected:
        expected["d"] = 1.1  # decoded as a JSON number
    assert {k: v for k, v in got[1].items() if k != "__table"} == expected


async def test_write_many_refuses_a_batch_with_one_bad_record(
    vector_credentials: tuple[str, str],
) -> None:
    transport = MemoryTransport()
    async with SDK(*vector_credentials, transport=transport, max_message_bytes=2048) as conn:
        with pytest.raises(RecordError):
            await conn.write_many("t", [{"id": 0}, {"big": "x" * 5000}])
        with pytest.raises(RecordError):
            await conn.write_many("t", [{"id": 0}, ["not", "a", "dict"]])  # type: ignore[list-item]
        assert conn.stats.records_accepted == 0
        assert await conn.write_many("t", ({"id": i} for i in range(3))) == 3  # type: ignore[arg-type]
    assert [r["id"] for r in decoded(transport)] == [0, 1, 2]


async def test_every_accepted_line_passes_the_journal(vector_credentials: tuple[str, str]) -> None:
    transport = MemoryTransport()
    async with SDK(
        *vector_credentials, transport=transport, max_message_bytes=4096, flush_interval=3600
    ) as conn:
        journal = attach(conn)
        await conn.write("t", {"id": "w"})  # write()'s fast path
        await conn.write("t", {"id": "d", "d": decimal.Decimal("2")})  # the general encoder
        await conn.write_many("t", RECORDS[:500])  # the batch path, across messages
        await conn.write_many("t", [{"id": "f", "__table": "x"}])  # write_many's fallback
    sent = [line for body in transport.bodies for line in body.splitlines(keepends=True)]
    assert journal.lines == sent
    assert [m.body for m in journal.closed] == transport.bodies
    assert sorted(journal.finished) == [(m.seq, True) for m in journal.closed]
