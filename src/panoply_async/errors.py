"""Exceptions for connectors, and the legacy SDK's error normalisation made async-aware.

``PanoplyException(message, retryable=True)`` is what a connector raises to
say whether the platform (or :meth:`SDK.ingest`) should try again.
``wrap_errors(phase)`` turns any exception raised by a connector function into
a :class:`DataSourceException` carrying a code from :data:`ERROR_CODES`, using
the codes registered on exception classes with ``set_internal_code``.

Every exception of the package is defined here, and all derive from
:class:`PanoplyError`; docs/reference.md draws the tree.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol, TypeVar

__all__ = [
    "ERROR_CODES",
    "BackgroundTimeoutError",
    "ConfigurationError",
    "ConnectorError",
    "CredentialsError",
    "DataSourceException",
    "DecodeError",
    "DeliveryError",
    "IncorrectParamError",
    "MetadataNotSupportedException",
    "PanoplyError",
    "PanoplyException",
    "Phase",
    "RecordError",
    "RecordTooLargeError",
    "RecordTypeError",
    "SSHTunnelConfigError",
    "SSHTunnelError",
    "ScaffoldError",
    "SendError",
    "SpoolError",
    "StateFileError",
    "TokenValidationException",
    "WALError",
    "WALLockedError",
    "WALRecoveryError",
    "WrongTypeOrValueError",
    "code_for",
    "normalise",
    "set_internal_code",
    "wrap_errors",
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


#: The legacy platform's error codes, by code.
ERROR_CODES: dict[int, str] = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Permissions error",
    404: "Resource is not found",
    408: "Timeout",
    422: "Parsing error",
    429: "Rate limit",
    500: "Internal exception",
    501: "Unclassified error",
    506: "SDK error in processing an error",
}
#: code of an exception whose class has no registered code
UNCLASSIFIED = 501
#: code of an exception whose class was registered with a code not in ERROR_CODES
BAD_CODE = 506

EXCEPTIONS_REGISTRY: dict[type[BaseException], int] = {}

E = TypeVar("E", bound=type[BaseException])
F = TypeVar("F", bound=Callable[..., Any])


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
    """A normalised connector error, with the legacy platform's fields.

    ``code`` is a key of :data:`ERROR_CODES`, ``exception_cls`` the dotted name
    of the original exception's class, ``phase`` a :class:`Phase` value, and
    ``source_type``/``source_id``/``database_id`` come from the source's
    ``type``, ``id`` and ``database`` keys. Unlike the legacy class it is a
    :class:`PanoplyException`, so it carries ``retryable`` (copied from the
    original exception when it had one).
    """

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


class BackgroundTimeoutError(PanoplyException, TimeoutError):
    """An operation decorated with ``background_progress`` ran past its timeout.

    Retryable by default; ``timeout`` is the limit in seconds.
    """

    def __init__(self, message: object = None, retryable: bool = True, *, timeout: float) -> None:
        super().__init__(message, retryable)
        self.timeout = timeout


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
    """Another live process (or another SDK in this one) is using the same ``wal_dir``."""


class _RecoveryReport(Protocol):
    def describe(self) -> str: ...


class WALRecoveryError(WALError):
    """Recovery found damage: what it dropped, as file offsets (sent with the ``error`` event)."""

    def __init__(self, report: _RecoveryReport) -> None:
        super().__init__(f"write-ahead log recovery: {report.describe()}")
        self.report = report


class SSHTunnelConfigError(IncorrectParamError):
    """The ``ssh_tunnel`` dict or another constructor argument is malformed.

    Raised by the ``SSHTunnel`` constructor. It is an ``IncorrectParamError`` (what the
    legacy helper raised, so ``except IncorrectParamError`` keeps catching it) and a
    ``ValueError``. The message names the offending key and never quotes the password
    or the private key.
    """


class SSHTunnelError(PanoplyError):
    """The tunnel could not be opened: SSH server unreachable, login refused, host key
    not trusted, time-out. Raised when entering the ``async with`` block."""


class Phase(str, enum.Enum):
    """Where a connector error happened: while configuring or while collecting."""

    COLLECT = "collect"
    CONFIG = "config"


def set_internal_code(code: int) -> Callable[[E], E]:
    """Class decorator: exceptions of the decorated class normalise to ``code``.

    ``code`` should be a key of :data:`ERROR_CODES`; an unknown code
    normalises to 506 ("SDK error in processing an error"), as in the legacy
    SDK. Subclasses inherit the code unless they register their own.
    """

    def register(exception_cls: E) -> E:
        if not (isinstance(exception_cls, type) and issubclass(exception_cls, BaseException)):
            raise TypeError("set_internal_code() decorates exception classes only")
        EXCEPTIONS_REGISTRY[exception_cls] = code
        return exception_cls

    return register


def code_for(exc: BaseException) -> int:
    """The code ``exc`` normalises to: its class's registered code, else that of
    its nearest registered base class, else 501."""
    for cls in type(exc).__mro__:
        if cls in EXCEPTIONS_REGISTRY:
            code = EXCEPTIONS_REGISTRY[cls]
            return code if code in ERROR_CODES else BAD_CODE
    return UNCLASSIFIED


def _source_of(args: tuple[Any, ...]) -> Mapping[str, Any]:
    # As in the legacy SDK: the source is the ``source`` of the DataSource the
    # method is bound to, or the first argument itself for functions taking
    # ``(source, options)`` (dynamic parameters).
    if not args:
        return {}
    first = args[0]
    source = getattr(first, "source", first)
    return source if isinstance(source, Mapping) else {}


def normalise(
    exc: Exception, phase: Phase | str, args: tuple[Any, ...] = ()
) -> DataSourceException:
    """``exc`` as a :class:`DataSourceException` for ``phase``.

    A :class:`DataSourceException` is returned as it is, with its ``phase``
    set to ``phase``: nested wrappers keep the innermost error and the
    outermost phase, as the legacy SDK did. ``args`` are the arguments of the
    failed call, where the source is found.
    """
    phase_value = Phase(phase).value
    if isinstance(exc, DataSourceException):
        exc.phase = phase_value
        return exc
    source = _source_of(args)
    return DataSourceException(
        message=str(exc),
        code=code_for(exc),
        exception_cls=f"{type(exc).__module__}.{type(exc).__qualname__}",
        phase=phase_value,
        source_type=source.get("type"),
        source_id=source.get("id"),
        database_id=source.get("database"),
        retryable=bool(getattr(exc, "retryable", True)),
    )


def wrap_errors(phase: Phase | str) -> Callable[[F], F]:
    """Decorator normalising every ``Exception`` raised by the decorated function
    into a :class:`DataSourceException` (see :func:`normalise`).

    Works on plain functions, coroutine functions and async generator
    functions; the decorated function keeps its kind. The original exception
    is the new one's ``__cause__``. Cancellation and other ``BaseException``
    pass through untouched.
    """
    checked = Phase(phase)

    def decorate(func: F) -> F:
        if inspect.isasyncgenfunction(func):

            @functools.wraps(func)
            async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
                # aclosing: closing the wrapper closes the wrapped generator now,
                # not whenever the garbage collector gets to it.
                async with contextlib.aclosing(func(*args, **kwargs)) as items:
                    try:
                        async for item in items:
                            yield item
                    except Exception as exc:
                        raise normalise(exc, checked, args) from exc

            return agen_wrapper  # type: ignore[return-value]

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await func(*args, **kwargs)
                except Exception as exc:
                    raise normalise(exc, checked, args) from exc

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                raise normalise(exc, checked, args) from exc

        return wrapper  # type: ignore[return-value]

    return decorate
