"""The SDK with ``wal_dir``: records logged before write() returns, recovery on entry,
acknowledgements, retirement, backpressure, sync(), lock, events and files."""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from panoply_async import (
    SDK,
    ConfigurationError,
    DeliveryError,
    MemoryTransport,
    Message,
    PanoplyError,
    SendError,
    SendOutcome,
    decode_body,
)
from panoply_async._durable import fileio
from panoply_async._durable.wal.format import read_acks, read_segment, seg_name
from panoply_async._durable.wal.log import WALLockedError, WriteAheadLog, queue_digest


def ids_of(bodies: Sequence[bytes]) -> list[Any]:
    return [r["id"] for body in bodies for r in decode_body(body)]


def logged(wal_dir: Path) -> list[tuple[bytes, bool, bool]]:
    """Every good frame on disk: (body, sealed, acknowledged)."""
    frames = []
    for path in sorted(wal_dir.glob("wal-*.seg")):
        found, _, _ = read_segment(path.name, path.read_bytes())
        ack = wal_dir / seg_name(int(path.name[4:16]), "ack")
        acked, _ = read_acks(ack.name, ack.read_bytes() if ack.exists() else b"")
        frames.extend((body, sealed, frame in acked) for frame, body, _, sealed in found)
    return frames


class GatedTransport(MemoryTransport):
    """Holds every request until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = anyio.Event()

    async def send(self, messages: Sequence[Message]) -> SendOutcome:
        await self.gate.wait()
        return await super().send(messages)


def refusing(messages: Sequence[Message]) -> BaseException:
    return SendError("refused", retryable=False)


async def test_every_record_is_logged_before_write_returns(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    class Odd(dict[str, Any]):  # not a plain dict: the general encoder's path
        pass

    transport = GatedTransport()
    async with SDK(
        *vector_credentials,
        transport=transport,
        wal_dir=tmp_path,
        max_message_bytes=4096,
        max_wal_bytes=128 * 1024,  # small segments: cheap to read back at every step
    ) as conn:
        expected: list[Any] = []
        for i in range(300):
            if i % 3 == 0:
                await conn.write("t", {"id": i, "pad": "p" * (i % 50)})
                expected.append(i)
            elif i % 3 == 1:
                await conn.write("t", Odd(id=i))
                expected.append(i)
            else:
                await conn.write_many("u", [{"id": f"{i}a"}, {"id": f"{i}b"}])
                expected += [f"{i}a", f"{i}b"]
            # Nothing was acknowledged: what a crash now would leave is on disk.
            assert ids_of([body for body, _, _ in logged(tmp_path)]) == expected
        transport.gate.set()
    assert ids_of(transport.bodies) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lock"]


def leave_behind(wal_dir: Path, queue_url: str, bodies: list[bytes], open_body: bytes) -> None:
    """What a process killed after logging ``bodies`` (sealed) and ``open_body`` leaves."""
    wal = WriteAheadLog(
        wal_dir,
        queue_digest(queue_url.rsplit("/", 1)[-1]),
        frame_limit=200_000,
        segment_bytes=1 << 20,
        max_bytes=1 << 24,
    )
    wal.open()
    wal.recover()
    packer = wal.packer(200_000)
    for body in [*bodies, open_body]:
        packer.add(body)
        if body is not open_body:
            packer.take()
    os.close(wal._lock_fd)  # dies: the kernel drops its lock


def body(*ids: int) -> bytes:
    return b"".join(b'{"id":%d,"__table":"t"}\n' % i for i in ids)


async def test_entering_resends_what_a_dead_process_left_beside_new_writes(
    vector_credentials: tuple[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    probe = SDK(*vector_credentials)
    leave_behind(tmp_path, probe.queue_url, [body(1, 2), body(3)], body(4, 5, 6))
    transport = MemoryTransport()
    caplog.set_level(logging.WARNING, logger="panoply_async")
    async with SDK(*vector_credentials, transport=transport, wal_dir=tmp_path) as conn:
        # Recovery runs in the background: a write is accepted at once.
        await conn.write("t", {"id": 7})
        assert await conn.recovered_state("any") is None  # waits for the recovery
        assert conn.stats.records_recovered == 6
        await conn.flush()
    assert sorted(ids_of(transport.bodies)) == [1, 2, 3, 4, 5, 6, 7]
    stats = conn.stats
    assert stats.records_accepted == 7
    assert stats.records_delivered == 7
    assert "6 records in 3 unacknowledged messages" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lock"]


async def test_recovery_reports_damage_in_the_error_event(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    probe = SDK(*vector_credentials)
    leave_behind(tmp_path, probe.queue_url, [body(1), body(2), body(3)], body(4))
    (segment,) = tmp_path.glob("wal-*.seg")
    data = bytearray(segment.read_bytes())
    data[data.index(b'{"id":2') + 3] ^= 0x01  # flip a byte in the second message
    segment.write_bytes(bytes(data))
    (tmp_path / "README").write_text("not ours")
    errors: list[dict[str, Any]] = []
    transport = MemoryTransport()
    sdk = SDK(*vector_credentials, transport=transport, wal_dir=tmp_path)
    sdk.on("error", errors.append)
    async with sdk as conn:
        pass
    assert ids_of(transport.bodies) == [1, 3, 4]
    assert conn.stats.records_recovered == 3
    (event,) = errors
    assert event["operation"] == "recover"
    exc = event["exception"]
    assert isinstance(exc, PanoplyError)
    (dropped,) = exc.report.dropped
    assert dropped.reason == "frame checksum mismatch"
    assert f"{segment.name}@{dropped.offset}+{dropped.length}" in str(exc)
    assert "README" in str(exc)
    assert '"id"' not in str(exc)  # offsets, never contents


async def test_acknowledged_messages_are_logged_and_only_the_window_stays(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    class AckThenHang(MemoryTransport):
        """Acknowledges the first request, holds every later one forever."""

        async def send(self, messages: Sequence[Message]) -> SendOutcome:
            if self.requests:
                await anyio.sleep_forever()
            return await super().send(messages)

    transport = AckThenHang()
    conn = SDK(*vector_credentials, transport=transport, wal_dir=tmp_path, shutdown_timeout=0.01)
    await conn.__aenter__()
    await conn.write("t", {"id": 1})
    await conn.flush()
    await conn.write("t", {"id": 2})
    conn._close_open_message("flush")
    await anyio.wait_all_tasks_blocked()
    # A crash now would resend only message 2, which is in flight.
    frames = logged(tmp_path)
    assert [(ids_of([b]), acked) for b, _, acked in frames] == [([1], True), ([2], False)]
    with pytest.raises(DeliveryError):
        await conn.__aexit__(None, None, None)
    # Not delivered and not spooled: message 2 stays in the log for the next start.
    assert [(ids_of([b]), acked) for b, _, acked in logged(tmp_path)] == [([1], True), ([2], False)]
    transport = MemoryTransport()
    async with SDK(*vector_credentials, transport=transport, wal_dir=tmp_path) as conn:
        pass
    assert ids_of(transport.bodies) == [2]


async def test_spooled_messages_are_retired(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    wal_dir, spool_dir = tmp_path / "wal", tmp_path / "spool"
    transport = MemoryTransport(fault=refusing)
    async with SDK(
        *vector_credentials, transport=transport, wal_dir=wal_dir, spool_dir=spool_dir
    ) as conn:
        await conn.write("t", {"id": 1})
    assert conn.stats.records_spooled == 1
    assert sorted(p.name for p in wal_dir.iterdir()) == ["lock"]


async def test_no_spool_keeps_the_records_for_the_next_start(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    conn = SDK(*vector_credentials, transport=MemoryTransport(fault=refusing), wal_dir=tmp_path)
    with pytest.raises(DeliveryError):
        async with conn:
            await conn.write_many("t", [{"id": 1}, {"id": 2}])
    transport = MemoryTransport()
    async with SDK(*vector_credentials, transport=transport, wal_dir=tmp_path) as again:
        pass
    assert ids_of(transport.bodies) == [1, 2]
    assert again.stats.records_recovered == 2


async def test_max_wal_bytes_makes_write_wait(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    transport = GatedTransport()
    limit = 64 * 1024
    async with SDK(
        *vector_credentials,
        transport=transport,
        wal_dir=tmp_path,
        max_message_bytes=4096,
        max_wal_bytes=limit,
        max_buffer_bytes=1 << 20,
    ) as conn:
        done = anyio.Event()

        async def producer() -> None:
            for i in range(2_000):
                await conn.write("t", {"id": i, "pad": "y" * 80})
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(producer)
            await anyio.wait_all_tasks_blocked()
            assert not done.is_set()  # waiting for the log, not for the buffer
            assert conn._buffered < 1 << 20
            sizes = [p.stat().st_size for p in tmp_path.glob("wal-*.seg")]
            assert sum(sizes) <= limit + max(sizes)  # plus the segment prepared ahead
            transport.gate.set()
    assert sorted(ids_of(transport.bodies)) == list(range(2_000))


async def test_sync_reaches_the_segment_file(
    vector_credentials: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real = os.fdatasync

    def spy(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(fileio, "fdatasync", spy)  # the seam the log syncs through
    transport = GatedTransport()
    async with SDK(*vector_credentials, transport=transport, wal_dir=tmp_path) as conn:
        await conn.write("t", {"id": 1})  # open message: no close, so no sync yet
        (segment,) = tmp_path.glob("wal-*.seg")
        await anyio.wait_all_tasks_blocked()
        assert segment.stat().st_ino not in synced
        await conn.sync()
        assert segment.stat().st_ino in synced
        transport.gate.set()
    with pytest.raises(RuntimeError, match="sync"):
        await conn.sync()


async def test_sync_without_wal_dir_returns(vector_credentials: tuple[str, str]) -> None:
    async with SDK(*vector_credentials, transport=MemoryTransport()) as conn:
        await conn.sync()


async def test_two_sdks_share_a_wal_dir_each_in_its_own_slot(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    first = MemoryTransport()
    async with SDK(*vector_credentials, transport=first, wal_dir=tmp_path) as conn:
        await conn.write("t", {"id": 1})
        second = MemoryTransport()
        async with SDK(*vector_credentials, transport=second, wal_dir=tmp_path) as other:
            await other.write("t", {"id": 3})
            assert (tmp_path / "slot-1" / "lock").exists()
        await conn.write("t", {"id": 2})
    assert ids_of(first.bodies) == [1, 2]
    assert ids_of(second.bodies) == [3]
    # The low-level lock still refuses a second holder of one slot.
    wal = WriteAheadLog(tmp_path, b"\0" * 16, frame_limit=4096, segment_bytes=1 << 16,
                        max_bytes=1 << 20)
    wal.open()
    try:
        again = WriteAheadLog(tmp_path, b"\0" * 16, frame_limit=4096, segment_bytes=1 << 16,
                              max_bytes=1 << 20)
        with pytest.raises(WALLockedError, match=str(tmp_path)):
            again.open()
    finally:
        wal.close()


def test_options_are_validated(vector_credentials: tuple[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="max_wal_bytes"):
        SDK(*vector_credentials, wal_dir="x", max_wal_bytes=1000)
    with pytest.raises(ConfigurationError, match="wal_dir"):
        SDK(*vector_credentials, wal_dir=3)  # type: ignore[arg-type]


async def test_the_secret_never_reaches_the_log(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    apikey, apisecret = vector_credentials
    parts = base64.b64decode(apisecret).decode().split("/")
    needles = [apisecret.encode()] + [part.encode() for part in parts if len(part) > 5]

    def leaks() -> list[tuple[str, bytes]]:
        return [(p.name, n) for p in tmp_path.iterdir() for n in needles if n in p.read_bytes()]

    transport = GatedTransport()
    async with SDK(apikey, apisecret, transport=transport, wal_dir=tmp_path) as conn:
        await conn.write_many("t", [{"id": i} for i in range(100)])
        conn._close_open_message("flush")
        await conn.write("t", {"id": 100})
        await conn.sync()
        assert len(list(tmp_path.iterdir())) == 2  # lock and a segment
        assert leaks() == []
        transport.gate.set()
        await conn.flush()
        assert leaks() == []


async def test_the_smallest_log_never_stalls(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    transport = MemoryTransport()
    async with SDK(
        *vector_credentials,
        transport=transport,
        wal_dir=tmp_path,
        max_message_bytes=4096,
        max_wal_bytes=4 * 4096,  # the least allowed: two one-message segments
    ) as conn:
        for i in range(3_000):
            await conn.write("t", {"id": i, "pad": "z" * 30})
    assert ids_of(transport.bodies) == list(range(3_000))


async def test_a_message_logged_under_a_larger_limit_is_split_on_recovery(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    probe = SDK(*vector_credentials)
    big = body(*range(300))  # about 7 KB: more than a 4 KiB message holds
    leave_behind(tmp_path, probe.queue_url, [big], body(300))
    transport = MemoryTransport()
    async with SDK(
        *vector_credentials, transport=transport, wal_dir=tmp_path, max_message_bytes=4096
    ) as conn:
        pass
    assert ids_of(transport.bodies) == list(range(301))
    assert len(transport.bodies) > 2
    assert conn.stats.records_recovered == 301
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lock"]


async def test_cancelled_recovery_keeps_the_log_and_releases_the_lock(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    class Hanging(MemoryTransport):
        async def send(self, messages: Sequence[Message]) -> SendOutcome:
            await anyio.sleep_forever()
            raise AssertionError("unreachable")

    probe = SDK(*vector_credentials)
    leave_behind(tmp_path, probe.queue_url, [body(1)], body(2))
    hanging = SDK(*vector_credentials, transport=Hanging(), wal_dir=tmp_path, shutdown_timeout=0.01)
    caught: list[bool] = []

    async def wait_for_recovery() -> None:
        async with hanging as conn:
            with anyio.move_on_after(0.2) as scope:  # a cancellation, not a timing
                await conn.recovered_state("any")  # never over: the sends hang
            caught.append(scope.cancelled_caught)

    with pytest.raises(DeliveryError):
        await wait_for_recovery()
    assert caught == [True]
    # Cancelled before any acknowledgement: the log still holds both messages.
    transport = MemoryTransport()
    async with SDK(*vector_credentials, transport=transport, wal_dir=tmp_path) as conn:
        pass
    assert ids_of(transport.bodies) == [1, 2]
    assert conn.stats.records_recovered == 2
