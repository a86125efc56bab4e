"""Record -> one SQS-safe JSON line, and message body -> records (DESIGN §1).

Pure: no I/O. The fast path is a single ``orjson.dumps`` call; only when it
fails do we walk the record to name the offending key path, so that good
records pay nothing for the diagnosis.
"""

from __future__ import annotations

import dataclasses
import decimal
import enum
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson

from ..errors import DecodeError, RecordError, RecordTooLargeError, RecordTypeError

__all__ = ["TABLE_KEY", "Encoder", "decode_body", "encode_record", "is_sqs_safe"]

TABLE_KEY = "__table"

# The shortest possible line: '{"__table":"x"}\n'.
MIN_LINE_BYTES = 16

# orjson writes U+FFFE and U+FFFF raw, but SQS refuses them; they are the only
# characters orjson emits unescaped that fall outside SQS's allowed set. Their
# UTF-8 starts with byte 0xEF; testing for that one byte (``0xEF in body``) is a
# memchr, far cheaper than searching for the full sequences in every record.
NONCHARACTER_LEAD = 0xEF
_NONCHARACTER_ESCAPES = ((b"\xef\xbf\xbe", b"\\ufffe"), (b"\xef\xbf\xbf", b"\\uffff"))

_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1

#: The deepest nesting of objects and arrays a record may have, the record itself
#: counting as one level: orjson (3.10 and later) refuses to write anything deeper.
MAX_DEPTH = 254


def default(value: Any) -> Any:
    """orjson's hook for the types it does not know."""
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise TypeError(f"Decimal {value} is not a finite number")
        # Fragment keeps every digit: a Decimal becomes a JSON number, not a float.
        return orjson.Fragment(str(value).encode())
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, (tuple, list)):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def escape_noncharacters(body: bytes) -> bytes:
    for raw, escaped in _NONCHARACTER_ESCAPES:
        body = body.replace(raw, escaped)
    return body


def _json_key(key: str) -> str:
    return orjson.dumps(key).decode()


def _describe(path: list[str]) -> str:
    return "".join(path) if path else "<record>"


class _Normaliser:
    """Slow path: rebuilds a record that orjson refused, or names why it cannot be sent."""

    def __init__(self, table: str, root: object = None) -> None:
        self.table = table
        #: the record being normalised, measured when it nests too deep
        self.root = root

    def fail(self, path: list[str], message: str, *, type_error: bool = True) -> RecordError:
        cls = RecordTypeError if type_error else RecordError
        where = _describe(path)
        return cls(f"write({self.table!r}): {message} at {where}", table=self.table, path=where)

    def value(self, value: Any, path: list[str]) -> Any:
        if value is None or isinstance(value, (bool, float)):
            return value
        if isinstance(value, str):
            self.check_text(value, path)
            return value
        if isinstance(value, int):
            if _INT64_MIN <= value <= _UINT64_MAX:
                return value
            try:
                digits = str(int(value))
            except ValueError:
                # Beyond sys.get_int_max_str_digits() (4,300 by default) the
                # interpreter refuses int -> text, and so would any Python reader.
                raise self.fail(
                    path,
                    f"integer of about {_digit_count(value)} digits exceeds this interpreter's "
                    "limit for integer-to-text conversion (sys.get_int_max_str_digits())",
                    type_error=False,
                ) from None
            return orjson.Fragment(digits.encode())
        if isinstance(value, enum.Enum):
            return self.value(value.value, path)
        if isinstance(value, decimal.Decimal):
            if not value.is_finite():
                raise self.fail(path, f"Decimal {value} is not a finite number", type_error=False)
            return value
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
            return self.mapping(fields, path)
        if isinstance(value, Mapping):
            return self.mapping(value, path)
        if isinstance(value, (list, tuple, set, frozenset)):
            self.check_depth(path)
            return [self.value(item, [*path, f"[{i}]"]) for i, item in enumerate(value)]
        try:
            orjson.dumps(value, default=default)
        except TypeError:
            raise self.fail(
                path, f"value of type {type(value).__name__} cannot be serialised to JSON"
            ) from None
        return value

    def mapping(self, value: Mapping[Any, Any], path: list[str]) -> dict[str, Any]:
        self.check_depth(path)
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise self.fail(
                    [*path, f"[{key!r}]"], f"key {key!r} is a {type(key).__name__}, not a str"
                )
            self.check_text(key, [*path, f"[{_json_key_safe(key)}]"])
            out[key] = self.value(item, [*path, f"[{_json_key(key)}]"])
        return out

    def check_depth(self, path: list[str]) -> None:
        """Refuse a container below ``MAX_DEPTH`` levels, naming how deep the record goes.

        The path holds one entry per level above the container, so this costs nothing
        for ordinary records and bounds the recursion for deep or self-containing ones.
        """
        if len(path) < MAX_DEPTH:
            return
        depth = _nesting(self.root)
        what = (
            "contains itself (a reference cycle)"
            if depth is None
            else f"is nested {depth} levels deep"
        )
        where = _describe(path)
        shown = where if len(path) <= 6 else "".join([*path[:3], "...", *path[-2:]])
        raise RecordError(
            f"write({self.table!r}): the record {what}; at most {MAX_DEPTH} levels of "
            f"objects and arrays can be sent (level {MAX_DEPTH + 1} at {shown})",
            table=self.table,
            path=where,
        )

    def check_text(self, text: str, path: list[str]) -> None:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise self.fail(
                path,
                f"string holds a lone surrogate U+{ord(text[exc.start]):04X}, "
                "which cannot be encoded as UTF-8",
                type_error=False,
            ) from None


