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
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .._engine.sdk import SDK
from .._version import __version__

try:
    from opentelemetry import metrics as otel
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        "panoply_async.metrics needs the OpenTelemetry API: "
        "pip install 'panoply-async[otel]'",
        name=exc.name,
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

@dataclass(eq=False)
class Instrumentation:
    """One SDK reported by :func:`instrument`; :meth:`close` stops reporting it."""

    sdk: SDK
    attributes: dict[str, str]
    closed: bool = False

    def close(self) -> None:
        """Stop reporting this SDK: it leaves the instruments' callbacks, and its event
        handler records nothing more (the SDK offers no way to remove a handler)."""
        self.closed = True
        _registry.pop(self)

    def observe(self, name: str) -> int:
        """The current value behind counter or gauge ``name``."""
        sdk = self.sdk
        if name in COUNTERS:
            return int(getattr(sdk.stats, COUNTERS[name][0]))
        if name == "panoply.sdk.buffer.size":
            return sdk.buffered_bytes
        if name == "panoply.sdk.send.in_flight":
            return sdk.stats.requests_in_flight
        if name == "panoply.sdk.send.concurrency_limit":
            return sdk.stats.send_concurrency
        return _directory_bytes(sdk.config.wal_dir)


class _Instruments:
    """The instruments of one meter provider, shared by every SDK reported through it:
    OpenTelemetry keeps the first instrument of a name, so a second set would be
    ignored. Each callback observes every SDK, told apart by its attributes."""

    def __init__(self, meter: otel.Meter) -> None:
        self.handles: list[Instrumentation] = []
        for name, (_stat, unit, description) in COUNTERS.items():
            meter.create_observable_counter(
                name, [self._callback(name)], unit=unit, description=description
            )
        for name, (unit, description) in GAUGES.items():
            meter.create_observable_gauge(
                name, [self._callback(name)], unit=unit, description=description
            )
        self.send_duration, self.latency = (
            meter.create_histogram(name, unit=unit, description=description)
            for name, (unit, description) in HISTOGRAMS.items()
        )

    def _callback(
        self, name: str
    ) -> Callable[[otel.CallbackOptions], Iterable[otel.Observation]]:
        def callback(options: otel.CallbackOptions) -> Iterable[otel.Observation]:
            return [otel.Observation(h.observe(name), h.attributes) for h in list(self.handles)]

        return callback


class _Registry:
    """Meter provider -> its :class:`_Instruments`; handle -> its instruments."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._instruments: weakref.WeakKeyDictionary[otel.MeterProvider, _Instruments] = (
            weakref.WeakKeyDictionary()
        )
        self._owners: dict[Instrumentation, _Instruments] = {}

    def add(self, provider: otel.MeterProvider, handle: Instrumentation) -> _Instruments:
        with self._lock:
            instruments = self._instruments.get(provider)
            if instruments is None:
                meter = provider.get_meter(METER_NAME, __version__)
                instruments = self._instruments[provider] = _Instruments(meter)
            instruments.handles.append(handle)
            self._owners[handle] = instruments
            return instruments

    def pop(self, handle: Instrumentation) -> None:
        with self._lock:
            instruments = self._owners.pop(handle, None)
            if instruments is not None:
                instruments.handles.remove(handle)


_registry = _Registry()


def instrument(
    sdk: SDK,
    *,
    meter_provider: otel.MeterProvider | None = None,
    attributes: Mapping[str, str] | None = None,
) -> Instrumentation:
    """Report ``sdk``'s counters, gauges and latencies through OpenTelemetry.

    ``meter_provider`` defaults to the global one (``opentelemetry.metrics``).
    Every observation carries ``panoply.account`` and the given ``attributes``
    (give two SDKs of one account different ones). Call it once per SDK, before
    or after entering its block, and ``close()`` the result when the SDK is
    gone; see docs/web-services.md for the instrument names and a Prometheus
    exporter.
    """
    if not isinstance(sdk, SDK):
        raise TypeError(f"instrument() takes an SDK, not {type(sdk).__name__}")
    if attributes is not None and not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
    ):
        raise TypeError("attributes must map str to str")
    provider = meter_provider if meter_provider is not None else otel.get_meter_provider()
    handle = Instrumentation(sdk, {"panoply.account": sdk.account, **(attributes or {})})
    instruments = _registry.add(provider, handle)

    def on_flush(data: Mapping[str, Any]) -> None:
        if handle.closed:
            return
        if "seconds" in data:
            instruments.send_duration.record(data["seconds"], handle.attributes)
        for age in data.get("ages", ()):
            instruments.latency.record(age, handle.attributes)

    sdk.on("flush", on_flush)
    return handle


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
