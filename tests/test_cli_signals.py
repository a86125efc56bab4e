"""`panoply-async run` under SIGTERM and repeated Ctrl-C (issue 14, item 9), as a
supervisor or a user sends them. Children start with default signal dispositions
and bounded work (see ``cli_child``)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from cli_child import Child  # children start with SIGINT and SIGTERM at SIG_DFL
from faultproxy import unused_endpoint_url
from panoply_async.local import make_credentials
from panoply_async.testing import LocalQueue

CONNECTOR = '''
import anyio
from panoply_async import DataSource

CONFIG = {
    "title": "Numbers",
    "icon": "data:image/png;base64,iVBORw0KGgo=",
    "params": [{"name": "count", "title": "How many", "type": "integer", "required": True}],
}


class Stream(DataSource):
    async def read(self, n=None):
        count = int(self.source["count"])
        start = int((self.source.get("state") or {}).get("next", 0))
        for first in range(start, count, 100):
            last = min(count, first + 100)
            self.state(first, {"next": last})
            self.progress(last, count, f"numbers up to {last}")
            yield [{"id": i, "__state": first} for i in range(first, last)]
            await anyio.sleep(0.1)
'''

# 3,000 records at 0.1 s per page of 100: about 3 s, so a lost signal ends the run
# by itself and fails the test at once.
COUNT = "3000"


@pytest.fixture
def connector(tmp_path: Path) -> Path:
    path = tmp_path / "numbers.py"
    path.write_text(CONNECTOR, encoding="utf-8")
    return path


def creds(q: LocalQueue) -> dict[str, str]:
    return {"PANOPLY_APIKEY": q.apikey, "PANOPLY_APISECRET": q.apisecret}


def unreachable_creds() -> dict[str, str]:
    apikey, apisecret = make_credentials("acme")
    return {"PANOPLY_APIKEY": apikey, "PANOPLY_APISECRET": apisecret}


def spooled_records(spool: Path) -> int:
    return sum(json.loads(line)["records"] for f in spool.glob("*.jsonl")
               for line in f.read_text().splitlines() if line.strip())


def test_issue14_item9_sigterm_drains_commits_and_exits_143(
    connector: Path, panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    state_file = tmp_path / "state.json"
    child = Child("run", str(connector), "--count", COUNT, "--endpoint-url",
                  panoply_queue.endpoint_url, "--state-file", str(state_file),
                  "--spool-dir", str(tmp_path / "spool"), env=creds(panoply_queue))
    child.wait_for("progress:")
    child.signal(signal.SIGTERM)
    code, _, err = child.finish()
    assert code != 0, f"the run went to its end: SIGTERM was lost\n{err}"
    assert code == 143, err
    assert "Traceback" not in err
    arrived = {r["id"] for r in panoply_queue.records()}
    assert 0 < len(arrived) < 3000
    assert f"interrupted by SIGTERM: {len(arrived):,} records delivered, 0 not delivered" in err
    saved = json.loads(state_file.read_text())
    assert set(range(saved["state"]["next"])) <= arrived


def test_issue14_item9_interrupt_against_an_unreachable_server_says_what_was_spooled(
    connector: Path, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    child = Child("run", str(connector), "--count", COUNT, "--endpoint-url",
                  unused_endpoint_url(), "--spool-dir", str(spool), "--shutdown-timeout", "1",
                  env=unreachable_creds())
    child.wait_for("progress:")
    child.signal(signal.SIGINT)
    code, _, err = child.finish()
    assert code == 1, err  # records were not delivered: a failure, not a clean interrupt
    assert "drained" not in err
    spooled = spooled_records(spool)
    assert spooled > 0
    assert f"interrupted by Ctrl-C: 0 records delivered, {spooled:,} not delivered" in err
    assert f"{spooled:,} records were not delivered; spooled to" in err


def test_issue14_item9_second_ctrl_c_stops_the_drain_at_once_and_spools(
    connector: Path, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    # A drain deadline far beyond the test's bound: only the second Ctrl-C can end it.
    child = Child("run", str(connector), "--count", COUNT, "--endpoint-url",
                  unused_endpoint_url(), "--spool-dir", str(spool),
                  "--shutdown-timeout", "600", env=unreachable_creds())
    child.wait_for("progress:")
    child.signal(signal.SIGINT)
    child.wait_for("again to stop at once")
    child.signal(signal.SIGINT)
    code, _, err = child.finish(timeout=120)
    assert code == 1, err
    assert "a second interrupt stopped the drain" in err
    spooled = spooled_records(spool)
    assert spooled > 0
    assert f"0 records delivered, {spooled:,} not delivered (spooled)" in err


def test_a_signal_inherited_as_ignored_stays_ignored(connector: Path, tmp_path: Path) -> None:
    child = Child("run", str(connector), "--count", COUNT, "--dry-run",
                  preexec=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN))
    child.wait_for("progress:")
    child.signal(signal.SIGTERM)
    code, out, err = child.finish()
    assert code == 0, err  # told to ignore SIGTERM, the run went on to its end
    assert len(out.splitlines()) == 3000
    assert "interrupted" not in err