def _digit_count(value: int) -> int:
    """Decimal digits of ``value`` (give or take one), without converting it to text."""
    return int(math.log10(abs(value))) + 1 if value else 1


def _children(value: object) -> Iterable[object] | None:
    """The items of a container the encoder writes as an object or array, else None."""
    if isinstance(value, (str, bytes, bytearray)):
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [getattr(value, f.name) for f in dataclasses.fields(value)]
    if isinstance(value, Mapping):
        return value.values()
    if isinstance(value, (list, tuple, set, frozenset)):
        return value
    return None


def _nesting(root: object) -> int | None:
    """How many levels of containers ``root`` nests, or None if it contains itself.

    Iterative, so that measuring a record deeper than the recursion limit works.
    """
    items = _children(root)
    if items is None:
        return 0
    deepest = 1
    on_path = {id(root)}
    stack: list[tuple[int, Iterator[object]]] = [(id(root), iter(items))]
    while stack:
        ident, children = stack[-1]
        for child in children:
            grandchildren = _children(child)
            if grandchildren is None:
                continue
            if id(child) in on_path:
                return None
            on_path.add(id(child))
            stack.append((id(child), iter(grandchildren)))
            deepest = max(deepest, len(stack))
            break
        else:
            stack.pop()
            on_path.discard(ident)
    return deepest


