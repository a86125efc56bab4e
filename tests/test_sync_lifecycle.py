"""SyncSDK's lifetime: start() ahead of the first write, flush() while close()
drains, close() while the engine is still starting."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import anyio.to_thread
import pytest

from panoply_async import (
    DeliveryError,
    MemoryTransport,
    Message,
    SendError,
    SyncSDK,
    decode_body,
)


def engine_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "panoply-async-engine"}


def test_start_opens_the_engine_before_the_first_write(
    vector_credentials: tuple[str, str],
) -> None:
    transport = MemoryTransport()
    before = engine_threads()
    conn = SyncSDK(*vector_credentials, transport=transport)
    assert conn.start() is conn
    assert transport.opened
    assert len(engine_threads() - before) == 1
    threads = threading.active_count()
    conn.start()  # idempotent
    conn.write("t", {"id": 1})  # starts nothing more: the engine is warm
    assert threading.active_count() == threads
    conn.close()
    assert [len(transport.bodies), conn.stats.records_delivered] == [1, 1]
    assert engine_threads() - before == set()
    with pytest.raises(RuntimeError, match="closed"):
        conn.start()


def always_failing(messages: Sequence[Message]) -> SendError:
    return SendError("unavailable", retryable=True)


def test_flush_during_a_draining_close_raises_timeout(
    vector_credentials: tuple[str, str],
) -> None:
    transport = MemoryTransport(fault=always_failing)
    conn = SyncSDK(*vector_credentials, transport=transport, shutdown_timeout=1.0,
                   max_attempts=1000, backoff_base=0.01, backoff_max=0.05)
    conn.write("t", {"id": 1})
    with pytest.raises(TimeoutError, match="still draining"):
        conn.close(timeout=0.05)  # the drain goes on: the server keeps failing
    with pytest.raises(TimeoutError):
        conn.flush(timeout=0.05)
    assert conn.stats.records_pending == 1
    with pytest.raises(DeliveryError):  # the drain ends at shutdown_timeout
        conn.close()


class GatedTransport(MemoryTransport):
    """Opens only once ``gate`` is set: the engine stays in its start."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.gate = threading.Event()

    async def open(self) -> None:
        self.entered.set()
        await anyio.to_thread.run_sync(self.gate.wait, 30)
        await super().open()


def test_close_while_the_engine_starts_waits_for_it(
    vector_credentials: tuple[str, str],
) -> None:
    transport = GatedTransport()
    before = engine_threads()
    conn = SyncSDK(*vector_credentials, transport=transport)
    outcome: list[BaseException | None] = []

    def start() -> None:
        try:
            conn.start()
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    starter = threading.Thread(target=start)
    starter.start()
    assert transport.entered.wait(30)
    # Let the start finish a little after close() was called.
    opener = threading.Timer(0.2, transport.gate.set)
    opener.start()
    conn.close()
    # close() waited for the start and stopped the engine it started.
    assert engine_threads() - before == set()
    assert transport.closed
    starter.join(30)
    opener.join(30)
    assert outcome == [None]


def test_wide_records_from_eight_threads_arrive_once_each(
    vector_credentials: tuple[str, str],
) -> None:
    # Wide records fill the hand-off fast: the pump and the writers race on it.
    transport = MemoryTransport()
    with SyncSDK(*vector_credentials, transport=transport) as conn:

        def work(first: int) -> None:
            for i in range(first, 8_000, 8):
                conn.write("t", {"id": i, "pad": "x" * 2000})

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    ids = sorted(r["id"] for body in transport.bodies for r in decode_body(body))
    assert ids == list(range(8_000))
    assert conn.stats.records_delivered == 8_000
