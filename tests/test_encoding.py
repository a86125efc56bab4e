from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import sys
import uuid
from collections import OrderedDict
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from panoply_async import (
    SDK,
    DecodeError,
    MemoryTransport,
    RecordError,
    RecordTooLargeError,
    RecordTypeError,
    decode_body,
    encode_record,
)
from panoply_async._wire.encoding import Encoder, is_sqs_safe


def test_records_vectors_decode_to_delivered(vectors: dict[str, Any]) -> None:
    for case in vectors["records"]:
        line = encode_record(case["table"], case["data"])
        assert line.endswith(b"\n")
        assert line.count(b"\n") == 1
        text = line.decode("utf-8")
        assert is_sqs_safe(text)
        assert json.loads(text) == case["delivered"]
        assert decode_body(line) == [case["delivered"]]


def test_legacy_bodies_decode(vectors: dict[str, Any]) -> None:
    for case in vectors["legacy_bodies"]:
        assert decode_body(case["body"]) == case["records"], case["producer"]
        assert decode_body(case["body"].encode()) == case["records"]


def test_table_key_is_overwritten_and_caller_dict_untouched() -> None:
    data = {"__table": "other", "a": 1}
    line = encode_record("users", data)
    assert json.loads(line) == {"__table": "users", "a": 1}
    assert data == {"__table": "other", "a": 1}


def test_empty_record() -> None:
    assert json.loads(encode_record("t", {})) == {"__table": "t"}


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: int
    y: float


def test_common_python_values() -> None:
    data = {
        "dt": datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.timezone.utc),
        "naive": datetime.datetime(2024, 5, 6, 7, 8, 9),
        "date": datetime.date(2024, 5, 6),
        "time": datetime.time(7, 8, 9),
        "dec": decimal.Decimal("12345678901234567890.0123456789"),
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "enum": Colour.RED,
        "intenum": Level.HIGH,
        "point": Point(1, 2.5),
        "tuple": (1, "a"),
        "set": frozenset({7}),
        "big": 2**80,
        "neg": -(2**70),
        "mapping": MappingProxyType({"k": "v"}),
        "ordered": OrderedDict(a=1),
    }
    decoded = json.loads(encode_record("t", data))
    assert decoded["dt"] == "2024-05-06T07:08:09.123456+00:00"
    assert decoded["naive"] == "2024-05-06T07:08:09"
    assert decoded["date"] == "2024-05-06"
    assert decoded["time"] == "07:08:09"
    raw = encode_record("t", {"dec": data["dec"]})
    assert b'"dec":12345678901234567890.0123456789' in raw
    assert decoded["uuid"] == "12345678-1234-5678-1234-567812345678"
    assert decoded["enum"] == "red"
    assert decoded["intenum"] == 3
    assert decoded["point"] == {"x": 1, "y": 2.5}
    assert decoded["tuple"] == [1, "a"]
    assert decoded["set"] == [7]
    assert decoded["big"] == 2**80
    assert decoded["neg"] == -(2**70)
    assert decoded["mapping"] == {"k": "v"}
    assert decoded["ordered"] == {"a": 1}


def test_mapping_that_is_not_a_dict() -> None:
    assert json.loads(encode_record("t", MappingProxyType({"a": 1}))) == {"a": 1, "__table": "t"}


def test_characters_sqs_refuses_are_escaped() -> None:
    data = {"s": "\x00\x01\x1f\x7f\ufffe\uffff\ufffd\u2028 ok", "k\ufffe": 1}
    text = encode_record("t\uffff", data).decode()
    assert is_sqs_safe(text)
    assert "\\ufffe" in text
    assert "\\uffff" in text
    assert json.loads(text) == {**data, "__table": "t\uffff"}


