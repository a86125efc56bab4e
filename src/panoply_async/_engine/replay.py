"""Replay (DESIGN §2): resend the messages of spool files through delivery.

Each spool entry becomes a message again and goes through
:meth:`Delivery.deliver` (same requests, concurrency limit, retries and
``send`` events as live traffic, but its own acknowledgement counters). A file
is first claimed (:func:`~._spool.claim_spool`): one whose writer is still
open, or that another replay holds, is skipped and reported, never read. After
every request the claimed file is rewritten atomically with what is left (and
whatever was appended to it since it was read), so an interrupted replay can
only resend, never lose.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from .._durable.spool import SpoolClaim, claim_spool, spool_files
from ..errors import SpoolError
from .delivery import MAX_BATCH_ENTRIES, Delivery
from .transport import Message

__all__ = ["ReplayResult", "replay_file"]

logger = logging.getLogger("panoply_async")


@dataclass
class ReplayResult:
    """What :meth:`SDK.replay` did."""

    files: list[Path] = field(default_factory=list)
    messages_sent: int = 0
    records_sent: int = 0
    messages_left: int = 0
    records_left: int = 0
    #: entries kept because they were spooled for another queue
    messages_other_queue: int = 0
    #: files left alone, with the reason (e.g. their writer is still running)
    files_skipped: list[tuple[Path, str]] = field(default_factory=list)


async def replay_file(
    path: Path, result: ReplayResult, delivery: Delivery, attributes_size: int
) -> None:
    """Resend the entries of one spool file that belong to delivery's queue; skip
    (and list in ``result.files_skipped``) a file that someone else holds."""
    try:
        claim = await anyio.to_thread.run_sync(claim_spool, path)
    except OSError as exc:
        raise SpoolError(f"cannot read spool file {path}: {exc.strerror}") from exc
    if isinstance(claim, str):
        logger.warning("replay skipped %s: %s", path, claim)
        result.files_skipped.append((path, claim))
        return
    result.files.append(path)
    try:
        await _replay_claimed(claim, result, delivery, attributes_size)
    except OSError as exc:  # only the file's rewrite does I/O: delivery never raises it
        raise SpoolError(
            f"cannot rewrite spool file {path} ({exc.strerror}): its entries not yet "
            "removed stay in it, and those already sent may be sent again"
        ) from exc
    finally:
        claim.release()


async def _replay_claimed(
    claim: SpoolClaim, result: ReplayResult, delivery: Delivery, attributes_size: int
) -> None:
    stats, events, queue_url = delivery.stats, delivery.events, delivery.queue_url
    max_batch_bytes = delivery.max_batch_bytes
    path, entries, invalid = claim.path, claim.entries, claim.invalid
    if invalid:
        logger.warning("%s: %d unreadable lines kept in place", path, len(invalid))
    keep: list[bytes] = list(invalid)
    todo: deque[tuple[Message, bytes]] = deque()
    for index, entry in enumerate(entries):
        if not entry.for_queue(queue_url):
            keep.append(entry.raw)
            result.messages_other_queue += 1
            continue
        body = entry.body.encode("utf-8")
        message = Message(
            seq=index,
            body=body,
            records=entry.records,
            size=len(body) + attributes_size,
            reason="replay",
        )
        todo.append((message, entry.raw))

    def acknowledge(messages: Sequence[Message]) -> None:
        stats.messages_replayed += len(messages)
        stats.records_replayed += sum(m.records for m in messages)
        stats.bytes_sent += sum(len(m.body) for m in messages)
        result.messages_sent += len(messages)
        result.records_sent += sum(m.records for m in messages)

    while todo:
        batch: list[tuple[Message, bytes]] = [todo.popleft()]
        size = batch[0][0].size
        while (
            todo
            and len(batch) < MAX_BATCH_ENTRIES
            and size + todo[0][0].size <= max_batch_bytes
        ):
            size += todo[0][0].size
            batch.append(todo.popleft())
        raw_by_seq = {m.seq: raw for m, raw in batch}
        failed, error = await delivery.deliver([m for m, _ in batch], acknowledge)
        for message in failed:
            keep.append(raw_by_seq[message.seq])
            result.messages_left += 1
            result.records_left += message.records
        if failed:
            await events.emit_async(
                "error",
                {
                    "operation": "replay",
                    "records": sum(m.records for m in failed),
                    "messages": len(failed),
                    "spooled": True,
                    "spool_path": str(path),
                    "exception": error,
                },
            )
        remaining = keep + [raw for _, raw in todo]
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(claim.rewrite, remaining)


async def replay_path(
    path: str | os.PathLike[str], own: Path | None, delivery: Delivery, attributes_size: int
) -> ReplayResult:
    """Replay every spool file at ``path`` (a file or a directory) but ``own``, the
    file the calling SDK is still appending to."""
    result = ReplayResult()
    for spool_path in await anyio.to_thread.run_sync(spool_files, path):
        if own is not None and spool_path.resolve() == own.resolve():  # noqa: ASYNC240 (a stat)
            continue
        await replay_file(spool_path, result, delivery, attributes_size)
    return result
