"""The web-service recipes (examples/*_app, docs/web-services.md) under real servers.

Each test starts the server as a user would (uvicorn, gunicorn) on a free port of
127.0.0.1, waits for readiness by polling the port, posts events with unique ids
while it stops a worker with SIGTERM, then stops the server and checks at the
local SQS server that every event answered 200 arrived. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from faultproxy import unused_endpoint_url
from panoply_async import decode_body
from panoply_async.testing import LocalQueue

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: bound for a server's start and for its stop (its workers drain within 20 s at most)
START_TIMEOUT = 30.0
STOP_TIMEOUT = 40.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def default_signals() -> None:
    """``preexec_fn``: a background test run hands its children an ignored SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@dataclass
class Server:
    """``python ARGS`` (``{port}`` filled in), a server; its output goes to ``log``."""

    args: list[str]
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    #: the last answer of ``/health``
    health: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, *[a.format(port=self.port) for a in self.args]],
            env=self.env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, preexec_fn=default_signals,
            # A group of its own, so that cleanup can end the workers with the master.
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_ready(self, workers: int) -> None:
        """Poll ``/health`` until ``workers`` distinct processes answered."""
        seen: set[int] = set()
        deadline = time.monotonic() + START_TIMEOUT
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
            while len(seen) < workers:
                if self.proc.poll() is not None:
                    pytest.fail(f"server exited early:\n{self.output()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"server not ready in {START_TIMEOUT}s:\n{self.output()}")
                try:
                    async with s.get(f"{self.url}/health", timeout=aiohttp.ClientTimeout(2)) as r:
                        if r.status == 200:
                            self.health = await r.json()
                            seen.add(self.health["pid"])
                            continue
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                await asyncio.sleep(0.05)  # the port is not open yet: poll again

    def stop(self, *, signal_it: bool = True) -> int:
        """SIGTERM the server (unless it was already sent) and wait for its exit code."""
        if signal_it and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"server did not stop in {STOP_TIMEOUT}s:\n{self.output()}")
        finally:
            self.close_log()
        return code

    def close_log(self) -> None:
        self._log.close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:  # a failed test must not leave a server or a worker behind
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(5)
        server.close_log()


