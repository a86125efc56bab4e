"""Example connector: orders from a relational database, read asynchronously.

SQLite through ``aiosqlite``: the query runs on the driver's own thread, rows
come back in pages of ``n`` from one open cursor (never the whole table in
memory), and the incremental key ``id`` makes every run start after the last
acknowledged row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiosqlite

from panoply_async import DataSource

CONFIG: dict[str, Any] = {
    "title": "SQLite orders",
    "icon": "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4=",
    "params": [
        {"name": "database", "title": "Database file", "type": "text", "required": True,
         "placeholder": "/var/lib/shop/orders.db"},
        {"name": "table", "title": "Table", "type": "text", "default": "orders"},
    ],
}


class Stream(DataSource):
    """Rows with ``id`` above the committed ``last_id``, in ``id`` order."""

    async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        page = n or 500
        table = str(self.source.get("table") or "orders")
        if not table.isidentifier():
            raise ValueError(f"table name {table!r} is not a plain identifier")
        last_id = int((self.source.get("state") or {}).get("last_id", 0))
        async with aiosqlite.connect(self.source["database"]) as db:
            db.row_factory = aiosqlite.Row
            async with db.execute(f"SELECT COUNT(*) FROM {table} WHERE id > ?",
                                  (last_id,)) as counting:
                row = await counting.fetchone()
                total = int(row[0]) if row else 0
            loaded = 0
            async with db.execute(f"SELECT * FROM {table} WHERE id > ? ORDER BY id",
                                  (last_id,)) as cursor:
                while rows := await cursor.fetchmany(page):
                    records = [dict(r) for r in rows]
                    loaded += len(records)
                    top = records[-1]["id"]
                    self.state(top, {"last_id": top})
                    self.progress(loaded, total, f"rows up to id {top}")
                    yield [{**r, "__state": top} for r in records]
