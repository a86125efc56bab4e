"""moto's SQS as a WSGI app that routes every request to SQS, in one namespace per
server, and the threaded HTTP server that serves it (see :mod:`panoply_async.local`)."""

from __future__ import annotations

import contextlib
import re
import secrets
import socket
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer


#: The region of every namespace.
REGION = "us-east-1"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


# -- namespaces ----------------------------------------------------------------------

_accounts_lock = threading.Lock()
_accounts_in_use: set[str] = set()


def allocate_account() -> str:
    """A 12-digit moto account id no other live server in this process uses."""
    from moto.core.models import DEFAULT_ACCOUNT_ID

    with _accounts_lock:
        while True:
            account = f"{secrets.randbelow(10**12):012d}"
            if account != DEFAULT_ACCOUNT_ID and account not in _accounts_in_use:
                _accounts_in_use.add(account)
                return account


def release_account(account: str) -> None:
    """Forget everything moto holds for ``account``, so stopped servers free their memory."""
    from moto.iam.models import iam_backends
    from moto.sqs.models import sqs_backends

    # dict.pop, not del: BackendDict.__getitem__ would create the account to delete it.
    sqs_backends.pop(account, None)
    iam_backends.pop(account, None)  # moto records every account it sees in IAM
    with _accounts_lock:
        _accounts_in_use.discard(account)


# -- the WSGI side --------------------------------------------------------------------

_USER_AGENT_REGION = re.compile(r"\bregion/\S+")


def sqs_app(account: str) -> WSGIApp:
    """moto's SQS app with every request moved into the namespace ``(account, us-east-1)``."""
    from moto.moto_server.werkzeug_app import create_backend_app

    app: WSGIApp = create_backend_app("sqs")

    def one_namespace(
        environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        # moto reads the region from the signature and the account from the access key;
        # without them every request falls back to the region and header set here.
        # Nothing is lost: moto does not verify signatures anyway.
        environ.pop("HTTP_AUTHORIZATION", None)
        environ["HTTP_X_MOTO_ACCOUNT_ID"] = account
        user_agent = environ.get("HTTP_USER_AGENT")
        if user_agent:
            # moto would also take a region from a "region/..." token in the user agent.
            environ["HTTP_USER_AGENT"] = _USER_AGENT_REGION.sub("", user_agent)
        return app(environ, start_response)

    return one_namespace


class Connections:
    """The open client connections of one server, so that stop() can close them.

    Clients keep connections alive; without this, a stopped server would go on
    answering on them from its handler threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()

    def add(self, connection: socket.socket) -> None:
        with self._lock:
            self._open.add(connection)

    def discard(self, connection: socket.socket) -> None:
        with self._lock:
            self._open.discard(connection)

    def close_all(self) -> None:
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            with contextlib.suppress(OSError):  # the client may have closed it already
                connection.shutdown(socket.SHUT_RDWR)


def make_server(port: int, app: WSGIApp, connections: Connections) -> BaseWSGIServer:
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    class Handler(MotoRequestHandler):
        # Keep-alive, as real SQS: without it every request opens a new connection.
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            connections.add(self.connection)

        def finish(self) -> None:
            connections.discard(self.connection)
            super().finish()

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass  # one line per request on stderr drowns everything else

    # Only ever the loopback interface: this server has no authentication at all.
    server: BaseWSGIServer = make_server(
        "127.0.0.1", port, app, threaded=True, request_handler=Handler
    )
    return server

