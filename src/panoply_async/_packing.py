"""Lines -> message bodies within SQS's size limit (DESIGN §1). Pure: no I/O.

SQS counts a message's size as its body plus, for every message attribute, the
bytes of its name, its data type and its value. The packer is given the room
left for the body once the attributes are counted, and fills each message as
far as the next line allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ._encoding import MIN_LINE_BYTES

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
    """

    __slots__ = ("_body_limit", "_buffer", "_records")

    def __init__(self, body_limit: int) -> None:
        if body_limit < MIN_LINE_BYTES:
            raise ValueError(f"body limit {body_limit} cannot hold a single record")
        self._body_limit = body_limit
        self._buffer = bytearray()
        self._records = 0

    @property
    def body_limit(self) -> int:
        return self._body_limit

    @property
    def size(self) -> int:
        """Bytes in the open body."""
        return len(self._buffer)

    @property
    def records(self) -> int:
        """Records in the open body."""
        return self._records

    def add(self, line: bytes) -> tuple[bytes, int] | None:
        """Append ``line``; return ``(body, records)`` of a body it closed, if any.

        The caller guarantees ``len(line) <= body_limit`` (the encoder checks it).
        """
        finished = None
        if len(self._buffer) + len(line) > self._body_limit:
            finished = self.take()
        self._buffer += line
        self._records += 1
        return finished

    def add_record(self, body: bytes, tail: bytes) -> tuple[bytes, int] | None:
        """Like :meth:`add` for the line ``body[:-1] + b"," + tail``, without building it.

        ``body`` is a serialised non-empty JSON object: its closing brace is
        overwritten by a comma in the buffer, saving a copy per record.
        """
        buffer = self._buffer
        finished = None
        if len(buffer) + len(body) + len(tail) > self._body_limit:
            finished = self.take()
        buffer += body
        buffer[-1] = 0x2C  # ','
        buffer += tail
        self._records += 1
        return finished

    def closes(self, size: int) -> bool:
        """Whether adding a line of ``size`` bytes will close a body."""
        after = len(self._buffer) + size
        return after > self._body_limit or self._body_limit - after < MIN_LINE_BYTES

    def full(self) -> bool:
        """True when no further line can fit, so the body may be sent at once."""
        return self._body_limit - len(self._buffer) < MIN_LINE_BYTES

    def take(self) -> tuple[bytes, int] | None:
        """Close the open body and return ``(body, records)``, or None when empty."""
        if not self._records:
            return None
        body = bytes(self._buffer)
        records = self._records
        self._buffer.clear()
        self._records = 0
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
