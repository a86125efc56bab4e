"""The legacy platform's error codes and the normalisation of a connector's errors into
:class:`DataSourceException`, made async-aware (``wrap_errors``)."""

from __future__ import annotations

import contextlib
import enum
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

from ._exceptions import DataSourceException

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
