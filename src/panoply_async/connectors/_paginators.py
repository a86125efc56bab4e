"""The pure parts of the HTTP helper: paginators, ``Link`` and ``Retry-After`` parsing,
and the retry delay. No I/O here, so each is tested exhaustively without a server.

A paginator is a small state machine over requests: :meth:`Paginator.first` turns the
caller's request into the first page's, and :meth:`Paginator.next` reads a page's
answer and returns the next page's request, or None when the pages are over. Every
paginator stops on an empty page, whatever else the answer says.
"""

from __future__ import annotations

import datetime
import email.utils
import random
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

__all__ = [
    "HeaderLinkPaginator",
    "JSONCursorPaginator",
    "JSONLinkPaginator",
    "OffsetPaginator",
    "PageAnswer",
    "PageNumberPaginator",
    "PageRequest",
    "Paginator",
    "find_path",
    "parse_link_header",
    "parse_retry_after",
    "retry_delay",
]


@dataclass(frozen=True)
class PageRequest:
    """One GET: ``url`` (absolute, or a path under the client's base URL) and its query."""

    url: str
    params: Mapping[str, str] = field(default_factory=dict)

    def with_params(self, **changes: str) -> PageRequest:
        return replace(self, params={**self.params, **changes})


@dataclass(frozen=True)
class PageAnswer:
    """What a paginator may read of a page's answer."""

    headers: Mapping[str, str]
    body: Any
    records: list[Any]


class Paginator(Protocol):
    def first(self, request: PageRequest) -> PageRequest: ...

    def next(self, request: PageRequest, answer: PageAnswer) -> PageRequest | None: ...


_MISSING = object()


def find_path(body: Any, path: str | None) -> Any:
    """The value at a dotted ``path`` (``"meta.next"``, ``"pages.0.url"``) of a JSON
    value; None when a step is missing. An empty or None path is the body itself."""
    if not path:
        return body
    value = body
    for step in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(step, _MISSING)
        elif isinstance(value, list) and step.lstrip("-").isdigit():
            index = int(step)
            value = value[index] if -len(value) <= index < len(value) else _MISSING
        else:
            value = _MISSING
        if value is _MISSING:
            return None
    return value


def _next_url(base: str, value: Any) -> PageRequest | None:
    """A next-page URL found in an answer; its own query replaces the request's."""
    if not isinstance(value, str) or not value.strip():
        return None
    return PageRequest(urllib.parse.urljoin(base, value.strip()))


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


@dataclass(frozen=True)
class JSONLinkPaginator:
    """The next page's URL is in the body, at ``next_url_path`` (dotted)."""

    next_url_path: str = "next"

    def first(self, request: PageRequest) -> PageRequest:
        return request

    def next(self, request: PageRequest, answer: PageAnswer) -> PageRequest | None:
        if not answer.records:
            return None
        return _next_url(request.url, find_path(answer.body, self.next_url_path))


@dataclass(frozen=True)
class HeaderLinkPaginator:
    """The next page's URL is in the ``Link`` header (RFC 8288), ``rel="next"``."""

    rel: str = "next"

    def first(self, request: PageRequest) -> PageRequest:
        return request

    def next(self, request: PageRequest, answer: PageAnswer) -> PageRequest | None:
        if not answer.records:
            return None
        header = next((v for k, v in answer.headers.items() if k.lower() == "link"), "")
        return _next_url(request.url, parse_link_header(header).get(self.rel))


@dataclass(frozen=True)
class OffsetPaginator:
    """``offset``/``limit`` query parameters; stops on an empty page, or once the
    offset reaches the total found at ``total_path`` (when given)."""

    limit: int = 100
    offset_param: str = "offset"
    limit_param: str = "limit"
    total_path: str | None = None
    offset: int = 0

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"limit must be at least 1, got {self.limit}")

    def first(self, request: PageRequest) -> PageRequest:
        return request.with_params(**{self.offset_param: str(self.offset),
                                      self.limit_param: str(self.limit)})

    def next(self, request: PageRequest, answer: PageAnswer) -> PageRequest | None:
        if not answer.records:
            return None
        offset = (_as_int(request.params.get(self.offset_param)) or 0) + self.limit
        if self.total_path is not None:
            total = _as_int(find_path(answer.body, self.total_path))
            if total is not None and offset >= total:
                return None
        return request.with_params(**{self.offset_param: str(offset)})


