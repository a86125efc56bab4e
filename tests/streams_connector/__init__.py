"""A connector with three streams over a paginated HTTP API (tests/streams_api.py):

* ``users``: full refresh, page-number pagination; its position is the next page;
* ``orders``: incremental on ``updated_at``; the API returns rows after ``since``;
* ``tickets``: full refresh, a cursor in the response body; its position is that cursor.

It uses aiohttp directly, and ``check()`` asks the API who the token belongs to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from panoply_async import DataSource, PanoplyException, StreamSpec, StreamState

CONFIG = {
    "title": "Three streams",
    "icon": "data:image/png;base64,iVBORw0KGgo=",
    "params": [
        {"name": "base_url", "title": "API URL", "type": "url", "required": True},
        {"name": "token", "title": "API token", "type": "password", "required": True,
         "secret": True},
        {"name": "page_size", "title": "Rows per page", "type": "integer", "default": 10},
    ],
}


class Stream(DataSource):
    streams = (
        StreamSpec("users", table="crm_users", primary_key="id"),
        StreamSpec("orders", primary_key="id", cursor_field="updated_at", initial_value=0),
        StreamSpec("tickets", primary_key="id", json_schema={
            "type": "object",
            "properties": {"id": {"type": "integer"}, "subject": {"type": "string"}},
        }),
    )

    def __init__(self, source: dict[str, Any], options: Any = None) -> None:
        super().__init__(source, options)
        self.session: aiohttp.ClientSession | None = None

    async def get(self, path: str, **params: Any) -> Any:
        if self.session is None:
            self.session = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self.source['token']}"})
        query = {k: str(v) for k, v in params.items() if v is not None}
        async with self.session.get(self.source["base_url"] + path, params=query) as response:
            if response.status == 401:
                raise PanoplyException("the API refused the token (HTTP 401)", retryable=False)
            response.raise_for_status()
            return await response.json()

    async def check(self) -> str:
        me = await self.get("/me")
        return f"authenticated as {me['name']}"

    async def read_stream(self, stream: StreamSpec, state: StreamState) -> AsyncIterator[Any]:
        size = int(self.source.get("page_size") or 10)
        if stream.name == "users":
            page = state.position or 1
            while page is not None:
                body = await self.get("/users", page=page, per_page=size)
                page = state.position = body["next_page"]
                yield body["items"]
        elif stream.name == "orders":
            since = state.start_value
            while True:
                body = await self.get("/orders", since=since, limit=size)
                if body["items"]:
                    since = body["items"][-1]["updated_at"]
                    yield body["items"]
                if not body["has_more"]:
                    return
        else:
            cursor = state.position
            while True:
                body = await self.get("/tickets", cursor=cursor, limit=size)
                cursor = state.position = body["next_cursor"]
                yield body["items"]
                if cursor is None:
                    return

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
