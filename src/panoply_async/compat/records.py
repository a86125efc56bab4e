"""The legacy ``panoply.records``: ``to_record`` and the ``RecordGroup`` shapes.

``to_record`` is :func:`panoply_async.to_record`: it checks every item of a list (the
legacy one looked at the first only), stamps the time in UTC, and raises
:class:`~panoply_async.errors.WrongTypeOrValueError`, which is both the ``TypeError``
and the ``ValueError`` the legacy function raised.
"""

from __future__ import annotations

import datetime
from typing import Any, TypedDict

from ..connectors._datasource import Metadata, RecordGroup, to_record
from ..errors import WrongTypeOrValueError

__all__ = [
    "Metadata",
    "Record",
    "RecordGroup",
    "get_iso_string",
    "normalize_data",
    "to_record",
    "validate_resource",
]


class Record(TypedDict):
    """One record of a resource, with its metadata (legacy shape)."""

    data: dict[str, Any]
    metadata: Metadata


def validate_resource(resource: Any) -> None:
    """Raise unless ``resource`` is a non-empty string (a type error for a non-string,
    a value error for a blank one; both are ``WrongTypeOrValueError``)."""
    if not isinstance(resource, str):
        raise WrongTypeOrValueError("`resource` must be of a type string")
    if not resource.strip():
        raise WrongTypeOrValueError("`resource` must be a non empty string")


def normalize_data(data: Any) -> list[dict[str, Any]]:
    """``data`` as a list of dicts: a dict becomes a list of one; a list must hold dicts."""
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        for item in data:
            if not isinstance(item, dict):
                raise WrongTypeOrValueError(
                    "Objects inside returned list should be of type dict."
                )
        return data
    raise WrongTypeOrValueError("The data returned should be of the type list or dict.")


def get_iso_string() -> str:
    """Now, in UTC, as ``2024-05-01T12:00:00.000Z`` (the ``timestamp`` of a RecordGroup)."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return now.isoformat(timespec="milliseconds") + "Z"
