"""The contacts connector against a local aiohttp API, with the testing kit."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from http_api_connector import CONFIG, Stream

from panoply_async import PanoplyException
from panoply_async.connectors._contract import check_connector
from panoply_async.testing import LocalQueue

CONTACTS = [{"id": i, "name": f"contact {i}", "updated_at": f"2024-01-{1 + i // 40:02d}"}
            for i in range(230)]


class FakeApi:
    def __init__(self) -> None:
        self.valid_token = "token-2"
        self.refreshes = 0
        #: the token in use expires after this many pages (None: never)
        self.expire_after: int | None = None
        self.pages = 0

    async def contacts(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.valid_token}":
            return web.json_response({"error": "token expired"}, status=401)
        self.pages += 1
        if self.expire_after is not None and self.pages > self.expire_after:
            self.expire_after, self.valid_token = None, "token-3"
            return web.json_response({"error": "token expired"}, status=401)
        since = request.query.get("updated_since", "")
        limit = int(request.query["limit"])
        start = int(request.query.get("cursor", "0"))
        rows = [c for c in CONTACTS if c["updated_at"] > since]
        page = rows[start:start + limit]
        following = start + limit if start + limit < len(rows) else None
        return web.json_response({"data": page, "total": len(rows),
                                  "next_cursor": str(following) if following else None})

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("refresh_token") != "refresh-1":
            return web.json_response({"error": "invalid_grant"}, status=400)
        self.refreshes += 1
        return web.json_response({"access_token": self.valid_token})


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, FakeApi]]:
    fake = FakeApi()
    app = web.Application()
    app.router.add_get("/contacts", fake.contacts)
    app.router.add_post("/oauth/token", fake.token)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", fake
    await runner.cleanup()


def source_for(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "contacts", "base_url": url, "access_token": "token-1",
            "refresh_token": "refresh-1", **extra}


def test_module_contract() -> None:
    import http_api_connector

    assert check_connector(http_api_connector) == []
    assert {p["name"] for p in CONFIG["params"]} >= {"base_url", "access_token"}


async def test_reads_every_contact_refreshing_the_token(
    api: tuple[str, FakeApi], panoply_queue: LocalQueue, caplog: pytest.LogCaptureFixture
) -> None:
    url, fake = api
    changes: list[Any] = []
    with caplog.at_level(logging.DEBUG):
        async with panoply_queue.sdk() as conn:
            conn.on("source-change", changes.append)
            result = await conn.ingest(Stream(source_for(url)), batch_size=50)
    assert fake.refreshes == 1
    assert changes == [{"access_token": "token-2"}]
    assert result.records == 230
    assert result.state == {"updated_since": "2024-01-06"}
    tables = await panoply_queue.atables()
    assert sorted(r["id"] for r in tables["contacts"]) == list(range(230))
    assert "refresh-1" not in caplog.text
    assert "token-2" not in caplog.text


async def test_a_token_expiring_mid_run_is_refreshed_and_paging_resumes(
    api: tuple[str, FakeApi], panoply_queue: LocalQueue
) -> None:
    url, fake = api
    fake.expire_after = 2  # the third page is refused: two batches were already written
    async with panoply_queue.sdk() as conn:
        result = await conn.ingest(Stream(source_for(url, access_token="token-2")),
                                   batch_size=50)
    assert fake.refreshes == 1
    assert result.records == 230
    ids = [r["id"] for r in (await panoply_queue.atables())["contacts"]]
    assert sorted(ids) == list(range(230))  # resumed at the refused page: no duplicate


async def test_incremental_run_reads_only_what_changed(
    api: tuple[str, FakeApi], panoply_queue: LocalQueue
) -> None:
    url, _ = api
    async with panoply_queue.sdk() as conn:
        result = await conn.ingest(
            Stream(source_for(url, access_token="token-2",
                              state={"updated_since": "2024-01-05"})),
            batch_size=50,
        )
    assert result.records == 30
    ids = sorted(r["id"] for r in (await panoply_queue.atables())["contacts"])
    assert ids == list(range(200, 230))


async def test_revoked_refresh_token_stops_the_run(
    api: tuple[str, FakeApi], panoply_queue: LocalQueue
) -> None:
    url, _ = api
    async with panoply_queue.sdk() as conn:
        with pytest.raises(PanoplyException) as info:
            await conn.ingest(Stream(source_for(url, refresh_token="revoked")))
    assert info.value.retryable is False
    assert "revoked" not in str(info.value)
