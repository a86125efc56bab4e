"""``on_bad_record``: a record ``write()`` refuses stops the run (``fail``), or is
counted, identified and passed over (``skip``), or kept in a 0600 file with its
secrets masked (``dead-letter``); the rest of its batch still reaches SQS."""

from __future__ import annotations

import json
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from panoply_async import ConfigurationError, DataSource, RecordError
from panoply_async.testing import LocalQueue

TOKEN = "tok-very-secret-42"


class Mixed(DataSource):
    """Three batches; batch 2 holds three refused records among good ones."""

    async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        yield [{"id": i, "kind": "a"} for i in range(5)]
        yield [
            {"id": 5, "kind": "a"},
            {"id": 6, "kind": "b", "name": "bad \ud800 surrogate"},   # not UTF-8
            {"id": 7, "kind": "b"},
            {"id": 8, "kind": "a", "meta": {"when": object()}},     # not JSON
            {"id": 9, "kind": "b", "token_echo": TOKEN, "v": 1j},  # complex
            {"id": 10, "kind": "a"},
        ]
        yield [{"id": 11, "kind": "b"}]


def source(**extra: Any) -> dict[str, Any]:
    return {"type": "mixed", "api_token": TOKEN, **extra}


GOOD = [0, 1, 2, 3, 4, 5, 7, 10, 11]


async def test_fail_is_the_default_and_stops_at_the_bad_batch(panoply_queue: LocalQueue
                                                              ) -> None:
    async with panoply_queue.sdk() as conn:
        with pytest.raises(RecordError):
            await conn.ingest(Mixed(source()))
    ids = sorted(r["id"] for r in (await panoply_queue.atables())["mixed"])
    assert ids == [0, 1, 2, 3, 4]  # none of the refused batch was accepted


async def test_skip_counts_identifies_and_sends_the_rest(panoply_queue: LocalQueue) -> None:
    async with panoply_queue.sdk() as conn:
        result = await conn.ingest(Mixed(source()), on_bad_record="skip")
    ids = sorted(r["id"] for r in (await panoply_queue.atables())["mixed"])
    assert ids == GOOD
    assert result.records == len(GOOD)
    assert result.records_skipped == 3
    assert result.records_dead_lettered == 0
    assert result.delivered is True
    found = [(b.table, b.batch, b.position, b.path) for b in result.bad_records]
    assert found == [("mixed", 2, 1, '["name"]'), ("mixed", 2, 3, '["meta"]["when"]'),
                     ("mixed", 2, 4, '["v"]')]
    assert all(b.reason for b in result.bad_records)


async def test_skip_keeps_positions_when_records_are_routed_per_record(
        panoply_queue: LocalQueue) -> None:
    # Each batch is split by table; positions still count in the batch as read.
    async with panoply_queue.sdk() as conn:
        result = await conn.ingest(Mixed(source(destination="t_{kind}")), on_bad_record="skip")
    tables = await panoply_queue.atables()
    assert sorted(r["id"] for r in tables["t_a"]) == [0, 1, 2, 3, 4, 5, 10]
    assert sorted(r["id"] for r in tables["t_b"]) == [7, 11]
    assert result.tables == {"t_a": 7, "t_b": 2}
    assert sorted((b.position, b.table) for b in result.bad_records) == [
        (1, "t_b"), (3, "t_a"), (4, "t_b")]


async def test_dead_letter_writes_a_private_file_with_secrets_masked(
        panoply_queue: LocalQueue, tmp_path: Path) -> None:
    dead = tmp_path / "bad" / "dead.jsonl"
    async with panoply_queue.sdk() as conn:
        result = await conn.ingest(Mixed(source()), on_bad_record="dead-letter",
                                   dead_letter_file=dead)
    assert result.records_dead_lettered == 3
    assert result.records_skipped == 0
    assert stat.S_IMODE(dead.stat().st_mode) == 0o600
    text = dead.read_text(encoding="utf-8")
    assert TOKEN not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert [(e["table"], e["batch"], e["position"], e["path"]) for e in lines] == [
        ("mixed", 2, 1, '["name"]'), ("mixed", 2, 3, '["meta"]["when"]'),
        ("mixed", 2, 4, '["v"]')]
    assert lines[0]["record"]["id"] == 6
    assert lines[2]["record"]["token_echo"] == "***"
    ids = sorted(r["id"] for r in (await panoply_queue.atables())["mixed"])
    assert ids == GOOD


async def test_dead_letter_appends_and_tightens_an_existing_file(
        panoply_queue: LocalQueue, tmp_path: Path) -> None:
    dead = tmp_path / "dead.jsonl"
    dead.write_text('{"earlier": true}\n', encoding="utf-8")
    dead.chmod(0o644)
    async with panoply_queue.sdk() as conn:
        await conn.ingest(Mixed(source()), on_bad_record="dead-letter", dead_letter_file=dead)
    assert stat.S_IMODE(dead.stat().st_mode) == 0o600
    assert len(dead.read_text(encoding="utf-8").splitlines()) == 4


async def test_no_bad_record_no_file(panoply_queue: LocalQueue, tmp_path: Path) -> None:
    class Clean(DataSource):
        async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
            yield [{"id": 1}]

    dead = tmp_path / "dead.jsonl"
    async with panoply_queue.sdk() as conn:
        result = await conn.ingest(Clean(source()), on_bad_record="dead-letter",
                                   dead_letter_file=dead)
    assert result.records == 1
    assert not dead.exists()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"on_bad_record": "ignore"}, "on_bad_record must be one of fail, skip, dead-letter"),
    ({"on_bad_record": "dead-letter"}, "needs dead_letter_file"),
    ({"max_records": 0}, "max_records must be an integer of 1 or more"),
])
async def test_bad_options_are_refused_before_reading(
        panoply_queue: LocalQueue, kwargs: dict[str, Any], message: str) -> None:
    read: list[bool] = []

    class Watched(DataSource):
        async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
            read.append(True)
            yield [{"id": 1}]

    async with panoply_queue.sdk() as conn:
        with pytest.raises(ConfigurationError, match=message):
            await conn.ingest(Watched(source()), **kwargs)
    assert read == []
