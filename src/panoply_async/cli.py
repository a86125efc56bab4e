"""The ``panoply-async`` command.

Exit codes: 0 success; 1 connector or delivery failure; 2 usage or
configuration error; 130 interrupted (Ctrl-C) after a clean drain.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import anyio
import click

from ._exceptions import PanoplyError
from ._version import __version__

__all__ = ["cli", "main"]

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEFAULT_SPOOL_DIR = "panoply-spool"

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def credential_options(func: F) -> F:
    """``--apikey``/``--apisecret``, from the environment when not given."""
    func = click.option(
        "--apisecret", envvar="PANOPLY_APISECRET", show_envvar=True,
        help="Panoply api secret (prefer the environment variable: it stays out of ps).",
    )(func)
    func = click.option(
        "--apikey", envvar="PANOPLY_APIKEY", show_envvar=True, help="Panoply api key.",
    )(func)
    return func


def require_credentials(apikey: str | None, apisecret: str | None) -> tuple[str, str]:
    if not apikey or not apisecret:
        fail("missing credentials: pass --apikey/--apisecret or set PANOPLY_APIKEY and "
             "PANOPLY_APISECRET", EXIT_USAGE)
    from ._credentials import parse_credentials

    try:
        parse_credentials(apikey, apisecret)
    except PanoplyError as exc:
        fail(f"bad credentials: {exc}", EXIT_USAGE)
    return apikey, apisecret


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="panoply-async")
def cli() -> None:
    """Stream records to Panoply through SQS, and run data-source connectors."""


@cli.command()
@click.option("--records", default=100_000, show_default=True, type=click.IntRange(min=1),
              help="How many records to stream.")
def demo(records: int) -> None:
    """Stream records through a local SQS server and check that every one arrived."""
    from rich.console import Console

    from ._progress import RunDisplay
    from .demo import DemoSummary, run_demo

    result: list[DemoSummary] = []

    def started() -> None:
        click.echo(f"streaming {records:,} records to a local SQS server...", err=True)

    # Ctrl-C: the demo drains, checks and leaves its summary in ``result``.
    with contextlib.suppress(KeyboardInterrupt), RunDisplay(Console(stderr=True)) as display:
        anyio.run(lambda: run_demo(records, result=result, on_start=started, display=display))
    if not result:
        fail("interrupted before the demo started", EXIT_INTERRUPTED)
    summary = result[0]
    click.echo(
        f"{summary.records:,} records in {summary.messages} messages "
        f"({summary.bytes / 1e6:.1f} MB) in {summary.seconds:.2f} s: "
        f"{summary.records_per_second:,.0f} records/s"
    )
    for table, count in summary.per_table.items():
        click.echo(f"  {table}: {count:,}")
    if not summary.ok:
        fail(f"accepted {summary.accepted:,}, missing {summary.missing}, "
             f"duplicates {summary.duplicates}")
    if summary.interrupted:
        click.echo(f"interrupted after {summary.accepted:,} records; every accepted record "
                   "arrived exactly once", err=True)
        sys.exit(EXIT_INTERRUPTED)
    click.echo("every record arrived exactly once")


@cli.command()
@click.argument("path", type=click.Path(exists=True, path_type=str))
@click.option("--endpoint-url", help="Send to this SQS-compatible server instead of AWS.")
@credential_options
def replay(path: str, endpoint_url: str | None, apikey: str | None,
           apisecret: str | None) -> None:
    """Resend spooled messages from a spool file or directory (PATH).

    Acknowledged entries are removed; whatever fails again stays in the file.
    """
    from ._sdk import SDK

    key, secret = require_credentials(apikey, apisecret)

    async def run() -> Any:
        async with SDK(key, secret, endpoint_url=endpoint_url) as conn:
            return await conn.replay(path)

    try:
        result = anyio.run(run)
    except KeyboardInterrupt:
        click.echo("interrupted: entries not yet acknowledged are still in the spool", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except PanoplyError as exc:
        fail(str(exc))
    click.echo(
        f"replayed {result.records_sent:,} records in {result.messages_sent} messages "
        f"from {len(result.files)} file(s)"
    )
    if result.messages_other_queue:
        click.echo(f"kept {result.messages_other_queue} messages spooled for another queue")
    if result.messages_left:
        fail(f"{result.records_left:,} records in {result.messages_left} messages failed "
             f"again and stay in {path}")


def _load_module(target: str) -> Any:
    """Load and check a connector module; exit 2 listing every problem."""
    from ._contract import ConnectorError, validate_connector

    try:
        return validate_connector(target)
    except ConnectorError as exc:
        lines = "\n".join(f"  - {problem}" for problem in exc.problems)
        fail(f"{target} is not a valid connector module:\n{lines}", EXIT_USAGE)


class RunCommand(click.Command):
    """``run MODULE``: the options of MODULE's ``CONFIG["params"]`` join the command's."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        target = next((a for a in args if not a.startswith("-")), None)
        if target is not None and not ctx.resilient_parsing:
            from ._run import param_options

            module = _load_module(target)
            ctx.meta["panoply.module"] = module
            known = {p.name for p in self.params}
            self.params.extend(
                o for o in param_options(module.CONFIG) if o.name not in known
            )
        return super().parse_args(ctx, args)


