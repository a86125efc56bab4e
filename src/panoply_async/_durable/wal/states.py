"""States that ride the log: a slot's ``states`` file (DESIGN §3a).

A data source's state is committed once every record written before it was
acknowledged by SQS. When the process dies first, its records stay in the log
and the next owner resends them; for it to commit the state as well, the state
is logged when it is reported, with the id of the last frame begun then (its
*watermark*: every record written before the state is in a frame up to it).
Recovery commits a logged state once no frame up to its watermark is left
undelivered: every such frame was acknowledged as delivered before the crash,
or delivered by the recovery itself. A frame that was spooled instead is
logged here too (a *spooled mark*), since its acknowledgement does not say so
once its segment is retired; no state whose watermark covers it commits.

Entries (little-endian), appended with one ``write(2)`` each::

    magic "PNST" | kind u32 | length u32 | frame id u64 | crc32 u32 | payload

A state's payload is JSON ``{"k": key, "i": state_id, "s": state}``; ``key``
names the state's owner (the CLI uses its state file), so a process adopting
another run's slot never commits that run's states as its own. The file is
emptied whenever the log holds no unfinished frame: every logged state is then
committable by the live process itself.
"""

from __future__ import annotations

import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from struct import Struct
from typing import Any

import orjson

from .format import STATES_NAME

__all__ = ["LoggedState", "StateLog", "committable_states", "read_states"]

logger = logging.getLogger("panoply_async")

_ENTRY = Struct("<4sIIQI")  # magic, kind, payload length, frame id, crc32 of the rest
_MAGIC = b"PNST"
_STATE, _SPOOLED = 1, 2


@dataclass(frozen=True)
class LoggedState:
    """A state as logged: its owner's key, its id and (merged) value, its watermark."""

    key: str
    state_id: Any
    state: Any
    watermark: int


def _entry(kind: int, frame_id: int, payload: bytes) -> bytes:
    # the CRC covers the header (with a zero CRC field) and the payload
    crc = zlib.crc32(payload, zlib.crc32(_ENTRY.pack(_MAGIC, kind, len(payload), frame_id, 0)))
    return _ENTRY.pack(_MAGIC, kind, len(payload), frame_id, crc) + payload


def read_states(data: bytes) -> tuple[list[LoggedState], set[int]]:
    """The logged states in order and the frames marked spooled; reading stops at
    the first entry that does not check out (a torn tail)."""
    states: list[LoggedState] = []
    spooled: set[int] = set()
    pos = 0
    while pos + _ENTRY.size <= len(data):
        magic, kind, length, frame_id, _ = _ENTRY.unpack_from(data, pos)
        end = pos + _ENTRY.size + length
        payload = data[pos + _ENTRY.size : end]
        if magic != _MAGIC or data[pos:end] != _entry(kind, frame_id, payload):
            break
        pos = end
        if kind == _SPOOLED:
            spooled.add(frame_id)
            continue
        try:
            item = orjson.loads(payload)
            states.append(LoggedState(str(item["k"]), item["i"], item["s"], frame_id))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            break
    return states, spooled


def committable_states(
    states: list[LoggedState], not_delivered: set[int]
) -> dict[str, tuple[Any, Any]]:
    """The last state of each key that may commit: states commit in the order logged,
    each once no frame up to its watermark (the highest of its entries: a state
    logged again when later records were tagged with it) is in ``not_delivered``."""
    floor = min(not_delivered, default=None)
    watermarks: dict[tuple[str, bytes], int] = {}
    order: list[tuple[tuple[str, bytes], LoggedState]] = []
    for state in states:
        ident = (state.key, orjson.dumps(state.state_id, option=orjson.OPT_SORT_KEYS))
        if ident not in watermarks:
            order.append((ident, state))
        watermarks[ident] = max(watermarks.get(ident, 0), state.watermark)
    result: dict[str, tuple[Any, Any]] = {}
    stopped: set[str] = set()
    for ident, state in order:
        if state.key in stopped:
            continue
        if floor is not None and watermarks[ident] >= floor:
            stopped.add(state.key)  # nor any later state of this key
            continue
        result[state.key] = (state.state_id, state.state)
    return result


class StateLog:
    """One slot's ``states`` file: appended by its owner, read by the next one."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / STATES_NAME
        self._fd = -1
        self._entries = False

    def read(self) -> bytes:
        """What the file holds (an earlier owner's entries, for recovery)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return b""
        self._entries = bool(data)
        return data

    def log_state(self, key: str, state_id: Any, state: Any, watermark: int) -> None:
        """Log a state reported now; a state that cannot be logged is only not
        recovered after a crash (its records are: the next run reads them again)."""
        try:
            payload = orjson.dumps({"k": key, "i": state_id, "s": state})
        except TypeError as exc:
            logger.warning("a state could not be logged with its records (%s)", exc)
            return
        self._append(_entry(_STATE, watermark, payload))

    def log_spooled(self, frame_ids: list[int]) -> None:
        """Mark frames spooled: no logged state covering them may commit on recovery."""
        if self._entries and frame_ids:
            self._append(b"".join(_entry(_SPOOLED, f, b"") for f in frame_ids))

    def clear(self) -> None:
        """Nothing unfinished is logged any more: empty the file."""
        if self._entries:
            try:
                if self._fd >= 0:
                    os.ftruncate(self._fd, 0)
                else:  # an earlier owner's entries, read on recovery
                    os.truncate(self.path, 0)
                self._entries = False
            except OSError as exc:
                logger.error("could not empty %s: %s", self.path, exc)

    def _append(self, data: bytes) -> None:
        try:
            if self._fd < 0:
                flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
                self._fd = os.open(self.path, flags, 0o600)
            self._entries = True
            os.write(self._fd, data)
        except OSError as exc:
            # A spooled mark that is not on disk could let a state commit: empty
            # the file instead (its states are then read again, not skipped).
            logger.error("could not log a state in %s: %s", self.path, exc)
            self.clear()

    def remove(self) -> None:
        """The slot's states were all resolved (after an adoption): delete the file."""
        self.close()
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def forget_after_fork(self) -> None:
        """In a forked child: the parent's file is not the child's to write."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
        self._entries = False
