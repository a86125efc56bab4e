"""`SDK.ingest`: connectors run end to end into the local SQS server."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import anyio
import anyio.lowlevel
import pytest
from aiohttp import web

from faultproxy import FaultPlan, FaultProxy
from panoply_async import (
    SDK,
    DataSource,
    PanoplyException,
    RecordGroup,
    to_record,
    validate_token,
)
from panoply_async.local import LocalSQS
from panoply_async.testing import LocalQueue

PAGES = 7
PER_PAGE = 30


async def start_api() -> tuple[str, web.AppRunner]:
    """A paginated JSON API on 127.0.0.1: /items?page=N, 401 without the right token."""

    async def items(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer good":
            return web.json_response({"error": "expired"}, status=401)
        page = int(request.query.get("page", "0"))
        data = [{"id": page * PER_PAGE + i, "page": page} for i in range(PER_PAGE)]
        return web.json_response({"data": data, "next": page + 1 if page + 1 < PAGES else None})

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("refresh_token") != "refresh-me":
            return web.json_response({"error": "invalid_grant"}, status=400)
        return web.json_response({"access_token": "good", "refresh_token": "refresh-me-2"})

    app = web.Application()
    app.router.add_get("/items", items)
    app.router.add_post("/token", token)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return f"http://127.0.0.1:{port}", runner


@pytest.fixture
async def api() -> AsyncIterator[str]:
    url, runner = await start_api()
    yield url
    await runner.cleanup()


class Unauthorized(Exception):
    pass


class ApiSource(DataSource):
    """Pages through the API, refreshing the token on 401, with progress and state."""

    def __init__(self, source: dict[str, Any], options: dict[str, Any] | None = None) -> None:
        super().__init__(source, options)
        self.page = int((source.get("state") or {}).get("page", 0))
        self.callbacks: list[dict[str, Any]] = []

    def remember(self, answer: dict[str, Any]) -> None:
        self.callbacks.append(answer)

    @validate_token(lambda self: self.source["base_url"] + "/token", Unauthorized,
                    callback="remember")
    async def fetch(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.source['access_token']}"}
        url = f"{self.source['base_url']}/items?page={self.page}"
        async with session.get(url, headers=headers) as response:
            if response.status == 401:
                raise Unauthorized()
            result: dict[str, Any] = await response.json()
            return result

    async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        async with aiohttp.ClientSession() as session:
            while self.page is not None:
                body = await self.fetch(session)
                page = self.page
                self.state(page, {"page": page + 1})
                self.progress(page + 1, PAGES, f"page {page + 1}")
                self.page = body["next"]
                yield [{**item, "__state": page} for item in body["data"]]


async def test_async_connector_paging_an_http_api(
    api: str, panoply_queue: LocalQueue, caplog: pytest.LogCaptureFixture
) -> None:
    source = ApiSource({"type": "items", "base_url": api, "access_token": "stale",
                        "refresh_token": "refresh-me"})
    progress: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    changes: list[Any] = []
    with caplog.at_level(logging.DEBUG):
        async with panoply_queue.sdk() as conn:
            conn.on("progress", progress.append).on("source-state", states.append)
            conn.on("source-change", changes.append)
            result = await conn.ingest(source)
    assert result.records == PAGES * PER_PAGE
    assert result.tables == {"items": PAGES * PER_PAGE}
    assert result.state == {"page": PAGES}
    assert [p["loaded"] for p in progress] == list(range(1, PAGES + 1))
    assert [s["state_id"] for s in states] == list(range(PAGES))
    # The token was refreshed once, stored, announced and handed to the callback.
    assert source.source["access_token"] == "good"
    assert source.source["refresh_token"] == "refresh-me-2"
    assert changes == [{"access_token": "good", "refresh_token": "refresh-me-2"}]
    assert source.callbacks[0]["access_token"] == "good"
    assert "refresh-me" not in caplog.text
    assert "Bearer good" not in caplog.text
    tables = await panoply_queue.atables()
    assert sorted(r["id"] for r in tables["items"]) == list(range(PAGES * PER_PAGE))


async def test_refresh_failure_is_not_retryable_and_leaks_nothing(
    api: str, panoply_queue: LocalQueue, caplog: pytest.LogCaptureFixture
) -> None:
    source = ApiSource({"type": "items", "base_url": api, "access_token": "stale",
                        "refresh_token": "wrong-secret-token"})
    with caplog.at_level(logging.DEBUG):
        async with panoply_queue.sdk() as conn:
            with pytest.raises(PanoplyException) as info:
                await conn.ingest(source)
    assert info.value.retryable is False
    assert "wrong-secret-token" not in str(info.value)
    assert "wrong-secret-token" not in caplog.text


class LegacySource(DataSource):
    """The seed's protocol: read() returns a list, then None; blocking is fine."""

    def __init__(self, source: dict[str, Any], options: dict[str, Any] | None = None) -> None:
        super().__init__(source, options)
        self.calls = 0
        self.threads: set[int] = set()

    def read(self, n: int | None = None) -> list[dict[str, Any]] | None:  # type: ignore[override]
        self.threads.add(threading.get_ident())
        self.calls += 1
        if self.calls > 4:
            return None
        self.progress(self.calls, 4, "legacy")
        self.state(self.calls, {"offset": self.calls * 10})
        self.log("read page", self.calls, "with password", self.source["password"])
        return [{"id": self.calls * 10 + i, "__state": self.calls, "__table": "t"}
                for i in range(10)]


