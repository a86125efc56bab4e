"""The threads of a :class:`SyncSDK`: the engine's, its executor's, the event
handlers', and one spare kept ready for when no new thread may start.

Python 3.12 refuses to start threads once the main thread has ended, and
``concurrent.futures`` refuses new work then; that is exactly when the exit
hooks drain what a script wrote, and when a worker thread that outlives the
main thread may write for the first time. So every thread here either starts
with the engine, or has a fallback that needs no new thread: the engine runs
on the spare (:data:`spare_thread`), name lookups and plain event handlers run
inline on the engine's thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import selectors
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from .._engine.events import Handler

__all__ = ["EngineExecutor", "EventThread", "SpareThread", "new_loop", "spare_thread"]

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger("panoply_async")


def _try_start(thread: threading.Thread) -> bool:
    """Start ``thread``; False when the interpreter refuses (shutting down)."""
    try:
        thread.start()
    except RuntimeError:
        return False
    return True


class SpareThread:
    """One idle daemon thread, started while threads still may start, that runs
    a single target when asked and then ends; a new spare replaces it if possible.

    It costs one parked thread per process that built a :class:`SyncSDK`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

    def ensure(self) -> None:
        """Have a spare waiting (in a forked child, the parent's is gone); never raises."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
            thread = threading.Thread(
                target=self._wait, args=(jobs,), name="panoply-async-spare", daemon=True
            )
            if _try_start(thread):
                self._thread, self._jobs = thread, jobs

    @staticmethod
    def _wait(jobs: queue.SimpleQueue[Callable[[], None]]) -> None:
        jobs.get()()

    def start(self, target: Callable[[], None], name: str) -> threading.Thread:
        """Run ``target`` on a new daemon thread, or on the spare when the
        interpreter refuses new threads; returns the thread it runs on."""
        thread = threading.Thread(target=target, name=name, daemon=True)
        if _try_start(thread):
            return thread
        with self._lock:
            spare, self._thread = self._thread, None
            jobs = self._jobs
        if spare is None or not spare.is_alive():
            raise RuntimeError("can't start the SyncSDK engine: no thread may start now")
        spare.name = name
        jobs.put(target)
        self.ensure()  # for the next engine, if threads may start again (a fork)
        return spare


spare_thread = SpareThread()


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
    worker thread, started now, that keeps working during interpreter exit.
    When no thread may start, jobs run inline, holding up the loop briefly."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        worker = threading.Thread(target=self._work, name="panoply-async-executor", daemon=True)
        self._worker = worker if _try_start(worker) else None

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

        if self._worker is None:
            job()
        else:
            self._jobs.put(job)
        return future

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._jobs.put(None)
        worker = self._worker
        if wait and worker is not None and worker is not threading.current_thread():
            worker.join()
        super().shutdown(wait=False)


class EventThread:
    """Runs plain event handlers on one background thread, in event order.

    The engine only enqueues, so a slow handler delays later handlers, never
    delivery. At most ``limit`` calls wait; past that, events are dropped with
    a warning rather than growing memory without bound. When no thread may
    start, handlers run inline (on the engine's thread).
    """

    def __init__(self, limit: int = 100_000) -> None:
        self._queue: queue.SimpleQueue[tuple[Handler, tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._limit = limit
        self._dropped = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._inline = False
        self._stopped = False

    def submit(self, handler: Handler, args: tuple[Any, ...]) -> None:
        if self._queue.qsize() >= self._limit:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 10_000 == 0:
                logger.warning("event handlers are too slow: %d events dropped", self._dropped)
            return
        self.start()
        if self._inline:
            self._call(handler, args)
        else:
            self._queue.put((handler, args))

    def start(self) -> None:
        """Start the thread now (the engine does, when plain handlers exist)."""
        if self._thread is None and not self._inline:
            with self._lock:
                if self._thread is None and not self._inline and not self._stopped:
                    thread = threading.Thread(
                        target=self._run, name="panoply-async-events", daemon=True
                    )
                    if _try_start(thread):
                        self._thread = thread
                    else:
                        self._inline = True

    @staticmethod
    def _call(handler: Handler, args: tuple[Any, ...]) -> None:
        try:
            handler(*args)
        except Exception:
            logger.exception("event handler %r raised; ignored", handler)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            self._call(*item)

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
