from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from panoply_async import decode_body, encode_record
from panoply_async._wire.packing import Packer, attributes_size, pack_lines


def test_attributes_size_counts_name_type_and_value() -> None:
    assert attributes_size({"key": "ab", "sdk": "é"}) == (3 + 6 + 2) + (3 + 6 + 2)


def test_packer_fills_until_the_next_line_does_not_fit() -> None:
    packer = Packer(body_limit=50)
    assert packer.add(b"x" * 20 + b"\n") is None
    assert packer.add(b"y" * 20 + b"\n") is None
    finished = packer.add(b"z" * 20 + b"\n")
    assert finished == (b"x" * 20 + b"\n" + b"y" * 20 + b"\n", 2)
    assert packer.records == 1
    assert packer.take() == (b"z" * 20 + b"\n", 1)
    assert packer.take() is None


def test_full_when_no_line_can_fit() -> None:
    packer = Packer(body_limit=40)
    packer.add(b"a" * 30 + b"\n")
    assert packer.full()


def test_line_over_the_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        pack_lines([b"x" * 100], 50)


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=300), max_size=200),
    limit=st.integers(min_value=400, max_value=3000),
)
def test_bound_and_round_trip(sizes: list[int], limit: int) -> None:
    records = [{"id": i, "pad": "é" * n} for i, n in enumerate(sizes)]
    lines = [encode_record("t", r) for r in records]
    lines = [line for line in lines if len(line) <= limit]
    bodies = pack_lines(lines, limit)
    assert all(len(body) <= limit for body in bodies)
    assert b"".join(bodies) == b"".join(lines)
    decoded = [rec for body in bodies for rec in decode_body(body)]
    assert decoded == [decode_body(line)[0] for line in lines]
    # Greedy: no body could have taken the first line of the next one.
    for body, nxt in itertools.pairwise(bodies):
        first = nxt.split(b"\n", 1)[0] + b"\n"
        assert len(body) + len(first) > limit
