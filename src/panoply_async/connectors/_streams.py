"""Streams: what a source offers (its catalog), which ones a run reads, and each one's state.

A :class:`DataSource` that declares ``streams`` (a list of :class:`StreamSpec`)
implements ``read_stream(stream, state)`` instead of ``read()``: the framework
reads the selected streams one after the other, sends each one's records to
its table, and reports after every batch one state holding every stream's
entry, ``{"streams": {name: entry}}``. The pipeline commits that state only
once the batch and everything before it were acknowledged, so each stream's
committed entry never runs ahead of its delivered records.

An entry is a small JSON object:

* ``cursor``: the highest cursor an incremental stream delivered (kept across runs);
* ``position``: where the stream stopped inside a run (a page, a URL), as
  ``read_stream`` set it on :class:`StreamState`; dropped once the run completes;
* ``bookmark``: any JSON value ``read_stream`` keeps from run to run (an API's sync
  token), as it set it on :class:`StreamState`;
* ``done``: the stream completed in a run that did not: a resumed run skips it.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from ._incremental import Incremental, Lag, stream_error

__all__ = [
    "FULL_REFRESH",
    "INCREMENTAL",
    "STREAMS_KEY",
    "StreamReader",
    "StreamSpec",
    "StreamState",
    "catalog_json",
    "requested_streams",
    "select_streams",
    "spec_from_resource",
    "stream_entries",
]

FULL_REFRESH = "full_refresh"
INCREMENTAL = "incremental"
#: the key of the per-stream entries in a source's state
STREAMS_KEY = "streams"
# The entry keys a completed run keeps for the next one.
_KEPT = frozenset({"cursor", "bookmark"})

# Legacy Resource field types, as JSON Schema types.
_JSON_TYPES = {
    "string": "string", "text": "string", "str": "string", "date": "string",
    "datetime": "string", "timestamp": "string", "number": "number", "float": "number",
    "double": "number", "decimal": "number", "integer": "integer", "int": "integer",
    "bigint": "integer", "boolean": "boolean", "bool": "boolean", "object": "object",
    "json": "object", "array": "array", "list": "array",
}


@dataclasses.dataclass(frozen=True)
class StreamSpec:
    """One stream a source offers.

    ``name`` identifies it (``--streams``, the state file); its records go to the
    table ``table`` (default: ``name``). ``primary_key`` names the fields that
    identify a record; ``cursor_field`` makes the stream incremental, starting at
    ``initial_value`` on a first run, reading again ``lag`` back from the last
    cursor (late-arriving rows) and stopping before ``end_value`` (a backfill).
    ``json_schema`` describes a record, when known.
    """

    name: str
    table: str | None = None
    #: a field name or a tuple of them (stored as a tuple)
    primary_key: str | tuple[str, ...] = ()
    cursor_field: str | None = None
    initial_value: Any = dataclasses.field(default=None, hash=False)
    lag: Lag | None = None
    end_value: Any = dataclasses.field(default=None, hash=False)
    json_schema: Mapping[str, Any] | None = dataclasses.field(default=None, hash=False)
    title: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise stream_error(f"a stream name must be a non-empty string, got {self.name!r}")
        if "," in self.name:
            raise stream_error(f"stream name {self.name!r} has a comma: --streams splits on it")
        if self.table is not None and (not isinstance(self.table, str) or not self.table):
            raise stream_error(f"stream {self.name!r}: table must be a non-empty string")
        key: Any = self.primary_key
        if isinstance(key, str):
            key = (key,)
        if not isinstance(key, (tuple, list)) or not all(
                isinstance(k, str) and k for k in key):
            raise stream_error(f"stream {self.name!r}: primary_key must be a field name or "
                              f"a sequence of them, got {self.primary_key!r}")
        object.__setattr__(self, "primary_key", tuple(key))
        if self.cursor_field is not None and (
                not isinstance(self.cursor_field, str) or not self.cursor_field):
            raise stream_error(f"stream {self.name!r}: cursor_field must be a non-empty string")
        if self.cursor_field is None and (self.lag is not None or self.end_value is not None
                                          or self.initial_value is not None):
            raise stream_error(f"stream {self.name!r}: initial_value, lag and end_value need "
                              "a cursor_field")
        if self.json_schema is not None and not isinstance(self.json_schema, Mapping):
            raise stream_error(f"stream {self.name!r}: json_schema must be a dict")

    @property
    def destination(self) -> str:
        """The table this stream's records go to."""
        return self.table or self.name

    @property
    def sync_mode(self) -> str:
        """``"incremental"`` when the stream has a cursor field, else ``"full_refresh"``."""
        return INCREMENTAL if self.cursor_field else FULL_REFRESH

    def incremental(self, last_value: Any = None) -> Incremental | None:
        """A cursor tracker for one run resuming at ``last_value``; None without a cursor field."""
        if self.cursor_field is None:
            return None
        return Incremental(self.cursor_field, self.initial_value, lag=self.lag,
                           end_value=self.end_value, last_value=last_value)

    def as_dict(self) -> dict[str, Any]:
        """The stream as ``discover`` prints it (JSON-ready)."""
        entry: dict[str, Any] = {
            "name": self.name,
            "table": self.destination,
            "sync_mode": self.sync_mode,
            "primary_key": list(self.primary_key),
            "cursor_field": self.cursor_field,
        }
        if self.title:
            entry["title"] = self.title
        if self.initial_value is not None:
            entry["initial_value"] = _jsonable(self.initial_value)
        if self.end_value is not None:
            entry["end_value"] = _jsonable(self.end_value)
        if self.json_schema is not None:
            entry["json_schema"] = dict(self.json_schema)
        return entry


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value


