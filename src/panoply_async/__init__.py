"""panoply-async: stream records to Panoply through SQS, and write async data sources.

The public API is what this module lists in ``__all__``; everything in a
module whose name starts with ``_`` is private.
"""

from ._checkpoint import Checkpoint
from ._contract import ConnectorError, check_connector, load_connector, validate_connector
from ._credentials import Credentials, parse_credentials
from ._encoding import decode_body, encode_record
from ._exceptions import (
    ConfigurationError,
    CredentialsError,
    DecodeError,
    DeliveryError,
    PanoplyError,
    RecordError,
    RecordTooLargeError,
    RecordTypeError,
)
from ._pipeline import IngestResult
from ._sdk import SDK, ReplayResult, SDKConfig, Stats
from ._sync import SyncSDK
from ._transport import (
    EntryFailure,
    MemoryTransport,
    Message,
    SendError,
    SendOutcome,
    SQSTransport,
    Transport,
)
from ._version import __version__
from ._wal import WALError, WALLockedError
from .datasource import (
    DataSource,
    Field,
    Metadata,
    RecordGroup,
    Resource,
    to_record,
)
from .decorators import background_progress, validate_token
from .errors import (
    ERROR_CODES,
    BackgroundTimeoutError,
    DataSourceException,
    IncorrectParamError,
    MetadataNotSupportedException,
    PanoplyException,
    Phase,
    TokenValidationException,
    WrongTypeOrValueError,
    set_internal_code,
    wrap_errors,
)

__all__ = [
    "ERROR_CODES",
    "SDK",
    "BackgroundTimeoutError",
    "Checkpoint",
    "ConfigurationError",
    "ConnectorError",
    "Credentials",
    "CredentialsError",
    "DataSource",
    "DataSourceException",
    "DecodeError",
    "DeliveryError",
    "EntryFailure",
    "Field",
    "IncorrectParamError",
    "IngestResult",
    "MemoryTransport",
    "Message",
    "Metadata",
    "MetadataNotSupportedException",
    "PanoplyError",
    "PanoplyException",
    "Phase",
    "RecordError",
    "RecordGroup",
    "RecordTooLargeError",
    "RecordTypeError",
    "ReplayResult",
    "Resource",
    "SDKConfig",
    "SQSTransport",
    "SendError",
    "SendOutcome",
    "Stats",
    "SyncSDK",
    "TokenValidationException",
    "Transport",
    "WALError",
    "WALLockedError",
    "WrongTypeOrValueError",
    "__version__",
    "background_progress",
    "check_connector",
    "decode_body",
    "encode_record",
    "load_connector",
    "parse_credentials",
    "set_internal_code",
    "to_record",
    "validate_connector",
    "validate_token",
    "wrap_errors",
]
