"""The next segment of the write-ahead log, created ahead in a worker thread (issue 19).

Creating a segment (allocating and zero-filling up to 32 MiB) takes
milliseconds and is where a full disk shows, so it never runs on the event
loop: a rotation takes the segment prepared ahead, or (when there is none)
changes nothing and raises :class:`WALError`. Until one is ready the log says
it cannot begin a frame, so writers wait rather than fail; the failure to
create one is handed to the next rotation, whose write raises it.

A log used without an event loop (no ``on_wanted`` preparer) creates its
segments when it rotates, as plain blocking I/O.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from ...errors import WALError
from .. import fileio
from .format import seg_name
from .segment import Segment, unmap

__all__ = ["SpareSegment"]


class SpareSegment:
    """At most one segment prepared ahead, and what became of the last attempt."""

    def __init__(self, directory: Path) -> None:
        #: the log's directory (its slot, once the log has claimed one)
        self.directory = directory
        self._segment: Segment | None = None
        self._preparing = False
        self._error: OSError | None = None
        #: a rotation waits for a segment; ``on_wanted`` (the preparer's wake-up) was called
        self.wanted = False
        self.on_wanted: Callable[[], None] | None = None

    @property
    def ahead(self) -> bool:
        """Segments are created only ahead, by the preparer (never at a rotation)."""
        return self.on_wanted is not None

    @property
    def settled(self) -> bool:
        """A segment is ready, or the attempt to create one failed."""
        return self._segment is not None or self._error is not None

    @property
    def ready(self) -> bool:
        return self._segment is not None

    def want(self) -> None:
        if not self.wanted:
            self.wanted = True
            if self.on_wanted is not None:
                self.on_wanted()

    def reserve(self) -> bool:
        """Whether the caller should prepare one now (then call :meth:`add`).

        Either way the wish is answered: one is ready, under way, or now reserved.
        """
        self.wanted = False
        if self._segment is not None or self._preparing:
            return False
        self._preparing = True
        return True

    def add(self, segment: Segment | None, error: OSError | None, *, closed: bool) -> None:
        """The prepared segment, or the error that creating it met."""
        self._preparing = False
        self._error = error if segment is None else None
        if segment is not None and closed:
            self._discard(segment)
        elif segment is not None:
            self._segment = segment

    def take(self) -> Segment:
        """The prepared segment; or raise :class:`WALError` (why there is none)."""
        segment, self._segment = self._segment, None
        if segment is None:
            self.fail()
        return segment

    def fail(self) -> NoReturn:
        error, self._error = self._error, None
        self.want()  # for the next write
        why = error.strerror if error is not None else "none was prepared in time"
        raise WALError(
            f"the write-ahead log in {self.directory} could not start a new segment "
            f"({why}); the record was not accepted"
        ) from error

    def forget(self) -> Segment | None:
        """Let go of the prepared segment without deleting its file (a forked child's
        copy, or a log abandoned half-way); returns it for the caller to unmap."""
        segment, self._segment = self._segment, None
        self._preparing = False
        return segment

    def discard(self) -> None:
        if self._segment is not None:
            self._discard(self._segment)
            self._segment = None

    def _discard(self, segment: Segment) -> None:
        unmap(segment)
        # Created and never written: should this fail, recovery removes it silently.
        with contextlib.suppress(OSError):
            fileio.unlink(self.directory / seg_name(segment.segno, "seg"))
