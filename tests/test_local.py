"""The embedded local SQS server: unsigned and signed requests, any account and region."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Any

import botocore
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from panoply_async import parse_credentials
from panoply_async.local import LocalSQS, make_credentials

pytestmark = pytest.mark.anyio


def port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("signed", [False, True])
async def test_vector_credentials_reach_their_queue(
    panoply_server: LocalSQS, vectors: dict[str, Any], signed: bool
) -> None:
    config = AioConfig(
        signature_version=None if signed else botocore.UNSIGNED,
        retries={"total_max_attempts": 1},
    )
    for case in vectors["credentials"]:
        url = panoply_server.create_queue(case["apikey"], case["apisecret"])
        assert url == case["queue_url"].replace(
            f"https://sqs.{case['region']}.amazonaws.com", panoply_server.endpoint_url
        )
        async with get_session().create_client(
            "sqs", region_name=case["region"], endpoint_url=panoply_server.endpoint_url,
            config=config, aws_access_key_id="testing", aws_secret_access_key="testing",
        ) as client:
            await client.send_message(
                QueueUrl=url, MessageBody="one",
                MessageAttributes={"key": {"DataType": "String", "StringValue": case["apikey"]}},
            )
            await client.send_message_batch(
                QueueUrl=url,
                Entries=[{"Id": "a", "MessageBody": "two"}, {"Id": "b", "MessageBody": "three"}],
            )
        got = await panoply_server.areceive(url)
        assert sorted(m.body for m in got) == ["one", "three", "two"]
        first = next(m for m in got if m.body == "one")
        assert first.attributes == {"key": case["apikey"]}
        assert first.size == 3 + len("key") + len("String") + len(case["apikey"])
        assert panoply_server.count(url) == 0


def test_make_credentials_are_valid_and_fresh() -> None:
    a = make_credentials("acct", aws_account="000000000001", region="ap-southeast-2")
    b = make_credentials("acct", aws_account="000000000001", region="ap-southeast-2")
    assert a != b
    creds = parse_credentials(*a)
    assert (creds.account, creds.aws_account, creds.region) == (
        "acct", "000000000001", "ap-southeast-2"
    )


def test_stop_is_idempotent_and_closes_the_port() -> None:
    server = LocalSQS().start()
    port = int(server.endpoint_url.rsplit(":", 1)[1])
    assert port_is_open(port)
    server.stop()
    server.stop()
    assert not port_is_open(port)
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.endpoint_url


def test_server_in_its_own_process() -> None:
    apikey, apisecret = make_credentials("proc")
    proc = subprocess.Popen(
        [sys.executable, "-m", "panoply_async.local", "--port", "0",
         "--create-queue-for", apikey, apisecret],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("endpoint=http://127.0.0.1:")
        endpoint = line.split("=", 1)[1]
        client = botocore.session.get_session().create_client(
            "sqs", region_name="us-east-1", endpoint_url=endpoint,
            config=botocore.config.Config(signature_version=botocore.UNSIGNED),
        )
        url = parse_credentials(apikey, apisecret).queue_url(endpoint)
        client.send_message(QueueUrl=url, MessageBody="hello")
        got = client.receive_message(QueueUrl=url)
        assert [m["Body"] for m in got["Messages"]] == ["hello"]
        client.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
