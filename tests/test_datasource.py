"""`DataSource`: reporting helpers, events (also from worker threads), masking, records."""

from __future__ import annotations

import base64
import logging
import re
import sys
import threading
import types
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.to_thread
import pytest

from panoply_async.connectors._datasource import (
    DataSource,
    RecordGroup,
    is_legacy_reader,
    to_record,
)
from panoply_async.errors import PanoplyException, WrongTypeOrValueError


class Reader(DataSource):
    closed = 0

    async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        yield [{"i": 1}]

    async def close(self) -> None:
        self.closed += 1


class LegacyReader(DataSource):
    def read(self, n: int | None = None) -> list[dict[str, Any]] | None:  # type: ignore[override]
        return None


class CoroutineReader(DataSource):
    async def read(self, n: int | None = None) -> list[dict[str, Any]]:  # type: ignore[override]
        return []


# -- construction and lifecycle ----------------------------------------------------------


def test_keeps_the_source_itself_and_a_copy_of_options() -> None:
    source = {"type": "x"}
    options = {"hint": 1}
    ds = DataSource(source, options)
    assert ds.source is source
    assert ds.options == options
    assert ds.options is not options
    assert DataSource({}).options == {}


def test_source_must_be_a_dict() -> None:
    with pytest.raises(TypeError, match="source must be a dict"):
        DataSource([("type", "x")])  # type: ignore[arg-type]


async def test_base_read_says_subclasses_must_implement_it() -> None:
    with pytest.raises(PanoplyException, match="must implement read") as info:
        async for _ in DataSource({}).read():
            pass
    assert info.value.retryable is False


async def test_async_with_returns_self_and_closes() -> None:
    reader = Reader({})
    async with reader as entered:
        assert entered is reader
        assert [b async for b in entered.read()] == [[{"i": 1}]]
        assert reader.closed == 0
    assert reader.closed == 1


async def test_async_with_closes_on_error() -> None:
    reader = Reader({})
    with pytest.raises(RuntimeError):
        async with reader:
            raise RuntimeError("boom")
    assert reader.closed == 1


async def test_base_close_does_nothing() -> None:
    async with DataSource({"type": "x"}) as ds:
        pass
    assert ds.source == {"type": "x"}


def test_is_legacy_reader_tells_the_protocols_apart() -> None:
    assert is_legacy_reader(LegacyReader({})) is True
    assert is_legacy_reader(Reader({})) is False
    assert is_legacy_reader(DataSource({})) is False
    assert is_legacy_reader(CoroutineReader({})) is False


async def test_resources_are_not_supported_by_default() -> None:
    with pytest.raises(PanoplyException, match="not supported") as listing:
        await Reader.list_resources({}, {})
    assert listing.value.retryable is False
    with pytest.raises(PanoplyException, match="not supported") as getting:
        await Reader.get_resource("users", {})
    assert getting.value.retryable is False


# -- events ---------------------------------------------------------------------------


def test_progress_state_and_wildcard_events() -> None:
    ds = DataSource({})
    progress: list[Any] = []
    states: list[Any] = []
    everything: list[tuple[str, Any]] = []
    returned = ds.on("progress", progress.append).on("source-state", states.append)
    ds.on("*", lambda name, data: everything.append((name, data)))
    assert returned is ds
    ds.progress(3, 10, "3 of 10")
    ds.progress(4, None)
    ds.state("page-2", {"cursor": "abc"})
    assert progress == [{"loaded": 3, "total": 10, "msg": "3 of 10"},
                        {"loaded": 4, "total": None, "msg": ""}]
    assert states == [{"state_id": "page-2", "stateId": "page-2", "state": {"cursor": "abc"}}]
    assert [name for name, _ in everything] == ["progress", "progress", "source-state"]


def test_custom_events_and_failing_handlers(caplog: pytest.LogCaptureFixture) -> None:
    ds = DataSource({})
    got: list[Any] = []

    def broken(data: Any) -> None:
        raise RuntimeError("handler bug")

    ds.on("custom", broken).on("custom", got.append)
    with caplog.at_level(logging.ERROR):
        ds.fire("custom", {"x": 1})
    assert got == [{"x": 1}]
    assert "handler for event 'custom' raised" in caplog.text


def test_raw_returns_the_legacy_raw_object_and_fires_nothing() -> None:
    ds = DataSource({})
    fired: list[Any] = []
    ds.on("*", lambda name, data: fired.append(name))
    obj = ds.raw("invoices", b"\x00\xffbody", {"page": 1})
    assert obj["type"] == "raw"
    assert obj["tag"] == "invoices"
    assert obj["metadata"] == {"page": 1}
    assert base64.b64decode(obj["raw"]) == b"\x00\xffbody"
    assert base64.b64decode(ds.raw("t", "héllo", None)["raw"]).decode("utf-8") == "héllo"
    assert fired == []


# -- events from threads ------------------------------------------------------------------


