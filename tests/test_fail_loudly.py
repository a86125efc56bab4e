"""Scripts that must fail loudly (issue 20, item 9), each in a process of its own.

The documented way (docs/sync.md): close the SDK in the script (``with``, ``async
with`` or ``close()``); records neither delivered nor spooled then raise
:class:`DeliveryError`, which ends the script with status 1 and a message saying how
many records were lost. The exit hooks cannot set an exit status (Python ignores
``SystemExit`` there), so a script that relies on them only gets the message.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from panoply_async.local import make_credentials

SRC = str(Path(__file__).resolve().parents[1] / "src")
# Give up at once: one attempt, against a port where nothing listens.
OPTIONS = "max_attempts=1, request_timeout=5, shutdown_timeout=10"

WITH_BLOCK = f"""
from panoply_async import SyncSDK
with SyncSDK({OPTIONS}) as conn:
    for i in range(3):
        conn.write("events", {{"id": i}})
"""

ASYNC_WITH = f"""
import asyncio
from panoply_async import SDK

async def main() -> None:
    async with SDK({OPTIONS}) as conn:
        for i in range(3):
            await conn.write("events", {{"id": i}})

asyncio.run(main())
"""

LEGACY_CLOSE = f"""
import panoply_async.compat as panoply
sdk = panoply.SDK({OPTIONS})
for i in range(3):
    sdk.write("events", {{"id": i}})
sdk.close()
"""

LEGACY_NO_CLOSE = LEGACY_CLOSE.replace("sdk.close()\n", "")


def unused_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def run_script(script: str) -> subprocess.CompletedProcess[str]:
    apikey, apisecret = make_credentials("loud")
    environment = {
        "PYTHONPATH": SRC,
        "PATH": os.environ.get("PATH", ""),
        "PANOPLY_APIKEY": apikey,
        "PANOPLY_APISECRET": apisecret,
        "PANOPLY_ENDPOINT_URL": unused_endpoint(),
    }
    result = subprocess.run([sys.executable, "-c", script], env=environment,
                            capture_output=True, text=True, timeout=120, check=False)
    assert apisecret not in result.stderr + result.stdout
    return result


@pytest.mark.parametrize("script", [
    pytest.param(WITH_BLOCK, id="with-SyncSDK"),
    pytest.param(ASYNC_WITH, id="async-with-SDK"),
    # The same close() as the with block, through the legacy face.
    pytest.param(LEGACY_CLOSE, id="legacy-close", marks=pytest.mark.main_only),
])
def test_a_closed_sdk_ends_the_script_with_status_1_and_the_count(script: str) -> None:
    result = run_script(script)
    assert result.returncode == 1, result.stderr
    assert "DeliveryError: 3 records in 1 messages were not delivered" in result.stderr


def test_without_close_the_loss_is_reported_but_the_status_stays_0() -> None:
    result = run_script(LEGACY_NO_CLOSE)
    assert result.returncode == 0
    assert "3 records in 1 messages were not delivered" in result.stderr
