"""``SSHTunnel``: reach a database (or any TCP service) behind an SSH bastion host.

Needs the ``ssh`` extra (``pip install 'panoply-async[ssh]'``, which brings asyncssh)
and an asyncio event loop. This module imports without asyncssh, so that docs, type
checking and inactive tunnels work without it; see ``SSHTunnel`` for the rest.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from .errors import SSHTunnelConfigError, SSHTunnelError

if TYPE_CHECKING:
    import asyncssh

__all__ = ["SSHTunnel", "SSHTunnelConfigError", "SSHTunnelError"]

from .connectors._ssh_config import (
    Secret,
    import_key,
    load_asyncssh,
    optional_secret,
    parse_known_hosts,
    parse_port,
    required_text,
)

logger = logging.getLogger("panoply_async.ssh")

_LOCAL_HOST = "127.0.0.1"
_DEFAULT_SSH_PORT = 22
# Bounds the polite close; past it the connection is aborted so that __aexit__
# never hangs on a server that stopped answering.
_CLOSE_TIMEOUT = 5.0

_host_key_warning_logged = False


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
        self._target = (host.strip(), parse_port(port, "the target port", digits_ok=False))
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
            local_port = parse_port(local_port, "local_port", digits_ok=False)
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
        self._password: Secret | None = None
        self._key: asyncssh.SSHKey | None = None
        self.known_hosts: asyncssh.SSHKnownHosts | None = None
        self._connection: asyncssh.SSHClientConnection | None = None
        self._listener: asyncssh.SSHListener | None = None
        self._local_address: tuple[str, int] | None = None
        self._in_use = False
        if not active:
            return  # an inactive dict keeps whatever stale values the UI left in it

        self._ssh_host = required_text(ssh_tunnel, "host").strip()
        ssh_port = ssh_tunnel.get("port")
        self._ssh_port = (
            _DEFAULT_SSH_PORT
            if ssh_port is None or ssh_port == ""
            else parse_port(ssh_port, "ssh_tunnel['port']", digits_ok=True)
        )
        self._username = required_text(ssh_tunnel, "username")
        password = optional_secret(ssh_tunnel, "password")
        key_text = optional_secret(ssh_tunnel, "privateKey")
        if password is None and key_text is None:
            raise SSHTunnelConfigError(
                "ssh_tunnel needs a 'password' or a 'privateKey' to log in with"
            )
        if key_text is not None:
            self._key = import_key(key_text, password)
        self._password = Secret(password) if password is not None else None
        if known_hosts is not None:
            self.known_hosts = parse_known_hosts(known_hosts, "known_hosts")
        else:
            self.known_hosts = parse_known_hosts(
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
        lib = load_asyncssh()
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
                    known_hosts=self.known_hosts,
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
        if self.known_hosts is None and not _host_key_warning_logged:
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
