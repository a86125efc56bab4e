"""The adaptive concurrency controller on its own, on a simulated clock.

A small discrete-event simulation plays the sender pool and the network: a
writer makes messages ready (at a fixed rate, or always), requests start while
the controller allows, and each one is answered after the round trip, by a
server that may have a bounded capacity and may throttle. No event loop and no
sleeping: time is a number the simulation advances. The last test runs the SDK's
real sender pool over an in-memory transport.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import anyio
import pytest

from panoply_async import SDK, Message, SendError, SendOutcome
from panoply_async._engine.concurrency import (
    DEFAULT_CEILING,
    INITIAL_LIMIT,
    PROBE_ROUNDS,
    Change,
    ConcurrencyController,
    Congestion,
    congestion_cause,
)

SIZE = 250_000  # bytes per request, about one full message
THROTTLED = congestion_cause("RequestThrottled", True)
SERVER_ERROR = congestion_cause("InternalError", True)
TIMEOUT = congestion_cause("Timeout", True)


@dataclass
class Network:
    """Round trip ``rtt``; a server that handles ``capacity`` requests per second
    one after another (None: unbounded); ``answer(start_time)`` may return a
    congestion cause instead of an acknowledgement."""

    rtt: float
    capacity: float | None = None
    answer: Callable[[float], Congestion | None] = lambda t: None
    jitter: float = 0.0
    seed: int = 0
    _server_free: float = 0.0
    _random: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def finish_time(self, start: float) -> float:
        arrival = start + self.rtt / 2
        if self.capacity is not None:
            arrival = max(arrival, self._server_free) + 1 / self.capacity
            self._server_free = arrival
        return arrival + self.rtt / 2 + self._random.uniform(0, self.jitter)


@dataclass
class Run:
    limits: list[tuple[float, int]]
    changes: list[Change]
    most_in_flight: int
    acked: int
    requests: int
    duration: float

    @property
    def final(self) -> int:
        return self.limits[-1][1]

    def limit_at(self, when: float) -> int:
        current = self.limits[0][1]
        for at, limit in self.limits:
            if at > when:
                break
            current = limit
        return current

    def throughput(self) -> float:
        return self.acked / self.duration


def simulate(
    controller: ConcurrencyController,
    network: Network,
    *,
    duration: float,
    produce_every: float | None = None,
) -> Run:
    """Run the pool for ``duration`` simulated seconds. ``produce_every``: a new
    message each so many seconds (None: a backlog that never empties)."""
    events: list[tuple[float, int, str, float]] = []
    order = 0
    ready = 0 if produce_every is not None else 10**9
    now = 0.0
    limits = [(0.0, controller.limit)]
    changes: list[Change] = []
    most = acked = requests = 0

    def push(at: float, kind: str, started: float = 0.0) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (at, order, kind, started))

    def note(change: Change | None) -> None:
        if change is not None:
            changes.append(change)
            limits.append((now, controller.limit))
            assert 1 <= controller.limit <= controller.ceiling

    def start_what_we_can() -> None:
        nonlocal ready, most, requests
        while ready and controller.can_start():
            ready -= 1
            requests += 1
            started = controller.started(now)
            most = max(most, controller.in_flight)
            assert controller.in_flight <= controller.limit
            push(network.finish_time(now), "answer", started)

    if produce_every is not None:
        push(0.0, "produce")
    else:
        start_what_we_can()
    while events:
        now, _, kind, started = heapq.heappop(events)
        if now > duration:
            break
        if kind == "produce":
            ready += 1
            push(now + produce_every if produce_every else now, "produce")
        else:
            cause = network.answer(started)
            if cause is None:
                acked += 1
                note(controller.succeeded(now, started, SIZE))
            else:
                ready += 1  # resent later, through a slot like any request
                note(controller.congested(now, started, cause))
        start_what_we_can()
    return Run(limits, changes, most, acked, requests, duration)


def test_ramps_up_under_latency() -> None:
    controller = ConcurrencyController(DEFAULT_CEILING)
    assert controller.limit == INITIAL_LIMIT
    run = simulate(controller, Network(rtt=0.2), duration=10.0)
    assert run.final == DEFAULT_CEILING
    # Doubling first: the ceiling is reached within a few round trips, not 48.
    assert run.limit_at(2.0) == DEFAULT_CEILING
    assert all("doubling" in c.reason for c in run.changes)
    assert run.most_in_flight == DEFAULT_CEILING


def test_never_exceeds_the_ceiling_nor_the_limit() -> None:
    for ceiling in (1, 3, 4, 16, 64):
        controller = ConcurrencyController(ceiling)
        run = simulate(controller, Network(rtt=0.1, jitter=0.05), duration=20.0)
        assert max(limit for _, limit in run.limits) <= ceiling
        assert run.most_in_flight <= ceiling
        assert run.final == ceiling


def test_a_user_ceiling_below_the_initial_limit_starts_at_the_ceiling() -> None:
    assert ConcurrencyController(4).limit == 4
    assert ConcurrencyController(64, initial=2).limit == 2


def test_fixed_mode_never_changes() -> None:
    controller = ConcurrencyController(8, adaptive=False)

    def throttle_all(started: float) -> Congestion | None:
        return THROTTLED

    run = simulate(controller, Network(rtt=0.05, answer=throttle_all), duration=2.0)
    assert run.changes == []
    assert controller.limit == 8


def test_backs_off_under_throttling() -> None:
    # The queue takes 20 requests a second and throttles whatever comes faster:
    # a limit above what it takes in one round trip only earns refusals.
    accepted: list[float] = []

    def answer(started: float) -> Congestion | None:
        accepted[:] = [t for t in accepted if t > started - 1.0]
        if len(accepted) >= 20:
            return THROTTLED
        accepted.append(started)
        return None

    controller = ConcurrencyController(DEFAULT_CEILING)
    run = simulate(controller, Network(rtt=0.1, answer=answer), duration=30.0)
    decreases = [c for c in run.changes if c.after < c.before]
    assert decreases
    assert all("throttled" in c.reason for c in decreases)
    assert all(c.after == c.before // 2 or c.after == 1 for c in decreases)
    # It settles near what the queue takes per round trip (2 at 20/s and 0.1 s),
    # far below the ceiling, instead of retrying harder.
    late = [limit for at, limit in run.limits if at > 15.0] or [run.limit_at(15.0)]
    assert max(late) <= 8
    assert run.acked > 0.7 * 20 * 30  # and it still gets most of the queue's rate


def test_one_decrease_per_round_trip() -> None:
    # Every request of one window is throttled: that is one signal, one halving,
    # not one halving per refused request.
    controller = ConcurrencyController(64, initial=64)
    for _ in range(64):
        controller.started(0.0)
    assert THROTTLED is not None
    assert TIMEOUT is not None
    changes = [controller.congested(0.1, 0.0, THROTTLED) for _ in range(64)]
    assert [c for c in changes if c is not None] == [
        Change(64, 32, "throttled (RequestThrottled); backing off")
    ]
    assert controller.limit == 32
    assert controller.in_flight == 0
    # A request sent after the decrease counts again.
    started = controller.started(0.2)
    assert controller.congested(0.3, started, TIMEOUT) == Change(32, 24, "timeout; backing off")


def test_recovers_after_a_throttling_storm() -> None:
    def answer(started: float) -> Congestion | None:
        return THROTTLED if 5.0 <= started < 8.0 else None

    controller = ConcurrencyController(DEFAULT_CEILING)
    run = simulate(controller, Network(rtt=0.1), duration=5.0)
    assert run.final == DEFAULT_CEILING
    run = simulate(controller := ConcurrencyController(DEFAULT_CEILING),
                   Network(rtt=0.1, answer=answer), duration=40.0)
    assert run.limit_at(4.9) == DEFAULT_CEILING
    assert min(limit for at, limit in run.limits if 5.0 <= at < 8.5) == 1
    assert run.final == DEFAULT_CEILING
    reasons = [c.reason for c in run.changes if c.before < c.after and c.before < 64]
    assert any(r.startswith("recovering") for r in reasons)
    assert any(r.startswith("throughput up") for r in reasons)


def test_a_writer_slower_than_the_network_changes_nothing() -> None:
    # CPU-bound client at 0 ms: one message every 10 ms, answered in 1 ms. The
    # limit never binds, so it neither grows nor shrinks.
    controller = ConcurrencyController(DEFAULT_CEILING)
    run = simulate(controller, Network(rtt=0.001), duration=30.0, produce_every=0.01)
    assert run.changes == []
    assert run.most_in_flight == 1
    assert run.acked >= 2_990


def test_at_a_server_bound_it_stops_doubling_and_stays_put() -> None:
    # A server that handles 100 requests/s one at a time at 0 ms: more in flight
    # cannot raise throughput. The limit must stop growing early, and noise (random
    # service jitter) must not walk it down.
    controller = ConcurrencyController(DEFAULT_CEILING)
    run = simulate(controller, Network(rtt=0.0, capacity=100.0, jitter=0.005, seed=3),
                   duration=60.0)
    assert all(c.after >= INITIAL_LIMIT for c in run.changes)
    assert run.final < DEFAULT_CEILING
    assert run.acked >= 0.99 * 100 * 60
    probes = [c for c in run.changes if c.reason.startswith("probing")]
    step_backs = [c for c in run.changes if c.reason == "probe did not raise throughput"]
    assert probes
    assert step_backs


def test_does_not_collapse_on_rare_errors() -> None:
    # One request in 1,000 fails with a 500 at random: the limit dips and recovers
    # instead of ratcheting down to 1.
    rng = random.Random(7)

    def answer(started: float) -> Congestion | None:
        return SERVER_ERROR if rng.random() < 0.001 else None

    controller = ConcurrencyController(DEFAULT_CEILING)
    run = simulate(controller, Network(rtt=0.1, answer=answer), duration=120.0)
    assert any(c.after < c.before for c in run.changes)
    # time-weighted mean limit over the second half
    points = [(at, limit) for at, limit in run.limits if at >= 60.0]
    spans = zip([(60.0, run.limit_at(60.0)), *points], [*points, (120.0, run.final)], strict=False)
    mean = sum((b[0] - a[0]) * a[1] for a, b in spans) / 60.0
    assert mean >= 40
    assert min(limit for _, limit in run.limits[1:]) >= 16


def test_every_change_has_a_reason() -> None:
    controller = ConcurrencyController(8, initial=1)
    run = simulate(controller, Network(rtt=0.05), duration=1.0)
    assert [(c.before, c.after) for c in run.changes] == [(1, 2), (2, 4), (4, 8)]
    assert str(run.changes[0]) == "send concurrency 1 -> 2: first round at 1 in flight; doubling"
    assert "throughput up 100%" in run.changes[1].reason


@pytest.mark.parametrize(
    ("code", "retryable", "cause"),
    [
        ("RequestThrottled", True, "throttled (RequestThrottled)"),
        ("ThrottlingException", True, "throttled (ThrottlingException)"),
        ("Timeout", True, "timeout"),
        ("InternalError", True, "server error (InternalError)"),
        ("ClientConnectorError", True, "server error (ClientConnectorError)"),
        ("InvalidParameterValue", False, None),
        ("AccessDenied", False, None),
    ],
)
def test_congestion_causes(code: str, retryable: bool, cause: str | None) -> None:
    found = congestion_cause(code, retryable)
    assert (found.reason if found else None) == cause
    if found is not None:
        assert found.keep == (0.5 if "throttled" in found.reason else 0.75)


def test_invalid_ceiling() -> None:
    with pytest.raises(ValueError, match="ceiling"):
        ConcurrencyController(0)
    assert PROBE_ROUNDS >= 2


def test_answered_sorts_outcomes() -> None:
    controller = ConcurrencyController(8, initial=8)
    for _ in range(3):
        controller.started(0.0)
    assert controller.answered(0.1, 0.0, acked=100, code=None, retryable=False) is None
    assert controller.answered(0.1, 0.0, acked=0, code="AccessDenied", retryable=False) is None
    assert controller.limit == 8
    change = controller.answered(0.1, 0.0, acked=0, code="RequestThrottled", retryable=True)
    assert change == Change(8, 4, "throttled (RequestThrottled); backing off")
    assert controller.in_flight == 0


class ThrottlingTransport:
    """In memory: each request takes a moment; the first ``throttled`` are refused.
    Records how many requests were in flight against the limit at each start."""

    def __init__(self, throttled: int) -> None:
        self.conn: SDK | None = None
        self.throttled = throttled
        self.requests = 0
        self.in_flight = 0
        self.over_limit = 0
        self.most = 0

    async def open(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def send(self, messages: Sequence[Message]) -> SendOutcome:
        assert self.conn is not None
        self.requests += 1
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        if self.in_flight > self.conn.stats.send_concurrency:
            self.over_limit += 1
        try:
            await anyio.sleep(0.002)  # the request's round trip, not synchronisation
        finally:
            self.in_flight -= 1
        if self.requests <= self.throttled:
            raise SendError("throttled", retryable=True, code="RequestThrottled")
        return SendOutcome(acked=[m.id for m in messages])


async def test_the_pool_keeps_requests_and_retries_under_the_limit(
    vector_credentials: tuple[str, str],
) -> None:
    transport = ThrottlingTransport(throttled=40)
    conn = SDK(*vector_credentials, transport=transport, max_message_bytes=2048,
               backoff_base=0.001, backoff_max=0.01, max_attempts=100)
    transport.conn = conn
    async with conn:
        await conn.write_many("t", [{"id": i, "pad": "x" * 50} for i in range(3_000)])
        await conn.flush()
        assert conn.stats.send_concurrency < INITIAL_LIMIT
    assert transport.most > 1
    assert transport.over_limit == 0
    assert conn.stats.records_delivered == 3_000
    assert conn.stats.retries == 40
