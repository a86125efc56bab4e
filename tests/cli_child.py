"""A ``panoply-async`` child process that tests signal.

The child's SIGINT and SIGTERM are reset to their defaults: a test run started
in the background (a CI job, ``nohup``, ``trap '' INT``) passes SIGINT down as
*ignored*, and the command rightly keeps an ignored signal ignored. Every wait
is bounded, so a lost signal fails the test at once with a clear message
instead of hanging.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

SCRIPT = str(Path(sys.executable).with_name("panoply-async"))


def default_signals() -> None:
    """``preexec_fn``: SIGINT and SIGTERM as a terminal would deliver them."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Child:
    """The console script with ``args``; stderr read line by line, never blocking forever."""

    def __init__(self, *args: str, env: dict[str, str] | None = None,
                 preexec: Callable[[], object] | None = None) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("PANOPLY_")}
        self.proc = subprocess.Popen(
            [SCRIPT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, env={**base, **(env or {})},
            preexec_fn=lambda: (default_signals(), preexec and preexec()),
        )
        self.stderr = ""
        self._pending = b""

    def wait_for(self, needle: str, *, timeout: float = 120) -> None:
        """Read stderr until it holds ``needle``; fail if the child ends or stays silent."""
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        deadline = time.monotonic() + timeout
        while needle not in self.stderr:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                pytest.fail(f"no {needle!r} on stderr within {timeout}s:\n{self.stderr}")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                self.proc.wait(timeout=timeout)
                pytest.fail(f"the command ended (exit {self.proc.returncode}) before printing "
                            f"{needle!r}:\n{self.stderr}")
            self._pending += chunk
            text, _, self._pending = self._pending.rpartition(b"\n")
            if text:
                self.stderr += text.decode("utf-8", "replace") + "\n"

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def finish(self, *, timeout: float = 120) -> tuple[int, str, str]:
        """Exit code, stdout and the whole stderr; fail (and kill) if it does not end."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the command did not end within {timeout}s after the signal (a lost "
                        f"signal?):\n{self.stderr}")
        self.stderr += (self._pending + err).decode("utf-8", "replace")
        self._pending = b""
        return self.proc.returncode, out.decode("utf-8", "replace"), self.stderr

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()
