"""The fault proxy itself: each fault as a real aiobotocore client sees it, limit
enforcement, verbatim pass-through and reproducibility. Upstream is moto's server."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

import aiohttp
import botocore.exceptions
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from aiohttp import web
from botocore.retries.standard import RetryContext, ThrottledRetryableChecker
from moto.server import ThreadedMotoServer
from multidict import CIMultiDict

from faultproxy import FaultPlan, FaultProxy, digest, message_size, unused_endpoint_url

SMALL_LIMIT = 1024  # limit tests use a small max_message_bytes to stay fast


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def proxy(moto_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto_url, seed=42) as running:
        yield running


@asynccontextmanager
async def sqs_client(endpoint_url: str, **config: Any) -> AsyncIterator[Any]:
    """A signed client (moto routes unsigned requests to S3) that never retries."""
    async with get_session().create_client(
        "sqs",
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=AioConfig(retries={"total_max_attempts": 1}, **config),
    ) as client:
        yield client


@pytest.fixture
async def sqs(proxy: FaultProxy) -> AsyncIterator[Any]:
    async with sqs_client(proxy.endpoint_url) as client:
        yield client


@pytest.fixture
async def queue(sqs: Any) -> str:
    created = await sqs.create_queue(QueueName=f"fp-{uuid.uuid4().hex}")
    url: str = created["QueueUrl"]
    return url


async def bodies_in(sqs: Any, queue: str) -> list[str]:
    """Every body in the queue (received through the proxy: receives are never faulted)."""
    found: list[str] = []
    while True:
        answer = await sqs.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=60
        )
        messages = answer.get("Messages", [])
        if not messages:
            return sorted(found)
        found += [m["Body"] for m in messages]


def entries(*bodies: str) -> list[dict[str, Any]]:
    return [{"Id": f"e{i}", "MessageBody": body} for i, body in enumerate(bodies)]


# -- the protocol the proxy relies on --------------------------------------------------


def test_botocore_speaks_the_json_protocol_to_sqs() -> None:
    # If botocore went back to the query protocol, the proxy would see no operations.
    models = files("botocore") / "data" / "sqs"
    service = next(d for d in models.iterdir() if d.is_dir()) / "service-2.json.gz"
    metadata = json.loads(gzip.decompress(service.read_bytes()))["metadata"]
    assert metadata["protocol"] == "json"
    assert metadata["targetPrefix"] == "AmazonSQS"


async def test_sends_are_recognised_and_delivered(
    proxy: FaultProxy, sqs: Any, queue: str
) -> None:
    await sqs.send_message(QueueUrl=queue, MessageBody="one")
    answer = await sqs.send_message_batch(QueueUrl=queue, Entries=entries("two", "three"))
    assert {e["Id"] for e in answer["Successful"]} == {"e0", "e1"}
    stats = proxy.snapshot()
    assert stats.operations["SendMessage"] == 1
    assert stats.operations["SendMessageBatch"] == 1
    assert stats.send_requests == 2
    assert sorted(stats.acked_bodies) == sorted(digest(b) for b in ("one", "two", "three"))
    assert stats.acked_unseen_bodies == []
    assert await bodies_in(sqs, queue) == ["one", "three", "two"]


async def test_receive_and_other_operations_pass_even_when_sends_all_fail(
    proxy: FaultProxy, sqs: Any, queue: str
) -> None:
    await sqs.send_message(
        QueueUrl=queue,
        MessageBody="kept \u00e9\U0001f600",
        MessageAttributes={"key": {"DataType": "String", "StringValue": "v"}},
    )
    proxy.plan = FaultPlan(fail_all=True)
    answer = await sqs.receive_message(
        QueueUrl=queue, MessageAttributeNames=["All"], WaitTimeSeconds=0
    )
    [message] = answer["Messages"]
    assert message["Body"] == "kept \u00e9\U0001f600"
    assert message["MessageAttributes"]["key"]["StringValue"] == "v"
    attributes = await sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])
    assert "QueueArn" in attributes["Attributes"]
    with pytest.raises(botocore.exceptions.ClientError):
        await sqs.send_message(QueueUrl=queue, MessageBody="refused")
    stats = proxy.snapshot()
    assert stats.operations["ReceiveMessage"] == 1
    assert stats.send_requests == 2
    assert stats.faults == {"http_500": 1}


async def test_requests_and_answers_are_relayed_verbatim(proxy: FaultProxy) -> None:
    # An echo server as upstream shows exactly what the proxy passed on.
    async def echo(request: web.BaseRequest) -> web.Response:
        body = await request.read()
        seen = {"method": request.method, "path": request.raw_path,
                "headers": list(request.headers.items()), "body": body.hex()}
        headers = [("X-Twice", "1"), ("X-Twice", "2"), ("Content-Type", "text/x-echo")]
        return web.Response(status=418, reason="Teapot", body=json.dumps(seen).encode(),
                            headers=CIMultiDict(headers))

    runner = web.ServerRunner(web.Server(echo))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    sent_body = b"\x00\xffraw bytes"
    try:
        with FaultProxy(f"http://127.0.0.1:{port}", faults=FaultPlan(fail_all=True)) as echoing:
            async with aiohttp.ClientSession(skip_auto_headers=("User-Agent",)) as http:
                url = echoing.endpoint_url + "/a%2Fb/c?x=1&y=%20z&y=2"
                async with http.put(
                    url, data=sent_body,
                    headers=[("X-Amz-Target", "AmazonSQS.ReceiveMessage"), ("X-Dup", "a"),
                             ("X-Dup", "b"), ("Content-Type", "application/octet-stream")],
                ) as answer:
                    status, reason = answer.status, answer.reason
                    twice = answer.headers.getall("X-Twice")
                    content_type = answer.headers["Content-Type"]
                    seen = json.loads(await answer.read())
    finally:
        await runner.cleanup()
    assert (status, reason, twice, content_type) == (418, "Teapot", ["1", "2"], "text/x-echo")
    assert seen["method"] == "PUT"
    assert seen["path"] == "/a%2Fb/c?x=1&y=%20z&y=2"
    assert bytes.fromhex(seen["body"]) == sent_body
    forwarded = [(k.lower(), v) for k, v in seen["headers"]]
    end_to_end = [(k, v) for k, v in forwarded if k not in {"host", "content-length"}]
    assert end_to_end == [
        ("x-amz-target", "AmazonSQS.ReceiveMessage"), ("x-dup", "a"), ("x-dup", "b"),
        ("content-type", "application/octet-stream"), ("accept", "*/*"),
        ("accept-encoding", "gzip, deflate"),  # the test's client's own defaults
    ]
    assert ("host", f"127.0.0.1:{port}") in forwarded


# -- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize("plan", [FaultPlan(http_500=1.0), FaultPlan(fail_all=True)])
async def test_http_500_is_a_server_error_and_nothing_is_stored(
    proxy: FaultProxy, sqs: Any, queue: str, plan: FaultPlan
) -> None:
    proxy.plan = plan
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        await sqs.send_message_batch(QueueUrl=queue, Entries=entries("a", "b"))
    error = raised.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert error["Error"]["Code"] == "InternalError"
    proxy.plan = FaultPlan()
    assert await bodies_in(sqs, queue) == []
    stats = proxy.snapshot()
    assert stats.faults == {"http_500": 1}
    assert stats.acked_bodies == stats.acked_unseen_bodies == []


async def test_throttle_is_a_throttling_error_for_botocore(
    proxy: FaultProxy, sqs: Any, queue: str
) -> None:
    proxy.plan = FaultPlan(throttle=1.0)
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        await sqs.send_message(QueueUrl=queue, MessageBody="a")
    error = raised.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Error"]["Code"] == "RequestThrottled"
    # botocore's own retry logic classifies it as throttling
    context = RetryContext(attempt_number=1, parsed_response=error)
    assert ThrottledRetryableChecker().is_retryable(context)
    assert type(raised.value).__name__ == "RequestThrottled"  # the modeled exception
    proxy.plan = FaultPlan()
    assert await bodies_in(sqs, queue) == []
    assert proxy.snapshot().faults == {"throttle": 1}


async def test_drop_before_is_a_connection_error_and_nothing_is_stored(
    proxy: FaultProxy, sqs: Any, queue: str
) -> None:
    proxy.plan = FaultPlan(drop_before=1.0)
    with pytest.raises(botocore.exceptions.ConnectionClosedError) as raised:
        await sqs.send_message_batch(QueueUrl=queue, Entries=entries("a", "b"))
    assert isinstance(raised.value.kwargs["error"], aiohttp.ServerDisconnectedError)
    proxy.plan = FaultPlan()
    assert await bodies_in(sqs, queue) == []
    stats = proxy.snapshot()
    assert stats.faults == {"drop_before": 1}
    assert stats.acked_bodies == stats.acked_unseen_bodies == []


async def test_drop_after_stores_the_messages_but_the_client_sees_a_connection_error(
    proxy: FaultProxy, sqs: Any, queue: str
) -> None:
    proxy.plan = FaultPlan(drop_after=1.0)
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        await sqs.send_message_batch(QueueUrl=queue, Entries=entries("a", "b"))
    proxy.plan = FaultPlan()
    assert await bodies_in(sqs, queue) == ["a", "b"]
    stats = proxy.snapshot()
    assert stats.faults == {"drop_after": 1}
    assert stats.acked_bodies == []
    assert sorted(stats.acked_unseen_bodies) == sorted([digest("a"), digest("b")])


async def test_partial_fails_a_strict_subset_and_stores_the_rest(
    proxy: FaultProxy, sqs: Any, queue: str
) -> None:
    proxy.plan = FaultPlan(partial=1.0)
    sent = entries(*(f"body-{i}" for i in range(10)))
    answer = await sqs.send_message_batch(QueueUrl=queue, Entries=sent)
    failed = {f["Id"] for f in answer["Failed"]}
    succeeded = {s["Id"] for s in answer["Successful"]}
    assert 0 < len(failed) < len(sent)
    assert failed | succeeded == {e["Id"] for e in sent}
    assert not failed & succeeded
    assert all(
        (f["SenderFault"], f["Code"], f["Message"]) == (False, "InternalError", "injected")
        for f in answer["Failed"]
    )
    stored = [e["MessageBody"] for e in sent if e["Id"] in succeeded]
    assert await bodies_in(sqs, queue) == sorted(stored)
    stats = proxy.snapshot()
    assert stats.faults == {"partial": 1}
    assert stats.entries_failed_partial == len(failed)
    assert sorted(stats.acked_bodies) == sorted(digest(b) for b in stored)


async def test_partial_leaves_requests_it_cannot_split_alone(
    proxy: FaultProxy, sqs: Any, queue: str
) -> None:
    proxy.plan = FaultPlan(partial=1.0)
    one = await sqs.send_message_batch(QueueUrl=queue, Entries=entries("only"))
    assert one.get("Failed", []) == []
    await sqs.send_message(QueueUrl=queue, MessageBody="single")
    assert await bodies_in(sqs, queue) == ["only", "single"]
    assert proxy.snapshot().faults == {}


async def test_slow_answers_arrive(proxy: FaultProxy, sqs: Any, queue: str) -> None:
    proxy.plan = FaultPlan(slow=1.0, slow_seconds=0.05)
    answer = await sqs.send_message_batch(QueueUrl=queue, Entries=entries("a", "b"))
    assert len(answer["Successful"]) == 2
    stats = proxy.snapshot()
    assert stats.faults == {"slow": 1}
    assert sorted(stats.acked_bodies) == sorted([digest("a"), digest("b")])


async def test_a_client_that_gives_up_on_a_slow_answer_did_not_see_it(
    proxy: FaultProxy, queue: str
) -> None:
    # The answer is held far longer than the client waits; the proxy lets go of it as
    # soon as the client hangs up, so this takes about the client's timeout.
    proxy.plan = FaultPlan(slow=1.0, slow_seconds=60)
    async with sqs_client(proxy.endpoint_url, read_timeout=0.2) as impatient:
        with pytest.raises(botocore.exceptions.ReadTimeoutError):
            await impatient.send_message(QueueUrl=queue, MessageBody="late")
    proxy.wait_idle()
    stats = proxy.snapshot()
    assert stats.acked_bodies == []
    assert stats.acked_unseen_bodies == [digest("late")]


async def test_a_stopped_proxy_is_unreachable_until_started_again(
    proxy: FaultProxy, sqs: Any, queue: str
) -> None:
    proxy.stop()
    async with sqs_client(proxy.endpoint_url) as fresh:
        with pytest.raises(botocore.exceptions.EndpointConnectionError):
            await fresh.send_message(QueueUrl=queue, MessageBody="nobody listens")
    # A client holding a pooled connection may not have noticed it was closed yet: its
    # next request then fails as ConnectionClosedError rather than connection refused.
    with pytest.raises(
        (botocore.exceptions.ConnectionClosedError, botocore.exceptions.EndpointConnectionError)
    ):
        await sqs.send_message(QueueUrl=queue, MessageBody="nobody listens either")
    proxy.start()  # on the same port, so the same client gets through again
    await sqs.send_message(QueueUrl=queue, MessageBody="back")
    assert await bodies_in(sqs, queue) == ["back"]


async def test_an_unused_port_is_unreachable() -> None:
    async with sqs_client(unused_endpoint_url()) as client:
        with pytest.raises(botocore.exceptions.EndpointConnectionError):
            await client.list_queues()


# -- choosing faults --------------------------------------------------------------------------


async def failure_pattern(moto_url: str, seed: int, sends: int) -> list[str]:
    plan = FaultPlan(http_500=0.3, throttle=0.3)
    outcomes: list[str] = []
    with FaultProxy(moto_url, seed=seed, faults=plan) as proxy:
        async with sqs_client(proxy.endpoint_url) as client:
            queue = (await client.create_queue(QueueName=f"fp-{uuid.uuid4().hex}"))["QueueUrl"]
            for i in range(sends):
                try:
                    await client.send_message(QueueUrl=queue, MessageBody=str(i))
                    outcomes.append("ok")
                except botocore.exceptions.ClientError as exc:
                    outcomes.append(exc.response["Error"]["Code"])
    return outcomes


async def test_the_same_seed_gives_the_same_faults(moto_url: str) -> None:
    first = await failure_pattern(moto_url, seed=3, sends=20)
    assert await failure_pattern(moto_url, seed=3, sends=20) == first
    assert await failure_pattern(moto_url, seed=4, sends=20) != first
    assert {"ok", "InternalError", "RequestThrottled"} == set(first)


async def test_rotation_fails_every_nth_send_in_turn(
    proxy: FaultProxy, sqs: Any, queue: str
) -> None:
    proxy.plan = FaultPlan(every=2, rotation=("http_500", "throttle"))
    outcomes: list[str] = []
    for i in range(6):
        try:
            await sqs.send_message(QueueUrl=queue, MessageBody=str(i))
            outcomes.append("ok")
        except botocore.exceptions.ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])
    assert outcomes == ["ok", "InternalError", "ok", "RequestThrottled", "ok", "InternalError"]


@pytest.mark.parametrize(
    "plan",
    [
        lambda: FaultPlan(http_500=0.6, drop_after=0.6),
        lambda: FaultPlan(throttle=-0.1),
        lambda: FaultPlan(every=3),
        lambda: FaultPlan(every=3, rotation=("http_404",)),
    ],
)
def test_impossible_plans_are_refused(plan: Any) -> None:
    with pytest.raises(ValueError, match=r"fault shares|every|unknown fault"):
        plan()


# -- SQS limits -------------------------------------------------------------------------------


@pytest.fixture
def strict_proxy(moto_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto_url, max_message_bytes=SMALL_LIMIT) as running:
        yield running


def attribute(value: str) -> dict[str, dict[str, str]]:
    return {"key": {"DataType": "String", "StringValue": value}}


def test_message_size_counts_utf8_bytes_and_attributes() -> None:
    entry = {"MessageBody": "\u00e9\U0001f600", "MessageAttributes": attribute("ab")}
    assert message_size(entry) == (2 + 4) + (3 + 6 + 2)


@pytest.mark.parametrize(
    ("request_kwargs", "code"),
    [
        ({"MessageBody": "x" * (SMALL_LIMIT + 1)}, "InvalidParameterValue"),
        # within the limit alone, over it with the attribute's name, type and value
        ({"MessageBody": "x" * (SMALL_LIMIT - 10), "MessageAttributes": attribute("ab")},
         "InvalidParameterValue"),
        ({"MessageBody": "\u00e9" * (SMALL_LIMIT // 2 + 1)}, "InvalidParameterValue"),
        ({"MessageBody": "bell \x07"}, "InvalidMessageContents"),
        ({"MessageBody": "not a character \uffff"}, "InvalidMessageContents"),
        ({"MessageBody": "lone surrogate \ud800"}, "InvalidMessageContents"),
        ({"MessageBody": "ok", "MessageAttributes": attribute("nul \x00")},
         "InvalidMessageContents"),
    ],
)
async def test_sends_sqs_would_refuse_are_refused_and_counted(
    strict_proxy: FaultProxy, request_kwargs: dict[str, Any], code: str
) -> None:
    async with sqs_client(strict_proxy.endpoint_url) as sqs:
        queue = (await sqs.create_queue(QueueName=f"fp-{uuid.uuid4().hex}"))["QueueUrl"]
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            await sqs.send_message(QueueUrl=queue, **request_kwargs)
        assert raised.value.response["Error"]["Code"] == code
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert await bodies_in(sqs, queue) == []
    assert strict_proxy.snapshot().limit_violations == 1


@pytest.mark.parametrize(
    ("batch", "code"),
    [
        (entries(*("x" for _ in range(11))), "TooManyEntriesInBatchRequest"),
        (entries(*("x" * 400 for _ in range(3))), "BatchRequestTooLong"),
        (entries("fine", "x" * (SMALL_LIMIT + 1)), "InvalidParameterValue"),
        (entries("fine", "esc \x1b"), "InvalidMessageContents"),
    ],
)
async def test_batches_sqs_would_refuse_are_refused_and_counted(
    strict_proxy: FaultProxy, batch: list[dict[str, Any]], code: str
) -> None:
    async with sqs_client(strict_proxy.endpoint_url) as sqs:
        queue = (await sqs.create_queue(QueueName=f"fp-{uuid.uuid4().hex}"))["QueueUrl"]
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            await sqs.send_message_batch(QueueUrl=queue, Entries=batch)
        assert raised.value.response["Error"]["Code"] == code
        assert await bodies_in(sqs, queue) == []
    assert strict_proxy.snapshot().limit_violations == 1


async def test_sends_at_the_limit_pass(strict_proxy: FaultProxy) -> None:
    at_limit = "\U0001f600" * (SMALL_LIMIT // 4)
    allowed = "tab\t nl\n cr\r \ud7ff \ue000 \ufffd \U0010ffff"
    with_attribute = "x" * (SMALL_LIMIT - 11)  # + "key" + "String" + "ab" == limit
    async with sqs_client(strict_proxy.endpoint_url) as sqs:
        queue = (await sqs.create_queue(QueueName=f"fp-{uuid.uuid4().hex}"))["QueueUrl"]
        await sqs.send_message(QueueUrl=queue, MessageBody=at_limit)
        await sqs.send_message(QueueUrl=queue, MessageBody=allowed)
        await sqs.send_message(
            QueueUrl=queue, MessageBody=with_attribute, MessageAttributes=attribute("ab")
        )
        halves = entries("y" * (SMALL_LIMIT // 2), "z" * (SMALL_LIMIT // 2))
        await sqs.send_message_batch(QueueUrl=queue, Entries=halves)
        await sqs.send_message_batch(QueueUrl=queue, Entries=entries(*"0123456789"))
        assert len(await bodies_in(sqs, queue)) == 15
    assert strict_proxy.snapshot().limit_violations == 0


async def test_limits_can_be_left_to_the_upstream(moto_url: str) -> None:
    with FaultProxy(moto_url, enforce_limits=False, max_message_bytes=SMALL_LIMIT) as lax:
        async with sqs_client(lax.endpoint_url) as sqs:
            queue = (await sqs.create_queue(QueueName=f"fp-{uuid.uuid4().hex}"))["QueueUrl"]
            await sqs.send_message(QueueUrl=queue, MessageBody="x" * (SMALL_LIMIT + 1))
            assert len(await bodies_in(sqs, queue)) == 1  # moto does not enforce it
        assert lax.snapshot().limit_violations == 0


# -- outages ----------------------------------------------------------------------------


async def test_an_outage_answers_every_request_503_until_the_plan_changes(
    proxy: FaultProxy, sqs: Any, queue: str
) -> None:
    proxy.plan = FaultPlan(unavailable=True)
    for call in (
        lambda: sqs.send_message(QueueUrl=queue, MessageBody="lost"),
        lambda: sqs.receive_message(QueueUrl=queue),
        lambda: sqs.get_queue_attributes(QueueUrl=queue),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as failed:
            await call()
        assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert failed.value.response["Error"]["Code"] == "ServiceUnavailable"
    stats = proxy.snapshot()
    assert stats.faults["unavailable"] == 3
    assert stats.forwarded == 1  # only the queue's creation, before the outage
    proxy.plan = FaultPlan()
    await sqs.send_message(QueueUrl=queue, MessageBody="after")
    assert await bodies_in(sqs, queue) == ["after"]


async def test_fail_first_fails_the_next_sends_after_the_plan_was_set(
    proxy: FaultProxy, sqs: Any, queue: str
) -> None:
    await sqs.send_message(QueueUrl=queue, MessageBody="before")
    proxy.plan = FaultPlan(fail_first=2)
    outcomes: list[str] = []
    for i in range(4):
        try:
            await sqs.send_message(QueueUrl=queue, MessageBody=f"m{i}")
            outcomes.append("ok")
        except botocore.exceptions.ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])
    assert outcomes == ["ServiceUnavailable", "ServiceUnavailable", "ok", "ok"]
    assert proxy.snapshot().faults["unavailable"] == 2
    assert await bodies_in(sqs, queue) == ["before", "m2", "m3"]