@pytest.mark.parametrize(
    ("table", "data", "exc", "words"),
    [
        (None, {}, RecordTypeError, "table must be a str"),
        ("", {}, RecordError, "non-empty"),
        ("  ", {}, RecordError, "non-empty"),
        (3, {}, RecordTypeError, "table must be a str"),
        ("t", [1, 2], RecordTypeError, "must be a mapping"),
        ("t", "text", RecordTypeError, "must be a mapping"),
        ("t", {"a": object()}, RecordTypeError, 'at \\["a"\\]'),
        ("t", {"a": {"b": [1, {2: 3}]}}, RecordTypeError, r'\["a"\]\["b"\]\[1\]\[2\]'),
        ("t", {"a": ["ok", "\ud800"]}, RecordError, r'surrogate U\+D800.* at \["a"\]\[1\]'),
        ("t", {"\udc00": 1}, RecordError, "surrogate"),
        ("t\ud800", {}, RecordError, "surrogate"),
        ("t", {"d": decimal.Decimal("NaN")}, RecordError, "finite"),
        ("t", {"b": b"bytes"}, RecordTypeError, "bytes"),
    ],
)
def test_bad_records_raise_typed_errors(
    table: Any, data: Any, exc: type[Exception], words: str
) -> None:
    with pytest.raises(exc, match=words) as info:
        encode_record(table, data)
    assert isinstance(info.value, ValueError)


def test_error_names_table_and_path() -> None:
    with pytest.raises(RecordTypeError) as info:
        encode_record("orders", {"items": [{"price": object()}]})
    assert info.value.table == "orders"
    assert info.value.path == '["items"][0]["price"]'
    assert "orders" in str(info.value)


def test_record_too_large() -> None:
    encoder = Encoder(max_line_bytes=100)
    encoder.encode("t", {"a": "x" * 70})
    with pytest.raises(RecordTooLargeError) as info:
        encoder.encode("t", {"a": "x" * 100})
    assert info.value.limit == 100
    assert info.value.size > 100


def test_decode_errors() -> None:
    with pytest.raises(DecodeError, match="line 2"):
        decode_body('{"a": 1}\n{oops\n')
    with pytest.raises(DecodeError, match="not an object"):
        decode_body("[1, 2]\n")


def test_decode_only_splits_on_newline() -> None:
    line = encode_record("t", {"s": "a\u2028b\x85c\rd"})
    assert decode_body(line + line) == [{"s": "a\u2028b\x85c\rd", "__table": "t"}] * 2


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**100), max_value=2**100)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(
    table=st.text(min_size=1).filter(lambda t: t.strip() and is_utf8(t)),
    data=st.dictionaries(st.text(max_size=10), json_values, max_size=6),
)
def test_round_trip_property(table: str, data: dict[str, Any]) -> None:
    clean = {k: v for k, v in data.items() if is_utf8(k) and utf8_tree(v)}
    line = encode_record(table, clean)
    text = line.decode("utf-8")
    assert is_sqs_safe(text)
    assert decode_body(line) == [{**clean, "__table": table}]


def is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def utf8_tree(value: Any) -> bool:
    if isinstance(value, str):
        return is_utf8(value)
    if isinstance(value, list):
        return all(utf8_tree(v) for v in value)
    if isinstance(value, dict):
        return all(is_utf8(k) and utf8_tree(v) for k, v in value.items())
    return True


# Issue 14 item 5: decode_body() lost the digits a float cannot hold.
def test_item5_decode_keeps_every_digit() -> None:
    body = '{"n": 12345678901234567890.123456789, "__table": "t"}\n'
    (record,) = decode_body(body)
    assert record["n"] == decimal.Decimal("12345678901234567890.123456789")
    assert str(record["n"]) == "12345678901234567890.123456789"
    # What the encoder writes from a Decimal comes back digit for digit.
    exact = decimal.Decimal("0.1000000000000000000000000001")
    assert decode_body(encode_record("t", {"d": exact}))[0]["d"] == exact
    # Beyond the float's range in either direction: no inf, no silent zero.
    big, tiny = decode_body('{"a": 1e400, "b": -2.5E-400}\n')[0].values()
    assert big == decimal.Decimal("1e400")
    assert tiny == decimal.Decimal("-2.5e-400")


