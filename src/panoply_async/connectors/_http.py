"""An async REST client for connectors (aiohttp): paginators, retries that honour
``Retry-After``, bearer and basic auth, pages yielded as record batches.

The state machines and parsers it relies on are pure and live in
:mod:`._paginators`; this module does the requests.
"""

from __future__ import annotations

import asyncio
import base64
import http
import logging
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any, Protocol

import anyio
import orjson

from ..errors import ConfigurationError, HTTPAuthError, HTTPError
from ._paginators import (
    PageAnswer,
    PageRequest,
    Paginator,
    find_path,
    parse_retry_after,
    retry_delay,
)

__all__ = ["Auth", "BasicAuth", "BearerAuth", "Page", "RESTClient", "public_url"]

logger = logging.getLogger("panoply_async.http")

#: statuses worth asking again: the server was busy or broken, not the request wrong
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def public_url(url: str) -> str:
    """``url`` without user info or query string, fit for a message or a log line:
    a query may carry an api key."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


class Auth(Protocol):
    """Adds credentials to each request (read again for every request)."""

    def headers(self) -> Mapping[str, str]: ...


class BearerAuth:
    """``Authorization: Bearer TOKEN``. ``token`` may be a function returning the
    current token, e.g. ``lambda: self.source["access_token"]``, so that a token
    refreshed by :func:`validate_token` is used by the next request."""

    def __init__(self, token: str | Callable[[], str]) -> None:
        if not callable(token) and (not isinstance(token, str) or not token):
            raise ConfigurationError("BearerAuth: the token must be a non-empty string "
                                     "or a function returning one")
        self._token = token

    def headers(self) -> Mapping[str, str]:
        token = self._token() if callable(self._token) else self._token
        return {"Authorization": f"Bearer {token}"}

    def __repr__(self) -> str:
        return "BearerAuth(token=***)"


class BasicAuth:
    """``Authorization: Basic base64(username:password)`` (RFC 7617)."""

    def __init__(self, username: str, password: str) -> None:
        if not isinstance(username, str) or ":" in username:
            raise ConfigurationError("BasicAuth: the username must be a string without ':'")
        if not isinstance(password, str):
            raise ConfigurationError("BasicAuth: the password must be a string")
        self.username = username
        self._encoded = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")

    def headers(self) -> Mapping[str, str]:
        return {"Authorization": f"Basic {self._encoded}"}

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r}, password=***)"


class Page(list[Any]):
    """One page of records (a list of dicts, a batch for ``read()`` to yield), with
    the request that fetched it and the one that fetches the next page (None after
    the last): keep ``next_request`` on the data source to resume there."""

    def __init__(self, records: list[Any], request: PageRequest,
                 next_request: PageRequest | None, status: int) -> None:
        super().__init__(records)
        self.request = request
        self.next_request = next_request
        self.status = status


def _positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        value >= 0 if allow_zero else value > 0
    ):
        bound = "0 or more" if allow_zero else "more than 0"
        raise ConfigurationError(f"RESTClient: {name} must be a number {bound}, got {value!r}")
    return float(value)


class RESTClient:
    """An async JSON REST client; use it as ``async with RESTClient(...) as client:``.

    Requests that fail with 408, 429 or 5xx, or with no answer (connection error,
    timeout) are tried up to ``max_attempts`` times in all, waiting what the
    answer's ``Retry-After`` says (seconds or an HTTP date, at most
    ``max_retry_after``) or else an exponential backoff with jitter from
    ``backoff`` seconds up to ``max_backoff``. Then :class:`HTTPError` is raised,
    retryable. A 401 raises :class:`HTTPAuthError` at once; any other 4xx raises
    a non-retryable :class:`HTTPError`. Messages name the method, the URL without
    its query string and the status; never a header or a token.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: Auth | None = None,
        paginator: Paginator | None = None,
        headers: Mapping[str, str] | None = None,
        max_attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 60.0,
        timeout: float = 60.0,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url if isinstance(base_url, str) else "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError("RESTClient: base_url must be an http:// or https:// URL"
                                     f", got {public_url(str(base_url))!r}")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) \
                or max_attempts < 1:
            raise ConfigurationError(
                f"RESTClient: max_attempts must be an integer of 1 or more, got {max_attempts!r}")
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.auth = auth
        self.paginator = paginator
        self.headers = {"Accept": "application/json", **(headers or {})}
        self.max_attempts = max_attempts
        self.backoff = _positive("backoff", backoff, allow_zero=True)
        self.max_backoff = _positive("max_backoff", max_backoff, allow_zero=True)
        self.max_retry_after = _positive("max_retry_after", max_retry_after, allow_zero=True)
        self.timeout = _positive("timeout", timeout)
        self._session: Any = None

    def __repr__(self) -> str:
        return f"RESTClient({public_url(self.base_url)!r}, auth={self.auth!r})"

    async def __aenter__(self) -> RESTClient:
        import aiohttp

        if self._session is not None:
            raise RuntimeError("RESTClient: this client is already open")
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def url(self, path: str) -> str:
        """``path`` under the base URL; an absolute URL is kept as it is."""
        if urllib.parse.urlsplit(path).scheme:
            return path
        return urllib.parse.urljoin(self.base_url, path.lstrip("/"))

    async def get(self, path: str, *, params: Mapping[str, Any] | None = None,
                  headers: Mapping[str, str] | None = None) -> Any:
        """GET ``path`` (under the base URL); the answer's JSON (None when empty)."""
        return (await self._request(PageRequest(self.url(path), _query(params)), headers))[2]

    async def paginate(
        self,
        path: str = "",
        *,
        params: Mapping[str, Any] | None = None,
        paginator: Paginator | None = None,
        data_selector: str | None = "items",
        headers: Mapping[str, str] | None = None,
        resume: PageRequest | None = None,
    ) -> AsyncIterator[Page]:
        """Each page of ``path`` as a :class:`Page` of records, until the paginator
        (this call's, else the client's) finds no next page; every paginator stops
        on an empty page.

        The records are at the dotted ``data_selector`` of the answer (None: the
        answer is the list itself). ``resume`` (a page's ``next_request``) starts
        there instead of at the first page.
        """
        pages = paginator or self.paginator
        if pages is None:
            raise ConfigurationError("RESTClient.paginate: no paginator (pass paginator= "
                                     "to RESTClient or to paginate)")
        request: PageRequest | None = (
            resume if resume is not None
            else pages.first(PageRequest(self.url(path), _query(params))))
        while request is not None:
            status, answer_headers, body = await self._request(request, headers)
            records = _records(body, data_selector, request.url)
            following = pages.next(request, PageAnswer(answer_headers, body, records))
            yield Page(records, request, following, status)
            request = following

    async def _request(self, request: PageRequest, headers: Mapping[str, str] | None
                       ) -> tuple[int, dict[str, str], Any]:
        import aiohttp

        if self._session is None:
            raise RuntimeError("RESTClient: use it inside `async with RESTClient(...)`")
        where = f"GET {public_url(request.url)}"
        sent = {**self.headers, **(headers or {}),
                **(self.auth.headers() if self.auth is not None else {})}
        for attempt in range(1, self.max_attempts + 1):
            retry_after: float | None = None
            try:
                async with self._session.get(request.url, params=dict(request.params),
                                             headers=sent) as response:
                    status = response.status
                    # The body of a refusal may echo what was sent: it is not read.
                    body = await response.read() if status < 400 else b""
                    answer = _headers(response.headers.items())
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                status, problem = 0, f"failed ({type(exc).__name__})"
            else:
                if status < 400:
                    return status, answer, _json(body, where, status, public_url(request.url))
                if status == 401:
                    raise HTTPAuthError(f"{where} answered HTTP 401 (credentials refused)",
                                        status=401, url=public_url(request.url))
                if status not in RETRY_STATUSES:
                    raise HTTPError(f"{where} answered HTTP {status} ({_phrase(status)})",
                                    retryable=False, status=status,
                                    url=public_url(request.url))
                problem = f"answered HTTP {status} ({_phrase(status)})"
                retry_after = parse_retry_after(answer.get("retry-after"))
            if attempt == self.max_attempts:
                raise HTTPError(f"{where} {problem}; gave up after {attempt} attempts",
                                retryable=True, status=status or None,
                                url=public_url(request.url))
            delay = retry_delay(attempt, backoff=self.backoff, max_backoff=self.max_backoff,
                                retry_after=retry_after, max_retry_after=self.max_retry_after)
            logger.warning("%s %s; retrying in %.1fs (attempt %d of %d)", where, problem,
                           delay, attempt + 1, self.max_attempts)
            await anyio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


