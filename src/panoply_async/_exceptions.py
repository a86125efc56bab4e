"""Exception types raised by the streaming core.

Every error the package raises derives from :class:`PanoplyError`; users import
them all from :mod:`panoply_async.errors`. Errors caused by bad input also derive
from the built-in ``ValueError`` or ``TypeError`` so that generic handlers keep
working. No message ever contains the api secret.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "CredentialsError",
    "DecodeError",
    "DeliveryError",
    "PanoplyError",
    "RecordError",
    "RecordTooLargeError",
    "RecordTypeError",
]


class PanoplyError(Exception):
    """Base class of every error raised by panoply-async."""


class CredentialsError(PanoplyError, ValueError):
    """The api key or api secret is malformed (raised by the ``SDK`` constructor)."""


class RecordError(PanoplyError, ValueError):
    """A record passed to ``write()`` was refused; nothing of it was buffered.

    ``table`` is the table it was written to and ``path`` the key path of the
    offending value (empty for the record as a whole).
    """

    def __init__(self, message: str, *, table: object = None, path: str = "") -> None:
        super().__init__(message)
        self.table = table
        self.path = path


class RecordTypeError(RecordError, TypeError):
    """A record (or a value inside it) has a type that cannot be sent."""


class RecordTooLargeError(RecordError):
    """A single encoded record cannot fit in one SQS message."""

    def __init__(self, message: str, *, table: object = None, size: int, limit: int) -> None:
        super().__init__(message, table=table)
        self.size = size
        self.limit = limit


class DeliveryError(PanoplyError):
    """Leaving the ``async with`` block found records that were neither delivered nor spooled.

    Raised only when no spool is configured. ``records`` and ``messages`` count
    what was not delivered; ``bodies`` holds the undelivered message bodies so
    that the caller can still save them.
    """

    def __init__(self, message: str, *, records: int, messages: int, bodies: list[str]) -> None:
        super().__init__(message)
        self.records = records
        self.messages = messages
        self.bodies = bodies


class ConfigurationError(PanoplyError, ValueError):
    """An option passed to the ``SDK`` constructor is out of range or of the wrong type."""


class DecodeError(PanoplyError, ValueError):
    """A message body is not a sequence of JSON objects, one per line."""
