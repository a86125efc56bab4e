"""`panoply-async tail`: decoded records of a queue, as JSON lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from panoply_async.testing import LocalQueue

SCRIPT = str(Path(sys.executable).with_name("panoply-async"))


async def test_tail_prints_the_records(panoply_queue: LocalQueue) -> None:
    async with panoply_queue.sdk() as conn:
        for i in range(25):
            await conn.write("events" if i % 2 else "users", {"id": i, "name": "ünï"})
    env = {**os.environ, "PANOPLY_APIKEY": panoply_queue.apikey,
           "PANOPLY_APISECRET": panoply_queue.apisecret}
    done = subprocess.run(
        [SCRIPT, "tail", "--endpoint-url", panoply_queue.endpoint_url, "--wait", "0",
         "--max", "20"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(records) >= 20
    assert all(r["name"] == "ünï" for r in records)
    assert {r["__table"] for r in records} == {"events", "users"}
    assert panoply_queue.apisecret not in done.stdout + done.stderr


def test_tail_needs_a_queue() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANOPLY_")}
    done = subprocess.run([SCRIPT, "tail", "--wait", "0"], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "missing credentials" in done.stderr
