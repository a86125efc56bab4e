"""The SDK's open-message buffer when a write-ahead log is configured."""

from __future__ import annotations

import mmap
from typing import TYPE_CHECKING

from ._encoding import MIN_LINE_BYTES
from ._packing import Packer

if TYPE_CHECKING:
    from ._wal import WriteAheadLog

__all__ = ["WalPacker"]


class WalPacker(Packer):
    """A :class:`Packer` whose open body lives in a frame of the write-ahead log.

    Same interface and the same bodies as the in-memory packer; each append
    also stores the frame's committed length (one aligned word), so the
    record is logged when the append returns. When the log is over
    ``max_wal_bytes`` and no frame is open, ``room`` is -1 and ``blocked`` is
    true: the SDK's slow path waits for retirement before appending.
    """

    __slots__ = ("_at", "_length_word", "_map", "_pos", "_wal", "_words", "frame_id", "last_sealed")

    def __init__(self, wal: WriteAheadLog, body_limit: int) -> None:
        super().__init__(body_limit)
        self._wal = wal
        self._map: mmap.mmap | None = None
        self._words: memoryview | None = None
        self._at = self._pos = self._length_word = 0
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
        self._map, self._words, self._at, self.frame_id = self._wal.begin_frame()
        self._pos = self._at
        self._length_word = (self._at >> 2) - 2

    def append_record(self, body: bytes, tail: bytes) -> None:
        if not self.records:
            self._begin()
        mm = self._map
        assert mm is not None
        assert self._words is not None
        p = self._pos
        e = p + len(body)
        mm[p:e] = body
        mm[e - 1] = 0x2C  # ','
        p = e + len(tail)
        mm[e:p] = tail
        self._pos = p
        self._words[self._length_word] = p - self._at  # the commit point
        self.records += 1
        self.room -= len(body) + len(tail)

    def add(self, line: bytes) -> tuple[bytes, int] | None:
        finished = self.take() if self.size + len(line) > self._body_limit else None
        if not self.records:
            self._begin()
        mm = self._map
        assert mm is not None
        assert self._words is not None
        p = self._pos + len(line)
        mm[self._pos : p] = line
        self._pos = p
        self._words[self._length_word] = p - self._at
        self.records += 1
        self.room -= len(line)
        return finished

    def add_record(self, body: bytes, tail: bytes) -> tuple[bytes, int] | None:
        finished = None
        if self.size + len(body) + len(tail) > self._body_limit:
            finished = self.take()
        self.append_record(body, tail)
        return finished

    def take(self) -> tuple[bytes, int] | None:
        if not self.records:
            return None
        assert self._map is not None
        body = self._map[self._at : self._pos]
        records = self.records
        self._wal.seal_frame(self._at, body, self.frame_id)
        self.last_sealed = self.frame_id
        self._map = self._words = None
        self._at = self._pos = 0
        self.records = 0
        self._refresh_room()
        return body, records
