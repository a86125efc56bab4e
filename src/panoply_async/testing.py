"""A testing kit for connector authors, registered as a pytest plugin.

With panoply-async installed (and its ``local`` extra for the server), every
pytest run gets two fixtures:

* ``panoply_server``: a :class:`~panoply_async.local.LocalSQS` running for the
  whole session on 127.0.0.1;
* ``panoply_queue``: a :class:`LocalQueue`, fresh credentials and an empty queue
  on that server for each test.

::

    async def test_my_source(panoply_queue):
        async with panoply_queue.sdk() as conn:
            await conn.ingest(MySource({"type": "things"}))
        tables = await panoply_queue.atables()
        assert len(tables["things"]) == 3
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from ._engine.sdk import SDK
from ._wire.encoding import TABLE_KEY, decode_body
from .local import LocalSQS, ReceivedMessage, make_credentials

__all__ = ["LocalQueue", "group_by_table", "panoply_queue", "panoply_server"]


def group_by_table(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records grouped by their ``__table``, in arrival order, ``__table`` removed."""
    tables: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        rest = dict(record)
        tables[str(rest.pop(TABLE_KEY, ""))].append(rest)
    return dict(tables)


@dataclass
class LocalQueue:
    """A queue on a local server, with the credentials that point to it."""

    server: LocalSQS
    apikey: str
    apisecret: str = field(repr=False)
    queue_url: str

    @property
    def endpoint_url(self) -> str:
        return self.server.endpoint_url

    def sdk(self, **options: Any) -> SDK:
        """An :class:`SDK` sending to this queue; ``options`` as for ``SDK``."""
        return SDK(self.apikey, self.apisecret, endpoint_url=self.endpoint_url, **options)

    def messages(self, *, wait_seconds: float = 0) -> list[ReceivedMessage]:
        """Receive (and delete) every message now in the queue; if it is empty, wait
        up to ``wait_seconds`` for the first to arrive."""
        return self.server.receive(self.queue_url, wait_seconds=wait_seconds)

    def records(self) -> list[dict[str, Any]]:
        """Receive every message now in the queue and decode its records."""
        return [r for m in self.messages() for r in decode_body(m.body)]

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """:meth:`records` grouped by table (see :func:`group_by_table`)."""
        return group_by_table(self.records())

    async def amessages(self, *, wait_seconds: float = 0) -> list[ReceivedMessage]:
        """:meth:`messages` without blocking the event loop."""
        return await self.server.areceive(self.queue_url, wait_seconds=wait_seconds)

    async def arecords(self) -> list[dict[str, Any]]:
        return [r for m in await self.amessages() for r in decode_body(m.body)]

    async def atables(self) -> dict[str, list[dict[str, Any]]]:
        return group_by_table(await self.arecords())


def new_queue(server: LocalSQS, account: str = "test") -> LocalQueue:
    """Fresh credentials and their queue on ``server``."""
    apikey, apisecret = make_credentials(account)
    return LocalQueue(server, apikey, apisecret, server.create_queue(apikey, apisecret))


@pytest.fixture(scope="session")
def panoply_server() -> Iterator[LocalSQS]:
    """A local SQS server on 127.0.0.1 for the whole test session."""
    with LocalSQS() as server:
        yield server


@pytest.fixture
def panoply_queue(panoply_server: LocalSQS) -> LocalQueue:
    """Fresh credentials and an empty queue on the session's local server."""
    return new_queue(panoply_server)
