"""The write-ahead log on its own: framing, recovery from damage, lock, retirement, files."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from panoply_async._durable.wal.format import FRAME_HEADER_SIZE, SEG_HEADER_SIZE, read_segment
from panoply_async._durable.wal.log import (
    DELIVERED,
    SPOOLED,
    WALLockedError,
    WriteAheadLog,
    queue_digest,
)
from panoply_async._wire.credentials import parse_credentials
from panoply_async._wire.packing import Packer
from panoply_async.errors import PanoplyError

LIMIT = 4096
TAIL = b'"__table":"events"}\n'
DIGEST = queue_digest("sdk-acct-queue")


def body(i: int, pad: int = 40) -> bytes:
    return orjson.dumps({"id": i, "pad": "x" * pad})


def line(i: int, pad: int = 40) -> bytes:
    return body(i, pad)[:-1] + b"," + TAIL


def make_log(path: Path, *, digest: bytes = DIGEST, max_bytes: int = 1 << 20) -> WriteAheadLog:
    wal = WriteAheadLog(path, digest, frame_limit=LIMIT, segment_bytes=1 << 15, max_bytes=max_bytes)
    wal.open()
    return wal


def reopen(wal: WriteAheadLog) -> WriteAheadLog:
    """What the next process sees after this one died: the files, no lock."""
    os.close(wal._lock_fd)  # the kernel releases a dead process's flock the same way
    wal._lock_fd = -1
    fresh = make_log(wal.directory)
    return fresh


def segment_files(path: Path) -> list[Path]:
    return sorted(path.glob("wal-*.seg"))


def test_framing_round_trip_matches_the_in_memory_packer(tmp_path: Path) -> None:
    wal = make_log(tmp_path / "wal")
    wal.recover()
    logged, plain = wal.packer(LIMIT), Packer(LIMIT)
    taken: list[tuple[bytes, int]] = []
    expected: list[tuple[bytes, int]] = []
    for i in range(320):
        if i % 11 == 5 and logged.room > 400:  # write_many's batches: whole lines at once
            lines = line(i) + line(i + 1000)
            for packer in (logged, plain):
                packer.extend(memoryview(lines), 2)
        elif i % 7 == 3:  # the general path: whole lines, closing full bodies
            for packer, out in ((logged, taken), (plain, expected)):
                finished = packer.add(line(i, 200))
                if finished:
                    out.append(finished)
        else:
            for packer, out in ((logged, taken), (plain, expected)):
                finished = packer.add_record(body(i), TAIL)
                if finished:
                    out.append(finished)
        assert logged.size == plain.size
        assert logged.room == plain.room
        if i % 50 == 49:
            taken.append(logged.take())  # type: ignore[arg-type]
            expected.append(plain.take())  # type: ignore[arg-type]
    assert taken == expected
    assert len(segment_files(tmp_path / "wal")) > 1  # rotation happened on the way

    open_records = logged.records
    assert open_records > 0
    frames, report = reopen(wal).recover()
    assert [(f.body, f.records) for f in frames if f.sealed] == taken
    (last,) = [f for f in frames if not f.sealed]
    assert last.records == open_records
    assert last.body == plain.take()[0]  # type: ignore[index]
    assert report.dropped == []
    assert report.records == sum(n for _, n in taken) + open_records


def test_a_record_half_copied_past_the_commit_point_is_dropped_and_reported(tmp_path: Path) -> None:
    wal = make_log(tmp_path / "wal")
    wal.recover()
    packer = wal.packer(LIMIT)
    for i in range(5):
        packer.append_record(body(i), TAIL)
    # The process dies inside the next append: bytes copied, length not stored.
    mm, pos = packer._view, packer._pos
    assert mm is not None
    mm[pos : pos + 30] = line(5)[:30]
    frames, report = reopen(wal).recover()
    (frame,) = frames
    assert frame.records == 5
    assert not frame.sealed
    assert [(d.offset, d.length, d.reason) for d in report.dropped] == [(pos, 30, "torn record")]


def sealed_log(
    path: Path, frames: int = 4, per_frame: int = 10
) -> tuple[WriteAheadLog, list[bytes]]:
    wal = make_log(path)
    wal.recover()
    packer = wal.packer(LIMIT)
    bodies = []
    for f in range(frames):
        for i in range(per_frame):
            packer.append_record(body(f * 100 + i), TAIL)
        taken = packer.take()
        assert taken is not None
        bodies.append(taken[0])
    return wal, bodies


def frame_offsets(data: bytes) -> list[int]:
    frames, _, _ = read_segment("x", data)
    offsets, pos = [], SEG_HEADER_SIZE
    for _, payload, _, _ in frames:
        offsets.append(pos)
        pos = (pos + FRAME_HEADER_SIZE + len(payload) + 7) & ~7
    return offsets


def test_torn_tail_keeps_every_whole_frame(tmp_path: Path) -> None:
    wal, bodies = sealed_log(tmp_path / "wal")
    (seg,) = segment_files(tmp_path / "wal")
    data = seg.read_bytes()
    last = frame_offsets(data)[-1]
    cut = last + FRAME_HEADER_SIZE + 100
    reopen_target = wal.directory
    os.close(wal._lock_fd)
    seg.write_bytes(data[:cut])
    fresh = make_log(reopen_target)
    frames, report = fresh.recover()
    assert [f.body for f in frames] == bodies[:-1]
    assert [(d.offset, d.reason) for d in report.dropped] == [(last, "frame cut short (torn tail)")]
    assert report.dropped[0].length == cut - last


@pytest.mark.parametrize("where", ["payload", "length", "magic", "frame id"])
def test_flipped_bytes_mid_segment_lose_only_that_frame(tmp_path: Path, where: str) -> None:
    wal, bodies = sealed_log(tmp_path / "wal", frames=5)
    (seg,) = segment_files(tmp_path / "wal")
    data = bytearray(seg.read_bytes())
    victim = frame_offsets(bytes(data))[2]
    at = {
        "payload": victim + FRAME_HEADER_SIZE + 17,
        "length": victim + 17,
        "magic": victim + 1,
        "frame id": victim + 8,
    }[where]
    data[at] ^= 0x5A
    seg.write_bytes(bytes(data))
    frames, report = reopen(wal).recover()
    assert [f.body for f in frames] == bodies[:2] + bodies[3:]
    (dropped,) = report.dropped
    assert dropped.offset == victim
    assert dropped.length == FRAME_HEADER_SIZE + len(bodies[2])
    assert str(bodies[2][:20]) not in report.describe()  # offsets, never contents


def test_empty_and_foreign_files_are_reported_and_left_alone(tmp_path: Path) -> None:
    wal, bodies = sealed_log(tmp_path / "wal", frames=2)
    directory = tmp_path / "wal"
    (directory / "wal-000000000007.seg").write_bytes(b"")
    (directory / "wal-000000000008.seg").write_bytes(b"not a segment at all" * 10)
    (directory / "notes.txt").write_text("hello")
    (directory / "wal-000000000009.ack").write_bytes(b"\x01" * 16)  # no segment: stale
    frames, report = reopen(wal).recover()
    assert [f.body for f in frames] == bodies
    assert report.foreign_files == ["notes.txt", "wal-000000000008.seg"]
    assert report.empty_files == ["wal-000000000007.seg"]
    assert report.dropped == []
    assert (directory / "notes.txt").exists()
    assert (directory / "wal-000000000008.seg").exists()
    assert not (directory / "wal-000000000007.seg").exists()
    assert not (directory / "wal-000000000009.ack").exists()


def test_segments_of_another_queue_are_not_recovered(tmp_path: Path) -> None:
    wal, _ = sealed_log(tmp_path / "wal", frames=2)
    os.close(wal._lock_fd)
    other = make_log(tmp_path / "wal", digest=queue_digest("sdk-other-queue"))
    frames, report = other.recover()
    assert frames == []
    assert report.other_queue_segments == ["wal-000000000001.seg"]
    assert segment_files(tmp_path / "wal")  # left in place


def test_acknowledged_frames_are_not_recovered_and_a_torn_ack_only_resends(tmp_path: Path) -> None:
    wal, bodies = sealed_log(tmp_path / "wal", frames=4)
    wal.finish([(1, DELIVERED), (2, SPOOLED), (3, DELIVERED)])
    ack = tmp_path / "wal" / "wal-000000000001.ack"
    ack.write_bytes(ack.read_bytes()[:-5])  # the third entry torn
    frames, report = reopen(wal).recover()
    assert [f.body for f in frames] == bodies[2:]
    assert report.acknowledged_frames == 2
    assert [(d.offset, d.reason) for d in report.dropped] == [(32, "torn acknowledgement")]


def test_retirement_deletes_finished_segments_and_bounds_disk_use(tmp_path: Path) -> None:
    directory = tmp_path / "wal"
    wal = make_log(directory, max_bytes=3 << 15)  # three 32 KiB segments
    wal.recover()
    packer = wal.packer(LIMIT)
    sealed: list[int] = []
    while not packer.blocked:
        for i in range(30):
            packer.append_record(body(i), TAIL)
        packer.take()
        sealed.append(packer.last_sealed)
    assert wal.live_bytes == 3 << 15
    assert len(segment_files(directory)) == 3
    assert not packer.unblock()
    wal.finish((frame, DELIVERED) for frame in sealed[:-1])
    # The active segment stays (it is still written); the others are gone.
    assert len(segment_files(directory)) == 1
    assert packer.unblock()
    assert packer.room > 0
    wal.finish([(sealed[-1], DELIVERED)])
    wal.close()
    assert sorted(p.name for p in directory.iterdir()) == ["lock"]


def test_lock_contention_in_one_process_and_across_processes(tmp_path: Path) -> None:
    directory = tmp_path / "wal"
    first = make_log(directory)
    with pytest.raises(WALLockedError, match=f"pid {os.getpid()}") as info:
        make_log(directory)
    assert isinstance(info.value, PanoplyError)
    first.close()

    holder = textwrap.dedent(
        f"""
        import signal, sys, time
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        from panoply_async._durable.wal.log import WriteAheadLog
        wal = WriteAheadLog({str(directory)!r}, bytes(16), frame_limit=4096,
                            segment_bytes=1 << 15, max_bytes=1 << 20)
        wal.open()
        print("locked", flush=True)
        time.sleep(30)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"locked\n"
        with pytest.raises(WALLockedError, match=f"pid {child.pid}"):
            make_log(directory)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    make_log(directory).close()  # a dead holder's lock is gone


