"""``SSHTunnel``: reach a database (or any TCP service) behind an SSH bastion host.

Needs the ``ssh`` extra (``pip install 'panoply-async[ssh]'``, which brings asyncssh)
and an asyncio event loop. This module imports without asyncssh, so that docs, type
checking and inactive tunnels work without it; see ``SSHTunnel`` for the rest.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from ._exceptions import PanoplyError
from .errors import IncorrectParamError

if TYPE_CHECKING:
    import asyncssh

__all__ = ["SSHTunnel", "SSHTunnelConfigError", "SSHTunnelError"]

logger = logging.getLogger("panoply_async.ssh")

_LOCAL_HOST = "127.0.0.1"
_DEFAULT_SSH_PORT = 22
# Bounds the polite close; past it the connection is aborted so that __aexit__
# never hangs on a server that stopped answering.
_CLOSE_TIMEOUT = 5.0

_host_key_warning_logged = False

_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)


class SSHTunnelConfigError(IncorrectParamError):
    """The ``ssh_tunnel`` dict or another constructor argument is malformed.

    Raised by the ``SSHTunnel`` constructor. It is an ``IncorrectParamError`` (what the
    legacy helper raised, so ``except IncorrectParamError`` keeps catching it) and a
    ``ValueError``. The message names the offending key and never quotes the password
    or the private key.
    """


class SSHTunnelError(PanoplyError):
    """The tunnel could not be opened: SSH server unreachable, login refused, host key
    not trusted, time-out. Raised when entering the ``async with`` block."""


class _Secret:
    """Holds a secret so that reprs of the tunnel's attributes (debuggers, rich
    tracebacks with locals) show ``***`` instead."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"


def _asyncssh() -> Any:
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


def _port(value: object, what: str, *, digits_ok: bool) -> int:
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


def _required_text(config: Mapping[str, Any], key: str) -> str:
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


def _optional_secret(config: Mapping[str, Any], key: str) -> str | None:
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


def _import_key(key_text: str, password: str | None) -> asyncssh.SSHKey:
    lib = _asyncssh()
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


def _known_hosts(value: object, what: str) -> asyncssh.SSHKnownHosts | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise SSHTunnelConfigError(
            f"{what} must be a path or the text of a known_hosts file, not {type(value).__name__}"
        )
    lib = _asyncssh()
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


