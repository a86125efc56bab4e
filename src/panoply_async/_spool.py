"""The dead-letter spool: messages that could not be delivered, kept on disk.

A spool file is JSON lines, one undelivered message per line:
``{"v": 1, "queue_url": ..., "body": ..., "records": N, "error": ..., "spooled_at": ...}``.
It never holds the api key's secret: replay takes credentials anew. Appends are
flushed and fsynced before the SDK reports the records as spooled; replay
rewrites a file atomically (write, fsync, rename) with only what is still
undelivered, so an interrupted replay loses nothing.
"""

from __future__ import annotations

import datetime
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

__all__ = ["SpoolEntry", "SpoolFile", "read_spool", "rewrite_spool", "spool_files"]

SUFFIX = ".jsonl"


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One spooled message. ``raw`` is its line as stored (kept verbatim on rewrite)."""

    queue_url: str
    body: str
    records: int
    raw: bytes


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


class SpoolFile:
    """Append-only spool file of one SDK instance, created on first use."""

    def __init__(self, directory: str | os.PathLike[str], account: str) -> None:
        self._directory = Path(directory)
        self._account = account
        self._path: Path | None = None

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def path(self) -> Path | None:
        """The file written so far, or None while nothing was spooled."""
        return self._path

    def _open_path(self) -> Path:
        if self._path is None:
            self._directory.mkdir(parents=True, exist_ok=True)
            stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            name = f"panoply-{self._account}-{stamp}-{os.getpid()}-{secrets.token_hex(3)}{SUFFIX}"
            self._path = self._directory / name
        return self._path

    def append(self, queue_url: str, bodies: Iterable[tuple[bytes, int]], error: str) -> Path:
        """Durably append ``(body, records)`` pairs; returns the file's path. Blocking."""
        path = self._open_path()
        at = _now()
        lines = b"".join(
            orjson.dumps(
                {
                    "v": 1,
                    "queue_url": queue_url,
                    "body": body.decode("utf-8"),
                    "records": records,
                    "error": error,
                    "spooled_at": at,
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
            for body, records in bodies
        )
        _write_durably(path, lines, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        return path


def _write_durably(path: Path, data: bytes, flags: int) -> None:
    fd = os.open(path, flags, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


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
    entries: list[SpoolEntry] = []
    invalid: list[bytes] = []
    for raw in path.read_bytes().split(b"\n"):
        if not raw.strip():
            continue
        try:
            item = orjson.loads(raw)
            entry = SpoolEntry(
                queue_url=str(item["queue_url"]),
                body=str(item["body"]),
                records=int(item.get("records", 0)),
                raw=raw,
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            invalid.append(raw)
            continue
        entries.append(entry)
    return entries, invalid


def rewrite_spool(path: Path, keep: Iterable[bytes]) -> None:
    """Atomically replace ``path`` with the ``keep`` lines; remove it when none remain."""
    lines = [line for line in keep if line.strip()]
    if not lines:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    _write_durably(tmp, b"\n".join(lines) + b"\n", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    os.replace(tmp, path)
