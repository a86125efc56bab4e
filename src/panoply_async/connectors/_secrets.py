"""Which values of a source are secrets, so that logs can mask them."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["config_secret_names", "secret_values"]

# Source keys whose values are credentials, by their name.
_SECRET_KEY = re.compile(r"password|token|secret|key", re.IGNORECASE)
# Numbers this short are masked only when a CONFIG param marks them secret:
# masking every "1" in every message would make logs unreadable.
_MIN_NUMBER_SECRET = 4


def secret_values(source: Mapping[str, Any], secret_names: set[str]) -> set[str]:
    """The texts to mask: values of the params named ``secret_names``, and of
    ``source`` keys (at any depth) that look like credentials by their name."""
    values: set[str] = set()
    for name in secret_names:
        _collect(source.get(name), values, min_number=1)
    for name, value in _walk_named(source):
        if _SECRET_KEY.search(name):
            _collect(value, values, min_number=_MIN_NUMBER_SECRET)
    return values


def config_secret_names(config: Any) -> set[str]:
    """The params a connector's ``CONFIG`` marks ``"secret": True`` or ``"type": "password"``."""
    names: set[str] = set()
    if not isinstance(config, Mapping):
        return names
    params = config.get("params")
    if not isinstance(params, list):
        return names
    for param in params:
        if not isinstance(param, Mapping) or not isinstance(param.get("name"), str):
            continue
        if param.get("secret") is True or str(param.get("type", "")).lower() == "password":
            names.add(param["name"])
    return names


def _walk_named(value: Any, depth: int = 0) -> Iterator[tuple[str, Any]]:
    """(key, value) of every mapping inside ``value``, at any depth."""
    if depth > 8:  # guards against self-referencing sources
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key), item
            yield from _walk_named(item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _walk_named(item, depth + 1)


def _collect(value: Any, into: set[str], *, min_number: int) -> None:
    """Add the strings that ``value`` (a str, number, or container of them) shows."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, str):
        if value:
            into.add(value)
    elif isinstance(value, bytes):
        if value:
            into.add(value.decode("utf-8", "replace"))
    elif isinstance(value, (int, float)):
        text = str(value)
        if len(text) >= min_number:
            into.add(text)
    elif isinstance(value, Mapping):
        for item in value.values():
            _collect(item, into, min_number=min_number)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            _collect(item, into, min_number=min_number)

