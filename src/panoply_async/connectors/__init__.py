"""Writing connectors: the :class:`DataSource` base class, the decorators connectors
use, and loading and checking a connector module (the contract the command enforces).
"""

from ._contract import check_connector, connector_name, load_connector, validate_connector
from ._datasource import DataSource, Field, Metadata, RecordGroup, Resource, to_record
from ._decorators import background_progress, validate_token
from ._incremental import Incremental
from ._streams import StreamSpec, StreamState

__all__ = [
    "DataSource",
    "Field",
    "Incremental",
    "Metadata",
    "RecordGroup",
    "Resource",
    "StreamSpec",
    "StreamState",
    "background_progress",
    "check_connector",
    "connector_name",
    "load_connector",
    "to_record",
    "validate_connector",
    "validate_token",
]
