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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import anyio

from .._durable.spool import SpoolClaim, claim_spool, spool_files
from ..errors import SendError, SpoolError
from .delivery import MAX_BATCH_ENTRIES, Delivery
from .transport import Message

__all__ = ["Blocking", "ReplayResult", "replay_claimed", "replay_file"]

logger = logging.getLogger("panoply_async")

#: attempts per replay request when ``max_attempts`` is not set
REPLAY_ATTEMPTS = 8

#: how a blocking file operation is run: ``await blocking(fn)``
Blocking = Callable[[Callable[[], None]], Awaitable[None]]


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
        await replay_claimed(claim, result, delivery, attributes_size)
    except OSError as exc:  # only the file's rewrite does I/O: delivery never raises it
        raise SpoolError(
            f"cannot rewrite spool file {path} ({exc.strerror}): its entries not yet "
            "removed stay in it, and those already sent may be sent again"
        ) from exc
    finally:
        claim.release()


async def replay_claimed(
    claim: SpoolClaim,
    result: ReplayResult,
    delivery: Delivery,
    attributes_size: int,
    *,
    on_ack: Callable[[Sequence[Message]], None] | None = None,
    stop_on_failure: bool = False,
    rewrite_every: float = 0.0,
    report: bool = True,
    refused: set[bytes] | None = None,
    blocking: Blocking = anyio.to_thread.run_sync,
) -> bool:
    """Resend the claimed file's entries for delivery's queue; returns True when
    none failed. ``on_ack`` counts acknowledgements (default: as replayed);
    ``stop_on_failure`` keeps the rest once a request finally fails (the queue is
    down: no use trying each). The file is rewritten with what is left at the
    end, on a failure, and after a request once ``rewrite_every`` seconds passed
    since the last rewrite (0: after every request). ``report``: fire ``error``
    for entries that fail again. ``refused``: entries (raw lines) to keep without
    sending; entries that SQS refuses (a non-retryable answer) are added to it.
    ``blocking(fn)`` runs the file's rewrites (default: in a worker thread)."""
    stats, events, queue_url = delivery.stats, delivery.events, delivery.queue_url
    max_batch_bytes = delivery.max_batch_bytes
    config = delivery.config
    attempts = config.max_attempts or REPLAY_ATTEMPTS
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
        if refused is not None and entry.raw in refused:
            keep.append(entry.raw)
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

    def count_replayed(messages: Sequence[Message]) -> None:
        stats.messages_replayed += len(messages)
        stats.records_replayed += sum(m.records for m in messages)
        stats.bytes_sent += sum(len(m.body) for m in messages)

    count = on_ack or count_replayed

    def acknowledge(messages: Sequence[Message]) -> None:
        for message in messages:
            acked.add(message.seq)
        count(messages)
        delivery.note_acknowledged()
        result.messages_sent += len(messages)
        result.records_sent += sum(m.records for m in messages)

    clean = True
    rewritten_at = anyio.current_time()
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
        acked: set[int] = set()
        failed: list[Message] = []
        interrupted = True
        try:
            failed, error = await delivery.deliver(
                [m for m, _ in batch], acknowledge, attempts=attempts, budget=config.retry_budget
            )
            interrupted = False
        finally:
            # Also when cancelled: what was acknowledged leaves the file, the rest stays.
            keep.extend(raw for m, raw in batch if m.seq not in acked)
            now = anyio.current_time()
            if interrupted or failed or not todo or now - rewritten_at >= rewrite_every:
                remaining = keep + [raw for _, raw in todo]
                with anyio.CancelScope(shield=True):
                    await blocking(partial(claim.rewrite, remaining))
                rewritten_at = now
        if failed:
            clean = False
            if isinstance(error, SendError) and not error.retryable:
                if refused is not None:  # refused again next time: not worth a request
                    refused.update(raw for m, raw in batch if m.seq not in acked)
                stop = False  # the queue answers: go on with the other entries
            else:
                stop = stop_on_failure
            records_failed = sum(m.records for m in failed)
            result.messages_left += len(failed)
            result.records_left += records_failed
            if report:
                await events.emit_async(
                    "error",
                    {
                        "operation": "replay",
                        "records": records_failed,
                        "messages": len(failed),
                        "spooled": True,
                        "spool_path": str(path),
                        "exception": error,
                    },
                )
            if stop:
                result.messages_left += len(todo)
                result.records_left += sum(m.records for m, _ in todo)
                break
    return clean


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
