"""Live delivery counters, shared by the write path, delivery and replay."""

from __future__ import annotations

__all__ = ["Stats"]


class Stats:
    """Live counters.

    ``records_accepted == records_delivered + records_spooled + records_failed +
    records_pending`` holds at every moment (``records_pending`` is counted on
    its own, from the buffers, not derived); ``records_failed`` stays 0 whenever
    a spool is configured, and ``records_pending`` is 0 after the block.
    ``records_spooled`` is what this SDK's spool holds now: records that the SDK
    drained back from it once SQS answered again move to ``records_delivered``
    and are also counted in ``records_unspooled``.
    """

    __slots__ = (
        "bytes_sent",
        "messages_failed",
        "messages_replayed",
        "messages_sent",
        "messages_spooled",
        "messages_unspooled",
        "records_accepted",
        "records_delivered",
        "records_failed",
        "records_pending",
        "records_recovered",
        "records_rejected",
        "records_replayed",
        "records_shed",
        "records_spooled",
        "records_unspooled",
        "requests",
        "requests_in_flight",
        "retries",
        "send_concurrency",
        "throttles",
    )

    def __init__(self) -> None:
        self.records_accepted = 0
        self.records_delivered = 0
        self.records_spooled = 0
        self.records_failed = 0
        #: records drained back from this SDK's spool (now in records_delivered)
        self.records_unspooled = 0
        #: accepted records still in the open message, queued or in flight
        self.records_pending = 0
        self.records_rejected = 0
        #: records ``write_nowait()`` refused because the buffer was full (not accepted)
        self.records_shed = 0
        self.records_replayed = 0
        #: records a previous process left in the write-ahead log, sent again
        self.records_recovered = 0
        self.messages_sent = 0
        self.messages_spooled = 0
        self.messages_failed = 0
        self.messages_unspooled = 0
        self.messages_replayed = 0
        self.requests = 0
        #: requests sent and not answered yet
        self.requests_in_flight = 0
        self.retries = 0
        #: answers that asked to slow down (SQS throttling codes)
        self.throttles = 0
        self.bytes_sent = 0
        #: requests allowed in flight now (the adaptive controller's limit)
        self.send_concurrency = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in self.as_dict().items())
        return f"Stats({fields})"
