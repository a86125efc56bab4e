"""Writing connectors: the :class:`DataSource` base class, the decorators connectors
use, the HTTP helper (``RESTClient`` and its paginators), and loading and checking a
connector module (the contract the command enforces).
"""

from ._contract import check_connector, connector_name, load_connector, validate_connector
from ._datasource import DataSource, Field, Metadata, RecordGroup, Resource, to_record
from ._decorators import background_progress, validate_token
from ._http import BasicAuth, BearerAuth, Page, RESTClient
from ._incremental import Incremental
from ._paginators import (
    HeaderLinkPaginator,
    JSONCursorPaginator,
    JSONLinkPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    PageRequest,
    Paginator,
)
from ._streams import StreamSpec, StreamState

__all__ = [
    "BasicAuth",
    "BearerAuth",
    "DataSource",
    "Field",
    "HeaderLinkPaginator",
    "Incremental",
    "JSONCursorPaginator",
    "JSONLinkPaginator",
    "Metadata",
    "OffsetPaginator",
    "Page",
    "PageNumberPaginator",
    "PageRequest",
    "Paginator",
    "RESTClient",
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
