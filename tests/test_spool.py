"""The spool file and replay's claim on it: writer and replay exclude each other.

``flock`` locks belong to an open file description, so two descriptors in one
process conflict exactly as two processes do; the cross-process case runs the
real command in tests/test_cli_replay.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
from pathlib import Path

import pytest

from panoply_async._durable.spool import SpoolClaim, SpoolFile, claim_spool, spool_files

QUEUE = "http://127.0.0.1:1/000000000000/sdk-acme-x"


def body(i: int) -> bytes:
    return json.dumps({"id": i, "__table": "t"}).encode() + b"\n"


def ids_in(path: Path) -> list[int]:
    found = []
    for line in path.read_bytes().splitlines():
        if line.strip():
            found += [json.loads(r)["id"] for r in json.loads(line)["body"].splitlines()]
    return found


def claimed(path: Path) -> SpoolClaim:
    claim = claim_spool(path)
    assert isinstance(claim, SpoolClaim), claim
    return claim


def test_a_live_writer_keeps_replay_away(tmp_path: Path) -> None:
    spool = SpoolFile(tmp_path / "spool", "acme")
    path = spool.append(QUEUE, [(body(1), 1)], "down")
    assert spool_files(tmp_path / "spool") == [path]
    assert claim_spool(path) == "in use by a running writer or another replay"
    spool.append(QUEUE, [(body(2), 1)], "down")
    spool.close()
    claim = claimed(path)
    try:
        assert [e.records for e in claim.entries] == [1, 1]
    finally:
        claim.release()
    spool.close()  # idempotent
    with pytest.raises(OSError, match="closed"):
        spool.append(QUEUE, [(body(3), 1)], "down")


def test_spool_file_and_directory_are_private(tmp_path: Path) -> None:
    spool = SpoolFile(tmp_path / "spool", "acme")
    path = spool.append(QUEUE, [(body(1), 1)], "down")
    spool.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no leftover temp name


def test_the_claim_holds_across_rewrites_and_ends_with_release(tmp_path: Path) -> None:
    spool = SpoolFile(tmp_path, "acme")
    path = spool.append(QUEUE, [(body(i), 1) for i in range(3)], "down")
    spool.close()
    claim = claimed(path)
    first_inode = path.stat().st_ino
    claim.rewrite([e.raw for e in claim.entries[1:]])
    assert path.stat().st_ino != first_inode  # replaced atomically ...
    assert claim_spool(path).startswith("in use")  # ... and still ours
    assert ids_in(path) == [1, 2]
    claim.rewrite([claim.entries[2].raw])
    claim.release()
    assert ids_in(path) == [2]
    again = claimed(path)
    again.rewrite([])
    again.release()
    assert not path.exists()
    assert claim_spool(path) == "gone (replayed or removed meanwhile)"
    assert list(tmp_path.iterdir()) == []


def test_rewrite_keeps_bytes_it_did_not_read(tmp_path: Path) -> None:
    # A writer that does not lock (an older SDK, another tool) appends after the
    # claim read the file: a rewrite, even one with nothing left to keep, must
    # carry those bytes over, not drop them.
    spool = SpoolFile(tmp_path, "acme")
    path = spool.append(QUEUE, [(body(0), 1)], "down")
    spool.close()
    claim = claimed(path)
    other = SpoolFile(tmp_path / "elsewhere", "acme")
    late = other.append(QUEUE, [(body(1), 1), (body(2), 1)], "down").read_bytes()
    other.close()
    with path.open("ab") as unlocked:
        unlocked.write(late[: len(late) // 2 + 7])
    claim.rewrite([])  # entry 0 was delivered
    assert path.read_bytes() == late[: len(late) // 2 + 7]
    with path.open("ab") as unlocked:
        unlocked.write(late[len(late) // 2 + 7 :])
    claim.rewrite([])
    claim.release()
    assert ids_in(path) == [1, 2]


def test_a_half_written_last_line_is_not_read_and_is_kept(tmp_path: Path) -> None:
    spool = SpoolFile(tmp_path, "acme")
    path = spool.append(QUEUE, [(body(0), 1)], "down")
    spool.close()
    with path.open("ab") as torn:
        torn.write(b'{"v": 1, "queue_url": "cut sh')
    claim = claimed(path)
    assert len(claim.entries) == 1
    assert claim.invalid == []
    claim.rewrite([])
    claim.release()
    assert path.read_bytes() == b'{"v": 1, "queue_url": "cut sh'


def test_claim_refuses_a_file_that_another_claim_holds(tmp_path: Path) -> None:
    spool = SpoolFile(tmp_path, "acme")
    path = spool.append(QUEUE, [(body(0), 1)], "down")
    spool.close()
    first = claimed(path)
    assert isinstance(claim_spool(path), str)
    first.release()
    claimed(path).release()


def test_replaced_between_open_and_lock_is_read_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another replay replaces the file between our open() and our flock(): the
    # claim must notice that the name now points to another file and read that.
    spool = SpoolFile(tmp_path, "acme")
    path = spool.append(QUEUE, [(body(0), 1), (body(1), 1)], "down")
    spool.close()
    real_flock = fcntl.flock
    calls = 0

    def racing_flock(fd: int, operation: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            replacement = tmp_path / "replacement"
            replacement.write_bytes(path.read_bytes().splitlines(keepends=True)[1])
            os.replace(replacement, path)
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", racing_flock)
    claim = claimed(path)
    monkeypatch.undo()
    assert calls == 2
    assert [json.loads(e.body)["id"] for e in claim.entries] == [1]
    claim.release()