async def test_legacy_connector_runs_unchanged_in_a_thread(
    panoply_queue: LocalQueue, caplog: pytest.LogCaptureFixture
) -> None:
    source = LegacySource({"type": "legacy", "destination": "typeform_{__table}",
                           "password": "hunter2-secret"})
    progress: list[Any] = []
    with caplog.at_level(logging.INFO):
        async with panoply_queue.sdk() as conn:
            conn.on("progress", progress.append)
            result = await conn.ingest(source)
    assert threading.get_ident() not in source.threads
    assert result.records == 40
    assert result.tables == {"typeform_t": 40}
    assert result.state == {"offset": 40}
    assert len(progress) == 4
    assert "read page 1 with password ***" in caplog.text
    assert "hunter2-secret" not in caplog.text
    assert len((await panoply_queue.atables())["typeform_t"]) == 40


class GroupSource(DataSource):
    async def read(self, n: int | None = None) -> AsyncIterator[RecordGroup]:
        yield to_record("contacts", [{"id": 1}, {"id": 2}])
        yield to_record("deals", {"id": 3})


async def test_record_groups_go_to_their_resource(panoply_queue: LocalQueue) -> None:
    async with panoply_queue.sdk() as conn:
        result = await conn.ingest(GroupSource({"type": "crm"}))
        templated = await conn.ingest(
            GroupSource({"type": "crm", "destination": "crm_{resource_id}"})
        )
    assert result.tables == {"contacts": 2, "deals": 1}
    assert templated.tables == {"crm_contacts": 2, "crm_deals": 1}


class FlakySource(DataSource):
    def __init__(self, source: dict[str, Any], fail_times: int, retryable: bool = True) -> None:
        super().__init__(source)
        self.fail_times = fail_times
        self.retryable = retryable
        self.next_page = 0
        self.closed = 0
        self.attempts = 0

    async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        self.attempts += 1
        while self.next_page < 3:
            if self.fail_times:
                self.fail_times -= 1
                raise PanoplyException("flaky upstream", retryable=self.retryable)
            page = self.next_page
            self.next_page += 1
            yield [{"id": page}]

    async def close(self) -> None:
        self.closed += 1


async def test_flaky_read_is_retried(panoply_queue: LocalQueue) -> None:
    source = FlakySource({"type": "flaky"}, fail_times=2)
    async with panoply_queue.sdk() as conn:
        from panoply_async._engine import pipeline as _pipeline

        result = await _pipeline.ingest(conn, source, backoff=0.001)
    assert source.attempts == 3
    assert result.records == 3
    assert source.closed == 1


async def test_non_retryable_error_stops_at_once_and_closes(panoply_queue: LocalQueue) -> None:
    source = FlakySource({"type": "flaky"}, fail_times=1, retryable=False)
    async with panoply_queue.sdk() as conn:
        with pytest.raises(PanoplyException, match="flaky upstream"):
            await conn.ingest(source)
    assert source.attempts == 1
    assert source.closed == 1


async def test_three_failures_give_up(panoply_queue: LocalQueue) -> None:
    source = FlakySource({"type": "flaky"}, fail_times=5)
    async with panoply_queue.sdk() as conn:
        from panoply_async._engine import pipeline as _pipeline

        with pytest.raises(PanoplyException):
            await _pipeline.ingest(conn, source, backoff=0.001)
    assert source.attempts == 3
    assert source.closed == 1


class RestartingSource(DataSource):
    """Starts from its first page on every read() and fails after ``pages`` pages."""

    def __init__(self, source: dict[str, Any], pages: list[int]) -> None:
        super().__init__(source)
        self.pages_per_attempt = pages
        self.attempts = 0

    async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        pages = self.pages_per_attempt[min(self.attempts, len(self.pages_per_attempt) - 1)]
        self.attempts += 1
        for page in range(pages):
            yield [{"id": page}]
        raise PanoplyException("upstream dropped the connection")


async def test_a_source_failing_at_the_same_place_is_not_retried_forever(
    panoply_queue: LocalQueue,
) -> None:
    source = RestartingSource({"type": "restarting"}, pages=[1])
    async with panoply_queue.sdk() as conn:
        from panoply_async._engine import pipeline as _pipeline

        with pytest.raises(PanoplyException, match="dropped"):
            await _pipeline.ingest(conn, source, backoff=0.001)
    assert source.attempts == 3


