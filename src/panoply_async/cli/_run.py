"""``panoply-async run``: one connector, its generated options, progress and state file."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import secrets
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import click
import orjson
from rich.console import Console

from .._durable import fileio
from .._engine.sdk import SDK
from .._engine.transport import MemoryTransport, Message, SendOutcome, Transport
from .._wire.encoding import decode_body
from ..errors import StateFileError
from ._interrupt import Stopper
from ._look import TableLook
from ._progress import RunDisplay

__all__ = ["RunOptions", "StateFile", "StateFileError", "param_options", "run_connector"]

#: where ``--state-file`` puts the committed state in ``source`` at start
STATE_KEY = "state"
STATE_ID_KEY = "state_id"
#: the start time of the last successful run, as legacy incremental connectors read it
LAST_SUCCESS_KEY = "lastTimeSucceed"
LAST_SUCCESS_FORMAT = "%Y-%m-%dT%H:%M:%S"
_LAST_SUCCESS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?$")
STATE_FILE_KEYS = (STATE_ID_KEY, STATE_KEY, LAST_SUCCESS_KEY)
#: a version 2 file holds one entry per stream (see :mod:`panoply_async.connectors._streams`)
VERSION_KEY = "version"
STREAMS_KEY = "streams"
STATE_FILE_V2_KEYS = (VERSION_KEY, STREAMS_KEY, *STATE_FILE_KEYS)

PARAM_TYPES: dict[str, click.ParamType[Any]] = {
    "number": click.FLOAT,
    "integer": click.INT,
    "int": click.INT,
}
#: CONFIG param types whose command-line value is JSON
JSON_LIST_TYPES = frozenset({"list", "array", "multiselect"})
JSON_OBJECT_TYPES = frozenset({"object", "dict", "json", "map"})


def option_name(param: str) -> str:
    return "--" + param.replace("_", "-")


class JSONValue(click.ParamType[Any]):
    """A param given as JSON text: an array or an object."""

    def __init__(self, shape: type[list[Any]] | type[dict[str, Any]]) -> None:
        self.shape = shape
        self.name = "json array" if shape is list else "json object"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if isinstance(value, self.shape):
            return value
        try:
            parsed = json.loads(value)
        except ValueError:
            example = '["a", "b"]' if self.shape is list else '{"a": 1}'
            self.fail(f"not JSON: give a {self.name}, e.g. {example}", param, ctx)
        if not isinstance(parsed, self.shape):
            self.fail(f"expected a {self.name}, got {type(parsed).__name__}", param, ctx)
        return parsed


def _param_type(kind: str, default: Any) -> click.ParamType[Any]:
    if kind in JSON_LIST_TYPES or isinstance(default, list):
        return JSONValue(list)
    if kind in JSON_OBJECT_TYPES or isinstance(default, dict):
        return JSONValue(dict)
    return PARAM_TYPES.get(kind, click.STRING)


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
        shown = default is not None and not param.get("secret")
        options.append(click.Option(
            [option_name(name), name],
            type=_param_type(kind, default),
            default=default if not param.get("secret") else None,
            show_default=json.dumps(default) if shown and isinstance(default, (list, dict))
            else shown,
            help=help_text,
        ))
    return options


def format_last_success(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime(LAST_SUCCESS_FORMAT + ".%f")


@dataclass
class StateFile:
    """The committed state and the last success, written atomically (mode 0600)."""

    path: Path
    last_success: str | None = None

    def load(self) -> tuple[Any, Any] | None:
        """``(state_id, state)``, or None when the file does not exist.

        Raises :class:`StateFileError` naming what is wrong with the file.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise StateFileError(f"cannot read it: {exc}") from None
        if not text.strip():
            raise StateFileError("it is empty (truncated?)")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise StateFileError(f"not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise StateFileError(f"expected a JSON object with keys {', '.join(STATE_FILE_KEYS)}"
                                 f", found a JSON {type(data).__name__}")
        allowed = STATE_FILE_V2_KEYS if VERSION_KEY in data else STATE_FILE_KEYS
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise StateFileError(f"unexpected keys {', '.join(map(repr, unknown))} (a state "
                                 f"file holds only {', '.join(allowed)})")
        state = _combined_state(data) if VERSION_KEY in data else data.get(STATE_KEY)
        last = data.get(LAST_SUCCESS_KEY)
        if last is not None and not (isinstance(last, str) and _LAST_SUCCESS.match(last)):
            raise StateFileError(f"{LAST_SUCCESS_KEY} must be a UTC time like "
                                 f"2024-01-31T12:00:00.000000, got {last!r}")
        self.last_success = last
        return data.get(STATE_ID_KEY), state

    def save(self, state_id: Any, state: Any) -> None:
        """Write the state: a version 2 file (one entry per stream) when ``state`` holds
        stream entries, else the single-state file of earlier versions."""
        streams = state.get(STREAMS_KEY) if isinstance(state, Mapping) else None
        if isinstance(state, Mapping) and isinstance(streams, Mapping):
            rest = {k: v for k, v in state.items() if k != STREAMS_KEY}
            self._write({VERSION_KEY: 2, STREAMS_KEY: dict(streams), STATE_ID_KEY: state_id,
                         STATE_KEY: rest or None, LAST_SUCCESS_KEY: self.last_success})
            return
        self._write({STATE_ID_KEY: state_id, STATE_KEY: state,
                     LAST_SUCCESS_KEY: self.last_success})

    @property
    def log_key(self) -> str:
        """This file's name for the states that ride a write-ahead log (``--wal-dir``):
        a run only ever takes back states logged for the same state file."""
        return hashlib.sha256(str(self.path.resolve()).encode()).hexdigest()[:32]

    def save_success(self, started: datetime.datetime, state_id: Any, state: Any) -> None:
        self.last_success = format_last_success(started)
        self.save(state_id, state)

    def _write(self, data: dict[str, Any]) -> None:
        payload = orjson.dumps(data, option=orjson.OPT_INDENT_2)
        # Through the durable layer's I/O seam, so that the fault tests reach every
        # call; a failure leaves the previous state in place and says so, typed.
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        fd = -1
        try:
            fileio.mkdir(self.path.parent, 0o777)
            # Mode 0600: the state may hold cursors or tokens.
            fd = fileio.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            view = memoryview(payload)
            while view:
                view = view[fileio.write(fd, view):]
            fileio.fsync(fd)
            os.close(fd)
            fd = -1
            fileio.replace(tmp, self.path)
        except BaseException as exc:
            if fd >= 0:
                os.close(fd)
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise StateFileError(f"cannot save it: {exc.strerror}; the previous state "
                                     "is kept") from exc
            raise


