"""``panoply-async tail``: receive, decode and print a queue's records."""

from __future__ import annotations

import json
from collections.abc import Callable

import click

__all__ = ["tail_queue"]


def region_of(queue_url: str) -> str:
    host = queue_url.split("/")[2]
    parts = host.split(".")
    return parts[1] if len(parts) > 3 and parts[0] == "sqs" else "us-east-1"


async def tail_queue(queue_url: str, endpoint_url: str | None, sign: bool, limit: int | None,
                     wait: float, ready: Callable[[], None] | None = None) -> int:
    import botocore
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    from .._wire.encoding import decode_body

    config = AioConfig(signature_version=None if sign else botocore.UNSIGNED)
    printed = 0
    async with get_session().create_client(
        "sqs", region_name=region_of(queue_url), endpoint_url=endpoint_url, config=config
    ) as client:
        if ready is not None:
            ready()
        while limit is None or printed < limit:
            response = await client.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=int(wait),
                MessageAttributeNames=["All"],
            )
            messages = response.get("Messages", [])
            if not messages and wait == 0:
                break
            for message in messages:
                for record in decode_body(message["Body"]):
                    click.echo(json.dumps(record, ensure_ascii=False))
                    printed += 1
            if messages:
                await client.delete_message_batch(QueueUrl=queue_url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ])
    return printed
