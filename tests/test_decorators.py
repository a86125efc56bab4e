"""`validate_token` against a local OAuth refresh endpoint, and `background_progress`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from panoply_async.connectors import _decorators as decorators
from panoply_async.connectors._datasource import DataSource
from panoply_async.connectors._decorators import background_progress, validate_token
from panoply_async.errors import (
    BackgroundTimeoutError,
    PanoplyException,
    TokenValidationException,
)

STALE = "stale-access-TOKEN-111"
FRESH = "fresh-access-TOKEN-222"
REFRESH = "refresh-TOKEN-333"
ROTATED = "refresh-TOKEN-444"
CLIENT_SECRET = "client-SECRET-555"
SECRETS = (STALE, FRESH, REFRESH, ROTATED, CLIENT_SECRET)


class Unauthorized(Exception):
    pass


@dataclass
class OAuthServer:
    """What the refresh endpoint answers, and the forms it received."""

    status: int = 200
    answer: Any = field(default_factory=lambda: {"access_token": FRESH,
                                                 "refresh_token": ROTATED})
    raw_body: str | None = None
    forms: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.forms.append({key: str(value) for key, value in form.items()})
        if self.raw_body is not None:
            return web.Response(status=self.status, text=self.raw_body)
        return web.json_response(self.answer, status=self.status)


@pytest.fixture
async def oauth(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[OAuthServer]:
    monkeypatch.setattr(decorators, "REFRESH_BACKOFF", 0.0)
    state = OAuthServer()
    app = web.Application()
    app.router.add_post("/token", state.handle)
    async with TestServer(app, host="127.0.0.1", port=0) as server:
        state.url = str(server.make_url("/token"))
        yield state


class Api(DataSource):
    """A connector whose calls fail while the access token is not FRESH."""

    def __init__(self, source: dict[str, Any], url: str) -> None:
        super().__init__(source, {"refresh": {"client_id": "cid", "client_secret": CLIENT_SECRET}})
        self.url = url
        self.calls = 0
        self.answers: list[dict[str, Any]] = []

    def _check(self) -> None:
        self.calls += 1
        if self.source.get("access_token") != FRESH:
            raise Unauthorized(f"401 for token {self.source.get('access_token')}")

    def remember(self, answer: dict[str, Any]) -> None:
        self.answers.append(answer)

    @validate_token(lambda self: self.url, Unauthorized, callback="remember")
    async def fetch(self, page: int) -> dict[str, Any]:
        self._check()
        return {"page": page}

    @validate_token(lambda self: self.url, Unauthorized)
    async def always_fails(self) -> None:
        self.calls += 1
        raise Unauthorized("still refused")

    @validate_token(lambda self: self.url, KeyError)
    async def other_error(self) -> None:
        self.calls += 1
        raise Unauthorized("not a token problem")


def make_api(oauth: OAuthServer, **extra: Any) -> Api:
    source = {"type": "api", "access_token": STALE, "refresh_token": REFRESH, **extra}
    return Api(source, oauth.url)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


async def test_refresh_stores_announces_calls_back_and_retries_once(
    oauth: OAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    api = make_api(oauth)
    changes: list[Any] = []
    api.on("source-change", changes.append)
    with caplog.at_level(logging.DEBUG):
        assert await api.fetch(3) == {"page": 3}
    assert api.calls == 2
    assert oauth.forms == [{"grant_type": "refresh_token", "client_id": "cid",
                            "client_secret": CLIENT_SECRET, "refresh_token": REFRESH}]
    assert api.source["access_token"] == FRESH
    assert api.source["refresh_token"] == ROTATED
    assert changes == [{"access_token": FRESH, "refresh_token": ROTATED}]
    assert api.answers == [{"access_token": FRESH, "refresh_token": ROTATED}]
    assert "refreshed" in caplog.text
    assert_no_secret(caplog.text)


async def test_a_valid_token_is_not_refreshed(oauth: OAuthServer) -> None:
    api = make_api(oauth, access_token=FRESH)
    assert await api.fetch(1) == {"page": 1}
    assert api.calls == 1
    assert oauth.forms == []


async def test_refresh_without_a_new_refresh_token_keeps_the_old_one(
    oauth: OAuthServer,
) -> None:
    oauth.answer = {"access_token": FRESH, "expires_in": 3600}
    api = make_api(oauth)
    await api.fetch(1)
    assert api.source["refresh_token"] == REFRESH
    assert api.answers == [{"access_token": FRESH, "expires_in": 3600}]


async def test_callables_and_coroutine_callbacks_get_self_and_the_answer(
    oauth: OAuthServer,
) -> None:
    got: list[tuple[Any, Any]] = []

    async def callback(ds: DataSource, answer: dict[str, Any]) -> None:
        await anyio.lowlevel.checkpoint()
        got.append((ds, answer["access_token"]))

    class WithCallback(Api):
        @validate_token(oauth.url, Unauthorized, callback=callback)
        async def get(self) -> str:
            self._check()
            return "ok"

    api = WithCallback({"access_token": STALE, "refresh_token": REFRESH}, oauth.url)
    assert await api.get() == "ok"
    assert got == [(api, FRESH)]


async def test_the_call_is_retried_only_once(oauth: OAuthServer) -> None:
    api = make_api(oauth)
    with pytest.raises(Unauthorized, match="still refused"):
        await api.always_fails()
    assert api.calls == 2
    assert len(oauth.forms) == 1


async def test_other_errors_pass_without_a_refresh(oauth: OAuthServer) -> None:
    api = make_api(oauth)
    with pytest.raises(Unauthorized, match="not a token problem"):
        await api.other_error()
    assert api.calls == 1
    assert oauth.forms == []


@pytest.mark.parametrize("status", [400, 401, 403])
async def test_a_refused_refresh_is_not_retryable_and_leaks_nothing(
    oauth: OAuthServer, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    oauth.status = status
    # An error page that echoes what it was sent must not reach messages or logs.
    oauth.raw_body = f"invalid_grant for {REFRESH} with {CLIENT_SECRET}"
    api = make_api(oauth)
    with caplog.at_level(logging.DEBUG), pytest.raises(TokenValidationException) as info:
        await api.fetch(1)
    exc = info.value
    assert isinstance(exc, PanoplyException)
    assert exc.retryable is False
    assert f"HTTP {status}" in str(exc)
    assert len(oauth.forms) == 1  # client errors are not retried
    assert api.calls == 1
    assert_no_secret(str(exc))
    assert_no_secret(repr(exc))
    assert_no_secret(caplog.text)


async def test_server_errors_are_retried_then_refused(
    oauth: OAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    oauth.status = 500
    api = make_api(oauth)
    with caplog.at_level(logging.DEBUG), pytest.raises(TokenValidationException) as info:
        await api.fetch(1)
    assert info.value.retryable is False
    assert "HTTP 500" in str(info.value)
    assert len(oauth.forms) == decorators.REFRESH_ATTEMPTS
    assert_no_secret(caplog.text)


@pytest.mark.parametrize(
    ("answer", "raw", "message"),
    [
        ({"token": "x"}, None, "has no 'access_token'"),
        ([FRESH], None, "not a JSON object"),
        (None, f"access_token={FRESH}", "not JSON"),
    ],
)
async def test_an_unusable_answer_is_refused(
    oauth: OAuthServer, answer: Any, raw: str | None, message: str
) -> None:
    oauth.answer = answer
    oauth.raw_body = raw
    api = make_api(oauth)
    with pytest.raises(TokenValidationException, match=message) as info:
        await api.fetch(1)
    assert_no_secret(str(info.value))
    assert api.source["access_token"] == STALE


async def test_no_refresh_token_means_no_request(oauth: OAuthServer) -> None:
    api = make_api(oauth, refresh_token="")
    with pytest.raises(TokenValidationException, match="no 'refresh_token'"):
        await api.fetch(1)
    assert oauth.forms == []


async def test_an_unreachable_endpoint_is_refused_without_its_query(
    oauth: OAuthServer,
) -> None:
    # A port nobody listens on: the connection is refused at once.
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    api = Api({"access_token": STALE, "refresh_token": REFRESH},
              f"http://127.0.0.1:{port}/token?client_secret={CLIENT_SECRET}")
    with pytest.raises(TokenValidationException, match=r"calling http://127\.0\.0\.1") as info:
        await api.fetch(1)
    assert_no_secret(str(info.value))


async def test_concurrent_failures_refresh_once(oauth: OAuthServer) -> None:
    both_failed = anyio.Event()
    arrived = 0

    class Concurrent(Api):
        @validate_token(oauth.url, Unauthorized)
        async def get(self) -> str:
            nonlocal arrived
            token = self.source["access_token"]
            if token != FRESH:
                arrived += 1
                if arrived == 2:
                    both_failed.set()
                # Both calls hold the stale token before either refreshes.
                await both_failed.wait()
                raise Unauthorized("401")
            return "ok"

    api = Concurrent({"access_token": STALE, "refresh_token": REFRESH}, oauth.url)
    results: list[str] = []

    async def call() -> None:
        results.append(await api.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        tg.start_soon(call)
    assert results == ["ok", "ok"]
    assert len(oauth.forms) == 1


class Pages(DataSource):
    def __init__(self, source: dict[str, Any], url: str, fail_after: int) -> None:
        super().__init__(source)
        self.url = url
        self.fail_after = fail_after
        self.starts = 0

    @validate_token(lambda self: self.url, Unauthorized)
    async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        self.starts += 1
        for page in range(3):
            if page >= self.fail_after and self.source["access_token"] != FRESH:
                raise Unauthorized("401")
            yield [{"page": page}]


async def test_a_generator_failing_before_yielding_is_restarted(oauth: OAuthServer) -> None:
    pages = Pages({"access_token": STALE, "refresh_token": REFRESH}, oauth.url, fail_after=0)
    assert [batch async for batch in pages.read()] == [[{"page": 0}], [{"page": 1}],
                                                      [{"page": 2}]]
    assert pages.starts == 2
    assert pages.source["access_token"] == FRESH


async def test_a_generator_failing_later_refreshes_and_re_raises(oauth: OAuthServer) -> None:
    pages = Pages({"access_token": STALE, "refresh_token": REFRESH}, oauth.url, fail_after=1)
    got: list[Any] = []

    async def drain() -> None:
        async for batch in pages.read():
            got.append(batch)

    with pytest.raises(Unauthorized):
        await drain()
    # Nothing is read twice; the runner's retry of read() finds a fresh token.
    assert got == [[{"page": 0}]]
    assert pages.starts == 1
    assert pages.source["access_token"] == FRESH


def test_validate_token_refuses_plain_functions() -> None:
    with pytest.raises(TypeError, match="coroutine functions"):
        validate_token("http://x", Unauthorized)(lambda self: None)


# -- background_progress ------------------------------------------------------------------


class Slow(DataSource):
    def __init__(self) -> None:
        super().__init__({"type": "slow"})
        self.release = anyio.Event()
        self.cancelled = False

    @background_progress("counting rows", interval=0.001)
    async def count(self) -> int:
        await self.release.wait()
        return 42

    @background_progress("exporting", interval=60, timeout=0.05)
    async def export(self) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            self.cancelled = True

    @background_progress("failing", interval=60)
    async def broken(self) -> None:
        raise ValueError("bad input")


async def test_progress_is_reported_while_the_operation_runs() -> None:
    slow = Slow()
    seen: list[Any] = []

    def on_progress(data: Any) -> None:
        seen.append(data)
        if len(seen) == 3:
            slow.release.set()  # the operation ends once three reports arrived

    slow.on("progress", on_progress)
    assert await slow.count() == 42
    assert len(seen) >= 3
    assert seen[0] == {"loaded": None, "total": None, "msg": "counting rows"}


async def test_the_first_report_comes_at_once() -> None:
    slow = Slow()
    seen: list[Any] = []
    slow.on("progress", seen.append)
    with pytest.raises(ValueError, match="bad input"):  # the error itself, not a group
        await slow.broken()
    assert seen == [{"loaded": None, "total": None, "msg": "failing"}]


async def test_the_operation_is_cancelled_at_the_timeout() -> None:
    slow = Slow()
    with pytest.raises(BackgroundTimeoutError, match="exporting") as info:
        await slow.export()
    assert slow.cancelled is True
    assert isinstance(info.value, TimeoutError)
    assert info.value.retryable is True
    assert info.value.timeout == 0.05


def test_background_progress_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="interval"):
        background_progress("x", interval=0)
    with pytest.raises(ValueError, match="timeout"):
        background_progress("x", timeout=-1)
    with pytest.raises(TypeError, match="coroutine functions"):
        background_progress("x")(lambda self: None)
