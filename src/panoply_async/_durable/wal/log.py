"""Write-ahead log: accepted records on disk before ``write()`` returns (DESIGN §3a).

A log directory holds segment files ``wal-N.seg`` (memory-mapped, preallocated,
never reused), one acknowledgement file ``wal-N.ack`` per segment and a
``lock`` file held with ``flock`` by the one process using the directory. The
format is in ``_wal_format``, one segment file's handling in ``_wal_segment``;
the open message's body is built directly in a
mapped frame by ``_wal_packer.WalPacker``, so a record is in the kernel's page
cache, and survives the death of the process, when ``write()`` returns.

Closing a message seals its frame; the SDK then syncs the segment
(``fdatasync`` in a worker thread), which is what survives a power loss.
Messages delivered or spooled are acknowledged in the segment's ``.ack``
file with ``write(2)``; a segment is deleted once it is no longer written and
every frame in it was acknowledged, so after a crash only messages in the
send/acknowledge window are sent again. Blocking file I/O only: no event loop.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Iterable
from pathlib import Path

from ...errors import WALError, WALLockedError
from .. import fileio
from .format import (
    DELIVERED,
    FAILED,
    FRAME_HEADER,
    FRAME_HEADER_SIZE,
    FRAME_ID,
    FRAME_MAGIC,
    OPEN,
    SEALED,
    SEG_HEADER_SIZE,
    SPOOLED,
    DroppedRange,
    RecoveredFrame,
    RecoveryReport,
    align8,
    seg_name,
)
from .lock import DirectoryLock, forget_in_child
from .packer import WalPacker
from .scan import scan_directory
from .segment import Segment, append_acks, create_segment, fdatasync_all, unmap
from .spares import SpareSegment

__all__ = [
    "DELIVERED",
    "FAILED",
    "SPOOLED",
    "DroppedRange",
    "RecoveredFrame",
    "RecoveryReport",
    "WALLockedError",
    "WalPacker",
    "WriteAheadLog",
    "fdatasync_all",
    "queue_digest",
]


def queue_digest(queue_name: str) -> bytes:
    """The identity stored in segments: a digest of the queue name, not the name itself."""
    return hashlib.sha256(b"panoply-wal\0" + queue_name.encode("utf-8")).digest()[:16]


class WriteAheadLog:
    """The segments in one directory, owned by one process at a time.

    Call :meth:`open` (takes the lock), then :meth:`recover`, then use
    :meth:`packer` as the SDK's open-message buffer; report outcomes with
    :meth:`finish` and close with :meth:`close`. Blocking file I/O only.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        digest: bytes,
        *,
        frame_limit: int,
        segment_bytes: int,
        max_bytes: int,
    ) -> None:
        self.directory = Path(directory)
        self._digest = digest
        self._frame_limit = frame_limit
        need = SEG_HEADER_SIZE + FRAME_HEADER_SIZE + frame_limit + 8
        #: whole pages, and room for at least one frame
        self.segment_bytes = -(-max(segment_bytes, need) // 4096) * 4096
        self.max_bytes = max_bytes
        self._lock = DirectoryLock(self.directory)
        self._dir_fd = -1
        self._dir_dirty = False
        self._segments: dict[int, Segment] = {}
        self._frame_segment: dict[int, int] = {}
        self._active: Segment | None = None
        #: a segment created ahead, in a worker thread, for the next rotation
        self.spare = SpareSegment(self.directory)
        #: the last failure to write an acknowledgement, and how many were not logged
        self.ack_error: OSError | None = None
        self.acks_unlogged = 0
        self._next_segno = 1
        self._next_frame = 1
        #: let go (a forked child's copy of the parent's log, or a failed recovery)
        self._abandoned = False

    # -- lifetime ------------------------------------------------------------------

    def open(self) -> None:
        """Create the directory (0700) and take its lock, or raise :class:`WALLockedError`."""
        self._lock = DirectoryLock(self.directory)  # the directory may have been chosen since
        self.spare.directory = self.directory
        self._lock.acquire()
        self._dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        forget_in_child(self)

    @property
    def _lock_fd(self) -> int:
        # The lock's descriptor: tests close it to play a process that died.
        return self._lock.fd

    @_lock_fd.setter
    def _lock_fd(self, fd: int) -> None:
        self._lock.fd = fd

    @property
    def is_open(self) -> bool:
        """Whether this process holds the directory's lock."""
        return self._lock.held

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's descriptors and mappings; the parent
        keeps its lock (closing the child's copy never releases it)."""
        self.abandon()

    def abandon(self) -> None:
        """Let go of the directory without deleting or syncing anything (a recovery
        that failed half-way, or a forked child's copy of its parent's log).

        Writing through this object afterwards raises :class:`WALError`.
        """
        spare = self.spare.forget()
        for segment in [*self._segments.values(), *([spare] if spare is not None else [])]:
            try:
                unmap(segment)
            except (BufferError, OSError):  # a view still exported: drop our references
                segment.fd = segment.ack_fd = -1
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1
        self._lock.forget()
        self._segments.clear()
        self._frame_segment.clear()
        self._active = None
        self._abandoned = True
        forget_in_child(self, registered=False)

    def close(self) -> None:
        """Delete what is finished, sync what stays, unmap, release the lock.

        Raises OSError if a sync fails (everything is closed all the same).
        """
        if self._active is not None:
            self._active.active = False
            self._active = None
        self.spare.discard()
        for segment in list(self._segments.values()):
            self._maybe_retire(segment)
        try:
            fdatasync_all([os.dup(fd) for fd in self._stay_fds()])
        finally:
            for segment in list(self._segments.values()):
                unmap(segment)
            self._segments.clear()
            # Outcomes arriving after the close find no frame: they stay for the next owner.
            self._frame_segment.clear()
            if self._dir_fd >= 0:
                os.close(self._dir_fd)
                self._dir_fd = -1
            self._lock.release()
            forget_in_child(self, registered=False)

    def _stay_fds(self) -> list[int]:
        fds = [s.fd for s in self._segments.values() if s.fd >= 0 and s.dirty]
        return [*fds, self._dir_fd] if self._dir_dirty and self._dir_fd >= 0 else fds

    @property
    def live_bytes(self) -> int:
        """Disk space held by segments not yet retired."""
        return sum(s.size for s in self._segments.values())

    @property
    def busy_bytes(self) -> int:
        """Disk space of segments holding frames not finished yet: what ``max_bytes``
        bounds, with the segment being written (frames given up on without a spool
        do not count: they wait for the next start)."""
        return sum(s.size for s in self._segments.values() if s.pending)

    # -- writing -------------------------------------------------------------------

    def packer(self, body_limit: int) -> WalPacker:
        """The open-message buffer for the SDK: a :class:`Packer` writing into this log."""
        if body_limit > self._frame_limit:
            raise ValueError("body_limit exceeds the log's frame limit")
        return WalPacker(self, body_limit)

    def can_begin(self) -> bool:
        """Whether a frame can start now without exceeding ``max_bytes``."""
        active = self._active
        if active is not None and self._fits(active):
            return True
        # A new segment is needed; the full one is retired unless frames hold it.
        if self.busy_bytes + self.segment_bytes > self.max_bytes:
            return False
        # Only a segment created ahead in a worker thread will do: creating one
        # here would stop the event loop for milliseconds. Once the attempt
        # failed, a frame may begin: begin_frame then raises the failure.
        if self.spare.settled or not self.spare.ahead:
            return True
        self.spare.want()
        return False

    def _fits(self, segment: Segment) -> bool:
        return segment.pos + FRAME_HEADER_SIZE + self._frame_limit <= segment.size

    def begin_frame(self) -> tuple[memoryview, memoryview, int, int]:
        """Start a frame in the active segment; returns (map, words, payload offset, frame id).

        Raises :class:`WALError` (and changes nothing) when a new segment is
        needed and none could be prepared.
        """
        if self._abandoned:
            raise WALError(f"the write-ahead log in {self.directory} was let go (fork?)")
        segment = self._active
        if segment is None or not self._fits(segment):
            segment = self._rotate()
        assert segment.view is not None
        assert segment.words is not None
        frame_id = self._next_frame
        self._next_frame += 1
        pos = segment.pos
        FRAME_HEADER.pack_into(segment.view, pos, b"\0\0\0\0", OPEN, frame_id, 0, 0)
        segment.view[pos : pos + 4] = FRAME_MAGIC  # last: a frame exists once its magic does
        segment.pending.add(frame_id)
        self._frame_segment[frame_id] = segment.segno
        return segment.view, segment.words, pos + FRAME_HEADER_SIZE, frame_id

    def seal_frame(self, payload_at: int, body: bytes, frame_id: int) -> None:
        """Seal the active segment's open frame holding ``body``."""
        segment = self._active
        assert segment is not None
        assert segment.words is not None
        word = (payload_at - FRAME_HEADER_SIZE) >> 2
        words = segment.words
        words[word + 5] = zlib.crc32(body, zlib.crc32(FRAME_ID.pack(frame_id)))
        words[word + 1] = SEALED
        segment.pos = align8(payload_at + len(body))
        segment.dirty = True

    def check_next_frame(self, end: int) -> None:
        """Raise :class:`WALError` unless a frame can begin once the open frame,
        ending at ``end``, is sealed (see :meth:`begin_frame`)."""
        active = self._active
        need = align8(end) + FRAME_HEADER_SIZE + self._frame_limit
        if (active is None or need > active.size) and self.spare.ahead and not self.spare.ready:
            self.spare.fail()

    def _rotate(self) -> Segment:
        if not self.spare.ahead and not self.spare.ready:  # blocking use: create it now
            segno = self.reserve_spare()
            if segno is not None:
                try:
                    self.add_spare(self.create_segment(segno))
                except OSError as exc:
                    self.add_spare(None, exc)
        segment = self.spare.take()
        if self._active is not None:
            previous, self._active = self._active, None
            previous.active = False
            self._maybe_retire(previous)
        segment.active = segment.dirty = True
        self._segments[segment.segno] = segment
        self._active = segment
        self._dir_dirty = True
        return segment

    def reserve_spare(self) -> int | None:
        """A segment number to prepare ahead with :meth:`create_segment` (in a worker
        thread, then :meth:`add_spare`), or None when one is ready or under way."""
        if not self._lock.held:
            self.spare.wanted = False  # closed: nothing more to prepare
            return None
        if not self.spare.reserve():
            return None
        self._next_segno += 1
        return self._next_segno - 1

    def create_segment(self, segno: int) -> Segment:
        """Segment file ``segno``, created and mapped (a worker thread may call this)."""
        return create_segment(self.directory, segno, self.segment_bytes, self._digest)

    def add_spare(self, segment: Segment | None, error: OSError | None = None) -> None:
        """The segment :meth:`reserve_spare` asked for (None if creating it failed,
        with the ``error`` that the next rotation raises)."""
        self.spare.add(segment, error, closed=not self._lock.held)

    # -- acknowledgements and retirement -------------------------------------------

    def adopt(self, frames: Iterable[RecoveredFrame]) -> None:
        """Track recovered frames so that :meth:`finish` can retire their segments."""
        for frame in frames:
            segment = self._segments.get(frame.segno)
            if segment is not None:
                segment.pending.add(frame.frame_id)
                self._frame_segment[frame.frame_id] = frame.segno

    def finish(self, outcomes: Iterable[tuple[int, int]]) -> None:
        """Log ``(frame id, DELIVERED | SPOOLED | FAILED)`` and retire emptied segments.

        A FAILED frame is not acknowledged: it stays on disk for the next start.
        """
        by_segment: dict[int, list[bytes]] = {}
        for frame_id, outcome in outcomes:
            segno = self._frame_segment.pop(frame_id, None)
            if segno is None:
                continue
            segment = self._segments[segno]
            segment.pending.discard(frame_id)
            entries = by_segment.setdefault(segno, [])
            if outcome == FAILED:
                segment.kept += 1
                continue
            head = FRAME_ID.pack(frame_id) + outcome.to_bytes(4, "little")
            entries.append(head + zlib.crc32(head).to_bytes(4, "little"))
        for segno, entries in by_segment.items():
            segment = self._segments[segno]
            if not segment.active and not segment.pending and not segment.kept:
                self._retire(segment)
                continue
            if entries:
                self._log_acks(segment, b"".join(entries), len(entries))

    def _log_acks(self, segment: Segment, data: bytes, count: int) -> None:
        """Append acknowledgements. Never raises: delivery calls this, and a frame
        whose acknowledgement is not on disk is only sent again on the next start
        (counted in ``acks_unlogged``, the failure kept in ``ack_error``)."""
        try:
            append_acks(self.directory / seg_name(segment.segno, "ack"), segment, data)
        except OSError as exc:
            self.ack_error = exc
            self.acks_unlogged += count

    def _maybe_retire(self, segment: Segment) -> None:
        if not segment.active and not segment.pending and not segment.kept:
            self._retire(segment)

    def _retire(self, segment: Segment) -> None:
        unmap(segment)
        del self._segments[segment.segno]
        try:
            # The segment first: an acknowledgement file left alone is removed
            # by recovery, a segment left alone is recovered as acknowledged.
            for kind in ("seg", "ack"):
                fileio.unlink(self.directory / seg_name(segment.segno, kind))
        except OSError:
            pass  # the next start finds its frames acknowledged, or nothing
        self._dir_dirty = True

    # -- syncing -------------------------------------------------------------------

    @property
    def last_frame(self) -> int:
        """The highest frame id begun so far (ids only grow over a directory's life)."""
        return self._next_frame - 1

    def number_frames_above(self, frame_id: int) -> None:
        """Begin later frames above ``frame_id`` (a watermark an earlier owner logged)."""
        self._next_frame = max(self._next_frame, frame_id + 1)

    @property
    def idle(self) -> bool:
        """No frame waits for an outcome or is being written, and none was kept for
        the next start (given up on without a spool)."""
        return not self._frame_segment and not any(s.kept for s in self._segments.values())

    def sync_fds(self) -> list[int]:
        """Duplicates of the descriptors to fdatasync (the caller closes them).

        Duplicated so that a segment retired meanwhile cannot close a
        descriptor a worker thread is still syncing.
        """
        fds = []
        for segment in self._segments.values():
            if segment.fd >= 0 and segment.dirty:
                segment.dirty = False
                fds.append(os.dup(segment.fd))
        if self._dir_dirty and self._dir_fd >= 0:
            self._dir_dirty = False
            fds.append(os.dup(self._dir_fd))
        return fds

    def mark_dirty(self) -> None:
        """The open frame grew: the next sync must include the active segment."""
        if self._active is not None:
            self._active.dirty = True

    # -- recovery ------------------------------------------------------------------

    def recover(self) -> tuple[list[RecoveredFrame], RecoveryReport]:
        """Read what previous processes left; call once, after :meth:`open`.

        Returns the unacknowledged frames in log order and a report. Segments
        of this queue stay tracked (and are deleted once their frames are
        finished); foreign files and other queues' segments are left alone.
        Raises OSError when a file cannot be read; then nothing is tracked, so
        that closing the log deletes nothing it did not recover.
        """
        try:
            return self._recover()
        except BaseException:
            self._segments.clear()
            raise

    def _recover(self) -> tuple[list[RecoveredFrame], RecoveryReport]:
        found = scan_directory(self.directory, self._digest)
        self._next_segno = max(self._next_segno, found.next_segno)
        self._next_frame = max(self._next_frame, found.next_frame)
        for segno, size in found.segments:
            self._segments[segno] = Segment(segno, size)
        self.adopt(found.frames)
        for segment in list(self._segments.values()):
            self._maybe_retire(segment)
        return found.frames, found.report
