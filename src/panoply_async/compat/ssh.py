"""The legacy ``panoply.ssh.SSHTunnel``, a blocking face of :class:`panoply_async.ssh.SSHTunnel`.

``SSHTunnel(host, port, ssh_tunnel, platform_ssh=True)`` as in the legacy SDK:

* ``platform_ssh=True`` (the legacy default): the platform opens the tunnel itself;
  nothing is opened here, ``server`` is ``None`` and nothing beyond the port and the
  dict's ``active`` key is checked (no need for the ``ssh`` extra);
* ``platform_ssh=False`` with ``active`` true: the tunnel is opened by the constructor,
  on a background thread with its own event loop, and ``server`` is an object with the
  attributes of the legacy ``sshtunnel`` forwarder that connectors use
  (``local_bind_host``, ``local_bind_port``, ``local_bind_address``, ``is_active``,
  ``stop()``); ``with SSHTunnel(...) as server:`` closes it at the end of the block;
* ``active`` false is a pass-through (the legacy helper raised): ``server`` is ``None``.

Bad arguments raise :class:`~panoply_async.ssh.SSHTunnelConfigError`, an
``IncorrectParamError``, with the legacy messages for a bad port (``Port should be in
range [0: 65535]``) and a dict without ``active``. The object also works as the async
context manager of :class:`panoply_async.ssh.SSHTunnel`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import anyio
import anyio.to_thread

from .. import ssh as _ssh
from ..ssh import SSHTunnelConfigError, SSHTunnelError

__all__ = ["SSHTunnel", "SSHTunnelConfigError", "SSHTunnelError"]

# Bounds stop(): the tunnel's own close is bounded too (ssh._CLOSE_TIMEOUT, twice).
_STOP_TIMEOUT = 15.0


class _Forwarder:
    """The open tunnel, shaped like the legacy ``sshtunnel.SSHTunnelForwarder``.

    Its event loop runs on a daemon thread that holds the tunnel open until
    :meth:`stop`.
    """

    def __init__(self, tunnel: _ssh.SSHTunnel) -> None:
        self._tunnel = tunnel
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._address: tuple[str, int] | None = None

    def start(self) -> None:
        """Open the tunnel; raises what opening it raised (``SSHTunnelError``...)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._main, name="panoply-ssh-tunnel",
                                        daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            self._thread = None
            error, self._error = self._error, None
            raise error

    def _main(self) -> None:
        async def serve() -> None:
            try:
                async with self._tunnel as address:
                    self._address = address
                    self._ready.set()
                    await anyio.to_thread.run_sync(self._stopping.wait)
            except BaseException as exc:  # handed to start(), in the caller's thread
                self._error = exc
            finally:
                self._address = None
                self._ready.set()

        anyio.run(serve)

    def stop(self) -> None:
        """Close the tunnel and the SSH connection (idempotent)."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        thread.join(_STOP_TIMEOUT)
        self._thread = None

    close = stop

    @property
    def is_active(self) -> bool:
        return self._address is not None

    @property
    def local_bind_address(self) -> tuple[str, int]:
        if self._address is None:
            raise SSHTunnelError("the SSH tunnel is not open")
        return self._address

    @property
    def local_bind_host(self) -> str:
        return self.local_bind_address[0]

    @property
    def local_bind_port(self) -> int:
        return self.local_bind_address[1]

    def __repr__(self) -> str:
        return f"<SSH tunnel forwarder of {self._tunnel!r}>"


class SSHTunnel(_ssh.SSHTunnel):
    """``SSHTunnel(host, port, ssh_tunnel, platform_ssh=True, **options)``: see the module.

    ``options`` are the keyword arguments of :class:`panoply_async.ssh.SSHTunnel`
    (``known_hosts``, ``local_port``, ``connect_timeout``).
    """

    def __init__(
        self,
        host: str,
        port: int,
        ssh_tunnel: Mapping[str, Any],
        platform_ssh: bool = True,
        **options: Any,
    ) -> None:
        # The legacy checks, with the legacy messages, before the stricter ones.
        if isinstance(port, bool) or not isinstance(port, int):
            raise SSHTunnelConfigError("Port should be instance of `int`")
        if port < 0 or port > 65535:
            raise SSHTunnelConfigError("Port should be in range [0: 65535]")
        if not isinstance(ssh_tunnel, Mapping):
            raise SSHTunnelConfigError("SSH tunnel should be `dict` object")
        if "active" not in ssh_tunnel:
            raise SSHTunnelConfigError("SSH tunnel object should contain `active` property")
        super().__init__(host, port, ssh_tunnel, platform_ssh, **options)
        self.host = host
        self.tunnel: dict[str, Any] = dict(ssh_tunnel)
        self._server: _Forwarder | None = None
        if self.active:
            server = _Forwarder(self)
            server.start()
            self._server = server

    @property
    def port(self) -> int:
        """The target port."""
        return self._target[1]

    @property
    def server(self) -> _Forwarder | None:
        """The open tunnel (see the module), or ``None`` when nothing was opened."""
        return self._server

    def __enter__(self) -> _Forwarder | None:
        return self._server

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.stop()

    def __str__(self) -> str:
        return f"SSH tunnel to {self.tunnel.get('host')}, for user {self.tunnel.get('username')}"