async def test_a_retry_that_gets_further_starts_the_count_again(
    panoply_queue: LocalQueue,
) -> None:
    source = RestartingSource({"type": "restarting"}, pages=[1, 1, 2, 2, 3, 3, 3])
    async with panoply_queue.sdk() as conn:
        from panoply_async._engine import pipeline as _pipeline

        with pytest.raises(PanoplyException, match="dropped"):
            await _pipeline.ingest(conn, source, backoff=0.001)
    # 1, 1 (count 2), 2 (further: count 1), 2 (2), 3 (further: 1), 3 (2), 3 (3: gives up)
    assert source.attempts == 7


class CountingSource(DataSource):
    """Pages of 50 records from ``state.next``; reports state after each page."""

    async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        start = int((self.source.get("state") or {}).get("next", 0))
        for page_start in range(start, 2_000, 50):
            self.state(page_start, {"next": page_start + 50})
            yield [{"id": i, "__state": page_start} for i in range(page_start, page_start + 50)]


@pytest.fixture
def proxy(panoply_server: LocalSQS) -> Iterator[FaultProxy]:
    with FaultProxy(panoply_server.endpoint_url, seed=7) as running:
        yield running


async def test_state_commits_only_after_ack_and_resume_loses_nothing(
    proxy: FaultProxy, panoply_queue: LocalQueue, tmp_path: Any
) -> None:
    committed: list[tuple[Any, Any]] = []
    acked_ids: set[int] = set()

    def check_commit(state_id: Any, state: Any) -> None:
        # Every record up to this state must be in SQS already.
        received = {r["id"] for r in panoply_queue.records()}
        acked_ids.update(received)
        assert set(range(state["next"])) <= acked_ids
        committed.append((state_id, state))

    # First run: the server fails every request after a while, so delivery fails.
    sent = 0

    def count(data: Any) -> None:
        nonlocal sent
        sent += 1
        if sent == 4:  # one sender: requests 1-3 were answered before this one
            proxy.plan = FaultPlan(fail_all=True)

    conn = SDK(panoply_queue.apikey, panoply_queue.apisecret, endpoint_url=proxy.endpoint_url,
               max_message_bytes=8 * 1024, max_attempts=2, backoff_base=0.001,
               spool_dir=tmp_path, flush_interval=0.05, max_concurrent_sends=1)
    conn.on("send", count)
    async with conn:
        first = await conn.ingest(CountingSource({"type": "n"}), on_state=check_commit)
    assert not first.delivered
    assert conn.stats.records_spooled > 0
    assert committed  # some states were acknowledged before the failure
    last_state = committed[-1][1]
    assert last_state["next"] < 2_000

    # Second run resumes from the committed state against a healthy server.
    proxy.plan = FaultPlan()
    async with panoply_queue.sdk() as again:
        second = await again.ingest(CountingSource({"type": "n", "state": last_state}))
    assert second.delivered
    received = {r["id"] for r in await panoply_queue.arecords()} | acked_ids
    assert received == set(range(2_000))


async def test_events_from_handlers_do_not_break_ingest(panoply_queue: LocalQueue) -> None:
    def broken(data: Any) -> None:
        raise RuntimeError("handler bug")

    async with panoply_queue.sdk() as conn:
        conn.on("progress", broken).on("source-state", broken)
        result = await conn.ingest(ApiLess({"type": "x"}))
    assert result.records == 2


class ApiLess(DataSource):
    async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        self.progress(1, 1)
        self.state("s", {"done": True})
        yield [{"id": 1, "__state": "s"}, {"id": 2, "__state": "s"}]
        await anyio.lowlevel.checkpoint()


class LegacyWithClose(DataSource):
    def __init__(self, source: dict[str, Any]) -> None:
        super().__init__(source)
        self.done = False
        self.closed_in: int | None = None

    def read(self, n: int | None = None) -> list[dict[str, Any]] | None:  # type: ignore[override]
        if self.done:
            return None
        self.done = True
        return [{"id": 1}]

    def close(self) -> None:  # type: ignore[override]
        self.closed_in = threading.get_ident()


async def test_legacy_plain_close_runs_in_a_thread(panoply_queue: LocalQueue) -> None:
    source = LegacyWithClose({"type": "legacy"})
    async with panoply_queue.sdk() as conn:
        result = await conn.ingest(source)
    assert result.records == 1
    assert source.closed_in is not None
    assert source.closed_in != threading.get_ident()


class BadRecords(DataSource):
    def __init__(self, source: dict[str, Any]) -> None:
        super().__init__(source)
        self.reads = 0

    async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        self.reads += 1
        yield [{"id": 1, "bad": object()}]


async def test_a_record_the_sdk_refuses_is_not_re_read(panoply_queue: LocalQueue) -> None:
    from panoply_async import RecordError

    source = BadRecords({"type": "t"})
    async with panoply_queue.sdk() as conn:
        with pytest.raises(RecordError):
            await conn.ingest(source)
    assert source.reads == 1
