"""A TCP proxy on 127.0.0.1 that adds a fixed round trip, in a process of its own.

``python -m benchmarks.delay_proxy --upstream http://127.0.0.1:PORT --rtt-ms 0 50 100``
listens once per round trip and prints ``endpoint <ms>=http://127.0.0.1:<port>``
for each, then serves until its stdin closes (so it dies with the benchmark).

It is a delay line, not a throttle: every chunk read from either side is written
to the other ``rtt / 2`` after it arrived, in order, while later chunks are
already on their way. A request and its answer therefore take one extra round
trip, as on a long link with ample bandwidth; how many requests are in flight
at once is the only thing that can hide it. Connection setup is not delayed
(the handshake to real SQS would add more round trips, which only flatters
baselines that open a connection per request).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
from urllib.parse import urlsplit

_CHUNK = 1 << 16


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
) -> None:
    loop = asyncio.get_running_loop()
    line: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await line.get()
            if not data:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    delivering = asyncio.create_task(deliver())
    _connections.add(delivering)
    delivering.add_done_callback(_connections.discard)
    try:
        while data := await reader.read(_CHUNK):
            line.put_nowait((loop.time() + delay, data))
    except OSError:
        pass
    finally:
        line.put_nowait((loop.time() + delay, b""))
        with contextlib.suppress(OSError):
            await delivering


# The loop holds its tasks weakly: while a transport's reading is paused for flow
# control, nothing else may refer to a connection's tasks, which would then be
# collected mid-request. They are kept here until they end.
_connections: set[asyncio.Task[None]] = set()


async def _serve_one_way(host: str, port: int, delay: float) -> asyncio.Server:
    async def connected(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        _connections.add(task)
        task.add_done_callback(_connections.discard)
        try:
            upstream_r, upstream_w = await asyncio.open_connection(host, port)
        except OSError:
            client_w.close()
            return
        try:
            await asyncio.gather(
                _pump(client_r, upstream_w, delay), _pump(upstream_r, client_w, delay)
            )
        finally:
            for w in (client_w, upstream_w):
                w.close()

    return await asyncio.start_server(connected, "127.0.0.1", 0)


async def _main(upstream: str, rtts_ms: list[float]) -> None:
    parts = urlsplit(upstream)
    if parts.hostname != "127.0.0.1" or parts.port is None:
        raise SystemExit(f"refusing a non-loopback upstream {upstream!r}")
    servers = []
    for rtt in rtts_ms:
        server = await _serve_one_way(parts.hostname, parts.port, rtt / 2000)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        print(f"endpoint {rtt:g}=http://127.0.0.1:{port}", flush=True)
    print("ready", flush=True)
    # Serve until the parent closes our stdin (or dies).
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    for server in servers:
        server.close()


class DelayProxy:
    """``python -m benchmarks.delay_proxy`` as a child process: ``endpoints[rtt_ms]``."""

    def __init__(self, upstream: str, rtts_ms: list[float]) -> None:
        self._upstream = upstream
        self._rtts = rtts_ms
        self._process: subprocess.Popen[str] | None = None
        self.endpoints: dict[float, str] = {}

    def __enter__(self) -> DelayProxy:
        command = [sys.executable, "-m", "benchmarks.delay_proxy", "--upstream", self._upstream,
                   "--rtt-ms", *(f"{rtt:g}" for rtt in self._rtts)]
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        for line in self._process.stdout:
            line = line.strip()
            if line == "ready":
                return self
            if line.startswith("endpoint "):
                rtt, url = line.removeprefix("endpoint ").split("=", 1)
                self.endpoints[float(rtt)] = url
        self.__exit__()
        raise RuntimeError("the delay proxy did not start")

    def __exit__(self, *exc_info: object) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.delay_proxy", description=__doc__)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--rtt-ms", type=float, nargs="+", required=True)
    args = parser.parse_args(argv)
    asyncio.run(_main(args.upstream, args.rtt_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
