"""One ``SyncSDK`` per process, made from ``settings.PANOPLY`` on first use.

Creating it lazily keeps ``import`` free of side effects (management commands,
tests); creating it in gunicorn's master (``--preload``) would be safe too: a
``SyncSDK`` starts its engine in the process that first writes, and drains at
that process's exit.
"""

from functools import cache

from django.conf import settings

import panoply_async


@cache
def panoply() -> panoply_async.SyncSDK:
    return panoply_async.SyncSDK(**settings.PANOPLY)
