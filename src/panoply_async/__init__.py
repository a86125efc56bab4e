"""panoply-async: stream records to Panoply through SQS, and write async data sources.

The public API is what this module lists in ``__all__``; everything in a
module whose name starts with ``_`` is private.
"""

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
from ._sdk import SDK, ReplayResult, SDKConfig, Stats
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

__all__ = [
    "SDK",
    "ConfigurationError",
    "Credentials",
    "CredentialsError",
    "DecodeError",
    "DeliveryError",
    "EntryFailure",
    "MemoryTransport",
    "Message",
    "PanoplyError",
    "RecordError",
    "RecordTooLargeError",
    "RecordTypeError",
    "ReplayResult",
    "SDKConfig",
    "SQSTransport",
    "SendError",
    "SendOutcome",
    "Stats",
    "Transport",
    "__version__",
    "decode_body",
    "encode_record",
    "parse_credentials",
]
