"""Pieces of :mod:`._sync` that need no engine: caller-side encoding helpers, the
engine loop and its executor, the thread that runs plain event handlers, and
keeping a forked child's copy of the parent's engine from ever being finalised.

Every thread here is started with the engine, never later: once the main
thread has ended, Python 3.12 refuses to start threads and
``concurrent.futures`` refuses new work, and that is exactly when the engine
drains what a script wrote before exiting.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import concurrent.futures.thread  # registers its exit hook; ours must come after it
import contextlib
import decimal
import json
import logging
import os
import queue
import selectors
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar

import orjson

from .._engine.events import Handler
from .._wire.encoding import NONCHARACTER_LEAD, TABLE_KEY
from .._wire.encoding import default as _default

__all__ = [
    "EngineExecutor",
    "EventThread",
    "caller_body",
    "exact_copy",
    "flat_copy",
    "new_loop",
    "pin_forever",
    "process_hooks",
]

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger("panoply_async")

_dumps = orjson.dumps


def _default_without_fragments(value: Any) -> Any:
    # A Decimal becomes an orjson.Fragment, which orjson.loads would turn back
    # into a float; such records take the exact (slower) copy instead.
    if isinstance(value, decimal.Decimal):
        raise TypeError("Decimal")
    return _default(value)


def caller_body(data: dict[str, Any]) -> bytes | None:
    """The record's JSON when ``orjson.loads`` gives back a record that encodes to
    exactly these bytes again; ``None`` when it needs the general encoder."""
    try:
        body = _dumps(data, default=_default_without_fragments)
    except TypeError:
        return None
    if len(body) > 2 and NONCHARACTER_LEAD not in body:
        return body
    return None


_SCALARS = frozenset({str, int, float, bool, type(None)})


def flat_copy(data: dict[str, Any]) -> dict[str, Any] | None:
    """A copy of a record made of scalars and lists of scalars, or ``None``.

    Such a copy encodes to the same bytes as the record (the values are the
    same immutable objects) and is much cheaper than decoding the record's
    JSON again, which is what other records take.
    """
    copy: dict[str, Any] = {}
    scalars = _SCALARS
    for key, value in data.items():
        kind = type(value)
        if kind in scalars:
            copy[key] = value
        elif kind is list or kind is tuple:
            for item in value:
                if type(item) not in scalars:
                    return None
            copy[key] = list(value)
        else:
            return None
    return copy


def _fragment(text: str) -> orjson.Fragment:
    return orjson.Fragment(text.encode())


def exact_copy(line: bytes) -> dict[str, Any]:
    """A copy of an encoded line's record that encodes to the same line.

    Numbers stay as their JSON text (no int/float round trip), so Decimals and
    integers beyond 64 bits keep every digit.
    """
    record: dict[str, Any] = json.loads(line, parse_float=_fragment, parse_int=_fragment)
    record.pop(TABLE_KEY, None)
    return record


def new_loop() -> tuple[asyncio.AbstractEventLoop, EngineExecutor]:
    """The engine's event loop, with an :class:`EngineExecutor` as its default executor."""
    # poll() keeps no kernel state: after a fork the child's copy of this loop
    # cannot touch the parent's registrations, as a shared epoll set could.
    if hasattr(selectors, "PollSelector"):
        loop: asyncio.AbstractEventLoop = asyncio.SelectorEventLoop(selectors.PollSelector())
    else:
        loop = asyncio.new_event_loop()
    executor = EngineExecutor()
    loop.set_default_executor(executor)
    return loop, executor


class EngineExecutor(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor (name lookups for new connections): one
    worker thread, started now, that keeps working during interpreter exit."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._worker = threading.Thread(
            target=self._work, name="panoply-async-executor", daemon=True
        )
        self._worker.start()

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def job() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

        self._jobs.put(job)
        return future

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._jobs.put(None)
        if wait and self._worker is not threading.current_thread():
            self._worker.join()
        super().shutdown(wait=False)


class EventThread:
    """Runs plain event handlers on one background thread, in event order.

    The engine only enqueues, so a slow handler delays later handlers, never
    delivery. At most ``limit`` calls wait; past that, events are dropped with
    a warning rather than growing memory without bound.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self._queue: queue.SimpleQueue[tuple[Handler, tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._limit = limit
        self._dropped = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def submit(self, handler: Handler, args: tuple[Any, ...]) -> None:
        if self._queue.qsize() >= self._limit:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 10_000 == 0:
                logger.warning("event handlers are too slow: %d events dropped", self._dropped)
            return
        self.start()
        self._queue.put((handler, args))

    def start(self) -> None:
        """Start the thread now (the engine does, when plain handlers exist)."""
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stopped:
                    self._thread = threading.Thread(
                        target=self._run, name="panoply-async-events", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            handler, args = item
            try:
                handler(*args)
            except Exception:
                logger.exception("event handler %r raised; ignored", handler)

    def stop(self, timeout: float | None) -> None:
        """Let queued handlers finish (up to ``timeout`` seconds), then stop."""
        with self._lock:
            self._stopped = True
            thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        self._queue.put(None)
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("event handlers still running after %ss; left behind", timeout)


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
    def _forget_engine_after_fork(self) -> None: ...
    def _drain_at_exit(self, *, close: bool) -> None: ...


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
            engine._forget_engine_after_fork()

    def _flush_all(self) -> None:
        for engine in list(self._engines):
            engine._drain_at_exit(close=False)

    def _close_all(self) -> None:
        for engine in list(self._engines):
            engine._drain_at_exit(close=True)


process_hooks = _ProcessHooks()
