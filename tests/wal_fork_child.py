"""Processes of tests/test_wal_fork.py: a writer that forks (``python wal_fork_child.py
MODE CONFIG_JSON``), each bounded by SIGALRM.

``killed-parent``: an async SDK writes ``records`` records (its endpoint refuses
connections, so they stay in the log), forks a child that only sleeps, prints
``written CHILD_PID`` and sleeps: the test SIGKILLs it while the child lives.

``sync-fork``: a SyncSDK writes one record, forks; the child writes one with
the same SyncSDK and closes it, the parent waits for the child, writes one
more and closes. Prints ``child PID exited STATUS``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time

from panoply_async import SDK, SyncSDK


async def killed_parent(config: dict[str, str]) -> None:
    sdk = SDK(config["apikey"], config["apisecret"], endpoint_url=config["endpoint_url"],
              wal_dir=config["wal_dir"], max_attempts=1_000, backoff_max=0.2)
    async with sdk as conn:
        await conn.write_many("fork", [{"id": f"p-{i}"} for i in range(int(config["records"]))])
        pid = os.fork()
        if pid == 0:
            time.sleep(60)  # lives on after the parent is killed
            os._exit(0)
        print(f"written {pid}", flush=True)
        await asyncio.sleep(60)


def sync_fork(config: dict[str, str]) -> None:
    conn = SyncSDK(config["apikey"], config["apisecret"], endpoint_url=config["endpoint_url"],
                   wal_dir=config["wal_dir"])
    conn.write("fork", {"id": "parent-1"})
    conn.flush(30)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            conn.write("fork", {"id": "child-1"})
            conn.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    conn.write("fork", {"id": "parent-2"})
    conn.close()
    print(f"child {pid} exited {status}", flush=True)


if __name__ == "__main__":
    signal.alarm(90)
    mode, config = sys.argv[1], json.loads(sys.argv[2])
    if mode == "killed-parent":
        asyncio.run(killed_parent(config))
    else:
        sync_fork(config)
