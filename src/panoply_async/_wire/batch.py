"""Encoding a batch of records for ``write_many()`` (pure: no I/O, no state).

:func:`encode_batch` is the fast path: every line of the batch in one buffer,
built by C code, with no Python executed per record; :func:`encode_each` is the
general path, record by record.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import repeat
from typing import Any, NamedTuple

from orjson import dumps as _dumps

from .encoding import NONCHARACTER_LEAD, TABLE_KEY, Encoder
from .encoding import default as _default

__all__ = ["BatchLines", "encode_batch", "encode_each"]

_dict_contains = dict.__contains__
#: average record size (bytes of JSON) up to which one call for the batch pays off
WHOLE_MAX_AVERAGE = 512
# Between two objects in orjson's output of a list of dicts (it writes no spaces).
_BOUNDARY = b"},{"


class BatchLines(NamedTuple):
    """What :func:`encode_batch` made: the lines, and whether the one-call path
    is worth taking for the next batch of such records (False: it missed and the
    batch was serialised record by record, or its records are too large for it
    to pay off)."""

    lines: bytes | bytearray
    whole: bool


def encode_batch(
    records: list[Mapping[str, Any]], tail: bytes, line_limit: int, *, whole: bool = True
) -> BatchLines | None:
    """All the lines of ``records`` (each ``body[:-1] + b"," + tail``) in one buffer,
    or None when a record needs the general encoder: not a non-empty dict, a
    ``__table`` key, a type orjson refuses, a noncharacter to escape, or a line
    longer than ``line_limit``.

    ``whole=False`` skips the one-call attempt: the caller saw it miss on this
    kind of record (see :class:`BatchLines`) and would pay for orjson twice.
    Lines can be found again by their newline: JSON output holds no raw newline,
    and the encoder's ``default`` only adds numbers.
    """
    # dict.__contains__ refuses anything but a dict (or a subclass, which
    # orjson writes as a dict); empty records need the general encoder.
    try:
        if any(map(_dict_contains, records, repeat(TABLE_KEY))) or not all(records):
            return None
    except TypeError:
        return None
    if not whole:
        lines = _encode_one_by_one(records, tail, line_limit)
        return None if lines is None else BatchLines(lines, whole=False)
    try:
        # One call for the whole batch: orjson's per-call cost is about a third
        # of what it costs to write a ~100 B record.
        batch = _dumps(records, _default)
    except TypeError:  # also orjson's nesting limit, one level closer in a list
        return None
    if NONCHARACTER_LEAD in batch:
        return None
    # "[{a},{b}]" -> [b"a", b"b"]. Every boundary between two records is a
    # "},{" and a boundary is never hidden inside an overlapping match, so the
    # split yields exactly one piece per record unless "},{" also occurs inside
    # a record (a string, or dicts in a list): then the pieces are not records.
    bodies = batch[2:-2].split(_BOUNDARY)
    if len(bodies) != len(records):
        lines = _encode_one_by_one(records, tail, line_limit)
        return None if lines is None else BatchLines(lines, whole=False)
    # A line is "{" + body + "," + tail; no line can be longer than the batch.
    if len(batch) + len(tail) > line_limit and max(map(len, bodies)) + 2 + len(tail) > line_limit:
        return None
    separator = b"," + tail + b"{"
    bodies[0] = b"{" + bodies[0]
    bodies[-1] += separator[:-1]
    # For large records the copies of the split and join cost more than the
    # per-call overhead saved: report a miss, so that the caller goes record by
    # record for this table's next batches.
    return BatchLines(separator.join(bodies), whole=len(batch) < WHOLE_MAX_AVERAGE * len(records))


def _encode_one_by_one(
    records: list[Mapping[str, Any]], tail: bytes, line_limit: int
) -> bytearray | None:
    """:func:`encode_batch` record by record: one ``orjson.dumps`` each
    (``encode_batch`` checked that they are non-empty dicts without ``__table``).

    Each body is copied into the shared buffer at once (a body kept alive keeps
    orjson's 4 KiB output buffer with it) and its closing brace overwritten in
    place.
    """
    lines = bytearray()
    dumps, default = _dumps, _default
    try:
        for data in records:
            lines += dumps(data, default)  # positional: no keyword parsing
            lines[-1] = 0x2C  # ','
            lines += tail
    except TypeError:
        return None
    if NONCHARACTER_LEAD in lines:
        return None
    if len(lines) > line_limit and max(map(len, lines.split(b"\n"))) + 1 > line_limit:
        return None
    return lines


def encode_each(
    encoder: Encoder, table: str, records: list[Mapping[str, Any]], tail: bytes
) -> tuple[list[bytes], set[int]]:
    """Encode record by record: bodies for ``Packer.append_record`` where orjson
    takes the record as it is, else whole lines from ``encoder`` (their ids in the
    returned set). Raises the encoder's :class:`RecordError` for a bad record."""
    body_limit = encoder.max_line_bytes - len(tail)
    bodies: list[bytes] = []
    general: set[int] = set()
    append, dumps, default = bodies.append, _dumps, _default
    for data in records:
        if type(data) is dict and TABLE_KEY not in data:
            try:
                body = dumps(data, default=default)
            except TypeError:
                body = b""
            if 2 < len(body) <= body_limit and NONCHARACTER_LEAD not in body:
                append(body)
                continue
        line = encoder.encode(table, data)
        general.add(id(line))
        append(line)
    return bodies, general
