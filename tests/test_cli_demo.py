"""`panoply-async demo` as a user runs it, including Ctrl-C in the middle."""

from __future__ import annotations

import re
import signal
import subprocess

from cli_child import SCRIPT, Child  # children start with SIGINT and SIGTERM at SIG_DFL


def test_demo_checks_every_record() -> None:
    done = subprocess.run([SCRIPT, "demo", "--records", "5000"], capture_output=True,
                          text=True, timeout=300, check=False, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert "5,000 records in" in done.stdout
    assert "every record arrived exactly once" in done.stdout
    assert "\x1b[" not in done.stdout + done.stderr


def test_demo_summary_and_progress_report_the_same_elapsed_time() -> None:
    done = subprocess.run([SCRIPT, "demo", "--records", "20000"], capture_output=True,
                          text=True, timeout=300, check=False, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    summary = re.search(r"acknowledged in ([0-9.]+) s \(from the first write to the last "
                        r"acknowledgement\)", done.stdout)
    assert summary, done.stdout
    shown = re.findall(r"^progress: .*records acknowledged, .*, ([0-9.]+)s elapsed$",
                       done.stderr, re.M)
    assert shown, done.stderr
    # The same clock, frozen at the end of the drain: equal up to the printed precision.
    assert abs(float(shown[-1]) - float(summary.group(1))) <= 0.051, (shown, done.stdout)
    last = [line for line in done.stderr.splitlines() if line.startswith("progress:")][-1]
    assert "20,000 records acknowledged" in last, last


def test_ctrl_c_drains_and_reconciles() -> None:
    # Bounded: if the signal were lost, the demo would end by itself (exit 0) in seconds.
    child = Child("demo", "--records", "500000")
    child.wait_for("progress:")
    child.signal(signal.SIGINT)
    code, out, err = child.finish(timeout=180)
    assert code != 0, f"the demo ran to its end: the Ctrl-C was lost\n{err}"
    assert code == 130, err
    assert "Traceback" not in err
    assert "every accepted record arrived exactly once" in err
    assert "records in" in out
