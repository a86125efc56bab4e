"""Blocking calls from the event loop that still work when threads cannot start.

Python 3.12 refuses to start threads once the main thread has ended, which is
exactly when an exit hook drains an SDK and spools what it could not send. A
blocking call made through :func:`run_blocking` then runs in the event loop's
own thread: it holds the loop up for the length of one small append, which is
acceptable on the shutdown path and better than losing the records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread

__all__ = ["run_blocking"]

T = TypeVar("T")


async def run_blocking(func: Callable[..., T], *args: object) -> T:
    """``func(*args)`` in a worker thread, or in this thread if none can be started."""
    entered = False

    def call() -> T:
        nonlocal entered
        entered = True
        return func(*args)

    try:
        return await anyio.to_thread.run_sync(call)
    except RuntimeError:
        if entered:  # func itself raised it
            raise
    # No worker thread could be started (interpreter shutdown): do it here.
    return func(*args)
