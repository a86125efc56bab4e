"""The connector framework: ``DataSource``, records, resources.

A connector module exposes ``Stream`` (a :class:`DataSource` subclass) and
``CONFIG``. ``read(n)`` is an async generator of batches (lists of dicts, or
:class:`RecordGroup`); ``progress()``, ``state()``, ``log()``, ``raw()`` report
to whoever runs it (:meth:`SDK.ingest`, the ``panoply-async`` command).
"""

from __future__ import annotations

import datetime
import inspect
import logging
import re
import sys
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, TypedDict

import anyio
import anyio.from_thread

from ._events import EventEmitter, Handler
from .errors import PanoplyException

__all__ = [
    "DataSource",
    "Field",
    "Metadata",
    "RecordGroup",
    "Resource",
    "is_legacy_reader",
    "to_record",
]

MASK = "***"
DATASOURCE_EVENTS = frozenset({"progress", "source-state", "source-change", "raw", "*"})
# Source keys whose values are credentials by their name.
_SECRET_KEY = re.compile(r"password|token|secret|key", re.IGNORECASE)


class Field(TypedDict, total=False):
    name: str
    type: str | None
    is_mandatory: bool | None
    is_available: bool | None


class Resource(TypedDict, total=False):
    id: str
    title: str
    fields: list[Field] | None
    available: bool | None
    required: bool | None
    requires: list[str] | None


class Metadata(TypedDict):
    resource_id: str
    timestamp: str


class RecordGroup(TypedDict):
    """Records of one resource: ``data`` goes to the table ``metadata["resource_id"]``."""

    data: list[dict[str, Any]]
    metadata: Metadata


def to_record(resource: str, data: Mapping[str, Any] | list[dict[str, Any]]) -> RecordGroup:
    """Wrap ``data`` (a dict, or a list of dicts) as a :class:`RecordGroup` of ``resource``.

    Raises ``TypeError``/``ValueError`` as the legacy SDK did.
    """
    if not isinstance(resource, str):
        raise TypeError("`resource` must be a string")
    if not resource.strip():
        raise ValueError("`resource` must be a non-empty string")
    if isinstance(data, Mapping):
        records = [dict(data)]
    elif isinstance(data, list):
        bad = next((i for i, item in enumerate(data) if not isinstance(item, Mapping)), None)
        if bad is not None:
            raise TypeError(f"item {bad} of the data is a {type(data[bad]).__name__}, not a dict")
        records = list(data)
    else:
        raise TypeError(f"data must be a dict or a list of dicts, not {type(data).__name__}")
    now = datetime.datetime.now(datetime.timezone.utc)
    return RecordGroup(
        data=records,
        metadata=Metadata(
            resource_id=resource,
            timestamp=now.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z",
        ),
    )


def is_legacy_reader(source: DataSource) -> bool:
    """True when ``read`` is a plain method (the legacy protocol: a list per call,
    None at the end) rather than an async generator."""
    return not inspect.isasyncgenfunction(type(source).read)


