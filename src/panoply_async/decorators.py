"""The legacy SDK's connector decorators, made async.

* :func:`validate_token` refreshes an expired OAuth access token and retries
  the call once;
* :func:`background_progress` reports progress while a long operation runs and
  gives up at a timeout.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from .errors import PanoplyException

__all__ = ["background_progress", "validate_token"]

logger = logging.getLogger("panoply_async.decorators")

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
RefreshURL = str | Callable[[Any], str]


async def _refresh(self: Any, refresh_url: str, access_key: str, refresh_key: str) -> Any:
    import aiohttp

    refresh_token = self.source.get(refresh_key)
    if not refresh_token:
        raise PanoplyException(
            f"cannot refresh the access token: the source has no {refresh_key!r}",
            retryable=False,
        )
    form = {**dict(self.options.get("refresh") or {}), refresh_key: refresh_token,
            "grant_type": "refresh_token"}
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.post(
        refresh_url, data=form
    ) as response:
        if response.status >= 400:
            # The body may echo the tokens: never put it in the message.
            raise PanoplyException(
                f"access token refresh failed: HTTP {response.status} from {refresh_url}; "
                "the user has to authenticate again",
                retryable=False,
            )
        payload = await response.json(content_type=None)
    if not isinstance(payload, dict) or not payload.get(access_key):
        raise PanoplyException(
            f"access token refresh answer from {refresh_url} has no {access_key!r}",
            retryable=False,
        )
    return payload


def validate_token(
    refresh_url: RefreshURL,
    exceptions: type[BaseException] | tuple[type[BaseException], ...],
    callback: Callable[..., Any] | str | None = None,
    access_key: str = "access_token",
    refresh_key: str = "refresh_token",
) -> Callable[[F], F]:
    """Decorate an async method of a DataSource that uses an OAuth access token.

    When the call raises one of ``exceptions`` (say, an HTTP 401), the token is
    refreshed with a form POST to ``refresh_url`` (a URL, or a function of the
    data source returning one) carrying ``source[refresh_key]``, plus
    ``options["refresh"]`` (client id and secret) when given; the new token is
    stored in ``source[access_key]`` (and a new refresh token, if the answer
    has one), ``source-change`` fires with the changed keys, ``callback(self,
    answer)`` is called (a function, a coroutine function or the name of a
    method), and the call is retried once. A failed refresh raises
    ``PanoplyException(retryable=False)``; tokens are never logged.
    """

    def decorate(func: F) -> F:
        if not inspect.iscoroutinefunction(func):
            raise TypeError("validate_token decorates coroutine functions (async def)")

        @functools.wraps(func)
        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return await func(self, *args, **kwargs)
            except exceptions as exc:
                logger.info("%s: access token rejected (%s); refreshing it",
                            type(self).__name__, type(exc).__name__)
            url = refresh_url(self) if callable(refresh_url) else refresh_url
            try:
                answer = await _refresh(self, url, access_key, refresh_key)
            except PanoplyException:
                raise
            except Exception as exc:
                raise PanoplyException(
                    f"access token refresh failed: {type(exc).__name__}; "
                    "the user has to authenticate again",
                    retryable=False,
                ) from None
            changes = {access_key: answer[access_key]}
            if answer.get(refresh_key):
                changes[refresh_key] = answer[refresh_key]
            self.source.update(changes)
            self.fire("source-change", changes)
            if callback is not None:
                target = getattr(self, callback) if isinstance(callback, str) else None
                result = target(answer) if target is not None else callback(self, answer)  # type: ignore[operator]
                if inspect.isawaitable(result):
                    await result
            return await func(self, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def background_progress(
    message: str, interval: float = 5.0, timeout: float | None = None
) -> Callable[[F], F]:
    """Decorate an async method of a DataSource that may run long (an export, a
    report): while it runs, ``self.progress(elapsed, None, message)`` fires every
    ``interval`` seconds; after ``timeout`` seconds it is cancelled and a
    retryable ``PanoplyException`` is raised."""
    if interval <= 0:
        raise ValueError("interval must be greater than 0")

    def decorate(func: F) -> F:
        if not inspect.iscoroutinefunction(func):
            raise TypeError("background_progress decorates coroutine functions (async def)")

        @functools.wraps(func)
        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            result: list[Any] = []
            started = anyio.current_time()

            async def report(scope: anyio.CancelScope) -> None:
                while True:
                    await anyio.sleep(interval)
                    self.progress(round(anyio.current_time() - started, 1), None, message)

            async def call(scope: anyio.CancelScope) -> None:
                result.append(await func(self, *args, **kwargs))
                scope.cancel()

            with anyio.move_on_after(timeout if timeout is not None else float("inf")) as limit:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(report, tg.cancel_scope)
                    tg.start_soon(call, tg.cancel_scope)
            if limit.cancelled_caught and not result:
                raise PanoplyException(f"{message}: gave up after {timeout} seconds",
                                       retryable=True)
            return result[0]

        return wrapper  # type: ignore[return-value]

    return decorate
