"""Lines -> message bodies within SQS's size limit (DESIGN §1). Pure: no I/O.

SQS counts a message's size as its body plus, for every message attribute, the
bytes of its name, its data type and its value. The packer is given the room
left for the body once the attributes are counted, and fills each message as
far as the next line allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .encoding import MIN_LINE_BYTES

__all__ = ["Packer", "attributes_size", "pack_lines"]


def attributes_size(attributes: Mapping[str, str], data_type: str = "String") -> int:
    """Bytes that string message attributes add to a message's size."""
    return sum(
        len(name.encode()) + len(data_type) + len(value.encode())
        for name, value in attributes.items()
    )


class Packer:
    """Accumulates lines into one open message body of at most ``body_limit`` bytes.

    :meth:`add` returns the finished body when the line does not fit (the line
    then starts the next body) and :meth:`take` closes the open body early.
    ``room`` is how many bytes can still be added without the body becoming
    :meth:`full`; a caller may append a line no longer than that with
    :meth:`append_record` and skip every other check (the SDK's hot path).
    """

    __slots__ = ("_body_limit", "_buffer", "records", "room")

    def __init__(self, body_limit: int) -> None:
        if body_limit < MIN_LINE_BYTES:
            raise ValueError(f"body limit {body_limit} cannot hold a single record")
        self._body_limit = body_limit
        self._buffer = bytearray()
        #: records in the open body
        self.records = 0
        self.room = body_limit - MIN_LINE_BYTES

    @property
    def body_limit(self) -> int:
        return self._body_limit

    @property
    def size(self) -> int:
        """Bytes in the open body."""
        return len(self._buffer)

    def add(self, line: bytes) -> tuple[bytes, int] | None:
        """Append ``line``; return ``(body, records)`` of a body it closed, if any.

        The caller guarantees ``len(line) <= body_limit`` (the encoder checks it).
        """
        finished = None
        if len(self._buffer) + len(line) > self._body_limit:
            finished = self.take()
        self._buffer += line
        self.records += 1
        self.room -= len(line)
        return finished

    def add_record(self, body: bytes, tail: bytes) -> tuple[bytes, int] | None:
        """Like :meth:`add` for the line ``body[:-1] + b"," + tail``, without building it."""
        finished = None
        if len(self._buffer) + len(body) + len(tail) > self._body_limit:
            finished = self.take()
        self.append_record(body, tail)
        return finished

    def append_record(self, body: bytes, tail: bytes) -> None:
        """Append ``body[:-1] + b"," + tail``; the caller checked that it fits.

        ``body`` is a serialised non-empty JSON object: its closing brace is
        overwritten by a comma in the buffer, saving a copy per record.
        """
        buffer = self._buffer
        buffer += body
        buffer[-1] = 0x2C  # ','
        buffer += tail
        self.records += 1
        self.room -= len(body) + len(tail)

    def extend(self, lines: bytes | bytearray | memoryview, records: int) -> None:
        """Append ``records`` whole lines at once; the caller checked that they fit
        (``len(lines) <= room``)."""
        self._buffer += lines
        self.records += records
        self.room -= len(lines)

    def closes(self, size: int) -> bool:
        """Whether adding a line of ``size`` bytes will close a body."""
        return size > self.room

    def full(self) -> bool:
        """True when no further line can fit, so the body may be sent at once."""
        return self.room < 0

    def take(self) -> tuple[bytes, int] | None:
        """Close the open body and return ``(body, records)``, or None when empty."""
        if not self.records:
            return None
        body = bytes(self._buffer)
        records = self.records
        self._buffer.clear()
        self.records = 0
        self.room = self._body_limit - MIN_LINE_BYTES
        return body, records


def pack_lines(lines: Iterable[bytes], body_limit: int) -> list[bytes]:
    """Pack ``lines`` greedily into bodies of at most ``body_limit`` bytes each."""
    packer = Packer(body_limit)
    bodies: list[bytes] = []
    for line in lines:
        if len(line) > body_limit:
            raise ValueError(f"a line of {len(line)} bytes exceeds the body limit {body_limit}")
        finished = packer.add(line)
        if finished is not None:
            bodies.append(finished[0])
    last = packer.take()
    if last is not None:
        bodies.append(last[0])
    return bodies
