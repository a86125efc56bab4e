"""Delivery (DESIGN §2): closed messages -> SQS, or the spool, or DeliveryError.

:class:`Delivery` keeps the queue of closed messages and a pool of sender
tasks. One dispatcher task takes up to ten ready messages per request
(``SendMessageBatch``) and starts a sender task for it while fewer batches
are under way than :meth:`Delivery.concurrency_limit`, the limit that the
adaptive :class:`~._concurrency.ConcurrencyController` sets from what the
requests' answers say. A sender retries what failed, with exponential backoff
and full jitter, resending only the failed entries; every retry waits for a
free place under the limit before it goes out, and no new batch starts while
a retry waits, so a throttled queue sees fewer requests, not more. Retries go on
while the SDK is open, but a message is given up on when SQS refused it, after
``max_attempts`` (if set), or, with a spool, after ``retry_budget`` seconds (an
overflow, which :mod:`.drainback` sends again later): appended to the spool file
(or kept for the :class:`DeliveryError` raised on exit), and the ``error`` event fires.

Every finished message (acknowledged, spooled or failed) advances the
:class:`Watermark` and is reported through ``on_finished`` (the write buffer's
``release``), exactly once.

The dispatcher and its senders run in a task group inside a shielded cancel
scope: cancelling the SDK's block must not abort the drain; shutdown cancels
that scope itself (:meth:`Delivery.cancel`) once its deadline passed.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, deque
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio

from .._durable.spool import SpoolFile
from ..errors import DeliveryError, SendError
from .blocking import run_blocking
from .checkpoint import Watermark
from .concurrency import THROTTLING_CODES, ConcurrencyController
from .config import SDKConfig
from .events import EventEmitter
from .stats import Stats
from .transport import Message, Transport

__all__ = ["MAX_BATCH_ENTRIES", "Delivery"]

logger = logging.getLogger("panoply_async")

MAX_BATCH_ENTRIES = 10


class Delivery:
    """The ready queue, the sender pool, retries and giving up."""

    def __init__(
        self,
        *,
        config: SDKConfig,
        transport: Transport,
        stats: Stats,
        events: EventEmitter,
        spool: SpoolFile | None,
        queue_url: str,
        on_finished: Callable[[Sequence[Message], bool], None],
    ) -> None:
        self._config = self.config = config
        self._transport = transport
        self._stats = self.stats = stats
        self._events = self.events = events
        self._spool = spool
        self._queue_url = self.queue_url = queue_url
        #: the largest request payload (SendMessageBatch obeys the message limit)
        self.max_batch_bytes = config.max_message_bytes
        self._on_finished = on_finished
        self._random = random.Random()
        self._ready: deque[Message] = deque()
        self._unfinished: dict[int, Message] = {}
        #: messages given up on without a spool: the DeliveryError's content
        self.undelivered: list[Message] = []
        self._controller = ConcurrencyController(
            config.max_concurrent_sends, adaptive=config.adaptive_concurrency
        )
        stats.send_concurrency = self._controller.limit
        #: batches under way: a request in flight, or waiting to be retried
        self._active = 0
        #: retries (and replay requests) waiting for a place under the limit
        self._waiting = 0
        self._stopping = False

    def start(self) -> None:
        """Create the events; call inside the event loop, before :meth:`run`."""
        self.watermark = Watermark()
        self._wakeup = anyio.Event()
        self._done = anyio.Event()
        self._scope = anyio.CancelScope(shield=True)
        self._spool_lock = anyio.Lock()
        self._acked = anyio.Event()
        #: whether the queue answers now: True after an ack, False after a retryable failure
        self.healthy = False

    def concurrency_limit(self) -> int:
        """How many requests may be in flight now (the controller decides)."""
        return self._controller.limit

    def submit(self, message: Message) -> None:
        """Queue a closed message for sending."""
        self._unfinished[message.seq] = message
        self._ready.append(message)
        self._wake()

    async def wait_acknowledged(self) -> None:
        """Wait for the next acknowledgement of any request (live or replay)."""
        await self._acked.wait()

    def _wake(self) -> None:
        self._wakeup.set()
        self._wakeup = anyio.Event()

    # -- the sender pool -----------------------------------------------------------

    async def run(self) -> None:
        """The dispatcher: start a sender per batch while the limit allows."""
        try:
            with self._scope:
                async with anyio.create_task_group() as senders:
                    controller = self._controller
                    while True:
                        # Batches waiting to retry count against the limit, and go
                        # first: after throttling, fewer requests, not new ones.
                        while (
                            not self._ready
                            or self._waiting
                            or self._active >= controller.limit
                            or not controller.can_start()
                        ):
                            if self._stopping and not self._ready:
                                return
                            await self._wakeup.wait()
                        batch = self._next_batch()
                        self._active += 1
                        # The place is taken now, not when the task first runs, so
                        # that the loop cannot start more than the limit allows.
                        started = controller.started(anyio.current_time())
                        senders.start_soon(self._send, batch, started)
        finally:
            self._done.set()

    def _next_batch(self) -> list[Message]:
        ready = self._ready
        batch = [ready.popleft()]
        size = batch[0].size
        limit = self._config.max_message_bytes
        while ready and len(batch) < MAX_BATCH_ENTRIES and size + ready[0].size <= limit:
            message = ready.popleft()
            batch.append(message)
            size += message.size
        return batch

    async def _send(self, batch: list[Message], started: float) -> None:
        config = self._config  # without a spool, no budget: retried while open
        budget = config.retry_budget if self._spool is not None else None
        try:
            failed, error = await self.deliver(
                batch, self._acknowledge, started=started,
                attempts=config.max_attempts, budget=budget,
            )
            if failed:
                await self.give_up(failed, error, "send")
        finally:
            self._active -= 1
            self._wake()

    async def _take_place(self) -> float:
        """Wait for a place under the limit; returns the request's start time."""
        self._waiting += 1
        try:
            while not self._controller.can_start():
                await self._wakeup.wait()
        finally:
            self._waiting -= 1
        return self._controller.started(anyio.current_time())

    def _settle(
        self, started: float, *, answered: bool, acked: int, error: SendError | None
    ) -> None:
        """Tell the controller how a request ended (``error``: the failure that says
        most about the queue's capacity, if any) and free its place."""
        now, controller = anyio.current_time(), self._controller
        if not answered:  # cancelled: no answer to learn from
            controller.ended(now, started)
        else:
            code, retryable = (error.code, error.retryable) if error else (None, False)
            if code in THROTTLING_CODES:
                self._stats.throttles += 1
            change = controller.answered(
                now, started, acked=acked, code=code, retryable=retryable
            )
            if change is not None:
                self._stats.send_concurrency = change.after
                logger.debug("%s", change)
        self._stats.requests_in_flight = controller.in_flight
        self._wake()

    def stop(self) -> None:
        """Let the dispatcher end once the ready queue is empty."""
        self._stopping = True
        self._wake()

    async def wait_stopped(self) -> None:
        """Wait until the dispatcher ended and every sender returned."""
        await self._done.wait()

    def cancel(self) -> None:
        """Abort the senders still running (shutdown deadline passed)."""
        self._scope.cancel()

    # -- one request and its retries -------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        # Exponential backoff with full jitter (AWS architecture blog's "Full Jitter").
        cap = min(self._config.backoff_max, self._config.backoff_base * 2 ** (attempt - 1))
        return self._random.uniform(0, cap)

    def _acknowledge(self, messages: Sequence[Message]) -> None:
        records = sum(m.records for m in messages)
        size = sum(len(m.body) for m in messages)
        stats = self._stats
        stats.records_delivered += records
        stats.messages_sent += len(messages)
        stats.bytes_sent += size
        self.note_acknowledged()
        self.finish(messages, delivered=True)
        if self._events.has_handlers("flush"):
            now = anyio.current_time()
            self._events.emit(
                "flush",
                {
                    "messages": len(messages),
                    "records": records,
                    "bytes": size,
                    "reasons": dict(Counter(m.reason for m in messages)),
                    # the request's duration, and the seconds from each message's
                    # first write() to now, its acknowledgement
                    "seconds": now - messages[0].sent,
                    "ages": [now - m.opened for m in messages if m.opened],
                },
            )

    def note_acknowledged(self) -> None:
        """SQS acknowledged something: the queue is reachable; wake the drain-back."""
        self.healthy = True
        self._acked.set()
        self._acked = anyio.Event()

    async def deliver(
        self,
        batch: list[Message],
        on_ack: Callable[[Sequence[Message]], None],
        *,
        started: float | None = None,
        attempts: int | None,
        budget: float | None,
    ) -> tuple[list[Message], BaseException | None]:
        """Send ``batch`` with retries; returns the messages that finally failed and why.

        Retryable failures are retried (capped, jittered backoff) until ``attempts``
        were made or the next would start ``budget`` seconds after the first (None:
        no limit). Each attempt takes a place under the limit (``started``: the
        first one's was taken then) and tells the controller how it went. Only
        failed entries are resent (a lost answer can still cause a duplicate).
        """
        config = self._config
        pending = batch
        gave_up: list[Message] = []
        error: BaseException | None = None
        give_up_at = None if budget is None else anyio.current_time() + budget
        attempt = 0
        while pending:
            attempt += 1
            if started is not None and self._controller.in_flight > self._controller.limit:
                # The limit fell between taking the place and this task running.
                self._controller.ended(anyio.current_time(), started)
                started = None
            if started is None:
                started = await self._take_place()
            self._stats.requests += 1
            if self._events.has_handlers("send"):
                self._events.emit(
                    "send",
                    {
                        "messages": len(pending),
                        "records": sum(m.records for m in pending),
                        "bytes": sum(len(m.body) for m in pending),
                        "attempt": attempt,
                    },
                )
            retry: list[Message] = []
            signal: SendError | None = None  # what the answer says about capacity
            acked_bytes = 0
            done = False
            try:
                try:
                    self._stats.requests_in_flight = self._controller.in_flight
                    sent = anyio.current_time()
                    for entry in pending:
                        entry.sent = sent
                    with anyio.fail_after(config.request_timeout * 2):
                        outcome = await self._transport.send(pending)
                except SendError as exc:
                    error = signal = exc
                    (retry if exc.retryable else gave_up).extend(pending)
                except TimeoutError as exc:
                    error = signal = SendError(
                        f"request timed out: {exc}", retryable=True, code="Timeout"
                    )
                    retry.extend(pending)
                except Exception as exc:  # a transport bug must not kill the sender
                    logger.exception("transport raised unexpectedly")
                    error, signal = exc, SendError(str(exc), retryable=False)
                    gave_up.extend(pending)
                else:
                    by_id = {m.id: m for m in pending}
                    acked = [by_id[i] for i in outcome.acked if i in by_id]
                    acked_bytes = sum(len(m.body) for m in acked)
                    if acked:
                        on_ack(acked)
                    for failure in outcome.failed:
                        message = by_id.get(failure.id)
                        if message is None:
                            continue
                        error = SendError(
                            f"SQS refused a message: {failure.code}: {failure.message}",
                            retryable=failure.retryable,
                            code=failure.code,
                        )
                        if failure.retryable:
                            signal = signal or error
                        (retry if failure.retryable else gave_up).append(message)
                    answered = {m.id for m in acked} | {f.id for f in outcome.failed}
                    missing = [m for m in pending if m.id not in answered]
                    if missing:  # an answer that skips entries: failed, retryable
                        error = SendError(
                            "SQS answer did not mention some entries", retryable=True
                        )
                        signal = signal or error
                        retry.extend(missing)
                done = True
            finally:
                # Exactly once per attempt, also when the attempt is cancelled.
                self._settle(started, answered=done, acked=acked_bytes, error=signal)
                started = None
            if not retry:
                break
            self.healthy = False
            delay = self._backoff(attempt)
            if (attempts is not None and attempt >= attempts) or (
                give_up_at is not None and anyio.current_time() + delay > give_up_at
            ):
                gave_up.extend(retry)
                break
            self._stats.retries += 1
            logger.info("retrying %d messages in %.2fs after: %s", len(retry), delay, error)
            await anyio.sleep(delay)
            pending = retry
        return gave_up, error

    # -- finishing -----------------------------------------------------------------

    def finish(self, messages: Sequence[Message], delivered: bool) -> None:
        """Mark messages finished (each only once) and report them."""
        finished = [m for m in messages if self._unfinished.pop(m.seq, None) is not None]
        watermark = self.watermark
        for message in finished:
            watermark.finish(message.seq, delivered)
        self._on_finished(finished, delivered)

    def undelivered_error(self) -> DeliveryError | None:
        """The error for messages given up on without a spool, if any."""
        if not self.undelivered:
            return None
        records = sum(m.records for m in self.undelivered)
        messages = len(self.undelivered)
        return DeliveryError(
            # Not the queue URL: its queue name holds part of the api secret.
            f"{records} records in {messages} messages were not delivered "
            "and no spool_dir is configured",
            records=records,
            messages=messages,
            bodies=[m.body.decode("utf-8") for m in self.undelivered],
        )

    def leftovers(self) -> list[Message]:
        """Unfinished messages in seq order; the ready queue is emptied."""
        self._ready.clear()
        return [self._unfinished[seq] for seq in sorted(self._unfinished)]

    async def give_up(
        self, messages: list[Message], error: BaseException | None, operation: str
    ) -> None:
        """Spool ``messages`` (or keep them for DeliveryError) and fire ``error``."""
        records = sum(m.records for m in messages)
        reason = str(error) if error is not None else "not delivered"
        spooled_to: Path | None = None
        spool_error: BaseException | None = None
        if self._spool is not None:
            spool = self._spool
            try:
                # Shielded so that a deadline cannot interrupt a half-written append
                # between the file write and the bookkeeping below.
                # One append at a time: senders give up concurrently, and the
                # spool file is opened (and named) by the first append.
                with anyio.CancelScope(shield=True):
                    async with self._spool_lock:
                        spooled_to = await run_blocking(
                            spool.append,
                            self._queue_url,
                            [(m.body, m.records) for m in messages],
                            reason,
                        )
            except OSError as exc:
                spool_error = exc
                logger.error("could not write the spool file: %s", exc)
        if spooled_to is not None:
            self._stats.records_spooled += records
            self._stats.messages_spooled += len(messages)
        else:
            self._stats.records_failed += records
            self._stats.messages_failed += len(messages)
            self.undelivered.extend(messages)
        self.finish(messages, delivered=False)
        where = f"spooled to {spooled_to}" if spooled_to else "not spooled"
        logger.warning("%d records in %d messages not delivered (%s): %s",
                       records, len(messages), where, reason)
        payload = {
            "operation": operation,
            "records": records,
            "messages": len(messages),
            "spooled": spooled_to is not None,
            "spool_path": str(spooled_to) if spooled_to else None,
            "exception": error if spool_error is None else spool_error,
        }
        if self._events.spawns:
            # Coroutine handlers run as tasks of the SDK, never inside this sender:
            # a handler that writes and flushes would otherwise wait for itself.
            self._events.emit("error", payload)
        else:  # after the task group ended (shutdown leftovers): run them here
            await self._events.emit_async("error", payload)
