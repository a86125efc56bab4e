"""SyncSDK at interpreter exit with the server unreachable: everything is spooled.

Runs in a child of the interpreter under test (the whole interpreter matrix):
on Python 3.12 no thread may start once the main thread has ended, so the
shutdown path (drain, give-up, spool append) and a worker's first write after
the main thread ended must need no new thread.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from panoply_async._durable.spool import read_spool, spool_files
from panoply_async.local import make_credentials

RECORDS = 300

SCRIPT = """
    import faulthandler, os, sys, threading
    from panoply_async import SyncSDK

    faulthandler.dump_traceback_later(50, exit=True)
    conn = SyncSDK(os.environ["KEY"], os.environ["SECRET"], endpoint_url=os.environ["ENDPOINT"],
                   spool_dir=sys.argv[1], shutdown_timeout=0.5, max_attempts=1000,
                   backoff_base=0.01, backoff_max=0.05)
    count = int(sys.argv[3])

    def write():
        for i in range(count):
            conn.write("t", {"id": i})

    if sys.argv[2] == "main":
        write()
    else:  # the first write comes from a worker, after the main thread ended
        def worker():
            threading.main_thread().join()
            write()
        threading.Thread(target=worker).start()
    # No close(): the exit hooks must drain, fail to send, and spool.
"""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("writer", ["main", "worker-after-main"])
def test_exit_with_server_unreachable_spools_every_record(tmp_path: Path, writer: str) -> None:
    key, secret = make_credentials("exit")
    env = {
        **os.environ,
        "KEY": key,
        "SECRET": secret,
        "ENDPOINT": f"http://127.0.0.1:{closed_port()}",
    }
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), str(tmp_path), writer, str(RECORDS)],
        env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert secret not in done.stderr
    entries = [entry for path in spool_files(tmp_path) for entry in read_spool(path)[0]]
    assert sum(entry.records for entry in entries) == RECORDS, done.stderr
    ids = sorted(
        int(line.split(b'"id":')[1].split(b",")[0])
        for entry in entries
        for line in entry.body.encode().splitlines()
    )
    assert ids == list(range(RECORDS))
    # The exit says what was left undelivered.
    assert f"{RECORDS} records not delivered ({RECORDS} spooled" in done.stderr


WAL_SCRIPT = """
    import faulthandler, os, sys, threading
    from panoply_async import SyncSDK

    faulthandler.dump_traceback_later(50, exit=True)
    conn = SyncSDK(os.environ["KEY"], os.environ["SECRET"], endpoint_url=os.environ["ENDPOINT"],
                   wal_dir=sys.argv[1], shutdown_timeout=0.5, max_attempts=1000,
                   backoff_base=0.01, backoff_max=0.05)

    def worker():
        threading.main_thread().join()
        for i in range(100):
            conn.write("t", {"id": i})
        print("written", flush=True)

    threading.Thread(target=worker).start()
"""


def test_exit_with_a_log_needs_no_new_thread(tmp_path: Path) -> None:
    # The log's open, syncs and close run on the engine's thread when no
    # worker thread may start (Python 3.12 after the main thread ended).
    key, secret = make_credentials("exit")
    env = {**os.environ, "KEY": key, "SECRET": secret,
           "ENDPOINT": f"http://127.0.0.1:{closed_port()}"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(WAL_SCRIPT), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "written" in done.stdout, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "100 records not delivered" in done.stderr
    assert any(tmp_path.glob("wal-*.seg"))
