"""The legacy ``panoply.resources``: ``Resource``, ``Field`` and ``convert_to_ui_format``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from ..connectors._datasource import Field, Resource

__all__ = ["Field", "Resource", "convert_to_ui_format"]

T = TypeVar("T")


def _never_disabled(item: Any) -> bool:
    return False


def _requires_nothing(item: Any) -> list[str]:
    return []


def convert_to_ui_format(
    items: Iterable[T] | None,
    create_name: Callable[[T], Any],
    create_value: Callable[[T], Any],
    is_disabled: Callable[[T], bool] = _never_disabled,
    requires: Callable[[T], list[str]] = _requires_nothing,
) -> list[dict[str, Any]] | None:
    """The items as the platform's UI lists them: one ``{"name", "value",
    "disabled", "requires"}`` dict per item, each computed by the given function.

    As in the legacy SDK, no items (``None`` or empty) give ``None``, not ``[]``.
    """
    if not items:
        return None
    return [
        {
            "name": create_name(item),
            "value": create_value(item),
            "disabled": is_disabled(item),
            "requires": requires(item),
        }
        for item in items
    ]