def app_env(queue: LocalQueue, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANOPLY_")}
    env.update(
        PANOPLY_APIKEY=queue.apikey,
        PANOPLY_APISECRET=queue.apisecret,
        PANOPLY_ENDPOINT_URL=queue.endpoint_url,
        PANOPLY_SPOOL_DIR=str(tmp_path / "spool"),
    )
    return env


@dataclass
class Load:
    """What a load run saw: ids answered 200, by the worker that answered."""

    answered: dict[int, int] = field(default_factory=dict)  # id -> pid
    failed: int = 0


async def post_events(
    url: str, total: int, *, first: int = 0, clients: int = 8, after: int = 0,
    midway: Callable[[Load], None] | None = None,
) -> Load:
    """Post ``total`` events ``{"id": n}`` (n from ``first`` on) from ``clients``
    concurrent clients, a new connection each (so the kernel spreads them over the
    workers); once ``after`` were answered 200, call ``midway(load)`` once."""
    load = Load()
    ids = iter(range(first, first + total))
    called = False
    timeout = aiohttp.ClientTimeout(total=10)

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal called
        for n in ids:
            try:
                async with session.post(f"{url}/events", json={"id": n}) as response:
                    if response.status == 200:
                        load.answered[n] = (await response.json())["pid"]
                    else:
                        load.failed += 1
            except (aiohttp.ClientError, asyncio.TimeoutError):
                load.failed += 1  # the worker went away mid-request: not answered 200
            if midway is not None and not called and len(load.answered) >= after:
                called = True
                midway(load)

    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return load


def pid_gone(pid: int, timeout: float) -> bool:
    """Whether ``pid`` ended within ``timeout`` (it is not our child: poll it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return True
        except FileNotFoundError:  # reaped between the two looks
            return True
        time.sleep(0.05)
    return False


def sigterm_busiest(load: Load, killed: list[int]) -> None:
    """SIGTERM the worker that answered most so far: it surely holds accepted records."""
    pids = list(load.answered.values())
    pid = max(set(pids), key=pids.count)
    os.kill(pid, signal.SIGTERM)
    killed.append(pid)


async def arrived_ids(queue: LocalQueue) -> list[int]:
    return [int(r["id"]) for r in await queue.arecords()]


@pytest.mark.main_only
async def test_fastapi_lifespan_under_two_uvicorn_workers_loses_nothing_on_sigterm(
    panoply_queue: LocalQueue, tmp_path: Path, servers: list[Server]
) -> None:
    server = Server(
        ["-m", "uvicorn", "app:app", "--app-dir", str(EXAMPLES / "fastapi_app"),
         "--host", "127.0.0.1", "--port", "{port}", "--workers", "2",
         "--timeout-graceful-shutdown", "5", "--log-level", "warning"],
        app_env(panoply_queue, tmp_path), tmp_path / "uvicorn.log",
    )
    servers.append(server)
    await server.wait_ready(workers=2)
    killed: list[int] = []
    load = await post_events(
        server.url, 600, after=150, midway=lambda ld: sigterm_busiest(ld, killed)
    )
    assert killed, "the load ended before a worker was stopped"
    assert await asyncio.to_thread(pid_gone, killed[0], STOP_TIMEOUT)
    assert server.stop() == 0, server.output()

    arrived = await arrived_ids(panoply_queue)
    by_killed = [n for n, pid in load.answered.items() if pid == killed[0]]
    assert len(by_killed) > 0
    assert set(load.answered) <= set(arrived)
    # Nothing was spooled: SQS was up, every worker delivered before it exited.
    assert not (tmp_path / "spool").exists() or not any((tmp_path / "spool").iterdir())


@pytest.mark.main_only
async def test_flask_with_a_module_level_sync_sdk_under_gunicorn_preload(
    panoply_queue: LocalQueue, tmp_path: Path, servers: list[Server]
) -> None:
    app_dir = EXAMPLES / "flask_app"
    server = Server(
        ["-m", "gunicorn", "-c", str(app_dir / "gunicorn.conf.py"), "--chdir", str(app_dir),
         "--bind", "127.0.0.1:{port}", "--workers", "2", "app:app"],
        app_env(panoply_queue, tmp_path), tmp_path / "gunicorn.log",
    )
    servers.append(server)
    await server.wait_ready(workers=2)
    killed: list[int] = []
    load = await post_events(
        server.url, 600, after=150, midway=lambda ld: sigterm_busiest(ld, killed)
    )
    assert killed, "the load ended before a worker was stopped"
    assert await asyncio.to_thread(pid_gone, killed[0], STOP_TIMEOUT)
    # --preload: the module, and so the SyncSDK, was created in the master, before the
    # workers were forked; each worker delivered through an engine of its own.
    assert server.health["imported_in"] == server.proc.pid
    assert server.proc.pid not in load.answered.values()
    assert server.stop() == 0, server.output()

    arrived = await arrived_ids(panoply_queue)
    assert [n for n, pid in load.answered.items() if pid == killed[0]]
    assert set(load.answered) <= set(arrived)


@pytest.mark.main_only
async def test_aiohttp_cleanup_ctx_delivers_everything_answered_before_sigterm(
    panoply_queue: LocalQueue, tmp_path: Path, servers: list[Server]
) -> None:
    server = Server(
        [str(EXAMPLES / "aiohttp_app" / "app.py"), "--port", "{port}"],
        app_env(panoply_queue, tmp_path), tmp_path / "aiohttp.log",
    )
    servers.append(server)
    await server.wait_ready(workers=1)
    stopped: list[int] = []

    def sigterm(load: Load) -> None:
        server.proc.send_signal(signal.SIGTERM)
        stopped.append(server.proc.pid)

    load = await post_events(server.url, 400, after=100, midway=sigterm)
    assert stopped
    # A second SIGTERM would cut the drain short (aiohttp's handler is gone by then).
    assert server.stop(signal_it=False) == 0, server.output()
    assert len(load.answered) >= 100
    assert set(load.answered) <= set(await arrived_ids(panoply_queue))


@pytest.mark.main_only
async def test_gunicorn_workers_share_one_wal_dir_and_a_sigkilled_workers_records_arrive(
    panoply_queue: LocalQueue, tmp_path: Path, servers: list[Server]
) -> None:
    app_dir = EXAMPLES / "flask_app"
    env = app_env(panoply_queue, tmp_path)
    env["PANOPLY_WAL_DIR"] = str(tmp_path / "wal")
    server = Server(
        ["-m", "gunicorn", "-c", str(app_dir / "gunicorn.conf.py"), "--chdir", str(app_dir),
         "--bind", "127.0.0.1:{port}", "--workers", "2", "app:app"],
        env, tmp_path / "gunicorn.log",
    )
    servers.append(server)
    await server.wait_ready(workers=2)
    killed: list[int] = []
    before_kill: set[int] = set()

    def sigkill_busiest(load: Load) -> None:
        pids = list(load.answered.values())
        before_kill.update(pids)
        pid = max(set(pids), key=pids.count)
        os.kill(pid, signal.SIGKILL)  # no drain, no exit hook: only the log remains
        killed.append(pid)

    load = await post_events(server.url, 600, after=150, midway=sigkill_busiest)
    assert killed, "the load ended before a worker was killed"
    # Both workers serve from the start (no WALLockedError); only requests cut by the
    # kill (one at a time per sync worker, at most one per client) may fail.
    assert load.failed <= 8, server.output()[-3000:]
    # The replacement adopts the dead worker's slot when its SDK starts, at its first
    # write: post until a worker forked after the kill answered (bounded).
    more = 0
    while not set(load.answered.values()) - before_kill and more < 20:
        more += 1
        extra = await post_events(server.url, 50, first=1000 * more, clients=4)
        load.answered.update(extra.answered)
    assert set(load.answered.values()) - before_kill, "no replacement worker answered"
    assert server.stop() == 0, server.output()

    arrived = set(await arrived_ids(panoply_queue))
    by_killed = {n for n, pid in load.answered.items() if pid == killed[0]}
    assert by_killed
    assert set(load.answered) <= arrived


@pytest.mark.main_only
async def test_django_settings_recipe_under_gunicorn(
    panoply_queue: LocalQueue, tmp_path: Path, servers: list[Server]
) -> None:
    server = Server(
        ["-m", "gunicorn", "-c", str(EXAMPLES / "flask_app" / "gunicorn.conf.py"),
         "--chdir", str(EXAMPLES / "django_settings"), "--bind", "127.0.0.1:{port}",
         "--workers", "2", "wsgi:application"],
        app_env(panoply_queue, tmp_path), tmp_path / "gunicorn.log",
    )
    servers.append(server)
    await server.wait_ready(workers=2)
    load = await post_events(server.url, 200)
    assert server.stop() == 0, server.output()
    assert load.failed == 0
    assert sorted(await arrived_ids(panoply_queue)) == list(range(200))


def spooled_ids(spool_dir: Path) -> list[int]:
    """The ids of the records in the spool files under ``spool_dir``."""
    return [
        int(record["id"])
        for path in sorted(spool_dir.glob("*.jsonl"))
        for line in path.read_text().splitlines()
        for record in decode_body(json.loads(line)["body"])
    ]


@pytest.mark.main_only
async def test_fastapi_recipe_spools_within_its_budget_when_sqs_is_unreachable(
    panoply_queue: LocalQueue, tmp_path: Path, servers: list[Server]
) -> None:
    # The shutdown budget under an outage: uvicorn's wait, then the SDK's drain, which
    # gives up at shutdown_timeout (2 s here instead of 20) and spools, then exit.
    env = app_env(panoply_queue, tmp_path)
    env.update(PANOPLY_ENDPOINT_URL=unused_endpoint_url(), PANOPLY_SHUTDOWN_TIMEOUT="2")
    server = Server(
        ["-m", "uvicorn", "app:app", "--app-dir", str(EXAMPLES / "fastapi_app"),
         "--host", "127.0.0.1", "--port", "{port}", "--workers", "2",
         "--timeout-graceful-shutdown", "5", "--log-level", "warning"],
        env, tmp_path / "uvicorn.log",
    )
    servers.append(server)
    await server.wait_ready(workers=2)
    load = await post_events(server.url, 200)
    assert load.failed == 0
    assert server.stop() == 0, server.output()
    assert sorted(spooled_ids(tmp_path / "spool")) == list(range(200))
