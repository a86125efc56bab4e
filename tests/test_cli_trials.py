"""``run`` for trials and a first look: ``--max-records``, the ``--local`` per-table
summary, ``--on-bad-record``, and a dry run piped into ``head`` (issue 19, item 13).
Each command runs as a user would: the console script in a subprocess, bounded."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cli_child import SCRIPT
from panoply_async import DataSource
from panoply_async._engine.trial import Trial
from panoply_async.testing import LocalQueue

TOKEN = "tok-trial-secret-77"

CONNECTOR = '''
from pathlib import Path
from panoply_async import DataSource

CONFIG = {
    "title": "Kinds",
    "icon": "data:image/png;base64,iVBORw0KGgo=",
    "params": [
        {"name": "api_token", "title": "Token", "type": "password", "secret": True},
        {"name": "bad_every", "title": "A refused record every N", "type": "integer",
         "default": 0},
    ],
}


class Stream(DataSource):
    """Up to 200,000 records in batches of 100, alternating two kinds; writes how many
    batches it yielded when it is closed, and "closed" when close() ran."""

    async def read(self, n=None):
        yielded = 0
        bad_every = int(self.source.get("bad_every") or 0)
        try:
            for b in range(2000):
                batch = []
                for i in range(100):
                    number = b * 100 + i
                    record = {"id": number, "kind": "ab"[number % 2], "price": number / 2,
                              "tags": ["t"], "owner": {"token": self.source.get("api_token")},
                              "note": None if number % 3 else "third"}
                    if bad_every and number % bad_every == 1:
                        record["blob"] = b"bytes are refused"
                    batch.append(record)
                yielded += 1
                yield batch
        finally:
            Path("yielded").write_text(str(yielded))

    def close(self):
        Path("closed").write_text("closed")
'''


def run(cwd: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANOPLY_")}
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=timeout,
                          env=env, stdin=subprocess.DEVNULL, check=False, cwd=cwd)


def connector(tmp_path: Path) -> str:
    path = tmp_path / "kinds.py"
    path.write_text(CONNECTOR, encoding="utf-8")
    return str(path)


@pytest.mark.main_only  # a local server in a subprocess: about 5 s
def test_max_records_local_summary_shows_columns_types_and_a_masked_sample(
        tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    done = run(tmp_path, "run", connector(tmp_path), "--local", "--api-token", TOKEN,
               "--max-records", "250", "--state-file", str(state))
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert "records: 250 records in 3 batches" in err
    assert "trial: at most 250 records per table; no state saved" in err
    assert "arrived at the local server:\n  kinds: 250\n" in err
    assert ("    columns: id (integer), kind (string), price (number), "
            "tags (array), owner (object), note (string | null)") in err
    sample_line = next(line for line in err.splitlines() if line.startswith("    sample: "))
    sample = json.loads(sample_line.removeprefix("    sample: "))
    assert sample == {"id": 0, "kind": "a", "price": 0.0, "tags": ["t"],
                      "owner": {"token": "***"}, "note": "third"}
    assert TOKEN not in err + done.stdout
    assert int((tmp_path / "yielded").read_text()) == 3  # stopped reading early
    assert (tmp_path / "closed").read_text() == "closed"
    assert not state.exists()  # a trial saves no state


@pytest.mark.main_only  # three runs, one with a local server: about 5 s
def test_bad_records_skip_and_dead_letter_are_counted_in_the_summary(tmp_path: Path) -> None:
    args = ["run", connector(tmp_path), "--api-token", TOKEN, "--bad-every", "100",
            "--max-records", "1000"]
    failed = run(tmp_path, *args, "--dry-run")
    assert failed.returncode == 1
    assert "RecordTypeError" in failed.stderr

    skipped = run(tmp_path, *args, "--dry-run", "--on-bad-record", "skip")
    assert skipped.returncode == 0, skipped.stderr
    # --max-records counts records written: refused ones do not use up the trial.
    assert "bad records: 11 skipped" in skipped.stderr
    assert "  kinds: batch 1, record 1 at [\"blob\"]: write('kinds'): value of type bytes" \
        in skipped.stderr
    assert "... and 6 more records" in skipped.stderr
    assert len(skipped.stdout.splitlines()) == 1000

    dead = tmp_path / "out" / "dead.jsonl"
    lettered = run(tmp_path, *args, "--local", "--on-bad-record", "dead-letter",
                   "--dead-letter-file", str(dead))
    assert lettered.returncode == 0, lettered.stderr
    assert f"bad records: 11 dead-lettered to {dead}" in lettered.stderr
    assert stat.S_IMODE(dead.stat().st_mode) == 0o600
    entries = [json.loads(line) for line in dead.read_text(encoding="utf-8").splitlines()]
    assert [e["record"]["id"] for e in entries] == list(range(1, 1100, 100))
    assert all(e["table"] == "kinds" and e["path"] == '["blob"]' for e in entries)
    assert TOKEN not in dead.read_text(encoding="utf-8")
    assert "arrived at the local server:\n  kinds: 1,000\n" in lettered.stderr


def test_dry_run_into_head_exits_quietly_without_a_spool(tmp_path: Path) -> None:
    script = f"{SCRIPT} run {connector(tmp_path)} --dry-run | head -2; " \
             "echo status=${PIPESTATUS[0]} >&2"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANOPLY_")}
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=90,
                          env=env, stdin=subprocess.DEVNULL, check=False, cwd=tmp_path)
    assert [json.loads(line)["id"] for line in done.stdout.splitlines()] == [0, 1]
    assert "status=141" in done.stderr
    assert "Traceback" not in done.stderr
    assert "BrokenPipe" not in done.stderr
    assert "replay" not in done.stderr
    assert "printed" not in done.stderr
    assert not (tmp_path / "panoply-spool").exists()
    assert int((tmp_path / "yielded").read_text()) < 2000  # the run stopped


class Endless(DataSource):
    """Batches of 10 until closed; counts what it yielded and whether close() ran."""

    yielded = 0
    closed = False
    finished = False

    async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        number = 0
        try:
            while True:
                batch = [{"id": number + i, "__state": number} for i in range(10)]
                number += 10
                Endless.yielded += 1
                self.state(number, {"next": number})
                yield batch
        finally:
            Endless.finished = True

    async def close(self) -> None:
        Endless.closed = True


async def test_max_records_ends_an_endless_read_and_commits_no_state(
        panoply_queue: LocalQueue) -> None:
    committed: list[Any] = []
    async with panoply_queue.sdk() as conn:
        result = await conn.ingest(Endless({"type": "endless"}), max_records=25,
                                   on_state=lambda *state: committed.append(state))
    assert result.records == 25
    assert result.tables == {"endless": 25}
    assert Endless.yielded == 3
    assert Endless.finished is True
    assert Endless.closed is True
    assert committed == []
    assert result.states_committed == 0
    ids = sorted(r["id"] for r in (await panoply_queue.atables())["endless"])
    assert ids == list(range(25))


def trial_walk(max_records: int, batches: list[dict[str, int]]) -> tuple[int, dict[str, int]]:
    """Feed ``batches`` (records offered per table) to a Trial as the pipeline does;
    how many batches were read before it had enough, and what was written."""
    trial = Trial(max_records)
    tables: dict[str, int] = {}
    for number, batch in enumerate(batches, 1):
        for table, offered in batch.items():
            tables[table] = tables.get(table, 0) + trial.room(tables.get(table, 0), offered)
        trial.batch_done()
        if trial.enough(tables):
            return number, tables
    return len(batches), tables


def test_trial_stops_once_each_table_has_its_share() -> None:
    assert trial_walk(25, [{"a": 10}] * 100) == (3, {"a": 25})
    # Interleaved tables: a full table's batches do not stop a table still filling.
    assert trial_walk(25, [{"a": 10}, {"b": 2}] * 100) == (26, {"a": 25, "b": 25})
    # A small table never reaches its share: the big one's idle batches end the read.
    read, written = trial_walk(25, [{"small": 3}] + [{"big": 10}] * 100)
    assert written == {"small": 3, "big": 25}
    assert read == 1 + 3 + 2 * 2
    # Refused or empty batches (nothing offered) neither stop nor restart the count.
    batches = [{"a": 3}, {"b": 5}, {}, {}, {}, {}, *[{"b": 1}] * 10]
    assert trial_walk(5, batches) == (2 + 4 + 2 * 2, {"a": 3, "b": 5})
