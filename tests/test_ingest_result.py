"""``IngestResult.delivered`` and state commits depend on the run's own records only
(issue 19, item 12): another task writing to the same SDK, whose message is spooled
during the run, does not count against it. Real client, fault proxy, local server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio

from faultproxy import FaultProxy
from panoply_async import SDK, DataSource
from panoply_async.local import LocalSQS
from panoply_async.testing import LocalQueue


class GatedSource(DataSource):
    """Two batches; between them it waits until the test let another task write."""

    def __init__(self, source: dict[str, Any]) -> None:
        super().__init__(source)
        self.first_written = anyio.Event()
        self.gate = anyio.Event()

    async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        yield [{"id": i} for i in range(10)]
        self.first_written.set()  # read() resumes once the first batch was written
        await self.gate.wait()
        yield [{"id": i} for i in range(10, 20)]
        self.state("s1", {"next": 20})


async def test_a_spool_by_another_task_does_not_make_the_run_undelivered(
    panoply_server: LocalSQS, panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    committed: list[Any] = []
    result: Any = None
    # The proxy refuses messages over 8 KiB: the other task's big record is spooled
    # at once (a non-retryable refusal) while the run's small messages go through.
    with FaultProxy(panoply_server.endpoint_url, max_message_bytes=8 * 1024) as proxy:
        conn = SDK(panoply_queue.apikey, panoply_queue.apisecret,
                   endpoint_url=proxy.endpoint_url, spool_dir=tmp_path, flush_interval=0.05)
        source = GatedSource({"type": "gated"})

        async def run() -> None:
            nonlocal result
            result = await conn.ingest(source, on_state=lambda i, s: committed.append(i))

        async with conn, anyio.create_task_group() as tasks:
            tasks.start_soon(run)
            with anyio.fail_after(10):
                await source.first_written.wait()
                await conn.flush()  # the run's first message stands alone
                await conn.write("other", {"pad": "x" * 10_000})
                await conn.flush()
            assert conn.stats.records_spooled == 1
            source.gate.set()
    assert result is not None
    assert result.records == 20
    assert result.delivered is True
    assert committed == ["s1"]
    assert result.states_committed == 1
    records = await panoply_queue.arecords()
    assert sorted(r["id"] for r in records if r["__table"] == "gated") == list(range(20))
    assert conn.stats.records_spooled == 1


async def test_a_run_whose_own_record_is_spooled_is_not_delivered(
    panoply_server: LocalSQS, panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    class BigSource(DataSource):
        async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
            yield [{"id": 1}]
            yield [{"id": 2, "pad": "x" * 10_000}]
            self.state("s1", {"next": 3})

    committed: list[Any] = []
    with FaultProxy(panoply_server.endpoint_url, max_message_bytes=8 * 1024) as proxy:
        conn = SDK(panoply_queue.apikey, panoply_queue.apisecret,
                   endpoint_url=proxy.endpoint_url, spool_dir=tmp_path, flush_interval=0.05,
                   max_message_bytes=8 * 1024 + 4096)
        async with conn:
            result = await conn.ingest(BigSource({"type": "big"}),
                                       on_state=lambda i, s: committed.append(i))
    assert result.delivered is False
    assert committed == []
    assert conn.stats.records_spooled >= 1
