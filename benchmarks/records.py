"""The records every benchmark writes: ~100-byte events and ~2 KB wide rows.

A pool of distinct records is built once and cycled, so that long runs do not
hold millions of dicts (which would distort the memory figure) while every
sender, baseline and floor still sees exactly the same data.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

import orjson

Record = dict[str, Any]

TABLE = "events"
POOL_SIZE = 10_000
KINDS = ("small", "wide")

_EVENTS = ("page_view", "click", "signup", "purchase", "logout")


def _small(rng: random.Random, index: int) -> Record:
    # About 100 bytes of JSON: a typical tracking event.
    return {
        "id": index,
        "ts": f"2026-11-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
        f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z",
        "user": f"user-{rng.randint(0, 99_999):05d}",
        "event": rng.choice(_EVENTS),
        "value": round(rng.uniform(0, 1000), 2),
        "ok": rng.random() < 0.9,
    }


def _wide(rng: random.Random, index: int) -> Record:
    # About 2 KB: a wide row as a CRM or billing connector would emit.
    record: Record = {"id": index}
    for column in range(24):
        record[f"text_{column:02d}"] = "".join(
            rng.choices("abcdefghijklmnopqrstuvwxyz ", k=rng.randint(40, 70))
        )
    for column in range(16):
        record[f"num_{column:02d}"] = rng.randint(0, 10**9)
    for column in range(8):
        record[f"flag_{column}"] = rng.random() < 0.5
    record["tags"] = [f"tag-{rng.randint(0, 500)}" for _ in range(6)]
    return record


def make_pool(kind: str, size: int = POOL_SIZE, seed: int = 7) -> list[Record]:
    """``size`` distinct records of ``kind`` ("small" or "wide"), deterministic."""
    factory = {"small": _small, "wide": _wide}[kind]
    rng = random.Random(f"{kind}-{seed}")
    return [factory(rng, index) for index in range(size)]


def take(pool: list[Record], count: int) -> list[Record]:
    """A list of ``count`` references cycling through ``pool`` (no dict is copied)."""
    repeats, rest = divmod(count, len(pool))
    return pool * repeats + pool[:rest]


def cycle(pool: list[Record], count: int) -> Iterator[Record]:
    """Like :func:`take`, lazily: for runs too long to hold even the references."""
    return itertools.islice(itertools.cycle(pool), count)


def line_bytes(pool: list[Record], table: str = TABLE) -> float:
    """Mean size of a record's line on the wire: JSON with ``__table``, plus newline."""
    total = sum(len(orjson.dumps({**record, "__table": table})) + 1 for record in pool)
    return total / len(pool)