def _query(params: Mapping[str, Any] | None) -> dict[str, str]:
    """Query parameters as strings (``True`` as ``true``, as most APIs expect)."""
    def text(value: Any) -> str:
        return ("true" if value else "false") if isinstance(value, bool) else str(value)

    return {str(k): text(v) for k, v in (params or {}).items() if v is not None}


def _headers(items: Any) -> dict[str, str]:
    """Answer headers with lower-case names; repeated ones (``Link``) joined by commas."""
    found: dict[str, str] = {}
    for name, value in items:
        key = str(name).lower()
        found[key] = f"{found[key]}, {value}" if key in found else str(value)
    return found


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "unknown status"


def _json(body: bytes, where: str, status: int, url: str) -> Any:
    if not body.strip():
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise HTTPError(f"the answer to {where} (HTTP {status}) is not JSON",
                        retryable=False, status=status, url=url) from None


def _records(body: Any, data_selector: str | None, url: str) -> list[Any]:
    records = body if isinstance(body, list) else find_path(body, data_selector)
    if isinstance(records, list):
        return records
    what = "nothing" if records is None else f"a JSON {type(records).__name__}"
    raise HTTPError(
        f"the answer to GET {public_url(url)} has {what} at data_selector "
        f"{data_selector!r}; expected a list of records", retryable=False, url=public_url(url))