def test_item5_numbers_a_float_holds_stay_floats() -> None:
    values = [1.5, -0.0, 0.1, 1e16, 0.30000000000000004, 5e-324, 1.7976931348623157e308]
    (record,) = decode_body(encode_record("t", {"v": values}))
    assert record["v"] == values
    assert all(type(v) is float for v in record["v"])
    assert decode_body('{"a": 1.10, "b": 2E3}\n') == [{"a": 1.1, "b": 2000.0}]


# Issue 14 item 8: edge values raised a bare ValueError or RecursionError.
def test_item8_huge_int_refused_with_record_error() -> None:
    # Within the interpreter's int <-> text limit, an int of any size stays exact.
    near = 10**4000 + 7
    assert decode_body(encode_record("t", {"n": near}))[0]["n"] == near
    with pytest.raises(RecordError, match=r"about 5001 digits") as info:
        encode_record("t", {"n": [1, -(10**5000)]})
    assert info.value.path == '["n"][1]'
    assert not isinstance(info.value, TypeError)


def nested(depth: int) -> dict[str, Any]:
    record: dict[str, Any] = {}
    inner = record
    for _ in range(depth - 1):
        inner["a"] = {}
        inner = inner["a"]
    return record


def test_item8_deep_nesting_refused_naming_the_depth() -> None:
    with pytest.raises(RecordError, match=r"nested 3000 levels deep; at most 254") as info:
        encode_record("t", nested(3000))
    assert info.value.path.startswith('["a"]["a"]')
    assert len(str(info.value)) < 400
    # The deepest record that can be sent, and one level more.
    assert decode_body(encode_record("t", nested(254)))[0] == {**nested(254), "__table": "t"}
    with pytest.raises(RecordError, match="nested 255 levels"):
        encode_record("t", nested(255))
    items: list[Any] = []
    for _ in range(300):
        items = [items]
    # The record, then 301 lists.
    with pytest.raises(RecordError, match="nested 302 levels"):
        encode_record("t", {"items": items})


def test_item8_a_record_containing_itself_is_refused() -> None:
    record: dict[str, Any] = {"id": 1}
    record["self"] = [record]
    with pytest.raises(RecordError, match="contains itself"):
        encode_record("t", record)


async def test_item8_write_paths_raise_record_error(vector_credentials: tuple[str, str]) -> None:
    # write() and write_many() try orjson first, which refuses both values with a
    # TypeError; the general encoder must then name the real problem.
    transport = MemoryTransport()
    async with SDK(*vector_credentials, transport=transport) as conn:
        await conn.write("t", {"id": 0})  # the table is known: write() takes its fast path
        for bad in ({"n": 10**5000}, nested(3000)):
            with pytest.raises(RecordError):
                await conn.write("t", bad)
            with pytest.raises(RecordError):
                await conn.write_many("t", [{"id": 1}, bad])
        await conn.write("t", {"n": 2**70})
        assert conn.stats.records_rejected == 4
    bodies = [r for body in transport.bodies for r in decode_body(body)]
    assert bodies == [{"id": 0, "__table": "t"}, {"n": 2**70, "__table": "t"}]


def test_item8_deep_record_with_little_stack_left_raises_record_error() -> None:
    # A caller already deep in its own recursion: the encoder must not leak RecursionError.
    def at_depth(levels: int) -> None:
        if levels:
            at_depth(levels - 1)
            return
        with pytest.raises(RecordError, match="nested 200 levels"):
            encode_record("t", record)

    # The int beyond 64 bits makes orjson refuse it, so the normaliser walks it.
    record = nested(200)
    inner = record
    while inner:
        inner = inner["a"]
    inner["n"] = 2**70

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(400)
    try:
        at_depth(150)
    finally:
        sys.setrecursionlimit(limit)
