"""What the ``run`` and ``demo`` commands show while a connector runs.

On a terminal: a live progress bar (the connector's message, loaded/total,
records acknowledged, records/s, elapsed) with log lines printed above it.
Elsewhere (a pipe, a file, CI): plain lines, at most one progress line per
second, and no control codes at all.

"records" counts records that the queue acknowledged; the elapsed time runs
from :meth:`RunDisplay.start_clock` (the command's start of sending) until
:meth:`RunDisplay.stop_clock`, so the last line shows the same time as the
command's summary. Every line passes through the secret redactor.
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
)

from .._engine.redact import redactor

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
        self._stopped: float | None = None
        self._reported = False
        self._records = 0
        self._loaded: float = 0
        self._total: float | None = None
        self._message = ""
        self._last_line = 0.0
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._handler: logging.Handler | None = None
        self._scrubbed: list[logging.Handler] = []
        self._saved_level = logging.NOTSET

    # -- lifetime -------------------------------------------------------------------

    def __enter__(self) -> RunDisplay:
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[counts]}"),
                TextColumn("{task.fields[rate]}"),
                TextColumn("{task.fields[elapsed]}"),
                console=self.console,
                transient=False,
            )
            self._task = self._progress.add_task("starting", total=None, counts="", rate="",
                                                 elapsed="")
            self._progress.start()
            handler: logging.Handler = RichHandler(
                console=self.console, show_time=False, show_path=False, markup=False
            )
        else:
            handler = _PlainHandler(self)
        handler.setLevel(logging.INFO)
        # Handler-level, so that it also sees records of child loggers (the connector's).
        handler.addFilter(redactor)
        # The connector's log() and the SDK's warnings: shown at INFO and above.
        package = logging.getLogger("panoply_async")
        self._saved_level = package.level
        package.setLevel(logging.INFO)
        package.addHandler(handler)
        self._handler = handler
        # A connector's own loggers reach stderr through the root logger's handlers
        # (or Python's last-resort one): scrub those too.
        self._scrubbed = [h for h in (*logging.getLogger().handlers, logging.lastResort)
                          if h is not None and redactor not in h.filters]
        for other in self._scrubbed:
            other.addFilter(redactor)
        return self

    def __exit__(self, *exc: object) -> None:
        for other in self._scrubbed:
            other.removeFilter(redactor)
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
        text = redactor.redact(text)
        if self.live:
            self.console.print(text, markup=False, highlight=False)
        else:
            self.console.out(text, highlight=False)

    def on_progress(self, data: Any) -> None:
        """A connector's ``progress`` event."""
        if isinstance(data, dict):
            self._reported = True
            self._loaded = float(data.get("loaded") or 0)
            total = data.get("total")
            self._total = float(total) if total else None
            self._message = str(data.get("msg") or data.get("message") or "")
        self._refresh()

    def add_records(self, count: int) -> None:
        self._records += count
        self._refresh()

    def start_clock(self, at: float | None = None) -> None:
        """Measure the elapsed time from ``at`` (``time.monotonic()``; default now)."""
        self._started = time.monotonic() if at is None else at

    def stop_clock(self, elapsed: float | None = None) -> None:
        """Freeze the elapsed time (at ``elapsed`` seconds, the summary's figure)."""
        self._stopped = self.elapsed if elapsed is None else elapsed

    @property
    def elapsed(self) -> float:
        if self._stopped is not None:
            return self._stopped
        return time.monotonic() - self._started

    def _rate(self) -> float:
        elapsed = self.elapsed
        return self._records / elapsed if elapsed > 0 else 0.0

    def _counts(self) -> str:
        if not self._reported:
            return ""
        loaded = f"{self._loaded:,.0f}"
        return f"{loaded}/{self._total:,.0f}" if self._total else loaded

    def _acknowledged(self) -> str:
        noun = "record" if self._records == 1 else "records"
        return f"{self._records:,} {noun} acknowledged, {self._rate():,.0f}/s"

    def _refresh(self, *, force: bool = False) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task,
                description=redactor.redact(self._message) or "reading",
                completed=self._loaded,
                total=self._total,
                counts=self._counts(),
                rate=self._acknowledged(),
                elapsed=f"{self.elapsed:.1f}s elapsed",
            )
            return
        now = time.monotonic()
        if not force and now - self._last_line < self._interval:
            return
        self._last_line = now
        head = " ".join(part for part in (self._counts(), self._message) if part)
        self.line(
            f"progress: {head + ' | ' if head else ''}{self._acknowledged()}, "
            f"{self.elapsed:.1f}s elapsed"
        )
