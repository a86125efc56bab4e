"""A fault-injecting HTTP proxy between the SDK and a local SQS server (DESIGN §4).

The proxy listens on 127.0.0.1 only and runs in a thread of its own with its own
event loop, so it works whatever loop (or none) the test uses. botocore speaks SQS's
JSON protocol (``POST /``, ``X-Amz-Target: AmazonSQS.<Operation>``, a JSON body of
type ``application/x-amz-json-1.0``), so the proxy can see which requests are sends.

* Send requests (SendMessage, SendMessageBatch) may be failed as the current
  :class:`FaultPlan` says. Every other request (ReceiveMessage, CreateQueue, ...) and
  every send that is not faulted is forwarded verbatim and its answer relayed verbatim.
* SQS limits that moto does not enforce (size counting attributes, 10 entries per
  batch, allowed characters) are enforced and counted, so a test can assert the SDK
  never breaks them.
* It records the SHA-256 of every body the upstream acknowledged, split by whether the
  client could see that acknowledgement. A resend of a body the client saw
  acknowledged is a bug; a resend of one whose answer was lost is at-least-once.

An *unreachable* server is not a fault kind: stop the proxy, or point the client at
:func:`unused_endpoint_url`, and the client gets connection refused. An *outage* of
a chosen length is ``proxy.plan = FaultPlan(unavailable=True)`` (every request
answered 503) until the test sets a healthy plan again; ``FaultPlan(fail_first=N)``
fails the next N sends that way.

Usage::

    with FaultProxy(moto_url, seed=1, faults=FaultPlan(http_500=0.1)) as proxy:
        ...  # client with endpoint_url=proxy.endpoint_url
        proxy.plan = FaultPlan(fail_all=True)
        assert proxy.snapshot().limit_violations == 0
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import itertools
import json
import random
import re
import socket
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

SEND_OPERATIONS = frozenset({"SendMessage", "SendMessageBatch"})
#: fault kinds in the order a random roll is matched against the plan's shares
FAULT_KINDS = ("http_500", "throttle", "drop_before", "drop_after", "partial", "slow")
#: headers that describe one hop rather than the message (RFC 9110 §7.6.1), plus
#: Host (aiohttp sets the upstream's) and Content-Length (aiohttp recomputes it)
HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "transfer-encoding", "upgrade", "host", "content-length",
    }
)
JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
MAX_BATCH_ENTRIES = 10
SQS_MESSAGE_LIMIT = 262_144
# Characters SQS refuses in a message body or string attribute: anything outside
# #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF (lone surrogates included).
_FORBIDDEN_CHARACTER = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class FaultPlan:
    """What share of send requests gets each fault.

    Each share is a probability in [0, 1]; one roll per send request picks at most
    one fault, so the shares must add up to at most 1 and each kind happens with
    exactly its share (``partial`` only on batches of two or more entries; on other
    requests its turn passes without a fault).
    """

    #: answer 500 ``InternalError`` without forwarding
    http_500: float = 0.0
    #: answer 400 ``RequestThrottled`` without forwarding
    throttle: float = 0.0
    #: close the connection without forwarding or answering
    drop_before: float = 0.0
    #: forward, then close the connection without answering (delivered, unseen)
    drop_after: float = 0.0
    #: forward a batch without a random non-empty strict subset of its entries and
    #: report those as ``Failed``
    partial: float = 0.0
    #: forward, then hold the answer back for ``slow_seconds``
    slow: float = 0.0
    slow_seconds: float = 0.2
    #: fail every send request with a 500 (takes precedence over the shares)
    fail_all: bool = False
    #: an outage: answer every request, sends or not, 503 ``ServiceUnavailable``
    #: without forwarding (takes precedence over everything else)
    unavailable: bool = False
    #: answer the first ``fail_first`` send requests after this plan was set
    #: 503 ``ServiceUnavailable`` (then the rest of the plan applies)
    fail_first: int = 0
    #: deterministic mode, used instead of the shares when > 0: every ``every``-th
    #: send request gets the next kind of ``rotation`` (a ``partial`` turn that falls
    #: on a request that cannot be partially failed is owed to the next batch)
    every: int = 0
    rotation: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        shares = [getattr(self, kind) for kind in FAULT_KINDS]
        if any(not 0.0 <= share <= 1.0 for share in shares):
            raise ValueError(f"fault shares must be within [0, 1]: {self}")
        if sum(shares) > 1.0 + 1e-9:
            raise ValueError(f"fault shares add up to more than 1: {self}")
        if self.slow_seconds < 0:
            raise ValueError("slow_seconds must not be negative")
        unknown = set(self.rotation) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds in rotation: {sorted(unknown)}")
        if self.every < 0 or (self.every and not self.rotation):
            raise ValueError("every needs a positive value and a non-empty rotation")
        if self.fail_first < 0:
            raise ValueError("fail_first must not be negative")


@dataclass
class ProxyStats:
    #: every request the proxy received
    requests: int = 0
    #: requests per SQS operation (from X-Amz-Target; "" when there is none)
    operations: Counter[str] = field(default_factory=Counter)
    send_requests: int = 0
    #: requests passed on to the upstream
    forwarded: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    #: batch entries removed and reported Failed by ``partial`` faults
    entries_failed_partial: int = 0
    limit_violations: int = 0
    #: SHA-256 (hex) of each message body acknowledged in an answer the client received
    acked_bodies: list[str] = field(default_factory=list)
    #: SHA-256 of bodies stored upstream whose answer the client never received
    #: (``drop_after``, or the client gave up while the answer was held back)
    acked_unseen_bodies: list[str] = field(default_factory=list)


def digest(body: str) -> str:
    """The fingerprint recorded for a message body (SHA-256 of its UTF-8, hex)."""
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


def unused_endpoint_url() -> str:
    """An http URL on 127.0.0.1 that nothing listens on (the "unreachable" fault).

    The port was free a moment ago; another process could take it, which is
    unlikely enough for tests.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- SQS limits ------------------------------------------------------------------------


