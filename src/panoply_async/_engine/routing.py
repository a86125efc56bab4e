"""Which table each record of a data source goes to (DESIGN §2, "Pipeline")."""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from ..errors import PanoplyException

__all__ = ["TableRouter"]


class _Fields(dict[str, Any]):
    """format_map() mapping that names the missing field instead of a bare KeyError."""

    def __missing__(self, key: str) -> Any:
        raise PanoplyException(
            f"destination placeholder {{{key}}} has no value in the record", retryable=False
        )


class TableRouter:
    """Decides the table of each record.

    * plain records: ``source["destination"]``, else ``source["type"]``; the
      name may hold ``{field}`` placeholders filled from each record (legacy
      connectors used ``"typeform_{__table}"``);
    * records of a ``RecordGroup``: its ``metadata["resource_id"]``, unless
      ``destination`` has a ``{resource_id}`` placeholder (``"crm_{resource_id}"``):
      then that template, filled from ``resource_id`` and the record.
    """

    def __init__(self, source: Mapping[str, Any]) -> None:
        destination = source.get("destination")
        template = destination or source.get("type")
        if template is not None and not isinstance(template, str):
            raise PanoplyException(
                "source 'destination'/'type' must be a string", retryable=False
            )
        self.template: str | None = template or None
        self.fields = (
            [name for _, name, _, _ in string.Formatter().parse(template) if name]
            if template
            else []
        )
        self.groups_use_template = "resource_id" in self.fields

    def fixed(self, resource_id: str | None = None) -> str | None:
        """The table of every record (of the group ``resource_id``) when it does not
        depend on the record, else None: then :meth:`table` decides per record."""
        if resource_id is not None and not self.groups_use_template:
            return resource_id
        if self.template is None:
            raise PanoplyException(
                "the source has neither 'destination' nor 'type': records have no table",
                retryable=False,
            )
        return None if self.fields else self.template

    def table(self, record: Mapping[str, Any], resource_id: str | None = None) -> str:
        fixed = self.fixed(resource_id)
        if fixed is not None:
            return fixed
        assert self.template is not None  # fixed() raised otherwise
        values = _Fields(record)
        if resource_id is not None:
            values.setdefault("resource_id", resource_id)
        return self.template.format_map(values)
