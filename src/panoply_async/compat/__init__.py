"""The legacy ``panoply`` package (``panoply-python-sdk``), backed by panoply-async.

Legacy code keeps working without edits: ``import panoply_async.compat as panoply``,
or call :func:`install` (``panoply-async run`` and ``validate`` do) so that ``import
panoply`` itself gives this module when the legacy package is not installed.

Its layout is the legacy one: ``SDK`` (the legacy-shaped face of
:class:`panoply_async.SyncSDK`), ``DataSource``, ``SSHTunnel``, ``to_record``,
``convert_to_ui_format``, ``validate_token``, ``background_progress`` at the top, and
the submodules ``errors`` (with ``errors.exceptions`` and
``errors.error_normalization``), ``resources``, ``records``, ``constants``,
``events``, ``datasource``, ``decorators``, ``sdk`` and ``ssh``. The classes are those of
panoply-async (``panoply.DataSource is panoply_async.DataSource``), with the legacy
call signatures accepted.
"""

from __future__ import annotations

from ..connectors._panoply_alias import install, installed, uninstall
from . import constants, datasource, decorators, errors, events, records, resources, sdk, ssh
from .constants import __package_name__, __version__
from .datasource import DataSource
from .decorators import background_progress, validate_token
from .records import (
    Metadata,
    Record,
    RecordGroup,
    get_iso_string,
    normalize_data,
    to_record,
    validate_resource,
)
from .resources import Field, Resource, convert_to_ui_format
from .sdk import SDK
from .ssh import SSHTunnel

__all__ = [
    "SDK",
    "DataSource",
    "Field",
    "Metadata",
    "Record",
    "RecordGroup",
    "Resource",
    "SSHTunnel",
    "__package_name__",
    "__version__",
    "background_progress",
    "constants",
    "convert_to_ui_format",
    "datasource",
    "decorators",
    "errors",
    "events",
    "get_iso_string",
    "install",
    "installed",
    "normalize_data",
    "records",
    "resources",
    "sdk",
    "ssh",
    "to_record",
    "uninstall",
    "validate_resource",
    "validate_token",
]