def catalog_json(specs: Sequence[StreamSpec]) -> dict[str, Any]:
    """``{"streams": [...]}``, what ``panoply-async discover`` prints."""
    return {STREAMS_KEY: [spec.as_dict() for spec in specs]}


def spec_from_resource(resource: Mapping[str, Any]) -> StreamSpec:
    """A legacy ``Resource`` (``id``, ``title``, ``fields``) read as a full-refresh stream."""
    fields = resource.get("fields") or []
    schema: dict[str, Any] | None = None
    if fields:
        properties: dict[str, Any] = {}
        for item in fields:
            if isinstance(item, Mapping) and isinstance(item.get("name"), str):
                kind = _JSON_TYPES.get(str(item.get("type") or "").lower())
                properties[item["name"]] = {"type": kind} if kind else {}
        required = [f["name"] for f in fields
                    if isinstance(f, Mapping) and f.get("is_mandatory") and "name" in f]
        schema = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
    title = resource.get("title")
    return StreamSpec(name=str(resource.get("id")), json_schema=schema,
                      title=title if isinstance(title, str) else None)


def requested_streams(value: Any) -> list[str] | None:
    """The stream names in ``--streams a,b`` or a legacy ``resources`` param (a list of
    ids, or of ``{"id"|"value"|"name": ...}`` dicts); None when nothing is selected."""
    if value is None or value == "" or value == []:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise stream_error(f"a stream selection must be names or a list, got {value!r}")
    names: list[str] = []
    for item in items:
        if isinstance(item, Mapping):
            item = next((item[k] for k in ("id", "value", "name") if k in item), None)
        if not isinstance(item, str) or not item.strip():
            raise stream_error(f"a selected stream must be a name, got {item!r}")
        names.append(item.strip())
    return names


def select_streams(specs: Sequence[StreamSpec], names: Sequence[str] | None) -> list[StreamSpec]:
    """The specs named (in catalog order), every spec when ``names`` is None.

    Raises :class:`~panoply_async.errors.StreamError` naming what the
    catalog does not have, and what it has.
    """
    if names is None:
        return list(specs)
    known = {spec.name for spec in specs}
    unknown = [name for name in names if name not in known]
    if unknown:
        offered = ", ".join(sorted(known)) or "none"
        raise stream_error(f"unknown stream(s) {', '.join(map(repr, unknown))}; the "
                                 f"catalog offers: {offered}")
    wanted = set(names)
    return [spec for spec in specs if spec.name in wanted]


def stream_entries(state: Any) -> dict[str, dict[str, Any]]:
    """The per-stream entries of a source's committed state (empty for a legacy state)."""
    streams = state.get(STREAMS_KEY) if isinstance(state, Mapping) else None
    if not isinstance(streams, Mapping):
        return {}
    return {str(name): dict(entry) for name, entry in streams.items()
            if isinstance(entry, Mapping)}