class Recorder:
    """Handlers that remember the thread they ran on."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, int]] = []

    def handler(self, name: str) -> Any:
        def record(data: Any) -> None:
            self.calls.append((name, data, threading.get_ident()))
        return record


async def test_reports_from_a_worker_thread_reach_handlers_on_the_loop_thread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ds = DataSource({"type": "legacy", "password": "hunter22"})
    recorder = Recorder()
    ds.on("progress", recorder.handler("progress")).on("source-state",
                                                       recorder.handler("state"))
    loop_thread = threading.get_ident()

    def legacy_read() -> int:
        ds.progress(1, 2, "half")
        ds.state(7, {"offset": 100})
        ds.log("connecting with", "hunter22")
        return threading.get_ident()

    with caplog.at_level(logging.INFO, logger="panoply_async.datasource"):
        worker = await anyio.to_thread.run_sync(legacy_read)
    assert worker != loop_thread
    assert [(name, data) for name, data, _ in recorder.calls] == [
        ("progress", {"loaded": 1, "total": 2, "msg": "half"}),
        ("state", {"state_id": 7, "stateId": 7, "state": {"offset": 100}}),
    ]
    assert {thread for _, _, thread in recorder.calls} == {loop_thread}
    assert "connecting with ***" in caplog.text
    assert "hunter22" not in caplog.text


async def test_reports_from_a_thread_the_connector_started_itself() -> None:
    ds = DataSource({})
    recorder = Recorder()
    ds.on("progress", recorder.handler("progress"))
    loop_thread = threading.get_ident()
    thread = threading.Thread(target=lambda: ds.progress(5, 5, "done"))
    thread.start()
    # The loop stays free while the thread hands its event over.
    await anyio.to_thread.run_sync(thread.join)
    assert [(data, tid) for _, data, tid in recorder.calls] == [
        ({"loaded": 5, "total": 5, "msg": "done"}, loop_thread)
    ]


def test_without_any_loop_handlers_run_directly() -> None:
    ds = DataSource({})
    recorder = Recorder()
    ds.on("progress", recorder.handler("progress"))
    thread = threading.Thread(target=lambda: ds.progress(1, 1))
    thread.start()
    thread.join()
    assert [data for _, data, _ in recorder.calls] == [{"loaded": 1, "total": 1, "msg": ""}]


# -- logging and masking ------------------------------------------------------------------


def test_log_masks_secret_looking_source_keys(caplog: pytest.LogCaptureFixture) -> None:
    source = {
        "type": "crm",
        "user": "alice",
        "Password": "pa55word",
        "api_key": "k-123456",
        "oauth": {"access_token": "tok-abcdef", "nested": {"client_secret": "shh-secret"}},
        "accounts": ["acme"],
    }
    ds = DataSource(source)
    with caplog.at_level(logging.INFO, logger="panoply_async.datasource"):
        ds.log("user", "alice", "pass", "pa55word", "key", "k-123456")
        ds.log({"auth": "Bearer tok-abcdef", "secret": "shh-secret"})
    text = caplog.text
    for secret in ("pa55word", "k-123456", "tok-abcdef", "shh-secret"):
        assert secret not in text
    assert "user alice pass *** key ***" in text
    assert "Bearer ***" in text
    assert caplog.records[0].name == "panoply_async.datasource.DataSource"


def test_log_masks_params_the_module_config_marks_secret(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    module = types.ModuleType("fake_connector_for_masking")
    module.CONFIG = {  # type: ignore[attr-defined]
        "title": "Fake",
        "params": [
            {"name": "dsn", "secret": True},
            {"name": "pin", "type": "password"},
            {"name": "region"},
        ],
    }
    monkeypatch.setitem(sys.modules, module.__name__, module)

    class Fake(DataSource):
        pass

    Fake.__module__ = module.__name__
    ds = Fake({"dsn": "postgres://u:p@db/x", "pin": 42, "region": "eu-west-1"})
    with caplog.at_level(logging.INFO, logger="panoply_async.datasource"):
        ds.log("connect", "postgres://u:p@db/x", "pin", 42, "in", "eu-west-1")
    assert "postgres://u:p@db/x" not in caplog.text
    assert "connect *** pin *** in eu-west-1" in caplog.text


def test_log_calls_the_legacy_logger_option_with_masked_messages() -> None:
    got: list[tuple[str, ...]] = []
    ds = DataSource({"token": "t0ps3cret"}, {"logger": got.append})
    ds.log("using", "t0ps3cret")
    assert got == [("using", "***")]


def test_mask_prefers_the_longest_secret() -> None:
    ds = DataSource({"token": "abc", "refresh_token": "abcdef"})
    assert ds.mask("x abcdef y abc") == "x *** y ***"


# -- records ----------------------------------------------------------------------------

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_to_record_wraps_a_dict_or_a_list_of_dicts() -> None:
    one: RecordGroup = to_record("users", {"id": 1})
    assert one["data"] == [{"id": 1}]
    assert one["metadata"]["resource_id"] == "users"
    assert TIMESTAMP.match(one["metadata"]["timestamp"])
    many = to_record("users", [{"id": 1}, {"id": 2}])
    assert many["data"] == [{"id": 1}, {"id": 2}]
    assert to_record("users", [])["data"] == []


@pytest.mark.parametrize("resource", ["", "   ", 5, None])
def test_to_record_refuses_a_bad_resource(resource: Any) -> None:
    with pytest.raises(WrongTypeOrValueError, match="`resource` must be a non-empty string"):
        to_record(resource, {"id": 1})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (5, "must be a dict or a list of dicts, not int"),
        ("abc", "not str"),
        ([1], "item 0 of the data of 'users' is a int"),
        ([{"id": 1}, "two"], "item 1 of the data of 'users' is a str"),
    ],
)
def test_to_record_refuses_bad_data(data: Any, message: str) -> None:
    with pytest.raises(WrongTypeOrValueError, match=re.escape(message)) as info:
        to_record("users", data)
    # Generic handlers keep working.
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, ValueError)


def test_to_record_copies_the_dict() -> None:
    record = {"id": 1}
    group = to_record("users", record)
    record["id"] = 2
    assert group["data"] == [{"id": 1}]
    assert sorted(group) == ["data", "metadata"]