def _collect_source(module: Any, values: dict[str, Any], source_json: str | None) -> dict[str, Any]:
    if source_json is not None:
        try:
            with open(source_json, encoding="utf-8") as handle:
                given = json.load(handle)
        except (OSError, ValueError) as exc:
            fail(f"--source-json {source_json}: {exc}", EXIT_USAGE)
        if not isinstance(given, dict):
            fail("--source-json must hold a JSON object", EXIT_USAGE)
        return given
    source: dict[str, Any] = {}
    for param in module.CONFIG.get("params", []):
        name = param["name"]
        value = values.get(name)
        if value in (None, ()) and param.get("required"):
            if sys.stdin is not None and sys.stdin.isatty():
                value = click.prompt(param.get("title") or name,
                                     hide_input=bool(param.get("secret")))
            else:
                fail(f"missing required option {'--' + name.replace('_', '-')}", EXIT_USAGE)
        if value not in (None, ()):
            source[name] = list(value) if isinstance(value, tuple) else value
    return source


@cli.command(cls=RunCommand, context_settings={"ignore_unknown_options": False})
@click.argument("module")
@credential_options
@click.option("--endpoint-url", help="Send to this SQS-compatible server instead of AWS.")
@click.option("--local", is_flag=True,
              help="Run against an embedded local SQS server and report what arrived.")
@click.option("--dry-run", is_flag=True,
              help="Print the records as JSON lines instead of sending them.")
@click.option("--state-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Resume from the state committed here, and write each committed state.")
@click.option("--batch-size", type=click.IntRange(min=1), help="The n hint passed to read().")
@click.option("--source-json", type=click.Path(exists=True, dir_okay=False),
              help="Read the whole source dict from this JSON file.")
@click.option("--spool-dir", default=DEFAULT_SPOOL_DIR, show_default=True,
              help="Where undeliverable messages are kept for `replay`.")
@click.option("--wal-dir", type=click.Path(file_okay=False),
              help="Log every record here before sending; a crashed run's records are "
              "resent by the next run with the same --wal-dir.")
@click.pass_context
def run(ctx: click.Context, /, module: str, apikey: str | None, apisecret: str | None,
        endpoint_url: str | None, local: bool, dry_run: bool, state_file: Path | None,
        batch_size: int | None, source_json: str | None, spool_dir: str,
        wal_dir: str | None, **params: Any) -> None:
    """Run the connector MODULE (an importable name, a .py file or a package directory).

    One option per CONFIG["params"] entry is added; see `panoply-async run MODULE --help`.
    """
    from rich.console import Console

    from ._contract import connector_name
    from ._run import RunOptions, RunOutcome, run_connector

    loaded = ctx.meta.get("panoply.module") or _load_module(module)
    if local and dry_run:
        fail("--local and --dry-run exclude each other", EXIT_USAGE)
    if not (local or dry_run):
        apikey, apisecret = require_credentials(apikey, apisecret)
    elif apikey and apisecret:
        require_credentials(apikey, apisecret)
    source = _collect_source(loaded, params, source_json)
    # Records go to source["destination"], else source["type"]: the module's name.
    source.setdefault("type", connector_name(module))
    console = Console(stderr=True)
    options = RunOptions(
        module=loaded, source=source, apikey=apikey, apisecret=apisecret,
        endpoint_url=endpoint_url, local=local, dry_run=dry_run, state_file=state_file,
        batch_size=batch_size, spool_dir=spool_dir, wal_dir=wal_dir,
    )
    outcome = RunOutcome()
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(run_connector, options, console, outcome)
    _summarise(console, outcome)
    if outcome.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if outcome.error is not None:
        fail(f"{type(outcome.error).__name__}: {outcome.error}")
    stats = outcome.stats
    if stats.get("records_spooled") or stats.get("records_failed"):
        fail(f"{stats.get('records_spooled', 0) + stats.get('records_failed', 0):,} records "
             f"were not delivered" + (f"; spooled to {outcome.spool_path}"
                                      if outcome.spool_path else ""))


