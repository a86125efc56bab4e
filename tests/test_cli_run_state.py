"""`panoply-async run --state-file`: dry runs leave it alone, a broken one is refused
untouched, and it carries ``lastTimeSucceed`` from one successful run to the next."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
from pathlib import Path

import pytest

from cli_child import SCRIPT

CONNECTOR = '''
from panoply_async import DataSource

CONFIG = {
    "title": "Incremental",
    "icon": "data:image/png;base64,iVBORw0KGgo=",
    "params": [{"name": "count", "title": "How many", "type": "integer", "default": 5}],
}


class Stream(DataSource):
    async def read(self, n=None):
        since = self.source.get("lastTimeSucceed")
        self.log("since", since)
        start = int((self.source.get("state") or {}).get("next", 0))
        count = int(self.source["count"])
        self.state(start, {"next": count})
        yield [{"id": i, "since": since, "__state": start} for i in range(start, count)]
'''


@pytest.fixture
def connector(tmp_path: Path) -> Path:
    path = tmp_path / "incremental.py"
    path.write_text(CONNECTOR, encoding="utf-8")
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANOPLY_")}
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=120,
                          env=env, stdin=subprocess.DEVNULL, check=False)


def test_issue14_item4_dry_run_leaves_the_state_file_untouched(
    connector: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    # No state file yet: a dry run does not create one.
    done = run("run", str(connector), "--dry-run", "--state-file", str(state))
    assert done.returncode == 0, done.stderr
    assert not state.exists()
    # An existing one: read (the dry run resumes from it), never written.
    original = '{"state_id": 0, "state": {"next": 2}}'
    state.write_text(original)
    done = run("run", str(connector), "--dry-run", "--state-file", str(state))
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["id"] for line in done.stdout.splitlines()] == [2, 3, 4]
    assert state.read_text() == original
    assert "nothing saved" in done.stderr


@pytest.mark.parametrize(("content", "words"), [
    ('{"state_id": 0, "sta', "not valid JSON"),
    ("", "empty"),
    ("[1, 2]", "found a JSON list"),
    ('{"stateid": 1, "state": {}}', "unexpected keys 'stateid'"),
    ('{"lastTimeSucceed": "yesterday"}', "lastTimeSucceed must be"),
])
def test_issue14_item7_a_broken_state_file_is_refused_and_left_as_it_is(
    connector: Path, tmp_path: Path, content: str, words: str
) -> None:
    state = tmp_path / "state.json"
    state.write_text(content)
    done = run("run", str(connector), "--local", "--state-file", str(state))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: --state-file {state}: ")
    assert words in lines[0]
    assert "Traceback" not in done.stderr
    assert state.read_text() == content


def test_issue11_item7_last_time_succeed_is_the_start_of_the_last_successful_run(
    connector: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    before = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    first = run("run", str(connector), "--local", "--state-file", str(state))
    assert first.returncode == 0, first.stderr
    assert "since None" in first.stderr
    saved = json.loads(state.read_text())
    assert set(saved) == {"state_id", "state", "lastTimeSucceed"}
    stamp = saved["lastTimeSucceed"]
    moment = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f")
    assert before <= moment <= datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert oct(state.stat().st_mode & 0o777) == oct(0o600)

    second = run("run", str(connector), "--count", "7", "--local", "--state-file", str(state))
    assert second.returncode == 0, second.stderr
    assert f"since {stamp}" in second.stderr  # the connector got the first run's start
    assert json.loads(state.read_text())["lastTimeSucceed"] > stamp
    assert json.loads(state.read_text())["state"] == {"next": 7}

    # A dry run passes it in too (without writing anything).
    dry = run("run", str(connector), "--count", "9", "--dry-run", "--state-file", str(state))
    assert dry.returncode == 0, dry.stderr
    since = json.loads(state.read_text())["lastTimeSucceed"]
    assert [json.loads(line)["since"] for line in dry.stdout.splitlines()] == [since, since]
