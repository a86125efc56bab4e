"""An aiohttp service that streams the events it receives to Panoply.

The ``SDK`` lives in a ``cleanup_ctx``: it opens before the server accepts
requests and drains (delivers, or spools) after the last request was answered.
Run it with::

    export PANOPLY_APIKEY=... PANOPLY_APISECRET=...   # PANOPLY_ENDPOINT_URL for a local server
    python examples/aiohttp_app/app.py --port 8080

Shutdown budget, inside Kubernetes' default 30 s grace period (SIGTERM, then
SIGKILL): on SIGTERM ``web.run_app`` waits up to ``shutdown_timeout`` for open
requests (aiohttp's default is 60 s, longer than the grace period: we pass
``HTTP_SHUTDOWN_TIMEOUT`` = 5 s), then runs the cleanup contexts, where the SDK
drains for at most ``SHUTDOWN_TIMEOUT`` (20 s) and spools what is left.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator

from aiohttp import web

import panoply_async

#: seconds the SDK may spend delivering at exit
#: (``PANOPLY_SHUTDOWN_TIMEOUT`` overrides the 20 s)
SHUTDOWN_TIMEOUT = float(os.environ.get("PANOPLY_SHUTDOWN_TIMEOUT", "20"))
#: seconds aiohttp waits for open requests before the cleanup contexts run
HTTP_SHUTDOWN_TIMEOUT = 5.0

PANOPLY = web.AppKey("panoply", panoply_async.SDK)


async def panoply_sdk(app: web.Application) -> AsyncIterator[None]:
    # Credentials and endpoint: PANOPLY_APIKEY, PANOPLY_APISECRET, PANOPLY_ENDPOINT_URL.
    async with panoply_async.SDK(
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        spool_dir=os.environ.get("PANOPLY_SPOOL_DIR", "panoply-spool"),
    ) as conn:
        app[PANOPLY] = conn
        yield


async def post_event(request: web.Request) -> web.Response:
    event = await request.json()
    await request.app[PANOPLY].write("events", event)
    return web.json_response({"accepted": True, "pid": os.getpid()})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "pid": os.getpid()})


def make_app() -> web.Application:
    app = web.Application()
    app.cleanup_ctx.append(panoply_sdk)
    app.router.add_post("/events", post_event)
    app.router.add_get("/health", health)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    web.run_app(
        make_app(), host=args.host, port=args.port, shutdown_timeout=HTTP_SHUTDOWN_TIMEOUT
    )
