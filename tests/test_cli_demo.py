"""`panoply-async demo` as a user runs it, including Ctrl-C in the middle."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

SCRIPT = str(Path(sys.executable).with_name("panoply-async"))


def test_demo_checks_every_record() -> None:
    done = subprocess.run([SCRIPT, "demo", "--records", "5000"], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "5,000 records in" in done.stdout
    assert "every record arrived exactly once" in done.stdout
    assert "\x1b[" not in done.stdout + done.stderr


def test_ctrl_c_drains_and_reconciles() -> None:
    proc = subprocess.Popen([SCRIPT, "demo", "--records", "50000000"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    assert "streaming" in proc.stderr.readline()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "every accepted record arrived exactly once" in err
    assert "records in" in out
