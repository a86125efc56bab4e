"""Disk faults on the delivery and shutdown paths (issue 19, items 3, 4, 5, 7, 14).

Each test breaks one I/O step through the durable layer's seam (``fileio``)
and checks that every accepted record is delivered, kept for a retry, or
reported by a typed exception (a ``PanoplyError``: never a bare ``OSError``
nor an ``ExceptionGroup``).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from diskfaults import FaultPlan, faults, ids_of, refuse
from panoply_async import SDK, DeliveryError, MemoryTransport, PanoplyError
from panoply_async._durable import fileio
from panoply_async._durable.spool import SpoolFile, read_spool
from panoply_async._durable.wal.format import read_acks
from panoply_async._durable.wal.log import WriteAheadLog, queue_digest
from panoply_async.errors import WALError

QUEUE = "http://127.0.0.1:1/000000000000/sdk-acme-x"


def torn_writes(count: int) -> Any:
    """``fileio.write`` that, ``count`` times, writes half its data and then fails
    with ENOSPC (what a filling disk does: a short write, then no space)."""
    real = fileio.write
    left = [count]

    def write(fd: int, data: Any) -> int:
        if left[0]:
            left[0] -= 1
            real(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    return write


# -- item 3: the spool on a disk that fills ------------------------------------------------


async def test_a_failed_spool_append_is_reported_and_the_next_one_replays(
    vector_credentials: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fileio, "write", torn_writes(1))
    conn = SDK(
        *vector_credentials, transport=MemoryTransport(fault=refuse), spool_dir=tmp_path / "s"
    )

    async def run() -> None:
        async with conn:
            await conn.write("t", {"id": 1})
            await conn.flush()  # its append fails halfway: reported, not spooled
            await conn.write("t", {"id": 2})
            await conn.flush()  # space is back: spooled

    with pytest.raises(DeliveryError) as raised:
        await run()
    assert ids_of(raised.value.bodies) == [1]
    assert conn.stats.records_spooled == 1
    assert conn.spool_path is not None
    entries, invalid = read_spool(conn.spool_path)
    assert invalid == []
    assert ids_of(e.body for e in entries) == [2]
    sink = MemoryTransport()
    async with SDK(*vector_credentials, transport=sink) as again:
        result = await again.replay(tmp_path / "s")
    assert result.records_sent == 1
    assert ids_of(sink.bodies) == [2]


def test_when_even_the_cut_back_fails_the_next_append_starts_a_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = SpoolFile(tmp_path, "acme")
    spool.append(QUEUE, [(b'{"id":1,"__table":"t"}\n', 1)], "x")
    monkeypatch.setattr(fileio, "write", torn_writes(1))
    plan = FaultPlan(should_fail=lambda n, op, site: op == "ftruncate")
    with faults(plan), pytest.raises(OSError, match="No space left"):
        spool.append(QUEUE, [(b'{"id":2,"__table":"t"}\n', 1)], "x")
    assert plan.failed  # the cut back was refused too: a half line stays
    path = spool.append(QUEUE, [(b'{"id":3,"__table":"t"}\n', 1)], "x")
    spool.close()
    entries, invalid = read_spool(path)
    assert len(invalid) == 1  # the half line, on its own: never joined to a good one
    assert ids_of(e.body for e in entries) == [1, 3]


# -- item 4: the log full during rotation, two writers ----------------------------------------


async def test_log_full_at_rotation_with_two_writers_strands_nothing(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    # Every other segment cannot be allocated: rotations keep failing and succeeding
    # while two writers race over message boundaries.
    allocations = [0]

    def every_other_allocation(number: int, operation: str, site: str) -> bool:
        if operation != "fallocate":
            return False
        allocations[0] += 1
        return allocations[0] > 1 and allocations[0] % 2 == 0

    transport = MemoryTransport()
    accepted: list[int] = []
    errors: list[BaseException] = []
    plan = FaultPlan(should_fail=every_other_allocation)
    with faults(plan):
        conn = SDK(
            *vector_credentials,
            transport=transport,
            wal_dir=tmp_path,
            max_message_bytes=2048,
            max_wal_bytes=8192,
        )
        async with conn:

            async def writer(first: int) -> None:
                for i in range(first, first + 60):
                    try:
                        await conn.write("t", {"id": i, "pad": "x" * 1100})
                    except Exception as exc:
                        errors.append(exc)
                    else:
                        accepted.append(i)

            async with anyio.create_task_group() as writers:
                writers.start_soon(writer, 0)
                writers.start_soon(writer, 1000)
            checkpoint = conn.checkpoint()
            with anyio.fail_after(10):
                await checkpoint
    assert plan.failed, "the fault never fired"
    assert errors, "no write met the full log"
    assert all(isinstance(e, WALError) for e in errors), errors
    assert conn.stats.records_pending == 0
    assert set(accepted) <= set(ids_of(transport.bodies))


def test_a_message_is_sealed_only_once_the_next_one_can_begin(tmp_path: Path) -> None:
    # The packer underneath: a segment holds one frame, and the next cannot be
    # allocated. The record that needs it is refused, and the open message stays
    # open (formerly it was sealed, then the new segment failed: the sealed
    # message, with another writer's record, never reached delivery).
    limit = 4096
    wal = WriteAheadLog(tmp_path, queue_digest("sdk-acct-queue"), frame_limit=limit,
                        segment_bytes=1, max_bytes=1 << 20)
    wal.open()
    wal.spare.on_wanted = lambda: None  # segments come only from a preparer, as in the SDK
    segno = wal.reserve_spare()
    assert segno is not None
    wal.add_spare(wal.create_segment(segno))
    packer = wal.packer(limit)
    # 4000 bytes: the next frame does not fit in this 8 KiB segment after it.
    first = b'{"id":1,"pad":"' + b"x" * 3968 + b'","__table":"t"}\n'
    assert len(first) == 4000
    assert packer.add(first) is None
    with faults(FaultPlan(should_fail=lambda n, op, site: op == "fallocate")):
        segno = wal.reserve_spare()
        assert segno is not None
        with pytest.raises(OSError, match="No space left"):
            wal.create_segment(segno)
        wal.add_spare(None, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        with pytest.raises(WALError, match="No space left"):
            packer.add(first.replace(b'"id":1', b'"id":2'))
    assert packer.records == 1
    assert packer.take() == (first, 1)  # still there, sealed now, for delivery
    wal.close()


# -- item 5: disk full while writing an acknowledgement ----------------------------------------


async def test_failed_acknowledgements_end_the_block_typed_and_deliver_everything(
    vector_credentials: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fileio, "write", torn_writes(3))  # the first three ack appends
    transport = MemoryTransport()
    conn = SDK(*vector_credentials, transport=transport, wal_dir=tmp_path)

    async def run() -> None:
        async with conn:
            for i in range(50):
                await conn.write("t", {"id": i})
                if i % 10 == 9:
                    await conn.flush()
            await conn.write("t", {"id": 50})  # its ack is written: the file is whole

    with pytest.raises(WALError, match="acknowledgements"):
        await run()
    assert sorted(ids_of(transport.bodies)) == list(range(51))
    assert conn.stats.records_delivered == 51
    assert conn.stats.records_failed == conn.stats.records_spooled == 0
    for ack in tmp_path.glob("wal-*.ack"):
        assert read_acks(ack.name, ack.read_bytes())[1] == []  # no torn entry left


# -- item 7: a log written under a larger max_message_bytes ------------------------------------


async def test_recovery_delivers_a_log_written_with_a_larger_message_limit(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:

    async def first_run() -> None:
        async with SDK(
            *vector_credentials,
            transport=MemoryTransport(fault=refuse),
            wal_dir=tmp_path,
            max_message_bytes=240_000,
        ) as conn:
            for i in range(10):
                await conn.write("t", {"id": i})
            await conn.write("t", {"id": 100, "pad": "x" * 100_000})
            for i in range(10, 20):
                await conn.write("t", {"id": i})

    with pytest.raises(DeliveryError):  # nothing delivered: the frames stay in the log
        await first_run()
    transport = MemoryTransport()
    async with SDK(
        *vector_credentials, transport=transport, wal_dir=tmp_path, max_message_bytes=65_536
    ):
        pass
    assert sorted(ids_of(transport.bodies)) == [*range(20), 100]
    assert [ids_of([b]) for b in transport.bodies if len(b) > 65_536] == [[100]]


# -- item 14: creating a segment, off the event loop -------------------------------------------


async def test_segments_are_created_off_the_event_loop_and_disk_full_is_a_wal_error(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    creating = {"fallocate", "mmap"}
    allocations = [0]

    def full_after_four(number: int, operation: str, site: str) -> bool:
        if operation != "fallocate":
            return False
        allocations[0] += 1
        return allocations[0] > 4

    plan = FaultPlan(should_fail=full_after_four)
    transport = MemoryTransport()
    accepted: list[int] = []
    errors: list[BaseException] = []
    with faults(plan):
        conn = SDK(
            *vector_credentials,
            transport=transport,
            wal_dir=tmp_path,
            max_message_bytes=2048,
            max_wal_bytes=8192,
        )
        async with conn:
            for i in range(40):
                try:
                    await conn.write("t", {"id": i, "pad": "x" * 1500})
                except Exception as exc:
                    errors.append(exc)
                else:
                    accepted.append(i)
    on_loop = [op for op, main in plan.threads if op in creating and main]
    assert on_loop == []  # the event loop runs in the main thread here
    assert errors
    assert all(isinstance(e, WALError) for e in errors), errors
    assert "No space left" in str(errors[0])
    assert conn.stats.records_pending == 0
    assert set(accepted) <= set(ids_of(transport.bodies))
    assert all(isinstance(e, PanoplyError) for e in errors)


async def test_acknowledgements_that_cannot_even_be_cut_back_lose_nothing(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    # The first ack append fails and so does cutting it back: that segment takes no
    # more acknowledgements, and its messages may only be sent again, never lost.
    failed: list[str] = []

    def first_of_each(number: int, operation: str, site: str) -> bool:
        # The ack write, then the cut back (the lock file's ftruncate came before).
        nxt = {0: "write", 1: "ftruncate"}.get(len(failed))
        if operation == nxt:
            failed.append(operation)
            return True
        return False

    transport = MemoryTransport()
    conn = SDK(*vector_credentials, transport=transport, wal_dir=tmp_path)

    async def run() -> None:
        async with conn:
            for i in range(30):
                await conn.write("t", {"id": i})
                if i % 10 == 9:
                    await conn.flush()

    with faults(FaultPlan(should_fail=first_of_each)), pytest.raises(WALError):
        await run()
    assert failed == ["write", "ftruncate"]
    assert sorted(ids_of(transport.bodies)) == list(range(30))
    later = MemoryTransport()
    async with SDK(*vector_credentials, transport=later, wal_dir=tmp_path):
        pass
    assert set(ids_of(later.bodies)) <= set(range(30))  # duplicates at most
    assert list(tmp_path.iterdir()) == [tmp_path / "lock"]
