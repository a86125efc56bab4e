"""The legacy read protocol: a plain ``read()`` called in a thread of its own, a list per
call and ``None`` at the end, and ``close()`` never running while a ``read()`` does.

Cancellation (Ctrl-C, a deadline) does not wait for a ``read()`` blocked in its
thread: the runner goes on draining what was already accepted, and
:func:`wait_read_done` waits for the ``read()`` to return before ``close()`` runs.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

if TYPE_CHECKING:
    from .source import Source

__all__ = ["call_read", "read_arguments", "read_takes_n", "wait_read_done"]

#: how long ``close()`` waits for a running ``read()`` unless told otherwise: the
#: SDK's default ``shutdown_timeout``
DEFAULT_READ_WAIT = 30.0

# Set while no read() of the data source runs; a weak key, so that no data
# source is kept alive by having been read.
_IDLE: weakref.WeakKeyDictionary[Source, threading.Event] = weakref.WeakKeyDictionary()
_IDLE_LOCK = threading.Lock()

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def read_takes_n(read: Callable[..., Any]) -> bool:
    """True when the bound method ``read`` takes the batch-size hint ``n``
    (a positional parameter, or ``*args``); legacy connectors may define
    ``def read(self)``."""
    try:
        parameters = inspect.signature(read).parameters.values()
    except (TypeError, ValueError):
        return True  # no signature to look at (a C function): pass it, as always
    return any(
        p.kind in _POSITIONAL or p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters
    )


def read_arguments(read: Callable[..., Any], n: int | None) -> tuple[Any, ...]:
    """The positional arguments to call ``read`` with: ``(n,)``, or ``()`` when it takes none."""
    return (n,) if read_takes_n(read) else ()


def _idle_event(ds: Source) -> threading.Event:
    with _IDLE_LOCK:
        event = _IDLE.get(ds)
        if event is None:
            event = _IDLE[ds] = threading.Event()
            event.set()
        return event


async def call_read(ds: Source, read: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """``read(*args)`` in a thread of its own; its result.

    The thread is a daemon: when the caller is cancelled it is left to finish on its
    own (a thread cannot be interrupted), its result is dropped, and it never holds
    up the interpreter's exit. :func:`wait_read_done` tells when it has returned.
    """
    idle = _idle_event(ds)
    token = anyio.lowlevel.current_token()
    done = anyio.Event()
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, read(*args)))
        except BaseException as exc:  # handed to the awaiting task
            outcome.append((False, exc))
        finally:
            idle.set()
            with contextlib.suppress(RuntimeError):  # the event loop is gone: nobody waits
                anyio.from_thread.run_sync(done.set, token=token)

    idle.clear()
    thread = threading.Thread(target=run, name=f"{type(ds).__name__}.read", daemon=True)
    try:
        thread.start()
    except BaseException:
        idle.set()
        raise
    await done.wait()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


async def wait_read_done(ds: Source, limit: float) -> bool:
    """Wait up to ``limit`` seconds for the running ``read()`` of ``ds`` (if any)
    to return; ``True`` when none runs any more."""
    idle = _IDLE.get(ds)
    if idle is None or idle.is_set():
        return True
    waited: bool = await anyio.to_thread.run_sync(idle.wait, limit, abandon_on_cancel=True)
    return waited
