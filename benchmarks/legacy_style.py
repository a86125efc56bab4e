"""A thread-and-queue sender in the style of the legacy ``panoply-python-sdk``.

Written here as a baseline (it is not the legacy code): ``write()`` serialises
with ``json.dumps``, measures a URL-quoted copy of the line, and puts it on a
``queue.Queue``; a daemon thread accumulates lines and flushes when the quoted
size would pass 250 KiB or 2 seconds after the last flush, with one blocking
HTTP POST of the SQS query-protocol form per flush. Messages therefore carry
roughly half of what SQS allows, which is what the SDK's packing improves on.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

FLUSH_BYTES = 250 * 1024
FLUSH_SECONDS = 2.0

#: Receives the URL-encoded form of one SendMessage request.
Poster = Callable[[bytes], None]


def http_poster(queue_url: str, timeout: float = 60.0) -> Poster:
    """POST a form to ``queue_url`` and fail on anything but HTTP 200."""
    if not queue_url.startswith("http://127.0.0.1:"):
        raise ValueError("the legacy-style baseline only talks to 127.0.0.1")

    def post(form: bytes) -> None:
        request = urllib.request.Request(
            queue_url,
            data=form,
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            if response.status != 200:
                raise RuntimeError(f"SendMessage answered HTTP {response.status}")

    return post


def null_poster(form: bytes) -> None:
    """Acknowledge at once: isolates the sender's CPU from the network and server."""


@dataclass
class LegacyStats:
    records: int = 0
    requests: int = 0
    bytes_sent: int = 0
    failures: list[str] = field(default_factory=list)


class LegacyStyleSender:
    """``write(table, record)`` from any thread; ``close()`` flushes and joins."""

    def __init__(self, apikey: str, apisecret: str, post: Poster, sdk_name: str) -> None:
        self._attributes = {"key": apikey, "secret": apisecret, "sdk": sdk_name}
        self._post = post
        self._queue: queue.Queue[tuple[str, int] | None] = queue.Queue()
        self.stats = LegacyStats()
        self._thread = threading.Thread(target=self._run, name="legacy-sender", daemon=True)
        self._thread.start()

    def write(self, table: str, record: Mapping[str, Any]) -> None:
        data = dict(record)
        data["__table"] = table
        line = json.dumps(data)
        # The legacy SDK estimated a message's size from its URL-quoted form.
        self._queue.put((line, len(urllib.parse.quote(line))))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self.stats.failures:
            raise RuntimeError(f"legacy-style sender failed: {self.stats.failures[0]}")

    def _run(self) -> None:
        lines: list[str] = []
        size = 0
        deadline = time.monotonic() + FLUSH_SECONDS
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                item = ("", 0)  # the 2 s timer: flush what we have
            if item is None:
                self._flush(lines)
                return
            line, quoted = item
            if line and size + quoted > FLUSH_BYTES and lines:
                self._flush(lines)
                lines, size = [], 0
                deadline = time.monotonic() + FLUSH_SECONDS
            if line:
                lines.append(line)
                size += quoted
            if time.monotonic() >= deadline:
                self._flush(lines)
                lines, size = [], 0
                deadline = time.monotonic() + FLUSH_SECONDS

    def _flush(self, lines: list[str]) -> None:
        if not lines:
            return
        # Records separated by a blank line, as the legacy Python SDK left them.
        body = "\n\n".join(lines) + "\n"
        form = self._form(body)
        try:
            self._post(form)
        except Exception as exc:  # keep going like the legacy thread, but remember it
            self.stats.failures.append(f"{type(exc).__name__}: {exc}")
            return
        self.stats.requests += 1
        self.stats.records += len(lines)
        self.stats.bytes_sent += len(body.encode("utf-8"))

    def _form(self, body: str) -> bytes:
        fields = {"Action": "SendMessage", "Version": "2012-11-05", "MessageBody": body}
        for index, (name, value) in enumerate(self._attributes.items(), start=1):
            prefix = f"MessageAttribute.{index}"
            fields[f"{prefix}.Name"] = name
            fields[f"{prefix}.Value.DataType"] = "String"
            fields[f"{prefix}.Value.StringValue"] = value
        return urllib.parse.urlencode(fields).encode("ascii")
