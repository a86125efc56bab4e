"""``max_records``: a trial run writes at most N records per table, and stops reading
once it has what it came for."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import ConfigurationError

__all__ = ["Trial"]


class Trial:
    """At most ``max_records`` records per table.

    Which tables a source will produce is not known ahead, so reading stops when
    every table seen so far has its share, or when the last ``2 x tables seen``
    batches in a row brought records only for tables that had theirs already (a
    table still filling would have shown up among them, unless the source reads its
    tables one after another: then a trial sees the first ones only).
    """

    def __init__(self, max_records: int) -> None:
        if isinstance(max_records, bool) or not isinstance(max_records, int) \
                or max_records < 1:
            raise ConfigurationError(
                f"max_records must be an integer of 1 or more, got {max_records!r}")
        self.max_records = max_records
        self._idle = 0
        self._capped = False
        self._wrote = False

    def room(self, table_count: int, offered: int) -> int:
        """How many of ``offered`` records may still go to a table holding ``table_count``."""
        room = max(0, min(offered, self.max_records - table_count))
        if room < offered:
            self._capped = True
        if room:
            self._wrote = True
        return room

    def batch_done(self) -> None:
        if self._wrote:
            self._idle = 0
        elif self._capped:
            self._idle += 1
        self._capped = self._wrote = False

    def enough(self, tables: Mapping[str, int]) -> bool:
        if not tables:
            return False
        if min(tables.values()) >= self.max_records:
            return True
        return self._idle >= 2 * len(tables)
