"""The legacy ``panoply.sdk``: ``SDK``, the legacy-shaped face of :class:`panoply_async.SyncSDK`."""

from __future__ import annotations

from ..sync._legacy_sdk import SDK

__all__ = ["SDK"]
