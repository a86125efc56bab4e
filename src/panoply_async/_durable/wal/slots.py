"""One ``wal_dir`` for a whole service: a slot per live process (DESIGN §3a).

Slot 0 is the directory itself (the layout of a single writer, so a log left by
an earlier version is slot 0 as it is); slot N > 0 is its subdirectory
``slot-N``. Each slot is a complete log with its own ``lock``. A starting
process claims the lowest slot whose lock is free, creating the next one when
all are held, and the slots of dead owners (lock free, not its own) are left
for it to adopt: their locks are released when their owner dies, SIGKILL
included. Slot directories are never deleted, so their number stays that of
the most processes that ever ran at once, and no two processes can race on a
directory being removed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ...errors import WALLockedError
from .format import SLOT_NAME
from .log import WriteAheadLog

__all__ = ["MAX_SLOTS", "claim_slot", "open_if_free", "other_slots", "slot_dir"]

#: far above any worker count; reaching it means something leaks processes
MAX_SLOTS = 4096


def slot_dir(root: Path, number: int) -> Path:
    return root if number == 0 else root / f"slot-{number}"


def _existing(root: Path) -> list[int]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return [0]
    found: set[int] = set()
    for name in names:
        match = SLOT_NAME.fullmatch(name)
        if match is not None:
            found.add(int(match.group(1)))
    return [0, *sorted(found)]


def claim_slot(wal: WriteAheadLog, root: Path) -> int:
    """Open ``wal`` on the lowest free slot of ``root``; returns the slot's number.

    Raises :class:`WALLockedError` only when :data:`MAX_SLOTS` slots are held.
    """
    existing = _existing(root)
    candidates: list[int] = [*existing, *range(existing[-1] + 1, MAX_SLOTS)]
    for number in candidates:
        wal.directory = slot_dir(root, number)
        try:
            wal.open()
        except WALLockedError:
            continue
        return number
    raise WALLockedError(f"all {MAX_SLOTS} slots of wal_dir {root} are held by live processes")


def other_slots(root: Path, own: int) -> list[int]:
    """The other slots that exist now; whether each is free shows when it is opened
    (:func:`open_if_free`)."""
    return [n for n in _existing(root) if n != own]


def open_if_free(
    root: Path, number: int, make: Callable[[Path], WriteAheadLog]
) -> WriteAheadLog | None:
    """A dead owner's slot, opened (locked) for adoption; None while its owner lives."""
    wal = make(slot_dir(root, number))
    try:
        wal.open()
    except WALLockedError:
        return None
    return wal
