"""An embedded local SQS server (moto) for the demo, tests, benchmarks and development.

``LocalSQS`` serves moto's SQS on 127.0.0.1 (a free port by default) in a
background thread; ``python -m panoply_async.local`` serves it in a process of
its own. Out of the box, moto would not work for this SDK, for two reasons:

* **Routing.** moto's server picks the AWS service from a request's signature
  (its credential scope) or a handful of known unsigned targets. An unsigned
  SQS request has no credential scope and ``AmazonSQS`` is not among moto's
  unsigned targets, so it is answered as S3. This server serves SQS only, so
  every request reaches SQS, signed or not.
* **Namespaces.** moto keeps queues per (account, region). It takes the region
  from the signature (``us-east-1`` when unsigned) and the account from the
  ``x-moto-account-id`` header, else from the access key (moto's default
  account for any key it does not know). It never looks at the account in a
  queue URL's path, only at the queue name at its end. So a queue created
  signed for ``eu-west-1`` would be invisible to unsigned requests, and vice
  versa. This server therefore puts every request it receives in one
  namespace of its own: a 12-digit account id allocated per ``LocalSQS``
  instance, region ``us-east-1``. Any Panoply credentials (any AWS account,
  any region) reach their queue, signed or unsigned, and two servers in one
  process do not see each other's queues. Within one server, queues are told
  apart by name only (``sdk-ACCOUNT-RAND2``), as moto does.

moto's state is global to the process; the per-instance account is what
isolates servers. Setting ``MOTO_ACCOUNT_ID`` in the environment overrides it
and makes all servers share one namespace.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import signal
import stat
import string
import sys
import threading
import time
import uuid
from base64 import b64encode
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio
import anyio.to_thread

from ._local.client import botocore_client, delete_messages, poll_seconds
from ._local.server import (
    Connections,
    allocate_account,
    make_server,
    release_account,
    sqs_app,
)
from ._wire.credentials import parse_credentials

__all__ = [
    "DEFAULT_PORT", "LocalSQS", "ReceivedMessage", "export_lines", "local_credentials", "main",
    "make_credentials",
]

_ALPHABET = string.ascii_letters + string.digits
#: Long enough that a message being received is not redelivered before it is deleted.
_RECEIVE_VISIBILITY_SECONDS = 60
_SHUTDOWN_POLL_SECONDS = 0.05


def make_credentials(
    account: str = "demo", *, aws_account: str = "123456789012", region: str = "us-east-1"
) -> tuple[str, str]:
    """A fresh, random, valid ``(apikey, apisecret)`` pair for local servers and tests.

    The api key is ``ACCOUNT/RAND1``; the secret is base64 of
    ``RAND2/UUID/AWS_ACCOUNT/REGION`` (DESIGN §1). ``RAND2`` names the queue,
    so every call points to a queue of its own.
    """
    rand1 = _random_token(16)
    rand2 = _random_token(12)
    apikey = f"{account}/{rand1}"
    apisecret = b64encode(f"{rand2}/{uuid.uuid4()}/{aws_account}/{region}".encode()).decode()
    # Refuse to hand out credentials the SDK itself would refuse (bad account or region).
    parse_credentials(apikey, apisecret)
    return apikey, apisecret


def local_credentials() -> tuple[str, str]:
    """The development credentials ``panoply-async local`` and ``tail --local`` print.

    Fixed, unlike :func:`make_credentials`, so that the ``export`` lines stay valid
    across restarts of the server (they may live in a ``.env`` file). They name
    a made-up AWS account and reach a queue only on a local server.
    """
    secret = b64encode(b"localdev/00000000-0000-4000-8000-000000000000/000000000000/us-east-1")
    return "local/development", secret.decode()


def _random_token(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


@dataclass(frozen=True)
class ReceivedMessage:
    """A message read back from a local server."""

    body: str
    #: message attribute name -> its ``StringValue`` (binary attributes are left out)
    attributes: dict[str, str]
    #: the size SQS counts against its limit: UTF-8 body plus, per message
    #: attribute, its name, data type and value, in bytes
    size: int


def _received_message(message: Mapping[str, Any]) -> ReceivedMessage:
    body: str = message["Body"]
    raw_attributes: Mapping[str, Mapping[str, Any]] = message.get("MessageAttributes", {})
    attributes = {
        name: value["StringValue"]
        for name, value in raw_attributes.items()
        if "StringValue" in value
    }
    return ReceivedMessage(body, attributes, _message_size(body, raw_attributes))


def _message_size(body: str, attributes: Mapping[str, Mapping[str, Any]]) -> int:
    size = len(body.encode("utf-8"))
    for name, value in attributes.items():
        size += len(name.encode("utf-8")) + len(str(value.get("DataType", "")).encode("utf-8"))
        if "StringValue" in value:
            size += len(str(value["StringValue"]).encode("utf-8"))
        elif "BinaryValue" in value:
            size += len(value["BinaryValue"])
    return size


# -- the server -----------------------------------------------------------------------


class _Running:
    """What exists only while a LocalSQS runs."""

    def __init__(self, port: int) -> None:
        self.account = allocate_account()
        try:
            self.connections = Connections()
            self.server = make_server(port, sqs_app(self.account), self.connections)
        except BaseException:
            release_account(self.account)
            raise
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            # shutdown() waits for the loop to notice; the default 0.5 s makes every stop slow.
            kwargs={"poll_interval": _SHUTDOWN_POLL_SECONDS},
            name="panoply-local-sqs",
            daemon=True,
        )
        self.thread.start()
        self.client: Any = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        self.server.shutdown()
        self.server.server_close()
        self.connections.close_all()
        self.thread.join()
        release_account(self.account)


class LocalSQS:
    """moto's SQS served on ``127.0.0.1`` in a background thread.

    Use ``with LocalSQS() as server:``, ``async with LocalSQS() as server:``
    (start and stop then run in a worker thread, off the event loop), or call
    :meth:`start` and :meth:`stop`. ``port=0`` (the default) picks a free
    port; :attr:`endpoint_url` tells which. Signed and unsigned requests are
    both served; each instance has queues of its own (see the module docstring).
    """

    def __init__(self, *, port: int = 0) -> None:
        self._port = port
        self._lock = threading.Lock()
        self._running: _Running | None = None

    def __repr__(self) -> str:
        running = self._running
        return f"LocalSQS({running.endpoint_url if running else 'stopped'})"

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT``; raises ``RuntimeError`` when not running."""
        return self._require_running().endpoint_url

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._running is not None

    def _require_running(self) -> _Running:
        running = self._running
        if running is None:
            raise RuntimeError("LocalSQS is not running; call start() first")
        return running

    def start(self) -> LocalSQS:
        """Start serving (no-op when already running); returns ``self``."""
        with self._lock:
            if self._running is None:
                self._running = _Running(self._port)
        return self

    def stop(self) -> None:
        """Stop serving, close the port and drop this server's queues. Idempotent."""
        with self._lock:
            running, self._running = self._running, None
        if running is not None:
            running.stop()

    def __enter__(self) -> LocalSQS:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> LocalSQS:
        await anyio.to_thread.run_sync(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Stop even when cancelled, or the thread and port would outlive the block.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.stop)

    # -- queues -----------------------------------------------------------------------

    def _client(self) -> Any:
        """A sync botocore client for this server, made on first use."""
        with self._lock:
            running = self._require_running()
            if running.client is None:
                running.client = botocore_client(running.endpoint_url)
            return running.client

    def queue_url(self, apikey: str | bytes, apisecret: str | bytes) -> str:
        """The URL on this server of the queue the credentials point to."""
        return parse_credentials(apikey, apisecret).queue_url(self.endpoint_url)

    def create_queue(self, apikey: str | bytes, apisecret: str | bytes) -> str:
        """Create the queue the credentials point to; returns its URL on this server.

        The URL is ``{endpoint_url}/{AWS_ACCOUNT}/sdk-{ACCOUNT}-{RAND2}``. Creating
        a queue that exists already is fine.
        """
        credentials = parse_credentials(apikey, apisecret)
        self._client().create_queue(QueueName=credentials.queue_name)
        return credentials.queue_url(self.endpoint_url)

    def receive(
        self, queue_url: str, *, max_messages: int | None = None, wait_seconds: float = 0
    ) -> list[ReceivedMessage]:
        """Receive and delete the messages in the queue.

        Without ``max_messages``: everything there now, or, if the queue is empty,
        whatever arrives first within ``wait_seconds``. With ``max_messages``: at
        most that many, waiting up to ``wait_seconds`` in total for them to arrive.
        """
        client = self._client()
        deadline = time.monotonic() + wait_seconds
        received: list[ReceivedMessage] = []
        while max_messages is None or len(received) < max_messages:
            want_more = max_messages is not None or not received
            remaining = deadline - time.monotonic()
            wait = poll_seconds(remaining) if want_more else 0
            batch = 10 if max_messages is None else min(10, max_messages - len(received))
            messages = client.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=batch,
                MessageAttributeNames=["All"],
                VisibilityTimeout=_RECEIVE_VISIBILITY_SECONDS,
                WaitTimeSeconds=wait,
            ).get("Messages", [])
            if messages:
                received.extend(_received_message(message) for message in messages)
                delete_messages(client, queue_url, messages)
            elif not want_more or deadline <= time.monotonic():
                break
        return received

    async def areceive(
        self, queue_url: str, *, max_messages: int | None = None, wait_seconds: float = 0
    ) -> list[ReceivedMessage]:
        """:meth:`receive` in a worker thread, so the event loop keeps running."""

        def receive() -> list[ReceivedMessage]:
            return self.receive(queue_url, max_messages=max_messages, wait_seconds=wait_seconds)

        return await anyio.to_thread.run_sync(receive)

    def count(self, queue_url: str) -> int:
        """Approximate number of visible messages in the queue (for debugging)."""
        response = self._client().get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(response["Attributes"]["ApproximateNumberOfMessages"])


