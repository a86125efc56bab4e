"""``run --local``'s look at the data: per table, the records that arrived, the
columns seen with their JSON types, and one sample row."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SAMPLE_CHARS", "TableLook", "json_type"]

#: the sample row is cut after this many characters
SAMPLE_CHARS = 400
#: keys the wire format adds, not columns of the table
_WIRE_KEYS = frozenset({"__table"})


def json_type(value: Any) -> str:
    """The JSON Schema type name of a decoded JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


@dataclass
class TableLook:
    records: int = 0
    #: column -> the JSON types seen in it, in the order first seen
    columns: dict[str, dict[str, None]] = field(default_factory=dict)
    sample: dict[str, Any] | None = None

    def add(self, record: Mapping[str, Any]) -> None:
        self.records += 1
        columns = self.columns
        for key, value in record.items():
            if key in _WIRE_KEYS:
                continue
            kinds = columns.get(key)
            if kinds is None:
                kinds = columns[key] = {}
            kinds[json_type(value)] = None
        if self.sample is None:
            self.sample = {k: v for k, v in record.items() if k not in _WIRE_KEYS}

    def lines(self) -> list[str]:
        """The columns and the sample, indented under the table's count (secrets are
        masked by the caller, as for every line of the summary)."""
        described = ", ".join(f"{name} ({' | '.join(kinds)})"
                              for name, kinds in self.columns.items())
        lines = [f"    columns: {described or '(none)'}"]
        if self.sample is not None:
            text = json.dumps(self.sample, ensure_ascii=False, default=str)
            if len(text) > SAMPLE_CHARS:
                text = text[:SAMPLE_CHARS] + "…"
            lines.append(f"    sample: {text}")
        return lines
