"""A FastAPI service that streams the events it receives to Panoply.

One ``SDK`` per worker process, held by the application's lifespan: it opens
when the worker starts serving and drains (delivers, or spools) when the worker
stops, after the last request was answered. Run it with::

    export PANOPLY_APIKEY=... PANOPLY_APISECRET=...   # PANOPLY_ENDPOINT_URL for a local server
    uvicorn app:app --app-dir examples/fastapi_app --workers 2 --timeout-graceful-shutdown 5

Shutdown budget, inside Kubernetes' default 30 s grace period (SIGTERM, then
SIGKILL): uvicorn first waits up to ``--timeout-graceful-shutdown`` (5 s) for
open requests, then runs the lifespan's exit, where the SDK drains for at most
``SHUTDOWN_TIMEOUT`` (20 s) and spools what is left to ``PANOPLY_SPOOL_DIR``.
5 + 20 leaves 5 s of slack. The SDK's default ``shutdown_timeout`` (30 s) alone
would use the whole grace period: with SQS unreachable, the worker would be
killed before it spooled anything.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request

import panoply_async

#: seconds the SDK may spend delivering at exit; with uvicorn's graceful timeout it
#: must stay below the orchestrator's grace period (Kubernetes: 30 s)
#: (``PANOPLY_SHUTDOWN_TIMEOUT`` overrides the 20 s)
SHUTDOWN_TIMEOUT = float(os.environ.get("PANOPLY_SHUTDOWN_TIMEOUT", "20"))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Credentials and endpoint: PANOPLY_APIKEY, PANOPLY_APISECRET, PANOPLY_ENDPOINT_URL.
    async with panoply_async.SDK(
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        spool_dir=os.environ.get("PANOPLY_SPOOL_DIR", "panoply-spool"),
    ) as conn:
        app.state.panoply = conn
        yield


app = FastAPI(lifespan=lifespan)


@app.post("/events")
async def post_event(request: Request) -> dict[str, Any]:
    event = await request.json()
    # Accepted here means encoded and buffered: it will be delivered or spooled,
    # also when this worker is stopped a moment later.
    await request.app.state.panoply.write("events", event)
    return {"accepted": True, "pid": os.getpid()}


@app.get("/health")
async def health() -> dict[str, Any]:
    return {"ok": True, "pid": os.getpid()}
