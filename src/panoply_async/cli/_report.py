"""What ``panoply-async run`` prints when it ends: the summary and connector errors."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

from .._engine.redact import redactor
from ._interrupt import Interrupt
from ._run import RunOutcome

__all__ = ["connector_location", "error_lines", "plural", "summary_lines"]


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def connector_location(exc: BaseException, module: Any) -> str | None:
    """``file:line in function`` of the innermost frame of the connector's own code."""
    file = getattr(module, "__file__", None)
    if not file:
        return None
    root = Path(file).resolve()
    if hasattr(module, "__path__"):  # a package: every file under its directory
        root = root.parent
    seen: set[int] = set()
    current: BaseException | None = exc
    found: str | None = None
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for frame in traceback.extract_tb(current.__traceback__):
            path = Path(frame.filename).resolve()
            if path == root or root in path.parents:
                found = f"{frame.filename}:{frame.lineno} in {frame.name}"
        if found is not None:
            return found
        current = current.__cause__ or current.__context__
    return None


def error_lines(error: BaseException, module: Any, verbose: bool) -> list[str]:
    """The traceback (with ``verbose``) and the one-line error, secrets masked.

    The line names the file and line of the connector's own code that raised.
    """
    lines: list[str] = []
    if verbose:
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        lines.append(text.rstrip())
    location = connector_location(error, module)
    where = f" (at {location})" if location else ""
    hint = "" if verbose else "; --verbose shows the traceback"
    lines.append(f"error: {type(error).__name__}: {error}{where}{hint}")
    return [redactor.redact(line) for line in lines]


#: refused records the summary identifies one by one
SHOWN_BAD_RECORDS = 5


def bad_record_lines(result: Any, dead_letter_file: str | None) -> list[str]:
    """The refused records' counts, and the first few identified."""
    skipped, dead = result.records_skipped, result.records_dead_lettered
    if not (skipped or dead):
        return []
    lines = [f"bad records: {skipped:,} skipped"
             if skipped else f"bad records: {dead:,} dead-lettered to {dead_letter_file}"]
    for bad in result.bad_records[:SHOWN_BAD_RECORDS]:
        where = f" (resource {bad.resource})" if bad.resource is not None else ""
        at = f" at {bad.path}" if bad.path else ""
        lines.append(f"  {bad.table}{where}: batch {bad.batch}, record {bad.position}"
                     f"{at}: {bad.reason}")
    hidden = skipped + dead - min(len(result.bad_records), SHOWN_BAD_RECORDS)
    if hidden > 0:
        lines.append(f"  ... and {plural(hidden, 'more record')}")
    return lines


def summary_lines(outcome: RunOutcome, *, dry_run: bool, interrupt: Interrupt,
                  stopped: bool, max_records: int | None = None,
                  dead_letter_file: str | None = None) -> list[str]:
    """The summary ``run`` prints after the connector ended, secrets masked."""
    stats = outcome.stats
    result = outcome.result
    lines: list[str] = []
    if result is not None:
        lines.append(f"records: {plural(result.records, 'record')} in "
                     f"{result.batches:,} {'batch' if result.batches == 1 else 'batches'}, "
                     f"{outcome.elapsed:.1f}s")
        for table, count in sorted(result.tables.items()):
            lines.append(f"  {table}: {count:,}")
        lines.extend(bad_record_lines(result, dead_letter_file))
        if max_records is not None:
            lines.append(f"trial: at most {plural(max_records, 'record')} per table; "
                         "no state saved")
    if stats and dry_run:
        lines.append(f"dry run: {plural(stats['records_delivered'], 'record')} printed, "
                     "nothing sent")
    elif stats:
        lines.append(
            f"messages: {stats['messages_sent']:,}, bytes: {stats['bytes_sent']:,}, "
            f"requests: {stats['requests']:,}, retries: {stats['retries']:,}, "
            f"spooled: {stats['records_spooled']:,}"
        )
    if outcome.committed is not None:
        lines.append(f"state: {outcome.committed[0]!r} reached (dry run: nothing saved)"
                     if dry_run else f"state: {outcome.committed[0]!r} committed")
    if outcome.arrived is not None:
        lines.append("arrived at the local server:")
        for table, count in outcome.arrived.items():
            lines.append(f"  {table}: {count:,}")
            look = (outcome.looks or {}).get(table)
            if look is not None:
                lines.extend(look.lines())
    if outcome.interrupted:
        delivered = stats.get("records_delivered", 0)
        spooled = stats.get("records_spooled", 0) + stats.get("records_failed", 0)
        how = "; a second interrupt stopped the drain" if stopped else ""
        state = ("no state committed" if outcome.committed is None
                 else f"state {outcome.committed[0]!r} committed")
        lines.append(f"interrupted by {interrupt.name}{how}: "
                     f"{plural(delivered, 'record')} delivered, {spooled:,} not delivered "
                     f"(spooled), {state}")
    return [redactor.redact(line) for line in lines]
