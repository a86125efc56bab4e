"""A small event emitter shared by the SDK and data sources.

Handlers may be plain functions or coroutine functions. ``"*"`` handlers get
``(name, data)``; others get ``data``. A handler that raises is logged and never
disturbs the emitter's owner. Coroutines returned by handlers are handed to a
``spawn`` callable (normally a task group's ``start_soon``) so that the owner's
lifetime bounds them; without one they are run to completion by ``emit_async``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc

__all__ = ["EventEmitter", "Handler"]

logger = logging.getLogger("panoply_async")

Handler = Callable[..., Any]
Spawner = Callable[[Callable[[], Awaitable[None]]], None]


class EventEmitter:
    """Keeps handlers by event name and calls them safely."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._spawn: Spawner | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._running = 0
        self._idle: anyio.Event | None = None

    def on(self, name: str, handler: Handler) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError("event name must be a non-empty str")
        if not callable(handler):
            raise TypeError(f"handler for event {name!r} must be callable")
        self._handlers.setdefault(name, []).append(handler)

    def has_handlers(self, name: str) -> bool:
        return bool(self._handlers.get(name) or self._handlers.get("*"))

    def set_spawner(self, spawn: Spawner | None) -> None:
        self._spawn = spawn

    def run_handlers_in(self, task_group: anyio.abc.TaskGroup | None) -> None:
        """Run coroutine handlers as tasks of ``task_group``; ``None`` stops that
        (later coroutines are dropped and logged). :meth:`wait_handlers` waits for them."""
        self._task_group = task_group
        self.set_spawner(self._start_handler if task_group is not None else None)

    def _start_handler(self, handler: Callable[[], Awaitable[None]]) -> None:
        assert self._task_group is not None
        if self._running == 0:
            self._idle = anyio.Event()
        self._running += 1
        self._task_group.start_soon(self._handler_task, handler)

    async def _handler_task(self, handler: Callable[[], Awaitable[None]]) -> None:
        try:
            await handler()
        finally:
            self._running -= 1
            if self._running == 0 and self._idle is not None:
                self._idle.set()

    async def wait_handlers(self) -> None:
        """Wait until no coroutine handler started by :meth:`run_handlers_in` runs."""
        if self._running and self._idle is not None:
            await self._idle.wait()

    def emit(self, name: str, data: Any) -> None:
        """Call every handler of ``name`` and of ``"*"``; coroutines go to the spawner."""
        for handler, args in self._targets(name, data):
            try:
                result = handler(*args)
            except Exception:
                logger.exception("handler for event %r raised; ignored", name)
                continue
            if inspect.isawaitable(result):
                self._schedule(name, result)

    @property
    def spawns(self) -> bool:
        """Whether coroutine handlers run as tasks (else :meth:`emit` drops them)."""
        return self._spawn is not None

    async def emit_async(self, name: str, data: Any) -> None:
        """Like :meth:`emit`, but awaits coroutine handlers in place."""
        for handler, args in self._targets(name, data):
            try:
                result = handler(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("handler for event %r raised; ignored", name)

    def _targets(self, name: str, data: Any) -> list[tuple[Handler, tuple[Any, ...]]]:
        targets: list[tuple[Handler, tuple[Any, ...]]] = [
            (h, (data,)) for h in self._handlers.get(name, ())
        ]
        targets.extend((h, (name, data)) for h in self._handlers.get("*", ()))
        return targets

    def _schedule(self, name: str, awaitable: Awaitable[Any]) -> None:
        async def guarded() -> None:
            try:
                await awaitable
            except Exception:
                logger.exception("handler for event %r raised; ignored", name)

        if self._spawn is None:
            # No owner to bound the task: refuse to leave an orphan coroutine around.
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()
            logger.error("coroutine handler for event %r called outside a running owner", name)
            return
        self._spawn(guarded)
