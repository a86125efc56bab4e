"""The legacy ``panoply.constants``: the name and version this package sends.

``__package_name__ + "-" + __version__`` is the ``sdk`` attribute of every SQS
message, as in the legacy SDK.
"""

from __future__ import annotations

from .._version import __version__

__all__ = ["__package_name__", "__version__"]

__package_name__ = "panoply-async"
