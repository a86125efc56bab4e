"""The HTTP helper: the pure parts without I/O, then the client against a local aiohttp
server on 127.0.0.1 (a free port) for each paginator, retries and refusals."""

from __future__ import annotations

import datetime
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from panoply_async import (
    BasicAuth,
    BearerAuth,
    ConfigurationError,
    HeaderLinkPaginator,
    HTTPAuthError,
    HTTPError,
    JSONCursorPaginator,
    JSONLinkPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    PageRequest,
    PanoplyException,
    RESTClient,
)
from panoply_async.connectors._paginators import (
    PageAnswer,
    find_path,
    parse_link_header,
    parse_retry_after,
    retry_delay,
)

NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


def answer(records: list[Any], body: Any = None, headers: dict[str, str] | None = None
           ) -> PageAnswer:
    return PageAnswer(headers or {}, body if body is not None else {"items": records}, records)


# --- pure: dotted paths, Link, Retry-After, delays -------------------------------------

@pytest.mark.parametrize(("body", "path", "expected"), [
    ({"a": 1}, "a", 1),
    ({"a": {"b": {"c": "x"}}}, "a.b.c", "x"),
    ({"a": [{"u": 1}, {"u": 2}]}, "a.1.u", 2),
    ({"a": [{"u": 1}, {"u": 2}]}, "a.-1.u", 2),
    ({"a": [1]}, "a.5", None),
    ({"a": 1}, "b", None),
    ({"a": 1}, "a.b", None),
    ([1, 2], None, [1, 2]),
    ({"a": 1}, "", {"a": 1}),
    ({"a": None}, "a", None),
    ("text", "a", None),
])
def test_find_path(body: Any, path: str | None, expected: Any) -> None:
    assert find_path(body, path) == expected


@pytest.mark.parametrize(("header", "expected"), [
    ('<https://a/?page=2>; rel="next"', {"next": "https://a/?page=2"}),
    ('<https://a/?p=2>; rel="next", <https://a/?p=9>; rel="last"',
     {"next": "https://a/?p=2", "last": "https://a/?p=9"}),
    ('<https://a/?p=9>; rel="next last"', {"next": "https://a/?p=9", "last": "https://a/?p=9"}),
    ("<https://a/?p=2>; rel=next", {"next": "https://a/?p=2"}),
    ('<https://a/?x=1,2>; title="a, b; c"; rel="NEXT"', {"next": "https://a/?x=1,2"}),
    ('<https://a/1>; rel="next", <https://a/2>; rel="next"', {"next": "https://a/1"}),
    ('<https://a/1>; title="no rel"', {}),
    ("", {}),
    ("garbage, <", {}),
    ('  <  /relative?page=3 >;rel="next"', {"next": "/relative?page=3"}),
])
def test_parse_link_header(header: str, expected: dict[str, str]) -> None:
    assert parse_link_header(header) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("120", 120.0),
    (" 3 ", 3.0),
    ("0", 0.0),
    ("1.5", 1.5),
    ("-1", None),
    ("nan", None),
    ("inf", None),
    ("", None),
    (None, None),
    ("soon", None),
    ("Wed, 01 May 2024 12:00:30 GMT", 30.0),
    ("Wed, 01 May 2024 11:00:00 GMT", 0.0),  # in the past: go now
    ("Wednesday, 01-May-24 12:01:00 GMT", None),  # obsolete RFC 850 form is refused
])
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    parsed = parse_retry_after(value, NOW)
    if value == "Wednesday, 01-May-24 12:01:00 GMT" and parsed is not None:
        # email.utils reads the obsolete form on some Pythons: then it must be right.
        assert parsed == 60.0
        return
    assert parsed == expected


def test_retry_delay_honours_retry_after_capped() -> None:
    for attempt in range(1, 8):
        assert retry_delay(attempt, backoff=1, max_backoff=5, retry_after=7,
                           max_retry_after=60) == 7
        assert retry_delay(attempt, backoff=1, max_backoff=5, retry_after=600,
                           max_retry_after=60) == 60
        assert retry_delay(attempt, backoff=1, max_backoff=5, retry_after=0) == 0


