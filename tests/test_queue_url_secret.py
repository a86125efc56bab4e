"""The queue URL is a secret (issue 19): its queue name holds part of the api secret.

Neither the URL, nor its queue name, nor the secret's random part appears in a
repr, an error, an ``error`` event, or any file the SDK writes (the spool's
names and contents, the write-ahead log's). Spool lines name the queue by a
digest; lines of the previous format (which held ``queue_url``) still replay.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from diskfaults import ids_of
from panoply_async import SDK, DeliveryError, MemoryTransport, Message, SendError, SyncSDK
from panoply_async.compat import SDK as LegacySDK
from panoply_async.testing import LocalQueue


def secret_parts(apikey: str, apisecret: str, queue_url: str) -> list[str]:
    rand2 = base64.b64decode(apisecret).decode().split("/")[0]
    return [apisecret, queue_url, queue_url.rsplit("/", 1)[-1], rand2]


def files_text(*directories: Path) -> list[str]:
    """Every file's name and contents (bytes decoded leniently) under ``directories``."""
    texts = []
    for directory in directories:
        for path in sorted(directory.rglob("*")):
            texts.append(str(path.relative_to(directory)))
            if path.is_file():
                texts.append(path.read_bytes().decode("utf-8", "replace"))
    return texts


async def test_queue_url_never_shown_by_the_sdk_nor_written(
    panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    apikey, apisecret = panoply_queue.apikey, panoply_queue.apisecret
    secrets = secret_parts(apikey, apisecret, panoply_queue.queue_url)
    texts: list[str] = []
    # The server answers nothing here: every message is given up on, spooled or
    # kept in the log, and reported.
    for spool in (True, False):
        conn = SDK(apikey, apisecret, endpoint_url="http://127.0.0.1:9", max_attempts=1,
                   request_timeout=5, wal_dir=tmp_path / "wal",
                   spool_dir=tmp_path / "spool" if spool else None)
        conn.on("error", lambda data: texts.append(repr(data)))
        texts.append(repr(conn))
        try:
            async with conn:
                texts.append(repr(conn))
                await conn.write("t", {"id": 1})
                await conn.flush()
        except DeliveryError as exc:
            texts.extend([str(exc), repr(exc)])
        texts.append(repr(conn))
    assert len(texts) > 6
    texts += files_text(tmp_path)
    assert any("spool" in t for t in texts)  # the spool was written
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_sync_and_legacy_reprs_and_errors(vector_credentials: tuple[str, str],
                                          vectors: dict[str, Any]) -> None:
    apikey, apisecret = vector_credentials
    secrets = secret_parts(apikey, apisecret, vectors["credentials"][0]["queue_url"])

    def refuse(messages: Sequence[Message]) -> BaseException:
        return SendError("refused", retryable=False)

    conn = SyncSDK(apikey, apisecret, transport=MemoryTransport(fault=refuse))
    legacy = LegacySDK(apikey, apisecret, transport=MemoryTransport(fault=refuse))
    texts = [repr(conn), str(conn), repr(legacy), str(legacy)]
    conn.write("t", {"id": 1})
    legacy.write("t", {"id": 1})
    with pytest.raises(DeliveryError) as raised:
        conn.close()
    texts += [repr(conn), str(raised.value)]
    with pytest.raises(DeliveryError) as raised_legacy:
        legacy.close()
    texts += [repr(legacy), str(raised_legacy.value)]
    for text in texts:
        for secret in secrets:
            assert secret not in text


async def test_spool_files_of_the_previous_format_still_replay(
    vector_credentials: tuple[str, str], vectors: dict[str, Any], tmp_path: Path
) -> None:
    queue_url = vectors["credentials"][0]["queue_url"]
    lines = [
        {"v": 1, "queue_url": queue_url, "body": '{"id":1,"__table":"t"}\n', "records": 1,
         "error": "x", "spooled_at": "2026-01-01T00:00:00.000+00:00"},
        {"v": 1, "queue_url": queue_url.replace("sdk-", "sdk-other-"),
         "body": '{"id":2,"__table":"t"}\n', "records": 1, "error": "x",
         "spooled_at": "2026-01-01T00:00:00.000+00:00"},
    ]
    path = tmp_path / "panoply-acme-old.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    sink = MemoryTransport()
    async with SDK(*vector_credentials, transport=sink) as conn:
        result = await conn.replay(path)
    assert ids_of(sink.bodies) == [1]
    assert result.messages_other_queue == 1  # another queue's line stays, verbatim
    assert json.loads(path.read_text().splitlines()[0]) == lines[1]
