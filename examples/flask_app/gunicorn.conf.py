"""gunicorn settings for the Flask recipe (``gunicorn -c gunicorn.conf.py app:app``).

The shutdown budget, from the outside in: Kubernetes sends SIGTERM and, 30 s
later by default (``terminationGracePeriodSeconds``), SIGKILL. gunicorn's master
passes SIGTERM to its workers and kills those still running after
``graceful_timeout``; each worker finishes its request, then its ``SyncSDK``
drains for at most ``shutdown_timeout`` (20 s in app.py) and spools the rest.
20 < 25 < 30, so what was accepted is delivered or spooled before anything is killed.
"""

import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Import the app (and create its SyncSDK) once, in the master: the workers share the
# code pages, and each starts its own SDK engine at its first write().
preload_app = True
graceful_timeout = 25
# A worker draining at exit sends no heartbeat: keep the silent-worker timeout above
# the SDK's shutdown_timeout too (gunicorn's default, 30 s, is).
timeout = 30
