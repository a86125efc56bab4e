"""`panoply-async run --wal-dir D --state-file S`: states ride the log (issue 19.9).

A run SIGKILLed mid-run leaves records in the log whose state was never
committed. The next run resends them, commits the state logged after them, and
starts the connector from it; the run after that has nothing left to send.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from cli_child import SCRIPT, Child
from panoply_async import decode_body
from panoply_async.testing import LocalQueue

CONNECTOR = """
import os

import anyio

from panoply_async import DataSource

CONFIG = {
    "title": "Numbers",
    "icon": "data:image/png;base64,iVBORw0KGgo=",
    "params": [
        {"name": "count", "title": "How many", "type": "integer", "required": True},
        {"name": "stop_at", "title": "Hang after", "type": "integer", "required": True},
        {"name": "marker", "title": "Hang marker", "type": "text", "required": True},
    ],
}


class Stream(DataSource):
    async def read(self, n=None):
        start = int((self.source.get("state") or {}).get("next", 0))
        count, stop_at = int(self.source["count"]), int(self.source["stop_at"])
        for begin in range(start, count, 10):
            end = min(begin + 10, count)
            yield [{"id": i} for i in range(begin, end)]
            self.state(f"to-{end}", {"next": end})
            if end == stop_at and not os.path.exists(self.source["marker"]):
                open(self.source["marker"], "w").close()
                await anyio.sleep(60)  # the test kills the run here
"""


def run_args(connector: Path, tmp_path: Path, endpoint_url: str) -> list[str]:
    return [
        "run", str(connector), "--count", "100", "--stop-at", "50",
        "--marker", str(tmp_path / "hung"), "--wal-dir", str(tmp_path / "wal"),
        "--state-file", str(tmp_path / "state.json"), "--endpoint-url", endpoint_url,
    ]


@pytest.mark.main_only
def test_a_killed_runs_state_rides_the_log_and_the_rerun_resumes_from_it(
    panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    connector = tmp_path / "numbers.py"
    connector.write_text(CONNECTOR, encoding="utf-8")
    env = {"PANOPLY_APIKEY": panoply_queue.apikey, "PANOPLY_APISECRET": panoply_queue.apisecret}
    state_file = tmp_path / "state.json"
    # SQS unreachable: nothing is acknowledged, so no state is committed before the kill.
    child = Child(*run_args(connector, tmp_path, "http://127.0.0.1:1"), env=env)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "hung").exists():
            assert child.proc.poll() is None, "the run ended before it hung"
            assert time.monotonic() < deadline, "the run never reached its hang"
            time.sleep(0.01)  # polling a file the child creates
        child.signal(signal.SIGKILL)
    finally:
        child.kill()
    assert not state_file.exists()

    base = {k: v for k, v in os.environ.items() if not k.startswith("PANOPLY_")}
    for _ in range(2):
        done = subprocess.run(
            [SCRIPT, *run_args(connector, tmp_path, panoply_queue.endpoint_url)],
            capture_output=True, text=True, timeout=120, env={**base, **env},
            stdin=subprocess.DEVNULL, check=False,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(state_file.read_text())["state"] == {"next": 100}

    arrived = Counter(r["id"] for m in panoply_queue.messages() for r in decode_body(m.body))
    assert sorted(arrived) == list(range(100))
    # Nothing was in flight at the kill (SQS was unreachable): no record comes twice.
    assert max(arrived.values()) == 1, {i: n for i, n in arrived.items() if n > 1}
