"""panoply-async: stream records to Panoply through SQS, and write async data sources.

The public API is what this module lists in ``__all__``; everything in a
module whose name starts with ``_`` is private.
"""

from ._engine.checkpoint import Checkpoint
from ._engine.pipeline import IngestResult
from ._engine.sdk import SDK, ReplayResult, SDKConfig, Stats
from ._engine.transport import (
    EntryFailure,
    MemoryTransport,
    Message,
    SendOutcome,
    SQSTransport,
    Transport,
)
from ._version import __version__
from ._wire.credentials import Credentials, parse_credentials
from ._wire.encoding import decode_body, encode_record
from .connectors import (
    DataSource,
    Field,
    Metadata,
    RecordGroup,
    Resource,
    background_progress,
    check_connector,
    load_connector,
    to_record,
    validate_connector,
    validate_token,
)
from .errors import (
    ERROR_CODES,
    BackgroundTimeoutError,
    ConfigurationError,
    ConnectorError,
    CredentialsError,
    DataSourceException,
    DecodeError,
    DeliveryError,
    IncorrectParamError,
    MetadataNotSupportedException,
    PanoplyError,
    PanoplyException,
    Phase,
    RecordError,
    RecordTooLargeError,
    RecordTypeError,
    SendError,
    TokenValidationException,
    WALError,
    WALLockedError,
    WrongTypeOrValueError,
    set_internal_code,
    wrap_errors,
)
from .sync import SyncSDK

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