class DataSource:
    """Base class of connectors. Subclass it as ``Stream`` and implement ``read()``.

    ``source`` is the connector's configuration (its ``CONFIG["params"]``
    values, plus ``type``, ``destination``, ``state`` ...); ``options`` are
    run options.
    """

    def __init__(self, source: dict[str, Any], options: dict[str, Any] | None = None) -> None:
        if not isinstance(source, dict):
            raise TypeError(f"source must be a dict, not {type(source).__name__}")
        self.source = source
        self.options: dict[str, Any] = dict(options or {})
        self._events = EventEmitter()
        self._logger = logging.getLogger(f"panoply_async.datasource.{type(self).__name__}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(type={self.source.get('type')!r})"

    # -- the connector's part -------------------------------------------------------

    async def read(self, n: int | None = None) -> AsyncIterator[Any]:
        """Yield batches of records: lists of dicts, or :class:`RecordGroup`.

        ``n`` is a hint for the batch size. A retry (see :meth:`SDK.ingest`)
        calls ``read()`` again on the same instance: keep your position on
        ``self`` to resume rather than restart.
        """
        raise PanoplyException(f"{type(self).__name__} must implement read()", retryable=False)
        yield  # pragma: no cover - makes this an async generator

    async def close(self) -> None:
        """Release what the connector holds; always called after a run."""

    async def __aenter__(self) -> DataSource:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @classmethod
    async def list_resources(
        cls, source: dict[str, Any], options: dict[str, Any] | None = None
    ) -> list[Resource]:
        """The resources this connector can read; not supported unless overridden."""
        raise PanoplyException(f"{cls.__name__} does not support list_resources", retryable=False)

    @classmethod
    async def get_resource(
        cls, resource_id: str, source: dict[str, Any], options: dict[str, Any] | None = None
    ) -> Resource:
        """One resource by id; not supported unless overridden."""
        raise PanoplyException(f"{cls.__name__} does not support get_resource", retryable=False)

    # -- reporting ------------------------------------------------------------------

    def progress(self, loaded: float, total: float | None, msg: str = "") -> None:
        """Report progress: event ``progress`` with ``{"loaded", "total", "msg"}``."""
        self.fire("progress", {"loaded": loaded, "total": total, "msg": msg})

    def state(self, state_id: Any, state: Any) -> None:
        """Report a resumable state. Tag records with ``"__state": state_id``; the
        state is committed once they (and everything before) were acknowledged."""
        self.fire("source-state", {"state_id": state_id, "state": state})

    def raw(self, tag: str, raw: Any, metadata: Mapping[str, Any] | None = None) -> None:
        """Report a raw payload (e.g. an API response) for debugging: event ``raw``."""
        self.fire("raw", {"tag": tag, "raw": raw, "metadata": dict(metadata or {})})

    def log(self, *msgs: Any) -> None:
        """Log ``msgs`` (joined by spaces) with secrets masked."""
        text = " ".join(str(m) for m in msgs)
        self._logger.info("%s", self.mask(text))

    def mask(self, text: str) -> str:
        """``text`` with every secret value of the source replaced by ``***``."""
        for value in sorted(self._secret_values(), key=len, reverse=True):
            text = text.replace(value, MASK)
        return text

    def _secret_values(self) -> set[str]:
        names = {name for name in self.source if _SECRET_KEY.search(str(name))}
        config = getattr(sys.modules.get(type(self).__module__), "CONFIG", None)
        if isinstance(config, Mapping):
            for param in config.get("params", []) or []:
                if isinstance(param, Mapping) and (
                    param.get("secret") or str(param.get("type", "")).lower() == "password"
                ):
                    names.add(str(param.get("name")))
        values: set[str] = set()
        for name in names:
            value = self.source.get(name)
            if isinstance(value, (str, int)) and len(str(value)) >= 3:
                values.add(str(value))
        return values

    # -- events ---------------------------------------------------------------------

    def on(self, name: str, handler: Handler) -> DataSource:
        """Register ``handler`` for ``progress``, ``source-state``, ``source-change``,
        ``raw`` or ``"*"``; returns ``self``. Handlers are plain functions."""
        if name not in DATASOURCE_EVENTS:
            raise ValueError(f"unknown data source event {name!r}")
        self._events.on(name, handler)
        return self

    def fire(self, name: str, data: Any) -> None:
        """Call the handlers of ``name``. Safe from a worker thread of a legacy
        connector: the handlers then run on the event loop's thread."""
        try:
            anyio.get_current_task()
        except RuntimeError:
            pass
        else:
            self._events.emit(name, data)
            return
        try:
            anyio.from_thread.run_sync(self._events.emit, name, data)
        except RuntimeError:
            # No event loop at all (plain synchronous use): call them here.
            self._events.emit(name, data)
