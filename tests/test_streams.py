"""Issue 21, items 1, 2 and 4 in process: StreamSpec, the Incremental cursor helper,
per-stream state through SDK.ingest against the local SQS server, the version 2 state
file, and a legacy connector's list_resources read as its catalog."""

from __future__ import annotations

import datetime
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from faultproxy import unused_endpoint_url
from panoply_async import (
    SDK,
    DataSource,
    Incremental,
    PanoplyException,
    StreamError,
    StreamSpec,
    StreamState,
)
from panoply_async.cli._run import StateFile
from panoply_async.local import make_credentials
from panoply_async.testing import LocalQueue, group_by_table

# -- StreamSpec -------------------------------------------------------------------------


def test_stream_spec_defaults_and_validation() -> None:
    spec = StreamSpec("users", primary_key="id")
    assert (spec.destination, spec.primary_key, spec.sync_mode) == ("users", ("id",),
                                                                    "full_refresh")
    assert StreamSpec("o", cursor_field="at").sync_mode == "incremental"
    with pytest.raises(StreamError, match="non-empty string"):
        StreamSpec("")
    with pytest.raises(StreamError, match="comma"):
        StreamSpec("a,b")
    with pytest.raises(StreamError, match="need a cursor_field"):
        StreamSpec("users", initial_value=3)
    with pytest.raises(ValueError, match="primary_key"):  # StreamError is a ValueError
        StreamSpec("users", primary_key=("id", 3))  # type: ignore[arg-type]


# -- Incremental ------------------------------------------------------------------------


def test_incremental_starts_at_the_initial_value_then_tracks_the_highest() -> None:
    cursor = Incremental("updated_at", initial_value=10)
    assert cursor.start_value == 10
    kept = cursor.track([{"updated_at": 12}, {"updated_at": 9}, {"updated_at": 11}])
    assert kept == [{"updated_at": 12}, {"updated_at": 11}]  # 9 is before the start
    assert cursor.last_value == 12


def test_incremental_resumes_from_the_committed_cursor_minus_lag() -> None:
    assert Incremental("n", 0, lag=5, last_value=100).start_value == 95
    at = Incremental("at", "2024-01-01T00:00:00Z", lag=3600,
                     last_value="2024-05-01T12:00:00Z")
    assert at.start_value == "2024-05-01T11:00:00Z"
    # A late-arriving row inside the lag window is read again; the cursor never goes back.
    assert at.track([{"at": "2024-05-01T11:30:00Z"}]) == [{"at": "2024-05-01T11:30:00Z"}]
    assert at.last_value == "2024-05-01T12:00:00Z"
    moment = datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.timezone.utc)
    back = Incremental("at", lag=datetime.timedelta(days=1), last_value=moment).start_value
    assert back == moment - datetime.timedelta(days=1)


def test_incremental_end_value_bounds_a_backfill() -> None:
    cursor = Incremental("n", 0, end_value=20)
    assert cursor.track([{"n": 5}, {"n": 19}]) == [{"n": 5}, {"n": 19}]
    assert not cursor.reached_end
    assert cursor.track([{"n": 20}, {"n": 25}]) == []
    assert cursor.reached_end
    assert cursor.last_value == 19


def test_incremental_refuses_records_it_cannot_track() -> None:
    cursor = Incremental("n", 0)
    with pytest.raises(StreamError, match="record 1 has no cursor field 'n'"):
        cursor.track([{"n": 1}, {"m": 2}])
    with pytest.raises(StreamError, match="cannot compare"):
        cursor.track([{"n": "x"}])
    with pytest.raises(StreamError, match="lag"):
        Incremental("n", lag="1h")  # type: ignore[arg-type]
    with pytest.raises(StreamError, match="cannot be compared"):
        Incremental("n", 0, end_value="z")


# -- per-stream state through SDK.ingest ----------------------------------------------------


class Numbers(DataSource):
    """Two streams: ``evens`` incremental on ``n``, ``odds`` full refresh by page."""

    streams = (StreamSpec("evens", primary_key="n", cursor_field="n", initial_value=0),
               StreamSpec("odds", table="odd_numbers", primary_key="n"))
    fail_odds_after_pages: int | None = None

    async def read_stream(self, stream: StreamSpec, state: StreamState) -> AsyncIterator[Any]:
        if stream.name == "evens":
            start = state.start_value
            for first in range(start + 2, 21, 4):
                yield [{"n": n} for n in (first, first + 2) if n <= 20]
            return
        page = state.position or 0
        while page < 3:
            if self.fail_odds_after_pages is not None and page >= self.fail_odds_after_pages:
                self.fail_odds_after_pages = None  # once: the retry goes on
                raise PanoplyException("the API hiccupped")
            state.position = page + 1
            yield [{"n": 2 * (page * 2 + i) + 1} for i in range(2)]
            page += 1


