"""End-to-end throughput on the local server (in its own process).

Every scenario gets a fresh queue, so moto's per-queue state does not carry
over, and reports wall time from the first record to the last acknowledgement.
"""

from __future__ import annotations

import asyncio
import math
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass

import orjson

import panoply_async
from panoply_async._engine.sdk import SDK_NAME

from .legacy_style import LegacyStyleSender, http_poster
from .records import TABLE, Record
from .server import Queue, fresh_queue, queue_message_count, sqs_client

SQS_LIMIT = 262_144
GATHER_IN_FLIGHT = 16
NAIVE_QUEUE_MESSAGES = 100
WRITE_MANY_CHUNK = 1000


async def write_all(conn: panoply_async.SDK, records: list[Record], write_many: bool) -> None:
    """Every record to ``TABLE``: one ``write()`` each, or ``write_many()`` in chunks."""
    if write_many:
        for offset in range(0, len(records), WRITE_MANY_CHUNK):
            await conn.write_many(TABLE, records[offset : offset + WRITE_MANY_CHUNK])
    else:
        write = conn.write
        for record in records:
            await write(TABLE, record)


@dataclass(frozen=True)
class Run:
    records: int
    seconds: float
    cpu_seconds: float
    requests: int
    messages: int
    bytes_sent: int

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds

    @property
    def mb_per_second(self) -> float:
        return self.bytes_sent / self.seconds / 1e6


class _Clock:
    """Wall and process-CPU time of one scenario (``start()``/``stop()`` or ``with``)."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def start(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def stop(self) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def __enter__(self) -> _Clock:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _attributes(queue: Queue) -> dict[str, dict[str, str]]:
    values = {"key": queue.apikey, "secret": queue.apisecret, "sdk": SDK_NAME}
    return {name: {"DataType": "String", "StringValue": v} for name, v in values.items()}


def _attributes_size(queue: Queue) -> int:
    return sum(
        len(name) + len(value["DataType"]) + len(value["StringValue"].encode())
        for name, value in _attributes(queue).items()
    )


def _line(record: Record) -> str:
    return orjson.dumps({**record, "__table": TABLE}).decode() + "\n"


def full_body(records: list[Record], limit: int) -> str:
    """Lines of ``records`` (cycled) filling a body of at most ``limit`` bytes."""
    parts: list[str] = []
    size = 0
    index = 0
    while True:
        line = _line(records[index % len(records)])
        if size + len(line.encode()) > limit:
            return "".join(parts)
        parts.append(line)
        size += len(line.encode())
        index += 1


async def capacity(endpoint: str, records: list[Record], messages: int, in_flight: int) -> Run:
    """Full-size messages sent by a plain aiobotocore client, ``in_flight`` at a time."""
    async with fresh_queue(endpoint) as queue:
        attributes = _attributes(queue)
        body = full_body(records, SQS_LIMIT - _attributes_size(queue))
        size = len(body.encode())
        async with sqs_client(endpoint, queue.region) as client:
            # One request first, so connection setup is not part of the figure.
            await client.send_message(
                QueueUrl=queue.url, MessageBody=body, MessageAttributes=attributes
            )

            async def send_some(count: int) -> None:
                for _ in range(count):
                    await client.send_message(
                        QueueUrl=queue.url, MessageBody=body, MessageAttributes=attributes
                    )

            shares = [messages // in_flight + (i < messages % in_flight) for i in range(in_flight)]
            with _Clock() as clock:
                await asyncio.gather(*(send_some(share) for share in shares))
        records_in_body = body.count("\n")
        return Run(
            messages * records_in_body, clock.wall, clock.cpu, messages, messages, messages * size
        )


async def naive(endpoint: str, records: list[Record], in_flight: int) -> Run:
    """One ``send_message`` per record: awaited one by one, or ``in_flight`` via gather.

    moto's SendMessage slows down as its queue grows (about 216/s empty, 41/s
    past 1,200 messages on this machine), which would punish a baseline that
    sends one message per record; so every ``NAIVE_QUEUE_MESSAGES`` records go
    to a fresh queue, created before the clock starts. This flatters the
    baseline, never the SDK.
    """
    async with AsyncExitStack() as stack:
        queues = [
            await stack.enter_async_context(fresh_queue(endpoint))
            for _ in range(math.ceil(len(records) / NAIVE_QUEUE_MESSAGES))
        ]
        client = await stack.enter_async_context(sqs_client(endpoint, queues[0].region))
        attributes = _attributes(queues[0])
        limit = asyncio.Semaphore(in_flight)
        sent = 0

        async def send(index: int, record: Record) -> None:
            nonlocal sent
            body = _line(record)
            queue = queues[index // NAIVE_QUEUE_MESSAGES]
            async with limit:
                await client.send_message(
                    QueueUrl=queue.url, MessageBody=body, MessageAttributes=attributes
                )
            sent += len(body.encode())

        with _Clock() as clock:
            if in_flight == 1:
                for index, record in enumerate(records):
                    await send(index, record)
            else:
                await asyncio.gather(*(send(i, record) for i, record in enumerate(records)))
        return Run(len(records), clock.wall, clock.cpu, len(records), len(records), sent)


async def sdk(endpoint: str, records: list[Record], *, write_many: bool = False) -> Run:
    """The SDK with its defaults; timed from the first write to leaving the block."""
    async with fresh_queue(endpoint) as queue:
        conn = panoply_async.SDK(queue.apikey, queue.apisecret, endpoint_url=endpoint)
        clock = _Clock()
        async with conn:
            # From the first write to the last acknowledgement (the end of the block);
            # opening the client is left out, as it is for the capacity run.
            clock.start()
            await write_all(conn, records, write_many)
        clock.stop()
        stats = conn.stats
        if stats.records_delivered != len(records):
            raise RuntimeError(f"SDK delivered {stats.records_delivered} of {len(records)}")
        held = await queue_message_count(endpoint, queue)
        if held != stats.messages_sent:
            raise RuntimeError(f"server holds {held} messages, SDK sent {stats.messages_sent}")
        return Run(
            len(records),
            clock.wall,
            clock.cpu,
            stats.requests,
            stats.messages_sent,
            stats.bytes_sent,
        )


def _legacy_blocking(url: str, queue: Queue, records: list[Record]) -> Run:
    with _Clock() as clock:
        sender = LegacyStyleSender(
            queue.apikey, queue.apisecret, http_poster(url), "legacy-style-bench"
        )
        for record in records:
            sender.write(TABLE, record)
        sender.close()
    stats = sender.stats
    if stats.records != len(records):
        raise RuntimeError(f"legacy-style sender delivered {stats.records} of {len(records)}")
    return Run(
        len(records), clock.wall, clock.cpu, stats.requests, stats.requests, stats.bytes_sent
    )


async def legacy(endpoint: str, records: list[Record]) -> Run:
    """The legacy-style thread-and-queue sender (blocking code: run off the event loop)."""
    async with fresh_queue(endpoint) as queue:
        return await asyncio.to_thread(_legacy_blocking, queue.url, queue, records)
