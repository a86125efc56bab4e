"""The botocore client a LocalSQS reads its queues with, and its receive helpers."""

from __future__ import annotations

import math
from typing import Any

from .server import REGION

__all__ = ["MAX_WAIT_SECONDS", "botocore_client", "delete_messages", "poll_seconds"]

#: SQS caps a single long poll at 20 seconds.
MAX_WAIT_SECONDS = 20


def poll_seconds(remaining: float) -> int:
    """``WaitTimeSeconds`` for a long poll of at most ``remaining`` seconds (whole seconds)."""
    if remaining <= 0:
        return 0
    return min(MAX_WAIT_SECONDS, max(1, math.ceil(remaining)))


def delete_messages(client: Any, queue_url: str, messages: list[dict[str, Any]]) -> None:
    client.delete_message_batch(
        QueueUrl=queue_url,
        Entries=[
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
            for index, message in enumerate(messages)
        ],
    )


def botocore_client(endpoint_url: str) -> Any:
    import botocore
    import botocore.session
    from botocore.config import Config

    # Unsigned, like the SDK by default; the region does not matter to this server.
    return botocore.session.get_session().create_client(
        "sqs",
        region_name=REGION,
        endpoint_url=endpoint_url,
        config=Config(
            signature_version=botocore.UNSIGNED,
            retries={"total_max_attempts": 1},
            # A long poll (up to 20 s) must not time out on the client first.
            read_timeout=MAX_WAIT_SECONDS + 10,
        ),
    )
