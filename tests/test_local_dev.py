"""The local server for development (issue 20, item 2): what it prints is all an app
needs. The server runs as a child process; an app using ``SDK()`` with no arguments
runs with exactly the printed environment; ``tail`` reads back what arrived."""

from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from click.testing import CliRunner

from panoply_async import parse_credentials
from panoply_async.cli import cli
from panoply_async.local import (
    DEFAULT_PORT,
    export_lines,
    local_credentials,
    make_credentials,
)

SRC = str(Path(__file__).resolve().parents[1] / "src")
STARTUP_SECONDS = 60

APP = """
import anyio
from panoply_async import SDK

async def main() -> None:
    async with SDK() as conn:
        for i in range(25):
            await conn.write("events", {"id": i})

anyio.run(main)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def line_reader(stream: IO[str]) -> queue.Queue[str]:
    """The stream's lines, read by a thread, so that each wait can be bounded."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


@pytest.fixture
def server_process() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "panoply_async.local", "--port", str(free_port())],
        stdin=subprocess.PIPE,  # closed if this test process dies: no orphan
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=30)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def printed_environment(proc: subprocess.Popen[str]) -> tuple[str, dict[str, str]]:
    """The endpoint line and the variables of the export lines that follow it."""
    assert proc.stdout is not None
    lines = line_reader(proc.stdout)
    first = lines.get(timeout=STARTUP_SECONDS).strip()
    assert first.startswith("endpoint=http://127.0.0.1:"), first
    variables: dict[str, str] = {}
    for _ in range(3):
        words = shlex.split(lines.get(timeout=STARTUP_SECONDS))
        assert words[0] == "export", words
        assert len(words) == 2, words
        name, _, value = words[1].partition("=")
        variables[name] = value
    return first.split("=", 1)[1], variables


@pytest.mark.main_only
def test_an_app_started_with_the_printed_lines_delivers(
    server_process: subprocess.Popen[str],
) -> None:
    endpoint, variables = printed_environment(server_process)
    assert set(variables) == {"PANOPLY_ENDPOINT_URL", "PANOPLY_APIKEY", "PANOPLY_APISECRET"}
    assert (variables["PANOPLY_APIKEY"], variables["PANOPLY_APISECRET"]) == local_credentials()
    assert variables["PANOPLY_ENDPOINT_URL"] == endpoint
    # Exactly that environment (plus where to find the package): nothing else leaks in.
    environment = {**variables, "PYTHONPATH": SRC}
    app = subprocess.run([sys.executable, "-c", APP], env=environment, capture_output=True,
                         text=True, timeout=120, check=False)
    assert app.returncode == 0, app.stderr
    tail = subprocess.run(
        [sys.executable, "-m", "panoply_async", "tail", "--wait", "5", "--max", "25"],
        env=environment, capture_output=True, text=True, timeout=120, check=False,
    )
    assert tail.returncode == 0, tail.stderr
    records = [json.loads(line) for line in tail.stdout.splitlines()]
    assert sorted(record["id"] for record in records) == list(range(25))
    assert {record["__table"] for record in records} == {"events"}
    server_process.send_signal(signal.SIGTERM)
    assert server_process.wait(timeout=30) == 0


@pytest.mark.main_only
def test_a_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "panoply_async.local", "--port", str(port)],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONPATH": SRC}, check=False,
        )
    assert result.returncode == 2
    assert f"127.0.0.1:{port}" in result.stderr
    assert "--port" in result.stderr
    assert result.stdout == ""


def test_the_export_lines_are_shell_and_name_the_three_variables() -> None:
    apikey, apisecret = make_credentials("local")
    lines = export_lines("http://127.0.0.1:4566", apikey, apisecret)
    parsed = dict(shlex.split(line)[1].split("=", 1) for line in lines)
    assert parsed == {"PANOPLY_ENDPOINT_URL": "http://127.0.0.1:4566",
                      "PANOPLY_APIKEY": apikey, "PANOPLY_APISECRET": apisecret}


def test_the_cli_command_serves_on_the_same_default_port() -> None:
    result = CliRunner().invoke(cli, ["local", "--help"])
    assert result.exit_code == 0
    assert f"default: {DEFAULT_PORT}" in result.output


def test_tail_local_makes_credentials_and_prints_their_exports() -> None:
    # --wait 0 stops at once on the empty queue; what counts is what it printed first.
    result = CliRunner().invoke(
        cli, ["tail", "--local", "--wait", "0"],
        env={"PANOPLY_APIKEY": None, "PANOPLY_APISECRET": None},
    )
    assert result.exit_code == 0, result.output
    exports = [line for line in result.output.splitlines() if line.startswith("export ")]
    variables = dict(shlex.split(line)[1].split("=", 1) for line in exports)
    assert set(variables) == {"PANOPLY_ENDPOINT_URL", "PANOPLY_APIKEY", "PANOPLY_APISECRET"}
    # Those of `panoply-async local`: one set of development credentials everywhere.
    assert (variables["PANOPLY_APIKEY"], variables["PANOPLY_APISECRET"]) == local_credentials()


def test_the_development_credentials_are_valid_and_stable() -> None:
    first = local_credentials()
    assert first == local_credentials()
    assert parse_credentials(*first).queue_name == "sdk-local-localdev"
