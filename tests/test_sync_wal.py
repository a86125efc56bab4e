"""SyncSDK with ``wal_dir``: a write returns only once its record is in the log.

A child process writes with SyncSDK from four threads and is SIGKILLed right
after the last write returned; a fresh SDK on the same ``wal_dir`` must then deliver every
record. And when the log cannot take a record (its file cannot grow), the
write raises instead of returning, and every write that did return is still
recovered.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio

from panoply_async import SDK
from panoply_async.testing import LocalQueue

WRITER = """
    import os, resource, signal, sys, threading
    from panoply_async import SyncSDK
    from panoply_async.errors import WALError

    signal.alarm(90)  # bounds the child whatever happens
    wal_dir, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    conn = SyncSDK(os.environ["KEY"], os.environ["SECRET"], endpoint_url=os.environ["ENDPOINT"],
                   wal_dir=wal_dir, max_buffer_bytes=512 * 1024,
                   max_wal_bytes=4 * 1024 * 1024,
                   shutdown_timeout=1)
    conn.start()
    if mode == "full":
        # The log's files cannot grow past this: the next segment cannot be made.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))

    def write(first, step):
        # Ids first, first + 10 ... in runs of ten: write_many and write in turn.
        returned = 0
        for i in range(first, count, step):
            if (i // 10) % 2:
                conn.write_many("t", [{"id": j, "pad": "x" * 80} for j in range(i, i + 10)])
            else:
                for j in range(i, i + 10):
                    conn.write("t", {"id": j, "pad": "x" * 80})
            returned += 10
        return returned

    if mode == "full":
        returned = 0
        try:
            for i in range(0, count, 10):
                returned += write(i, count)
        except Exception as exc:
            print("raised", type(exc).__name__, isinstance(exc, (OSError, WALError)), flush=True)
    else:  # four threads share the hand-off and its wake-ups
        threads = [threading.Thread(target=write, args=(n * 10, 40)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        returned = count
    print("returned", returned, flush=True)
    # Killed at once: nothing after the last returned write may be needed.
    os.kill(os.getpid(), signal.SIGKILL)
"""


def write_and_kill(q: LocalQueue, wal_dir: Path, mode: str, count: int) -> list[str]:
    env = {**os.environ, "KEY": q.apikey, "SECRET": q.apisecret, "ENDPOINT": q.endpoint_url}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(WRITER), str(wal_dir), mode, str(count)],
        env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert q.apisecret not in done.stdout + done.stderr
    return done.stdout.split()


async def recover(q: LocalQueue, wal_dir: Path) -> None:
    with anyio.fail_after(60):
        async with SDK(q.apikey, q.apisecret, endpoint_url=q.endpoint_url, wal_dir=wal_dir):
            pass


def test_sigkill_after_the_last_write_loses_nothing(
    panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    words = write_and_kill(panoply_queue, tmp_path, "plain", 20_000)
    assert words == ["returned", "20000"]
    anyio.run(recover, panoply_queue, tmp_path)
    ids = {r["id"] for r in panoply_queue.records()}
    assert ids == set(range(20_000))


def test_a_log_that_cannot_grow_makes_write_raise(
    panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    words = write_and_kill(panoply_queue, tmp_path, "full", 200_000)
    # The write that the log could not take raised an I/O error, not returned.
    assert words[0] == "raised", words
    assert words[2] == "True", words
    assert words[3] == "returned", words
    returned = int(words[4])
    assert 0 < returned < 200_000
    anyio.run(recover, panoply_queue, tmp_path)
    ids = {r["id"] for r in panoply_queue.records()}
    assert set(range(returned)) <= ids
