"""kill -9 loses nothing whose write() returned, and duplicates come only from the
send/acknowledge window (DESIGN §3a).

Each round starts a child (tests/wal_crash_child.py) on the same ``wal_dir``:
it first recovers what the previous child left, then writes records with
unique ids and reports each id after its write returned. The test SIGKILLs
it at a seeded random moment: before it is ready, while it writes, or while a
send is in flight (the fault proxy holds answers back, and the kill lands
when the server has stored a message whose answer the child has not seen).

After each kill the test reads the log the child left (the frames recovery
will resend) and the proxy's record of what the server stored: a logged
message the server already stored is in the window, and only those may
arrive twice. A final SDK in this process recovers what the last child left.
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import anyio
import orjson

from faultproxy import FaultPlan, FaultProxy
from panoply_async._durable.wal.format import read_acks, read_segment, seg_name
from panoply_async.local import LocalSQS
from panoply_async.testing import LocalQueue, new_queue

ROUNDS = 24
SEED = 20261129
CHILD = Path(__file__).resolve().parent / "wal_crash_child.py"
SLOW = FaultPlan(slow=1.0, slow_seconds=0.2)


def unacknowledged_bodies(wal_dir: Path) -> list[bytes]:
    """What recovery will resend: every good frame not acknowledged, read independently."""
    bodies = []
    for path in sorted(wal_dir.glob("wal-*.seg")):
        frames, _, _ = read_segment(path.name, path.read_bytes())
        segno = int(path.name[4:16])
        ack = wal_dir / seg_name(segno, "ack")
        acked, _ = read_acks(ack.name, ack.read_bytes() if ack.exists() else b"")
        bodies.extend(body for frame_id, body, records, _ in frames if frame_id not in acked)
    return bodies


def ids_in(body: bytes) -> list[str]:
    return [orjson.loads(line)["id"] for line in body.splitlines() if line]


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def stored(proxy: FaultProxy) -> set[str]:
    snapshot = proxy.snapshot()
    return set(snapshot.acked_bodies) | set(snapshot.acked_unseen_bodies)


class Zygote:
    """tests/wal_crash_child.py in zygote mode: forks warm children and kills them."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(CHILD)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    def _send(self, line: str) -> str:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        assert answer, "the zygote died"
        return answer

    def fork(self, config: dict[str, object]) -> None:
        assert self._send(json.dumps(config)).startswith("pid ")

    def kill(self) -> None:
        assert self._send("kill").startswith("exited ")

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(30)


def run_round(
    number: int,
    rng: random.Random,
    zygote: Zygote,
    queue: LocalQueue,
    proxy: FaultProxy,
    wal_dir: Path,
    out: Path,
) -> str:
    kind = rng.choice(("startup", "writing", "mid-send", "mid-send"))
    proxy.plan = FaultPlan()
    zygote.fork(
        {
            "endpoint_url": proxy.endpoint_url,
            "apikey": queue.apikey,
            "apisecret": queue.apisecret,
            "wal_dir": str(wal_dir),
            "prefix": f"r{number}",
            "records": rng.randint(200, 1500),
            "seed": rng.random(),
            "deadline": 30,
            "out": str(out),
        }
    )
    try:
        give_up = time.monotonic() + 30

        def running() -> bool:
            assert time.monotonic() < give_up, "the child is stuck"
            return not out.exists() or "done" not in out.read_text()

        if kind == "startup":  # while it imports, recovers, resends
            time.sleep(rng.uniform(0.0, 0.5))
        else:
            while running() and not (out.exists() and "ready" in out.read_text()):
                time.sleep(0.005)
            if kind == "writing":
                time.sleep(rng.uniform(0.0, 0.3))
            else:  # the server stored a message whose answer the child has not seen
                proxy.plan = SLOW
                before = stored(proxy)
                while running() and not (stored(proxy) - before):
                    time.sleep(0.002)
                time.sleep(rng.uniform(0.0, 0.1))
    finally:
        zygote.kill()
    proxy.wait_idle()
    return kind


def test_sigkill_loses_no_written_record_and_duplicates_only_the_window(
    panoply_server: LocalSQS, tmp_path: Path
) -> None:
    queue = new_queue(panoply_server)
    wal_dir = tmp_path / "wal"
    rng = random.Random(SEED)
    reported: set[str] = set()
    #: how many kills found each body logged, unacknowledged and already stored
    windows: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    received: list[bytes] = []  # drained every round: moto slows down as a queue grows
    zygote = Zygote()
    with FaultProxy(panoply_server.endpoint_url, seed=SEED) as proxy:
        try:
            for number in range(ROUNDS):
                out = tmp_path / f"child-{number}.out"
                kinds[run_round(number, rng, zygote, queue, proxy, wal_dir, out)] += 1
                received.extend(m.body.encode() for m in queue.messages())
                server_has = stored(proxy)
                for body in unacknowledged_bodies(wal_dir):
                    if sha(body) in server_has:
                        windows[sha(body)] += 1
                lines = out.read_text().splitlines() if out.exists() else []
                for line in lines:
                    if line.startswith("w "):
                        reported.update(line.split()[1:])
        finally:
            zygote.close()

        proxy.plan = FaultPlan()
        last = unacknowledged_bodies(wal_dir)

        async def recover() -> int:
            async with queue.sdk(wal_dir=str(wal_dir)) as conn:
                pass
            return conn.stats.records_recovered

        recovered = anyio.run(recover)
        assert recovered == sum(len(ids_in(body)) for body in last)
        assert sorted(p.name for p in wal_dir.iterdir()) == ["lock"]

    arrived_bodies: Counter[str] = Counter()
    arrived_ids: Counter[str] = Counter()
    window_ids: set[str] = set()
    by_sha: dict[str, bytes] = {}
    received.extend(m.body.encode() for m in queue.messages())
    for body in received:
        by_sha[sha(body)] = body
        arrived_bodies[sha(body)] += 1
        arrived_ids.update(ids_in(body))
    for digest in windows:
        if digest in by_sha:
            window_ids.update(ids_in(by_sha[digest]))

    assert kinds["mid-send"] >= 5, kinds
    lost = reported - set(arrived_ids)
    assert not lost, f"{len(lost)} records whose write() returned never arrived"
    # A message arrives once, plus once per kill that caught it in the window.
    for digest, count in arrived_bodies.items():
        assert count <= 1 + windows[digest]
    duplicated = {i for i, count in arrived_ids.items() if count > 1}
    assert duplicated <= window_ids
    assert sum(windows.values()) > 0  # the window was exercised
    print(
        f"{ROUNDS} kills {dict(kinds)}: {len(reported)} records reported, "
        f"{len(arrived_ids)} distinct arrived, {len(duplicated)} duplicated "
        f"(all within the {len(window_ids)} records of messages in the send/acknowledge window)"
    )
