"""Example connector: a paginated HTTP JSON API behind OAuth.

The API serves ``GET {base_url}/contacts?updated_since=T&cursor=C`` answering
``{"data": [...], "next_cursor": C or null}`` and ``401`` once the access token
expired; ``POST {base_url}/oauth/token`` refreshes it. Each run reads what
changed since the last committed ``updated_since``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from panoply_async import DataSource, PanoplyException, validate_token

CONFIG: dict[str, Any] = {
    "title": "Contacts API",
    "icon": "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4=",
    "params": [
        {"name": "base_url", "title": "API base URL", "type": "url", "required": True,
         "placeholder": "https://api.example.com"},
        {"name": "access_token", "title": "Access token", "type": "password", "secret": True,
         "required": True},
        {"name": "refresh_token", "title": "Refresh token", "type": "password", "secret": True,
         "required": True},
        {"name": "page_size", "title": "Page size", "type": "integer", "default": 100},
    ],
}


class Expired(Exception):
    """The API answered 401: the access token needs refreshing."""


def token_url(source: DataSource) -> str:
    return str(source.source["base_url"]).rstrip("/") + "/oauth/token"


class Stream(DataSource):
    """Contacts changed since the last run, page by page."""

    def __init__(self, source: dict[str, Any], options: dict[str, Any] | None = None) -> None:
        super().__init__(source, options)
        state = source.get("state") or {}
        self.since = str(state.get("updated_since", ""))
        self.cursor: str | None = None

    @validate_token(token_url, Expired)
    async def fetch_page(self, session: aiohttp.ClientSession, size: int) -> dict[str, Any]:
        params = {"updated_since": self.since, "limit": str(size)}
        if self.cursor:
            params["cursor"] = self.cursor
        headers = {"Authorization": f"Bearer {self.source['access_token']}"}
        url = str(self.source["base_url"]).rstrip("/") + "/contacts"
        async with session.get(url, params=params, headers=headers) as response:
            if response.status == 401:
                raise Expired()
            if response.status >= 500 or response.status == 429:
                raise PanoplyException(f"API answered {response.status}", retryable=True)
            if response.status >= 400:
                raise PanoplyException(f"API answered {response.status}", retryable=False)
            page: dict[str, Any] = await response.json()
            return page

    async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        size = n or int(self.source.get("page_size") or 100)
        loaded = 0
        newest = self.since
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            while True:
                page = await self.fetch_page(session, size)
                records = page["data"]
                loaded += len(records)
                if records:
                    newest = max(newest, *(str(r["updated_at"]) for r in records))
                # A retry resumes from this cursor: it lives on self, not in a local.
                self.cursor = page.get("next_cursor")
                state_id = f"{newest}#{loaded}"
                self.state(state_id, {"updated_since": newest})
                self.progress(loaded, page.get("total"), "reading contacts")
                yield [{**record, "__state": state_id} for record in records]
                if not self.cursor:
                    return
