"""Transports: how message bodies reach a queue.

The SDK depends only on the :class:`Transport` protocol. :class:`SQSTransport`
is the real one (aiobotocore); :class:`MemoryTransport` keeps bodies in memory
for fast unit tests and benchmarks that must isolate the SDK's own cost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..errors import SendError
from .concurrency import THROTTLING_CODES

__all__ = [
    "EntryFailure",
    "MemoryTransport",
    "Message",
    "SQSTransport",
    "SendOutcome",
    "Transport",
]


@dataclass(slots=True, eq=False)
class Message:
    """One SQS message: a body of newline-terminated JSON records."""

    seq: int
    body: bytes
    records: int
    #: body plus attributes, as SQS counts it
    size: int
    #: why the message was closed: "full", "timer", "flush", "close" or "replay"
    reason: str
    #: event-loop time of its first record's write() (0.0: unknown, e.g. recovered)
    opened: float = 0.0
    #: event-loop time its latest request went out
    sent: float = 0.0

    @property
    def id(self) -> str:
        return str(self.seq)


@dataclass(frozen=True, slots=True)
class EntryFailure:
    """One entry of a batch that the queue refused."""

    id: str
    code: str
    message: str
    sender_fault: bool

    @property
    def retryable(self) -> bool:
        return not self.sender_fault


@dataclass(slots=True)
class SendOutcome:
    """Which entries of a request were acknowledged and which failed."""

    acked: list[str] = field(default_factory=list)
    failed: list[EntryFailure] = field(default_factory=list)


@runtime_checkable
class Transport(Protocol):
    """What the SDK needs from a queue: open, send up to 10 messages, close."""

    async def open(self) -> None: ...

    async def send(self, messages: Sequence[Message]) -> SendOutcome:
        """Send 1-10 messages; raise :class:`SendError` when the whole request failed."""
        ...

    async def aclose(self) -> None: ...


# Error codes that mean "try again later": throttling (which the concurrency
# controller also answers by sending less) and server-side trouble.
RETRYABLE_CODES = THROTTLING_CODES | frozenset(
    {
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "RequestTimeout",
        "RequestTimeoutException",
        "RequestExpired",
    }
)


def _classify_client_error(exc: Any) -> SendError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    retryable = code in RETRYABLE_CODES or status >= 500 or status == 429
    message = str(error.get("Message", "")) or code or "request failed"
    return SendError(f"SQS refused the request: {code} ({status}): {message}",
                     retryable=retryable, code=code)


class SQSTransport:
    """Sends to one SQS queue through aiobotocore, with the Panoply message attributes.

    Requests are unsigned unless ``sign`` is true (then the standard AWS
    credential chain signs them). botocore's own retries are off: the SDK
    retries with its own backoff, and only what failed.
    """

    def __init__(
        self,
        queue_url: str,
        region: str,
        attributes: Mapping[str, str],
        *,
        endpoint_url: str | None = None,
        sign: bool = False,
        request_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        max_connections: int = 10,
    ) -> None:
        self._queue_url = queue_url
        self._region = region
        self._attributes = {
            name: {"DataType": "String", "StringValue": value}
            for name, value in attributes.items()
        }
        self._endpoint_url = endpoint_url
        self._sign = sign
        self._request_timeout = request_timeout
        self._connect_timeout = connect_timeout
        self._max_connections = max_connections
        self._context: Any = None
        self._client: Any = None

    def __repr__(self) -> str:
        return f"SQSTransport(region={self._region!r}, signed={self._sign})"

    @property
    def queue_url(self) -> str:
        return self._queue_url

    async def open(self) -> None:
        import botocore
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        config = AioConfig(
            signature_version=None if self._sign else botocore.UNSIGNED,
            retries={"total_max_attempts": 1},
            connect_timeout=self._connect_timeout,
            read_timeout=self._request_timeout,
            max_pool_connections=self._max_connections,
        )
        self._context = get_session().create_client(
            "sqs", region_name=self._region, endpoint_url=self._endpoint_url, config=config
        )
        self._client = await self._context.__aenter__()

    async def aclose(self) -> None:
        context, self._context, self._client = self._context, None, None
        if context is not None:
            await context.__aexit__(None, None, None)

    async def send(self, messages: Sequence[Message]) -> SendOutcome:
        if self._client is None:
            raise RuntimeError("SQSTransport.send() called before open()")
        try:
            if len(messages) == 1:
                return await self._send_one(messages[0])
            return await self._send_batch(messages)
        except SendError:
            raise
        except Exception as exc:
            raise self._classify(exc) from exc

    async def _send_one(self, message: Message) -> SendOutcome:
        await self._client.send_message(
            QueueUrl=self._queue_url,
            MessageBody=message.body.decode("utf-8"),
            MessageAttributes=self._attributes,
        )
        return SendOutcome(acked=[message.id])

    async def _send_batch(self, messages: Sequence[Message]) -> SendOutcome:
        response = await self._client.send_message_batch(
            QueueUrl=self._queue_url,
            Entries=[
                {
                    "Id": m.id,
                    "MessageBody": m.body.decode("utf-8"),
                    "MessageAttributes": self._attributes,
                }
                for m in messages
            ],
        )
        return SendOutcome(
            acked=[entry["Id"] for entry in response.get("Successful", ())],
            failed=[
                EntryFailure(
                    id=entry["Id"],
                    code=str(entry.get("Code", "")),
                    message=str(entry.get("Message", "")),
                    sender_fault=bool(entry.get("SenderFault", False)),
                )
                for entry in response.get("Failed", ())
            ],
        )

    @staticmethod
    def _classify(exc: BaseException) -> SendError:
        import aiohttp
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, ClientError):
            return _classify_client_error(exc)
        # Connection refused/reset/closed, timeouts, DNS: the request may not have
        # arrived, or its answer was lost; resending is at-least-once.
        transient = (
            BotoCoreError, OSError, asyncio.TimeoutError, TimeoutError, aiohttp.ClientError
        )
        return SendError(f"request to SQS failed: {type(exc).__name__}: {exc}",
                         retryable=isinstance(exc, transient), code=type(exc).__name__)


FaultHook = Callable[[Sequence[Message]], "SendOutcome | BaseException | None"]


class MemoryTransport:
    """Keeps sent bodies in memory and acknowledges at once.

    ``fault`` may inspect each request and return an exception to raise, a
    :class:`SendOutcome` to answer with (for partial failures), or None to
    accept the request normally.
    """

    def __init__(self, *, fault: FaultHook | None = None, keep_bodies: bool = True) -> None:
        self.bodies: list[bytes] = []
        self.requests = 0
        self.messages = 0
        self.opened = False
        self.closed = False
        self._fault = fault
        self._keep = keep_bodies

    def __repr__(self) -> str:
        return f"MemoryTransport(messages={self.messages})"

    async def open(self) -> None:
        self.opened = True

    async def aclose(self) -> None:
        self.closed = True

    async def send(self, messages: Sequence[Message]) -> SendOutcome:
        self.requests += 1
        outcome = self._fault(messages) if self._fault is not None else None
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome is None:
            outcome = SendOutcome(acked=[m.id for m in messages])
        acked = set(outcome.acked)
        for message in messages:
            if message.id in acked:
                self.messages += 1
                if self._keep:
                    self.bodies.append(message.body)
        return outcome
