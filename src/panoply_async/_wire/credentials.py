"""Panoply api key and secret -> account, region and SQS queue (DESIGN §1), given or
from the environment (read from a mapping the caller passes).

Pure: no I/O. Error messages describe which part is wrong without quoting any
part of the secret, because the secret's parts are themselves sensitive.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import ConfigurationError, CredentialsError

__all__ = [
    "APIKEY_VARIABLE",
    "APISECRET_VARIABLE",
    "ENDPOINT_VARIABLES",
    "Credentials",
    "parse_credentials",
    "resolve_credentials",
]

_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$")
_AWS_ACCOUNT = re.compile(r"^\d{12}$")
# SQS queue names: 1-80 characters, alphanumerics, hyphens and underscores.
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


@dataclass(frozen=True)
class Credentials:
    """Validated credentials and the queue they point to. The repr hides the secret."""

    apikey: str
    apisecret: str = field(repr=False)
    account: str
    region: str
    aws_account: str
    queue_name: str

    def queue_url(self, endpoint_url: str | None = None) -> str:
        """The queue URL on AWS, or the same path under ``endpoint_url``."""
        if endpoint_url is None:
            base = f"https://sqs.{self.region}.amazonaws.com"
        else:
            base = endpoint_url.rstrip("/")
        return f"{base}/{self.aws_account}/{self.queue_name}"

    def __repr__(self) -> str:
        return (
            f"Credentials(account={self.account!r}, region={self.region!r}, "
            f"aws_account={self.aws_account!r}, queue_name={self.queue_name!r}, apisecret='***')"
        )


def _text(value: object, what: str) -> str:
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("ascii")
        except UnicodeDecodeError:
            raise CredentialsError(f"{what} must be ASCII text") from None
    if not isinstance(value, str):
        raise CredentialsError(f"{what} must be str or bytes, not {type(value).__name__}")
    return value


def parse_credentials(apikey: str | bytes, apisecret: str | bytes) -> Credentials:
    """Validate ``apikey``/``apisecret`` and derive the target queue.

    Raises :class:`CredentialsError` (a ``ValueError``) naming what is wrong.
    """
    key = _text(apikey, "api key")
    if not key.strip():
        raise CredentialsError("api key is empty")
    if key != key.strip():
        # Stripping silently would send a key that differs from the one given;
        # a stray space or newline usually means the key was pasted or read wrongly.
        raise CredentialsError("api key has leading or trailing whitespace")
    if "/" not in key:
        raise CredentialsError("api key has no '/' (expected 'ACCOUNT/KEY')")
    account = key.split("/", 1)[0]
    if not account:
        raise CredentialsError("api key has an empty account part (expected 'ACCOUNT/...')")

    secret = _text(apisecret, "api secret").strip()
    if not secret:
        raise CredentialsError("api secret is empty")
    try:
        decoded = base64.b64decode(secret, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise CredentialsError("api secret is not valid base64 text") from None

    parts = decoded.split("/")
    if len(parts) != 4:
        raise CredentialsError(
            f"api secret decodes to {len(parts)} '/'-separated parts; "
            "expected 4 (RAND/UUID/AWS_ACCOUNT/REGION)"
        )
    rand2, _uuid, aws_account, region = parts
    if not rand2:
        raise CredentialsError("api secret has an empty queue suffix (its first part)")
    if not _AWS_ACCOUNT.match(aws_account):
        raise CredentialsError("api secret's AWS account id (third part) is not 12 digits")
    if not _REGION.match(region):
        raise CredentialsError(
            "api secret's region (fourth part) is not a valid AWS region name, "
            "such as 'us-east-1'"
        )
    queue_name = f"sdk-{account}-{rand2}"
    if not _QUEUE_NAME.match(queue_name):
        raise CredentialsError(
            "api key account and secret suffix do not form a valid SQS queue name "
            "(at most 80 letters, digits, '-' or '_')"
        )
    return Credentials(
        apikey=key,
        apisecret=secret,
        account=account,
        region=region,
        aws_account=aws_account,
        queue_name=queue_name,
    )


# -- from the environment ----------------------------------------------------------------

APIKEY_VARIABLE = "PANOPLY_APIKEY"
APISECRET_VARIABLE = "PANOPLY_APISECRET"
#: Where the endpoint comes from when none is given, first set (and non-empty) wins:
#: ours, then AWS's standard variables for the SQS endpoint and for every service.
ENDPOINT_VARIABLES = ("PANOPLY_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL")
#: botocore's switch to ignore the ``AWS_ENDPOINT_URL*`` variables; honoured likewise.
_IGNORE_AWS_ENDPOINTS = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"


def resolve_credentials(
    apikey: str | bytes | None,
    apisecret: str | bytes | None,
    endpoint_url: str | None,
    environ: Mapping[str, str],
) -> tuple[Credentials, str | None]:
    """Credentials and endpoint from the arguments, else from ``environ``.

    Each argument given (not ``None``) wins over its variable. A missing
    credential raises :class:`CredentialsError` naming the variables to set; a
    malformed endpoint variable raises :class:`ConfigurationError` naming it.
    Neither quotes a value (the secret, or a URL that may carry a password).
    """
    missing: list[tuple[str, str]] = []
    read: list[tuple[str, str]] = []
    if apikey is None:
        apikey = environ.get(APIKEY_VARIABLE) or None
        (read if apikey is not None else missing).append(("api key", APIKEY_VARIABLE))
    if apisecret is None:
        apisecret = environ.get(APISECRET_VARIABLE) or None
        (read if apisecret is not None else missing).append(("api secret", APISECRET_VARIABLE))
    if apikey is None or apisecret is None:
        what = " and ".join(name for name, _ in missing)
        variables = " and ".join(variable for _, variable in missing)
        raise CredentialsError(
            f"no {what}: pass {'them' if len(missing) > 1 else 'it'} to the constructor "
            f"or set {variables} in the environment"
        )
    try:
        credentials = parse_credentials(apikey, apisecret)
    except CredentialsError as exc:
        if not read:
            raise
        # Say where a bad value came from: the code shows none, the environment is elsewhere.
        variables = " and ".join(variable for _, variable in read)
        raise CredentialsError(f"{exc} (read from {variables})") from None
    return credentials, endpoint_url if endpoint_url is not None else _endpoint(environ)


def _endpoint(environ: Mapping[str, str]) -> str | None:
    ignore_aws = environ.get(_IGNORE_AWS_ENDPOINTS, "").strip().lower() == "true"
    for variable in ENDPOINT_VARIABLES:
        if ignore_aws and variable.startswith("AWS_"):
            continue
        value = environ.get(variable, "").strip()
        if not value:
            continue
        if not value.startswith(("http://", "https://")):
            raise ConfigurationError(f"{variable} must be an http:// or https:// URL")
        return value
    return None
