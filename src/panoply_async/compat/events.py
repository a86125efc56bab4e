"""The legacy ``panoply.events``: ``Emitter``, a minimal synchronous event emitter.

Kept for code that subclasses it. :class:`~panoply_async.DataSource` has its own,
thread-safe ``on``/``fire`` with the same calling conventions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Emitter"]


class Emitter:
    """``on(name, fn)`` registers ``fn``; ``fire(name, data)`` calls the ``"*"``
    handlers with ``(name, data)``, then those of ``name`` with ``data``.

    As in the legacy class, a function registered twice for a name is called once,
    and both methods return ``self``.
    """

    def __init__(self) -> None:
        self._events: dict[str, dict[Callable[..., Any], None]] = {}

    def on(self, name: str, fn: Callable[..., Any]) -> Emitter:
        self._events.setdefault(name, {})[fn] = None
        return self

    def fire(self, name: str, data: Any) -> Emitter:
        for fn in list(self._events.get("*", ())):
            fn(name, data)
        for fn in list(self._events.get(name, ())):
            fn(data)
        return self
