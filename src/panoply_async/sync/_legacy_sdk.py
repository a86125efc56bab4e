"""The legacy ``panoply.SDK`` shape over :class:`SyncSDK` (re-exported by ``compat``).

Legacy code builds it without a ``with`` block, calls ``write(table, data)``
from plain synchronous code and never flushes; the engine starts on the first
write and drains at interpreter exit (within ``shutdown_timeout``, or spools
with ``spool_dir``), so a script that exits right after writing loses nothing,
unlike the legacy SDK, which dropped up to two seconds of records.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from .._engine.events import Handler
from .._wire.credentials import resolve_credentials
from ..errors import PanoplyError
from ._sdk import SyncSDK

__all__ = ["SDK"]


def _error_argument(data: Any) -> Any:
    """The legacy ``error`` event carried an exception; ours carries a dict."""
    if not isinstance(data, Mapping):
        return data
    exception = data.get("exception")
    if isinstance(exception, BaseException):
        return exception
    return PanoplyError(
        f"{data.get('records', 0)} records in {data.get('messages', 0)} messages "
        "were not delivered"
    )


class SDK:
    """``SDK(apikey, apisecret, **options)``: the legacy Panoply SDK's interface.

    Credentials and endpoint not given come from the environment, as for
    :class:`panoply_async.SDK` (``PANOPLY_APIKEY``, ``PANOPLY_APISECRET``,
    ``PANOPLY_ENDPOINT_URL``).

    ``qurl`` is the queue URL, ``write(table, data)`` accepts a record (it
    blocks only while the buffer is full), ``on(name, fn)`` registers a handler
    for ``send``, ``flush``, ``error`` or ``*`` (``error`` handlers receive the
    exception, as before), ``flush()`` sends what was written and ``close()``
    stops. Options are those of :class:`panoply_async.SDK`.
    """

    logger: Any = None  # the legacy attribute, kept for code that sets it

    def __init__(
        self, apikey: str | bytes | None = None, apisecret: str | bytes | None = None,
        **options: Any,
    ) -> None:
        credentials, endpoint_url = resolve_credentials(
            apikey, apisecret, options.pop("endpoint_url", None), os.environ
        )
        self._conn = SyncSDK(
            credentials.apikey, credentials.apisecret, endpoint_url=endpoint_url, **options
        )
        self._apisecret = credentials.apisecret if apisecret is None else apisecret
        self.apikey = credentials.apikey
        self.account = credentials.account
        self.qurl = self._conn.queue_url

    @property
    def apisecret(self) -> str:
        """The secret given to the constructor (never shown in ``repr``)."""
        secret = self._apisecret
        return secret.decode() if isinstance(secret, bytes) else secret

    def __repr__(self) -> str:
        return f"panoply.SDK(account={self.account!r})"

    def __enter__(self) -> SDK:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def write(self, table: str, data: Mapping[str, Any]) -> None:
        self._conn.write(table, data)

    def on(self, name: str, fn: Handler) -> SDK:
        if name == "error":
            self._conn.on(name, lambda data: fn(_error_argument(data)))
        elif name == "*":
            self._conn.on(
                name,
                lambda event, data: fn(event, _error_argument(data) if event == "error" else data),
            )
        else:
            self._conn.on(name, fn)
        return self

    def flush(self, timeout: float | None = None) -> None:
        self._conn.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        self._conn.close(timeout)

    @property
    def stats(self) -> Any:
        return self._conn.stats