async def _ingest(q: LocalQueue, source: dict[str, Any], options: Any = None,
                  **sdk: Any) -> Any:
    states: list[Any] = []
    async with q.sdk(**sdk) as conn:
        result = await conn.ingest(Numbers(source, options),
                                   on_state=lambda _id, state: states.append(state))
    return result, states


async def test_each_stream_gets_its_own_committed_state(panoply_queue: LocalQueue) -> None:
    result, states = await _ingest(panoply_queue, {"type": "numbers"})
    tables = group_by_table(await panoply_queue.arecords())
    assert sorted(r["n"] for r in tables["evens"]) == list(range(2, 21, 2))
    assert sorted(r["n"] for r in tables["odd_numbers"]) == [1, 3, 5, 7, 9, 11]
    # While odds were read, evens' entry said done; at the end only cursors remain.
    assert {"streams": {"evens": {"done": True, "cursor": 20}, "odds": {"position": 2}}} in states
    assert result.state == {"streams": {"evens": {"cursor": 20}, "odds": {}}}

    # The next run: evens only after the cursor (none), odds in full again.
    again, _ = await _ingest(panoply_queue, {"type": "numbers", "state": result.state})
    tables = group_by_table(await panoply_queue.arecords())
    assert list(tables) == ["odd_numbers"]
    assert again.records == 6


async def test_a_retried_read_continues_each_stream_where_it_was(
        panoply_queue: LocalQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Numbers, "fail_odds_after_pages", 2)
    result, _ = await _ingest(panoply_queue, {"type": "numbers"})
    ids = [r["n"] for r in await panoply_queue.arecords()]
    assert sorted(ids) == sorted(set(ids)) == sorted([*range(1, 12, 2), *range(2, 21, 2)])
    assert result.state["streams"]["odds"] == {}


async def test_a_stream_state_waits_for_its_records_to_be_acknowledged(
        tmp_path: Path) -> None:
    apikey, apisecret = make_credentials("acme")
    states: list[Any] = []
    with anyio.fail_after(60):
        async with SDK(apikey, apisecret, endpoint_url=unused_endpoint_url(),
                       shutdown_timeout=0.5, max_attempts=1, spool_dir=tmp_path) as conn:
            result = await conn.ingest(Numbers({"type": "numbers"}),
                                       on_state=lambda _id, state: states.append(state))
    assert result.records == 16
    # Nothing reached SQS (it is all spooled): no stream's state was committed.
    assert states == []
    assert result.state is None
    assert not result.delivered
    assert conn.stats.records_spooled == 16


async def test_unknown_stream_selection_is_refused_before_reading(
        panoply_queue: LocalQueue) -> None:
    source = Numbers({"type": "numbers"})
    with pytest.raises(StreamError, match=r"unknown stream\(s\) 'primes'.*evens, odds"):
        await source.select_streams(["evens", "primes"])
    result, _ = await _ingest(panoply_queue, {"type": "numbers"}, {"streams": ["odds"]})
    assert result.tables == {"odd_numbers": 6}


# -- the legacy catalog -----------------------------------------------------------------


class Legacy(DataSource):
    """A legacy-shaped source: plain read() and a plain classmethod list_resources."""

    @classmethod
    def list_resources(cls, source: dict[str, Any], options: Any = None) -> Any:
        return [{"id": "contacts", "title": "Contacts",
                 "fields": [{"name": "id", "type": "integer", "is_mandatory": True}]},
                {"id": "deals", "title": "Deals"}]

    def read(self, n: int | None = None) -> Any:  # type: ignore[override]
        return None


async def test_list_resources_is_read_as_the_catalog_and_selects_resources() -> None:
    source = Legacy({"type": "crm"})
    specs = await source.catalog()
    assert [(s.name, s.title, s.sync_mode) for s in specs] == [
        ("contacts", "Contacts", "full_refresh"), ("deals", "Deals", "full_refresh")]
    assert specs[0].json_schema == {"type": "object", "properties": {"id": {"type": "integer"}},
                                    "required": ["id"]}
    await source.select_streams(["deals"])
    assert source.source["resources"] == ["deals"]  # the legacy param the connector reads
    with pytest.raises(StreamError, match="offers no streams"):
        await DataSource({"type": "x"}).select_streams(["a"])


