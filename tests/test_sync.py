"""SyncSDK and the legacy-shaped SDK: threads, process exit, fork, backpressure, handlers.

Whole-process behaviour (exit without close(), fork) runs in a child Python
process against the real local SQS server; the rest uses the in-memory
transport or the local server in this process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import decimal
import enum
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter, UserDict
from collections.abc import Callable, Sequence
from typing import Any

import pytest

import panoply_async.sync._sdk as sync_module
from panoply_async import (
    SDK,
    ConfigurationError,
    CredentialsError,
    DeliveryError,
    MemoryTransport,
    Message,
    RecordError,
    RecordTooLargeError,
    RecordTypeError,
    SendError,
    SendOutcome,
    SyncSDK,
    decode_body,
    encode_record,
)
from panoply_async.sync._legacy_sdk import SDK as LegacySDK
from panoply_async.testing import LocalQueue


def ids(transport: MemoryTransport) -> list[int]:
    return [r["id"] for body in transport.bodies for r in decode_body(body)]


def run_child(
    script: str, q: LocalQueue, *args: str, timeout: float = 180, forks: bool = False
) -> str:
    env = {
        **os.environ,
        "PANOPLY_TEST_ENDPOINT": q.endpoint_url,
        "PANOPLY_TEST_KEY": q.apikey,
        "PANOPLY_TEST_SECRET": q.apisecret,
    }
    # A hung child prints every thread's stack and exits instead of waiting for
    # the timeout below. Not in a script that forks: a forked child of a process
    # with a pending dump_traceback_later() hangs at exit (CPython behaviour).
    watchdog = (
        "" if forks else
        f"import faulthandler; faulthandler.dump_traceback_later({timeout - 30}, exit=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", watchdog + textwrap.dedent(script), *args],
        env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert q.apisecret not in done.stdout + done.stderr
    return done.stdout + done.stderr


def received_ids(q: LocalQueue) -> Counter[int]:
    return Counter(r["id"] for r in q.records())


THREADS_THEN_EXIT = """
    import os, sys, threading
    from panoply_async import SyncSDK

    conn = SyncSDK(os.environ["PANOPLY_TEST_KEY"], os.environ["PANOPLY_TEST_SECRET"],
                   endpoint_url=os.environ["PANOPLY_TEST_ENDPOINT"], flush_interval=30)

    def work(first):
        for i in range(first, 20_000, 8):
            conn.write("events" if i % 3 else "users", {"id": i, "pad": "x" * (i % 90)})

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    if sys.argv[1] == "join":
        for thread in threads:
            thread.join()
    # No flush(), no close(): the process just ends.
"""


@pytest.mark.parametrize("main", ["join", "return"])
def test_eight_threads_then_exit_deliver_every_record_once(
    panoply_queue: LocalQueue, main: str
) -> None:
    # "return": the main thread ends while the writers still run; the exit
    # hooks must wait for them (non-daemon threads) and drain what they wrote.
    run_child(THREADS_THEN_EXIT, panoply_queue, main)
    counts = received_ids(panoply_queue)
    assert sorted(counts) == list(range(20_000))
    assert set(counts.values()) == {1}


FORK = """
    import os, sys, threading
    from panoply_async import SyncSDK

    conn = SyncSDK(os.environ["PANOPLY_TEST_KEY"], os.environ["PANOPLY_TEST_SECRET"],
                   endpoint_url=os.environ["PANOPLY_TEST_ENDPOINT"], flush_interval=3600)
    flushed = []
    child_saw_all = threading.Event()

    def on_flush(data):
        flushed.append(data["records"])
        if sum(flushed) == 1000:
            child_saw_all.set()

    conn.on("flush", on_flush)
    for i in range(0, 1000):
        conn.write("t", {"id": i, "who": "parent-before"})
    # The long flush interval keeps these in the parent's open message at the fork.
    assert conn.stats.records_pending == 1000
    pid = os.fork()
    if pid == 0:
        for i in range(1000, 2000):
            conn.write("t", {"id": i, "who": "child"})
        assert conn.stats.records_accepted == 1000, conn.stats
        conn.flush()
        # Handlers run on the event thread, maybe after flush() returned.
        assert child_saw_all.wait(60), flushed  # handlers work in the child too
        for i in range(2000, 2500):
            conn.write("t", {"id": i, "who": "child"})
        sys.exit(0)  # a normal exit: the exit hooks drain the child's engine
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    for i in range(2500, 3000):
        conn.write("t", {"id": i, "who": "parent-after"})
    conn.close()
    assert conn.stats.records_delivered == 1500, conn.stats
    assert sum(flushed) == 1500, flushed
    print("parent done")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_sends_only_its_own_records(panoply_queue: LocalQueue) -> None:
    out = run_child(FORK, panoply_queue, forks=True)
    assert "parent done" in out
    counts = received_ids(panoply_queue)
    assert sorted(counts) == list(range(3000))
    assert set(counts.values()) == {1}