@dataclass(frozen=True)
class PageNumberPaginator:
    """A page number query parameter from ``start``; stops on an empty page, or after
    the last page when the number of pages is found at ``total_path``."""

    page_param: str = "page"
    start: int = 1
    total_path: str | None = None

    def first(self, request: PageRequest) -> PageRequest:
        return request.with_params(**{self.page_param: str(self.start)})

    def next(self, request: PageRequest, answer: PageAnswer) -> PageRequest | None:
        if not answer.records:
            return None
        page = _as_int(request.params.get(self.page_param))
        page = self.start if page is None else page
        if self.total_path is not None:
            pages = _as_int(find_path(answer.body, self.total_path))
            # Pages run from ``start``: the last one is start + pages - 1.
            if pages is not None and page >= self.start + pages - 1:
                return None
        return request.with_params(**{self.page_param: str(page + 1)})


@dataclass(frozen=True)
class JSONCursorPaginator:
    """The next page's cursor is in the body at ``cursor_path``, sent back as the
    ``cursor_param`` query parameter; no cursor (null, empty) ends the pages."""

    cursor_path: str = "cursor"
    cursor_param: str = "cursor"

    def first(self, request: PageRequest) -> PageRequest:
        return request

    def next(self, request: PageRequest, answer: PageAnswer) -> PageRequest | None:
        if not answer.records:
            return None
        cursor = find_path(answer.body, self.cursor_path)
        if cursor is None or isinstance(cursor, (bool, dict, list)) or cursor == "":
            return None
        return request.with_params(**{self.cursor_param: str(cursor)})


# <url>; param=value; param="quoted, value"  (RFC 8288 §3)
_LINK = re.compile(r'<([^>]*)>((?:\s*;\s*[^;,=\s]+\s*(?:=\s*(?:"(?:[^"\\]|\\.)*"|[^;,\s]*))?)*)')
_LINK_PARAM = re.compile(r';\s*([^;,=\s]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*))?')


def parse_link_header(value: str) -> dict[str, str]:
    """``{rel: url}`` of a ``Link`` header; a link with several relations
    (``rel="next last"``) is listed under each, the first link of a relation wins."""
    links: dict[str, str] = {}
    for match in _LINK.finditer(value or ""):
        url, params = match.group(1).strip(), match.group(2)
        for name, raw in _LINK_PARAM.findall(params):
            if name.lower() != "rel":
                continue
            rel = raw[1:-1].replace('\\"', '"') if raw.startswith('"') else raw
            for one in rel.lower().split():
                links.setdefault(one, url)
    return links


def parse_retry_after(value: str | None, now: datetime.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: a number of seconds or an HTTP
    date; None when absent or unreadable. A date in the past is 0."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if 0 <= seconds < float("inf") else None  # nan compares False
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT
        when = when.replace(tzinfo=datetime.timezone.utc)
    current = now or datetime.datetime.now(datetime.timezone.utc)
    return max(0.0, (when - current).total_seconds())


def retry_delay(attempt: int, *, backoff: float, max_backoff: float,
                retry_after: float | None = None, max_retry_after: float = 60.0,
                rng: random.Random | None = None) -> float:
    """Seconds before retry number ``attempt`` (1 for the first retry).

    The server's ``Retry-After`` wins, capped at ``max_retry_after``; otherwise
    exponential backoff with full jitter: uniform in
    ``[0, min(max_backoff, backoff * 2 ** (attempt - 1))]``, so that many clients
    refused together do not come back together.
    """
    if retry_after is not None:
        return min(max(0.0, retry_after), max_retry_after)
    ceiling = min(max_backoff, backoff * 2 ** max(0, attempt - 1))
    return (rng or random).uniform(0, ceiling)
