"""The SDK's options, validated at construction (a bad value raises here, not later)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ..errors import ConfigurationError
from .concurrency import DEFAULT_CEILING

__all__ = ["SDKConfig"]


@dataclass(frozen=True)
class SDKConfig:
    """Tuning knobs of :class:`SDK`; see docs/operations.md for what each costs."""

    endpoint_url: str | None = None
    flush_interval: float = 2.0
    max_message_bytes: int = 262_144
    max_buffer_bytes: int = 16 * 1024 * 1024
    max_concurrent_sends: int = DEFAULT_CEILING
    adaptive_concurrency: bool = True
    #: None: a live message is retried until delivered (no spool) or until
    #: ``retry_budget`` passed (then it overflows to the spool); a number: given
    #: up after that many attempts. Replay requests use it too (default 8).
    max_attempts: int | None = None
    #: with a spool, seconds a failing message is retried in memory before it
    #: overflows to disk; also the limit per replay request
    retry_budget: float = 120.0
    backoff_base: float = 0.1
    backoff_max: float = 10.0
    request_timeout: float = 30.0
    shutdown_timeout: float = 30.0
    spool_dir: str | os.PathLike[str] | None = None
    sign: bool = False
    wal_dir: str | os.PathLike[str] | None = None
    max_wal_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        def positive(name: str, value: object, *, integer: bool = False) -> None:
            kind = int if integer else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ConfigurationError(
                    f"{name} must be a {'whole' if integer else ''} number, "
                    f"not {type(value).__name__}".replace("a  ", "a ")
                )
            if not value > 0 or (isinstance(value, float) and math.isnan(value)):
                raise ConfigurationError(f"{name} must be greater than 0, got {value!r}")

        positive("flush_interval", self.flush_interval)
        positive("max_message_bytes", self.max_message_bytes, integer=True)
        positive("max_buffer_bytes", self.max_buffer_bytes, integer=True)
        positive("max_concurrent_sends", self.max_concurrent_sends, integer=True)
        if self.max_attempts is not None:
            positive("max_attempts", self.max_attempts, integer=True)
        positive("retry_budget", self.retry_budget)
        positive("backoff_base", self.backoff_base)
        positive("backoff_max", self.backoff_max)
        if self.backoff_max < self.backoff_base:
            raise ConfigurationError(
                f"backoff_max ({self.backoff_max}) must not be less than "
                f"backoff_base ({self.backoff_base})"
            )
        positive("request_timeout", self.request_timeout)
        positive("shutdown_timeout", self.shutdown_timeout)
        positive("max_wal_bytes", self.max_wal_bytes, integer=True)
        if self.max_wal_bytes < 4 * self.max_message_bytes:
            raise ConfigurationError(
                "max_wal_bytes must be at least four times max_message_bytes "
                f"({4 * self.max_message_bytes}), got {self.max_wal_bytes}"
            )
        if self.wal_dir is not None and not isinstance(self.wal_dir, (str, os.PathLike)):
            raise ConfigurationError("wal_dir must be a path")
        if self.max_message_bytes < 1024:
            raise ConfigurationError("max_message_bytes must be at least 1024")
        if self.max_buffer_bytes < 2 * self.max_message_bytes:
            raise ConfigurationError(
                "max_buffer_bytes must be at least twice max_message_bytes "
                f"({2 * self.max_message_bytes}), got {self.max_buffer_bytes}"
            )
        if self.endpoint_url is not None and not (
            isinstance(self.endpoint_url, str)
            and self.endpoint_url.startswith(("http://", "https://"))
        ):
            raise ConfigurationError("endpoint_url must be an http:// or https:// URL")
        if not isinstance(self.sign, bool):
            raise ConfigurationError("sign must be True or False")
        if not isinstance(self.adaptive_concurrency, bool):
            raise ConfigurationError("adaptive_concurrency must be True or False")

    def body_limit(self, attributes_size: int) -> int:
        """Bytes of records a message can hold next to ``attributes_size`` bytes of
        message attributes; raises :class:`ConfigurationError` when too few are left."""
        limit = self.max_message_bytes - attributes_size
        if limit < 1024:
            raise ConfigurationError(
                f"max_message_bytes={self.max_message_bytes} leaves too little room for "
                f"records after the {attributes_size} bytes of message attributes"
            )
        return limit