# -- command line ---------------------------------------------------------------------


#: The port ``python -m panoply_async.local`` and ``panoply-async local`` listen on:
#: fixed, so that an app's environment stays valid across restarts of the server.
DEFAULT_PORT = 4566


def export_lines(endpoint_url: str, apikey: str, apisecret: str) -> list[str]:
    """The shell lines that point an app (``SDK()`` with no arguments) at a server."""
    return [
        f"export PANOPLY_ENDPOINT_URL={shlex.quote(endpoint_url)}",
        f"export PANOPLY_APIKEY={shlex.quote(apikey)}",
        f"export PANOPLY_APISECRET={shlex.quote(apisecret)}",
    ]


def _parse_args(argv: list[str] | None, prog: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Serve a local SQS (moto) on 127.0.0.1 for development, with a queue and "
            "local credentials for it (the same on every start). Prints 'endpoint=URL', "
            "then the 'export' lines an app needs (valid shell, all of it), then serves "
            "until SIGTERM, SIGINT (Ctrl-C) or end of input on stdin."
        ),
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port to listen on (default {DEFAULT_PORT}; 0: a free one)")
    parser.add_argument(
        "--create-queue-for",
        nargs=2,
        metavar=("APIKEY", "APISECRET"),
        help="create the queue these credentials point to before serving",
    )
    return parser.parse_args(argv)


