"""A Flask service that streams the events it receives to Panoply, under gunicorn.

The ``SyncSDK`` is created once, at import: with ``gunicorn --preload`` that
happens in the master, before the workers are forked. That is safe: a
``SyncSDK`` starts its engine (a thread with an event loop) on first use, so
each worker starts its own at its first ``write()``, and a forked child never
touches an engine its parent started. A worker that stops (SIGTERM, ``--max-requests``
recycling, the master's shutdown) drains it at interpreter exit. Run it with::

    export PANOPLY_APIKEY=... PANOPLY_APISECRET=...   # PANOPLY_ENDPOINT_URL for a local server
    gunicorn -c examples/flask_app/gunicorn.conf.py --chdir examples/flask_app app:app

Shutdown budget, see gunicorn.conf.py: the SDK drains for at most
``SHUTDOWN_TIMEOUT`` (20 s), inside gunicorn's ``graceful_timeout`` (25 s), inside
Kubernetes' default 30 s grace period.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, request

import panoply_async

#: seconds a worker may spend delivering at exit: below gunicorn's graceful_timeout
#: (and its worker ``timeout``), which is below the orchestrator's grace period
#: (``PANOPLY_SHUTDOWN_TIMEOUT`` overrides the 20 s)
SHUTDOWN_TIMEOUT = float(os.environ.get("PANOPLY_SHUTDOWN_TIMEOUT", "20"))

# Credentials and endpoint: PANOPLY_APIKEY, PANOPLY_APISECRET, PANOPLY_ENDPOINT_URL.
panoply = panoply_async.SyncSDK(
    shutdown_timeout=SHUTDOWN_TIMEOUT,
    spool_dir=os.environ.get("PANOPLY_SPOOL_DIR", "panoply-spool"),
    # One write-ahead log directory for all the workers (each takes a slot of its own
    # in it; a replacement adopts a killed worker's): survives SIGKILL and OOM kills.
    wal_dir=os.environ.get("PANOPLY_WAL_DIR") or None,
)

app = Flask(__name__)
#: the process that imported this module: with --preload, gunicorn's master
IMPORTED_IN = os.getpid()


@app.post("/events")
def post_event() -> dict[str, Any]:
    # Accepted here means encoded and handed to this worker's engine: it will be
    # delivered or spooled, also when the worker is stopped a moment later.
    panoply.write("events", request.get_json())
    return {"accepted": True, "pid": os.getpid()}


@app.get("/health")
def health() -> dict[str, Any]:
    return {"ok": True, "pid": os.getpid(), "imported_in": IMPORTED_IN}
