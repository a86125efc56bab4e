"""Reading an SSH tunnel's configuration: ports, secrets, private keys in the forms
legacy connectors store them, and known hosts. Pure except for importing asyncssh."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import SSHTunnelConfigError

if TYPE_CHECKING:
    import asyncssh


_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)


class Secret:
    """Holds a secret so that reprs of the tunnel's attributes (debuggers, rich
    tracebacks with locals) show ``***`` instead."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"


def load_asyncssh() -> Any:
    # Imported on use: asyncssh is the optional `ssh` extra and this module must
    # import (for docs, type checking, inactive tunnels) without it.
    try:
        import asyncssh
    except ImportError:
        raise ImportError(
            "SSHTunnel needs asyncssh: install panoply-async[ssh] (pip install "
            "'panoply-async[ssh]')"
        ) from None
    return asyncssh


def parse_port(value: object, what: str, *, digits_ok: bool) -> int:
    # The legacy SDK ran int() on the SSH port, so strings of digits from the UI's
    # JSON were accepted there; the target port was always an int.
    if digits_ok and isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise SSHTunnelConfigError(
            f"{what} must be an integer from 1 to 65535, not {type(value).__name__}"
        )
    if not 1 <= value <= 65535:
        raise SSHTunnelConfigError(f"{what} {value} is out of range (1 to 65535)")
    return value


def required_text(config: Mapping[str, Any], key: str) -> str:
    if key not in config or config[key] is None:
        raise SSHTunnelConfigError(f"ssh_tunnel[{key!r}] is missing")
    value = config[key]
    if not isinstance(value, str):
        raise SSHTunnelConfigError(
            f"ssh_tunnel[{key!r}] must be a string, not {type(value).__name__}"
        )
    if not value.strip():
        raise SSHTunnelConfigError(f"ssh_tunnel[{key!r}] is missing (empty)")
    return value


def optional_secret(config: Mapping[str, Any], key: str) -> str | None:
    value = config.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        # The type name only: the value itself may be the secret.
        raise SSHTunnelConfigError(
            f"ssh_tunnel[{key!r}] must be a string, not {type(value).__name__}"
        )
    return value


def _repair_key_text(text: str) -> str:
    """Undo the usual damage done to key text pasted into a form or a JSON string."""
    text = text.strip().replace("\r\n", "\n")
    if "\n" not in text and "\\n" in text:
        text = text.replace("\\n", "\n")
    match = _PEM.search(text)
    if match is None:
        return text
    label, body = match.group(1), match.group(2)
    if ":" in body:
        # Encrypted PKCS#1 has "Proc-Type:"/"DEK-Info:" header lines whose line
        # structure matters; only strip indentation.
        lines = [line.strip() for line in body.strip().split("\n")]
        body_text = "\n".join(lines)
    else:
        # Base64 ignores where the lines break, so rewrap the words at 64 columns.
        joined = "".join(body.split())
        body_text = "\n".join(joined[i : i + 64] for i in range(0, len(joined), 64))
    return f"-----BEGIN {label}-----\n{body_text}\n-----END {label}-----\n"


def import_key(key_text: str, password: str | None) -> asyncssh.SSHKey:
    lib = load_asyncssh()
    if "PUBLIC KEY" in key_text or re.match(r"\s*(ssh|ecdsa-sha2)-[\w-]+\s+AAAA", key_text):
        raise SSHTunnelConfigError(
            "ssh_tunnel['privateKey'] holds a public key; it must be the private key"
        )
    if "-----BEGIN" not in key_text:
        raise SSHTunnelConfigError(
            "ssh_tunnel['privateKey'] is not a private key: no '-----BEGIN ... "
            "PRIVATE KEY-----' line"
        )
    candidates = [key_text]
    repaired = _repair_key_text(key_text)
    if repaired != key_text:
        candidates.append(repaired)
    reason = ""
    for text in candidates:
        try:
            return _import_one(lib, text, password)
        except (ValueError, TypeError) as exc:  # KeyImportError, KeyEncryptionError
            reason = str(exc)
        except re.error:
            # asyncssh makes a regex of the BEGIN line: a key flattened to one line
            # whose base64 holds "++" is not even a pattern. The repair comes next.
            reason = "unreadable key data"
    # asyncssh's key errors are fixed phrases, but a reason is never allowed to
    # carry the inputs, whatever a future version puts in it.
    if password and password in reason:
        reason = reason.replace(password, "***")
    if len(reason) > 120 or any(line in reason for line in key_text.split() if len(line) > 16):
        reason = "unreadable key data"
    if "Passphrase must be specified" in reason:
        raise SSHTunnelConfigError(
            "ssh_tunnel['privateKey'] is encrypted and no 'password' was given to use as "
            "its passphrase"
        )
    if "decrypt" in reason or "Incorrect passphrase" in reason:
        raise SSHTunnelConfigError(
            "ssh_tunnel['privateKey'] is encrypted and ssh_tunnel['password'] is not its passphrase"
        )
    raise SSHTunnelConfigError(
        f"ssh_tunnel['privateKey'] is not a readable private key ({reason}); expected an "
        "RSA or Ed25519 key in OpenSSH or PEM form"
    )


def _import_one(lib: Any, text: str, password: str | None) -> asyncssh.SSHKey:
    try:
        key: asyncssh.SSHKey = lib.import_private_key(text)
    except lib.KeyImportError as exc:
        # The legacy SDK used the password as the key's passphrase too.
        if "Passphrase must be specified" not in str(exc) or not password:
            raise
        key = lib.import_private_key(text, passphrase=password)
    return key


def parse_known_hosts(value: object, what: str) -> asyncssh.SSHKnownHosts | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise SSHTunnelConfigError(
            f"{what} must be a path or the text of a known_hosts file, not {type(value).__name__}"
        )
    lib = load_asyncssh()
    text = value
    # A known_hosts line always has whitespace ("host keytype base64"); a path
    # without any is taken as a path.
    if os.path.isfile(value) or not any(ch.isspace() for ch in value.strip()):
        try:
            with open(value, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise SSHTunnelConfigError(
                f"{what}: cannot read known_hosts file {value!r} ({type(exc).__name__})"
            ) from None
    entries = [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    if not entries:
        raise SSHTunnelConfigError(f"{what} has no entries, so no host key could be trusted")
    try:
        known: asyncssh.SSHKnownHosts = lib.import_known_hosts(text)
    except (ValueError, TypeError) as exc:
        # Host keys are public, so quoting the bad entry is safe and helps.
        raise SSHTunnelConfigError(f"{what} is not valid known_hosts data: {exc}") from None
    return known