def _summarise(console: Any, outcome: Any) -> None:
    stats = outcome.stats
    result = outcome.result
    lines = []
    if result is not None:
        lines.append(f"records: {result.records:,} in {result.batches:,} batches, "
                     f"{result.elapsed:.1f}s")
        for table, count in sorted(result.tables.items()):
            lines.append(f"  {table}: {count:,}")
    if stats:
        lines.append(
            f"messages: {stats['messages_sent']:,}, bytes: {stats['bytes_sent']:,}, "
            f"requests: {stats['requests']:,}, retries: {stats['retries']:,}, "
            f"spooled: {stats['records_spooled']:,}"
        )
    if result is not None and result.state_id is not None:
        lines.append(f"state: {result.state_id!r} committed")
    if outcome.arrived is not None:
        lines.append("arrived at the local server:")
        lines.extend(f"  {table}: {count:,}" for table, count in outcome.arrived.items())
    if outcome.interrupted:
        lines.append("interrupted: accepted records were drained before exiting")
    for line in lines:
        console.out(line, highlight=False)


@cli.command()
@click.argument("module")
def validate(module: str) -> None:
    """Check that MODULE is a valid connector: Stream and CONFIG, every problem listed."""
    loaded = _load_module(module)
    params = len(loaded.CONFIG.get("params", []))
    click.echo(f"{module}: ok ({loaded.Stream.__name__}, {params} params)")


def _region_of(queue_url: str) -> str:
    host = queue_url.split("/")[2]
    parts = host.split(".")
    return parts[1] if len(parts) > 3 and parts[0] == "sqs" else "us-east-1"


async def _tail(queue_url: str, endpoint_url: str | None, sign: bool, limit: int | None,
                wait: float, ready: Callable[[], None] | None = None) -> int:
    import botocore
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    from ._encoding import decode_body

    config = AioConfig(signature_version=None if sign else botocore.UNSIGNED)
    printed = 0
    async with get_session().create_client(
        "sqs", region_name=_region_of(queue_url), endpoint_url=endpoint_url, config=config
    ) as client:
        if ready is not None:
            ready()
        while limit is None or printed < limit:
            response = await client.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=int(wait),
                MessageAttributeNames=["All"],
            )
            messages = response.get("Messages", [])
            if not messages and wait == 0:
                break
            for message in messages:
                for record in decode_body(message["Body"]):
                    click.echo(json.dumps(record, ensure_ascii=False))
                    printed += 1
            if messages:
                await client.delete_message_batch(QueueUrl=queue_url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ])
    return printed


@cli.command()
@click.option("--local", is_flag=True,
              help="Start an embedded local SQS server with the credentials' queue and tail it.")
@click.option("--queue-url", help="Tail this queue (signed with your AWS credentials).")
@click.option("--endpoint-url", help="With the credentials: the SQS-compatible server to read.")
@click.option("--max", "limit", type=click.IntRange(min=1),
              help="Stop once N records were printed (messages are printed whole).")
@click.option("--wait", default=20.0, show_default=True, type=click.FloatRange(min=0, max=20),
              help="Long-poll seconds per receive; 0 stops when the queue is empty.")
@click.option("--port", default=0, show_default=True, help="Port of the --local server.")
@credential_options
def tail(local: bool, queue_url: str | None, endpoint_url: str | None, limit: int | None,
         wait: float, port: int, apikey: str | None, apisecret: str | None) -> None:
    """Receive, decode and print records as JSON lines (for debugging a queue).

    Messages are deleted from the queue once printed.
    """
    from ._credentials import parse_credentials

    if local and queue_url:
        fail("--local and --queue-url exclude each other", EXIT_USAGE)

    async def main_task() -> None:
        if local:
            from .local import LocalSQS

            key, secret = require_credentials(apikey, apisecret)
            async with LocalSQS(port=port) as server:
                url = server.create_queue(key, secret)
                click.echo(f"endpoint={server.endpoint_url}", err=True)
                click.echo(f"queue={url}", err=True)
                await _tail(url, server.endpoint_url, False, limit, wait)
        elif queue_url:
            await _tail(queue_url, endpoint_url, True, limit, wait)
        else:
            key, secret = require_credentials(apikey, apisecret)
            url = parse_credentials(key, secret).queue_url(endpoint_url)
            await _tail(url, endpoint_url, False, limit, wait)

    try:
        anyio.run(main_task)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        fail(f"{type(exc).__name__}: {exc}")


@cli.command()
@click.argument("name")
@click.option("--directory", type=click.Path(file_okay=False, path_type=Path), default=".",
              show_default=True, help="Where to create the NAME directory.")
def init(name: str, directory: Path) -> None:
    """Scaffold a connector package NAME that passes its own tests."""
    from ._scaffold import ScaffoldError, scaffold

    try:
        created = scaffold(name, directory)
    except ScaffoldError as exc:
        fail(str(exc), EXIT_USAGE)
    click.echo(f"created {created}")
    click.echo(f"next: cd {created} && pytest")


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    cli(prog_name="panoply-async")