def _stdin_can_signal_eof() -> bool:
    """Whether stdin is something a parent closes on purpose (a pipe, socket or terminal).

    A server started with stdin on /dev/null or a file would otherwise stop at once.
    """
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(sys.stdin.fileno())


def _set_on_stdin_eof(stop: threading.Event) -> None:
    def watch() -> None:
        fd = sys.stdin.fileno()
        try:
            while os.read(fd, 65536):
                pass
        except OSError:
            pass
        stop.set()

    threading.Thread(target=watch, name="panoply-local-stdin", daemon=True).start()


def main(argv: list[str] | None = None, prog: str = "python -m panoply_async.local") -> int:
    """Serve a LocalSQS until SIGTERM, SIGINT or stdin EOF; first print ``endpoint=URL``
    and the ``export`` lines of the endpoint and of credentials whose queue exists."""
    args = _parse_args(argv, prog)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if _stdin_can_signal_eof():
        # A parent that dies or closes our stdin takes the server with it: no orphans.
        _set_on_stdin_eof(stop)
    server = LocalSQS(port=args.port)
    try:
        server.start()
    except (OSError, SystemExit):  # werkzeug exits on a busy port, after saying so
        print(f"error: cannot listen on 127.0.0.1:{args.port}; choose another port with "
              "--port", file=sys.stderr)
        return 2
    try:
        if args.create_queue_for:
            server.create_queue(*args.create_queue_for)
        apikey, apisecret = local_credentials()
        server.create_queue(apikey, apisecret)
        lines = export_lines(server.endpoint_url, apikey, apisecret)
        print(f"endpoint={server.endpoint_url}", *lines, sep="\n", flush=True)
        if sys.stderr.isatty():  # for a person; programs read the lines above
            print("serving; run the export lines above in the app's shell; Ctrl-C stops",
                  file=sys.stderr, flush=True)
        stop.wait()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
