"""What the ``run`` and ``demo`` commands show while a connector runs.

On a terminal: a live progress bar (the connector's message, loaded/total,
records/s, elapsed) with log lines printed above it. Elsewhere (a pipe, a
file, CI): plain lines, at most one progress line per second, and no control
codes at all.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

__all__ = ["RunDisplay"]


class _PlainHandler(logging.Handler):
    def __init__(self, display: RunDisplay) -> None:
        super().__init__()
        self._display = display

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._display.line(f"{record.levelname.lower()}: {self.format(record)}")
        except Exception:  # a log line must never break the run
            self.handleError(record)


class RunDisplay:
    """Progress and log lines on ``console`` (normally stderr)."""

    def __init__(self, console: Console, *, interval: float = 1.0) -> None:
        self.console = console
        self.live = console.is_terminal
        self._interval = interval
        self._started = time.monotonic()
        self._records = 0
        self._loaded: float = 0
        self._total: float | None = None
        self._message = ""
        self._last_line = 0.0
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._handler: logging.Handler | None = None
        self._saved_level = logging.NOTSET

    # -- lifetime -------------------------------------------------------------------

    def __enter__(self) -> RunDisplay:
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[counts]}"),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            self._task = self._progress.add_task("starting", total=None, counts="", rate="")
            self._progress.start()
            handler: logging.Handler = RichHandler(
                console=self.console, show_time=False, show_path=False, markup=False
            )
        else:
            handler = _PlainHandler(self)
        handler.setLevel(logging.INFO)
        # The connector's log() and the SDK's warnings: shown at INFO and above.
        package = logging.getLogger("panoply_async")
        self._saved_level = package.level
        package.setLevel(logging.INFO)
        package.addHandler(handler)
        self._handler = handler
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handler is not None:
            package = logging.getLogger("panoply_async")
            package.removeHandler(self._handler)
            package.setLevel(self._saved_level)
        self._refresh(force=True)
        if self._progress is not None:
            self._progress.stop()

    # -- updates --------------------------------------------------------------------

    def line(self, text: str) -> None:
        """Print a line above the bar (or just a line)."""
        if self.live:
            self.console.print(text, markup=False, highlight=False)
        else:
            self.console.out(text, highlight=False)

    def on_progress(self, data: Any) -> None:
        """A connector's ``progress`` event."""
        if isinstance(data, dict):
            self._loaded = float(data.get("loaded") or 0)
            total = data.get("total")
            self._total = float(total) if total else None
            self._message = str(data.get("msg") or data.get("message") or "")
        self._refresh()

    def add_records(self, count: int) -> None:
        self._records += count
        self._refresh()

    def _rate(self) -> float:
        elapsed = time.monotonic() - self._started
        return self._records / elapsed if elapsed > 0 else 0.0

    def _counts(self) -> str:
        loaded = f"{self._loaded:,.0f}"
        return f"{loaded}/{self._total:,.0f}" if self._total else loaded

    def _refresh(self, *, force: bool = False) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task,
                description=self._message or "reading",
                completed=self._loaded,
                total=self._total,
                counts=self._counts(),
                rate=f"{self._records:,} records, {self._rate():,.0f}/s",
            )
            return
        now = time.monotonic()
        if not force and now - self._last_line < self._interval:
            return
        self._last_line = now
        message = f" {self._message}" if self._message else ""
        self.line(
            f"progress: {self._counts()}{message} | {self._records:,} records, "
            f"{self._rate():,.0f}/s, {now - self._started:.1f}s"
        )
