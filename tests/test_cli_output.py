"""What `panoply-async run` prints: secrets masked everywhere, connector errors with
their location, JSON params, --source-json with explicit flags, small wording."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from cli_child import SCRIPT

HEADER = '''
from panoply_async import DataSource
from panoply_async.errors import PanoplyException
'''


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANOPLY_")}
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=120,
                          env=env, stdin=subprocess.DEVNULL, check=False)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_issue14_item10_secret_params_are_masked_in_progress_and_error_messages(
    tmp_path: Path,
) -> None:
    connector = write(tmp_path / "pg.py", HEADER + '''
CONFIG = {"title": "PG", "icon": "data:image/png;base64,iVBORw0KGgo=", "params": [
    {"name": "dsn", "title": "DSN", "type": "text", "secret": True, "required": True}]}


class Stream(DataSource):
    async def read(self, n=None):
        self.progress(1, 1, f"using {self.source['dsn']}")
        yield [{"id": 1}]
        raise PanoplyException(f"auth failed for {self.source['dsn']}", retryable=False)
''')
    secret = "postgres://u:pw-s3cret@h/db"
    for mode in ("--dry-run", "--local"):
        done = run("run", str(connector), "--dsn", secret, mode)
        assert done.returncode == 1, done.stderr
        assert secret not in done.stdout + done.stderr
        assert "using ***" in done.stderr
        assert "auth failed for ***" in done.stderr


def test_issue11_item4_secrets_masked_with_stream_in_a_submodule(tmp_path: Path) -> None:
    package = tmp_path / "legacy_pkg"
    write(package / "__init__.py", '''
from .stream import Stream

CONFIG = {"title": "Legacy", "icon": "data:image/png;base64,iVBORw0KGgo=", "params": [
    {"name": "pwd", "title": "Password", "type": "text", "secret": True}]}
''')
    write(package / "stream.py", HEADER + '''

import logging


class Stream(DataSource):
    async def read(self, n=None):
        logging.getLogger("legacy_pkg").warning("password is %s", self.source["pwd"])
        self.log("connecting with", self.source["pwd"])
        self.progress(1, 1, "logged in as " + self.source["pwd"])
        yield [{"id": 1}]
''')
    done = run("run", str(package), "--dry-run", "--pwd", "hunter2xyz")
    assert done.returncode == 0, done.stderr
    assert "hunter2xyz" not in done.stderr
    assert "connecting with ***" in done.stderr
    assert "password is ***" in done.stderr  # the connector's own logger
    assert "logged in as ***" in done.stderr


def test_issue11_item5_connector_errors_name_the_file_and_line(tmp_path: Path) -> None:
    connector = write(tmp_path / "broken.py", HEADER + '''
CONFIG = {"title": "Broken", "icon": "data:image/png;base64,iVBORw0KGgo=", "params": []}


class Stream(DataSource):
    async def read(self, n=None):
        b"prefix" + "text"
        yield [{"id": 1}]
''')
    line = next(i for i, text in enumerate(connector.read_text().splitlines(), 1)
                if 'b"prefix"' in text)
    done = run("run", str(connector), "--dry-run")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: TypeError: "), done.stderr
    assert f"(at {connector}:{line} in read)" in last, done.stderr
    assert "Traceback" not in done.stderr
    verbose = run("run", str(connector), "--dry-run", "-v")
    assert verbose.returncode == 1
    assert "Traceback (most recent call last)" in verbose.stderr
    assert f'File "{connector}", line {line}, in read' in verbose.stderr


def test_issue11_item6_list_and_dict_params_are_parsed_as_json(tmp_path: Path) -> None:
    connector = write(tmp_path / "forms.py", HEADER + '''
CONFIG = {"title": "Forms", "icon": "data:image/png;base64,iVBORw0KGgo=", "params": [
    {"name": "forms", "title": "Forms", "type": "list"},
    {"name": "mapping", "title": "Mapping", "type": "text", "default": {"a": 1}},
    {"name": "ids", "title": "Ids", "type": "text", "default": []}]}


class Stream(DataSource):
    async def read(self, n=None):
        yield [{"forms": self.source.get("forms"), "mapping": self.source["mapping"],
                "ids": self.source["ids"]}]
''')
    done = run("run", str(connector), "--dry-run", "--forms", '["a", "b"]', "--ids", "[1, 2]")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout.splitlines()[0])
    assert record["forms"] == ["a", "b"]
    assert record["mapping"] == {"a": 1}
    assert record["ids"] == [1, 2]
    for option, value in (("--forms", "abc"), ("--mapping", "[1]"), ("--ids", "{")):
        bad = run("run", str(connector), "--dry-run", option, value)
        assert bad.returncode == 2, bad.stderr
        assert f"'{option}'" in bad.stderr
        assert "Traceback" not in bad.stderr


COUNTER = HEADER + '''
CONFIG = {"title": "Counter", "icon": "data:image/png;base64,iVBORw0KGgo=", "params": [
    {"name": "count", "title": "How many", "type": "integer", "required": True},
    {"name": "label", "title": "Label", "type": "text", "default": "x"}]}


class Stream(DataSource):
    async def read(self, n=None):
        yield [{"id": i, "label": self.source.get("label")}
               for i in range(int(self.source["count"]))]
'''


def test_issue14_item11_explicit_param_flags_win_over_source_json(tmp_path: Path) -> None:
    connector = write(tmp_path / "counter.py", COUNTER)
    source = write(tmp_path / "source.json", json.dumps({"count": 5, "label": "from-json"}))
    done = run("run", str(connector), "--dry-run", "--source-json", str(source),
               "--count", "2")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    # --count given explicitly wins; --label was not given, so the file's value stays.
    assert records == [{"id": 0, "label": "from-json", "__table": "counter"},
                       {"id": 1, "label": "from-json", "__table": "counter"}]


def test_issue14_item16_summary_wording(tmp_path: Path) -> None:
    connector = write(tmp_path / "counter.py", COUNTER)
    dry = run("run", str(connector), "--dry-run", "--count", "1")
    assert dry.returncode == 0, dry.stderr
    assert "progress: 0" not in dry.stderr  # the connector never reports progress
    assert "progress: 1 record acknowledged" in dry.stderr
    assert "records: 1 record in 1 batch," in dry.stderr
    assert "dry run: 1 record printed, nothing sent" in dry.stderr
    for sent in ("messages:", "bytes:", "requests:"):
        assert sent not in dry.stderr
    local = run("run", str(connector), "--local", "--count", "3")
    assert local.returncode == 0, local.stderr
    assert "records: 3 records in 1 batch," in local.stderr
    assert "messages: 1, bytes:" in local.stderr
