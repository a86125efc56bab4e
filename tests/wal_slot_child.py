"""A process of tests/test_wal_slots.py: one worker of a service sharing a ``wal_dir``.

``python tests/wal_slot_child.py CONFIG_JSON`` opens an SDK on the shared
``wal_dir``, writes ``ready`` to the file ``out``, then writes ``records``
records with unique ids, appending ``w ID ...`` to ``out`` after each write
returned (so an id is listed only once its write returned), then ``written``.
It then waits for a line on stdin and leaves the block (a clean exit:
``done``). SIGALRM after ``deadline`` seconds bounds it if the test is lost.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from panoply_async import SDK


async def main(config: dict[str, object]) -> None:
    out = open(str(config["out"]), "w", buffering=1)  # noqa: SIM115 (one line per write)
    prefix = str(config["prefix"])
    sdk = SDK(
        str(config["apikey"]),
        str(config["apisecret"]),
        endpoint_url=str(config["endpoint_url"]),
        wal_dir=str(config["wal_dir"]),
        max_message_bytes=4096,
        flush_interval=0.05,
        max_attempts=1_000,  # a dead endpoint: keep retrying until killed
        backoff_max=0.2,
    )
    async with sdk as conn:
        out.write("ready\n")
        for start in range(0, int(str(config["records"])), 10):
            ids = [f"{prefix}-{start + i}" for i in range(10)]
            await conn.write_many("slots", [{"id": i} for i in ids])
            out.write("w " + " ".join(ids) + "\n")
            await asyncio.sleep(0.002)  # a service writes over time: kills land mid-write
        out.write("written\n")
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    out.write("done\n")


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    config = json.loads(sys.argv[1])
    signal.alarm(int(str(config["deadline"])))
    asyncio.run(main(config))
