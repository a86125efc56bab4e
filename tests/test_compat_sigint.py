"""Ctrl-C during a blocking legacy read(): close() runs only after read() returned.

Through the real ``panoply-async run`` console script in a subprocess whose SIGINT is
reset to the default (a background CI job would pass it down ignored).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

SCRIPT = str(Path(sys.executable).with_name("panoply-async"))
BLOCKING = Path(__file__).resolve().parent / "legacy_connector" / "blocking.py"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def events(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_sigint_waits_for_the_blocked_read_before_close(tmp_path: Path) -> None:
    log = tmp_path / "times.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANOPLY_")}
    # hold: how long the blocked read() lasts unless close() releases it. It bounds the
    # child's work, is well within the default shutdown_timeout (30 s), and leaves a
    # loaded machine ample time to deliver the signal while read() is still blocked.
    proc = subprocess.Popen(
        [SCRIPT, "run", str(BLOCKING), "--dry-run", "--log", str(log), "--hold", "8"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env=env, preexec_fn=_default_sigint, cwd=tmp_path,
    )
    assert proc.stderr is not None
    seen = ""
    while "LEGACY READ BLOCKING" not in seen:
        line = proc.stderr.readline()
        assert line, f"the run ended before read() blocked: {seen}"
        seen += line
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, seen + err
    timeline = events(log)
    names = [e["event"] for e in timeline]
    assert names == ["read-start", "read-end", "close"], timeline
    read_end, close = timeline[1], timeline[2]
    # read() returned at the end of its hold, not because close() released it...
    assert read_end["closed"] is False
    # ...and close() started strictly after read() returned.
    assert float(close["at"]) > float(read_end["at"])  # type: ignore[arg-type]
    # The first batch was delivered before the interruption; the batch of the
    # interrupted read() is dropped.
    assert [json.loads(line)["id"] for line in out.splitlines()] == [1]
