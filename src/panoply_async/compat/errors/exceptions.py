"""The legacy ``panoply.errors.exceptions``: the very classes of :mod:`panoply_async.errors`.

They accept the legacy call signatures (``TokenValidationException(original_error,
message, retryable=True)``, ``IncorrectParamError(msg=...)``), so code raising or
catching them under their legacy names works with the rest of panoply-async.
"""

from __future__ import annotations

from ...errors import (
    DataSourceException,
    IncorrectParamError,
    MetadataNotSupportedException,
    PanoplyException,
    TokenValidationException,
)

__all__ = [
    "DataSourceException",
    "IncorrectParamError",
    "MetadataNotSupportedException",
    "PanoplyException",
    "TokenValidationException",
]
