"""The legacy decorators ``validate_token`` and ``background_progress``, with their legacy
signatures, on plain methods (as legacy connectors have them) and on async ones.

* On ``async def`` methods and async generators they are
  :func:`panoply_async.validate_token` and :func:`panoply_async.background_progress`.
* On plain methods they block, as the legacy ones did: the token refresh runs on the
  event loop of the runner when the method runs in its worker thread (a legacy
  ``read()``), else on a short-lived event loop of its own.

Legacy semantics kept: ``exceptions`` defaults to ``()`` (nothing triggers a refresh);
``callback`` is called with the new access token (a function, or the name of a method
of the data source); a failed refresh raises
:class:`~panoply_async.errors.TokenValidationException` (not retryable);
``background_progress`` takes ``waiting_interval`` and ``timeout`` (24 hours) in seconds
and raises :class:`~panoply_async.errors.BackgroundTimeoutError` at the timeout, leaving
the call's thread behind, as the legacy one did.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import anyio.from_thread

from ..connectors import _decorators as _real
from ..errors import BackgroundTimeoutError

__all__ = ["background_progress", "validate_token"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

_SYNC_LOCK_ATTRIBUTE = "_panoply_token_thread_lock"
_LOCK_GUARD = threading.Lock()


def _blocking(ds: Any, func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run the coroutine function ``func(*args)`` to completion from plain code: on the
    event loop ``ds`` is used from when there is one, else on one of its own."""
    outcome: list[tuple[bool, Any]] = []

    async def call() -> None:
        try:
            outcome.append((True, await func(*args)))
        except BaseException as exc:
            outcome.append((False, exc))

    token = getattr(ds, "_loop_token", None)
    if token is not None and threading.get_ident() == getattr(ds, "_loop_thread", None):
        raise RuntimeError(
            "a plain method decorated with validate_token was called on the event loop's "
            "thread, where it cannot block: make it `async def`"
        )
    try:
        # A legacy read() under the runner: its thread hands the call to the loop.
        anyio.from_thread.run(call, token=token)
    except RuntimeError:
        if outcome:
            raise
        # No event loop (plain synchronous use), or it has closed: run one here.
        anyio.run(call)
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def _thread_lock(ds: Any) -> threading.Lock:
    with _LOCK_GUARD:
        lock = ds.__dict__.get(_SYNC_LOCK_ATTRIBUTE)
        if lock is None:
            lock = ds.__dict__[_SYNC_LOCK_ATTRIBUTE] = threading.Lock()
        return lock  # type: ignore[no-any-return]


def validate_token(
    refresh_url: _real.RefreshURL,
    exceptions: type[BaseException] | tuple[type[BaseException], ...] = (),
    callback: Callable[[Any], Any] | str | None = None,
    access_key: str = "access_token",
    refresh_key: str = "refresh_token",
) -> Callable[[F], F]:
    """Refresh the OAuth access token and retry once when the decorated method raises
    one of ``exceptions`` (see the module, and :func:`panoply_async.validate_token` for
    the refresh itself)."""

    def legacy_callback(ds: Any, answer: dict[str, Any]) -> Any:
        token = answer.get(access_key)
        if callback is None:
            return None
        if isinstance(callback, str):
            return getattr(ds, callback)(token)
        return callback(token)

    real_callback = legacy_callback if callback is not None else None
    refresher = _real.TokenRefresher(refresh_url, real_callback, access_key, refresh_key)

    def decorate(func: F) -> F:
        if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
            real = _real.validate_token(refresh_url, exceptions, real_callback,
                                        access_key, refresh_key)
            return real(func)

        @functools.wraps(func)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            rejected = self.source.get(access_key)
            try:
                return func(self, *args, **kwargs)
            except exceptions as exc:
                with _thread_lock(self):
                    # Another thread may have refreshed it meanwhile: then just retry.
                    if self.source.get(access_key) == rejected:
                        _blocking(self, refresher.refresh, self, exc)
            return func(self, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def background_progress(
    message: str, waiting_interval: float = 10 * 60, timeout: float = 24 * 60 * 60
) -> Callable[[F], F]:
    """Report ``progress(None, None, message)`` when the decorated method starts and
    every ``waiting_interval`` seconds until it returns; give up after ``timeout``
    seconds (see the module)."""
    if waiting_interval <= 0:
        raise ValueError("waiting_interval must be greater than 0")
    if timeout <= 0:
        raise ValueError("timeout must be greater than 0")

    def decorate(func: F) -> F:
        if inspect.iscoroutinefunction(func):
            return _real.background_progress(message, waiting_interval, timeout)(func)

        @functools.wraps(func)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            outcome: list[tuple[bool, Any]] = []
            done = threading.Event()

            def target() -> None:
                try:
                    outcome.append((True, func(self, *args, **kwargs)))
                except BaseException as exc:
                    outcome.append((False, exc))
                finally:
                    done.set()

            # As in the legacy decorator: the call runs on its own thread and the
            # caller's thread reports; a call past the timeout is left behind.
            started = time.monotonic()
            threading.Thread(target=target, name=f"background_progress:{message}",
                             daemon=True).start()
            while True:
                self.log(message)
                self.progress(None, None, message)
                left = timeout - (time.monotonic() - started)
                if done.wait(max(0.0, min(waiting_interval, left))):
                    break
                if time.monotonic() - started >= timeout:
                    raise BackgroundTimeoutError(
                        f"{message}: still running after {timeout:g} seconds; its thread "
                        "is abandoned", timeout=float(timeout),
                    )
            ok, value = outcome[0]
            if not ok:
                raise value
            return value

        return wrapper  # type: ignore[return-value]

    return decorate
