"""The end-to-end demo: records through the real SDK into a local SQS server and back."""

from __future__ import annotations

import datetime
import decimal
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from ._encoding import decode_body
from ._sdk import SDK

if TYPE_CHECKING:
    from .local import ReceivedMessage

__all__ = ["DemoSummary", "demo_records", "run_demo"]

TABLES = ("events", "users", "orders")
_WORDS = ("alpha", "בטא", "γάμμα", "дельта", "数据", "😀 emoji", "tab\tand\nnewline", "quote\"s")


def demo_records(count: int, *, seed: int = 7) -> Iterator[tuple[str, dict[str, Any]]]:
    """``count`` varied records spread over three tables, each with a unique ``id``."""
    rnd = random.Random(seed)
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    for i in range(count):
        table = TABLES[i % len(TABLES)]
        record: dict[str, Any] = {
            "id": i,
            "at": start + datetime.timedelta(seconds=i),
            "name": rnd.choice(_WORDS),
        }
        if table == "events":
            record["kind"] = rnd.choice(("click", "view", "signup"))
            record["props"] = {"page": f"/p/{rnd.randrange(100)}", "ms": rnd.random()}
        elif table == "users":
            record["uuid"] = uuid.UUID(int=rnd.getrandbits(128))
            record["tags"] = [rnd.choice(_WORDS) for _ in range(rnd.randrange(4))]
            record["active"] = rnd.random() < 0.8
        else:
            record["amount"] = decimal.Decimal(rnd.randrange(1, 100_000)) / 100
            record["items"] = [{"sku": f"S{rnd.randrange(999)}", "qty": rnd.randrange(1, 5)}
                               for _ in range(rnd.randrange(1, 4))]
            record["note"] = None
        yield table, record


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
) -> DemoSummary:
    """Start a local server, stream ``count`` records, receive and check them.

    When cancelled (Ctrl-C), the SDK still drains what was accepted; the demo
    then checks that exactly those records arrived, appends the summary to
    ``result`` and re-raises.
    """
    from .local import LocalSQS, make_credentials

    apikey, apisecret = make_credentials("demo")
    accepted = 0
    interrupted = False
    async with LocalSQS() as server:
        queue_url = server.create_queue(apikey, apisecret)
        started = time.perf_counter()
        try:
            async with SDK(apikey, apisecret, endpoint_url=server.endpoint_url) as conn:
                if on_start is not None:
                    on_start()
                for table, record in demo_records(count):
                    await conn.write(table, record)
                    accepted += 1
        except anyio.get_cancelled_exc_class():
            interrupted = True
        seconds = time.perf_counter() - started
        with anyio.CancelScope(shield=True):
            received = await server.areceive(queue_url)
    summary = _summarise(received, accepted, seconds)
    summary.interrupted = interrupted
    if result is not None:
        result.append(summary)
    if interrupted:
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
        missing=sum(1 for i in range(accepted) if i not in seen),
        duplicates=sum(n - 1 for n in seen.values() if n > 1),
    )