def test_files_are_private(tmp_path: Path) -> None:
    wal, _ = sealed_log(tmp_path / "wal")
    wal.finish([(1, DELIVERED)])
    directory = tmp_path / "wal"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    names = sorted(p.name for p in directory.iterdir())
    assert names == ["lock", "wal-000000000001.ack", "wal-000000000001.seg"]
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_the_secret_is_never_on_disk(tmp_path: Path, vector_credentials: tuple[str, str]) -> None:
    import base64

    apikey, apisecret = vector_credentials
    credentials = parse_credentials(apikey, apisecret)
    queue_name = credentials.queue_url(None).rsplit("/", 1)[-1]
    wal = make_log(tmp_path / "wal", digest=queue_digest(queue_name))
    wal.recover()
    packer = wal.packer(LIMIT)
    for i in range(50):
        packer.append_record(body(i), TAIL)
        if i % 20 == 19:
            packer.take()
    wal.finish([(1, DELIVERED)])
    secret_parts = base64.b64decode(apisecret).decode().split("/")
    needles = [apisecret.encode(), queue_name.encode()] + [
        p.encode() for p in secret_parts if len(p) >= 6
    ]
    for path in (tmp_path / "wal").iterdir():
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, (path.name, needle)


def test_a_segment_prepared_ahead_is_used_and_a_crash_leaves_nothing_to_report(
    tmp_path: Path,
) -> None:
    wal = make_log(tmp_path / "wal")
    wal.recover()
    segno = wal.reserve_spare()
    assert segno is not None
    assert wal.reserve_spare() is None  # one at a time
    wal.add_spare(wal.create_segment(segno))
    packer = wal.packer(LIMIT)
    packer.append_record(body(1), TAIL)  # the first frame goes into the prepared segment
    assert [p.name for p in segment_files(tmp_path / "wal")] == [f"wal-{segno:012d}.seg"]
    packer.take()
    spare = wal.reserve_spare()
    assert spare is not None
    wal.add_spare(wal.create_segment(spare))  # prepared, never written: then the crash
    frames, report = reopen(wal).recover()
    assert [f.records for f in frames] == [1]
    assert report.dropped == []
    assert report.empty_files == []
    assert not (tmp_path / "wal" / f"wal-{spare:012d}.seg").exists()
