"""Every exception of panoply-async, and the legacy SDK's error normalisation.

Every exception derives from :class:`PanoplyError`; errors caused by bad input are
also ``ValueError`` or ``TypeError``, so generic handlers keep working. No message
ever contains the api secret or the queue URL::

    PanoplyError
    ├── BufferFullError                   write_nowait(): no room now (nothing accepted)
    ├── ConfigurationError (ValueError)   an SDK option out of range or of the wrong type
    ├── ConnectorError (ValueError)       a connector module cannot load or breaks the contract
    ├── CredentialsError (ValueError)     a malformed or missing api key or secret
    ├── DecodeError (ValueError)          a message body that is not JSON lines
    ├── DeliveryError                     leaving the block: records neither sent nor spooled
    ├── IncorrectParamError (ValueError)  a connector parameter (legacy name)
    │   └── SSHTunnelConfigError
    ├── PanoplyException                  raised by connectors; ``retryable`` says whether to retry
    │   ├── BackgroundTimeoutError (TimeoutError)
    │   ├── DataSourceException           normalised, with the legacy platform's fields
    │   ├── HTTPError                     RESTClient: an answer that is not a success
    │   │   └── HTTPAuthError
    │   ├── MetadataNotSupportedException
    │   ├── StreamError (ValueError)      a stream declaration or selection
    │   └── TokenValidationException
    ├── RecordError (ValueError)          a record write() refused; nothing of it buffered
    │   ├── RecordTooLargeError
    │   └── RecordTypeError (TypeError)
    ├── ScaffoldError (ValueError)        ``init``: a name or directory that cannot be used
    ├── SendError                         a whole send request failed
    ├── SpoolError                        a spool file that cannot be written or rewritten
    ├── SSHTunnelError                    the tunnel could not be opened
    ├── StateFileError (ValueError)       a --state-file that cannot be used
    ├── WALError                          the write-ahead log cannot be used
    │   ├── WALLockedError
    │   └── WALRecoveryError
    └── WrongTypeOrValueError (TypeError, ValueError)

``PanoplyException(message, retryable=True)`` is what a connector raises to say
whether :meth:`SDK.ingest` (or the platform) should try again. ``wrap_errors(phase)``
turns any exception of a connector function into a :class:`DataSourceException`
carrying a code from :data:`ERROR_CODES` (see ``set_internal_code``).
"""

from ._codes import (
    BAD_CODE,
    ERROR_CODES,
    EXCEPTIONS_REGISTRY,
    UNCLASSIFIED,
    Phase,
    code_for,
    normalise,
    set_internal_code,
    wrap_errors,
)
from ._exceptions import (
    BackgroundTimeoutError,
    BufferFullError,
    ConfigurationError,
    ConnectorError,
    CredentialsError,
    DataSourceException,
    DecodeError,
    DeliveryError,
    HTTPAuthError,
    HTTPError,
    IncorrectParamError,
    MetadataNotSupportedException,
    PanoplyError,
    PanoplyException,
    RecordError,
    RecordTooLargeError,
    RecordTypeError,
    ScaffoldError,
    SendError,
    SpoolError,
    SSHTunnelConfigError,
    SSHTunnelError,
    StateFileError,
    StreamError,
    TokenValidationException,
    WALError,
    WALLockedError,
    WALRecoveryError,
    WrongTypeOrValueError,
)

__all__ = [
    "BAD_CODE",
    "ERROR_CODES",
    "EXCEPTIONS_REGISTRY",
    "UNCLASSIFIED",
    "BackgroundTimeoutError",
    "BufferFullError",
    "ConfigurationError",
    "ConnectorError",
    "CredentialsError",
    "DataSourceException",
    "DecodeError",
    "DeliveryError",
    "HTTPAuthError",
    "HTTPError",
    "IncorrectParamError",
    "MetadataNotSupportedException",
    "PanoplyError",
    "PanoplyException",
    "Phase",
    "RecordError",
    "RecordTooLargeError",
    "RecordTypeError",
    "SSHTunnelConfigError",
    "SSHTunnelError",
    "ScaffoldError",
    "SendError",
    "SpoolError",
    "StateFileError",
    "StreamError",
    "TokenValidationException",
    "WALError",
    "WALLockedError",
    "WALRecoveryError",
    "WrongTypeOrValueError",
    "code_for",
    "normalise",
    "set_internal_code",
    "wrap_errors",
]

# Tracebacks, reprs and pickles name the module users import from, not the private one.
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type) and issubclass(_value, BaseException):
        _value.__module__ = __name__
