"""`panoply-async run --wal-dir`: a run resends what a crashed run left in the log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from panoply_async import decode_body
from panoply_async._durable.wal.log import WriteAheadLog, queue_digest
from panoply_async.testing import LocalQueue

SCRIPT = str(Path(sys.executable).with_name("panoply-async"))

CONNECTOR = """
from panoply_async import DataSource


class Stream(DataSource):
    async def read(self, n=None):
        yield [{"id": i} for i in range(int(self.source["count"]))]


CONFIG = {
    "title": "Numbers",
    "icon": "data:image/png;base64,iVBORw0KGgo=",
    "params": [{"name": "count", "title": "How many", "type": "integer", "required": True}],
}
"""


def test_run_resends_what_a_crashed_run_logged(panoply_queue: LocalQueue, tmp_path: Path) -> None:
    wal_dir = tmp_path / "wal"
    # A run killed after logging two records leaves its log behind.
    queue_name = panoply_queue.queue_url.rsplit("/", 1)[-1]
    wal = WriteAheadLog(
        wal_dir,
        queue_digest(queue_name),
        frame_limit=4096,
        segment_bytes=1 << 16,
        max_bytes=1 << 20,
    )
    wal.open()
    wal.recover()
    packer = wal.packer(4096)
    packer.add(b'{"id":"crashed-1","__table":"numbers"}\n')
    packer.add(b'{"id":"crashed-2","__table":"numbers"}\n')
    os.close(wal._lock_fd)

    connector = tmp_path / "numbers.py"
    connector.write_text(CONNECTOR, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANOPLY_")}
    env |= {"PANOPLY_APIKEY": panoply_queue.apikey, "PANOPLY_APISECRET": panoply_queue.apisecret}
    done = subprocess.run(
        [
            SCRIPT,
            "run",
            str(connector),
            "--count",
            "3",
            "--wal-dir",
            str(wal_dir),
            "--endpoint-url",
            panoply_queue.endpoint_url,
            "--spool-dir",
            str(tmp_path / "spool"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    ids = [r["id"] for m in panoply_queue.messages() for r in decode_body(m.body)]
    assert sorted(map(str, ids)) == ["0", "1", "2", "crashed-1", "crashed-2"]
    assert sorted(p.name for p in wal_dir.iterdir()) == ["lock"]


def test_a_dry_run_refuses_a_wal_dir(tmp_path: Path) -> None:
    # A dry run would "acknowledge" a real run's logged records into stdout and
    # retire them from the log: refused before anything is opened.
    connector = tmp_path / "numbers.py"
    connector.write_text(CONNECTOR, encoding="utf-8")
    wal_dir = tmp_path / "wal"
    done = subprocess.run(
        [SCRIPT, "run", str(connector), "--count", "3", "--dry-run", "--wal-dir", str(wal_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "--dry-run and --wal-dir exclude each other" in done.stderr
    assert not wal_dir.exists()
