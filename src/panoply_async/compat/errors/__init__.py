"""The legacy ``panoply.errors``, backed by :mod:`panoply_async.errors`."""

from __future__ import annotations

from . import error_normalization, exceptions
from .error_normalization import (
    ERROR_CODES_REGISTRY,
    EXCEPTIONS_REGISTRY,
    Phase,
    set_internal_code,
    wrap_errors,
)
from .exceptions import (
    DataSourceException,
    IncorrectParamError,
    MetadataNotSupportedException,
    PanoplyException,
    TokenValidationException,
)

__all__ = [
    "ERROR_CODES_REGISTRY",
    "EXCEPTIONS_REGISTRY",
    "DataSourceException",
    "IncorrectParamError",
    "MetadataNotSupportedException",
    "PanoplyException",
    "Phase",
    "TokenValidationException",
    "error_normalization",
    "exceptions",
    "set_internal_code",
    "wrap_errors",
]
