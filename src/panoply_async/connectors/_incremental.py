"""The incremental cursor helper: where a stream starts, and the highest cursor it read.

A stream names a cursor field (``updated_at``, an increasing id) and the value a
first run starts from. :class:`Incremental` turns the stream's committed cursor
into the value ``read_stream()`` asks its API for (:attr:`Incremental.start_value`),
keeps the highest cursor among the records yielded, and drops records past an
``end_value`` (a bounded backfill). The framework reports that highest value as
the stream's state, committed once the records carrying it were acknowledged.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import StreamError

__all__ = ["Incremental", "stream_error"]

Lag = float | datetime.timedelta


def stream_error(message: str) -> StreamError:
    """A :class:`StreamError` that stops the run: reading again gives the same answer."""
    return StreamError(message, retryable=False)


def _as_timedelta(lag: Lag) -> datetime.timedelta:
    return lag if isinstance(lag, datetime.timedelta) else datetime.timedelta(seconds=lag)


def _minus(value: Any, lag: Lag) -> Any:
    """``value`` moved back by ``lag``: in its own units for numbers, seconds (or a
    timedelta) for datetimes and ISO 8601 strings, which stay strings."""
    if isinstance(value, bool):
        raise stream_error(f"a lag cannot apply to the boolean cursor {value!r}")
    if isinstance(value, (int, float)):
        if isinstance(lag, datetime.timedelta):
            return value - lag.total_seconds()
        return value - lag
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value - _as_timedelta(lag)
    if isinstance(value, str):
        zulu = value.endswith(("Z", "z"))
        try:
            moment = datetime.datetime.fromisoformat(value[:-1] + "+00:00" if zulu else value)
        except ValueError:
            raise stream_error(
                f"a lag needs a number, a datetime or an ISO 8601 cursor, got {value!r}"
            ) from None
        earlier = (moment - _as_timedelta(lag)).isoformat()
        return earlier.replace("+00:00", "Z") if zulu else earlier
    raise stream_error(
        f"a lag cannot apply to a cursor of type {type(value).__name__}"
    )


class Incremental:
    """Tracks one stream's cursor during a run.

    ``cursor_field`` is the record key holding the cursor; ``initial_value`` the
    start of a first run (None: from the beginning). ``last_value`` is the
    committed cursor of an earlier run, when there is one: reading resumes there,
    moved back by ``lag`` (late-arriving rows are read again; the platform
    deduplicates by primary key). Records whose cursor is below
    :attr:`start_value`, or at or past ``end_value``, are dropped by :meth:`track`.
    """

    def __init__(self, cursor_field: str, initial_value: Any = None, *,
                 lag: Lag | None = None, end_value: Any = None,
                 last_value: Any = None) -> None:
        if not isinstance(cursor_field, str) or not cursor_field:
            raise stream_error(
                f"cursor_field must be a non-empty string, got {cursor_field!r}")
        if lag is not None and (isinstance(lag, bool) or not isinstance(
                lag, (int, float, datetime.timedelta))):
            raise stream_error(
                f"lag must be a number of seconds (or cursor units) or a timedelta, got {lag!r}")
        self.cursor_field = cursor_field
        self.initial_value = initial_value
        self.lag = lag
        self.end_value = end_value
        committed = last_value
        if committed is None:
            start = initial_value
        elif lag is not None:
            start = _minus(committed, lag)
        else:
            start = committed
        #: where reading starts: the committed cursor (minus ``lag``), else ``initial_value``
        self.start_value: Any = start
        #: the highest cursor seen so far (the committed one until a record passes it)
        self.last_value: Any = committed
        #: True once a record at or past ``end_value`` was seen: the backfill is complete
        self.reached_end = False
        self._check_comparable(start, end_value, "start value", "end_value")

    def __repr__(self) -> str:
        return (f"Incremental({self.cursor_field!r}, start_value={self.start_value!r}, "
                f"last_value={self.last_value!r}, end_value={self.end_value!r})")

    def track(self, records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The records to send, with the highest cursor among them remembered.

        Raises :class:`~panoply_async.errors.StreamError` when a record
        has no ``cursor_field`` or its cursor cannot be compared with the others.
        """
        kept: list[Mapping[str, Any]] = []
        for index, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise stream_error(
                    f"record {index} is a {type(record).__name__}, not a dict")
            value = record.get(self.cursor_field)
            if value is None:
                raise stream_error(
                    f"record {index} has no cursor field {self.cursor_field!r}")
            if self.start_value is not None and self._less(value, self.start_value):
                continue
            if self.end_value is not None and not self._less(value, self.end_value):
                self.reached_end = True
                continue
            if self.last_value is None or self._less(self.last_value, value):
                self.last_value = value
            kept.append(record)
        return kept

    def _less(self, a: Any, b: Any) -> bool:
        try:
            return bool(a < b)
        except TypeError:
            raise stream_error(
                f"cursor {self.cursor_field!r}: cannot compare {a!r} "
                f"({type(a).__name__}) with {b!r} ({type(b).__name__})"
            ) from None

    def _check_comparable(self, a: Any, b: Any, a_name: str, b_name: str) -> None:
        if a is not None and b is not None:
            try:
                _ = a < b
            except TypeError:
                raise stream_error(
                    f"the {a_name} {a!r} and the {b_name} {b!r} cannot be compared"
                ) from None