MULTIPROCESSING_FORK = """
    import multiprocessing, os
    from panoply_async import SyncSDK

    conn = SyncSDK(os.environ["PANOPLY_TEST_KEY"], os.environ["PANOPLY_TEST_SECRET"],
                   endpoint_url=os.environ["PANOPLY_TEST_ENDPOINT"], flush_interval=3600)

    def child(first):
        for i in range(first, first + 500):
            conn.write("t", {"id": i})
        # multiprocessing ends its children with os._exit(): no atexit handlers.

    if __name__ == "__main__":
        for i in range(500):
            conn.write("t", {"id": i})
        context = multiprocessing.get_context("fork")
        workers = [context.Process(target=child, args=(500 * (n + 1),)) for n in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
            assert worker.exitcode == 0
        conn.close()
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_multiprocessing_fork_children_deliver_before_exit(panoply_queue: LocalQueue) -> None:
    run_child(MULTIPROCESSING_FORK, panoply_queue, forks=True)
    counts = received_ids(panoply_queue)
    assert sorted(counts) == list(range(2000))
    assert set(counts.values()) == {1}


LEGACY_SCRIPT = """
    import os
    from panoply_async.sync._legacy_sdk import SDK

    sdk = SDK(os.environ["PANOPLY_TEST_KEY"], os.environ["PANOPLY_TEST_SECRET"],
              endpoint_url=os.environ["PANOPLY_TEST_ENDPOINT"])
    errors = []
    sdk.on("error", errors.append)
    for i in range(3000):
        sdk.write("legacy", {"id": i})
    print(sdk.qurl)

    def one_off(first):  # an instance nothing refers to once the call returns
        dropped = SDK(os.environ["PANOPLY_TEST_KEY"], os.environ["PANOPLY_TEST_SECRET"],
                      endpoint_url=os.environ["PANOPLY_TEST_ENDPOINT"])
        for i in range(first, first + 500):
            dropped.write("legacy", {"id": i})

    one_off(3000)
    import gc
    gc.collect()
    # Exits at once: the legacy SDK lost up to two seconds of records here.
