"""The write path on its own (in-memory transport): write_many()'s batch fast path
packs exactly like write() one by one (for any batch: a property test), falls back
to the general encoder where it must, and sends every accepted line, in order."""

from __future__ import annotations

import decimal
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panoply_async import SDK, MemoryTransport, RecordError, decode_body


def decoded(transport: MemoryTransport) -> list[dict[str, Any]]:
    return [r for body in transport.bodies for r in decode_body(body)]


RECORDS = [{"id": i, "pad": "p" * (i % 97)} for i in range(3_000)]


async def test_write_many_packs_like_write(vector_credentials: tuple[str, str]) -> None:
    one, many = MemoryTransport(), MemoryTransport()
    options: dict[str, Any] = {"max_message_bytes": 4096, "flush_interval": 3600}
    async with SDK(*vector_credentials, transport=one, **options) as conn:
        for record in RECORDS:
            await conn.write("t", record)
    async with SDK(*vector_credentials, transport=many, **options) as conn:
        for start in range(0, len(RECORDS), 600):
            assert await conn.write_many("t", RECORDS[start : start + 600]) == 600
    assert many.bodies == one.bodies  # same messages, byte for byte
    assert [r["id"] for r in decoded(many)] == list(range(3_000))
    assert conn.stats.records_pending == 0


async def test_write_many_within_a_small_buffer_waits_and_delivers_all(
    vector_credentials: tuple[str, str],
) -> None:
    transport = MemoryTransport()
    async with SDK(
        *vector_credentials, transport=transport, max_message_bytes=2048,
        max_buffer_bytes=4096, max_concurrent_sends=1,
    ) as conn:
        assert await conn.write_many("t", RECORDS) == len(RECORDS)
        assert conn.buffered_bytes <= 4096
    assert [r["id"] for r in decoded(transport)] == list(range(3_000))


@pytest.mark.parametrize(
    "odd",
    [
        {"__table": "other", "id": -1},  # overwritten by the table
        {},  # an empty record
        {"id": -1, "d": decimal.Decimal("1.10")},  # orjson needs the default hook
        {"id": -1, "s": "\ufffe"},  # a noncharacter to escape
        {"id": -1, "nested": {"__table": "kept"}},
    ],
    ids=["table-key", "empty", "decimal", "noncharacter", "nested-table-key"],
)
async def test_write_many_falls_back_where_the_batch_path_cannot_go(
    vector_credentials: tuple[str, str], odd: dict[str, Any]
) -> None:
    transport = MemoryTransport()
    records = [{"id": 0}, odd, {"id": 1}]
    async with SDK(*vector_credentials, transport=transport) as conn:
        assert await conn.write_many("t", records) == 3
    got = decoded(transport)
    assert [r["__table"] for r in got] == ["t", "t", "t"]
    assert got[0] == {"id": 0, "__table": "t"}
    assert got[2] == {"id": 1, "__table": "t"}
    expected = {k: v for k, v in odd.items() if k != "__table"}
    if "d" in expected:
        expected["d"] = 1.1  # decoded as a JSON number
    assert {k: v for k, v in got[1].items() if k != "__table"} == expected


async def test_write_many_refuses_a_batch_with_one_bad_record(
    vector_credentials: tuple[str, str],
) -> None:
    transport = MemoryTransport()
    async with SDK(*vector_credentials, transport=transport, max_message_bytes=2048) as conn:
        with pytest.raises(RecordError):
            await conn.write_many("t", [{"id": 0}, {"big": "x" * 5000}])
        with pytest.raises(RecordError):
            await conn.write_many("t", [{"id": 0}, ["not", "a", "dict"]])  # type: ignore[list-item]
        assert conn.stats.records_accepted == 0
        assert await conn.write_many("t", ({"id": i} for i in range(3))) == 3  # type: ignore[arg-type]
    assert [r["id"] for r in decoded(transport)] == [0, 1, 2]


async def test_every_accepted_line_is_sent_in_order(vector_credentials: tuple[str, str]) -> None:
    transport = MemoryTransport()
    async with SDK(
        *vector_credentials, transport=transport, max_message_bytes=4096, flush_interval=3600
    ) as conn:
        await conn.write("t", {"id": "w"})  # write()'s fast path
        await conn.write("t", {"id": "d", "d": decimal.Decimal("2")})  # the general encoder
        await conn.write_many("t", RECORDS[:500])  # the batch path, across messages
        await conn.write_many("t", [{"id": "f", "__table": "x"}])  # write_many's fallback
    sent = [r["id"] for r in decoded(transport)]
    assert sent == ["w", "d", *range(500), "f"]
    assert len(transport.bodies) > 1
    assert conn.stats.records_delivered == conn.stats.records_accepted == 503


