"""What the engine needs of a data source: the shape :class:`DataSource` has.

The engine runs sources without importing the connector framework (which
builds on the engine), so it names the few members it uses here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

__all__ = ["Source"]


class Source(Protocol):
    """A source the pipeline can run: :class:`~panoply_async.DataSource` and its subclasses."""

    @property
    def source(self) -> Mapping[str, Any]: ...

    @property
    def read(self) -> Callable[..., Any]: ...

    @property
    def close(self) -> Callable[..., Any]: ...

    def on(self, name: str, handler: Callable[[Any], Any]) -> Any: ...
