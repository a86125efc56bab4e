"""An embedded local SQS server (moto) for the demo, tests and development.

``LocalSQS`` serves moto's SQS on 127.0.0.1 (a free port) in a background
thread. Two things make it usable by this SDK out of the box:

* moto decides which service a request is for from its signature's credential
  scope; the unsigned requests our SDK sends by default (like the legacy SDK)
  would be routed to S3. This server serves SQS only, so every request reaches
  SQS, signed or not.
* moto keeps queues per AWS account and region, taken from the signature.
  Panoply queue URLs carry the customer's AWS account and region, which dummy
  credentials do not match, so every request is put in one namespace (moto's
  default account, ``us-east-1``). Queue names are unique per credentials
  (``sdk-ACCOUNT-RAND2``), so nothing collides.

moto's backends are global to the process: two ``LocalSQS`` servers in one
process share queues. Use fresh credentials (``make_credentials``) per test.

Run ``python -m panoply_async.local`` to serve in a process of its own.
"""

from __future__ import annotations

import argparse
import base64
import logging
import secrets
import signal
import string
import sys
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio

from ._credentials import parse_credentials

__all__ = ["LocalSQS", "ReceivedMessage", "main", "make_credentials"]

_NAMESPACE_HOST = "sqs.us-east-1.amazonaws.com"
_ALPHABET = string.ascii_letters + string.digits


def make_credentials(
    account: str = "demo", *, aws_account: str = "123456789012", region: str = "us-east-1"
) -> tuple[str, str]:
    """A fresh, valid ``(apikey, apisecret)`` pair, for local servers and tests."""
    rand1 = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    rand2 = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    apikey = f"{account}/{rand1}"
    apisecret = base64.b64encode(f"{rand2}/{uuid.uuid4()}/{aws_account}/{region}".encode())
    parse_credentials(apikey, apisecret)  # refuse to hand out what the SDK would refuse
    return apikey, apisecret.decode()


@dataclass(frozen=True)
class ReceivedMessage:
    """A message read back from the local server."""

    body: str
    #: message attribute name -> string value
    attributes: dict[str, str]
    #: size as SQS counts it: body plus attribute names, types and values, in bytes
    size: int


def _message_size(body: str, attributes: dict[str, Any]) -> int:
    size = len(body.encode("utf-8"))
    for name, value in attributes.items():
        size += len(name.encode()) + len(str(value.get("DataType", "")).encode())
        size += len(str(value.get("StringValue", "")).encode())
    return size


def _sqs_only_app() -> Callable[..., Iterable[bytes]]:
    from moto.moto_server.werkzeug_app import create_backend_app

    app = create_backend_app("sqs")

    def sqs_only(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # One namespace for every request, signed or not (see the module docstring).
        environ["HTTP_HOST"] = _NAMESPACE_HOST
        environ.pop("HTTP_AUTHORIZATION", None)
        result: Iterable[bytes] = app(environ, start_response)
        return result

    return sqs_only


class LocalSQS:
    """moto's SQS served on ``127.0.0.1`` in a background thread.

    Use as ``with LocalSQS() as server:`` or ``async with LocalSQS() as server:``
    (start and stop then run in a worker thread), or call :meth:`start` and
    :meth:`stop`. ``port=0`` picks a free port; :attr:`endpoint_url` tells it.
    """

    def __init__(self, *, port: int = 0) -> None:
        self._requested_port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = self.endpoint_url if self._server is not None else "stopped"
        return f"LocalSQS({state})"

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalSQS is not running; call start() first")
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> LocalSQS:
        with self._lock:
            if self._server is not None:
                return self
            from werkzeug.serving import WSGIRequestHandler, make_server

            class QuietHandler(WSGIRequestHandler):
                def log_request(self, *args: Any, **kwargs: Any) -> None:
                    pass

            self._server = make_server(
                "127.0.0.1",
                self._requested_port,
                _sqs_only_app(),
                threaded=True,
                request_handler=QuietHandler,
            )
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="panoply-local-sqs", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port. Safe to call more than once."""
        with self._lock:
            server, thread, client = self._server, self._thread, self._client
            self._server = self._thread = self._client = None
        if client is not None:
            client.close()
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()

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
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.stop)

    # -- queues ---------------------------------------------------------------------

    def _sqs(self) -> Any:
        with self._lock:
            if self._client is None:
                import botocore
                import botocore.session
                from botocore.config import Config

                self._client = botocore.session.get_session().create_client(
                    "sqs",
                    region_name="us-east-1",
                    endpoint_url=self.endpoint_url,
                    config=Config(
                        signature_version=botocore.UNSIGNED,
                        retries={"total_max_attempts": 1},
                    ),
                )
            return self._client

    def queue_url(self, apikey: str | bytes, apisecret: str | bytes) -> str:
        """The URL, on this server, of the queue the credentials point to."""
        return parse_credentials(apikey, apisecret).queue_url(self.endpoint_url)

    def create_queue(self, apikey: str | bytes, apisecret: str | bytes) -> str:
        """Create the queue the credentials point to; returns its URL on this server."""
        credentials = parse_credentials(apikey, apisecret)
        self._sqs().create_queue(QueueName=credentials.queue_name)
        return credentials.queue_url(self.endpoint_url)

    def receive(self, queue_url: str, *, max_messages: int | None = None) -> list[ReceivedMessage]:
        """Receive and delete every message now in the queue (or ``max_messages``)."""
        client = self._sqs()
        received: list[ReceivedMessage] = []
        while max_messages is None or len(received) < max_messages:
            want = 10 if max_messages is None else min(10, max_messages - len(received))
            response = client.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=want,
                MessageAttributeNames=["All"],
                VisibilityTimeout=60,
            )
            messages = response.get("Messages", [])
            if not messages:
                break
            for message in messages:
                attributes = message.get("MessageAttributes", {})
                received.append(
                    ReceivedMessage(
                        body=message["Body"],
                        attributes={k: v.get("StringValue", "") for k, v in attributes.items()},
                        size=_message_size(message["Body"], attributes),
                    )
                )
            client.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
        return received

    async def areceive(
        self, queue_url: str, *, max_messages: int | None = None
    ) -> list[ReceivedMessage]:
        """:meth:`receive` in a worker thread, so the event loop keeps running."""
        return await anyio.to_thread.run_sync(
            lambda: self.receive(queue_url, max_messages=max_messages)
        )

    def count(self, queue_url: str) -> int:
        """Approximate number of messages waiting in the queue."""
        response = self._sqs().get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(response["Attributes"]["ApproximateNumberOfMessages"])


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT; first print one line ``endpoint=URL``."""
    parser = argparse.ArgumentParser(
        prog="python -m panoply_async.local", description="Serve a local SQS (moto) on 127.0.0.1."
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: a free one)")
    parser.add_argument("--create-queue-for", nargs=2, metavar=("APIKEY", "APISECRET"),
                        help="create the queue these credentials point to")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with LocalSQS(port=args.port) as server:
        if args.create_queue_for:
            server.create_queue(*args.create_queue_for)
        print(f"endpoint={server.endpoint_url}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
