"""OpenTelemetry metrics for an :class:`~panoply_async.SDK` (the ``otel`` extra).

``instrument(conn)`` registers instruments on an OpenTelemetry meter:

* counters and gauges are *observable*: their callbacks read ``conn.stats`` and
  the buffer only when a reader collects, so the write path pays nothing;
* the two histograms are fed by a plain ``flush`` event handler, which runs
  inside the sender task (docs/sdk.md, "Events") with the request's duration and
  its messages' ages: a few microseconds per request, nothing per record.

Only the OpenTelemetry *API* is used. With no OpenTelemetry SDK configured the
meter is a no-op: callbacks are never called and recordings are dropped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .._engine.sdk import SDK
from .._version import __version__

try:
    from opentelemetry import metrics as otel
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "panoply_async.metrics needs the OpenTelemetry API: "
        "pip install 'panoply-async[otel]'"
    ) from exc

__all__ = ["COUNTERS", "GAUGES", "HISTOGRAMS", "Instrumentation", "instrument"]

METER_NAME = "panoply_async"

#: counter name -> (``Stats`` attribute, unit, description)
COUNTERS: dict[str, tuple[str, str, str]] = {
    "panoply.sdk.records.accepted": (
        "records_accepted", "{record}", "records accepted by write()"),
    "panoply.sdk.records.delivered": (
        "records_delivered", "{record}", "records acknowledged by SQS"),
    "panoply.sdk.records.spooled": (
        "records_spooled", "{record}", "records given up on and written to the spool"),
    "panoply.sdk.records.failed": (
        "records_failed", "{record}", "records given up on with no spool configured"),
    "panoply.sdk.records.shed": (
        "records_shed", "{record}", "records refused by a non-waiting write (buffer full)"),
    "panoply.sdk.send.requests": ("requests", "{request}", "requests sent to SQS"),
    "panoply.sdk.send.retries": ("retries", "{request}", "requests sent again after a failure"),
    "panoply.sdk.send.throttles": (
        "throttles", "{request}", "answers that asked to slow down (throttling)"),
}

#: gauge name -> (unit, description)
GAUGES: dict[str, tuple[str, str]] = {
    "panoply.sdk.buffer.size": ("By", "bytes accepted and not yet finished"),
    "panoply.sdk.send.in_flight": ("{request}", "requests sent and not answered yet"),
    "panoply.sdk.send.concurrency_limit": ("{request}", "requests allowed in flight now"),
    "panoply.sdk.wal.size": ("By", "disk space of the write-ahead log (wal_dir)"),
}

#: histogram name -> (unit, description)
HISTOGRAMS: dict[str, tuple[str, str]] = {
    "panoply.sdk.send.duration": ("s", "duration of a request that SQS acknowledged"),
    "panoply.sdk.delivery.latency": (
        "s", "per message: from its first record's write() to its acknowledgement"),
}

@dataclass
class Instrumentation:
    """What :func:`instrument` registered; :meth:`close` stops reporting."""

    sdk: SDK
    attributes: dict[str, str]
    closed: bool = False

    def close(self) -> None:
        """Stop reporting: callbacks observe nothing and handlers record nothing.

        (The OpenTelemetry API cannot remove instruments or event handlers.)"""
        self.closed = True


def instrument(
    sdk: SDK,
    *,
    meter_provider: otel.MeterProvider | None = None,
    attributes: Mapping[str, str] | None = None,
) -> Instrumentation:
    """Report ``sdk``'s counters, gauges and latencies through OpenTelemetry.

    ``meter_provider`` defaults to the global one (``opentelemetry.metrics``).
    Every observation carries ``panoply.account`` and the given ``attributes``.
    Call it once per SDK, before or after entering its block; see
    docs/web-services.md for the instrument names and a Prometheus exporter.
    """
    if not isinstance(sdk, SDK):
        raise TypeError(f"instrument() takes an SDK, not {type(sdk).__name__}")
    if attributes is not None and not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
    ):
        raise TypeError("attributes must map str to str")
    provider = meter_provider if meter_provider is not None else otel.get_meter_provider()
    meter = provider.get_meter(METER_NAME, __version__)
    handle = Instrumentation(sdk, {"panoply.account": sdk.account, **(attributes or {})})

    for name, (stat, unit, description) in COUNTERS.items():
        meter.create_observable_counter(
            name, [_observe(handle, _stat_reader(sdk, stat))], unit=unit,
            description=description,
        )
    readers: dict[str, Callable[[], int]] = {
        "panoply.sdk.buffer.size": lambda: sdk.buffered_bytes,
        "panoply.sdk.send.in_flight": _stat_reader(sdk, "requests_in_flight"),
        "panoply.sdk.send.concurrency_limit": _stat_reader(sdk, "send_concurrency"),
        "panoply.sdk.wal.size": lambda: _directory_bytes(sdk.config.wal_dir),
    }
    for name, (unit, description) in GAUGES.items():
        meter.create_observable_gauge(
            name, [_observe(handle, readers[name])], unit=unit, description=description
        )

    send_duration = meter.create_histogram(
        "panoply.sdk.send.duration", unit="s",
        description=HISTOGRAMS["panoply.sdk.send.duration"][1],
    )
    latency = meter.create_histogram(
        "panoply.sdk.delivery.latency", unit="s",
        description=HISTOGRAMS["panoply.sdk.delivery.latency"][1],
    )

    def on_flush(data: Mapping[str, Any]) -> None:
        if handle.closed:
            return
        if "seconds" in data:
            send_duration.record(data["seconds"], handle.attributes)
        for age in data.get("ages", ()):
            latency.record(age, handle.attributes)

    sdk.on("flush", on_flush)
    return handle


def _stat_reader(sdk: SDK, name: str) -> Callable[[], int]:
    stats = sdk.stats
    # ``records_shed`` comes with the non-waiting write (issue 20.6): where the SDK does
    # not count it yet, it reads 0 rather than failing the whole collection.
    return lambda: int(getattr(stats, name, 0))


def _observe(
    handle: Instrumentation, read: Callable[[], int]
) -> Callable[[otel.CallbackOptions], Iterable[otel.Observation]]:
    def callback(options: otel.CallbackOptions) -> Iterable[otel.Observation]:
        if handle.closed:
            return []
        return [otel.Observation(read(), handle.attributes)]

    return callback


def _directory_bytes(path: str | os.PathLike[str] | None) -> int:
    """Bytes of the files under ``path`` (0 without one): the log's disk space,
    whatever its layout of segments and slots."""
    if path is None:
        return 0
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:  # a segment retired while we walked
                continue
    return total
