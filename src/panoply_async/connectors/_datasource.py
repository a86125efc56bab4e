"""The connector framework: ``DataSource``, records, resources.

A connector module exposes ``Stream`` (a :class:`DataSource` subclass) and
``CONFIG`` (see :mod:`panoply_async.connectors._contract`). ``read(n)`` is an async
generator of batches (lists of dicts, or :class:`RecordGroup`);
``progress()``, ``state()`` and ``log()`` report to whoever runs it
(:meth:`SDK.ingest`, the ``panoply-async`` command), through events.

Legacy connectors, whose ``read(n)`` (or ``read()``) is a plain method returning
a list (or ``None`` at the end), keep working: the runner calls them in a thread
of their own (see :mod:`panoply_async._engine.legacy_read`), and the reporting helpers are
safe to call from there.
"""

from __future__ import annotations

import base64
import datetime
import inspect
import logging
import re
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from types import TracebackType
from typing import Any, TypedDict, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

from .._engine.events import EventEmitter, Handler
from ..errors import MetadataNotSupportedException, PanoplyException, WrongTypeOrValueError

__all__ = [
    "MASK",
    "DataSource",
    "Field",
    "Metadata",
    "RecordGroup",
    "Resource",
    "is_legacy_reader",
    "to_record",
]

#: what :meth:`DataSource.log` writes instead of a secret value
MASK = "***"
# Source keys whose values are credentials, by their name.
_SECRET_KEY = re.compile(r"password|token|secret|key", re.IGNORECASE)
# Numbers this short are masked only when a CONFIG param marks them secret:
# masking every "1" in every message would make logs unreadable.
_MIN_NUMBER_SECRET = 4

_DS = TypeVar("_DS", bound="DataSource")


class _FieldBase(TypedDict):
    name: str


class Field(_FieldBase, total=False):
    """A field of a :class:`Resource` (legacy ``PanoplyField``)."""

    type: str | None
    is_mandatory: bool | None
    is_available: bool | None


class _ResourceBase(TypedDict):
    id: str
    title: str


class Resource(_ResourceBase, total=False):
    """Something a connector can read, as :meth:`DataSource.list_resources`
    describes it (legacy ``PanoplyResource``)."""

    fields: list[Field] | None
    available: bool | None
    required: bool | None
    requires: list[str] | None


class Metadata(TypedDict):
    """Where the records of a :class:`RecordGroup` come from, and when."""

    resource_id: str
    #: ISO 8601 in UTC with milliseconds, e.g. ``2024-05-01T12:00:00.000Z``
    timestamp: str


class RecordGroup(TypedDict):
    """Records of one resource: ``data`` goes to the table ``metadata["resource_id"]``
    (the legacy ``PanoplyRecordGroup`` shape)."""

    data: list[dict[str, Any]]
    metadata: Metadata


def _utc_timestamp() -> str:
    # The legacy SDK stamped local time with a "Z"; this is really UTC.
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return now.isoformat(timespec="milliseconds") + "Z"


def to_record(resource: str, data: Mapping[str, Any] | list[Mapping[str, Any]]) -> RecordGroup:
    """Wrap ``data`` (a dict, or a list of dicts) as a :class:`RecordGroup` of ``resource``.

    Raises :class:`~panoply_async.errors.WrongTypeOrValueError` (a
    ``TypeError`` and a ``ValueError``) when ``resource`` is not a non-empty
    string or ``data`` is not a dict or a list of dicts. Unlike the legacy SDK,
    which looked at the first item only, every item of a list is checked.
    """
    if not isinstance(resource, str) or not resource.strip():
        raise WrongTypeOrValueError(f"`resource` must be a non-empty string, got {resource!r}")
    if isinstance(data, Mapping):
        records = [dict(data)]
    elif isinstance(data, list):
        for index, item in enumerate(data):
            if not isinstance(item, Mapping):
                raise WrongTypeOrValueError(
                    f"item {index} of the data of {resource!r} is a {type(item).__name__}, "
                    "not a dict"
                )
        records = [item if isinstance(item, dict) else dict(item) for item in data]
    else:
        raise WrongTypeOrValueError(
            f"the data of {resource!r} must be a dict or a list of dicts, "
            f"not {type(data).__name__}"
        )
    return RecordGroup(data=records, metadata=Metadata(resource_id=resource,
                                                       timestamp=_utc_timestamp()))


def is_legacy_reader(source: DataSource) -> bool:
    """True when ``source.read`` is a plain method (the legacy protocol: a list
    per call, ``None`` at the end), False when it is an async generator.

    An ``async def read`` that returns instead of yielding is neither: it is
    reported as not legacy here, and :func:`~panoply_async.connectors._contract.check_connector`
    refuses it.
    """
    read = source.read
    return not (inspect.isasyncgenfunction(read) or inspect.iscoroutinefunction(read))


