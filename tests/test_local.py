"""The embedded local SQS server: unsigned and signed requests, any account and region."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import IO, Any

import anyio
import botocore
import botocore.config
import botocore.exceptions
import botocore.session
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from panoply_async._wire.credentials import parse_credentials
from panoply_async.local import LocalSQS, make_credentials

ATTRIBUTE_NAMES = ("key", "secret", "sdk")


@pytest.fixture(scope="module")
def server() -> Iterator[LocalSQS]:
    """A server of this module's own, so the fixed vector queues meet no other test's."""
    with LocalSQS() as local:
        yield local


@asynccontextmanager
async def sqs_client(endpoint_url: str, region: str, *, signed: bool) -> AsyncIterator[Any]:
    """An aiobotocore SQS client as the SDK makes it: unsigned, or signed with dummy keys."""
    config = AioConfig(
        signature_version=None if signed else botocore.UNSIGNED,
        retries={"total_max_attempts": 1},
    )
    async with get_session().create_client(
        "sqs",
        region_name=region,
        endpoint_url=endpoint_url,
        config=config,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as client:
        yield client


def panoply_attributes(apikey: str, apisecret: str) -> dict[str, dict[str, str]]:
    values = {"key": apikey, "secret": apisecret, "sdk": "panoply-async-test"}
    return {name: {"DataType": "String", "StringValue": value} for name, value in values.items()}


def local_url(case: dict[str, Any], endpoint_url: str) -> str:
    return str(case["queue_url"]).replace(
        f"https://sqs.{case['region']}.amazonaws.com", endpoint_url
    )


def port_of(server: LocalSQS) -> int:
    return int(server.endpoint_url.rsplit(":", 1)[1])


def port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


# -- unsigned and signed, every vector account and region ------------------------------


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
async def test_vector_credentials_reach_their_queue(
    server: LocalSQS, vectors: dict[str, Any], signed: bool
) -> None:
    for case in vectors["credentials"]:
        apikey, apisecret = case["apikey"], case["apisecret"]
        url = server.create_queue(apikey, apisecret)
        assert url == local_url(case, server.endpoint_url)
        attributes = panoply_attributes(apikey, apisecret)
        async with sqs_client(server.endpoint_url, case["region"], signed=signed) as client:
            await client.send_message(QueueUrl=url, MessageBody="one", MessageAttributes=attributes)
            response = await client.send_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": "a", "MessageBody": "twö", "MessageAttributes": attributes},
                    {"Id": "b", "MessageBody": "three", "MessageAttributes": attributes},
                ],
            )
            assert not response.get("Failed")

        got = await server.areceive(url)

        assert sorted(m.body for m in got) == ["one", "three", "twö"]
        expected = {name: value["StringValue"] for name, value in attributes.items()}
        assert all(m.attributes == expected for m in got)
        attribute_bytes = sum(
            len(name) + len("String") + len(value) for name, value in expected.items()
        )
        sizes = {m.body: m.size for m in got}
        assert sizes["twö"] == len("twö".encode()) + attribute_bytes
        assert server.count(url) == 0


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
async def test_every_queue_operation_the_sdk_and_tests_use(server: LocalSQS, signed: bool) -> None:
    apikey, apisecret = make_credentials("ops", aws_account="000000000001", region="ap-southeast-2")
    name = parse_credentials(apikey, apisecret).queue_name
    async with sqs_client(server.endpoint_url, "ap-southeast-2", signed=signed) as client:
        created = await client.create_queue(QueueName=name)
        # moto answers with its own account in the path; it only reads the name at the end.
        assert created["QueueUrl"].startswith(f"{server.endpoint_url}/")
        url = server.queue_url(apikey, apisecret)
        await client.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(10)]
        )
        attributes = await client.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "10"

        received = await client.receive_message(QueueUrl=url, MaxNumberOfMessages=3)
        messages = received["Messages"]
        assert len(messages) == 3
        deleted = await client.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
        assert len(deleted["Successful"]) == 3

        await client.purge_queue(QueueUrl=url)
        assert server.count(url) == 0


async def test_signed_and_unsigned_requests_share_one_namespace(server: LocalSQS) -> None:
    # moto would put a signed eu-west-1 request and an unsigned one in different regions.
    apikey, apisecret = make_credentials("mix", aws_account="210987654321", region="eu-west-1")
    url = server.create_queue(apikey, apisecret)
    async with sqs_client(server.endpoint_url, "eu-west-1", signed=True) as signed:
        await signed.send_message(QueueUrl=url, MessageBody="signed")
    async with sqs_client(server.endpoint_url, "eu-west-1", signed=False) as unsigned:
        await unsigned.send_message(QueueUrl=url, MessageBody="unsigned")
        got = await unsigned.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    assert sorted(m["Body"] for m in got["Messages"]) == ["signed", "unsigned"]


# -- receiving ---------------------------------------------------------------------------


async def test_receive_stops_at_max_messages(server: LocalSQS) -> None:
    url = server.create_queue(*make_credentials("max"))
    async with sqs_client(server.endpoint_url, "us-east-1", signed=False) as client:
        for start in (0, 10):
            await client.send_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "MessageBody": str(start + i)} for i in range(10)],
            )
    first = server.receive(url, max_messages=12)
    rest = await server.areceive(url)
    assert len(first) == 12
    assert len(rest) == 8
    assert sorted(int(m.body) for m in first + rest) == list(range(20))


async def test_receive_waits_for_a_message_that_is_still_coming(server: LocalSQS) -> None:
    url = server.create_queue(*make_credentials("wait"))
    got: list[str] = []

    async def receive() -> None:
        got.extend(m.body for m in await server.areceive(url, wait_seconds=10))

    async with anyio.create_task_group() as tg:
        tg.start_soon(receive)
        async with sqs_client(server.endpoint_url, "us-east-1", signed=False) as client:
            await client.send_message(QueueUrl=url, MessageBody="late")
    assert got == ["late"]


def test_receive_from_an_empty_queue_returns_nothing(server: LocalSQS) -> None:
    url = server.create_queue(*make_credentials("empty"))
    assert server.receive(url) == []


# -- lifecycle ---------------------------------------------------------------------------


def test_make_credentials_are_valid_and_fresh() -> None:
    a = make_credentials("acct", aws_account="000000000001", region="ap-southeast-2")
    b = make_credentials("acct", aws_account="000000000001", region="ap-southeast-2")
    assert a != b
    creds = parse_credentials(*a)
    assert (creds.account, creds.aws_account, creds.region) == (
        "acct", "000000000001", "ap-southeast-2"
    )
    assert creds.queue_name != parse_credentials(*b).queue_name


async def test_two_servers_have_separate_queues(vectors: dict[str, Any]) -> None:
    case = vectors["credentials"][0]
    async with LocalSQS() as first, LocalSQS() as second:
        assert first.endpoint_url != second.endpoint_url
        first_url = first.create_queue(case["apikey"], case["apisecret"])
        second_url = second.create_queue(case["apikey"], case["apisecret"])
        async with sqs_client(first.endpoint_url, case["region"], signed=False) as client:
            await client.send_message(QueueUrl=first_url, MessageBody="only in the first")
        assert second.count(second_url) == 0
        assert [m.body for m in first.receive(first_url)] == ["only in the first"]

        only_first = first.create_queue(*make_credentials("solo"))
        async with sqs_client(second.endpoint_url, "us-east-1", signed=False) as client:
            with pytest.raises(botocore.exceptions.ClientError, match="NonExistentQueue"):
                await client.send_message(
                    QueueUrl=only_first.replace(first.endpoint_url, second.endpoint_url),
                    MessageBody="x",
                )


def test_stop_is_idempotent_and_closes_the_port_and_open_connections() -> None:
    server = LocalSQS().start()
    port = port_of(server)
    url = server.create_queue(*make_credentials("stop"))
    client = botocore.session.get_session().create_client(
        "sqs",
        region_name="us-east-1",
        endpoint_url=server.endpoint_url,
        config=botocore.config.Config(
            signature_version=botocore.UNSIGNED, retries={"total_max_attempts": 1}
        ),
    )
    try:
        client.send_message(QueueUrl=url, MessageBody="before")  # leaves a kept-alive connection
        assert port_is_open(port)

        server.stop()
        server.stop()

        assert not port_is_open(port)
        assert not server.running
        with pytest.raises(RuntimeError, match="not running"):
            _ = server.endpoint_url
        with pytest.raises(botocore.exceptions.ConnectionError):
            client.send_message(QueueUrl=url, MessageBody="after")
    finally:
        client.close()


def test_binds_127_0_0_1_only(server: LocalSQS) -> None:
    # Linux routes all of 127/8 to the loopback; a server bound to 0.0.0.0 would answer here.
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.2", port_of(server))) != 0


def test_a_server_can_be_restarted() -> None:
    with LocalSQS() as server:
        server.stop()
        server.start()
        url = server.create_queue(*make_credentials("again"))
        assert server.count(url) == 0


# -- in a process of its own -------------------------------------------------------------


def start_process(stdin: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "panoply_async.local", "--port", "0"],
        stdin=stdin,
        stdout=subprocess.PIPE,
        text=True,
    )
    stdout: IO[str] | None = proc.stdout
    assert stdout is not None
    line = stdout.readline()
    assert line.startswith("endpoint=http://127.0.0.1:"), line
    return proc, line.strip().split("=", 1)[1]


def send_and_receive(endpoint: str) -> list[str]:
    client = botocore.session.get_session().create_client(
        "sqs",
        region_name="us-east-1",
        endpoint_url=endpoint,
        config=botocore.config.Config(signature_version=botocore.UNSIGNED),
    )
    try:
        url = client.create_queue(QueueName="sdk-proc-x")["QueueUrl"]
        client.send_message(QueueUrl=url, MessageBody="hello")
        got = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        return [m["Body"] for m in got["Messages"]]
    finally:
        client.close()


def test_process_serves_until_sigterm() -> None:
    # stdin on /dev/null must not count as "end of input": the server keeps serving.
    proc, endpoint = start_process(subprocess.DEVNULL)
    try:
        assert send_and_receive(endpoint) == ["hello"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert proc.stdout is not None
        # After the endpoint line, only the export lines (issue 20): nothing else.
        rest = proc.stdout.read().splitlines()
        assert [line.split("=", 1)[0] for line in rest] == [
            "export PANOPLY_ENDPOINT_URL", "export PANOPLY_APIKEY", "export PANOPLY_APISECRET"
        ]
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_process_stops_when_stdin_closes() -> None:
    proc, endpoint = start_process(subprocess.PIPE)
    try:
        assert send_and_receive(endpoint) == ["hello"]
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
