"""`panoply-async replay`, run as a user would: the console script in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import anyio

from panoply_async import SDK
from panoply_async.testing import LocalQueue

# The console script installed beside this interpreter, as a user would run it.
SCRIPT = str(Path(sys.executable).with_name("panoply-async"))


def dead_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_replay_command_delivers_the_spool(
    panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    async with SDK(panoply_queue.apikey, panoply_queue.apisecret,
                   endpoint_url=dead_endpoint(), spool_dir=tmp_path, max_attempts=1) as conn:
        for i in range(1_000):
            await conn.write("t", {"id": i})
    assert conn.stats.records_spooled == 1_000

    env = {**os.environ, "PANOPLY_APIKEY": panoply_queue.apikey,
           "PANOPLY_APISECRET": panoply_queue.apisecret}
    done = subprocess.run(
        [SCRIPT, "replay", str(tmp_path), "--endpoint-url", panoply_queue.endpoint_url],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "replayed 1,000 records" in done.stdout
    assert panoply_queue.apisecret not in done.stdout + done.stderr
    ids = Counter(r["id"] for r in await panoply_queue.arecords())
    assert ids == Counter(range(1_000))
    assert list(tmp_path.iterdir()) == []


def test_replay_without_credentials_is_a_usage_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANOPLY_")}
    done = subprocess.run([SCRIPT, "replay", str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "missing credentials" in done.stderr


def test_replay_with_bad_secret_does_not_print_it(tmp_path: Path) -> None:
    secret = "bm90L2Egdm/hbGlkL3NlY3JldA=="
    done = subprocess.run(
        [SCRIPT, "replay", str(tmp_path), "--apikey", "acme/x", "--apisecret", secret],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2
    assert "bad credentials" in done.stderr
    assert secret not in done.stdout + done.stderr


async def test_replay_command_skips_a_file_whose_writer_is_running(
    panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    # Issue 14 item 3, across processes: the command leaves alone (and says so) the
    # spool file of an SDK that is still open and spooling.
    env = {**os.environ, "PANOPLY_APIKEY": panoply_queue.apikey,
           "PANOPLY_APISECRET": panoply_queue.apisecret}
    command = [SCRIPT, "replay", str(tmp_path), "--endpoint-url", panoply_queue.endpoint_url]
    async with SDK(panoply_queue.apikey, panoply_queue.apisecret,
                   endpoint_url=dead_endpoint(), spool_dir=tmp_path, max_attempts=1) as conn:
        await conn.write_many("t", [{"id": i} for i in range(100)])
        await conn.flush()
        assert conn.stats.records_spooled == 100
        spooled = conn.spool_path
        assert spooled is not None
        before = spooled.read_bytes()
        done = await anyio.to_thread.run_sync(lambda: subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=120, check=False))
        assert done.returncode == 0, done.stderr
        assert f"skipped {spooled}: in use by a running writer or another replay" in done.stdout
        assert "replayed 0 records" in done.stdout
        assert spooled.read_bytes() == before
        await conn.write_many("t", [{"id": i} for i in range(100, 150)])
    assert conn.stats.records_spooled == 150

    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "replayed 150 records" in done.stdout
    assert "skipped" not in done.stdout
    ids = Counter(r["id"] for r in await panoply_queue.arecords())
    assert ids == Counter(range(150))
