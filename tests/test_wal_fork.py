"""A forked child inherits no lock or log of the write-ahead log (DESIGN §3a, issue 19.6)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from panoply_async import decode_body
from panoply_async.testing import LocalQueue

CHILD = Path(__file__).resolve().parent / "wal_fork_child.py"


def run_child(
    mode: str, queue: LocalQueue, wal_dir: Path, **extra: object
) -> subprocess.Popen[str]:
    config = {"apikey": queue.apikey, "apisecret": queue.apisecret, "wal_dir": str(wal_dir),
              "endpoint_url": queue.endpoint_url, **extra}
    return subprocess.Popen([sys.executable, str(CHILD), mode, json.dumps(config)],
                            stdout=subprocess.PIPE, text=True)


def ids(queue: LocalQueue) -> list[str]:
    return sorted(str(r["id"]) for m in queue.messages() for r in decode_body(m.body))


def lock_pid(slot: Path) -> int:
    return int((slot / "lock").read_text())


async def test_a_writer_killed_while_its_forked_child_lives_is_recovered_at_once(
    panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    wal_dir = tmp_path / "wal"
    parent = run_child("killed-parent", panoply_queue, wal_dir, records=30,
                       endpoint_url="http://127.0.0.1:1")
    forked = 0
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()  # bounded: the child's SIGALRM
        assert line.startswith("written "), line
        forked = int(line.split()[1])
        parent.send_signal(signal.SIGKILL)
        parent.wait(30)
        # The forked child still lives, and holds nothing: the restart gets slot 0.
        os.kill(forked, 0)
        async with panoply_queue.sdk(wal_dir=str(wal_dir)) as conn:
            assert await conn.recovered_state("any") is None  # recovery is over
        assert lock_pid(wal_dir) == os.getpid()
        assert not (wal_dir / "slot-1").exists()
        assert conn.stats.records_recovered == 30
        assert ids(panoply_queue) == sorted(f"p-{i}" for i in range(30))
    finally:
        for pid in (parent.pid, forked):
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        parent.wait(30)


async def test_the_same_process_reopens_its_wal_dir_after_a_clean_close(
    panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    for i in range(2):
        async with panoply_queue.sdk(wal_dir=str(tmp_path)) as conn:
            await conn.write("t", {"id": i})
    assert lock_pid(tmp_path) == os.getpid()
    assert not (tmp_path / "slot-1").exists()  # the same slot both times
    assert ids(panoply_queue) == ["0", "1"]


def test_a_forked_sync_sdk_child_writes_in_a_slot_of_its_own(
    panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    wal_dir = tmp_path / "wal"
    process = run_child("sync-fork", panoply_queue, wal_dir)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 0
    _, child, _, status = out.split()
    assert status == "0"  # the child's write and close raised nothing
    assert lock_pid(wal_dir) == process.pid
    assert lock_pid(wal_dir / "slot-1") == int(child)  # never the parent's slot
    assert ids(panoply_queue) == ["child-1", "parent-1", "parent-2"]
    assert not list(wal_dir.rglob("wal-*.seg"))  # every record acknowledged