class SSHTunnel:
    """Forward a local port on ``127.0.0.1`` to ``host:port`` through an SSH server.

    ```python
    from panoply_async.ssh import SSHTunnel

    async with SSHTunnel(source["host"], source["port"], source["ssh_tunnel"]) as (host, port):
        connection = await asyncpg.connect(host=host, port=port, ...)
    ```

    The ``ssh_tunnel`` dict keeps the legacy SDK's shape:

    * ``active``: ``True`` to tunnel. ``False`` makes the tunnel a no-op whose block gets
      the target ``(host, port)`` unchanged; ``ssh_tunnel=None`` or ``{}`` mean the same.
      Required in a non-empty dict.
    * ``host``, ``port``: the SSH server. ``port`` defaults to 22 and may be a string of
      digits (the legacy SDK ran ``int()`` on it).
    * ``username``: the SSH user.
    * ``password``: password authentication, and the passphrase of an encrypted
      ``privateKey`` (as in the legacy SDK).
    * ``privateKey``: the text of a private key, RSA or Ed25519, OpenSSH or PEM. Line
      breaks that were flattened to spaces, removed or escaped as ``\\n`` are repaired.
    * ``known_hosts``: optional, as the argument below. Other keys are ignored.

    At least one of ``password`` and ``privateKey`` is needed; with both, the key is
    tried first. Nothing else is used: no ``~/.ssh/config``, default keys or agent.

    The constructor checks everything and raises ``SSHTunnelConfigError`` naming the
    problem. Entering the block connects and logs in to the SSH server and opens the
    local listener, or raises ``SSHTunnelError`` (a wrong password fails at once: no
    retry, no hang). Leaving the block, normally, by an error or by cancellation,
    closes the listener and the SSH connection; connections still open through the
    tunnel are cut. One instance opens one tunnel at a time and can be entered again.

    The target ``host`` is resolved by the SSH server, so ``"127.0.0.1"`` means the
    server itself. A target that the server cannot reach shows only when a client
    connects through the tunnel: that connection is closed at once.

    **Host keys.** The legacy helper never checked the SSH server's host key, so a man
    in the middle could pose as the bastion; by default neither does this one, and it
    logs a warning (once per process) saying so. Pass ``known_hosts`` to check it.
    Entries for a server on a port other than 22 are written ``[host]:port``.

    **Secrets.** The password and the key never appear in the repr, in the messages of
    the errors raised, or in what this module logs. (asyncssh's packet dumps, at
    ``asyncssh.set_debug_level(3)``, do show passwords, as asyncssh documents.)

    **From the legacy ``panoply.ssh.SSHTunnel``:** it raised when ``active`` was false,
    and by default (``platform_ssh=True``) opened nothing at all (here the default is
    ``False``); it required
    ``privateKey`` even with a password; ``with`` gave the ``sshtunnel`` server object;
    it wrote ``int(port)`` back into the caller's dict. Here ``active: False`` is a
    pass-through, either credential is enough, the block gets
    ``(local_host, local_port)``, and the dict is left alone.

    :param host: the target host, as seen from the SSH server.
    :param port: the target port, 1 to 65535.
    :param ssh_tunnel: the legacy ``ssh_tunnel`` dict described above.
    :param platform_ssh: the legacy fourth argument: ``True`` when the platform
        running the connector opens the tunnel itself, which makes this one a
        pass-through like ``active: False`` (nothing in the dict beyond ``active`` is
        checked, and asyncssh is not needed). Default ``False``: tunnel when ``active``.
        (The legacy helper defaulted to ``True``; ``panoply_async.compat.SSHTunnel``
        keeps that default.)
    :param known_hosts: the path of a known_hosts file, or its text, to check the SSH
        server's host key against; overrides ``ssh_tunnel['known_hosts']``. Without
        either, any host key is accepted.
    :param local_port: the local port to listen on; 0 (the default) picks a free one.
    :param connect_timeout: seconds allowed for connecting, logging in and opening
        the listener.
    :raises SSHTunnelConfigError: a malformed argument or ``ssh_tunnel`` dict.
    :raises ImportError: a private key or ``known_hosts`` is given and asyncssh is not
        installed (for a password-only tunnel, this is raised on entry instead).
    """

    def __init__(
        self,
        host: str,
        port: int,
        ssh_tunnel: Mapping[str, Any] | None,
        platform_ssh: bool = False,
        *,
        known_hosts: str | os.PathLike[str] | None = None,
        local_port: int = 0,
        connect_timeout: float = 30.0,
    ) -> None:
        if not isinstance(host, str) or not host.strip():
            raise SSHTunnelConfigError("the target host must be a non-empty string")
        self._target = (host.strip(), _port(port, "the target port", digits_ok=False))
        if ssh_tunnel is None:
            ssh_tunnel = {}
        if not isinstance(ssh_tunnel, Mapping):
            raise SSHTunnelConfigError(
                f"ssh_tunnel must be a dict, not {type(ssh_tunnel).__name__}"
            )
        if ssh_tunnel and "active" not in ssh_tunnel:
            raise SSHTunnelConfigError("ssh_tunnel['active'] is missing (true or false)")
        active = ssh_tunnel.get("active", False)
        if not isinstance(active, bool):
            raise SSHTunnelConfigError(
                f"ssh_tunnel['active'] must be true or false, not {type(active).__name__}"
            )
        if not isinstance(platform_ssh, bool):
            raise SSHTunnelConfigError(
                f"platform_ssh must be true or false, not {type(platform_ssh).__name__}"
            )
        # The platform opens the tunnel itself: nothing to do here, as inactive.
        active = active and not platform_ssh
        if local_port != 0:
            local_port = _port(local_port, "local_port", digits_ok=False)
        if (
            isinstance(connect_timeout, bool)
            or not isinstance(connect_timeout, (int, float))
            or not connect_timeout > 0
        ):
            raise SSHTunnelConfigError("connect_timeout must be a positive number of seconds")

        self._active = active
        self._local_port = local_port
        self._connect_timeout = float(connect_timeout)
        self._ssh_host = ""
        self._ssh_port = 0
        self._username = ""
        self._password: _Secret | None = None
        self._key: asyncssh.SSHKey | None = None
        self._known_hosts: asyncssh.SSHKnownHosts | None = None
        self._connection: asyncssh.SSHClientConnection | None = None
        self._listener: asyncssh.SSHListener | None = None
        self._local_address: tuple[str, int] | None = None
        self._in_use = False
        if not active:
            return  # an inactive dict keeps whatever stale values the UI left in it

        self._ssh_host = _required_text(ssh_tunnel, "host").strip()
        ssh_port = ssh_tunnel.get("port")
        self._ssh_port = (
            _DEFAULT_SSH_PORT
            if ssh_port is None or ssh_port == ""
            else _port(ssh_port, "ssh_tunnel['port']", digits_ok=True)
        )
        self._username = _required_text(ssh_tunnel, "username")
        password = _optional_secret(ssh_tunnel, "password")
        key_text = _optional_secret(ssh_tunnel, "privateKey")
        if password is None and key_text is None:
            raise SSHTunnelConfigError(
                "ssh_tunnel needs a 'password' or a 'privateKey' to log in with"
            )
        if key_text is not None:
            self._key = _import_key(key_text, password)
        self._password = _Secret(password) if password is not None else None
        if known_hosts is not None:
            self._known_hosts = _known_hosts(known_hosts, "known_hosts")
        else:
            self._known_hosts = _known_hosts(
                ssh_tunnel.get("known_hosts"), "ssh_tunnel['known_hosts']"
            )

    @property
    def active(self) -> bool:
        """``False`` when the tunnel is a pass-through (``active`` false in the dict)."""
        return self._active

    @property
    def local_address(self) -> tuple[str, int] | None:
        """The ``(host, port)`` to connect to while the tunnel is open, else ``None``.

        For an inactive tunnel, the target itself while inside the block.
        """
        return self._local_address

    def __repr__(self) -> str:
        target = f"{self._target[0]}:{self._target[1]}"
        if not self._active:
            return f"SSHTunnel(inactive, target={target})"
        auth = "+".join(
            name
            for name, present in (("key", self._key), ("password", self._password))
            if present is not None
        )
        state = "open" if self._local_address else "closed"
        return (
            f"SSHTunnel(ssh={self._username}@{self._ssh_host}:{self._ssh_port}, "
            f"target={target}, auth={auth}, {state})"
        )

    async def __aenter__(self) -> tuple[str, int]:
        if self._in_use:
            raise RuntimeError(f"{self!r} is already open")
        if not self._active:
            self._in_use = True
            self._local_address = self._target
            return self._target
        lib = _asyncssh()
        self._in_use = True
        self._warn_unchecked_host_key()
        where = f"{self._ssh_host}:{self._ssh_port}"
        try:
            with anyio.fail_after(self._connect_timeout):
                self._connection = await lib.connect(
                    self._ssh_host,
                    self._ssh_port,
                    username=self._username,
                    password=self._password.reveal() if self._password else None,
                    client_keys=[self._key] if self._key is not None else None,
                    known_hosts=self._known_hosts,
                    # Only the credentials given: no ~/.ssh/config, default keys,
                    # agent or Kerberos, which would make behaviour depend on the host.
                    config=None,
                    agent_path=None,
                    gss_host=None,
                    preferred_auth=self._preferred_auth(),
                )
                self._listener = await self._connection.forward_local_port(
                    _LOCAL_HOST, self._local_port, *self._target
                )
        except BaseException as exc:
            logged_in = self._connection is not None
            await self._close()
            error = self._entry_error(exc, lib, where, logged_in=logged_in)
            if error is None:
                raise
            raise error from exc
        assert self._listener is not None  # set above; for the type checker
        self._local_address = (_LOCAL_HOST, self._listener.get_port())
        logger.info(
            "SSH tunnel open: %s:%d -> %s:%d via %s@%s",
            *self._local_address,
            *self._target,
            self._username,
            where,
        )
        return self._local_address

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    def _preferred_auth(self) -> str:
        methods = []
        if self._key is not None:
            methods.append("publickey")
        if self._password is not None:
            methods += ["password", "keyboard-interactive"]
        return ",".join(methods)

    def _warn_unchecked_host_key(self) -> None:
        global _host_key_warning_logged
        if self._known_hosts is None and not _host_key_warning_logged:
            _host_key_warning_logged = True
            logger.warning(
                "SSH host keys are not checked (as in the legacy SDK): pass known_hosts to "
                "SSHTunnel, or set ssh_tunnel['known_hosts'], to verify the SSH server "
                "(logged once)"
            )

    def _entry_error(
        self, exc: BaseException, lib: Any, where: str, *, logged_in: bool
    ) -> SSHTunnelError | None:
        """The error to raise for a failure on entry; ``None`` to re-raise it as is."""
        if logged_in and isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
            return SSHTunnelError(
                f"cannot listen on {_LOCAL_HOST}:{self._local_port} for the SSH tunnel "
                f"through {where}: {self._scrub(exc)}"
            )
        if isinstance(exc, lib.PermissionDenied):
            return SSHTunnelError(
                f"SSH login to {where} as {self._username!r} was refused (wrong password, "
                "or the key is not authorised there)"
            )
        if isinstance(exc, lib.HostKeyNotVerifiable):
            return SSHTunnelError(
                f"the host key of SSH server {where} is not trusted by known_hosts"
            )
        if isinstance(exc, TimeoutError):
            return SSHTunnelError(
                f"SSH connection to {where} timed out after {self._connect_timeout:g}s"
            )
        if isinstance(exc, OSError):
            return SSHTunnelError(f"cannot connect to SSH server {where}: {self._scrub(exc)}")
        if isinstance(exc, (lib.Error, ValueError)):
            # ValueError: asyncssh refusing its options, e.g. "Unknown local username"
            # when the process's uid has no passwd entry (some container platforms).
            return SSHTunnelError(f"SSH connection to {where} failed: {self._scrub(exc)}")
        return None  # cancellation, and bugs, stay what they are

    def _scrub(self, exc: BaseException) -> str:
        # These messages come from the network and from asyncssh, not from our
        # inputs, but a hostile server can echo anything back.
        text = f"{type(exc).__name__}: {exc}"
        if self._password is not None:
            text = text.replace(self._password.reveal(), "***")
        return text

    async def _close(self) -> None:
        listener, connection = self._listener, self._connection
        self._listener = self._connection = None
        self._local_address = None
        self._in_use = False
        # Shielded: closing must finish even when we are here because of a cancellation.
        with anyio.CancelScope(shield=True):
            if listener is not None:
                listener.close()
                with anyio.move_on_after(_CLOSE_TIMEOUT):
                    await listener.wait_closed()
            if connection is not None:
                connection.close()
                with anyio.move_on_after(_CLOSE_TIMEOUT) as scope:
                    await connection.wait_closed()
                if scope.cancelled_caught:
                    connection.abort()
                logger.debug("SSH tunnel via %s:%d closed", self._ssh_host, self._ssh_port)
