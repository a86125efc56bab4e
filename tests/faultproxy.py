"""A fault-injecting HTTP proxy between the SDK and the local SQS server (DESIGN §4).

It runs on 127.0.0.1 in a thread of its own with its own event loop, so it
works whatever loop the test uses. Send requests (SendMessage,
SendMessageBatch; botocore speaks SQS's JSON protocol) may be failed as a
:class:`FaultPlan` says; everything else is forwarded untouched. It also
enforces the SQS limits moto does not (size counting attributes, batch size,
characters), and records which message bodies were acknowledged, and whether
the client could see the acknowledgement, so tests can tell a legitimate
at-least-once duplicate from a resend of an acknowledged entry.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
from aiohttp import web

SEND_OPERATIONS = frozenset({"SendMessage", "SendMessageBatch"})
HOP_BY_HOP = frozenset(
    {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"}
)


@dataclass(frozen=True)
class FaultPlan:
    """Probabilities, per send request, of each fault (checked in this order)."""

    http_500: float = 0.0
    throttle: float = 0.0
    drop_before: float = 0.0
    drop_after: float = 0.0
    partial: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 0.2
    #: fail every send request with a 500
    fail_all: bool = False
    #: deterministic mode: every ``every``-th send request fails with the next kind of
    #: ``rotation`` (a "partial" turn waits for the next batch of two or more entries)
    every: int = 0
    rotation: tuple[str, ...] = ()


@dataclass
class ProxyStats:
    requests: int = 0
    send_requests: int = 0
    forwarded: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    entries_failed_partial: int = 0
    limit_violations: int = 0
    #: SHA-256 of bodies acknowledged in answers the client received
    acked_bodies: list[str] = field(default_factory=list)
    #: SHA-256 of bodies stored upstream whose answer the proxy dropped
    acked_unseen_bodies: list[str] = field(default_factory=list)


def digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _sqs_safe(text: str) -> bool:
    for ch in text:
        cp = ord(ch)
        if (cp < 0x20 and cp not in (0x9, 0xA, 0xD)) or 0xD800 <= cp <= 0xDFFF or cp in (
            0xFFFE,
            0xFFFF,
        ):
            return False
    return True


def _entry_size(entry: dict[str, Any]) -> int:
    size = len(entry.get("MessageBody", "").encode("utf-8"))
    for name, value in (entry.get("MessageAttributes") or {}).items():
        size += len(name.encode()) + len(value.get("DataType", "").encode())
        size += len(value.get("StringValue", "").encode())
    return size


def _error(status: int, code: str, message: str, fault: str = "Sender") -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps({"__type": f"com.amazonaws.sqs#{code}", "message": message}).encode(),
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "x-amzn-query-error": f"{code};{fault}",
        },
    )


class FaultProxy:
    """``FaultProxy(upstream)``: start(), stop(), ``endpoint_url``, ``plan``, ``snapshot()``."""

    def __init__(
        self,
        upstream: str,
        *,
        seed: int = 0,
        plan: FaultPlan | None = None,
        enforce_limits: bool = True,
        max_message_bytes: int = 262_144,
    ) -> None:
        self._upstream = upstream.rstrip("/")
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._plan = plan or FaultPlan()
        self._enforce = enforce_limits
        self._limit = max_message_bytes
        self._stats = ProxyStats()
        self._sends = 0
        self._turn = 0
        self._partial_owed = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._port = 0
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    # -- control (any thread) ---------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def plan(self) -> FaultPlan:
        with self._lock:
            return self._plan

    @plan.setter
    def plan(self, plan: FaultPlan) -> None:
        with self._lock:
            self._plan = plan

    def snapshot(self) -> ProxyStats:
        with self._lock:
            return replace(
                self._stats,
                faults=Counter(self._stats.faults),
                acked_bodies=list(self._stats.acked_bodies),
                acked_unseen_bodies=list(self._stats.acked_unseen_bodies),
            )

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._serve, name="fault-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._startup_error is not None:
            raise self._startup_error
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the proxy's own thread -----------------------------------------------------

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._open())
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._close())
            loop.close()

    async def _open(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64), auto_decompress=False
        )
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self._port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _choose_fault(self, operation: str, entries: int) -> str | None:
        with self._lock:
            plan = self._plan
            if plan.fail_all:
                return "http_500"
            if plan.every:
                return self._rotate(plan, operation == "SendMessageBatch" and entries >= 2)
            roll = self._random.random()
            for name in ("http_500", "throttle", "drop_before", "drop_after", "partial", "slow"):
                share: float = getattr(plan, name)
                if roll < share:
                    if name == "partial" and (operation != "SendMessageBatch" or entries < 2):
                        return None
                    return name
                roll -= share
            return None

    def _rotate(self, plan: FaultPlan, batch: bool) -> str | None:
        if self._partial_owed and batch:
            self._partial_owed -= 1
            return "partial"
        self._sends += 1
        if self._sends % plan.every:
            return None
        kind = plan.rotation[self._turn % len(plan.rotation)]
        self._turn += 1
        if kind == "partial" and not batch:
            self._partial_owed += 1
            return None
        return kind

    def _count(self, **changes: int) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(self._stats, name, getattr(self._stats, name) + value)

    def _limit_violation(self, operation: str, payload: dict[str, Any]) -> web.Response | None:
        entries = payload.get("Entries", []) if operation == "SendMessageBatch" else [payload]
        if len(entries) > 10:
            return _error(400, "TooManyEntriesInBatchRequest", "more than 10 entries")
        sizes = [_entry_size(e) for e in entries]
        if any(size > self._limit for size in sizes):
            return _error(400, "InvalidParameterValue", "message too long")
        if sum(sizes) > self._limit:
            return _error(400, "BatchRequestTooLong", "batch too long")
        if not all(_sqs_safe(e.get("MessageBody", "")) for e in entries):
            return _error(400, "InvalidMessageContents", "invalid characters")
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        operation = request.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        self._count(requests=1)
        if operation not in SEND_OPERATIONS:
            status, headers, answer = await self._forward(request, body)
            return web.Response(status=status, body=answer, headers=headers)

        self._count(send_requests=1)
        payload: dict[str, Any] = json.loads(body)
        if self._enforce:
            violation = self._limit_violation(operation, payload)
            if violation is not None:
                self._count(limit_violations=1)
                return violation
        entries: list[dict[str, Any]] = (
            payload.get("Entries", []) if operation == "SendMessageBatch" else [payload]
        )
        fault = self._choose_fault(operation, len(entries))
        if fault is not None:
            with self._lock:
                self._stats.faults[fault] += 1
        if fault == "http_500":
            return _error(500, "InternalError", "injected", fault="Receiver")
        if fault == "throttle":
            return _error(400, "RequestThrottled", "injected throttling")
        if fault == "drop_before":
            return self._drop(request)
        if fault == "slow":
            await asyncio.sleep(self.plan.slow_seconds)

        removed: list[dict[str, Any]] = []
        if fault == "partial":
            count = self._random.randrange(1, len(entries))
            removed = self._random.sample(entries, count)
            kept = [e for e in entries if e not in removed]
            payload = {**payload, "Entries": kept}
            body = json.dumps(payload).encode()
            entries = kept
            self._count(entries_failed_partial=len(removed))

        status, headers, answer = await self._forward(request, body)
        acked = self._acked_bodies(operation, entries, status, answer)
        if fault == "drop_after":
            with self._lock:
                self._stats.acked_unseen_bodies.extend(acked)
            return self._drop(request)
        with self._lock:
            self._stats.acked_bodies.extend(acked)
        if removed and status == 200:
            result = json.loads(answer)
            result.setdefault("Failed", []).extend(
                {"Id": e["Id"], "SenderFault": False, "Code": "InternalError",
                 "Message": "injected"}
                for e in removed
            )
            answer = json.dumps(result).encode()
        return web.Response(status=status, body=answer, headers=headers)

    @staticmethod
    def _acked_bodies(
        operation: str, entries: list[dict[str, Any]], status: int, answer: bytes
    ) -> list[str]:
        if status != 200:
            return []
        if operation == "SendMessage":
            return [digest(entries[0].get("MessageBody", ""))]
        ok = {item["Id"] for item in json.loads(answer).get("Successful", [])}
        return [digest(e.get("MessageBody", "")) for e in entries if e.get("Id") in ok]

    def _drop(self, request: web.Request) -> web.Response:
        # Close the connection without an answer: the client sees a disconnect.
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)

    async def _forward(
        self, request: web.Request, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        assert self._session is not None
        self._count(forwarded=1)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with self._session.request(
            request.method, self._upstream + request.path_qs, data=body, headers=headers
        ) as response:
            answer = await response.read()
            relay = {
                k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP
            }
            return response.status, relay, answer
