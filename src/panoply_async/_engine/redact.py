"""Keep secrets out of log records, including those of botocore at DEBUG level.

botocore logs request parameters (our message attributes hold the api secret)
when DEBUG logging is on. A filter on each logger that may see them replaces
the secret before any handler formats the record. Logger filters only run for
records that pass the level check, so this costs nothing when DEBUG is off.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "SecretRedactor", "redactor", "secret_values"]

REDACTED = "***"

# Loggers that can see request parameters or signed headers.
_LOGGERS = (
    "panoply_async",
    "botocore",
    "botocore.endpoint",
    "botocore.hooks",
    "botocore.parsers",
    "botocore.auth",
    "botocore.client",
    "botocore.httpsession",
    "botocore.retryhandler",
    "botocore.awsrequest",
    "aiobotocore",
    "aiobotocore.endpoint",
    "aiobotocore.client",
    "aiobotocore.httpsession",
    "aiobotocore.hooks",
    "aiobotocore.parsers",
)


class SecretRedactor(logging.Filter):
    """Replaces every registered secret in a record's message with ``***``."""

    def __init__(self) -> None:
        super().__init__("panoply_async.redact")
        self._lock = threading.Lock()
        self._secrets: dict[str, int] = {}
        self._installed = False

    def add(self, secret: str) -> None:
        if len(secret) < 4:
            return  # too short to match safely; such secrets are refused elsewhere
        with self._lock:
            self._secrets[secret] = self._secrets.get(secret, 0) + 1
            if not self._installed:
                for name in _LOGGERS:
                    logging.getLogger(name).addFilter(self)
                self._installed = True

    def remove(self, secret: str) -> None:
        with self._lock:
            count = self._secrets.get(secret, 0) - 1
            if count > 0:
                self._secrets[secret] = count
            else:
                self._secrets.pop(secret, None)

    def redact(self, text: str) -> str:
        # Longest first: a secret that contains another is replaced whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the handler's problem, not ours
            return True
        redacted = self.redact(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            if self.redact(text) != text:
                record.exc_text = self.redact(text)
        return True


redactor = SecretRedactor()


# Source keys whose values are credentials, by their name (as DataSource.mask).
_SECRET_NAME = re.compile(r"password|token|secret|key", re.IGNORECASE)


def secret_values(config: Mapping[str, Any], source: Mapping[str, Any]) -> set[str]:
    """The strings of ``source`` that are secrets, whatever the connector's layout:
    values of the params that ``config`` marks ``"secret": True`` or
    ``"type": "password"``, and of keys named like a credential."""
    marked = {
        str(param["name"]) for param in config.get("params", [])
        if isinstance(param, Mapping) and "name" in param
        and (param.get("secret") is True or str(param.get("type", "")).lower() == "password")
    }
    found: set[str] = set()

    def collect(value: Any, depth: int) -> None:
        if depth > 8 or isinstance(value, bool) or value is None:
            return
        if isinstance(value, (str, int, float)):
            found.add(str(value))
        elif isinstance(value, Mapping):
            for item in value.values():
                collect(item, depth + 1)
        elif isinstance(value, (list, tuple)):
            for item in value:
                collect(item, depth + 1)

    def walk(value: Any, depth: int) -> None:
        if depth > 8:
            return
        if isinstance(value, Mapping):
            for key, item in value.items():
                if (depth == 0 and str(key) in marked) or _SECRET_NAME.search(str(key)):
                    collect(item, depth)
                walk(item, depth + 1)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item, depth + 1)

    walk(source, 0)
    return {value for value in found if len(value) >= 4}
