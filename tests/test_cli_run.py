"""`panoply-async run`, `validate` and `init`, run as a user would: the console script
in a subprocess (and in a pseudo-terminal for the progress bar)."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_child import SCRIPT, Child  # children start with SIGINT and SIGTERM at SIG_DFL
from panoply_async.testing import LocalQueue

CONNECTOR = '''
from typing import Any
import anyio
from panoply_async import DataSource

CONFIG = {
    "title": "Numbers",
    "icon": "data:image/png;base64,iVBORw0KGgo=",
    "params": [
        {"name": "count", "title": "How many", "type": "integer", "required": True},
        {"name": "api_token", "title": "Token", "type": "password", "secret": True,
         "help": "The API token"},
        {"name": "pause", "title": "Pause per page", "type": "number", "default": 0},
    ],
}


class Stream(DataSource):
    async def read(self, n=None):
        count = int(self.source["count"])
        page = n or 100
        start = int((self.source.get("state") or {}).get("next", 0))
        self.log("starting at", start, "with token", self.source.get("api_token"))
        for first in range(start, count, page):
            last = min(count, first + page)
            self.state(first, {"next": last})
            self.progress(last, count, f"numbers up to {last}")
            yield [{"id": i, "__state": first} for i in range(first, last)]
            if float(self.source.get("pause") or 0):
                await anyio.sleep(float(self.source["pause"]))
'''


@pytest.fixture
def connector(tmp_path: Path) -> Path:
    path = tmp_path / "numbers.py"
    path.write_text(CONNECTOR, encoding="utf-8")
    return path


def run(*args: str, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PANOPLY_")}
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=timeout,
                          env={**base, **(env or {})}, stdin=subprocess.DEVNULL, check=False)


def creds_env(q: LocalQueue) -> dict[str, str]:
    return {"PANOPLY_APIKEY": q.apikey, "PANOPLY_APISECRET": q.apisecret}


def test_help_lists_the_generated_params(connector: Path) -> None:
    done = run("run", str(connector), "--help")
    assert done.returncode == 0, done.stderr
    for option in ("--count", "--api-token", "--pause", "How many", "The API token"):
        assert option in done.stdout


def test_missing_required_param_names_the_option(connector: Path) -> None:
    done = run("run", str(connector), "--dry-run")
    assert done.returncode == 2
    assert "missing required option --count" in done.stderr


def test_unknown_module(tmp_path: Path) -> None:
    done = run("run", "no_such_connector_module", "--dry-run")
    assert done.returncode == 2
    assert "no_such_connector_module" in done.stderr


def test_broken_config_lists_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "broken.py"
    bad.write_text(
        "from panoply_async import DataSource\n"
        "class Stream(DataSource):\n    pass\n"
        "CONFIG = {'title': '', 'icon': 'x.png', 'params': [{'name': 'a'}, {'name': 'a'},"
        " {'name': 'b c', 'required': 'yes'}]}\n",
        encoding="utf-8",
    )
    for command in (["run", str(bad), "--dry-run"], ["validate", str(bad)]):
        done = run(*command)
        assert done.returncode == 2
        for words in ("read()", "title", "icon", "used twice", "identifier", "required"):
            assert words in done.stderr, (words, done.stderr)


def test_validate_ok(connector: Path) -> None:
    done = run("validate", str(connector))
    assert done.returncode == 0
    assert "ok" in done.stdout


def test_bad_credentials_do_not_print_the_secret(connector: Path) -> None:
    secret = "c2VjcmV0LW9ubHkvdHdv"
    done = run("run", str(connector), "--count", "3", "--apikey", "acme/x",
               "--apisecret", secret)
    assert done.returncode == 2
    assert "bad credentials" in done.stderr
    assert secret not in done.stdout + done.stderr


def test_dry_run_prints_the_records(connector: Path) -> None:
    done = run("run", str(connector), "--count", "250", "--dry-run", "--api-token", "tok-123")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["id"] for r in records] == list(range(250))
    assert {r["__table"] for r in records} == {"numbers"}
    assert "\x1b[" not in done.stdout + done.stderr
    assert "tok-123" not in done.stderr  # log() masks secret params
    assert "starting at 0 with token ***" in done.stderr


def test_local_summary_counts_match(connector: Path) -> None:
    done = run("run", str(connector), "--count", "1234", "--local", "--batch-size", "200")
    assert done.returncode == 0, done.stderr
    assert "numbers: 1,234" in done.stderr
    assert "arrived at the local server" in done.stderr
    assert done.stderr.count("numbers: 1,234") == 2  # written, and arrived
    assert "\x1b[" not in done.stderr


def test_sigint_drains_and_state_file_resumes(
    connector: Path, panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    state_file = tmp_path / "state.json"
    # Bounded: 3,000 records at 0.1 s per page of 100 end by themselves in about
    # three seconds if the signal were lost.
    args = ["run", str(connector), "--count", "3000", "--pause", "0.1", "--batch-size", "100",
            "--endpoint-url", panoply_queue.endpoint_url, "--state-file", str(state_file),
            "--spool-dir", str(tmp_path / "spool")]
    child = Child(*args, env=creds_env(panoply_queue))
    child.wait_for("progress:")
    child.signal(signal.SIGINT)
    code, _, err = child.finish()
    assert code != 0, f"the run went to its end: the Ctrl-C was lost\n{err}"
    assert code == 130, err
    assert "Traceback" not in err
    first = {r["id"] for r in panoply_queue.records()}
    assert first  # something was delivered before the interruption
    assert len(first) < 3000
    assert "spooled: 0" in err
    assert f"interrupted by Ctrl-C: {len(first):,} records delivered, 0 not delivered" in err
    saved = json.loads(state_file.read_text())
    # The committed state never runs ahead of what arrived.
    assert set(range(saved["state"]["next"])) <= first

    done = run(*args, env=creds_env(panoply_queue))
    assert done.returncode == 0, done.stderr
    second = {r["id"] for r in panoply_queue.records()}
    assert first | second == set(range(3000))
    assert json.loads(state_file.read_text())["state"] == {"next": 3000}


def test_progress_bar_in_a_terminal(connector: Path) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command, its output on the pseudo-terminal
        os.execv(SCRIPT, [SCRIPT, "run", str(connector), "--count", "600", "--pause", "0.2",
                          "--batch-size", "100", "--dry-run"])
    output = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    text = output.decode("utf-8", "replace")
    assert "numbers up to" in text
    assert "600/600" in text
    assert "\x1b[" in text  # a live display, unlike the plain output elsewhere


def test_init_scaffolds_a_connector_that_passes_its_tests(tmp_path: Path) -> None:
    done = run("init", "demo_source", "--directory", str(tmp_path))
    assert done.returncode == 0, done.stderr
    project = tmp_path / "demo_source"
    check = run("validate", str(project / "demo_source"))
    assert check.returncode == 0, check.stderr
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                           cwd=project, capture_output=True, text=True, timeout=300,
                           check=False)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "1 passed" in tests.stdout
    again = run("init", "demo_source", "--directory", str(tmp_path))
    assert again.returncode == 2
    assert run("init", "Bad-Name", "--directory", str(tmp_path)).returncode == 2