class DataSource:
    """Base class of connectors. Subclass it as ``Stream`` and implement :meth:`read`.

    ``source`` is the connector's configuration (its ``CONFIG["params"]``
    values, plus ``type``, ``destination``, ``state``, ...), kept as the very
    dict passed in so that changes (a refreshed token) are visible to the
    caller; ``options`` are run options (a copy).

    Usable as ``async with Stream(source) as ds: ...``, which calls
    :meth:`close` at the end.
    """

    def __init__(self, source: dict[str, Any], options: Mapping[str, Any] | None = None) -> None:
        if not isinstance(source, dict):
            raise TypeError(f"source must be a dict, not {type(source).__name__}")
        self.source = source
        self.options: dict[str, Any] = dict(options or {})
        self._events = EventEmitter()
        self._logger = logging.getLogger(f"panoply_async.datasource.{type(self).__name__}")
        # The event loop this data source is used from, learnt at the first
        # call made on it, so that a thread the connector started itself can
        # still hand events over to it.
        self._loop_token: Any = None
        self._loop_thread: int | None = None
        self._bind_loop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(type={self.source.get('type')!r})"

    # -- the connector's part -------------------------------------------------------

    async def read(self, n: int | None = None) -> AsyncIterator[Any]:
        """Yield batches of records: lists of dicts, or :class:`RecordGroup`.

        ``n`` is a hint for the batch size. A retry (see :meth:`SDK.ingest`)
        calls ``read()`` again on the same instance: keep your position on
        ``self`` to resume rather than restart.

        The base implementation raises a non-retryable ``PanoplyException``.
        """
        raise PanoplyException(
            f"{type(self).__name__} must implement read(): an async generator yielding "
            "batches (lists of dicts or RecordGroups)",
            retryable=False,
        )
        yield  # pragma: no cover - makes this an async generator

    async def close(self) -> None:
        """Release what the connector holds (connections, files); always called
        after a run. The base implementation does nothing."""

    async def __aenter__(self: _DS) -> _DS:
        self._bind_loop()
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
        cls, source: dict[str, Any], options: Mapping[str, Any] | None = None
    ) -> list[Resource]:
        """The resources this connector can read with ``source`` (they may depend
        on the user's permissions).

        Not supported unless overridden: raises
        :class:`~panoply_async.errors.MetadataNotSupportedException`, a
        non-retryable ``PanoplyException``.
        """
        raise MetadataNotSupportedException(
            f"{cls.__name__}: `list_resources` is not supported", retryable=False
        )

    @classmethod
    async def get_resource(
        cls, resource_id: str, source: dict[str, Any], options: Mapping[str, Any] | None = None
    ) -> Resource:
        """The resource ``resource_id``, with its fields.

        Not supported unless overridden: raises
        :class:`~panoply_async.errors.MetadataNotSupportedException`, a
        non-retryable ``PanoplyException``.
        """
        raise MetadataNotSupportedException(
            f"{cls.__name__}: `get_resource` is not supported", retryable=False
        )

    # -- reporting ------------------------------------------------------------------

    def progress(self, loaded: float | None, total: float | None, msg: str = "") -> None:
        """Report progress: event ``progress`` with ``{"loaded", "total", "msg"}``
        (the legacy payload). Call it at least once per batch."""
        self.fire("progress", {"loaded": loaded, "total": total, "msg": msg})

    def state(self, state_id: Any, state: Any) -> None:
        """Report a resumable state: event ``source-state`` with
        ``{"state_id", "state"}`` (plus the legacy key ``"stateId"``).

        Tag the records it covers with ``"__state": state_id``; the runner
        commits the state only once they, and everything read before, were
        acknowledged by SQS.
        """
        self.fire("source-state", {"state_id": state_id, "stateId": state_id, "state": state})

    def raw(self, tag: str, raw: bytes | str, metadata: Any = None) -> dict[str, Any]:
        """Wrap a raw payload (an API response, a file) as the legacy raw object
        ``{"type": "raw", "tag", "raw", "metadata"}``, ``raw`` base64-encoded.

        Like the legacy method it fires no event: return (or yield) the object
        as a record. ``str`` payloads are encoded as UTF-8 first; the base64
        text is a ``str`` so that the object serialises as JSON.
        """
        payload = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
        return {
            "type": "raw",
            "tag": tag,
            "raw": base64.b64encode(payload).decode("ascii"),
            "metadata": metadata,
        }

    def log(self, *msgs: Any) -> None:
        """Log ``msgs``, joined by spaces, at INFO on the logger
        ``panoply_async.datasource.<ClassName>``.

        Secrets are masked (see :meth:`mask`). When ``options["logger"]`` is a
        callable (the legacy hook) it is called too, with the masked messages.
        """
        masked = tuple(self.mask(str(m)) for m in msgs)
        self._logger.info("%s", " ".join(masked))
        hook = self.options.get("logger")
        if callable(hook):
            hook(masked)

    def mask(self, text: str) -> str:
        """``text`` with every secret value of the source replaced by ``***``.

        Secret values are those of ``source`` keys (at any depth) whose name
        contains ``password``, ``token``, ``secret`` or ``key`` (any case), and
        of the params that the connector module's ``CONFIG`` marks
        ``"secret": True`` or ``"type": "password"``.
        """
        for value in sorted(self._secret_values(), key=len, reverse=True):
            text = text.replace(value, MASK)
        return text

    def _secret_values(self) -> set[str]:
        values: set[str] = set()
        for name in self._config_secret_names():
            _collect(self.source.get(name), values, min_number=1)
        for name, value in _walk_named(self.source):
            if _SECRET_KEY.search(name):
                _collect(value, values, min_number=_MIN_NUMBER_SECRET)
        return values

    def _config_secret_names(self) -> set[str]:
        config = getattr(sys.modules.get(type(self).__module__), "CONFIG", None)
        names: set[str] = set()
        if not isinstance(config, Mapping):
            return names
        params = config.get("params")
        if not isinstance(params, list):
            return names
        for param in params:
            if not isinstance(param, Mapping) or not isinstance(param.get("name"), str):
                continue
            if param.get("secret") is True or str(param.get("type", "")).lower() == "password":
                names.add(param["name"])
        return names

    # -- events ---------------------------------------------------------------------

    def on(self: _DS, name: str, handler: Handler) -> _DS:
        """Call ``handler(data)`` whenever event ``name`` fires; ``"*"`` handlers
        get ``(name, data)``. Returns ``self`` so that calls chain.

        Events: ``progress``, ``source-state``, ``source-change``, and any name a
        connector passes to :meth:`fire`. Handlers are plain functions, run on
        the event loop's thread even when the connector reports from a worker
        thread; one that raises is logged and ignored.
        """
        self._bind_loop()
        self._events.on(name, handler)
        return self

    def fire(self, name: str, data: Any) -> None:
        """Call the handlers of ``name`` (and ``"*"``) with ``data``.

        Safe from any thread: called from a thread other than the event loop's
        (a legacy connector's worker thread, or a thread it started itself)
        it hands the call to the loop and waits for it; with no event loop at
        all (plain synchronous use) it calls the handlers directly.
        """
        if self._bind_loop():
            self._events.emit(name, data)
            return
        if threading.get_ident() == self._loop_thread:
            # The loop's own thread outside any task (a loop callback): running
            # the handlers here is safe, waiting for the loop would deadlock.
            self._events.emit(name, data)
            return
        try:
            # An AnyIO worker thread (a plain close(), a background call) knows its loop.
            anyio.from_thread.run_sync(self._events.emit, name, data)
            return
        except RuntimeError:
            pass
        if self._loop_token is not None:
            try:
                # A legacy read()'s thread, or one the connector started itself:
                # use the loop learnt earlier.
                anyio.from_thread.run_sync(self._events.emit, name, data,
                                           token=self._loop_token)
                return
            except RuntimeError:
                pass  # that loop has closed
        # No loop to hand over to: plain synchronous use.
        self._events.emit(name, data)

    def _bind_loop(self) -> bool:
        """Remember the running event loop, if this thread runs one; True if so."""
        try:
            anyio.get_current_task()
            token = anyio.lowlevel.current_token()
        except RuntimeError:
            return False
        self._loop_token = token
        self._loop_thread = threading.get_ident()
        return True


def _walk_named(value: Any, depth: int = 0) -> Iterator[tuple[str, Any]]:
    """(key, value) of every mapping inside ``value``, at any depth."""
    if depth > 8:  # guards against self-referencing sources
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key), item
            yield from _walk_named(item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _walk_named(item, depth + 1)


def _collect(value: Any, into: set[str], *, min_number: int) -> None:
    """Add the strings that ``value`` (a str, number, or container of them) shows."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, str):
        if value:
            into.add(value)
    elif isinstance(value, bytes):
        if value:
            into.add(value.decode("utf-8", "replace"))
    elif isinstance(value, (int, float)):
        text = str(value)
        if len(text) >= min_number:
            into.add(text)
    elif isinstance(value, Mapping):
        for item in value.values():
            _collect(item, into, min_number=min_number)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            _collect(item, into, min_number=min_number)

