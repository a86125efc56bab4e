"""The spool's file format, pure except for reading a file: one JSON object per line,
``{"v": 2, "queue": DIGEST, "body": ..., "records": N, "error": ..., "spooled_at": ...}``
(version 1 lines named the ``queue_url`` instead, and are still read)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import orjson

__all__ = ["SUFFIX", "SpoolEntry", "parse_lines", "queue_tag", "read_spool", "spool_files"]

SUFFIX = ".jsonl"


def queue_tag(queue_url_or_name: str) -> str:
    """A short digest naming a queue in spool files without revealing its name."""
    name = queue_url_or_name.rsplit("/", 1)[-1]
    return hashlib.sha256(b"panoply-spool\0" + name.encode("utf-8")).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One spooled message. ``raw`` is its line as stored (kept verbatim on rewrite)."""

    #: the queue's :func:`queue_tag`
    queue: str
    body: str
    records: int
    raw: bytes

    def for_queue(self, queue_url: str) -> bool:
        """Whether this message was spooled for ``queue_url``'s queue."""
        return self.queue == queue_tag(queue_url)


def spool_files(path: str | os.PathLike[str]) -> list[Path]:
    """The spool files at ``path``: the file itself, or every ``*.jsonl`` in a directory."""
    target = Path(path)
    if target.is_dir():
        return sorted(p for p in target.glob(f"*{SUFFIX}") if p.is_file())
    if target.is_file():
        return [target]
    raise FileNotFoundError(f"no spool file or directory at {target}")


def read_spool(path: Path) -> tuple[list[SpoolEntry], list[bytes]]:
    """Entries of a spool file, and the raw lines that are not valid entries.

    A line cut short by a crash is not an entry; it is returned so that a
    rewrite keeps it rather than silently dropping it.
    """
    return parse_lines(path.read_bytes())


def parse_lines(data: bytes) -> tuple[list[SpoolEntry], list[bytes]]:
    """The entries in ``data``, and the raw lines that are not valid entries."""
    entries: list[SpoolEntry] = []
    invalid: list[bytes] = []
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            item = orjson.loads(raw)
            queue = item["queue"] if "queue" in item else queue_tag(str(item["queue_url"]))
            entry = SpoolEntry(
                queue=str(queue),
                body=str(item["body"]),
                records=int(item.get("records", 0)),
                raw=raw,
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            invalid.append(raw)
            continue
        entries.append(entry)
    return entries, invalid
