"""Example connector: a paginated HTTP JSON API behind OAuth, on the HTTP helper.

The API serves ``GET {base_url}/contacts?updated_since=T&cursor=C`` answering
``{"data": [...], "next_cursor": C or null}`` and ``401`` once the access token
expired; ``POST {base_url}/oauth/token`` refreshes it. Each run reads what
changed since the last committed ``updated_since``.

:class:`RESTClient` does the paging (a cursor in the body), the retries (429 and
5xx, honouring ``Retry-After``) and the bearer header; ``validate_token``
refreshes the token when the API answers 401 (:class:`HTTPAuthError`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from panoply_async import (
    BearerAuth,
    DataSource,
    HTTPAuthError,
    JSONCursorPaginator,
    PageRequest,
    RESTClient,
    validate_token,
)

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


def token_url(source: DataSource) -> str:
    return str(source.source["base_url"]).rstrip("/") + "/oauth/token"


class Stream(DataSource):
    """Contacts changed since the last run, page by page."""

    def __init__(self, source: dict[str, Any], options: dict[str, Any] | None = None) -> None:
        super().__init__(source, options)
        state = source.get("state") or {}
        self.since = str(state.get("updated_since", ""))
        self.newest = self.since
        self.loaded = 0
        # The next page to fetch: a retried read() (after a token refresh, or an
        # error once pages were yielded) resumes there instead of starting over.
        self.resume: PageRequest | None = None

    @validate_token(token_url, HTTPAuthError)
    async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        size = n or int(self.source.get("page_size") or 100)
        # A function, not the token itself: the refreshed token is read per request.
        auth = BearerAuth(lambda: str(self.source["access_token"]))
        pages = JSONCursorPaginator(cursor_path="next_cursor", cursor_param="cursor")
        async with RESTClient(str(self.source["base_url"]), auth=auth,
                              paginator=pages) as client:
            async for page in client.paginate(
                "contacts", params={"updated_since": self.since, "limit": size},
                data_selector="data", resume=self.resume,
            ):
                self.resume = page.next_request
                self.loaded += len(page)
                if page:
                    self.newest = max(self.newest, *(str(r["updated_at"]) for r in page))
                state_id = f"{self.newest}#{self.loaded}"
                self.state(state_id, {"updated_since": self.newest})
                self.progress(self.loaded, None, "reading contacts")
                yield [{**record, "__state": state_id} for record in page]
