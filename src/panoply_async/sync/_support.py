"""Process-wide hooks of :class:`SyncSDK`: fork and exit, and keeping a forked
child's copy of the parent's engine from ever being finalised.
"""

from __future__ import annotations

import atexit
import concurrent.futures.thread  # noqa: F401 (registers its exit hook; ours must come after)
import contextlib
import logging
import os
import sys
import threading
import weakref
from typing import Any, Protocol

__all__ = ["pin_forever", "process_hooks"]

logger = logging.getLogger("panoply_async")

_pinned: list[Any] = []


def pin_forever(obj: Any) -> None:
    """Keep ``obj`` alive until the process ends, past interpreter finalisation.

    A forked child holds a copy of the parent's engine: its sockets are the
    parent's connections, and finalising it (closing a TLS session, say) would
    write on them. Nothing in the child may ever run its cleanup.
    """
    _pinned.append(obj)
    if sys.implementation.name == "cpython":
        import ctypes

        # Module globals are cleared at interpreter exit; an extra reference
        # that nothing releases keeps the object from being deallocated then.
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))


class _Engine(Protocol):
    def reset_after_fork(self) -> None: ...
    def drain_at_exit(self, *, close: bool) -> None: ...


class _ProcessHooks:
    """Fork and exit hooks over every live SyncSDK."""

    def __init__(self) -> None:
        self._engines: weakref.WeakSet[_Engine] = weakref.WeakSet()
        # Started ones are held strongly: one dropped without close() must
        # still be drained at exit.
        self._started: set[_Engine] = set()
        self._installed = False

    def track(self, engine: _Engine) -> None:
        self._engines.add(engine)

    def started(self, engine: _Engine) -> None:
        self._started.add(engine)

    def stopped(self, engine: _Engine) -> None:
        self._started.discard(engine)

    def install(self) -> None:
        if self._installed:
            return
        self._installed = True
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork_in_child)
        # threading's own exit hooks run when the main thread ends, before
        # non-daemon threads are joined and before concurrent.futures refuses
        # new work; atexit hooks run after those threads ended. The first
        # delivers what was written so far while the process is whole, the
        # second closes, draining what the remaining threads wrote.
        register_thread_exit = getattr(threading, "_register_atexit", None)
        if register_thread_exit is not None:
            # RuntimeError: imported while the interpreter already shuts down.
            with contextlib.suppress(RuntimeError):
                register_thread_exit(self._flush_all)
        atexit.register(self._close_all)

    def _after_fork_in_child(self) -> None:
        for engine in list(self._engines):
            engine.reset_after_fork()

    def _flush_all(self) -> None:
        for engine in list(self._engines):
            engine.drain_at_exit(close=False)

    def _close_all(self) -> None:
        for engine in list(self._engines):
            engine.drain_at_exit(close=True)


process_hooks = _ProcessHooks()
