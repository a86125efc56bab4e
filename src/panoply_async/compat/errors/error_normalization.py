"""The legacy ``panoply.errors.error_normalization``: ``wrap_errors``, ``set_internal_code``,
``Phase`` and the two registries.

``EXCEPTIONS_REGISTRY`` is the dict :func:`set_internal_code` writes to, so code that
reads or fills it directly still agrees with ``wrap_errors``.
"""

from __future__ import annotations

from ...errors import ERROR_CODES as ERROR_CODES_REGISTRY
from ...errors import EXCEPTIONS_REGISTRY, Phase, set_internal_code, wrap_errors

__all__ = [
    "ERROR_CODES_REGISTRY",
    "EXCEPTIONS_REGISTRY",
    "Phase",
    "set_internal_code",
    "wrap_errors",
]
