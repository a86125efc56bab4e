"""One segment file of the write-ahead log: creating, mapping and closing it (see ``_wal``)."""

from __future__ import annotations

import errno
import mmap
import os
import zlib
from pathlib import Path

from .. import fileio
from .format import SEG_HEADER, SEG_HEADER_SIZE, SEGMENT_MAGIC, VERSION, seg_name

__all__ = ["Segment", "append_acks", "create_segment", "fdatasync_all", "unmap"]


class Segment:
    """One mapped segment file this process writes, or one recovered from disk."""

    def __init__(self, segno: int, size: int) -> None:
        self.segno = segno
        self.size = size
        self.fd = -1
        self.ack_fd = -1
        self.mm: mmap.mmap | None = None
        #: bytes and 32-bit words of the mapping (slicing a memoryview is cheaper)
        self.view: memoryview | None = None
        self.words: memoryview | None = None
        self.pos = SEG_HEADER_SIZE
        #: frames in this process's delivery queue or in flight
        self.pending: set[int] = set()
        #: frames this process gave up on without spooling: kept for the next start
        self.kept = 0
        #: bytes of good entries in the ``.ack`` file: a failed append is cut back to it
        self.ack_bytes = 0
        #: an append to the ``.ack`` file failed and could not be cut back: no more
        #: acknowledgements go there (its frames are sent again on the next start)
        self.acks_lost = False
        self.active = False
        self.dirty = False


def create_segment(directory: Path, segno: int, size: int, digest: bytes) -> Segment:
    """Create, allocate, zero and map segment file ``segno``. Touches no shared
    state, so a worker thread may run it while the event loop appends."""
    segment = Segment(segno, size)
    path = directory / seg_name(segno, "seg")
    fd = fileio.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        # The header first: a crash while preparing leaves a segment without
        # frames, which recovery removes without a report.
        header = bytearray(SEG_HEADER_SIZE)
        SEG_HEADER.pack_into(header, 0, SEGMENT_MAGIC, VERSION, SEG_HEADER_SIZE, segno, digest, 0)
        header[60:64] = zlib.crc32(header[0:60]).to_bytes(4, "little")
        fileio.pwrite(fd, header, 0)
        # Allocated now so that a full disk is an OSError here, never a
        # SIGBUS on a store into the mapping.
        fileio.fallocate(fd, 0, size)
        # Written once with zeros: appends then find their pages in the page
        # cache with blocks allocated, which halves the cost of the page
        # faults that stores into a fresh mapping take (measured).
        zeros = bytes(1 << 20)
        for offset in range(SEG_HEADER_SIZE, size, len(zeros)):
            fileio.pwrite(fd, zeros[: size - offset], offset)
        mm = fileio.mmap(fd, size)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    segment.fd, segment.mm, segment.view = fd, mm, memoryview(mm)
    segment.words = segment.view.cast("I")
    return segment


def append_acks(path: Path, segment: Segment, data: bytes) -> None:
    """Append entries to the segment's acknowledgement file at ``path``, or raise
    OSError with the file as it was (a torn entry would garble every later one;
    when even cutting it back fails, the segment takes no more entries)."""
    if segment.acks_lost:
        raise OSError(errno.EIO, "acknowledgements of this segment are no longer written")
    try:
        if segment.ack_fd < 0:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
            segment.ack_fd = fileio.open(path, flags, 0o600)
            segment.ack_bytes = os.fstat(segment.ack_fd).st_size
        if fileio.write(segment.ack_fd, data) != len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError:
        if segment.ack_fd >= 0:
            try:
                fileio.ftruncate(segment.ack_fd, segment.ack_bytes)
            except OSError:
                segment.acks_lost = True
        raise
    segment.ack_bytes += len(data)


def unmap(segment: Segment) -> None:
    """Release the views, unmap, close the descriptors."""
    for view in (segment.words, segment.view):
        if view is not None:
            view.release()
    segment.words = segment.view = None
    if segment.mm is not None:
        segment.mm.close()
        segment.mm = None
    for fd in (segment.fd, segment.ack_fd):
        if fd >= 0:
            os.close(fd)
    segment.fd = segment.ack_fd = -1


def fdatasync_all(fds: list[int]) -> None:
    """Flush each descriptor's data to stable storage, then close it (worker thread)."""
    try:
        for fd in fds:
            fileio.fdatasync(fd)
    finally:
        for fd in fds:
            os.close(fd)
