"""The legacy ``panoply.datasource``: ``DataSource`` and the decorators.

``DataSource`` is :class:`panoply_async.DataSource` itself, so a legacy connector's
``Stream`` passes ``panoply-async validate`` and runs under :meth:`SDK.ingest` and
``panoply-async run``: its plain ``read()`` (with or without the ``n`` argument) is
called in a worker thread, a list per call and ``None`` at the end.
"""

from __future__ import annotations

from ..connectors._datasource import DataSource
from .decorators import background_progress, validate_token

__all__ = ["DataSource", "background_progress", "validate_token"]
