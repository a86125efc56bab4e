"""States ride the log: logged with their records, committed by the next start once
recovery delivered the records they cover (issue 19.9; ``_durable/wal/states.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from panoply_async import SDK, DataSource, DeliveryError
from panoply_async._durable.wal.states import StateLog, committable_states, read_states
from panoply_async._engine.transport import MemoryTransport, Message, SendError


class Numbers(DataSource):
    """Three batches of ten, a state after each."""

    async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        for begin in range(0, 30, 10):
            yield [{"id": i} for i in range(begin, begin + 10)]
            self.state(f"to-{begin + 10}", {"next": begin + 10})


def refusing(messages: Sequence[Message]) -> BaseException:
    return SendError("refused", retryable=False)


def test_a_state_commits_only_when_nothing_it_covers_is_undelivered(tmp_path: Path) -> None:
    log = StateLog(tmp_path)
    log.log_state("k", "a", {"n": 1}, 3)
    log.log_state("other", "x", 1, 9)
    log.log_state("k", "b", {"n": 2}, 6)
    log.log_spooled([5])  # written only once something is logged: it is
    log.log_state("k", "c", {"n": 3}, 8)
    log.log_state("k", "a", {"n": 1}, 9)  # a later batch was tagged with "a" again
    log.close()
    data = (tmp_path / "states").read_bytes()
    states, spooled = read_states(data + b"PNST torn")
    assert [s.state_id for s in states] == ["a", "x", "b", "c", "a"]
    assert spooled == {5}
    assert committable_states(states, set()) == {"k": ("c", {"n": 3}), "other": ("x", 1)}
    # "a" now covers frame 9: frame 9 undelivered holds back "a" and every later state.
    assert committable_states(states, {9}) == {}
    # Frame 5 was spooled: "b" and later never commit from the log; "a" (up to 9) neither.
    assert committable_states(states, spooled) == {}
    assert committable_states(states[:3], {5}) == {"k": ("a", {"n": 1})}


async def test_records_kept_in_the_log_bring_their_state_back(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    # Nothing delivered and no spool: the records stay in the log, as after a crash.
    first = SDK(*vector_credentials, transport=MemoryTransport(fault=refusing), wal_dir=tmp_path)
    committed: list[Any] = []
    with pytest.raises(DeliveryError):
        async with first as conn:
            result = await conn.ingest(Numbers({"destination": "numbers"}), state_key="numbers",
                                       on_state=lambda *state: committed.append(state))
    assert result.states_committed == 0
    assert committed == []
    events: list[dict[str, Any]] = []
    transport = MemoryTransport()
    second = SDK(*vector_credentials, transport=transport, wal_dir=tmp_path)
    second.on("source-state", events.append)
    async with second as conn:
        assert await conn.recovered_state("numbers") == ("to-30", {"next": 30})
        assert await conn.recovered_state("another source") is None
    assert conn.stats.records_recovered == 30
    assert events == [{"state_id": "to-30", "state": {"next": 30}, "key": "numbers",
                       "recovered": True}]
    assert not (tmp_path / "states").exists() or not (tmp_path / "states").read_bytes()


async def test_spooled_records_never_bring_their_state_back(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    wal_dir = tmp_path / "wal"
    first = SDK(*vector_credentials, transport=MemoryTransport(fault=refusing), wal_dir=wal_dir,
                spool_dir=tmp_path / "spool")
    async with first as conn:
        await conn.ingest(Numbers({"destination": "numbers"}), state_key="numbers")
    assert first.stats.records_spooled == 30
    async with SDK(*vector_credentials, transport=MemoryTransport(), wal_dir=wal_dir) as conn:
        assert await conn.recovered_state("numbers") is None
    assert conn.stats.records_recovered == 0


async def test_a_state_tagged_on_later_records_is_logged_again_after_them(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    class Tagged(DataSource):
        async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
            self.state("a", {"page": 1})
            yield [{"id": 1, "__state": "a"}]
            conn._close_open_message("flush")  # the next batch in a frame of its own
            yield [{"id": 2, "__state": "a"}]

    sdk = SDK(*vector_credentials, transport=MemoryTransport(fault=refusing), wal_dir=tmp_path,
              max_attempts=1)
    with pytest.raises(DeliveryError):
        async with sdk as conn:
            await conn.ingest(Tagged({"destination": "t"}), state_key="k")
    states, _ = read_states((tmp_path / "states").read_bytes())
    assert [(s.state_id, s.state) for s in states] == [("a", {"page": 1})] * 3
    # Logged when reported, then after each batch tagged with it: the last covers record 2.
    assert states[0].watermark < states[-1].watermark
    frames = {states[-1].watermark}
    assert committable_states(states, frames) == {}
