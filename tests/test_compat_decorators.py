"""The legacy decorators of ``panoply_async.compat`` on plain methods, as legacy
connectors have them: against a local OAuth refresh endpoint, under the runner (the
legacy read() thread) and from plain synchronous code."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import panoply_async.compat as panoply
from panoply_async import SDK, MemoryTransport, decode_body
from panoply_async.errors import BackgroundTimeoutError, TokenValidationException
from panoply_async.local import make_credentials

STALE, FRESH, REFRESH = "stale-TOKEN-1", "fresh-TOKEN-2", "refresh-TOKEN-3"


class Unauthorized(Exception):
    pass


@dataclass
class OAuth:
    url: str = ""
    status: int = 200
    forms: list[dict[str, str]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.forms.append({k: str(v) for k, v in form.items()})
        return web.json_response({"access_token": FRESH}, status=self.status)


@pytest.fixture
async def oauth() -> AsyncIterator[OAuth]:
    state = OAuth()
    app = web.Application()
    app.router.add_post("/token", state.handle)
    async with TestServer(app, host="127.0.0.1", port=0) as server:
        state.url = str(server.make_url("/token"))
        yield state


def make_source(url: str, callback: Any) -> panoply.DataSource:
    class Legacy(panoply.DataSource):
        def __init__(self, source: dict[str, Any], options: dict[str, Any]) -> None:
            super().__init__(source, options)
            self.done = False
            self.tokens: list[str] = []

        def on_token(self, token: str) -> None:
            self.tokens.append(token)

        @panoply.validate_token(url, (Unauthorized,), callback)
        def fetch(self) -> list[dict[str, Any]]:
            if self.source["access_token"] != FRESH:
                raise Unauthorized("401")
            return [{"id": 1}]

        def read(self) -> list[dict[str, Any]] | None:
            if self.done:
                return None
            self.done = True
            return self.fetch()

    return Legacy({"type": "api", "access_token": STALE, "refresh_token": REFRESH},
                  {"refresh": {"client_id": "cid"}})


async def test_plain_method_refreshes_under_the_runner(oauth: OAuth) -> None:
    ds = make_source(oauth.url, "on_token")
    changes: list[Any] = []
    ds.on("source-change", changes.append)
    transport = MemoryTransport()
    async with SDK(*make_credentials("decorators"), transport=transport) as conn:
        await conn.ingest(ds)
    assert [r["id"] for body in transport.bodies for r in decode_body(body)] == [1]
    assert ds.source["access_token"] == FRESH
    assert changes == [{"access_token": FRESH}]
    assert ds.tokens == [FRESH]  # type: ignore[attr-defined]  # the legacy callback
    assert oauth.forms == [{"grant_type": "refresh_token", "client_id": "cid",
                            "refresh_token": REFRESH}]


async def test_plain_method_refreshes_from_synchronous_code(oauth: OAuth) -> None:
    seen: list[str] = []

    def synchronous() -> Any:  # no event loop in this thread: the legacy way
        ds = make_source(oauth.url, seen.append)
        return ds.fetch()  # type: ignore[attr-defined]

    assert await asyncio.to_thread(synchronous) == [{"id": 1}]
    assert seen == [FRESH]


async def test_a_failed_refresh_is_a_token_validation_exception(oauth: OAuth) -> None:
    oauth.status = 400
    ds = make_source(oauth.url, None)
    with pytest.raises(TokenValidationException) as info:
        await asyncio.to_thread(ds.fetch)  # type: ignore[attr-defined]
    assert info.value.retryable is False
    assert STALE not in str(info.value)
    assert REFRESH not in str(info.value)


def test_exceptions_default_to_none_as_in_the_legacy_decorator() -> None:
    class Legacy(panoply.DataSource):
        @panoply.validate_token("http://127.0.0.1:9/never")
        def fetch(self) -> None:
            raise Unauthorized("not caught: nothing was listed")

        def read(self) -> None:
            return None

    with pytest.raises(Unauthorized):
        Legacy({"access_token": STALE}).fetch()


class Slow(panoply.DataSource):
    def __init__(self) -> None:
        super().__init__({"type": "slow"})
        self.release = threading.Event()
        self.reports: list[Any] = []
        self.on("progress", self.reports.append)

    @panoply.background_progress("still counting", waiting_interval=0.01, timeout=600)
    def count(self) -> int:
        # Returns once the caller's thread has reported a few times.
        self.release.wait(60)
        return 42

    @panoply.background_progress("never ends", waiting_interval=0.01, timeout=0.05)
    def stuck(self) -> None:
        self.release.wait(60)

    @panoply.background_progress("fails")
    def fails(self) -> None:
        raise KeyError("boom")

    def read(self) -> None:
        return None


def test_background_progress_on_a_plain_method() -> None:
    ds = Slow()

    def report(data: Any) -> None:
        if len(ds.reports) >= 3:
            ds.release.set()

    ds.on("progress", report)
    assert ds.count() == 42
    assert len(ds.reports) >= 3
    assert ds.reports[0] == {"loaded": None, "total": None, "msg": "still counting"}


def test_background_progress_timeout_and_errors() -> None:
    ds = Slow()
    try:
        with pytest.raises(BackgroundTimeoutError, match="its thread is abandoned"):
            ds.stuck()
    finally:
        ds.release.set()
    with pytest.raises(KeyError):
        ds.fails()
