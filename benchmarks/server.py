"""The local SQS server in a process of its own, and queues on it.

Running moto in a separate process keeps its CPU out of the writing
process, so that process CPU time measures the client alone.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from panoply_async import parse_credentials
from panoply_async.local import make_credentials

_START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Queue:
    """A queue on the local server and the credentials that point to it."""

    apikey: str
    apisecret: str
    url: str
    region: str


class ServerProcess:
    """``python -m panoply_async.local --port 0`` as a child process."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self.endpoint_url = ""

    def start(self) -> ServerProcess:
        # stdin is a pipe the server watches: if this process dies, the pipe
        # closes and the server stops with it, so no orphan keeps the port.
        self._process = subprocess.Popen(
            [sys.executable, "-m", "panoply_async.local", "--port", "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline().strip()
        if not line.startswith("endpoint="):
            self.stop()
            raise RuntimeError(f"local SQS server did not start (it printed {line!r})")
        self.endpoint_url = line.split("=", 1)[1]
        if not self.endpoint_url.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"refusing a non-loopback endpoint {self.endpoint_url!r}")
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@asynccontextmanager
async def sqs_client(endpoint_url: str, region: str, connections: int = 16) -> AsyncIterator[Any]:
    """A plain, unsigned aiobotocore SQS client without retries (as the SDK uses)."""
    import botocore
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    config = AioConfig(
        signature_version=botocore.UNSIGNED,
        retries={"total_max_attempts": 1},
        max_pool_connections=connections,
        read_timeout=120,
    )
    async with get_session().create_client(
        "sqs", region_name=region, endpoint_url=endpoint_url, config=config
    ) as client:
        yield client


@asynccontextmanager
async def fresh_queue(endpoint_url: str, account: str = "bench") -> AsyncIterator[Queue]:
    """A new queue for one scenario, deleted afterwards so that moto frees its messages."""
    apikey, apisecret = make_credentials(account)
    credentials = parse_credentials(apikey, apisecret)
    url = credentials.queue_url(endpoint_url)
    async with sqs_client(endpoint_url, credentials.region) as client:
        await client.create_queue(QueueName=credentials.queue_name)
        try:
            yield Queue(apikey, apisecret, url, credentials.region)
        finally:
            await client.delete_queue(QueueUrl=url)


async def queue_message_count(endpoint_url: str, queue: Queue) -> int:
    """How many messages the server holds in ``queue`` (a cross-check of the counters)."""
    async with sqs_client(endpoint_url, queue.region) as client:
        answer = await client.get_queue_attributes(
            QueueUrl=queue.url, AttributeNames=["ApproximateNumberOfMessages"]
        )
    return int(answer["Attributes"]["ApproximateNumberOfMessages"])
