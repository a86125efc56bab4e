"""The demo connector: varied records in three tables, with progress and state.

Run it with ``panoply-async demo`` (which uses an embedded local SQS server and
checks that every record arrived), or ``panoply-async run
examples/demo_connector.py --local --records 5000``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from panoply_async import DataSource
from panoply_async.demo import demo_records

CONFIG: dict[str, Any] = {
    "title": "Demo",
    "icon": "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4=",
    "params": [
        {"name": "records", "title": "Records", "help": "How many records to generate.",
         "type": "integer", "default": 100_000},
    ],
}


class Stream(DataSource):
    """Generates ``records`` varied records in batches of ``n`` (default 5,000)."""

    async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        total = int(self.source.get("records", 100_000))
        page = n or 5_000
        start = int((self.source.get("state") or {}).get("next", 0))
        batch: list[dict[str, Any]] = []
        for table, record in demo_records(total, start=start):
            batch.append({**record, "__table": table, "__state": record["id"] // page})
            if len(batch) == page:
                yield self._finish(batch, total, page)
                batch = []
        if batch:
            yield self._finish(batch, total, page)

    def _finish(self, batch: list[dict[str, Any]], total: int, page: int) -> list[dict[str, Any]]:
        last = batch[-1]["id"]
        self.state(last // page, {"next": last + 1})
        self.progress(last + 1, total, "generating demo records")
        return batch
