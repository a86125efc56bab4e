"""Every exception class of the package, under one root: :class:`PanoplyError`.

Import them from :mod:`panoply_async.errors`, whose docstring draws the tree.
"""

from __future__ import annotations

import datetime
from typing import Any, Protocol


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


class BufferFullError(PanoplyError):
    """``write_nowait()`` found ``max_buffer_bytes`` buffered: the record was not
    accepted (and is counted in ``stats.records_shed``); nothing else was dropped."""


class ConfigurationError(PanoplyError, ValueError):
    """An option passed to the ``SDK`` constructor is out of range or of the wrong type."""


class DecodeError(PanoplyError, ValueError):
    """A message body is not a sequence of JSON objects, one per line."""


class PanoplyException(PanoplyError):
    """An error raised by a connector.

    ``retryable=False`` tells the runner not to try again (bad credentials, a
    revoked grant, a resource that does not exist); the default ``True`` lets
    :meth:`SDK.ingest` retry ``read()`` with backoff.
    """

    def __init__(self, message: object = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class DataSourceException(PanoplyException):
    """A normalised connector error, with the legacy platform's fields: ``code`` (a key
    of :data:`ERROR_CODES`), ``exception_cls`` (the original's dotted class name),
    ``phase`` (a :class:`Phase` value), ``source_type``/``source_id``/``database_id`` (the
    source's ``type``, ``id``, ``database``), and ``retryable`` (copied from the original)."""

    def __init__(
        self,
        message: str,
        code: int,
        exception_cls: str,
        phase: str,
        source_type: Any = None,
        source_id: Any = None,
        database_id: Any = None,
        retryable: bool = True,
    ) -> None:
        super().__init__(message, retryable)
        self.message = message
        self.code = code
        self.exception_cls = exception_cls
        self.phase = phase
        self.source_type = source_type
        self.source_id = source_id
        self.database_id = database_id
        self.created_at = datetime.datetime.now(datetime.timezone.utc)


class TokenValidationException(PanoplyException):
    """An OAuth access token could not be refreshed (raised by ``validate_token``).

    ``TokenValidationException(message, retryable=False, *, original_error=None)``:
    not retryable by default, the user has to authenticate again.
    ``original_error`` is the exception that made the refresh fail, if any.

    The legacy form ``TokenValidationException(original_error, message=None,
    retryable=True)`` works too, with the legacy default for ``retryable``: it
    is recognised by an exception as the first argument, by a second positional
    argument that is not a bool (the message), or by the legacy keyword
    ``args=`` for the message.
    """

    def __init__(
        self,
        *values: Any,
        retryable: bool | None = None,
        original_error: Any = None,
        args: object = None,
    ) -> None:
        legacy = args is not None or (bool(values) and (
            isinstance(values[0], BaseException)
            or (len(values) >= 2 and not isinstance(values[1], bool))
        ))
        if len(values) > (3 if legacy else 2):
            raise TypeError(f"TokenValidationException takes at most {3 if legacy else 2} "
                            f"positional arguments ({len(values)} given)")
        if legacy:
            rest = list(values)
            if rest:
                original_error = rest.pop(0)
            message = rest.pop(0) if rest else args
            flag = rest.pop(0) if rest else (True if retryable is None else retryable)
        else:
            message = values[0] if values else None
            flag = values[1] if len(values) > 1 else bool(retryable)
        super().__init__(message, bool(flag))
        self.original_error = original_error


class MetadataNotSupportedException(PanoplyException):
    """The connector does not implement ``list_resources``/``get_resource``.

    Not retryable by default: asking again cannot help.
    """

    def __init__(self, message: object = None, retryable: bool = False) -> None:
        super().__init__(message, retryable)


class StreamError(PanoplyException, ValueError):
    """A wrong stream declaration or selection, or a cursor that cannot be tracked."""


class BackgroundTimeoutError(PanoplyException, TimeoutError):
    """An operation decorated with ``background_progress`` ran past its timeout.

    Retryable by default; ``timeout`` is the limit in seconds.
    """

    def __init__(self, message: object = None, retryable: bool = True, *, timeout: float) -> None:
        super().__init__(message, retryable)
        self.timeout = timeout


class HTTPError(PanoplyException):
    """A ``RESTClient`` request failed: ``status`` (None: no answer), ``url`` (no query).
    ``retryable`` by default for 401, 408, 429, 5xx and no answer. Never holds a token."""

    def __init__(self, message: object = None, retryable: bool | None = None, *,
                 status: int | None = None, url: str = "") -> None:
        transient = status is None or status in (401, 408, 429) or status >= 500
        super().__init__(message, transient if retryable is None else retryable)
        self.status, self.url = status, url


class HTTPAuthError(HTTPError):
    """HTTP 401: retryable, so that a ``read()`` under ``validate_token`` runs again with
    the refreshed token (docs/connectors.md, "HTTP helper")."""


class IncorrectParamError(PanoplyError, ValueError):
    """A connector parameter has an incorrect value (legacy name)."""

    def __init__(self, message: str = "Incorrect input parameter", *,
                 msg: str | None = None) -> None:
        # ``msg=`` is the legacy keyword.
        super().__init__(message if msg is None else msg)


class WrongTypeOrValueError(PanoplyError, TypeError, ValueError):
    """Data passed to :func:`~panoply_async.datasource.to_record` has the wrong type or
    value. Catchable as ``TypeError`` or ``ValueError`` as well as by its legacy name."""


class ConnectorError(PanoplyError, ValueError):
    """A connector module cannot be loaded or breaks the contract.

    ``target`` is what was loaded and ``problems`` lists every problem found,
    one sentence each.
    """

    def __init__(self, target: str, problems: list[str]) -> None:
        super().__init__(f"{target}: " + "; ".join(problems))
        self.target = target
        self.problems = problems


class ScaffoldError(PanoplyError, ValueError):
    """The name or the target directory cannot be used."""


class SendError(PanoplyError):
    """A whole send request failed. ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool, code: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code


class SpoolError(PanoplyError):
    """Replay could not read or rewrite a spool file: what it did not remove stays."""


class StateFileError(PanoplyError, ValueError):
    """A ``--state-file`` that cannot be used: it is left as it is."""


class WALError(PanoplyError):
    """The write-ahead log directory cannot be used (see the message for why)."""


class WALLockedError(WALError):
    """A log directory's lock is held by another live holder.

    An ``SDK`` sharing a ``wal_dir`` takes a free slot instead, so it raises this only
    for misuse: every one of its 4,096 slots held at once."""


class _RecoveryReport(Protocol):
    def describe(self) -> str: ...


class WALRecoveryError(WALError):
    """Recovery found damage: what it dropped, as file offsets (sent with the ``error`` event)."""

    def __init__(self, report: _RecoveryReport) -> None:
        super().__init__(f"write-ahead log recovery: {report.describe()}")
        self.report = report


class SSHTunnelConfigError(IncorrectParamError):
    """The ``ssh_tunnel`` dict or another ``SSHTunnel`` argument is malformed: an
    ``IncorrectParamError`` as the legacy helper raised. The message names the offending
    key and never quotes the password or the private key."""


class SSHTunnelError(PanoplyError):
    """The tunnel could not be opened: SSH server unreachable, login refused, host key
    not trusted, time-out. Raised when entering the ``async with`` block."""