# -- the state file ---------------------------------------------------------------------


def test_state_file_version_2_round_trip_and_single_state_files(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = {"streams": {"a": {"cursor": 3}, "b": {"position": 2}}, "legacy": 1}
    StateFile(path).save("a", state)
    on_disk = json.loads(path.read_text())
    assert on_disk == {"version": 2, "streams": state["streams"], "state_id": "a",
                       "state": {"legacy": 1}, "lastTimeSucceed": None}
    assert StateFile(path).load() == ("a", state)
    # A file from before streams loads as it always did, and is saved the same way.
    path.write_text('{"state_id": 4, "state": {"next": 9}}')
    assert StateFile(path).load() == (4, {"next": 9})
    StateFile(path).save(5, {"next": 10})
    assert "version" not in json.loads(path.read_text())


@pytest.mark.parametrize(("text", "problem"), [
    ('{"version": 3, "streams": {}}', "version 3 is not supported"),
    ('{"version": 2, "streams": {"a": 1}}', "one object per stream"),
    ('{"version": 2, "streams": {}, "state": [1]}', "must be an object or null"),
    ('{"version": 2, "cursor": 1}', "unexpected keys 'cursor'"),
])
def test_state_file_version_2_problems_are_named(tmp_path: Path, text: str,
                                                 problem: str) -> None:
    from panoply_async.errors import StateFileError

    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(StateFileError, match=problem):
        StateFile(path).load()


class Backfill(DataSource):
    """An endless incremental stream bounded by ``end_value``."""

    streams = (StreamSpec("ticks", cursor_field="t", initial_value=0, end_value=25),)
    closed = False

    async def read_stream(self, stream: StreamSpec, state: StreamState) -> AsyncIterator[Any]:
        t = state.start_value
        try:
            while True:
                yield [{"t": t + i} for i in range(1, 11)]
                t += 10
        finally:
            type(self).closed = True


async def test_end_value_ends_an_endless_stream_and_closes_it(
        panoply_queue: LocalQueue) -> None:
    with anyio.fail_after(30):
        async with panoply_queue.sdk() as conn:
            result = await conn.ingest(Backfill({"type": "b"}))
    assert sorted(r["t"] for r in await panoply_queue.arecords()) == list(range(1, 25))
    assert result.state == {"streams": {"ticks": {"cursor": 24}}}
    assert Backfill.closed


class Synced(DataSource):
    """A stream whose API hands out a sync token: kept as the stream's bookmark."""

    streams = (StreamSpec("changes", primary_key="id"),)

    async def read_stream(self, stream: StreamSpec, state: StreamState) -> AsyncIterator[Any]:
        token = state.bookmark or 0
        state.bookmark = token + 1  # what the API would return with this page
        yield [{"id": token}]


async def test_a_bookmark_is_kept_from_run_to_run(panoply_queue: LocalQueue) -> None:
    state: Any = None
    for expected in range(2):
        async with panoply_queue.sdk() as conn:
            result = await conn.ingest(Synced({"type": "s", "state": state}))
        state = result.state
        assert state == {"streams": {"changes": {"bookmark": expected + 1}}}
        assert [r["id"] for r in await panoply_queue.arecords()] == [expected]


def test_the_contract_accepts_read_stream_and_names_its_problems() -> None:
    import types

    from panoply_async import check_connector

    def module(stream: type) -> types.ModuleType:
        mod = types.ModuleType("m")
        mod.Stream = stream  # type: ignore[attr-defined]
        mod.CONFIG = {"title": "T", "icon": "data:image/png;base64,iVBORw0KGgo=",  # type: ignore[attr-defined]
                      "params": []}
        return mod

    assert check_connector(module(Numbers)) == []

    class Twice(Numbers):
        streams = (StreamSpec("a"), StreamSpec("a"))

    class Plain(DataSource):
        streams = (StreamSpec("a"),)

        def read_stream(self, stream: StreamSpec, state: StreamState) -> Any:  # type: ignore[override]
            return []

    assert check_connector(module(Twice)) == ["Stream.streams declares 'a' twice"]
    assert check_connector(module(Plain)) == [
        "Stream.read_stream must be an async generator (`yield` each batch)"]
    assert check_connector(module(DataSource)) == [
        "Stream does not implement read() (or read_stream() for its streams)"]