def _json_key_safe(key: str) -> str:
    return repr(key.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace"))


class Encoder:
    """Encodes ``write(table, data)`` into one newline-terminated JSON line.

    ``max_line_bytes`` is the largest line that still fits one message once the
    message attributes are counted.
    """

    __slots__ = ("_max_line_bytes", "tails")

    def __init__(self, max_line_bytes: int) -> None:
        self._max_line_bytes = max_line_bytes
        #: table name -> b'"__table":"NAME"}\n', what follows a record's last member
        #: (its closing brace becomes a comma). Tables repeat, so each is encoded once.
        self.tails: dict[str, bytes] = {}

    @property
    def max_line_bytes(self) -> int:
        return self._max_line_bytes

    def encode(self, table: str, data: Mapping[str, Any]) -> bytes:
        """The line for one record; raises a :class:`RecordError` subclass if it cannot go."""
        tail = self.tails.get(table) if type(table) is str else None
        if tail is None:
            tail = self.tail(table)
        if type(data) is not dict:
            if not isinstance(data, Mapping):
                raise RecordTypeError(
                    f"write({table!r}): data must be a mapping (dict), "
                    f"not {type(data).__name__}",
                    table=table,
                )
            data = dict(data)
        if TABLE_KEY in data:
            data = {k: v for k, v in data.items() if k != TABLE_KEY}
        try:
            body = orjson.dumps(data, default=default)
        except TypeError:
            body = self._encode_slow(table, data)
        if NONCHARACTER_LEAD in body:
            body = escape_noncharacters(body)
        line = b"{" + tail if len(body) == 2 else body[:-1] + b"," + tail
        if len(line) > self._max_line_bytes:
            raise RecordTooLargeError(
                f"write({table!r}): the encoded record is {len(line)} bytes, more than the "
                f"{self._max_line_bytes} bytes one message can hold after its attributes",
                table=table,
                size=len(line),
                limit=self._max_line_bytes,
            )
        return line

    def tail(self, table: object) -> bytes:
        """The bytes that end every line of ``table``; validates the table name."""
        if not isinstance(table, str):
            raise RecordTypeError(
                f"write(): table must be a str, not {type(table).__name__}", table=table
            )
        if not table or not table.strip():
            raise RecordError("write(): table must be a non-empty str", table=table)
        _Normaliser(table).check_text(table, [])
        name = escape_noncharacters(orjson.dumps(table))
        tail = b'"' + TABLE_KEY.encode() + b'":' + name + b"}\n"
        if len(self.tails) < 10_000:  # bound the cache for callers with unbounded table names
            self.tails[table] = tail
        return tail

    def _encode_slow(self, table: str, data: dict[str, Any]) -> bytes:
        try:
            normalised = _Normaliser(table, data).mapping(data, [])
        except RecursionError:
            # Within MAX_DEPTH, but called with little of the stack left.
            raise RecordError(
                f"write({table!r}): the record is nested {_nesting(data)} levels deep, "
                "more than the stack left at this call can walk",
                table=table,
            ) from None
        try:
            return orjson.dumps(normalised, default=default)
        except TypeError as exc:  # pragma: no cover - the normaliser names every known case
            raise RecordTypeError(
                f"write({table!r}): record cannot be serialised: {exc}", table=table
            ) from None


_UNBOUNDED = Encoder(max_line_bytes=2**62)


def encode_record(table: str, data: Mapping[str, Any]) -> bytes:
    """Encode one record as the SDK would, without a size limit (useful in tests and tools)."""
    return _UNBOUNDED.encode(table, data)


def _number(text: str) -> float | decimal.Decimal:
    """A JSON number with a fraction or exponent: a float when one holds it exactly,
    else a ``Decimal`` with every digit (as the encoder wrote it from a ``Decimal``)."""
    # Fewer than 16 characters and no exponent: at most 15 significant digits within
    # the float's normal range, which a float always gives back digit for digit.
    if len(text) < 16 and "e" not in text and "E" not in text:
        return float(text)
    value = float(text)
    # Writers that print a float's shortest form (Python, orjson) give back repr()'s
    # text itself: the usual case of a long float, settled without Decimal.
    if repr(value) == text or (
        math.isfinite(value) and decimal.Decimal(repr(value)) == decimal.Decimal(text)
    ):
        return value
    return decimal.Decimal(text)


# One decoder: json.loads() with a keyword argument would build a new one per line.
_DECODER = json.JSONDecoder(parse_float=_number)


def decode_body(body: str | bytes) -> list[dict[str, Any]]:
    """Turn an SQS message body into its records.

    Accepts bodies written by this package and by both legacy SDKs: one JSON
    object per line, blank lines (the Python SDK's separators) skipped. Each
    record keeps its ``"__table"`` key. Only ``"\\n"`` separates lines: other
    Unicode line breaks may legally appear raw inside JSON strings.
    Numbers lose nothing: integers stay exact, and a number with a fraction or
    exponent that a float cannot hold digit for digit (such as
    ``12345678901234567890.123456789``, or ``1e400``) becomes a ``decimal.Decimal``.
    Raises :class:`DecodeError` naming the first bad line.
    """
    text = body if isinstance(body, str) else bytes(body).decode("utf-8")
    records: list[dict[str, Any]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            # The standard decoder, as Panoply's consumer would: it keeps integers
            # beyond 64 bits exact, where orjson would turn them into floats.
            record = _DECODER.decode(line)
        except ValueError as exc:
            raise DecodeError(
                f"line {number} of the message body is not valid JSON: {exc}"
            ) from None
        except RecursionError:
            raise DecodeError(
                f"line {number} of the message body nests too deeply to decode"
            ) from None
        if not isinstance(record, dict):
            raise DecodeError(
                f"line {number} of the message body is a JSON {type(record).__name__}, "
                "not an object"
            )
        records.append(record)
    return records


def is_sqs_safe(body: str) -> bool:
    """Whether every character of ``body`` is one SQS accepts in a message."""
    for ch in body:
        cp = ord(ch)
        if cp < 0x20 and cp not in (0x9, 0xA, 0xD):
            return False
        if 0xD800 <= cp <= 0xDFFF or cp in (0xFFFE, 0xFFFF):
            return False
    return True

