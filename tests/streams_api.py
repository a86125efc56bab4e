"""A small paginated HTTP API on 127.0.0.1 for tests/streams_connector, run by aiohttp
in a thread of its own so that a connector in a child process can reach it.

* ``GET /me``: who the bearer token belongs to (401 for any other token);
* ``GET /users?page=&per_page=``: page-number pagination, ``next_page`` in the body;
* ``GET /orders?since=&limit=``: rows with ``updated_at`` above ``since``, ascending;
* ``GET /tickets?cursor=&limit=``: a cursor in the body (``next_cursor``).

``pause_at(path, hit)`` makes the ``hit``-th request for ``path`` (counted from 1)
signal :attr:`paused` and hold its answer until :meth:`release`: a test interrupts
a run at a known place without sleeping.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter
from typing import Any

from aiohttp import web

TOKEN = "tok-3f9a7c21e5"


class StreamsAPI:
    def __init__(self, users: int = 25, orders: int = 35, tickets: int = 15) -> None:
        self.users = [{"id": i, "name": f"user {i}"} for i in range(1, users + 1)]
        self.orders: list[dict[str, Any]] = []
        self.add_orders(orders)
        self.tickets = [{"id": i, "subject": f"ticket {i}"} for i in range(1, tickets + 1)]
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.hits: Counter[str] = Counter()
        self.paused = threading.Event()
        self._pause: tuple[str, int] | None = None
        self._release: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def add_orders(self, count: int) -> list[int]:
        """``count`` new orders, each updated after every earlier one; their ids."""
        first = len(self.orders) + 1
        new = [{"id": i, "updated_at": i * 10, "total": i} for i in range(first, first + count)]
        self.orders.extend(new)
        return [order["id"] for order in new]

    def pause_at(self, path: str, hit: int) -> None:
        self.paused.clear()
        self._pause = (path, hit)

    def release(self) -> None:
        self._pause = None
        if self._loop is not None and self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)

    # -- handlers -----------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": "bad token"}, status=401)
        self.requests.append((request.path, dict(request.query)))
        self.hits[request.path] += 1
        if self._pause == (request.path, self.hits[request.path]):
            assert self._release is not None
            self.paused.set()
            # Bounded: a test that never releases does not hang the server's shutdown.
            await asyncio.wait_for(self._release.wait(), timeout=60)
        response: web.StreamResponse = await handler(request)
        return response

    async def _me(self, request: web.Request) -> web.Response:
        return web.json_response({"name": "streams-test"})

    async def _users(self, request: web.Request) -> web.Response:
        page, size = int(request.query["page"]), int(request.query["per_page"])
        items = self.users[(page - 1) * size: page * size]
        more = page * size < len(self.users)
        return web.json_response({"items": items, "next_page": page + 1 if more else None})

    async def _orders(self, request: web.Request) -> web.Response:
        since, limit = int(request.query.get("since", 0)), int(request.query["limit"])
        after = [o for o in self.orders if o["updated_at"] > since]
        return web.json_response({"items": after[:limit], "has_more": len(after) > limit})

    async def _tickets(self, request: web.Request) -> web.Response:
        start, limit = int(request.query.get("cursor", 0)), int(request.query["limit"])
        items = self.tickets[start: start + limit]
        more = start + limit < len(self.tickets)
        return web.json_response({"items": items, "next_cursor": start + limit if more else None})

    # -- lifetime -----------------------------------------------------------------

    def start(self) -> None:
        started = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            self._release = asyncio.Event()
            app = web.Application(middlewares=[self._auth])
            app.router.add_get("/me", self._me)
            app.router.add_get("/users", self._users)
            app.router.add_get("/orders", self._orders)
            app.router.add_get("/tickets", self._tickets)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))  # a free port, on the loopback only
            await web.SockSite(self._runner, sock).start()
            self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            started.set()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="streams-api", daemon=True)
        self._thread.start()
        if not started.wait(30):
            raise RuntimeError("the streams API did not start within 30 s")

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self.release()
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()
