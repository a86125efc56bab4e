"""Issue 14 item 3: replay and a live SDK spooling into the same directory.

Replay used to read a spool file, send, then rewrite the file with what it had
read, so entries a live SDK appended meanwhile were gone although that SDK had
counted them as spooled. The writer now holds the file for as long as it is
open, and replay skips it (saying so) instead.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import anyio

from faultproxy import unused_endpoint_url
from panoply_async import SDK, Message, SendOutcome, SQSTransport, parse_credentials
from panoply_async.testing import LocalQueue


class GatedTransport:
    """The real SQS transport, whose requests wait until ``go`` is set."""

    def __init__(self, queue: LocalQueue) -> None:
        credentials = parse_credentials(queue.apikey, queue.apisecret)
        self._inner = SQSTransport(
            credentials.queue_url(queue.endpoint_url), credentials.region,
            {"key": queue.apikey, "secret": queue.apisecret, "sdk": "panoply-async-test"},
            endpoint_url=queue.endpoint_url,
        )
        self.sending = anyio.Event()
        self.go = anyio.Event()

    async def open(self) -> None:
        await self._inner.open()

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def send(self, messages: Sequence[Message]) -> SendOutcome:
        self.sending.set()
        await self.go.wait()
        return await self._inner.send(messages)


def spooled_ids(directory: Path) -> Counter[int]:
    found: Counter[int] = Counter()
    for path in directory.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            body = json.loads(line)["body"]
            found.update(json.loads(r)["id"] for r in body.splitlines() if r)
    return found


async def test_issue14_item3_replay_never_destroys_what_a_live_writer_spools(
    panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    writer = SDK(panoply_queue.apikey, panoply_queue.apisecret,
                 endpoint_url=unused_endpoint_url(), spool_dir=tmp_path, max_attempts=1)
    gate = GatedTransport(panoply_queue)
    async with writer:
        await writer.write_many("t", [{"id": i} for i in range(100)])
        await writer.flush()
        assert writer.stats.records_spooled == 100
        async with SDK(panoply_queue.apikey, panoply_queue.apisecret,
                       transport=gate) as replayer, anyio.create_task_group() as tasks:
            replayed = []

            async def replay() -> None:
                replayed.append(await replayer.replay(tmp_path))
                gate.sending.set()  # nothing was sent: let the writer go on

            tasks.start_soon(replay)
            # The replay has read the file and is sending, or has skipped it.
            await gate.sending.wait()
            await writer.write_many("t", [{"id": i} for i in range(100, 200)])
            await writer.flush()
            gate.go.set()
        assert writer.stats.records_spooled == 200
    # Every record the writer counted as spooled is still spooled or was delivered.
    delivered = Counter(r["id"] for r in await panoply_queue.arecords())
    assert set(spooled_ids(tmp_path) + delivered) == set(range(200))
    (result,) = replayed
    assert result.records_sent == 0
    assert result.files_skipped == [
        (writer.spool_path, "in use by a running writer or another replay")
    ]

    # Once the writer has closed, its file replays in full.
    async with panoply_queue.sdk() as again:
        result = await again.replay(tmp_path)
    assert result.records_sent == 200
    assert result.files_skipped == []
    delivered.update(r["id"] for r in await panoply_queue.arecords())
    assert delivered == Counter(range(200))
    assert list(tmp_path.iterdir()) == []
