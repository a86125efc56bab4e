"""What a run does with a record that ``write()`` refuses (``on_bad_record``):
``fail`` stops the run (the default), ``skip`` counts it and goes on, ``dead-letter``
also keeps it in a file of JSON lines, secrets masked."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, RecordError
from .redact import REDACTED, redactor, secret_values

__all__ = [
    "BAD_RECORD_POLICIES", "BadRecord", "BadRecords", "check_policy", "source_mask",
]

logger = logging.getLogger("panoply_async.pipeline")

BAD_RECORD_POLICIES = ("fail", "skip", "dead-letter")
#: bad records identified one by one in IngestResult.bad_records and in the log;
#: the others are counted only
KEEP_IDENTIFIED = 20


@dataclass(frozen=True)
class BadRecord:
    """A record a run refused: where it was read and why ``write()`` refused it."""

    #: the table it was written to
    table: str
    #: the RecordGroup's resource id (the stream), when the batch was a group
    resource: str | None
    #: which batch of the run (1 for the first ``read()`` yielded)
    batch: int
    #: its index in that batch, from 0
    position: int
    #: the key path of the offending value ("" for the record as a whole)
    path: str
    reason: str


def check_policy(policy: str, dead_letter_file: str | os.PathLike[str] | None) -> None:
    """Raise :class:`ConfigurationError` for an unknown policy, or ``dead-letter``
    without a file."""
    if policy not in BAD_RECORD_POLICIES:
        raise ConfigurationError(f"on_bad_record must be one of "
                                 f"{', '.join(BAD_RECORD_POLICIES)}; got {policy!r}")
    if policy == "dead-letter" and dead_letter_file is None:
        raise ConfigurationError("on_bad_record='dead-letter' needs dead_letter_file")


class BadRecords:
    """Counts refused records and, under ``dead-letter``, appends them to a file
    created mode 0600, opened on the first one (no bad record: no file)."""

    def __init__(self, policy: str, dead_letter_file: str | os.PathLike[str] | None,
                 mask: Callable[[str], str]) -> None:
        check_policy(policy, dead_letter_file)
        self.policy = policy
        self.path = Path(dead_letter_file) if dead_letter_file is not None else None
        self.mask = mask
        self.skipped = 0
        self.dead_lettered = 0
        self.identified: list[BadRecord] = []
        self._handle: Any = None

    @property
    def fail(self) -> bool:
        return self.policy == "fail"

    def refused(self, bad: BadRecord, record: Any, error: RecordError) -> None:
        bad = BadRecord(bad.table, bad.resource, bad.batch, bad.position, bad.path,
                        self.mask(str(error)))
        if self.policy == "dead-letter":
            self._append(bad, record)
            self.dead_lettered += 1
        else:
            self.skipped += 1
        if len(self.identified) < KEEP_IDENTIFIED:
            self.identified.append(bad)
            where = f" (resource {bad.resource})" if bad.resource is not None else ""
            at = f" at {bad.path!r}" if bad.path else ""
            done = "dead-lettered" if self.policy == "dead-letter" else "skipped"
            logger.warning("table %s%s: record %d of batch %d refused%s: %s; %s%s",
                           bad.table, where, bad.position, bad.batch, at, bad.reason, done,
                           "" if len(self.identified) < KEEP_IDENTIFIED
                           else " (further bad records are counted, not logged)")

    def _append(self, bad: BadRecord, record: Any) -> None:
        assert self.path is not None  # check_policy
        entry = {**asdict(bad), "record": record}
        try:
            line = json.dumps(entry, default=repr)
        except (TypeError, ValueError):  # keys that are not strings, a cycle
            line = json.dumps({**asdict(bad), "record_repr": repr(record)})
        line = self.mask(line)
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.chmod(self.path, 0o600)  # a file that existed keeps no wider mode
            self._handle = os.fdopen(fd, "a", encoding="utf-8")
        self._handle.write(line + "\n")
        self._handle.flush()

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()


def source_mask(source: Any) -> Callable[[str], str]:
    """Masks the secrets of a data source in a text: those its ``mask()`` knows (the
    params its CONFIG marks secret) when it has one, values of credential-like keys
    of its ``source`` (also as JSON escapes them), and the process's registered ones."""
    def mask(text: str) -> str:
        masker = getattr(source, "mask", None)
        if callable(masker):
            text = str(masker(text))
        values = getattr(source, "source", None)
        found = secret_values({}, values) if isinstance(values, Mapping) else set()
        for secret in sorted((s for s in found if len(s) >= 4), key=len, reverse=True):
            text = text.replace(secret, REDACTED)
            escaped = json.dumps(secret)[1:-1]
            if escaped != secret:
                text = text.replace(escaped, REDACTED)
        return redactor.redact(text)

    return mask