def _utf8_size(text: str) -> int:
    # surrogatepass: a lone surrogate must be counted (and then refused), not crash us
    return len(text.encode("utf-8", "surrogatepass"))


def _attribute_value_size(value: Mapping[str, Any]) -> int:
    size = _utf8_size(str(value.get("DataType", "")))
    if "StringValue" in value:
        size += _utf8_size(str(value["StringValue"]))
    if "BinaryValue" in value:
        try:
            size += len(base64.b64decode(str(value["BinaryValue"]), validate=True))
        except binascii.Error:
            size += len(str(value["BinaryValue"]))
    return size


def message_size(entry: Mapping[str, Any]) -> int:
    """SQS's size of a message: body plus attribute names, types and values, in bytes."""
    size = _utf8_size(str(entry.get("MessageBody", "")))
    for name, value in (entry.get("MessageAttributes") or {}).items():
        size += _utf8_size(name) + _attribute_value_size(value)
    return size


def _has_forbidden_characters(entry: Mapping[str, Any]) -> bool:
    texts = [str(entry.get("MessageBody", ""))]
    texts += [
        str(value.get("StringValue", ""))
        for value in (entry.get("MessageAttributes") or {}).values()
    ]
    return any(_FORBIDDEN_CHARACTER.search(text) for text in texts)


def limit_violation(
    operation: str, entries: list[dict[str, Any]], limit: int
) -> tuple[str, str] | None:
    """The (code, message) SQS would refuse this send with, or None if it is fine."""
    if operation == "SendMessageBatch" and len(entries) > MAX_BATCH_ENTRIES:
        return "TooManyEntriesInBatchRequest", (
            f"Maximum number of entries per request are {MAX_BATCH_ENTRIES}. "
            f"You have sent {len(entries)}."
        )
    sizes = [message_size(entry) for entry in entries]
    if any(size > limit for size in sizes):
        return "InvalidParameterValue", (
            "One or more parameters are invalid. "
            f"Reason: Message must be shorter than {limit} bytes."
        )
    if sum(sizes) > limit:
        return "BatchRequestTooLong", (
            f"Batch requests cannot be longer than {limit} bytes. "
            f"You have sent {sum(sizes)} bytes."
        )
    if any(_has_forbidden_characters(entry) for entry in entries):
        # Real SQS answers InvalidMessageContents (the model's error for SendMessage).
        return "InvalidMessageContents", "Invalid characters found in the message."
    return None


# -- answers -----------------------------------------------------------------------------


def _unavailable() -> web.Response:
    return sqs_error(503, "ServiceUnavailable", "injected outage", sender_fault=False)


