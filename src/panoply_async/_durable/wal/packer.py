"""The SDK's open-message buffer when a write-ahead log is configured."""

from __future__ import annotations

from typing import Protocol

from ..._wire.encoding import MIN_LINE_BYTES
from ..._wire.packing import Packer

__all__ = ["FrameLog", "WalPacker"]


class FrameLog(Protocol):
    """What the packer needs of the log: where to begin a frame and how to seal it
    (:class:`~.log.WriteAheadLog` provides it)."""

    def can_begin(self) -> bool: ...

    def begin_frame(self) -> tuple[memoryview, memoryview, int, int]: ...

    def seal_frame(self, payload_at: int, body: bytes, frame_id: int) -> None: ...

    def check_next_frame(self, end: int) -> None: ...

_NO_FRAME = memoryview(bytearray())


class WalPacker(Packer):
    """A :class:`Packer` whose open body lives in a frame of the write-ahead log.

    Same interface and the same bodies as the in-memory packer; each append
    also stores the frame's committed length (one aligned word), so the
    record is logged when the append returns. When the log is over
    ``max_wal_bytes`` and no frame is open, ``room`` is -1 and ``blocked`` is
    true: the SDK's slow path waits for retirement before appending.
    """

    __slots__ = (
        "_at",
        "_comma_tails",
        "_length_word",
        "_pos",
        "_view",
        "_wal",
        "_words",
        "frame_id",
        "last_sealed",
    )

    def __init__(self, wal: FrameLog, body_limit: int) -> None:
        super().__init__(body_limit)
        self._wal = wal
        # The open frame's mapping as bytes and as 32-bit words; empty between frames.
        self._view = self._words = _NO_FRAME
        self._at = self._pos = self._length_word = 0
        #: tail -> b"," + tail: the record's closing brace and tail in one copy
        self._comma_tails: dict[bytes, bytes] = {}
        self.frame_id = 0
        #: the frame id of the body the last :meth:`take` returned
        self.last_sealed = 0
        self._refresh_room()

    @property
    def size(self) -> int:
        return self._pos - self._at

    @property
    def blocked(self) -> bool:
        return self.room < 0 and not self.records

    def unblock(self) -> bool:
        """Re-check the log's room after a retirement; True when appends may resume."""
        if self.blocked:
            self._refresh_room()
        return not self.blocked

    def _refresh_room(self) -> None:
        ok = self._wal.can_begin()
        self.room = self._body_limit - MIN_LINE_BYTES if ok else -1

    def _begin(self) -> None:
        self._view, self._words, self._at, self.frame_id = self._wal.begin_frame()
        self._pos = self._at
        self._length_word = (self._at >> 2) - 2

    def _comma_tail(self, tail: bytes) -> bytes:
        if len(self._comma_tails) > 1024:  # tables are few; bound it anyway
            self._comma_tails.clear()
        comma_tail = self._comma_tails[tail] = b"," + tail
        return comma_tail

    def append_record(self, body: bytes, tail: bytes) -> None:
        if not self.records:
            self._begin()
        comma_tail = self._comma_tails.get(tail) or self._comma_tail(tail)
        view = self._view
        p = self._pos
        e = p + len(body)
        view[p:e] = body
        p = e + len(tail)
        view[e - 1 : p] = comma_tail  # overwrites the closing brace
        self._pos = p
        self._words[self._length_word] = p - self._at  # the commit point
        self.records += 1
        self.room -= len(body) + len(tail)

    def _take_before_begin(self) -> tuple[bytes, int] | None:
        """Seal the open frame to begin the next one, but only once the next one
        can begin: a sealed message that never reaches the caller would be stranded."""
        self._wal.check_next_frame(self._pos)
        return self.take()

    def add(self, line: bytes) -> tuple[bytes, int] | None:
        finished = None
        if self.size + len(line) > self._body_limit:
            finished = self._take_before_begin()
        if not self.records:
            self._begin()
        p = self._pos + len(line)
        self._view[self._pos : p] = line
        self._pos = p
        self._words[self._length_word] = p - self._at
        self.records += 1
        self.room -= len(line)
        return finished

    def extend(self, lines: bytes | bytearray | memoryview, records: int) -> None:
        if not self.records:
            self._begin()
        p = self._pos + len(lines)
        self._view[self._pos : p] = lines
        self._pos = p
        self._words[self._length_word] = p - self._at
        self.records += records
        self.room -= len(lines)

    def add_record(self, body: bytes, tail: bytes) -> tuple[bytes, int] | None:
        finished = None
        if self.size + len(body) + len(tail) > self._body_limit:
            finished = self._take_before_begin()
        self.append_record(body, tail)
        return finished

    def take(self) -> tuple[bytes, int] | None:
        if not self.records:
            return None
        body = self._view[self._at : self._pos].tobytes()
        records = self.records
        self._wal.seal_frame(self._at, body, self.frame_id)
        self.last_sealed = self.frame_id
        self._view = self._words = _NO_FRAME
        self._at = self._pos = 0
        self.records = 0
        self._refresh_room()
        return body, records
