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
import sys
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, TypedDict, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

from .._engine.events import EventEmitter, Handler
from ..errors import MetadataNotSupportedException, PanoplyException, WrongTypeOrValueError
from ._incremental import stream_error
from ._secrets import config_secret_names, secret_values
from ._streams import StreamReader, StreamSpec, StreamState, select_streams, spec_from_resource

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


class _MetadataBase(TypedDict):
    resource_id: str
    #: ISO 8601 in UTC with milliseconds, e.g. ``2024-05-01T12:00:00.000Z``
    timestamp: str


class Metadata(_MetadataBase, total=False):
    """Where the records of a :class:`RecordGroup` come from, and when."""

    #: the stream the records were read from, for sources that declare streams
    stream: str


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
        self._streams: StreamReader | None = None
        self._bind_loop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(type={self.source.get('type')!r})"

    # -- the connector's part -------------------------------------------------------

    #: the streams this source offers; a source that declares them implements
    #: :meth:`read_stream` instead of :meth:`read` (see docs/connectors.md)
    streams: ClassVar[Sequence[StreamSpec]] = ()

    async def read(self, n: int | None = None) -> AsyncIterator[Any]:
        """Yield batches of records: lists of dicts, or :class:`RecordGroup`.

        ``n`` is a hint for the batch size. A retry (see :meth:`SDK.ingest`)
        calls ``read()`` again on the same instance: keep your position on
        ``self`` to resume rather than restart.

        For a source that implements :meth:`read_stream`, the base implementation
        reads the selected streams; otherwise it raises a non-retryable
        ``PanoplyException``.
        """
        if type(self).read_stream is DataSource.read_stream:
            raise PanoplyException(
                f"{type(self).__name__} must implement read(): an async generator yielding "
                "batches (lists of dicts or RecordGroups), or read_stream() for its streams",
                retryable=False,
            )
        if self._streams is None:
            self._streams = StreamReader(self)
        async for batch in self._streams.batches():
            yield batch

    async def read_stream(self, stream: StreamSpec, state: StreamState) -> AsyncIterator[Any]:
        """Yield the batches (lists of dicts) of ``stream``, one of the selected streams.

        ``state.start_value`` is where an incremental stream starts (its cursor,
        or its ``initial_value``); set ``state.position`` before yielding a batch
        to where the stream continues after it. Not implemented by default.
        """
        raise PanoplyException(f"{type(self).__name__} does not implement read_stream()",
                               retryable=False)
        yield  # pragma: no cover - makes this an async generator

    async def catalog(self) -> list[StreamSpec]:
        """The streams this source offers: :attr:`streams`, else its legacy
        :meth:`list_resources` read as full-refresh streams, else none."""
        if self.streams:
            return list(self.streams)
        listing: Any = self.list_resources
        try:
            # Some legacy connectors take the source only.
            inspect.signature(listing).bind(self.source, self.options)
            args: tuple[Any, ...] = (self.source, self.options)
        except TypeError:
            args = (self.source,)
        except ValueError:  # no signature to read: call it the documented way
            args = (self.source, self.options)
        try:
            if inspect.iscoroutinefunction(listing):
                resources: Any = await listing(*args)
            else:  # a legacy plain method may block on the network
                resources = await anyio.to_thread.run_sync(lambda: listing(*args))
        except MetadataNotSupportedException:
            return []
        return [spec_from_resource(resource) for resource in resources or []]

    async def select_streams(self, names: Sequence[str]) -> list[StreamSpec]:
        """Read only the streams ``names`` (checked against :meth:`catalog`).

        A source without ``read_stream`` (a legacy one listing resources) gets
        them as its ``resources`` param. Raises :class:`~panoply_async.errors.StreamError`
        for a name the catalog lacks, or when the source offers no streams.
        """
        specs = await self.catalog()
        if not specs:
            raise stream_error(f"{type(self).__name__} offers no streams (no `streams`, no "
                               "list_resources()): there is nothing to select")
        chosen = select_streams(specs, names)
        if type(self).read_stream is DataSource.read_stream:
            self.source["resources"] = list(names)
        else:
            self.options["streams"] = list(names)
        return chosen

    async def check(self) -> str | None:
        """Test the connection (credentials, reachability) without reading records.

        Raise (a :class:`~panoply_async.errors.PanoplyException` with a clear
        message) when it fails; return an optional line saying what was checked.
        ``panoply-async check`` calls it on an open source. The base does nothing.
        """
        return None

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
        module = sys.modules.get(type(self).__module__)
        return secret_values(self.source, config_secret_names(getattr(module, "CONFIG", None)))

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
