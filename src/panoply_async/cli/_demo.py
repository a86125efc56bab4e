"""The end-to-end demo: records through the real SDK into a local SQS server and back."""

from __future__ import annotations

import datetime
import decimal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from .._engine.sdk import SDK
from .._wire.encoding import decode_body
from ..connectors._datasource import DataSource
from ..errors import DeliveryError
from ._interrupt import Stopper
from ._progress import RunDisplay

if TYPE_CHECKING:
    from ..local import ReceivedMessage

__all__ = ["CONFIG", "DemoSummary", "Stream", "demo_record", "demo_records", "run_demo"]

TABLES = ("events", "users", "orders")
_EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
_WORDS = ("alpha", "בטא", "γάμμα", "дельта", "数据", "😀 emoji", "tab\tand\nnewline", "quote\"s")


def demo_record(i: int) -> tuple[str, dict[str, Any]]:
    """Record number ``i`` and its table: varied values, the same for the same ``i``."""
    # A cheap integer hash of i stands in for randomness, so that a resumed run
    # regenerates exactly the same records.
    h = (i * 2654435761 + 97) % 4294967291
    table = TABLES[i % len(TABLES)]
    record: dict[str, Any] = {
        "id": i,
        "at": _EPOCH + datetime.timedelta(seconds=i),
        "name": _WORDS[h % len(_WORDS)],
    }
    if table == "events":
        record["kind"] = ("click", "view", "signup")[h % 3]
        record["props"] = {"page": f"/p/{h % 100}", "ms": (h % 10_000) / 10_000}
    elif table == "users":
        record["uuid"] = uuid.UUID(int=h * 0x9E3779B97F4A7C15 % (1 << 128))
        record["tags"] = [_WORDS[(h >> k) % len(_WORDS)] for k in range(h % 4)]
        record["active"] = h % 5 != 0
    else:
        record["amount"] = decimal.Decimal(h % 100_000) / 100
        record["items"] = [{"sku": f"S{(h >> k) % 999}", "qty": 1 + (h >> k) % 4}
                           for k in range(1 + h % 3)]
        record["note"] = None
    return table, record


def demo_records(count: int, *, start: int = 0) -> Iterator[tuple[str, dict[str, Any]]]:
    """Records ``start`` to ``count - 1`` with their tables, each with a unique ``id``."""
    for i in range(start, count):
        yield demo_record(i)


CONFIG: dict[str, Any] = {
    "title": "Demo",
    "icon": "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4=",
    "params": [
        {"name": "records", "title": "Records", "help": "How many records to generate.",
         "type": "integer", "default": 100_000},
    ],
}


class Stream(DataSource):
    """The demo connector: ``records`` varied records in three tables, in batches of
    ``n`` (default 5,000), with progress and a resumable state.

    Run it with ``panoply-async demo``, or ``panoply-async run panoply_async.demo --local``.
    Its records carry their table in ``__table``: give it the destination
    ``"demo_{__table}"`` (the demo command does) to spread them over three tables.
    """

    async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        total = int(self.source.get("records", 100_000))
        page = n or 5_000
        first = int((self.source.get("state") or {}).get("next", 0))
        for start in range(first, total, page):
            stop = min(total, start + page)
            batch = [{**record, "__table": table, "__state": start}
                     for table, record in demo_records(stop, start=start)]
            self.state(start, {"next": stop})
            self.progress(stop, total, "generating demo records")
            yield batch
            # Generating is pure CPU: let the senders and the display run between pages.
            await anyio.lowlevel.checkpoint()


@dataclass
class DemoSummary:
    records: int
    messages: int
    bytes: int
    seconds: float
    per_table: dict[str, int]
    #: records write() accepted (fewer than asked for when interrupted)
    accepted: int
    missing: int
    duplicates: int
    interrupted: bool = False
    #: a second interrupt stopped the drain: accepted records were dropped
    stopped: bool = False

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.duplicates == 0 and self.records == self.accepted


async def run_demo(
    count: int = 100_000,
    *,
    result: list[DemoSummary] | None = None,
    on_start: Callable[[], None] | None = None,
    display: RunDisplay | None = None,
    stopper: Stopper | None = None,
) -> DemoSummary:
    """Start a local server, run the demo connector into it, receive and check.

    When cancelled (Ctrl-C), the SDK still drains what was accepted; the demo
    then checks that exactly those records arrived, appends the summary to
    ``result`` and re-raises. ``stopper.stop()`` (a second Ctrl-C) ends the
    drain at once; the demo keeps no spool, so what was not sent is lost and
    the summary says ``stopped``.

    ``seconds`` runs from the start of sending to the end of the drain (not
    counting the server's start or the final receive); ``display`` shows the
    same clock.
    """
    from ..local import LocalSQS, make_credentials

    apikey, apisecret = make_credentials("demo")
    interrupted = False
    async with LocalSQS() as server:
        queue_url = server.create_queue(apikey, apisecret)
        transport = (stopper.transport(apikey, apisecret, server.endpoint_url)
                     if stopper is not None else None)
        started = time.monotonic()
        if display is not None:
            display.start_clock(started)
        conn = SDK(apikey, apisecret, endpoint_url=server.endpoint_url, transport=transport)
        if display is not None:
            conn.on("progress", display.on_progress)
            conn.on("flush", lambda data: display.add_records(int(data["records"])))
        try:
            async with conn:
                if on_start is not None:
                    on_start()
                await conn.ingest(Stream({"type": "demo", "destination": "demo_{__table}",
                                          "records": count}))
        except anyio.get_cancelled_exc_class():
            interrupted = True
        except DeliveryError:
            if stopper is None or not stopper.stopped:
                raise
            interrupted = True
        seconds = time.monotonic() - started
        if display is not None:
            display.stop_clock(seconds)
        with anyio.CancelScope(shield=True):
            received = await server.areceive(queue_url)
    summary = _summarise(received, conn.stats.records_accepted, seconds)
    summary.interrupted = interrupted
    summary.stopped = stopper is not None and stopper.stopped
    if result is not None:
        result.append(summary)
    if interrupted:
        # Still inside the cancelled scope: this checkpoint re-raises its own
        # cancellation, which the scope then absorbs (a bare CancelledError
        # would not be recognised as the scope's on Python 3.10).
        await anyio.lowlevel.checkpoint()
        raise anyio.get_cancelled_exc_class()()
    return summary


def _summarise(received: list[ReceivedMessage], accepted: int, seconds: float) -> DemoSummary:
    seen: Counter[int] = Counter()
    per_table: Counter[str] = Counter()
    for message in received:
        for record in decode_body(message.body):
            seen[record["id"]] += 1
            per_table[record["__table"]] += 1
    return DemoSummary(
        records=sum(per_table.values()),
        messages=len(received),
        bytes=sum(len(m.body.encode()) for m in received),
        seconds=seconds,
        per_table=dict(sorted(per_table.items())),
        accepted=accepted,
        # Only accepted records can arrive, so those that did not are the difference
        # (not a prefix of ids: ingest() writes a batch table by table).
        missing=max(0, accepted - len(seen)),
        duplicates=sum(n - 1 for n in seen.values() if n > 1),
    )
