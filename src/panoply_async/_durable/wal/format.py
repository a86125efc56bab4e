"""The write-ahead log's on-disk format, and reading it back. Pure: bytes in, no I/O.

Segment (little-endian): a 64-byte header (magic, version, header size, segment
number, a digest of the queue name, CRC of the header), then frames at 8-byte
boundaries, one per SQS message::

    magic u32 | state u32 (OPEN/SEALED) | frame id u64 | length u32 | crc32 u32 | payload

An acknowledgement file holds 16-byte entries ``frame id u64 | outcome u32 |
crc32 u32``. Recovery trusts nothing it cannot check: a sealed frame is kept
only when its CRC (over frame id and payload) holds, an open frame (the
message a process was filling when it died) only for its committed prefix of
complete, decodable records. What is not kept is reported as byte ranges with
a reason; its contents never leave this module. Payloads are UTF-8 JSON, in
which the frame magic's first byte 0xF7 cannot occur, so resynchronising on
the next magic after a corrupt frame is exact.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from struct import Struct

import orjson

from ..._wire.encoding import TABLE_KEY

__all__ = [
    "DroppedRange",
    "RecoveredFrame",
    "RecoveryReport",
    "read_acks",
    "read_segment",
]

SEGMENT_MAGIC = b"PNPLYWAL"
VERSION = 1
SEG_HEADER = Struct("<8sIIQ16s20xI")  # magic, version, header size, segno, digest, crc
SEG_HEADER_SIZE = SEG_HEADER.size  # 64
FRAME_MAGIC = b"\xf7WF1"  # 0xF7 never occurs in UTF-8, so never in a payload
FRAME_HEADER = Struct("<4sIQII")  # magic, state, frame id, length, crc
FRAME_HEADER_SIZE = FRAME_HEADER.size  # 24
OPEN, SEALED = 0x6E65704F, 0x6C616553  # "Open", "Seal"
ACK_ENTRY = Struct("<QII")  # frame id, outcome, crc32 of the first 12 bytes
DELIVERED, SPOOLED = 1, 2  # outcomes logged in acknowledgement files
FAILED = 3  # never logged: the frame stays in the log and is recovered again
FRAME_ID = Struct("<Q")
SEG_NAME = re.compile(r"wal-(\d{12})\.(seg|ack)")
LOCK_NAME = "lock"
#: the slots of a shared ``wal_dir``: slot 0 is the directory itself, slot N its ``slot-N``
SLOT_NAME = re.compile(r"slot-([1-9]\d{0,5})")
#: a slot's log of the states reported after its records (see ``states.py``)
STATES_NAME = "states"


def align8(n: int) -> int:
    return (n + 7) & ~7


@dataclass(frozen=True, slots=True)
class RecoveredFrame:
    """A message a previous process logged and did not see acknowledged."""

    frame_id: int
    segno: int
    body: bytes
    records: int
    sealed: bool


@dataclass(frozen=True, slots=True)
class DroppedRange:
    """Bytes recovery could not use: where they were and why (never what they held)."""

    file: str
    offset: int
    length: int
    reason: str


@dataclass
class RecoveryReport:
    """What :meth:`WriteAheadLog.recover` found."""

    segments: int = 0
    frames: int = 0
    records: int = 0
    acknowledged_frames: int = 0
    dropped: list[DroppedRange] = field(default_factory=list)
    #: names of files that are not this log's (left alone)
    foreign_files: list[str] = field(default_factory=list)
    #: segments written for another queue (left alone)
    other_queue_segments: list[str] = field(default_factory=list)
    #: segment files created and never written (a crash while creating one): removed
    empty_files: list[str] = field(default_factory=list)

    @property
    def dropped_bytes(self) -> int:
        return sum(d.length for d in self.dropped)

    def describe(self) -> str:
        parts = [
            f"{self.records} records in {self.frames} unacknowledged messages "
            f"from {self.segments} segments"
        ]
        if self.dropped:
            where = ", ".join(f"{d.file}@{d.offset}+{d.length} ({d.reason})" for d in self.dropped)
            parts.append(
                f"dropped {self.dropped_bytes} bytes in {len(self.dropped)} places: {where}"
            )
        if self.foreign_files:
            parts.append(f"ignored foreign files: {', '.join(self.foreign_files)}")
        if self.empty_files:
            parts.append(f"removed empty segments: {', '.join(self.empty_files)}")
        if self.other_queue_segments:
            parts.append(f"left segments of another queue: {', '.join(self.other_queue_segments)}")
        return "; ".join(parts)


Frame = tuple[int, bytes, int, bool]  # frame id, body, records, sealed


def _next_magic(data: bytes, start: int) -> int:
    """Offset of the next frame magic at an 8-byte boundary at or after ``start``, or -1."""
    found = data.find(FRAME_MAGIC, start)
    while found >= 0 and found % 8:
        found = data.find(FRAME_MAGIC, found + 1)
    return found


def _nonzero_span(data: bytes, start: int, end: int) -> tuple[int, int] | None:
    """(offset, length) of the bytes between the first and last non-zero byte in a range."""
    chunk = data[start:end]
    stripped = chunk.strip(b"\0")
    if not stripped:
        return None
    first = start + len(chunk) - len(chunk.lstrip(b"\0"))
    return first, len(stripped)


def _valid_prefix(body: bytes) -> tuple[int, int]:
    """Length and record count of the leading complete records that decode as records."""
    pos = records = 0
    while True:
        end = body.find(b"\n", pos)
        if end < 0:
            return pos, records
        try:
            record = orjson.loads(body[pos:end])
        except orjson.JSONDecodeError:
            return pos, records
        if not isinstance(record, dict) or TABLE_KEY not in record:
            return pos, records
        records += 1
        pos = end + 1


def read_segment(name: str, data: bytes) -> tuple[list[Frame], bytes | None, list[DroppedRange]]:
    """The good frames of a segment, its queue digest (None if the header is unreadable)
    and the ranges dropped."""
    dropped: list[DroppedRange] = []
    if len(data) < SEG_HEADER_SIZE:
        return [], None, dropped
    magic, version, header_size, _segno, digest, crc = SEG_HEADER.unpack_from(data, 0)
    if (
        magic != SEGMENT_MAGIC
        or version != VERSION
        or header_size != SEG_HEADER_SIZE
        or zlib.crc32(data[:60]) != crc
    ):
        return [], None, dropped
    frames: list[Frame] = []
    size = len(data)
    pos = SEG_HEADER_SIZE
    while pos + FRAME_HEADER_SIZE <= size:
        if data[pos : pos + 4] != FRAME_MAGIC:
            following = _next_magic(data, pos)
            span = _nonzero_span(data, pos, following if following >= 0 else size)
            # A header whose magic was not stored yet (the process died inside
            # begin_frame) held no record: not worth a report.
            unfinished_header = (
                following < 0
                and span is not None
                and (span[0] + span[1] <= pos + FRAME_HEADER_SIZE)
            )
            if span is not None and not unfinished_header:
                dropped.append(DroppedRange(name, span[0], span[1], "bytes outside any frame"))
            if following < 0:
                break
            pos = following
            continue
        _, state, frame_id, length, crc = FRAME_HEADER.unpack_from(data, pos)
        start = pos + FRAME_HEADER_SIZE
        end = start + length
        reason = ""
        if state not in (OPEN, SEALED):
            reason = "corrupt frame header"
        elif state == SEALED and end > size:
            reason = "frame cut short (torn tail)"
        elif state == SEALED:
            body = data[start:end]
            if zlib.crc32(body, zlib.crc32(data[pos + 8 : pos + 16])) != crc:
                reason = "frame checksum mismatch"
            else:
                frames.append((frame_id, body, body.count(b"\n"), True))
        else:
            good, records = _valid_prefix(data[start : min(end, size)])
            if good < length:
                why = "open frame cut short" if end > size else "undecodable open-frame tail"
                dropped.append(DroppedRange(name, start + good, length - good, why))
            if records:
                frames.append((frame_id, data[start : start + good], records, False))
            if end < size:
                # A record copied past the commit point when the process died.
                following = _next_magic(data, align8(end))
                span = _nonzero_span(data, end, following if following >= 0 else size)
                if span is not None:
                    dropped.append(DroppedRange(name, span[0], span[1], "torn record"))
                if following < 0:
                    break
                pos = following
                continue
        if reason:
            # The length cannot be trusted: resynchronise on the next magic.
            following = _next_magic(data, pos + 8)
            stop = following if following >= 0 else size
            span = _nonzero_span(data, pos, stop) or (pos, FRAME_HEADER_SIZE)
            dropped.append(DroppedRange(name, pos, span[0] + span[1] - pos, reason))
            if following < 0:
                break
            pos = following
            continue
        pos = align8(end)
    return frames, digest, dropped


def read_acks(name: str, data: bytes) -> tuple[set[int], list[DroppedRange]]:
    """Frame ids acknowledged in an acknowledgement file, and its unreadable entries."""
    acked: set[int] = set()
    dropped: list[DroppedRange] = []
    entry = ACK_ENTRY.size
    usable = len(data) - len(data) % entry
    for offset in range(0, usable, entry):
        frame_id, outcome, crc = ACK_ENTRY.unpack_from(data, offset)
        if outcome not in (DELIVERED, SPOOLED) or zlib.crc32(data[offset : offset + 12]) != crc:
            dropped.append(DroppedRange(name, offset, entry, "corrupt acknowledgement"))
            continue
        acked.add(frame_id)
    if usable < len(data):
        dropped.append(DroppedRange(name, usable, len(data) - usable, "torn acknowledgement"))
    return acked, dropped


def seg_name(segno: int, kind: str) -> str:
    """File name of segment ``segno``'s data (``"seg"``) or acknowledgements (``"ack"``)."""
    return f"wal-{segno:012d}.{kind}"
