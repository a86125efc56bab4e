"""How many send requests may be in flight: the adaptive concurrency controller.

Pure decision logic (no I/O, no event loop): the sender pool reports when a
request starts and how it ended, with the time passed in, and asks whether
another may start. Throughput over the network is about ``in flight × bytes
per request ÷ round trip``, so the right limit depends on a latency the SDK
cannot know in advance; the controller finds it.

* **Rounds.** A round lasts until as many requests as the limit were
  acknowledged (about one round trip). At its end the controller compares the
  round's throughput (acknowledged bytes per second) with the one measured at
  the previous limit.
* **Only a binding limit is raised.** A round in which fewer requests than the
  limit were ever in flight at once says nothing about a higher limit (the
  writer, not the network, was the bottleneck, as in a CPU-bound client at
  0 ms), so it changes nothing.
* **Start: doubling.** From the initial limit, the limit doubles each round
  while throughput grows by at least ``START_GROWTH``; the first round that
  does not grow ends the start phase and holds the limit.
* **Steady: additive increase.** One more request per round while throughput
  grows by at least half of what one more request can add (``1 / (2 × limit)``);
  otherwise hold. After ``PROBE_ROUNDS`` rounds held, probe with one more, and
  step back if the probe did not raise throughput. Throughput noise therefore
  only ever decides about one request more or less, never a fall.
* **Multiplicative decrease** on congestion: throttling answers halve the
  limit; 5xx and other server-side failures, timeouts and lost connections
  take a quarter off (one of them may be a bad request rather than overload). At
  most once per round trip: a signal from a request that started before the
  last decrease was caused by the old limit and is not counted again. So a burst
  of errors from one window costs one halving, not a collapse to 1.

Decisions that change the limit come back as a :class:`Change` with a reason
the caller logs.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_CEILING",
    "INITIAL_LIMIT",
    "THROTTLING_CODES",
    "Change",
    "ConcurrencyController",
    "Congestion",
    "congestion_cause",
]

#: default ``max_concurrent_sends``: 64 full messages are 16 MiB, the default buffer
DEFAULT_CEILING = 64
#: where the limit starts (capped by the ceiling)
INITIAL_LIMIT = 16
#: the share of the limit kept when the queue throttles (an explicit "slow down")
DECREASE_THROTTLED = 0.5
#: the share kept on other congestion (5xx, timeouts, lost connections), which may
#: be one bad request rather than overload
DECREASE_OTHER = 0.75
#: least growth of a start-phase round's throughput that keeps the limit doubling
START_GROWTH = 0.25
#: rounds held without growth before trying one more request in flight
PROBE_ROUNDS = 8

#: error codes by which AWS services say "slow down"
THROTTLING_CODES = frozenset(
    {
        "RequestThrottled",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "KmsThrottled",
    }
)
_TIMEOUT_CODES = frozenset({"Timeout", "RequestTimeout", "RequestTimeoutException"})


@dataclass(frozen=True, slots=True)
class Congestion:
    """A failure that asks for fewer requests in flight: why, and the share kept."""

    reason: str
    keep: float


def congestion_cause(code: str, retryable: bool) -> Congestion | None:
    """Why a failed request says the queue wants less, or None if it does not.

    Throttling codes, timeouts and any other retryable failure (5xx, internal
    errors, lost connections) are congestion; a refusal of what was sent
    (``retryable`` false: bad credentials, a too-large message) is not.
    """
    if code in THROTTLING_CODES:
        return Congestion(f"throttled ({code})", DECREASE_THROTTLED)
    if code in _TIMEOUT_CODES:
        return Congestion("timeout", DECREASE_OTHER)
    if retryable:
        return Congestion(f"server error ({code})" if code else "server error", DECREASE_OTHER)
    return None


@dataclass(frozen=True, slots=True)
class Change:
    """One change of the limit, and why."""

    before: int
    after: int
    reason: str

    def __str__(self) -> str:
        return f"send concurrency {self.before} -> {self.after}: {self.reason}"


class ConcurrencyController:
    """Decides how many requests may be in flight, within ``1..ceiling``.

    ``adaptive=False`` keeps the limit at ``ceiling`` whatever happens (the
    sender pool still backs off by its retry delays).
    """

    def __init__(
        self, ceiling: int, *, initial: int | None = None, adaptive: bool = True
    ) -> None:
        if ceiling < 1:
            raise ValueError(f"ceiling must be at least 1, got {ceiling}")
        self.ceiling = ceiling
        self.adaptive = adaptive
        start = ceiling if not adaptive else min(ceiling, initial or INITIAL_LIMIT)
        self.limit = max(1, start)
        self.in_flight = 0
        self._starting = adaptive and self.limit < ceiling
        # The current round: when it began, bytes and requests acknowledged in it,
        # and whether the limit was reached (only then does it say anything).
        self._round_start: float | None = None
        self._round_bytes = 0
        self._round_acks = 0
        self._round_saturated = False
        # Throughput of the last round at the previous limit, and of this limit.
        self._rate_before: float | None = None
        self._rate_here: float | None = None
        self._held_rounds = 0
        self._probing = False
        # Signals from requests started before this time were already answered.
        self._decreased_at = float("-inf")

    def __repr__(self) -> str:
        return (
            f"ConcurrencyController(limit={self.limit}, in_flight={self.in_flight}, "
            f"ceiling={self.ceiling}, adaptive={self.adaptive})"
        )

    def can_start(self) -> bool:
        return self.in_flight < self.limit

    def started(self, now: float) -> float:
        """A request starts now; returns its start time, to pass back when it ends."""
        self.in_flight += 1
        if self._round_start is None:
            self._round_start = now
        if self.in_flight >= self.limit:
            self._round_saturated = True
        return now

    def succeeded(self, now: float, started_at: float, size: int) -> Change | None:
        """A request that started at ``started_at`` was acknowledged (``size`` bytes)."""
        self.in_flight -= 1
        if not self.adaptive:
            return None
        if self._round_start is None:
            self._round_start = started_at
        self._round_bytes += size
        self._round_acks += 1
        if self._round_acks < self.limit:
            return None
        return self._end_round(now)

    def congested(self, now: float, started_at: float, cause: Congestion) -> Change | None:
        """A request that started at ``started_at`` failed in a way that asks for less."""
        self.in_flight -= 1
        if not self.adaptive or started_at < self._decreased_at:
            return None
        before = self.limit
        self.limit = max(1, int(before * cause.keep))
        self._starting = self._probing = False
        self._decreased_at = now
        self._rate_before = self._rate_here = None
        self._new_round(now)
        if self.limit == before:
            return None
        return Change(before, self.limit, f"{cause.reason}; backing off")

    def ended(self, now: float, started_at: float) -> None:
        """A request ended without saying anything about the queue's capacity."""
        self.in_flight -= 1

    def answered(
        self, now: float, started_at: float, *, acked: int, code: str | None, retryable: bool
    ) -> Change | None:
        """A request was answered: ``acked`` bytes acknowledged, and ``code`` (None
        if nothing failed) the failure that tells most about the queue's capacity."""
        if code is None:
            return self.succeeded(now, started_at, acked)
        cause = congestion_cause(code, retryable)
        if cause is None:
            self.ended(now, started_at)
            return None
        return self.congested(now, started_at, cause)

    # -- rounds --------------------------------------------------------------------

    def _new_round(self, now: float) -> None:
        self._round_start = now
        self._round_bytes = 0
        self._round_acks = 0
        self._round_saturated = self.in_flight >= self.limit

    def _end_round(self, now: float) -> Change | None:
        assert self._round_start is not None
        elapsed = now - self._round_start
        rate = self._round_bytes / elapsed if elapsed > 0 else float("inf")
        saturated = self._round_saturated
        change: Change | None = None
        if saturated:
            change = self._start_round(rate) if self._starting else self._steady_round(rate)
        # Otherwise the limit did not bind (the writer was slower than the
        # network): the round says nothing about another limit.
        self._new_round(now)
        return change

    def _start_round(self, rate: float) -> Change | None:
        previous = self._rate_before
        if previous is not None and rate < previous * (1 + START_GROWTH):
            # Doubling did not pay: hold here and continue additively.
            self._starting = False
            self._rate_here = rate
            self._held_rounds = 0
            return None
        self._rate_before, self._rate_here = rate, None
        after = min(self.ceiling, self.limit * 2)
        self._starting = after < self.ceiling
        growth = "first round" if previous is None else f"throughput up {_growth(rate, previous)}"
        return self._set(after, f"{growth} at {self.limit} in flight; doubling")

    def _steady_round(self, rate: float) -> Change | None:
        if self._rate_here is None:
            # The first round at this limit: compare it with the previous limit's.
            before, probing = self._rate_before, self._probing
            self._rate_here, self._probing, self._held_rounds = rate, False, 0
            if before is None:  # nothing to compare with (after a decrease): try one more
                self._rate_before, self._rate_here = rate, None
                return self._set(self.limit + 1, f"recovering at {self.limit} in flight")
            if rate >= before * (1 + 1 / (2 * self.limit)):
                self._rate_before, self._rate_here = rate, None
                return self._set(
                    self.limit + 1, f"throughput up {_growth(rate, before)} at {self.limit}"
                    " in flight"
                )
            if probing:  # one more did not help: back to where throughput was as good
                self._rate_here = before
                return self._set(self.limit - 1, "probe did not raise throughput")
            return None
        self._rate_here = max(self._rate_here, rate)
        self._held_rounds += 1
        if self._held_rounds < PROBE_ROUNDS or self.limit >= self.ceiling:
            return None
        self._rate_before, self._rate_here = self._rate_here, None
        self._probing = True
        return self._set(self.limit + 1, f"probing: throughput flat for {PROBE_ROUNDS} rounds")

    def _set(self, limit: int, reason: str) -> Change | None:
        limit = max(1, min(self.ceiling, limit))
        if limit == self.limit:
            return None
        change = Change(self.limit, limit, reason)
        self.limit = limit
        return change


def _growth(rate: float, before: float) -> str:
    return f"{rate / before - 1:.0%}" if before > 0 else "from nothing"
