"""Exceptions for connectors, and the legacy SDK's error normalisation made async-aware.

``PanoplyException(message, retryable=True)`` is what a connector raises to
say whether the platform (or :meth:`SDK.ingest`) should try again.
``wrap_errors(phase)`` turns any exception raised by a connector method into a
:class:`DataSourceException` carrying a code from :data:`ERROR_CODES`, using
the codes registered with ``set_internal_code``.
"""

from __future__ import annotations

import datetime
import enum
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

from ._exceptions import (
    ConfigurationError,
    CredentialsError,
    DecodeError,
    DeliveryError,
    PanoplyError,
    RecordError,
    RecordTooLargeError,
    RecordTypeError,
)

__all__ = [
    "ERROR_CODES",
    "ConfigurationError",
    "CredentialsError",
    "DataSourceException",
    "DecodeError",
    "DeliveryError",
    "PanoplyError",
    "PanoplyException",
    "Phase",
    "RecordError",
    "RecordTooLargeError",
    "RecordTypeError",
    "set_internal_code",
    "wrap_errors",
]

#: The legacy platform's error codes.
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
UNCLASSIFIED = 501
BAD_CODE = 506

_REGISTRY: dict[type[BaseException], int] = {}

E = TypeVar("E", bound=type[BaseException])
F = TypeVar("F", bound=Callable[..., Any])


class PanoplyException(PanoplyError):
    """An error raised by a connector. ``retryable=False`` stops a run at once."""

    def __init__(self, message: object = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Phase(str, enum.Enum):
    """Where a connector error happened."""

    COLLECT = "collect"
    CONFIG = "config"


class DataSourceException(PanoplyException):
    """A normalised connector error, with the legacy platform's fields."""

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


def set_internal_code(code: int) -> Callable[[E], E]:
    """Class decorator: exceptions of this class normalise to ``code`` (see ERROR_CODES)."""

    def register(exception_cls: E) -> E:
        if not (isinstance(exception_cls, type) and issubclass(exception_cls, BaseException)):
            raise TypeError("set_internal_code() decorates exception classes only")
        _REGISTRY[exception_cls] = code
        return exception_cls

    return register


def code_for(exc: BaseException) -> int:
    """The registered code of ``exc``'s class (or its nearest registered base)."""
    for cls in type(exc).__mro__:
        if cls in _REGISTRY:
            code = _REGISTRY[cls]
            return code if code in ERROR_CODES else BAD_CODE
    return UNCLASSIFIED


def _source_of(args: tuple[Any, ...]) -> Mapping[str, Any]:
    # Legacy: the source is the first argument (dynamic-param functions take
    # ``(source, options)``) or the ``source`` of the DataSource the method is on.
    if not args:
        return {}
    first = args[0]
    source = getattr(first, "source", first)
    return source if isinstance(source, Mapping) else {}


def normalise(exc: Exception, phase: Phase | str, args: tuple[Any, ...]) -> DataSourceException:
    """``exc`` as a :class:`DataSourceException` (unchanged if it is one already)."""
    if isinstance(exc, DataSourceException):
        return exc
    source = _source_of(args)
    return DataSourceException(
        message=str(exc),
        code=code_for(exc),
        exception_cls=f"{type(exc).__module__}.{type(exc).__qualname__}",
        phase=Phase(phase).value,
        source_type=source.get("type"),
        source_id=source.get("id"),
        database_id=source.get("database"),
        retryable=getattr(exc, "retryable", True),
    )


def wrap_errors(phase: Phase | str) -> Callable[[F], F]:
    """Decorator normalising exceptions of sync functions, coroutine functions and
    async generator functions into :class:`DataSourceException`."""
    phase = Phase(phase)

    def decorate(func: F) -> F:
        if inspect.isasyncgenfunction(func):

            @functools.wraps(func)
            async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
                try:
                    async for item in func(*args, **kwargs):
                        yield item
                except Exception as exc:
                    raise normalise(exc, phase, args) from exc

            return agen_wrapper  # type: ignore[return-value]

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await func(*args, **kwargs)
                except Exception as exc:
                    raise normalise(exc, phase, args) from exc

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                raise normalise(exc, phase, args) from exc

        return wrapper  # type: ignore[return-value]

    return decorate
