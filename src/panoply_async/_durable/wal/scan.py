"""Reading a log directory that a previous process left: which segments are this
queue's, which frames in them were never acknowledged, and what is damaged."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import fileio
from .format import (
    LOCK_NAME,
    SEG_NAME,
    SLOT_NAME,
    STATES_NAME,
    RecoveredFrame,
    RecoveryReport,
    read_acks,
    read_segment,
    seg_name,
)

__all__ = ["Scan", "scan_directory"]


@dataclass
class Scan:
    """What :func:`scan_directory` found."""

    report: RecoveryReport = field(default_factory=RecoveryReport)
    #: the unacknowledged frames, in log order
    frames: list[RecoveredFrame] = field(default_factory=list)
    #: (number, size) of each segment of this queue, to track until its frames finish
    segments: list[tuple[int, int]] = field(default_factory=list)
    next_segno: int = 1
    next_frame: int = 1


def scan_directory(directory: Path, digest: bytes) -> Scan:
    """Read every segment and acknowledgement file in ``directory``.

    Removes only what holds nothing: an acknowledgement file whose segment is
    gone, and a segment created but never written. Foreign files and other
    queues' segments are reported and left alone. Raises OSError when a file
    cannot be read.
    """
    scan = Scan()
    report = scan.report
    segnos: set[int] = set()
    for entry in sorted(os.listdir(directory)):
        match = SEG_NAME.fullmatch(entry)
        if match is None:
            if entry not in (LOCK_NAME, STATES_NAME) and not SLOT_NAME.fullmatch(entry):
                report.foreign_files.append(entry)
            continue
        segno = int(match.group(1))
        scan.next_segno = max(scan.next_segno, segno + 1)
        if match.group(2) == "seg":
            segnos.add(segno)
        elif not (directory / seg_name(segno, "seg")).exists():
            fileio.unlink(directory / entry)  # its segment is gone
    for segno in sorted(segnos):
        name = seg_name(segno, "seg")
        data = fileio.read_bytes(directory / name)
        found, found_digest, dropped = read_segment(name, data)
        report.dropped.extend(dropped)
        if found_digest is not None and found_digest != digest:
            report.other_queue_segments.append(name)
            continue
        if found_digest is None:
            if not data.strip(b"\0"):  # created, never written: nothing to keep
                report.empty_files.append(name)
                fileio.unlink(directory / name)
            else:
                report.foreign_files.append(name)
            continue
        ack_name = seg_name(segno, "ack")
        ack_path = directory / ack_name
        acked, ack_dropped = read_acks(
            ack_name, fileio.read_bytes(ack_path) if ack_path.exists() else b""
        )
        report.dropped.extend(ack_dropped)
        scan.segments.append((segno, len(data)))
        report.segments += 1
        for frame_id, body, records, sealed in found:
            scan.next_frame = max(scan.next_frame, frame_id + 1)
            if frame_id in acked or not records:
                report.acknowledged_frames += frame_id in acked
                continue
            scan.frames.append(RecoveredFrame(frame_id, segno, body, records, sealed))
            report.frames += 1
            report.records += records
    return scan
