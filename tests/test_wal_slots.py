"""One ``wal_dir`` for a whole service: each live process in a slot of its own, and the
slots of dead processes adopted by the next one to start (DESIGN §3a)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest

from panoply_async import SDK, decode_body
from panoply_async._durable.wal.log import WriteAheadLog, queue_digest
from panoply_async._engine.transport import MemoryTransport, Message, SendOutcome
from panoply_async.local import LocalSQS
from panoply_async.testing import LocalQueue, new_queue

CHILD = Path(__file__).resolve().parent / "wal_slot_child.py"
DEAD = "http://127.0.0.1:1"  # refuses every connection: the records stay in the log


class Worker:
    """tests/wal_slot_child.py: a process of the service; every wait is bounded."""

    def __init__(self, tmp_path: Path, queue: LocalQueue, name: str, *, endpoint_url: str,
                 records: int, wal_dir: Path) -> None:
        self.out = tmp_path / f"{name}.out"
        config = {
            "apikey": queue.apikey, "apisecret": queue.apisecret, "endpoint_url": endpoint_url,
            "wal_dir": str(wal_dir), "prefix": name, "records": records, "out": str(self.out),
            "deadline": 120,
        }
        self.process = subprocess.Popen(
            [sys.executable, str(CHILD), json.dumps(config)], stdin=subprocess.PIPE,
        )

    def lines(self) -> list[str]:
        return self.out.read_text().splitlines() if self.out.exists() else []

    def wait_for(self, line: str = "", *, ids: int = 0, timeout: float = 60) -> None:
        """Until ``out`` holds ``line``, or at least ``ids`` ids were written."""
        deadline = time.monotonic() + timeout
        what = line or f"{ids} ids"
        while True:
            lines = self.lines()
            if (line and line in lines) or (ids and len(self.ids()) >= ids):
                return
            if self.process.poll() is not None:
                pytest.fail(f"the worker exited ({self.process.returncode}): {lines[-3:]}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"no {what!r} within {timeout}s: {lines[-3:]}")
            time.sleep(0.01)  # polling a file another process writes

    def ids(self) -> set[str]:
        return {i for line in self.lines() if line.startswith("w ") for i in line.split()[1:]}

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def finish(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"\n")
        self.process.stdin.close()
        assert self.process.wait(60) == 0
        assert "done" in self.lines()


def slot_pids(wal_dir: Path) -> dict[str, int]:
    """Slot directory name -> the pid its lock file names."""
    locks = [wal_dir / "lock", *wal_dir.glob("slot-*/lock")]
    return {
        ("." if lock.parent == wal_dir else lock.parent.name): int(lock.read_text() or 0)
        for lock in locks if lock.exists()
    }


def segments(slot: Path) -> list[str]:
    return sorted(p.name for p in slot.glob("wal-*.seg"))


@pytest.mark.main_only
def test_workers_share_a_wal_dir_and_a_killed_workers_records_are_adopted(
    panoply_server: LocalSQS, tmp_path: Path
) -> None:
    queue = new_queue(panoply_server)
    wal_dir = tmp_path / "wal"
    real = panoply_server.endpoint_url
    workers: list[Worker] = []

    def start(name: str, endpoint_url: str, records: int) -> Worker:
        worker = Worker(tmp_path, queue, name, endpoint_url=endpoint_url, records=records,
                        wal_dir=wal_dir)
        workers.append(worker)
        worker.wait_for("ready")
        return worker

    try:
        a = start("a", real, 200)
        # b and c cannot reach SQS: whatever they wrote stays in their slots.
        b = start("b", DEAD, 100_000)
        c = start("c", DEAD, 100_000)
        assert slot_pids(wal_dir) == {
            ".": a.process.pid, "slot-1": b.process.pid, "slot-2": c.process.pid,
        }
        b.wait_for(ids=200)
        b.kill()  # mid-write
        assert segments(wal_dir / "slot-1")
        # The next worker takes the first free slot, b's, and resends what b left.
        d = start("d", real, 50)
        assert slot_pids(wal_dir)["slot-1"] == d.process.pid
        c.wait_for(ids=200)
        c.kill()
        a.wait_for("written")
        a.finish()  # slot 0 is free again, and empty
        # The next one takes slot 0 and adopts c's slot in the background.
        e = start("e", real, 50)
        assert slot_pids(wal_dir)["."] == e.process.pid
        for worker in (d, e):
            worker.wait_for("written")
            worker.finish()
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.kill()

    written = set().union(*(worker.ids() for worker in workers))
    arrived = {str(r["id"]) for m in queue.messages() for r in decode_body(m.body)}
    missing = written - arrived
    assert not missing, f"{len(missing)} records whose write() returned never arrived"
    assert len(b.ids()) >= 200
    assert len(c.ids()) >= 200
    for slot in (wal_dir, wal_dir / "slot-1", wal_dir / "slot-2"):
        assert segments(slot) == [], slot  # adopted and retired: nothing stranded


def leave_slot(slot: Path, queue_url: str, ids: range) -> None:
    """What a process killed in ``slot`` after logging ``ids`` (one message each) leaves."""
    wal = WriteAheadLog(slot, queue_digest(queue_url.rsplit("/", 1)[-1]), frame_limit=4096,
                        segment_bytes=1 << 16, max_bytes=1 << 20)
    wal.open()
    wal.recover()
    packer = wal.packer(4096)
    for i in ids:
        packer.add(b'{"id":%d,"__table":"t"}\n' % i)
        packer.take()
    wal.abandon()  # dies: no cleanup, and the kernel drops its lock


async def test_dead_owners_slots_are_adopted_without_holding_up_writes(
    vector_credentials: tuple[str, str], tmp_path: Path
) -> None:
    class HoldRecovered(MemoryTransport):
        """Holds the recovered messages (ids below 100) until the test opens the gate."""

        def __init__(self) -> None:
            super().__init__()
            self.gate = anyio.Event()
            self.new_sent = anyio.Event()
            self.held = 0

        async def send(self, messages: Sequence[Message]) -> SendOutcome:
            if any(r["id"] < 100 for m in messages for r in decode_body(m.body)):
                self.held += len(messages)
                await self.gate.wait()
            else:
                self.new_sent.set()
            return await super().send(messages)

    queue_url = SDK(*vector_credentials).queue_url
    leave_slot(tmp_path / "slot-1", queue_url, range(1, 4))
    leave_slot(tmp_path / "slot-3", queue_url, range(4, 7))
    transport = HoldRecovered()
    async with SDK(*vector_credentials, transport=transport, wal_dir=tmp_path) as conn:
        assert (tmp_path / "lock").read_text().strip() == str(os.getpid())  # slot 0: free
        await anyio.wait_all_tasks_blocked()  # slot 1's messages are held in a request
        assert transport.held == 3  # slot 1's; slot 3 waits its turn
        await conn.write("t", {"id": 100})  # accepted at once
        conn._close_open_message("flush")
        with anyio.fail_after(10):  # bounds a failure; the event is the synchronisation
            await transport.new_sent.wait()  # sent while the adopted messages are held
        transport.gate.set()
    ids = sorted(decode_body(b)[0]["id"] for b in transport.bodies)
    assert ids == [1, 2, 3, 4, 5, 6, 100]
    assert conn.stats.records_recovered == 6
    for slot in ("slot-1", "slot-3"):
        assert segments(tmp_path / slot) == []
        again = WriteAheadLog(tmp_path / slot, b"\0" * 16, frame_limit=4096,
                              segment_bytes=1 << 16, max_bytes=1 << 20)
        again.open()  # released after the adoption
        again.close()
