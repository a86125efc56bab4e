"""The SQLite orders connector, with the testing kit."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlite_connector import Stream

from panoply_async.connectors._contract import check_connector
from panoply_async.testing import LocalQueue


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total REAL)")
        db.executemany("INSERT INTO orders VALUES (?, ?, ?)",
                       [(i, f"customer {i % 17}", i * 1.25) for i in range(1, 1_001)])
    return path


def test_module_contract() -> None:
    import sqlite_connector

    assert check_connector(sqlite_connector) == []


async def test_reads_every_row_in_pages(database: Path, panoply_queue: LocalQueue) -> None:
    progress: list[dict[str, object]] = []
    async with panoply_queue.sdk() as conn:
        conn.on("progress", progress.append)
        result = await conn.ingest(Stream({"type": "orders", "database": str(database)}),
                                   batch_size=128)
    assert result.records == 1_000
    assert result.batches == 8
    assert result.state == {"last_id": 1_000}
    assert progress[-1]["loaded"] == progress[-1]["total"] == 1_000
    rows = (await panoply_queue.atables())["orders"]
    assert sorted(r["id"] for r in rows) == list(range(1, 1_001))
    assert rows[0]["customer"].startswith("customer ")


async def test_incremental_key_resumes_after_the_committed_row(
    database: Path, panoply_queue: LocalQueue
) -> None:
    with sqlite3.connect(database) as db:
        db.execute("INSERT INTO orders VALUES (1001, 'late', 9.5)")
    source = {"type": "orders", "database": str(database), "state": {"last_id": 990}}
    async with panoply_queue.sdk() as conn:
        result = await conn.ingest(Stream(source))
    assert result.records == 11
    ids = sorted(r["id"] for r in (await panoply_queue.atables())["orders"])
    assert ids == list(range(991, 1_002))
