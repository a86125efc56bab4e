"""The legacy SDK's connector decorators, made async.

* :func:`validate_token` refreshes a rejected OAuth access token and retries
  the call once;
* :func:`background_progress` reports progress while a long awaited operation
  runs, and gives up at a timeout.

Both decorate methods of a :class:`~panoply_async.datasource.DataSource`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

import anyio

from ..errors import BackgroundTimeoutError, TokenValidationException

__all__ = ["background_progress", "validate_token"]

logger = logging.getLogger("panoply_async.decorators")

F = TypeVar("F", bound=Callable[..., Any])
RefreshURL = str | Callable[[Any], str]
Callback = Callable[..., Any] | str

#: attempts of the refresh request when it fails transiently (connection, 429, 5xx)
REFRESH_ATTEMPTS = 3
#: seconds before the second attempt, doubled for each further one
REFRESH_BACKOFF = 0.5
#: seconds one refresh request may take
REFRESH_TIMEOUT = 30.0

_LOCK_ATTRIBUTE = "_panoply_token_lock"


def _public_url(url: str) -> str:
    """``url`` without credentials or query, fit for a message: a refresh URL may
    carry a client secret in its query string."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _refused(message: str, original: BaseException | None = None) -> TokenValidationException:
    return TokenValidationException(
        f"access token could not be refreshed: {message}; the user has to authenticate again",
        retryable=False,
        original_error=original,
    )


async def _post_refresh(url: str, form: Mapping[str, Any]) -> dict[str, Any]:
    """POST ``form`` to ``url``; the JSON answer. Transient failures are retried,
    as the legacy SDK did; nothing the server says is put in a message."""
    import aiohttp

    where = _public_url(url)
    timeout = aiohttp.ClientTimeout(total=REFRESH_TIMEOUT)
    delay = REFRESH_BACKOFF
    for attempt in range(1, REFRESH_ATTEMPTS + 1):
        last = attempt == REFRESH_ATTEMPTS
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, session.post(
                url, data=dict(form)
            ) as response:
                status = response.status
                body = await response.read() if status < 400 else b""
        except (aiohttp.ClientError, TimeoutError) as exc:
            if last:
                raise _refused(f"{type(exc).__name__} calling {where}") from None
            logger.warning("token refresh at %s failed (%s); retrying", where,
                           type(exc).__name__)
        else:
            if status < 400:
                try:
                    answer = json.loads(body)
                except ValueError:
                    raise _refused(f"the answer from {where} is not JSON") from None
                if not isinstance(answer, dict):
                    raise _refused(f"the answer from {where} is not a JSON object")
                return answer
            # The body of an error answer may echo the tokens: it is never read.
            if last or not (status == 429 or status >= 500):
                raise _refused(f"HTTP {status} from {where}")
            logger.warning("token refresh at %s answered HTTP %d; retrying", where, status)
        await anyio.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


class TokenRefresher:
    """What :func:`validate_token` does once a call was refused."""

    def __init__(
        self,
        refresh_url: RefreshURL,
        callback: Callback | None,
        access_key: str,
        refresh_key: str,
    ) -> None:
        self.refresh_url = refresh_url
        self.callback = callback
        self.access_key = access_key
        self.refresh_key = refresh_key

    async def renew(self, ds: Any, rejected: Any, cause: BaseException) -> None:
        """Refresh the access token of ``ds``, unless another call did since
        ``rejected`` (the token the failed call used) was read."""
        lock = ds.__dict__.get(_LOCK_ATTRIBUTE)
        if lock is None:
            lock = ds.__dict__.setdefault(_LOCK_ATTRIBUTE, anyio.Lock())
        async with lock:
            if ds.source.get(self.access_key) != rejected:
                return  # a concurrent call refreshed it already: just retry
            await self.refresh(ds, cause)

    async def refresh(self, ds: Any, cause: BaseException) -> None:
        name = type(ds).__name__
        logger.info("%s: the access token was refused (%s); refreshing it",
                    name, type(cause).__name__)
        refresh_token = ds.source.get(self.refresh_key)
        if not refresh_token:
            raise _refused(f"the source has no {self.refresh_key!r}")
        url = self.refresh_url(ds) if callable(self.refresh_url) else self.refresh_url
        extra = ds.options.get("refresh") or {}
        if not isinstance(extra, Mapping):
            raise _refused("options['refresh'] must be a dict of form fields")
        # Legacy form: options["refresh"] (client id and secret) plus the
        # refresh token; grant_type is what RFC 6749 requires, unless overridden.
        form = {"grant_type": "refresh_token", **extra, self.refresh_key: refresh_token}
        answer = await _post_refresh(url, form)
        token = answer.get(self.access_key)
        if not isinstance(token, str) or not token:
            raise _refused(f"the answer from {_public_url(url)} has no {self.access_key!r}")
        changes = {self.access_key: token}
        new_refresh = answer.get(self.refresh_key)
        if isinstance(new_refresh, str) and new_refresh:
            changes[self.refresh_key] = new_refresh  # a rotated refresh token
        ds.source.update(changes)
        logger.info("%s: the access token was refreshed", name)
        # The changed keys only, as the legacy SDK fired them: the platform
        # merges them into the stored source.
        ds.fire("source-change", changes)
        if self.callback is not None:
            result = (
                getattr(ds, self.callback)(answer)
                if isinstance(self.callback, str)
                else self.callback(ds, answer)
            )
            if inspect.isawaitable(result):
                await result


