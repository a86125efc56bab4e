"""Synchronous callers: :class:`SyncSDK` runs the async SDK on an engine thread it owns;
the fork and exit hooks keep it safe in forking servers and at interpreter exit."""

from ._sdk import SyncSDK

__all__ = ["SyncSDK"]
