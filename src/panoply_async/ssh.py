"""``SSHTunnel``: reach a database (or any TCP service) behind a bastion host.

::

    async with SSHTunnel(db_host, db_port, source["ssh_tunnel"]) as (host, port):
        connection = await asyncpg.connect(host=host, port=port, ...)

The ``ssh_tunnel`` dict has the legacy SDK's shape: ``active``, ``host``,
``port``, ``username``, ``password`` and/or ``privateKey`` (an RSA or Ed25519
key in OpenSSH or PEM form, without a passphrase). With ``active`` false the
tunnel does nothing and yields ``(host, port)`` unchanged. Needs the ``ssh``
extra (``pip install 'panoply-async[ssh]'``, which brings asyncssh).

Host keys: like the legacy helper, the server's host key is not checked unless
``known_hosts`` is given (a path, or the text of a known_hosts file); a warning
is logged once per process when it is not.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import anyio

from ._exceptions import PanoplyError

__all__ = ["SSHTunnel", "SSHTunnelConfigError", "SSHTunnelError"]

logger = logging.getLogger("panoply_async.ssh")
_warned_host_keys = False


class SSHTunnelConfigError(PanoplyError, ValueError):
    """The ``ssh_tunnel`` dict (or the target) is malformed; raised by the constructor."""


class SSHTunnelError(PanoplyError):
    """The tunnel could not be opened (connection, authentication, forwarding)."""


def _asyncssh() -> Any:
    try:
        import asyncssh
    except ImportError:  # pragma: no cover - the extra is installed in tests
        raise ImportError(
            "SSHTunnel needs asyncssh: install panoply-async[ssh]"
        ) from None
    return asyncssh


def _port(value: object, what: str) -> int:
    if isinstance(value, bool):
        raise SSHTunnelConfigError(f"{what} must be a number from 1 to 65535")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int):
        raise SSHTunnelConfigError(f"{what} must be a number from 1 to 65535, "
                                   f"not {type(value).__name__}")
    if not 1 <= value <= 65535:
        raise SSHTunnelConfigError(f"{what} {value} is out of range (1 to 65535)")
    return value


def _text(config: Mapping[str, Any], key: str) -> str:
    value = config.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise SSHTunnelConfigError(f"ssh_tunnel[{key!r}] is missing")
    if not isinstance(value, str):
        raise SSHTunnelConfigError(f"ssh_tunnel[{key!r}] must be a string, "
                                   f"not {type(value).__name__}")
    return value


class SSHTunnel:
    """Forward a local port on 127.0.0.1 to ``host:port`` through an SSH server.

    Validates ``ssh_tunnel`` at construction (:class:`SSHTunnelConfigError`);
    opens the SSH connection and the listener on entry (:class:`SSHTunnelError`)
    and closes both on exit, also on error or cancellation. Secrets never
    appear in its repr, its errors or its logs.
    """

    def __init__(
        self,
        host: str,
        port: int,
        ssh_tunnel: Mapping[str, Any],
        *,
        known_hosts: str | None = None,
        local_port: int = 0,
        connect_timeout: float = 30.0,
    ) -> None:
        if not isinstance(host, str) or not host.strip():
            raise SSHTunnelConfigError("the target host must be a non-empty string")
        self._target = (host, _port(port, "the target port"))
        if not isinstance(ssh_tunnel, Mapping):
            raise SSHTunnelConfigError(
                f"ssh_tunnel must be a dict, not {type(ssh_tunnel).__name__}"
            )
        active = ssh_tunnel.get("active", True)
        if not isinstance(active, bool):
            raise SSHTunnelConfigError("ssh_tunnel['active'] must be true or false")
        self.active = active
        self._known_hosts = known_hosts if known_hosts is not None else ssh_tunnel.get(
            "known_hosts"
        )
        self._local_port = 0 if local_port == 0 else _port(local_port, "local_port")
        self._timeout = connect_timeout
        self._connection: Any = None
        self._listener: Any = None
        self._key: Any = None
        self._password: str | None = None
        if not active:
            self._ssh = ("", 0)
            self._username = ""
            return
        self._ssh = (_text(ssh_tunnel, "host"), _port(ssh_tunnel.get("port", 22),
                                                       "ssh_tunnel['port']"))
        self._username = _text(ssh_tunnel, "username")
        password = ssh_tunnel.get("password")
        key_text = ssh_tunnel.get("privateKey")
        if password is not None and not isinstance(password, str):
            raise SSHTunnelConfigError("ssh_tunnel['password'] must be a string")
        if key_text is not None and not isinstance(key_text, str):
            raise SSHTunnelConfigError("ssh_tunnel['privateKey'] must be a string")
        if not password and not key_text:
            raise SSHTunnelConfigError(
                "ssh_tunnel needs a 'password' or a 'privateKey' to authenticate"
            )
        self._password = password or None
        if key_text:
            asyncssh = _asyncssh()
            try:
                self._key = asyncssh.import_private_key(key_text)
            except (asyncssh.KeyImportError, ValueError, TypeError):
                raise SSHTunnelConfigError(
                    "ssh_tunnel['privateKey'] is not a readable private key (an RSA or "
                    "Ed25519 key in OpenSSH or PEM form, without a passphrase, expected)"
                ) from None

    def __repr__(self) -> str:
        target = f"{self._target[0]}:{self._target[1]}"
        if not self.active:
            return f"SSHTunnel(inactive, target={target})"
        ssh = f"{self._username}@{self._ssh[0]}:{self._ssh[1]}"
        return f"SSHTunnel(ssh={ssh}, target={target})"

    async def __aenter__(self) -> tuple[str, int]:
        if not self.active:
            return self._target
        asyncssh = _asyncssh()
        global _warned_host_keys
        if self._known_hosts is None and not _warned_host_keys:
            _warned_host_keys = True
            logger.warning("SSH host keys are not checked (no known_hosts given)")
        ssh_host, ssh_port = self._ssh
        try:
            with anyio.fail_after(self._timeout):
                self._connection = await asyncssh.connect(
                    ssh_host,
                    ssh_port,
                    username=self._username,
                    password=self._password,
                    client_keys=[self._key] if self._key is not None else None,
                    known_hosts=self._known_hosts,
                    agent_path=None,
                    config=None,
                    preferred_auth="publickey,password"
                    if self._key is not None
                    else "password,keyboard-interactive",
                )
                self._listener = await self._connection.forward_local_port(
                    "127.0.0.1", self._local_port, *self._target
                )
        except BaseException as exc:
            await self._close()
            if isinstance(exc, asyncssh.PermissionDenied):
                raise SSHTunnelError(
                    f"SSH authentication to {ssh_host}:{ssh_port} as {self._username!r} failed"
                ) from None
            if isinstance(exc, TimeoutError):
                raise SSHTunnelError(
                    f"SSH connection to {ssh_host}:{ssh_port} timed out after {self._timeout}s"
                ) from None
            if isinstance(exc, (OSError, asyncssh.Error)):
                raise SSHTunnelError(
                    f"SSH tunnel through {ssh_host}:{ssh_port} failed: {type(exc).__name__}"
                ) from None
            raise
        return "127.0.0.1", int(self._listener.get_port())

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        listener, connection = self._listener, self._connection
        self._listener = self._connection = None
        with anyio.CancelScope(shield=True):
            if listener is not None:
                listener.close()
                await listener.wait_closed()
            if connection is not None:
                connection.close()
                await connection.wait_closed()