def sqs_error(status: int, code: str, message: str, *, sender_fault: bool = True) -> web.Response:
    """An error answer in SQS's JSON-protocol form.

    botocore reads the code from ``x-amzn-query-error`` (SQS is "awsQueryCompatible")
    and falls back to the part of ``__type`` after ``#``; both say ``code``.
    """
    fault = "Sender" if sender_fault else "Receiver"
    body = json.dumps({"__type": f"com.amazonaws.sqs#{code}", "message": message})
    return web.Response(
        status=status,
        body=body.encode(),
        headers={"Content-Type": JSON_CONTENT_TYPE, "x-amzn-query-error": f"{code};{fault}"},
    )


@dataclass
class _Upstream:
    """The upstream's answer, ready to be relayed."""

    status: int
    reason: str | None
    headers: CIMultiDict[str]
    body: bytes

    def response(self, body: bytes | None = None) -> web.Response:
        return web.Response(
            status=self.status,
            reason=self.reason,
            headers=self.headers,
            body=self.body if body is None else body,
        )


def _end_to_end(headers: Mapping[str, str]) -> CIMultiDict[str]:
    # items() keeps repeated headers, which a dict comprehension would merge
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP)


def _operation(request: web.BaseRequest) -> str:
    target = request.headers.get("X-Amz-Target", "")
    return target.rpartition(".")[2] if target.startswith("AmazonSQS.") else ""


