"""Replay (DESIGN §2): resend the messages of spool files through delivery.

Each spool entry becomes a message again and goes through
:meth:`Delivery.deliver` (same requests, retries and ``send`` events as live
traffic, but its own acknowledgement counters). After every request the file
is rewritten atomically with what is left, so an interrupted replay can only
resend, never lose.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from ._delivery import MAX_BATCH_ENTRIES, Delivery
from ._spool import read_spool, rewrite_spool
from ._transport import Message

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


async def replay_file(
    path: Path, result: ReplayResult, delivery: Delivery, attributes_size: int
) -> None:
    """Resend the entries of one spool file that belong to delivery's queue."""
    stats, events, queue_url = delivery.stats, delivery.events, delivery.queue_url
    max_batch_bytes = delivery.max_batch_bytes
    entries, invalid = await anyio.to_thread.run_sync(read_spool, path)
    if invalid:
        logger.warning("%s: %d unreadable lines kept in place", path, len(invalid))
    queue_name = queue_url.rsplit("/", 1)[-1]
    keep: list[bytes] = list(invalid)
    todo: deque[tuple[Message, bytes]] = deque()
    for index, entry in enumerate(entries):
        if entry.queue_url.rsplit("/", 1)[-1] != queue_name:
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
            await anyio.to_thread.run_sync(rewrite_spool, path, remaining)
