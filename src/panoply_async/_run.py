"""``panoply-async run``: one connector, its generated options, progress and state file."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import click
import orjson
from rich.console import Console

from ._encoding import decode_body
from ._progress import RunDisplay
from ._sdk import SDK
from ._transport import MemoryTransport, Message, SendOutcome

__all__ = ["RunOptions", "StateFile", "param_options", "run_connector"]

#: where ``--state-file`` puts the committed state in ``source`` at start
STATE_KEY = "state"
STATE_ID_KEY = "state_id"

PARAM_TYPES: dict[str, click.ParamType[Any]] = {
    "number": click.FLOAT,
    "integer": click.INT,
    "int": click.INT,
}


def option_name(param: str) -> str:
    return "--" + param.replace("_", "-")


def param_options(config: Mapping[str, Any]) -> list[click.Option]:
    """One ``--<name>`` option per ``CONFIG["params"]`` entry."""
    options: list[click.Option] = []
    for param in config.get("params", []):
        name = str(param["name"])
        kind = str(param.get("type", "text")).lower()
        parts = [str(param[k]) for k in ("title", "help") if param.get(k)]
        if param.get("placeholder"):
            parts.append(f"(e.g. {param['placeholder']})")
        if param.get("required"):
            parts.append("[required]")
        help_text = " ".join(parts) or None
        default = param.get("default")
        if kind in ("boolean", "bool", "checkbox"):
            options.append(click.Option(
                [f"{option_name(name)}/--no-{option_name(name)[2:]}", name],
                default=bool(default) if default is not None else None,
                help=help_text,
            ))
            continue
        options.append(click.Option(
            [option_name(name), name],
            type=PARAM_TYPES.get(kind, click.STRING),
            multiple=kind == "list",
            default=default if not param.get("secret") else None,
            show_default=default is not None and not param.get("secret"),
            help=help_text,
        ))
    return options


@dataclass
class StateFile:
    """The committed state, written atomically after every commit."""

    path: Path

    def load(self) -> tuple[Any, Any] | None:
        if not self.path.exists():
            return None
        data = json.loads(self.path.read_text(encoding="utf-8"))
        return data.get(STATE_ID_KEY), data.get(STATE_KEY)

    def save(self, state_id: Any, state: Any) -> None:
        payload = orjson.dumps({STATE_ID_KEY: state_id, STATE_KEY: state},
                               option=orjson.OPT_INDENT_2)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class DryRunTransport(MemoryTransport):
    """Acknowledges at once and writes each record to stdout as a JSON line."""

    def __init__(self) -> None:
        super().__init__(keep_bodies=False)

    async def send(self, messages: Sequence[Message]) -> SendOutcome:
        out = sys.stdout
        for message in messages:
            for record in decode_body(message.body):
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
        return await super().send(messages)


@dataclass
class RunOptions:
    module: ModuleType
    source: dict[str, Any]
    apikey: str | None
    apisecret: str | None
    endpoint_url: str | None = None
    local: bool = False
    dry_run: bool = False
    state_file: Path | None = None
    batch_size: int | None = None
    spool_dir: str | None = None
    wal_dir: str | None = None


@dataclass
class RunOutcome:
    result: Any = None
    stats: dict[str, int] = field(default_factory=dict)
    arrived: dict[str, int] | None = None
    spool_path: Path | None = None
    error: BaseException | None = None
    interrupted: bool = False


async def run_connector(options: RunOptions, console: Console, outcome: RunOutcome) -> None:
    """Run the connector; fills ``outcome`` even when interrupted."""
    from .local import LocalSQS, make_credentials

    state_file = StateFile(options.state_file) if options.state_file else None
    if state_file is not None:
        loaded = state_file.load()
        if loaded is not None:
            options.source[STATE_ID_KEY], options.source[STATE_KEY] = loaded

    stream_cls = options.module.Stream
    server: LocalSQS | None = None
    apikey, apisecret = options.apikey, options.apisecret
    endpoint_url = options.endpoint_url
    if options.local:
        server = LocalSQS()
        await anyio.to_thread.run_sync(server.start)
        if not apikey or not apisecret:
            apikey, apisecret = make_credentials("local")
        server.create_queue(apikey, apisecret)
        endpoint_url = server.endpoint_url
    elif options.dry_run and (not apikey or not apisecret):
        apikey, apisecret = make_credentials("dryrun")
    if apikey is None or apisecret is None:
        raise ValueError("credentials are required unless --local or --dry-run")

    transport = DryRunTransport() if options.dry_run else None
    display = RunDisplay(console)
    sdk = SDK(apikey, apisecret, endpoint_url=endpoint_url, spool_dir=options.spool_dir,
              transport=transport, wal_dir=options.wal_dir)
    try:
        with display:
            sdk.on("progress", display.on_progress)
            sdk.on("flush", lambda data: display.add_records(int(data["records"])))
            try:
                async with sdk as conn:
                    source = stream_cls(options.source, {})
                    outcome.result = await conn.ingest(
                        source,
                        batch_size=options.batch_size,
                        on_state=state_file.save if state_file is not None else None,
                    )
            except anyio.get_cancelled_exc_class():
                outcome.interrupted = True
            except Exception as exc:
                outcome.error = exc
    finally:
        outcome.stats = sdk.stats.as_dict()
        outcome.spool_path = sdk.spool_path
        if server is not None:
            with anyio.CancelScope(shield=True):
                queue_url = server.queue_url(apikey, apisecret)
                received = await server.areceive(queue_url)
                arrived: dict[str, int] = {}
                for message in received:
                    for record in decode_body(message.body):
                        table = str(record.get("__table"))
                        arrived[table] = arrived.get(table, 0) + 1
                outcome.arrived = dict(sorted(arrived.items()))
                await anyio.to_thread.run_sync(server.stop)
    if outcome.interrupted:
        raise anyio.get_cancelled_exc_class()()