def _combined_state(data: Mapping[str, Any]) -> Any:
    """A version 2 file's state as the source sees it: ``{"streams": {...}, ...}``."""
    if data[VERSION_KEY] != 2:
        raise StateFileError(f"{VERSION_KEY} {data[VERSION_KEY]!r} is not supported (this "
                             "panoply-async reads single-state files and version 2)")
    streams = data.get(STREAMS_KEY) or {}
    if not isinstance(streams, dict) or not all(isinstance(e, dict) for e in streams.values()):
        raise StateFileError(f"{STREAMS_KEY} must be an object holding one object per stream")
    rest = data.get(STATE_KEY)
    if rest is not None and not isinstance(rest, dict):
        raise StateFileError(f"in a version 2 file, {STATE_KEY} must be an object or null")
    return {**(rest or {}), STREAMS_KEY: streams}


class DryRunTransport(MemoryTransport):
    """Acknowledges at once and writes each record to stdout as a JSON line.

    When stdout's reader goes away (``| head``), stdout is pointed at the null
    device (nothing more can be printed, and Python's exit flush stays quiet),
    ``on_closed`` ends the run, and every message, printed or not, is still
    acknowledged: a dry run has nothing to spool.
    """

    def __init__(self, on_closed: Callable[[], None] | None = None) -> None:
        super().__init__(keep_bodies=False)
        self.on_closed = on_closed
        self.stdout_closed = False

    async def send(self, messages: Sequence[Message]) -> SendOutcome:
        out = sys.stdout
        if not self.stdout_closed:
            try:
                for message in messages:
                    for record in decode_body(message.body):
                        out.write(json.dumps(record, ensure_ascii=False) + "\n")
                out.flush()
            except BrokenPipeError:
                self._closed()
        return await super().send(messages)

    def _closed(self) -> None:
        self.stdout_closed = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
        if self.on_closed is not None:
            self.on_closed()


@dataclass
class RunOptions:
    module: ModuleType
    source: dict[str, Any]
    apikey: str | None
    apisecret: str | None
    endpoint_url: str | None = None
    local: bool = False
    dry_run: bool = False
    #: loaded (and checked) before the run; never written by a dry run
    state_file: StateFile | None = None
    batch_size: int | None = None
    spool_dir: str | None = None
    shutdown_timeout: float = 30.0
    stopper: Stopper = field(default_factory=Stopper)
    wal_dir: str | None = None
    #: what to do with a record write() refuses: fail, skip or dead-letter
    on_bad_record: str = "fail"
    dead_letter_file: str | None = None
    #: a trial: stop once this many records were read for each table
    max_records: int | None = None
    #: ``--streams``: the streams to read (None: every stream)
    streams: list[str] | None = None