# -- write_many() against write() one by one, for any batch --------------------

# About the smallest body the SDK allows (~1 KiB after the attributes), so records
# near and over the line limit are cheap.
OPTIONS: dict[str, Any] = {"max_message_bytes": 1200, "flush_interval": 3600}

# Strings that look like the batch path's record boundary, or like the wire's own key.
TRICKY = st.sampled_from(
    ["},{", "{}", '"},{"', "[{},{}]", "__table", '"__table":', "\n", "é", "€", "😀", "\ufffe", ""]
)
TEXT = st.one_of(TRICKY, st.text(max_size=12), st.lists(TRICKY, max_size=4).map("".join))
KEYS = st.one_of(st.sampled_from(["id", "__table", "a", "", "},{"]), st.text(max_size=6))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),  # past 64 bits: the general encoder
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    TEXT,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)),
    max_leaves=8,
)
# Near the line limit, both sides of it.
PADDING = st.integers(min_value=0, max_value=1100).map(lambda n: "p" * n)
ANY_RECORD = st.one_of(
    st.dictionaries(KEYS, VALUES, max_size=4),  # includes {}
    st.builds(lambda r, pad: {**r, "pad": pad}, st.dictionaries(KEYS, VALUES, max_size=2), PADDING),
    st.dictionaries(st.sampled_from(["id", "v", "w"]), SCALARS, min_size=1),  # the common case
)
BATCHES = st.lists(st.lists(ANY_RECORD, max_size=12), min_size=1, max_size=4)


Sent = tuple[list[bytes], list[bytes], list[tuple[type[BaseException], str] | None]]


async def _send(
    credentials: tuple[str, str], batches: list[list[dict[str, Any]]], many: bool
) -> Sent:
    """(bodies, their lines, error per batch) after writing ``batches``."""
    transport = MemoryTransport()
    errors: list[tuple[type[BaseException], str] | None] = []
    async with SDK(*credentials, transport=transport, **OPTIONS) as conn:
        for batch in batches:
            if many:
                try:
                    assert await conn.write_many("t", batch) == len(batch)
                    errors.append(None)
                except Exception as exc:
                    errors.append((type(exc), str(exc)))
                continue
            # write() one by one, all-or-nothing like write_many(): find the first
            # bad record before writing any.
            error = None
            async with SDK(*credentials, transport=MemoryTransport(), **OPTIONS) as probe:
                for record in batch:
                    try:
                        await probe.write("t", record)
                    except Exception as exc:
                        error = (type(exc), str(exc))
                        break
            errors.append(error)
            if error is None:
                for record in batch:
                    await conn.write("t", record)
        accepted = conn.stats.records_accepted
    assert accepted == sum(len(b) for b, e in zip(batches, errors, strict=True) if e is None)
    lines = [line for body in transport.bodies for line in body.splitlines(keepends=True)]
    return transport.bodies, lines, errors


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=BATCHES)
def test_write_many_is_write_one_by_one(
    vector_credentials: tuple[str, str], batches: list[list[dict[str, Any]]]
) -> None:
    one = anyio.run(_send, vector_credentials, batches, False)
    many = anyio.run(_send, vector_credentials, batches, True)
    assert many == one  # bodies byte for byte, their lines, errors


def test_a_boundary_inside_a_string_or_a_list_is_not_a_record_boundary(
    vector_credentials: tuple[str, str],
) -> None:
    batch = [
        {"id": 0, "s": "},{"},
        {"id": 1, "l": [{"a": 1}, {"b": 2}]},
        {"id": 2, "d": decimal.Decimal("1.5")},
    ]
    one = anyio.run(_send, vector_credentials, [batch], False)
    many = anyio.run(_send, vector_credentials, [batch], True)
    assert many == one
    assert one[0]  # sent
    assert one[2] == [None]  # no error


def test_batches_after_a_miss_skip_the_one_call_path_and_still_match_write(
    vector_credentials: tuple[str, str],
) -> None:
    # The first batch makes the one-call path miss ("},{" inside records); the
    # batches after it go record by record for a while, bad records included,
    # then the one-call path is tried again: the bytes never differ from write().
    nested = [{"id": i, "l": [{"a": i}, {"b": i}]} for i in range(5)]
    flat = [{"id": i, "s": "x" * i} for i in range(5)]
    bad = [{"id": 1}, {"id": 2, "o": object()}]
    batches = [nested, flat, bad, *([flat] * 20), nested, flat]
    one = anyio.run(_send, vector_credentials, batches, False)
    many = anyio.run(_send, vector_credentials, batches, True)
    assert many == one
    assert one[2][2] is not None  # the bad batch was refused
    assert one[2].count(None) == len(batches) - 1
