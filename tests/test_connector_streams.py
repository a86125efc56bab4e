"""Issue 21, items 1-4: streams and a catalog, per-stream state, `check`, the incremental
cursor. A connector with three streams (tests/streams_connector) reads a paginated HTTP
API started here on 127.0.0.1 (tests/streams_api.py); records are checked by id where
they arrive, at the local SQS server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli_child import SCRIPT, Child
from panoply_async.cli import cli
from panoply_async.testing import LocalQueue, group_by_table
from streams_api import TOKEN, StreamsAPI

CONNECTOR = str(Path(__file__).resolve().parent / "streams_connector")


@pytest.fixture
def api() -> Iterator[StreamsAPI]:
    server = StreamsAPI()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def creds(q: LocalQueue) -> dict[str, str]:
    return {"PANOPLY_APIKEY": q.apikey, "PANOPLY_APISECRET": q.apisecret}


def run_args(api: StreamsAPI, q: LocalQueue, state: Path, *extra: str) -> list[str]:
    return ["run", CONNECTOR, "--base-url", api.base_url, "--token", TOKEN,
            "--endpoint-url", q.endpoint_url, "--state-file", str(state), *extra]


def run(api: StreamsAPI, q: LocalQueue, state: Path, *extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANOPLY_")}
    done = subprocess.run([SCRIPT, *run_args(api, q, state, *extra)], capture_output=True,
                          text=True, timeout=120, env={**env, **creds(q)},
                          stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stderr
    assert TOKEN not in done.stdout + done.stderr
    return done.stderr


def arrived_ids(q: LocalQueue) -> dict[str, list[int]]:
    """Ids per table of what reached the queue since the last call (duplicates kept)."""
    return {table: sorted(r["id"] for r in records)
            for table, records in group_by_table(q.records()).items()}


def test_discover_prints_the_catalog_as_json() -> None:
    done = CliRunner().invoke(cli, ["discover", CONNECTOR, "--base-url", "http://127.0.0.1:9",
                                    "--token", TOKEN])
    assert done.exit_code == 0, done.output
    catalog = json.loads(done.output)
    by_name = {s["name"]: s for s in catalog["streams"]}
    assert list(by_name) == ["users", "orders", "tickets"]
    assert by_name["users"] == {"name": "users", "table": "crm_users",
                                "sync_mode": "full_refresh", "primary_key": ["id"],
                                "cursor_field": None}
    assert by_name["orders"]["sync_mode"] == "incremental"
    assert by_name["orders"]["cursor_field"] == "updated_at"
    assert by_name["orders"]["initial_value"] == 0
    assert by_name["tickets"]["json_schema"]["properties"]["subject"] == {"type": "string"}


def test_check_passes_and_fails_with_one_masked_line(api: StreamsAPI) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["check", CONNECTOR, "--base-url", api.base_url, "--token", TOKEN])
    assert ok.exit_code == 0, ok.output
    assert ok.output == f"check ok: {CONNECTOR}: authenticated as streams-test\n"
    wrong = TOKEN[::-1]
    bad = runner.invoke(cli, ["check", CONNECTOR, "--base-url", api.base_url, "--token", wrong])
    assert bad.exit_code == 1
    assert bad.output.count("\n") == 1, bad.output
    assert "check failed" in bad.output
    assert "HTTP 401" in bad.output
    assert wrong not in bad.output
    # Nothing listened there: the connection error is the one line.
    down = runner.invoke(cli, ["check", CONNECTOR, "--base-url", "http://127.0.0.1:9",
                               "--token", TOKEN])
    assert down.exit_code == 1
    assert down.output.startswith("check failed: ")
    assert down.output.count("\n") == 1
    assert [path for path, _ in api.requests] == ["/me"]  # check() reads no records


@pytest.mark.main_only  # three runs in child processes: about 6 s
def test_interrupted_run_resumes_each_stream_from_its_bookmark(
    api: StreamsAPI, panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    # Hold the third page of orders: users are done, two pages of orders delivered,
    # tickets not started. Ctrl-C arrives while the connector waits for that page.
    api.pause_at("/orders", 3)
    child = Child(*run_args(api, panoply_queue, state), env=creds(panoply_queue))
    if not api.paused.wait(60):
        child.kill()
        pytest.fail(f"the run never asked for the third page of orders:\n{child.stderr}")
    # cli_child's SCRIPT sets SIGINT to SIG_DFL in the child first: a background CI job
    # would hand it down ignored.
    child.signal(signal.SIGINT)
    code, _, err = child.finish()
    api.release()
    assert code == 130, err
    first = arrived_ids(panoply_queue)
    assert first == {"crm_users": list(range(1, 26)), "orders": list(range(1, 21))}
    saved = json.loads(state.read_text())
    assert saved["version"] == 2
    assert saved["streams"] == {"users": {"done": True}, "orders": {"cursor": 200}}
    assert oct(state.stat().st_mode & 0o777) == "0o600"

    # The resume: users are skipped, orders continue after their cursor, tickets start.
    api.requests.clear()
    run(api, panoply_queue, state)
    second = arrived_ids(panoply_queue)
    assert second == {"orders": list(range(21, 36)), "tickets": list(range(1, 16))}
    assert api.requests[0] == ("/orders", {"since": "200", "limit": "10"})
    assert not any(path == "/users" for path, _ in api.requests)
    saved = json.loads(state.read_text())
    assert saved["streams"] == {"users": {}, "orders": {"cursor": 350}, "tickets": {}}

    # An incremental rerun reads only the new orders; full-refresh streams read all.
    new = api.add_orders(4)
    run(api, panoply_queue, state)
    third = arrived_ids(panoply_queue)
    assert third == {"crm_users": list(range(1, 26)), "orders": new,
                     "tickets": list(range(1, 16))}
    assert json.loads(state.read_text())["streams"]["orders"] == {"cursor": 390}


@pytest.mark.main_only  # two runs in child processes: about 5 s
def test_streams_selects_and_leaves_other_streams_state_alone(
    api: StreamsAPI, panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    run(api, panoply_queue, state, "--streams", "orders")
    assert arrived_ids(panoply_queue) == {"orders": list(range(1, 36))}
    assert json.loads(state.read_text())["streams"] == {"orders": {"cursor": 350}}
    api.add_orders(3)
    api.requests.clear()
    err = run(api, panoply_queue, state, "--streams", "users,tickets")
    assert "orders" not in err
    assert arrived_ids(panoply_queue) == {"crm_users": list(range(1, 26)),
                                          "tickets": list(range(1, 16))}
    # The new orders were not read, and the orders' bookmark did not move.
    assert json.loads(state.read_text())["streams"] == {
        "orders": {"cursor": 350}, "users": {}, "tickets": {}}
    assert {path for path, _ in api.requests} == {"/users", "/tickets"}


def test_streams_refuses_a_stream_the_catalog_lacks(
    api: StreamsAPI, panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    runner = CliRunner()
    done = runner.invoke(cli, run_args(api, panoply_queue, tmp_path / "s.json",
                                       "--streams", "users,invoices"),
                         env=creds(panoply_queue))
    assert done.exit_code == 2  # a usage error, found before anything runs
    assert "error: --streams: unknown stream(s) 'invoices'" in done.output
    assert "orders, tickets, users" in done.output
    assert panoply_queue.records() == []
    assert api.requests == []



LEGACY_CATALOG = '''
import panoply

CONFIG = {"title": "Legacy catalog", "icon": "data:image/png;base64,iVBORw0KGgo=",
          "params": [{"name": "api_key", "title": "Key", "type": "password", "required": True}]}


class Stream(panoply.DataSource):
    @classmethod
    def list_resources(cls, source):
        if source["api_key"] != "k-123456":
            raise panoply.errors.PanoplyException("bad key " + source["api_key"], False)
        return [{"id": "contacts", "title": "Contacts"}]

    def read(self):
        if getattr(self, "sent", False):
            return None
        self.sent = True
        return [{"resource": name} for name in self.source.get("resources") or ["all"]]
'''


def test_legacy_catalog_and_check_without_check(tmp_path: Path) -> None:
    module = tmp_path / "legacy_catalog.py"
    module.write_text(LEGACY_CATALOG, encoding="utf-8")
    runner = CliRunner()
    done = runner.invoke(cli, ["discover", str(module), "--api-key", "k-123456"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) == {"streams": [{
        "name": "contacts", "table": "contacts", "sync_mode": "full_refresh",
        "primary_key": [], "cursor_field": None, "title": "Contacts"}]}
    refused = runner.invoke(cli, ["discover", str(module), "--api-key", "k-999999"])
    assert refused.exit_code == 1
    assert refused.output == "error: discover failed: PanoplyException: bad key ***\n"
    checked = runner.invoke(cli, ["check", str(module), "--api-key", "k-999999"])
    assert checked.exit_code == 0, checked.output
    assert "no check() defined; verified that the module loads, its params are valid, " \
           "and the source opens and closes" in checked.output
    # run --streams hands a legacy connector the names as its `resources` param.
    picked = runner.invoke(cli, ["run", str(module), "--api-key", "k-123456", "--dry-run",
                                 "--streams", "contacts"])
    assert picked.exit_code == 0, picked.output
    assert picked.stdout.splitlines() == [
        '{"resource": "contacts", "__table": "legacy_catalog"}']
    unknown = runner.invoke(cli, ["run", str(module), "--api-key", "k-123456", "--dry-run",
                                  "--streams", "deals"])
    assert unknown.exit_code == 1
    assert "unknown stream(s) 'deals'; the catalog offers: contacts" in unknown.output