def test_retry_delay_backs_off_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = min(8.0, 0.25 * 2 ** (attempt - 1))
        delays = [retry_delay(attempt, backoff=0.25, max_backoff=8.0, rng=rng)
                  for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # jitter spreads over the whole range
        assert len(set(delays)) > 150


# --- pure: paginator state machines -----------------------------------------------------

BASE = PageRequest("https://api.test/v1/items", {"q": "x"})


def walk(paginator: Any, pages: list[PageAnswer]) -> list[PageRequest]:
    """The requests a paginator makes when the server answers ``pages`` in turn."""
    request: PageRequest | None = paginator.first(BASE)
    made: list[PageRequest] = []
    for page in pages:
        assert request is not None
        made.append(request)
        request = paginator.next(request, page)
        if request is None:
            break
    else:
        raise AssertionError("the paginator did not stop")
    return made


def test_json_link_paginator() -> None:
    p = JSONLinkPaginator(next_url_path="links.next")
    made = walk(p, [answer([1], {"links": {"next": "/v1/items?page=2"}}),
                    answer([2], {"links": {"next": "https://other.test/p3"}}),
                    answer([3], {"links": {"next": None}})])
    assert made == [BASE, PageRequest("https://api.test/v1/items?page=2"),
                    PageRequest("https://other.test/p3")]
    # an empty page stops even with a next link; so do "" and a non-string
    assert p.next(BASE, answer([], {"links": {"next": "/more"}})) is None
    assert p.next(BASE, answer([1], {"links": {"next": ""}})) is None
    assert p.next(BASE, answer([1], {"links": {"next": 5}})) is None
    assert p.next(BASE, answer([1], {})) is None


def test_header_link_paginator() -> None:
    p = HeaderLinkPaginator()
    made = walk(p, [answer([1], headers={"Link": '<?page=2>; rel="next"'}),
                    answer([2], headers={"link": '<https://api.test/v1/items?page=1>; '
                                                 'rel="prev"'})])
    assert made == [BASE, PageRequest("https://api.test/v1/items?page=2")]
    assert p.next(BASE, answer([], headers={"Link": '</n>; rel="next"'})) is None
    assert p.next(BASE, answer([1])) is None


def test_offset_paginator_until_an_empty_page() -> None:
    p = OffsetPaginator(limit=2)
    made = walk(p, [answer([1, 2]), answer([3, 4]), answer([5]), answer([])])
    assert [dict(r.params) for r in made] == [
        {"q": "x", "offset": str(o), "limit": "2"} for o in (0, 2, 4, 6)]


def test_offset_paginator_stops_at_the_total_and_takes_custom_names() -> None:
    p = OffsetPaginator(limit=10, offset_param="skip", limit_param="take",
                        total_path="meta.total", offset=20)
    made = walk(p, [answer([1] * 10, {"meta": {"total": 35}}),
                    answer([1] * 5, {"meta": {"total": "35"}})])
    assert [r.params["skip"] for r in made] == ["20", "30"]
    assert made[0].params["take"] == "10"
    # an unreadable total falls back to the empty page rule
    assert p.next(made[1], answer([1], {"meta": {"total": "many"}})) is not None
    with pytest.raises(ValueError, match="limit"):
        OffsetPaginator(limit=0)


def test_page_number_paginator() -> None:
    p = PageNumberPaginator()
    made = walk(p, [answer([1]), answer([2]), answer([])])
    assert [r.params["page"] for r in made] == ["1", "2", "3"]
    zero = PageNumberPaginator(page_param="p", start=0, total_path="pages")
    made = walk(zero, [answer([1], {"pages": 3}), answer([1], {"pages": 3}),
                       answer([1], {"pages": 3})])
    assert [r.params["p"] for r in made] == ["0", "1", "2"]
    one_page = walk(PageNumberPaginator(total_path="pages"), [answer([1], {"pages": 1})])
    assert len(one_page) == 1


def test_json_cursor_paginator() -> None:
    p = JSONCursorPaginator(cursor_path="meta.cursor", cursor_param="after")
    made = walk(p, [answer([1], {"meta": {"cursor": "c2"}}),
                    answer([2], {"meta": {"cursor": 3}}),
                    answer([3], {"meta": {"cursor": None}})])
    assert [r.params.get("after") for r in made] == [None, "c2", "3"]
    assert made[2].params["q"] == "x"
    for end in ("", False, {}, []):
        assert p.next(BASE, answer([1], {"meta": {"cursor": end}})) is None
    assert p.next(BASE, answer([], {"meta": {"cursor": "more"}})) is None


# --- auth -----------------------------------------------------------------------------

def test_auth_headers_and_reprs_hide_secrets() -> None:
    token = ["tok-1"]
    bearer = BearerAuth(lambda: token[0])
    assert bearer.headers() == {"Authorization": "Bearer tok-1"}
    token[0] = "tok-2"
    assert bearer.headers() == {"Authorization": "Bearer tok-2"}
    basic = BasicAuth("user", "pa55word")
    assert basic.headers() == {"Authorization": "Basic dXNlcjpwYTU1d29yZA=="}
    assert "pa55word" not in repr(basic)
    assert "tok-2" not in repr(bearer)
    assert "tok-9" not in repr(RESTClient("https://a.test", auth=BearerAuth("tok-9")))
    with pytest.raises(ConfigurationError):
        BearerAuth("")
    with pytest.raises(ConfigurationError):
        BasicAuth("a:b", "c")


@pytest.mark.parametrize("kwargs", [
    {"base_url": "ftp://a.test"}, {"base_url": "no url"},
    {"base_url": "https://a.test", "max_attempts": 0},
    {"base_url": "https://a.test", "timeout": 0},
    {"base_url": "https://a.test", "backoff": -1},
])
def test_bad_options_are_refused_at_construction(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RESTClient(**kwargs)


# --- the client against a local server ---------------------------------------------------

ROWS = [{"id": i} for i in range(23)]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[dict[str, Handler]], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(routes: dict[str, Handler]) -> str:
        app = web.Application()
        for path, handler in routes.items():
            app.router.add_get(path, handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/api"

    yield start
    for runner in runners:
        await runner.cleanup()


async def collect(client: RESTClient, path: str, **kwargs: Any) -> list[Any]:
    found: list[Any] = []
    async with client:
        async for page in client.paginate(path, **kwargs):
            assert isinstance(page, list)
            found.extend(page)
    return found


async def test_each_paginator_reads_every_row(serve: Any) -> None:
    async def link_body(request: web.Request) -> web.Response:
        page = int(request.query.get("page", "0"))
        rows = ROWS[page * 5:page * 5 + 5]
        nxt = f"/api/body?page={page + 1}&token=t" if rows else None
        return web.json_response({"data": rows, "next": nxt})

    async def link_header(request: web.Request) -> web.Response:
        page = int(request.query.get("page", "0"))
        rows = ROWS[page * 5:page * 5 + 5]
        headers = {"Link": f'<header?page={page + 1}>; rel="next"'} if page < 4 else {}
        return web.json_response(rows, headers=headers)

    async def offset(request: web.Request) -> web.Response:
        start, limit = int(request.query["offset"]), int(request.query["limit"])
        return web.json_response({"items": ROWS[start:start + limit], "total": len(ROWS)})

    async def numbered(request: web.Request) -> web.Response:
        page = int(request.query["page"])
        return web.json_response({"items": ROWS[(page - 1) * 10:page * 10]})

    async def cursor(request: web.Request) -> web.Response:
        start = int(request.query.get("cursor", "0"))
        end = min(start + 7, len(ROWS))
        return web.json_response({"items": ROWS[start:end],
                                  "meta": {"cursor": str(end) if end < len(ROWS) else None}})

    base = await serve({"/api/body": link_body, "/api/header": link_header,
                        "/api/offset": offset, "/api/numbered": numbered, "/api/cursor": cursor})
    cases = [
        ("body", JSONLinkPaginator(), "data"),
        ("header", HeaderLinkPaginator(), None),
        ("offset", OffsetPaginator(limit=4, total_path="total"), "items"),
        ("numbered", PageNumberPaginator(), "items"),
        ("/cursor", JSONCursorPaginator(cursor_path="meta.cursor"), "items"),
    ]
    for path, paginator, selector in cases:
        rows = await collect(RESTClient(base, paginator=paginator), path, data_selector=selector)
        assert rows == ROWS, path


async def test_retry_after_is_honoured_on_429(serve: Any, caplog: pytest.LogCaptureFixture
                                              ) -> None:
    calls: list[str] = []

    async def limited(request: web.Request) -> web.Response:
        calls.append(request.query.get("page", ""))
        if len(calls) == 2:
            return web.json_response({"error": "slow down"}, status=429,
                                     headers={"Retry-After": "1"})
        page = int(request.query["page"])
        return web.json_response({"items": ROWS[(page - 1) * 10:page * 10]})

    base = await serve({"/api/limited": limited})
    client = RESTClient(base, paginator=PageNumberPaginator(), backoff=30, max_backoff=30)
    with caplog.at_level(logging.WARNING, "panoply_async.http"):
        rows = await collect(client, "limited")
    assert rows == ROWS
    assert calls == ["1", "2", "2", "3", "4"]
    # the server's 1 s, not the client's 30 s backoff
    assert "answered HTTP 429 (Too Many Requests); retrying in 1.0s (attempt 2 of 5)" \
        in caplog.text


async def test_server_errors_are_retried_then_succeed(serve: Any) -> None:
    calls = [0]

    async def flaky(request: web.Request) -> web.Response:
        calls[0] += 1
        if calls[0] <= 2:
            return web.Response(status=503 if calls[0] == 1 else 500)
        return web.json_response({"ok": True})

    base = await serve({"/api/flaky": flaky})
    async with RESTClient(base, backoff=0.01) as client:
        assert await client.get("/flaky") == {"ok": True}
    assert calls[0] == 3


async def test_retries_run_out_with_a_retryable_error(serve: Any) -> None:
    async def down(request: web.Request) -> web.Response:
        return web.Response(status=502)

    base = await serve({"/api/down": down})
    async with RESTClient(base, backoff=0.001, max_attempts=3) as client:
        with pytest.raises(HTTPError) as info:
            await client.get("down", params={"api_key": "sekrit"})
    assert info.value.retryable is True
    assert info.value.status == 502
    assert "gave up after 3 attempts" in str(info.value)
    assert "sekrit" not in str(info.value)


async def test_connection_errors_are_retried_then_reported() -> None:
    # Port 1 on the loopback: nothing listens there, the connection is refused.
    async with RESTClient("http://127.0.0.1:1/", backoff=0.001, max_attempts=2) as client:
        with pytest.raises(HTTPError) as info:
            await client.get("x")
    assert info.value.status is None
    assert info.value.retryable is True
    assert "failed (ClientConnectorError); gave up after 2 attempts" in str(info.value)


async def test_a_4xx_is_refused_at_once_without_the_token(serve: Any) -> None:
    calls = [0]
    seen: list[str] = []

    async def refuse(request: web.Request) -> web.Response:
        calls[0] += 1
        seen.append(request.headers["Authorization"])
        return web.json_response({"echo": request.headers["Authorization"]}, status=404)

    async def unauthorised(request: web.Request) -> web.Response:
        return web.Response(status=401)

    base = await serve({"/api/missing": refuse, "/api/private": unauthorised})
    async with RESTClient(base, auth=BearerAuth("s3cr3t-token")) as client:
        with pytest.raises(HTTPError) as info:
            await client.get("missing", params={"token": "s3cr3t-token"})
        with pytest.raises(HTTPAuthError) as auth:
            await client.get("private")
    assert calls[0] == 1
    assert seen == ["Bearer s3cr3t-token"]
    error = info.value
    assert isinstance(error, PanoplyException)
    assert error.retryable is False
    assert error.status == 404
    assert error.url == base + "/missing"
    assert str(error) == f"GET {base}/missing answered HTTP 404 (Not Found)"
    assert "s3cr3t" not in str(error)
    assert "s3cr3t" not in repr(error)
    assert auth.value.status == 401
    assert auth.value.retryable is True


async def test_basic_auth_reaches_the_server_and_selector_errors_are_clear(serve: Any
                                                                           ) -> None:
    async def guarded(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Basic dTpw":
            return web.Response(status=401)
        return web.json_response({"results": {"not": "a list"}})

    base = await serve({"/api/guarded": guarded})
    async with RESTClient(base, auth=BasicAuth("u", "p"),
                          paginator=PageNumberPaginator()) as client:
        with pytest.raises(HTTPError, match="has a JSON dict at data_selector 'results'"):
            async for _ in client.paginate("guarded", data_selector="results"):
                pass


async def test_an_answer_that_is_not_json_is_refused_clearly(serve: Any) -> None:
    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>login</html>", content_type="text/html")

    base = await serve({"/api/html": html})
    async with RESTClient(base) as client:
        with pytest.raises(HTTPError, match=r"the answer to GET .*/api/html \(HTTP 200\) "
                                            r"is not JSON") as info:
            await client.get("html")
    assert info.value.retryable is False
    assert info.value.status == 200


async def test_resume_starts_at_a_pages_next_request(serve: Any) -> None:
    async def numbered(request: web.Request) -> web.Response:
        page = int(request.query["page"])
        return web.json_response({"items": ROWS[(page - 1) * 10:page * 10]})

    base = await serve({"/api/n": numbered})
    async with RESTClient(base, paginator=PageNumberPaginator()) as client:
        async for page in client.paginate("n"):
            resume = page.next_request
            break
        rest = [row async for page in client.paginate("n", resume=resume) for row in page]
    assert rest == ROWS[10:]


# --- pure: properties over every size -------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(total=st.integers(0, 400), limit=st.integers(1, 50), use_total=st.booleans())
def test_offset_paging_covers_every_row_once(total: int, limit: int, use_total: bool) -> None:
    rows = list(range(total))
    paginator = OffsetPaginator(limit=limit, total_path="total" if use_total else None)
    request: PageRequest | None = paginator.first(BASE)
    seen: list[int] = []
    requests = 0
    while request is not None:
        requests += 1
        start = int(request.params["offset"])
        page = rows[start:start + limit]
        seen.extend(page)
        request = paginator.next(request, answer(page, {"items": page, "total": total}))
    assert seen == rows
    pages = -(-total // limit)
    # With the total, no request past the end; without it, one empty page ends it.
    assert requests == (max(pages, 1) if use_total else pages + 1)


@settings(max_examples=150, deadline=None)
@given(total=st.integers(0, 300), size=st.integers(1, 40), start=st.integers(0, 2),
       use_total=st.booleans())
def test_page_number_paging_covers_every_row_once(total: int, size: int, start: int,
                                                  use_total: bool) -> None:
    rows = list(range(total))
    pages = -(-total // size)
    paginator = PageNumberPaginator(start=start, total_path="pages" if use_total else None)
    request: PageRequest | None = paginator.first(BASE)
    seen: list[int] = []
    while request is not None:
        index = int(request.params["page"]) - start
        page = rows[index * size:(index + 1) * size]
        seen.extend(page)
        request = paginator.next(request, answer(page, {"items": page, "pages": pages}))
    assert seen == rows


URLS = st.builds("https://a.test/{}?p={},{}".format, st.text("ab09", max_size=6),
                 st.integers(0, 999), st.integers(0, 9))
RELS = st.sampled_from(["next", "prev", "last", "first"])


@settings(max_examples=150, deadline=None)
@given(links=st.lists(st.tuples(URLS, st.lists(RELS, min_size=1, max_size=2, unique=True),
                                st.booleans(), st.booleans()), max_size=5))
def test_link_header_round_trip(links: list[tuple[str, list[str], bool, bool]]) -> None:
    parts = []
    expected: dict[str, str] = {}
    for url, rels, quoted, titled in links:
        rel = " ".join(rels)
        param = f'rel="{rel}"' if quoted or len(rels) > 1 else f"rel={rel}"
        title = '; title="a, b; c"' if titled else ""
        parts.append(f"<{url}>{title}; {param}")
        for one in rels:
            expected.setdefault(one, url)
    assert parse_link_header(", ".join(parts)) == expected