@dataclass
class RunOutcome:
    result: Any = None
    stats: dict[str, int] = field(default_factory=dict)
    arrived: dict[str, int] | None = None
    spool_path: Path | None = None
    error: BaseException | None = None
    interrupted: bool = False
    #: the last ``(state_id, state)`` committed during this run
    committed: tuple[Any, Any] | None = None
    elapsed: float = 0.0
    #: a dry run whose stdout was closed by its reader (``| head``)
    stdout_closed: bool = False
    #: with ``--local``: what arrived, per table (records, columns, a sample)
    looks: dict[str, TableLook] | None = None


def load_state(options: RunOptions) -> None:
    """Put the state file's state and last success into the source (raises StateFileError)."""
    if options.state_file is None:
        return
    loaded = options.state_file.load()
    if loaded is not None:
        state_id, state = loaded
        if state_id is not None or state is not None:
            options.source[STATE_ID_KEY], options.source[STATE_KEY] = state_id, state
    if options.state_file.last_success is not None:
        options.source.setdefault(LAST_SUCCESS_KEY, options.state_file.last_success)


async def resume_from_log(conn: SDK, key: str, source: dict[str, Any],
                          on_state: Callable[[Any, Any], None]) -> None:
    """Commit the state a killed run logged with its records, once recovery delivered
    them, and start the connector from it (not from the older state file's)."""
    recovered = await conn.recovered_state(key)
    if recovered is not None:
        on_state(*recovered)
        source[STATE_ID_KEY], source[STATE_KEY] = recovered


async def run_connector(options: RunOptions, console: Console, outcome: RunOutcome) -> None:
    """Run the connector; fills ``outcome``, also when cancelled (interrupted)."""
    from ..local import LocalSQS, make_credentials

    started_at = datetime.datetime.now(datetime.timezone.utc)
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

    # A trial (--max-records) leaves records unread: its state must not move the
    # next run past them, nor its start time become the last success.
    trial = options.max_records is not None
    state_file = None if options.dry_run or trial else options.state_file

    def on_state(state_id: Any, state: Any) -> None:
        outcome.committed = (state_id, state)
        if state_file is not None:
            state_file.save(state_id, state)

    # A dry run's reader that goes away (``| head``) ends the run, quietly.
    pipe_scope = anyio.CancelScope()
    dry = DryRunTransport(pipe_scope.cancel) if options.dry_run else None
    transport: Transport = options.stopper.transport(apikey, apisecret, endpoint_url, dry)
    display = RunDisplay(console)
    sdk = SDK(apikey, apisecret, endpoint_url=endpoint_url, spool_dir=options.spool_dir,
              transport=transport, shutdown_timeout=options.shutdown_timeout,
              wal_dir=options.wal_dir)
    clock = time.monotonic()
    try:
        with display, pipe_scope:
            sdk.on("progress", display.on_progress)
            sdk.on("flush", lambda data: display.add_records(int(data["records"])))
            try:
                async with sdk as conn:
                    state_key = None
                    if state_file is not None and options.wal_dir is not None:
                        state_key = state_file.log_key
                        await resume_from_log(conn, state_key, options.source, on_state)
                    source = stream_cls(options.source, {})
                    if options.streams is not None:
                        await source.select_streams(options.streams)
                    outcome.result = await conn.ingest(
                        source, batch_size=options.batch_size, on_state=on_state,
                        on_bad_record=options.on_bad_record,
                        dead_letter_file=options.dead_letter_file,
                        max_records=options.max_records,
                        state_key=state_key)
            except anyio.get_cancelled_exc_class():
                outcome.stdout_closed = dry is not None and dry.stdout_closed
                outcome.interrupted = not outcome.stdout_closed
            except Exception as exc:
                outcome.error = exc
            finally:
                outcome.elapsed = time.monotonic() - clock
                display.stop_clock(outcome.elapsed)
    finally:
        outcome.stats = sdk.stats.as_dict()
        outcome.spool_path = sdk.spool_path
        if server is not None:
            with anyio.CancelScope(shield=True):
                queue_url = server.queue_url(apikey, apisecret)
                received = await server.areceive(queue_url)
                # What Panoply would receive, read from what arrived: nothing is
                # added to the SDK's write path for it.
                looks: dict[str, TableLook] = {}
                for message in received:
                    for record in decode_body(message.body):
                        table = str(record.get("__table"))
                        looks.setdefault(table, TableLook()).add(record)
                outcome.looks = dict(sorted(looks.items()))
                outcome.arrived = {table: look.records for table, look in outcome.looks.items()}
                await anyio.to_thread.run_sync(server.stop)
    undelivered = outcome.stats.get("records_spooled", 0) + outcome.stats.get("records_failed", 0)
    if (state_file is not None and not outcome.interrupted and outcome.error is None
            and not undelivered):
        committed = outcome.committed or (options.source.get(STATE_ID_KEY),
                                          options.source.get(STATE_KEY))
        state_file.save_success(started_at, *committed)
