"""Fork: a child inherits no spool lock, and a forked SyncSDK child starts afresh.

Real ``os.fork()`` in a child Python process (bounded by a timeout; the forked
child waits on a pipe and ends with ``os._exit``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import pytest

from panoply_async.testing import LocalQueue

SCRIPT = """
    import asyncio, os, signal, sys
    from panoply_async import SDK, SyncSDK

    signal.alarm(60)
    key, secret, spool_dir = os.environ["KEY"], os.environ["SECRET"], sys.argv[1]
    options = dict(spool_dir=spool_dir, max_attempts=1, shutdown_timeout=5)
    conn = SyncSDK(key, secret, endpoint_url=os.environ["UNREACHABLE"], **options)
    for i in range(100):
        conn.write("t", {"id": i})
    conn.flush(30)
    assert conn.stats.records_spooled == 100, conn.stats
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        signal.alarm(60)
        os.close(ready_r)
        os.close(done_w)
        code = 1
        try:
            # The forked child's first write works: a fresh engine, its own spool file.
            for i in range(1000, 1050):
                conn.write("t", {"id": i})
            conn.flush(30)
            assert conn.stats.records_spooled == 50, conn.stats
            code = 0
        finally:
            os.write(ready_w, bytes([code]))
            os.read(done_r, 1)  # lives on (its spool open) until the parent replayed
            os._exit(code)
    os.close(ready_w)
    os.close(done_r)
    try:
        assert os.read(ready_r, 1) == bytes([0]), "the forked child failed"
        conn.close()  # releases the parent's lock, although the child still lives

        async def replay():
            async with SDK(key, secret, endpoint_url=os.environ["ENDPOINT"]) as sdk:
                return await sdk.replay(spool_dir)

        result = asyncio.run(replay())
    finally:
        os.write(done_w, b"x")
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    print("replayed", result.records_sent, "skipped", len(result.files_skipped))
"""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_holds_no_spool_lock_and_writes_afresh(
    panoply_queue: LocalQueue, tmp_path: object
) -> None:
    env = {
        **os.environ,
        "KEY": panoply_queue.apikey,
        "SECRET": panoply_queue.apisecret,
        "ENDPOINT": panoply_queue.endpoint_url,
        "UNREACHABLE": f"http://127.0.0.1:{closed_port()}",
    }
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # The parent's file was replayed; only the child's own (still open) was skipped.
    assert "replayed 100 skipped 1" in done.stdout, done.stdout + done.stderr
    assert sorted(r["id"] for r in panoply_queue.records()) == list(range(100))