def _send_entries(operation: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    if operation == "SendMessage":
        return [payload]
    entries = payload.get("Entries")
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _parse_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _client_gone(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _hold_back(request: web.BaseRequest, seconds: float) -> None:
    """Wait ``seconds``, or less if the client hangs up meanwhile (nothing to wait for)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not _client_gone(request):
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        await asyncio.sleep(min(remaining, 0.01))


# -- the proxy --------------------------------------------------------------------------


class FaultProxy:
    """A fault-injecting proxy: ``start()``/``stop()`` (or ``with``), ``endpoint_url``,
    ``plan`` (settable from any thread while it runs), ``snapshot()``/``stats``."""

    def __init__(
        self,
        upstream: str,
        *,
        seed: int = 0,
        faults: FaultPlan | None = None,
        enforce_limits: bool = True,
        max_message_bytes: int = SQS_MESSAGE_LIMIT,
    ) -> None:
        self._upstream = upstream.rstrip("/")
        self._enforce_limits = enforce_limits
        self._max_message_bytes = max_message_bytes
        # One lock guards the plan, the random generator, the rotation and the stats:
        # handlers run on the proxy's loop while tests read and write from theirs.
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._plan = faults or FaultPlan()
        #: send requests seen since the plan was set (for ``fail_first``)
        self._plan_sends = 0
        self._stats = ProxyStats()
        self._sends_seen = 0
        self._rotation_turn = 0
        self._partials_owed = 0
        # Requests being handled, so that a test can wait for the proxy to settle.
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        # Bodies stored upstream whose answer is still on its way to the client, by
        # request; snapshot() counts them as unseen until the answer is written.
        self._answers_pending: dict[int, list[str]] = {}
        self._next_request = itertools.count()
        # Set while running.
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- control, from any thread ---------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        if self._port is None:
            raise RuntimeError("the fault proxy was never started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def plan(self) -> FaultPlan:
        with self._lock:
            return self._plan

    @plan.setter
    def plan(self, plan: FaultPlan) -> None:
        with self._lock:
            self._plan = plan
            self._plan_sends = 0

    def snapshot(self) -> ProxyStats:
        """A consistent copy of the counters, safe to keep and compare."""
        with self._lock:
            pending = [body for bodies in self._answers_pending.values() for body in bodies]
            return replace(
                self._stats,
                operations=Counter(self._stats.operations),
                faults=Counter(self._stats.faults),
                acked_bodies=list(self._stats.acked_bodies),
                acked_unseen_bodies=self._stats.acked_unseen_bodies + pending,
            )

    @property
    def stats(self) -> ProxyStats:
        return self.snapshot()

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Block until no request is being handled, e.g. after a client gave up on one
        whose answer the proxy still holds. Raises TimeoutError after ``timeout``."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._in_flight == 0, timeout):
                raise TimeoutError(f"{self._in_flight} requests still in flight")

    def start(self) -> FaultProxy:
        """Serve on a free port; after a stop(), serve again on the same port (so
        clients pointed at ``endpoint_url`` find the server back)."""
        if self._thread is not None:
            raise RuntimeError("the fault proxy is already running")
        ready = threading.Event()
        failure: list[BaseException] = []
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self._port or 0))
            sock.listen(128)
        except BaseException:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        self._thread = threading.Thread(
            target=self._run, args=(sock, ready, failure), name="fault-proxy", daemon=True
        )
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop serving and close client connections; ``endpoint_url`` then refuses
        connections (the "unreachable" fault) until start() again. Idempotent."""
        thread, loop, stop = self._thread, self._loop, self._stop_requested
        if thread is None:
            return
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)
        thread.join()
        self._thread = self._loop = self._stop_requested = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the proxy's own thread and loop --------------------------------------------

    def _run(
        self, sock: socket.socket, ready: threading.Event, failure: list[BaseException]
    ) -> None:
        try:
            asyncio.run(self._serve(sock, ready))
        except BaseException as exc:  # reported to start() if it is still waiting
            failure.append(exc)
        finally:
            sock.close()
            ready.set()

    async def _serve(self, sock: socket.socket, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        # auto_decompress off and no automatic headers: relay bytes as they are.
        async with aiohttp.ClientSession(
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            timeout=aiohttp.ClientTimeout(total=60),
        ) as session:
            self._session = session
            server = web.Server(self._handle, access_log=None)
            # A short shutdown timeout: a held-back (slow) answer must not delay stop().
            runner = web.ServerRunner(server, shutdown_timeout=1.0)
            await runner.setup()
            try:
                await web.SockSite(runner, sock).start()
                ready.set()
                await self._stop_requested.wait()
            finally:
                await runner.cleanup()
                self._session = None

    # -- one request ------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        with self._lock:
            self._in_flight += 1
        try:
            return await self._handle_one(request)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    async def _handle_one(self, request: web.BaseRequest) -> web.StreamResponse:
        # content.read() rather than read(): no 1 MiB cap on what we relay
        body = await request.content.read()
        operation = _operation(request)
        with self._lock:
            self._stats.requests += 1
            self._stats.operations[operation] += 1
            unavailable = self._plan.unavailable
            if unavailable:
                self._stats.faults["unavailable"] += 1
        if unavailable:
            return _unavailable()
        if operation not in SEND_OPERATIONS:
            return await self._relay(request, body)
        payload = _parse_object(body)
        if payload is None:  # not ours to judge: let the upstream answer it
            return await self._relay(request, body)
        with self._lock:
            self._stats.send_requests += 1
        return await self._send(request, operation, payload, body)

    async def _send(
        self, request: web.BaseRequest, operation: str, payload: dict[str, Any], body: bytes
    ) -> web.StreamResponse:
        entries = _send_entries(operation, payload)
        if self._enforce_limits:
            violation = limit_violation(operation, entries, self._max_message_bytes)
            if violation is not None:
                with self._lock:
                    self._stats.limit_violations += 1
                return sqs_error(400, *violation)

        fault, plan, removed = self._choose_fault(operation, entries)
        if fault == "unavailable":
            return _unavailable()
        if fault == "http_500":
            return sqs_error(500, "InternalError", "injected fault", sender_fault=False)
        if fault == "throttle":
            return sqs_error(400, "RequestThrottled", "injected throttling")
        if fault == "drop_before":
            return self._drop(request)

        removed_entries: list[dict[str, Any]] = []
        if removed:
            kept = [entry for i, entry in enumerate(entries) if i not in removed]
            body = json.dumps({**payload, "Entries": kept}).encode()
            removed_entries = [entries[i] for i in sorted(removed)]
            entries = kept

        upstream = await self._forward(request, body)
        if upstream is None:
            return sqs_error(502, "ServiceUnavailable", "upstream unreachable", sender_fault=False)
        acked = _acknowledged(operation, entries, upstream)

        if fault == "drop_after":
            self._settle(None, acked, seen=False)
            return self._drop(request)
        # Stored upstream, not yet seen by the client: counted as unseen until the
        # answer is written, also if stop() cancels us while the answer is held back.
        token = self._await_answer(acked)
        if fault == "slow":
            await _hold_back(request, plan.slow_seconds)
        if _client_gone(request):  # it timed out while the upstream or we were slow
            self._settle(token, acked, seen=False)
            return web.Response(status=204)  # goes nowhere
        self._settle(token, acked, seen=True)
        if removed and upstream.status == 200:
            return upstream.response(_with_failed(upstream.body, removed_entries))
        return upstream.response()

    def _choose_fault(
        self, operation: str, entries: list[dict[str, Any]]
    ) -> tuple[str | None, FaultPlan, set[int]]:
        """The fault for this send, the plan it came from, and (for ``partial``) the
        indexes of the entries to fail. Counts the fault."""
        divisible = operation == "SendMessageBatch" and len(entries) >= 2
        with self._lock:
            plan = self._plan
            self._plan_sends += 1
            if self._plan_sends <= plan.fail_first:
                fault: str | None = "unavailable"
            elif plan.fail_all:
                fault = "http_500"
            elif plan.every:
                fault = self._next_in_rotation(plan, divisible)
            else:
                fault = self._roll(plan)
            if fault == "partial" and not divisible:
                fault = None
            removed: set[int] = set()
            if fault == "partial":
                count = self._random.randint(1, len(entries) - 1)
                removed = set(self._random.sample(range(len(entries)), count))
                self._stats.entries_failed_partial += count
            if fault is not None:
                self._stats.faults[fault] += 1
            return fault, plan, removed

    def _roll(self, plan: FaultPlan) -> str | None:
        roll = self._random.random()
        for kind in FAULT_KINDS:
            share: float = getattr(plan, kind)
            if roll < share:
                return kind
            roll -= share
        return None

    def _next_in_rotation(self, plan: FaultPlan, divisible: bool) -> str | None:
        if self._partials_owed and divisible:
            self._partials_owed -= 1
            return "partial"
        self._sends_seen += 1
        if self._sends_seen % plan.every:
            return None
        kind = plan.rotation[self._rotation_turn % len(plan.rotation)]
        self._rotation_turn += 1
        if kind == "partial" and not divisible:
            self._partials_owed += 1
            return None
        return kind

    def _await_answer(self, bodies: list[str]) -> int:
        token = next(self._next_request)
        with self._lock:
            self._answers_pending[token] = bodies
        return token

    def _settle(self, token: int | None, bodies: list[str], *, seen: bool) -> None:
        # Settled before the answer is written, so a test that looks right after the
        # client's call returned finds it.
        with self._lock:
            if token is not None:
                del self._answers_pending[token]
            target = self._stats.acked_bodies if seen else self._stats.acked_unseen_bodies
            target.extend(bodies)

    @staticmethod
    def _drop(request: web.BaseRequest) -> web.StreamResponse:
        # Close the connection without a byte of answer. aiohttp then fails to write the
        # response we must return, and lets that go (ConnectionError in finish_response).
        request.protocol.force_close()
        return web.Response(status=204)

    async def _relay(self, request: web.BaseRequest, body: bytes) -> web.StreamResponse:
        upstream = await self._forward(request, body)
        if upstream is None:
            return sqs_error(502, "ServiceUnavailable", "upstream unreachable", sender_fault=False)
        return upstream.response()

    async def _forward(self, request: web.BaseRequest, body: bytes) -> _Upstream | None:
        assert self._session is not None
        with self._lock:
            self._stats.forwarded += 1
        # raw_path keeps the path and query exactly as the client encoded them
        url = URL(self._upstream + request.raw_path, encoded=True)
        try:
            async with self._session.request(
                request.method, url, data=body, headers=_end_to_end(request.headers),
                allow_redirects=False,
            ) as answer:
                return _Upstream(
                    status=answer.status,
                    reason=answer.reason,
                    headers=_end_to_end(answer.headers),
                    body=await answer.read(),
                )
        except aiohttp.ClientError:
            return None


def _acknowledged(operation: str, entries: list[dict[str, Any]], upstream: _Upstream) -> list[str]:
    """Digests of the bodies the upstream's answer says it stored."""
    if upstream.status != 200:
        return []
    if operation == "SendMessage":
        return [digest(str(entries[0].get("MessageBody", "")))]
    answer = _parse_object(upstream.body) or {}
    ok = {item.get("Id") for item in answer.get("Successful", []) if isinstance(item, dict)}
    return [digest(str(e.get("MessageBody", ""))) for e in entries if e.get("Id") in ok]


def _with_failed(answer: bytes, removed: list[dict[str, Any]]) -> bytes:
    """The upstream's batch answer plus a Failed entry for each entry we withheld."""
    result = _parse_object(answer) or {}
    failed = result.setdefault("Failed", [])
    failed.extend(
        {"Id": entry.get("Id"), "SenderFault": False, "Code": "InternalError",
         "Message": "injected"}
        for entry in removed
    )
    result.setdefault("Successful", [])
    return json.dumps(result).encode()