class StreamState:
    """One stream's state while ``read_stream`` runs.

    ``incremental`` tracks the cursor (None for a full-refresh stream); set
    ``position`` before yielding a batch to where the stream continues after
    it (a page number, a next URL): an interrupted run resumes there. Set
    ``bookmark`` to a JSON value the next runs need (an API's sync token); like
    the cursor, it is committed with the records yielded after it was set.
    """

    def __init__(self, spec: StreamSpec, entry: Mapping[str, Any]) -> None:
        self.spec = spec
        self.incremental = spec.incremental(entry.get("cursor"))
        #: where an interrupted run stopped (None: from the start, or the cursor)
        self.position: Any = entry.get("position")
        #: kept from run to run (None until the stream sets it)
        self.bookmark: Any = entry.get("bookmark")

    def __repr__(self) -> str:
        return f"StreamState({self.spec.name!r}, position={self.position!r})"

    @property
    def start_value(self) -> Any:
        """The cursor value to read from (None for a full-refresh stream)."""
        return None if self.incremental is None else self.incremental.start_value

    def entry(self, *, done: bool = False) -> dict[str, Any]:
        entry: dict[str, Any] = {}
        if self.incremental is not None and self.incremental.last_value is not None:
            entry["cursor"] = _jsonable(self.incremental.last_value)
        if self.bookmark is not None:
            entry["bookmark"] = self.bookmark
        if done:
            entry["done"] = True
        elif self.position is not None:
            entry["position"] = self.position
        return entry


class StreamSource(Protocol):
    """What :class:`StreamReader` needs of its data source."""

    @property
    def source(self) -> dict[str, Any]: ...

    @property
    def options(self) -> dict[str, Any]: ...

    def catalog(self) -> Awaitable[list[StreamSpec]]: ...

    def state(self, state_id: Any, state: Any) -> None: ...

    @property
    def read_stream(self) -> Callable[[StreamSpec, StreamState], AsyncIterator[Any]]: ...


def _records_of(batch: Any, stream: str) -> list[Any]:
    if isinstance(batch, list):
        return batch
    if isinstance(batch, Mapping):
        data = batch.get("data")
        if isinstance(data, list) and "metadata" in batch:
            return data  # a RecordGroup: its stream is the one being read
        return [batch]
    raise stream_error(f"read_stream({stream!r}) yielded a {type(batch).__name__}; "
                      "expected a list of dicts")


def _stamp() -> str:
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return now.isoformat(timespec="milliseconds") + "Z"


class StreamReader:
    """Reads a source's selected streams, reporting the per-stream state after each batch.

    It lives as long as its source, so a retried ``read()`` continues each stream
    from the position it reached rather than from the run's start.
    """

    def __init__(self, ds: StreamSource) -> None:
        self._ds = ds
        self._entries: dict[str, dict[str, Any]] = stream_entries(ds.source.get("state"))
        self._specs: list[StreamSpec] | None = None

    async def selected(self) -> list[StreamSpec]:
        """The streams this run reads: ``options["streams"]``, else ``source["resources"]``,
        else every stream of the catalog."""
        if self._specs is None:
            names = requested_streams(self._ds.options.get("streams"))
            if names is None:
                names = requested_streams(self._ds.source.get("resources"))
            self._specs = select_streams(await self._ds.catalog(), names)
        return self._specs

    def _report(self, stream: str) -> None:
        # One state holding every stream's entry (unselected ones as loaded): the
        # committed state is then always a complete picture, whatever is merged.
        self._ds.state(stream, {STREAMS_KEY: {k: dict(v) for k, v in self._entries.items()}})

    async def batches(self) -> AsyncIterator[dict[str, Any]]:
        """The selected streams' batches, as record groups of their tables."""
        specs = await self.selected()
        for spec in specs:
            if self._entries.get(spec.name, {}).get("done"):
                continue
            state = StreamState(spec, self._entries.get(spec.name, {}))
            batches = self._ds.read_stream(spec, state)
            try:
                async for batch in batches:
                    records = _records_of(batch, spec.name)
                    if state.incremental is not None:
                        records = state.incremental.track(records)
                    self._entries[spec.name] = state.entry()
                    # Reported before the batch goes on: the pipeline commits it once
                    # this batch (and all before it) were acknowledged.
                    self._report(spec.name)
                    if records:
                        yield {"data": records, "metadata": {
                            "resource_id": spec.destination, "timestamp": _stamp(),
                            "stream": spec.name}}
                    if state.incremental is not None and state.incremental.reached_end:
                        break
            finally:
                # A stream left early (end_value reached, an error) is closed now, not by GC.
                aclose = getattr(batches, "aclose", None)
                if aclose is not None:
                    await aclose()
            self._entries[spec.name] = state.entry(done=True)
            self._report(spec.name)
        # Every selected stream completed: positions and done marks are dropped, so
        # the next run reads full-refresh streams again and incremental ones from
        # their cursor.
        for spec in specs:
            entry = self._entries.get(spec.name, {})
            self._entries[spec.name] = {k: v for k, v in entry.items() if k in _KEPT}
        if specs:
            self._report(specs[-1].name)