"""


def test_legacy_sdk_without_with_drains_at_exit(panoply_queue: LocalQueue) -> None:
    out = run_child(LEGACY_SCRIPT, panoply_queue)
    assert panoply_queue.queue_url in out
    counts = received_ids(panoply_queue)
    assert sorted(counts) == list(range(3500))
    assert set(counts.values()) == {1}


# -- in this process -------------------------------------------------------------------


def test_write_from_threads_to_the_local_server(panoply_queue: LocalQueue) -> None:
    with SyncSDK(panoply_queue.apikey, panoply_queue.apisecret,
                 endpoint_url=panoply_queue.endpoint_url) as conn:
        def work(n: int) -> None:
            conn.write_many("many", [{"id": i} for i in range(n * 1000, n * 1000 + 500)])
            for i in range(n * 1000 + 500, n * 1000 + 1000):
                conn.write("one", {"id": i})

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        conn.flush(timeout=60)
        assert conn.stats.records_delivered == 4000
        assert conn.stats.records_pending == 0
    tables = panoply_queue.tables()
    assert sorted(r["id"] for r in tables["many"] + tables["one"]) == sorted(
        i for n in range(4) for i in range(n * 1000, n * 1000 + 1000)
    )


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: decimal.Decimal


TRICKY: list[tuple[str, Any]] = [
    ("t", {"id": 1, "s": "plain"}),
    ("t", {"id": 2, "d": decimal.Decimal("3.14159265358979323846264338327950288")}),
    ("t", {"id": 3, "big": 2**70, "neg": -(2**65), "u64": 2**64 - 1}),
    ("t", {"id": 4, "nonchar": "a\ufffeb\uffffc", "ctl": "\x00\x1f"}),
    ("t", {"id": 5, "when": datetime.datetime(2024, 1, 2, 3, 4, 5, 678901)}),
    ("t", {"id": 6, "tuple": (1, 2), "set": {3}, "nested": {"x": [1.5, float("nan")]}}),
    ("t", UserDict({"id": 7, "mapping": True})),
    ("t", {"id": 8, "__table": "ignored"}),
    ("t", {"id": 9, "enum": Colour.RED, "point": Point(1, decimal.Decimal("1E+2"))}),
    ("u", {}),
    ("t", {"id": 10, "f": 0.1, "neg0": -0.0, "e": 1e300}),
    ("t\u00e9", {"id": 11, "k\u00e9y": "\u65e5\u672c"}),
]


async def async_bodies(
    credentials: tuple[str, str], items: Sequence[tuple[str, Any]]
) -> list[bytes]:
    transport = MemoryTransport()
    async with SDK(*credentials, transport=transport) as conn:
        for table, data in items:
            await conn.write(table, data)
    return transport.bodies


def test_records_are_sent_exactly_as_the_async_sdk_sends_them(
    vector_credentials: tuple[str, str], vectors: dict[str, Any]
) -> None:
    items = TRICKY + [(case["table"], case["data"]) for case in vectors["records"]]
    expected = asyncio.run(async_bodies(vector_credentials, items))
    for write_many in (False, True):
        transport = MemoryTransport()
        with SyncSDK(*vector_credentials, transport=transport) as conn:
            for table, data in items:
                if write_many:
                    conn.write_many(table, [data])
                else:
                    conn.write(table, data)
        assert transport.bodies == expected


def test_later_changes_to_a_written_dict_are_not_sent(
    vector_credentials: tuple[str, str],
) -> None:
    transport = MemoryTransport()
    with SyncSDK(*vector_credentials, transport=transport, flush_interval=3600) as conn:
        record: dict[str, Any] = {"id": 1, "items": [1]}
        conn.write("t", record)
        record["items"].append(2)
        record["id"] = 2
    assert [r["items"] for b in transport.bodies for r in decode_body(b)] == [[1]]


def padded(line_bytes: int) -> dict[str, str]:
    """A record whose line for table "t" is exactly ``line_bytes`` long."""
    overhead = len(encode_record("t", {"pad": ""}))
    return {"pad": "x" * (line_bytes - overhead)}


async def async_accepts(credentials: tuple[str, str], record: dict[str, str], **options: Any
                        ) -> bool:
    async with SDK(*credentials, transport=MemoryTransport(), **options) as conn:
        try:
            await conn.write("t", record)
        except RecordTooLargeError:
            return False
    return True


def test_caller_side_limit_matches_the_engine(vector_credentials: tuple[str, str]) -> None:
    # The caller's thread refuses exactly the records the engine would refuse.
    for max_message_bytes in (2048, 262_144, 1_048_576):
        options = {"max_message_bytes": max_message_bytes,
                   "max_buffer_bytes": 4 * max_message_bytes}
        with SyncSDK(*vector_credentials, transport=MemoryTransport(), **options) as conn:
            limit = conn._line_limit
            conn.write("t", padded(limit))
            with pytest.raises(RecordTooLargeError):
                conn.write("t", padded(limit + 1))
        assert asyncio.run(async_accepts(vector_credentials, padded(limit), **options))
        assert not asyncio.run(async_accepts(vector_credentials, padded(limit + 1), **options))


def test_bad_records_raise_in_the_calling_thread(vector_credentials: tuple[str, str]) -> None:
    transport = MemoryTransport()
    caught: dict[str, BaseException] = {}
    with SyncSDK(*vector_credentials, transport=transport, max_message_bytes=2048,
                 max_buffer_bytes=8192) as conn:
        cases: dict[str, Callable[[], Any]] = {
            "type": lambda: conn.write("t", {"id": 0, "bad": object()}),
            "surrogate": lambda: conn.write("t", {"id": 0, "s": "\ud800"}),
            "large": lambda: conn.write("t", {"id": 0, "pad": "x" * 4000}),
            "table": lambda: conn.write(7, {"id": 0}),  # type: ignore[arg-type]
            "not-a-mapping": lambda: conn.write("t", [1, 2]),  # type: ignore[arg-type]
            "many": lambda: conn.write_many("t", [{"id": 0}, {"id": 0, "bad": {1, object()}}]),
        }

        def attempt(name: str, call: Callable[[], Any]) -> None:
            try:
                call()
            except BaseException as exc:
                caught[name] = exc

        for name, call in cases.items():
            thread = threading.Thread(target=attempt, args=(name, call))
            thread.start()
            thread.join()
        conn.write("t", {"id": 1})
    assert isinstance(caught["type"], RecordTypeError)
    assert caught["type"].path == '["bad"]'  # type: ignore[attr-defined]
    assert type(caught["surrogate"]) is RecordError
    assert isinstance(caught["large"], RecordTooLargeError)
    assert isinstance(caught["table"], RecordTypeError)
    assert isinstance(caught["not-a-mapping"], RecordTypeError)
    assert isinstance(caught["many"], RecordTypeError)
    assert ids(transport) == [1]  # nothing of a refused call was sent
    assert conn.stats.records_rejected == 6
    assert conn.stats.records_delivered == 1


class GateTransport(MemoryTransport):
    """Acknowledges only once ``opened`` (set from any thread through ``open_gate``)."""

    def __init__(self) -> None:
        super().__init__(keep_bodies=True)
        self._gate: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def open(self) -> None:
        self._gate = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        await super().open()

    def open_gate(self) -> None:
        assert self._loop is not None
        assert self._gate is not None
        self._loop.call_soon_threadsafe(self._gate.set)

    async def send(self, messages: Sequence[Message]) -> SendOutcome:
        assert self._gate is not None
        await self._gate.wait()
        return await super().send(messages)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.005)


def test_write_blocks_while_the_buffer_is_full_and_never_drops(
    vector_credentials: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync_module, "_HANDOFF_BYTES", 16_384)
    transport = GateTransport()
    total = 5000
    written: list[int] = []
    conn = SyncSDK(*vector_credentials, transport=transport, max_message_bytes=4096,
                   max_buffer_bytes=16_384, request_timeout=600)

    def writer() -> None:
        for i in range(total):
            conn.write("t", {"id": i, "pad": "p" * 60})
            written.append(i)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        # Nothing is acknowledged: the SDK's buffer fills up (the pump then
        # waits inside write_many), then the hand-off list; from then on the
        # writer can only wait.
        sdk = conn._engine.sdk
        assert sdk is not None
        shortest = len(encode_record("t", {"id": 0, "pad": "p" * 60}))
        wait_until(
            lambda: sdk.buffered_bytes + shortest > 16_384
            and conn._engine.pending_bytes >= 16_384,
            "the buffer and the hand-off list are full",
        )
        stats = conn.stats
        returned = len(written)
        assert thread.is_alive()
        assert returned < total
        assert sdk.buffered_bytes <= 16_384
        assert stats.records_delivered == 0
        # Every write() that returned was accepted (one may be between its
        # return and the append above).
        assert returned <= stats.records_accepted <= returned + 1
    finally:
        transport.open_gate()
        thread.join()
        conn.close()
    assert sorted(ids(transport)) == list(range(total))
    assert conn.stats.records_delivered == total


def test_raising_and_slow_handlers_do_not_hold_up_delivery(
    vector_credentials: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    transport = MemoryTransport()
    release = threading.Event()
    slow_calls: list[int] = []
    seen: list[str] = []
    engine_threads: set[str] = set()

    slow_started = threading.Event()

    def slow(data: dict[str, Any]) -> None:
        slow_calls.append(data["records"])
        slow_started.set()
        release.wait(60)

    def failing(data: dict[str, Any]) -> None:
        raise ValueError("handler bug")

    async def coroutine_handler(name: str, data: Any) -> None:
        engine_threads.add(threading.current_thread().name)
        seen.append(name)

    caplog.set_level(logging.ERROR, logger="panoply_async")
    with SyncSDK(*vector_credentials, transport=transport) as conn:
        conn.on("flush", failing).on("send", slow).on("*", coroutine_handler)
        for batch in range(3):
            for i in range(batch * 100, batch * 100 + 100):
                conn.write("t", {"id": i})
            conn.flush(timeout=60)  # returns while `slow` is still blocked
            assert ids(transport) == list(range(batch * 100 + 100))
        assert slow_started.wait(60)
        assert slow_calls == [100]  # still in the first call
        release.set()
    assert slow_calls == [100, 100, 100]
    assert seen.count("flush") == 3
    assert seen.count("send") == 3
    assert engine_threads == {"panoply-async-engine"}
    assert sum("handler bug" in r.getMessage() or "raised" in r.getMessage()
               for r in caplog.records) == 3


def test_coroutine_handlers_cannot_block_the_engine(vector_credentials: tuple[str, str]) -> None:
    refused: list[str] = []

    async def handler(data: Any) -> None:
        for call in (conn.flush, conn.close):
            try:
                call()
            except RuntimeError as exc:
                refused.append(str(exc))

    with SyncSDK(*vector_credentials, transport=MemoryTransport()) as conn:
        conn.on("flush", handler)
        conn.write("t", {"id": 1})
        conn.flush()
    assert len(refused) == 2
    assert all("coroutine event handler" in text for text in refused)


def test_plain_handlers_run_off_the_caller_thread(vector_credentials: tuple[str, str]) -> None:
    names: list[str] = []
    with SyncSDK(*vector_credentials, transport=MemoryTransport()) as conn:
        conn.on("flush", lambda data: names.append(threading.current_thread().name))
        conn.write("t", {"id": 1})
        conn.flush()
    assert names == ["panoply-async-events"]


def always_refuse(messages: Sequence[Message]) -> SendError:
    return SendError("AccessDenied: no", retryable=False, code="AccessDenied")


def test_secret_never_shown(vector_credentials: tuple[str, str]) -> None:
    apikey, apisecret = vector_credentials
    conn = SyncSDK(apikey, apisecret, transport=MemoryTransport(fault=always_refuse))
    legacy = LegacySDK(apikey, apisecret, transport=MemoryTransport(fault=always_refuse))
    errors: list[BaseException] = []
    legacy.on("error", errors.append)
    shown = [repr(conn), str(conn), repr(legacy), str(legacy)]
    conn.write("t", {"id": 1})
    legacy.write("t", {"id": 1})
    with pytest.raises(DeliveryError) as raised:
        conn.close()
    shown += [str(raised.value), repr(raised.value)]
    with pytest.raises(DeliveryError) as raised_legacy:
        legacy.close()
    shown += [str(raised_legacy.value), repr(errors)]
    for bad in ({"endpoint_url": "ftp://x"}, {"flush_interval": -1}):
        with pytest.raises(ConfigurationError) as refused:
            SyncSDK(apikey, apisecret, **bad)
        shown.append(str(refused.value))
    with pytest.raises(CredentialsError) as bad_secret:
        SyncSDK(apikey, apisecret + "garbage")
    shown.append(str(bad_secret.value))
    assert all(apisecret not in text for text in shown), shown
    assert len(errors) == 1
    assert isinstance(errors[0], SendError)


def test_options_are_validated_in_the_constructor(vector_credentials: tuple[str, str]) -> None:
    with pytest.raises(TypeError, match="no_such_option"):
        SyncSDK(*vector_credentials, no_such_option=1)
    with pytest.raises(ValueError, match="flush_interval"):
        SyncSDK(*vector_credentials, flush_interval=0)
    with pytest.raises(ValueError, match="unknown event"):
        SyncSDK(*vector_credentials).on("nope", print)


def test_lifecycle(vector_credentials: tuple[str, str]) -> None:
    transport = MemoryTransport()
    conn = SyncSDK(*vector_credentials, transport=transport)
    assert "state='new'" in repr(conn)
    conn.flush()  # nothing written: nothing to do, no engine started
    assert conn._engine.thread is None
    conn.write("t", {"id": 1})
    assert "state='open'" in repr(conn)
    conn.close()
    conn.close()  # idempotent
    assert "state='closed'" in repr(conn)
    assert ids(transport) == [1]
    with pytest.raises(RuntimeError, match="closed"):
        conn.write("t", {"id": 2})
    assert conn._engine.thread is not None
    assert not conn._engine.thread.is_alive()


def test_legacy_shape(vector_credentials: tuple[str, str], vectors: dict[str, Any]) -> None:
    apikey, apisecret = vector_credentials
    transport = MemoryTransport()
    legacy = LegacySDK(apikey, apisecret, transport=transport)
    assert legacy.qurl == vectors["credentials"][0]["queue_url"]
    assert legacy.apikey == apikey
    assert legacy.apisecret == apisecret
    assert legacy.account == apikey.split("/")[0]
    events: list[tuple[str, Any]] = []
    assert legacy.on("*", lambda name, data: events.append((name, data))) is legacy
    legacy.on("flush", lambda data: events.append(("flush-only", data)))
    legacy.write("t", {"id": 1})
    legacy.flush()
    legacy.close()
    assert ids(transport) == [1]
    names = [name for name, _ in events]
    assert names.count("send") == 1
    assert names.count("flush") == 1
    assert names.count("flush-only") == 1


def test_legacy_error_handlers_get_the_exception(vector_credentials: tuple[str, str]) -> None:
    errors: list[Any] = []
    legacy = LegacySDK(*vector_credentials, transport=MemoryTransport(fault=always_refuse))
    legacy.on("error", errors.append)
    legacy.on("*", lambda name, data: errors.append((name, data)) if name == "error" else None)
    legacy.write("t", {"id": 1})
    legacy.flush()
    with pytest.raises(DeliveryError):
        legacy.close()
    assert len(errors) == 2
    assert isinstance(errors[0], SendError)
    assert errors[1][0] == "error"
    assert errors[1][1] is errors[0]