def validate_token(
    refresh_url: RefreshURL,
    exceptions: type[BaseException] | tuple[type[BaseException], ...],
    callback: Callback | None = None,
    access_key: str = "access_token",
    refresh_key: str = "refresh_token",
) -> Callable[[F], F]:
    """Decorate an async method of a DataSource that uses an OAuth access token.

    When the call raises one of ``exceptions`` (say, the error your HTTP client
    raises on a 401), the token is refreshed and the call is retried once:

    1. a form POST to ``refresh_url`` (a URL, or a function of the data source
       returning one) with ``grant_type=refresh_token``, the fields of
       ``options["refresh"]`` (client id and secret, as in the legacy SDK) and
       ``source[refresh_key]``; connection errors, 429 and 5xx are retried
       a few times;
    2. ``source[access_key]`` takes the answer's ``access_key``, and
       ``source[refresh_key]`` its ``refresh_key`` if it has one;
    3. event ``source-change`` fires with the changed keys (``{access_key: ...}``
       and the new refresh token if any), as in the legacy SDK;
    4. ``callback(self, answer)`` is called (a function or coroutine
       function), or, when ``callback`` is a string, the method of that name
       with ``answer``. (The legacy SDK passed the new token alone.)

    Concurrent calls that fail together refresh once. A failed refresh raises
    :class:`~panoply_async.errors.TokenValidationException`, a non-retryable
    ``PanoplyException`` whose message holds no token; tokens are never logged.

    Async generator methods are supported too: one failing before it yielded
    anything is restarted once after the refresh; one failing later re-raises
    its error after the refresh, so that the runner's retry calls ``read()``
    again with the new token (resume from the position kept on ``self``).
    """
    refresher = TokenRefresher(refresh_url, callback, access_key, refresh_key)

    def decorate(func: F) -> F:
        if inspect.isasyncgenfunction(func):

            @functools.wraps(func)
            async def agen_wrapper(self: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
                rejected = self.source.get(access_key)
                yielded = False
                try:
                    async with contextlib.aclosing(func(self, *args, **kwargs)) as items:
                        async for item in items:
                            yielded = True
                            yield item
                    return
                except exceptions as exc:
                    await refresher.renew(self, rejected, exc)
                    if yielded:
                        raise
                async with contextlib.aclosing(func(self, *args, **kwargs)) as items:
                    async for item in items:
                        yield item

            return agen_wrapper  # type: ignore[return-value]

        if not inspect.iscoroutinefunction(func):
            raise TypeError(
                "validate_token decorates coroutine functions and async generator functions"
            )

        @functools.wraps(func)
        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            rejected = self.source.get(access_key)
            try:
                return await func(self, *args, **kwargs)
            except exceptions as exc:
                await refresher.renew(self, rejected, exc)
            return await func(self, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def background_progress(
    message: str, interval: float = 600.0, timeout: float | None = None
) -> Callable[[F], F]:
    """Decorate an async method of a DataSource that may run long (an export, a
    report, a slow query) without reporting anything itself.

    ``self.progress(None, None, message)`` fires (and ``message`` is logged)
    when the call starts and then every ``interval`` seconds (default ten
    minutes, as in the legacy SDK) until it ends. After ``timeout`` seconds
    (default: none) the call is cancelled and
    :class:`~panoply_async.errors.BackgroundTimeoutError` (a retryable
    ``PanoplyException`` and a ``TimeoutError``) is raised. Errors of the call
    propagate unchanged.
    """
    if interval <= 0:
        raise ValueError("interval must be greater than 0")
    if timeout is not None and timeout <= 0:
        raise ValueError("timeout must be greater than 0, or None")

    def decorate(func: F) -> F:
        if not inspect.iscoroutinefunction(func):
            raise TypeError("background_progress decorates coroutine functions (async def)")

        @functools.wraps(func)
        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            def report() -> None:
                self.log(message)
                self.progress(None, None, message)

            async def keep_reporting() -> None:
                while True:
                    await anyio.sleep(interval)
                    report()

            results: list[Any] = []
            errors: list[Exception] = []
            report()
            async with anyio.create_task_group() as tg:
                tg.start_soon(keep_reporting)
                with anyio.move_on_after(timeout):
                    # Caught here and raised after the task group, so that the
                    # caller gets the error itself, not an exception group.
                    try:
                        results.append(await func(self, *args, **kwargs))
                    except Exception as exc:
                        errors.append(exc)
                tg.cancel_scope.cancel()
            if errors:
                raise errors[0]
            if results:
                return results[0]
            raise BackgroundTimeoutError(
                f"{message}: cancelled after {timeout} seconds", timeout=float(timeout or 0)
            )

        return wrapper  # type: ignore[return-value]

    return decorate
