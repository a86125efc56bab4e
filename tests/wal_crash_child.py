"""Children of tests/test_wal_crash.py: write records with a write-ahead log until killed.

``python tests/wal_crash_child.py`` is a zygote: it imports the SDK and opens
one (warming botocore's caches) once, then for every JSON config line on
stdin forks a child, prints ``pid N``, and on the next line (``kill``)
SIGKILLs that child if it still runs, reaps it and prints ``exited STATUS``.
Forking a warm process makes a round cost tenths of a second instead of
seconds, and only the zygote, which has not reaped the child yet, signals
it: a recycled pid is never hit.

A child writes to the file ``out``: ``ready`` once the SDK is open (recovery
of what an earlier child left is done by then), then, after each ``write()``/
``write_many()`` returned, ``w ID ID ...`` with the ids it accepted, flushed at
once: an id is reported only once its write returned. It ends by itself after
``records`` records and a flush (``done``), or after ``deadline`` seconds
(SIGALRM), so a lost signal cannot hang the test.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys

from panoply_async import SDK
from panoply_async.local import make_credentials


async def main(config: dict[str, object]) -> None:
    rng = random.Random(str(config["seed"]))
    prefix = str(config["prefix"])
    total = int(str(config["records"]))
    out = sys.stdout
    sdk = SDK(
        str(config["apikey"]),
        str(config["apisecret"]),
        endpoint_url=str(config["endpoint_url"]),
        wal_dir=str(config["wal_dir"]),
        max_message_bytes=4096,
        max_buffer_bytes=64 * 1024,
        max_wal_bytes=256 * 1024,
        flush_interval=0.05,
    )
    async with sdk as conn:
        out.write("ready\n")
        out.flush()
        written = 0
        while written < total:
            count = min(total - written, rng.choice((1, 1, 1, 5, 20)))
            ids = [f"{prefix}-{written + i}" for i in range(count)]
            records = [{"id": i, "pad": "x" * rng.randint(10, 200)} for i in ids]
            if count == 1:
                await conn.write("crash", records[0])
            else:
                await conn.write_many("crash", records)
            out.write("w " + " ".join(ids) + "\n")
            out.flush()
            written += count
            if rng.random() < 0.2:
                await asyncio.sleep(0.005)
        await conn.flush()
    out.write("done\n")
    out.flush()


async def warm_up() -> None:
    apikey, apisecret = make_credentials("warm")
    async with SDK(apikey, apisecret, endpoint_url="http://127.0.0.1:9"):
        pass


def child(config: dict[str, object]) -> None:
    signal.alarm(int(str(config["deadline"])))  # SIGALRM's default action ends the child
    fd = os.open(str(config["out"]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.close(fd)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    asyncio.run(main(config))


def zygote() -> None:
    asyncio.run(warm_up())
    for line in sys.stdin:
        config = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                child(config)
                code = 0
            finally:
                os._exit(code)
        print(f"pid {pid}", flush=True)
        if sys.stdin.readline().strip() == "kill":
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        print(f"exited {status}", flush=True)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.alarm(300)  # bounds the zygote too
    zygote()
