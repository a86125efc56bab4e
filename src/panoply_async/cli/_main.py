"""The ``panoply-async`` command.

Exit codes: 0 success; 1 connector or delivery failure (also after an
interrupt, when records were not delivered); 2 usage or configuration error;
130 interrupted by Ctrl-C (SIGINT), 143 by SIGTERM, after a clean drain; 141 a dry
run whose reader closed stdout (``| head``), the status of a tool killed by SIGPIPE.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import click

from .._version import __version__
from ..errors import PanoplyError
from ._args import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    ConnectorCommand,
    collect_source,
    fail,
    load_module,
)
from ._catalog import check, discover
from ._serve import local
from ._trial_options import trial_options

__all__ = ["cli", "main"]

EXIT_STDOUT_CLOSED = 141
DEFAULT_SPOOL_DIR = "panoply-spool"

F = TypeVar("F", bound=Callable[..., Any])


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
    from .._wire.credentials import parse_credentials

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

    from ._demo import DemoSummary, run_demo
    from ._interrupt import Interrupt, Stopper, run_interruptible
    from ._progress import RunDisplay
    from ._report import plural

    result: list[DemoSummary] = []
    interrupt = Interrupt()
    stopper = Stopper()

    def started() -> None:
        click.echo(f"streaming {records:,} records to a local SQS server...", err=True)

    with contextlib.suppress(KeyboardInterrupt), RunDisplay(Console(stderr=True)) as display:
        anyio.run(lambda: run_interruptible(
            lambda: run_demo(records, result=result, on_start=started, display=display,
                             stopper=stopper),
            interrupt, on_again=stopper.stop))
    if not result:
        fail("interrupted before the demo started", interrupt.exit_code)
    summary = result[0]
    click.echo(
        f"{plural(summary.records, 'record')} in {plural(summary.messages, 'message')} "
        f"({summary.bytes / 1e6:.1f} MB) sent and acknowledged in {summary.seconds:.2f} s "
        f"(from the first write to the last acknowledgement): "
        f"{summary.records_per_second:,.0f} records/s"
    )
    for table, count in summary.per_table.items():
        click.echo(f"  {table}: {count:,}")
    if summary.stopped:
        fail(f"stopped at once by a second interrupt: {summary.records:,} of "
             f"{summary.accepted:,} accepted records arrived; the demo keeps no spool")
    if not summary.ok:
        fail(f"accepted {summary.accepted:,}, missing {summary.missing}, "
             f"duplicates {summary.duplicates}")
    if summary.interrupted:
        click.echo(f"interrupted by {interrupt.name} after {plural(summary.accepted, 'record')};"
                   " every accepted record arrived exactly once", err=True)
        sys.exit(interrupt.exit_code)
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
    from .._engine.sdk import SDK

    key, secret = require_credentials(apikey, apisecret)

    async def run() -> Any:
        async with SDK(key, secret, endpoint_url=endpoint_url) as conn:
            return await conn.replay(path)

    from ._interrupt import Interrupt, run_interruptible

    interrupt = Interrupt()
    results: list[Any] = []

    async def work() -> None:
        results.append(await run())

    try:
        anyio.run(lambda: run_interruptible(work, interrupt))
    except KeyboardInterrupt:
        interrupt.signum = interrupt.signum or signal.SIGINT
    except PanoplyError as exc:
        fail(str(exc))
    if interrupt.interrupted or not results:
        click.echo(f"interrupted by {interrupt.name}: entries not yet acknowledged are still "
                   "in the spool", err=True)
        sys.exit(interrupt.exit_code)
    result = results[0]
    click.echo(
        f"replayed {result.records_sent:,} records in {result.messages_sent} messages "
        f"from {len(result.files)} file(s)"
    )
    for skipped, reason in result.files_skipped:
        click.echo(f"skipped {skipped}: {reason}; replay it again once that has finished")
    if result.messages_other_queue:
        click.echo(f"kept {result.messages_other_queue} messages spooled for another queue")
    if result.messages_left:
        fail(f"{result.records_left:,} records in {result.messages_left} messages failed "
             f"again and stay in {path}")


@cli.command(cls=ConnectorCommand, context_settings={"ignore_unknown_options": False})
@click.argument("module")
@credential_options
@click.option("--endpoint-url", help="Send to this SQS-compatible server instead of AWS.")
@click.option("--local", is_flag=True,
              help="Run against an embedded local SQS server and report what arrived.")
@click.option("--dry-run", is_flag=True,
              help="Print the records as JSON lines instead of sending them; writes no state.")
@click.option("--state-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Resume from the state committed here, and write each committed state.")
@click.option("--batch-size", type=click.IntRange(min=1), help="The n hint passed to read().")
@click.option("--source-json", type=click.Path(exists=True, dir_okay=False),
              help="Read the source dict from this JSON file; param options given on the "
                   "command line take precedence.")
@click.option("--spool-dir", default=DEFAULT_SPOOL_DIR, show_default=True,
              help="Where undeliverable messages are kept for `replay`.")
@click.option("--shutdown-timeout", default=30.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True),
              help="Seconds to deliver what was accepted after Ctrl-C or SIGTERM (or at the "
                   "end) before spooling the rest.")
@click.option("-v", "--verbose", is_flag=True,
              help="On a connector error, print the full traceback.")
@click.option("--streams", "streams_option", metavar="A,B",
              help="Read only these streams (see `discover`); others keep their state.")
@click.option("--wal-dir", type=click.Path(file_okay=False),
              help="Log every record here before sending; a crashed run's records are "
              "resent by the next run with the same --wal-dir.")
@trial_options
@click.pass_context
def run(ctx: click.Context, /, module: str, apikey: str | None, apisecret: str | None,
        endpoint_url: str | None, local: bool, dry_run: bool, state_file: Path | None,
        batch_size: int | None, source_json: str | None, spool_dir: str,
        shutdown_timeout: float, verbose: bool, wal_dir: str | None, on_bad_record: str,
        dead_letter_file: str, max_records: int | None, streams_option: str | None,
        **params: Any) -> None:
    """Run the connector MODULE (an importable name, a .py file or a package directory).

    One option per CONFIG["params"] entry is added; see `panoply-async run MODULE --help`.
    """
    from rich.console import Console

    from .._engine.redact import redactor, secret_values
    from ..connectors import connector_name
    from ._interrupt import Interrupt, Stopper, run_interruptible
    from ._report import error_lines, plural, summary_lines
    from ._run import RunOptions, RunOutcome, StateFile, StateFileError, load_state, run_connector

    loaded = ctx.meta.get("panoply.module") or load_module(module)
    if local and dry_run:
        fail("--local and --dry-run exclude each other", EXIT_USAGE)
    if dry_run and wal_dir is not None:
        # A dry run "acknowledges" everything it prints: recovering a real run's log
        # into it would retire records that never reached SQS.
        fail("--dry-run and --wal-dir exclude each other", EXIT_USAGE)
    if not (local or dry_run):
        apikey, apisecret = require_credentials(apikey, apisecret)
    elif apikey and apisecret:
        require_credentials(apikey, apisecret)
    source = collect_source(ctx, loaded, params, source_json)
    # Whatever module holds Stream, the secrets are those of the loaded module's CONFIG.
    for secret in secret_values(loaded.CONFIG, source):
        redactor.add(secret)
    # Records go to source["destination"], else source["type"]: the module's name.
    source.setdefault("type", connector_name(module))
    console = Console(stderr=True)
    stopper = Stopper()
    options = RunOptions(
        module=loaded, source=source, apikey=apikey, apisecret=apisecret,
        endpoint_url=endpoint_url, local=local, dry_run=dry_run,
        state_file=StateFile(state_file) if state_file is not None else None,
        batch_size=batch_size, spool_dir=spool_dir, shutdown_timeout=shutdown_timeout,
        stopper=stopper, wal_dir=wal_dir, on_bad_record=on_bad_record,
        dead_letter_file=dead_letter_file, max_records=max_records,
        streams=_stream_names(streams_option, loaded.Stream),
    )
    try:
        load_state(options)
    except StateFileError as exc:
        fail(f"--state-file {state_file}: {exc}; the file was left as it is", EXIT_USAGE)
    outcome = RunOutcome()
    interrupt = Interrupt()
    try:
        anyio.run(lambda: run_interruptible(
            lambda: run_connector(options, console, outcome), interrupt,
            on_first=lambda first: console.out(
                f"{first.name}: stopping; delivering what was accepted for up to "
                f"{shutdown_timeout:g}s (again to stop at once and spool the rest)",
                highlight=False),
            on_again=stopper.stop))
    except KeyboardInterrupt:  # before the event loop took over the signals
        interrupt.signum = interrupt.signum or signal.SIGINT
    if outcome.stdout_closed:
        sys.exit(EXIT_STDOUT_CLOSED)  # quietly, as a tool killed by SIGPIPE
    # A signal during the final drain interrupts nothing, but it was received.
    outcome.interrupted = outcome.interrupted or interrupt.interrupted
    for line in summary_lines(outcome, dry_run=dry_run, interrupt=interrupt,
                              stopped=stopper.stopped, max_records=max_records,
                              dead_letter_file=dead_letter_file):
        console.out(line, highlight=False)
    stats = outcome.stats
    undelivered = stats.get("records_spooled", 0) + stats.get("records_failed", 0)
    if outcome.error is not None:
        *traceback, line = error_lines(outcome.error, loaded, verbose)
        for text in traceback:
            click.echo(text, err=True)
        click.echo(line, err=True)
        sys.exit(EXIT_FAILURE)
    if undelivered:
        fail(f"{plural(undelivered, 'record')} {'was' if undelivered == 1 else 'were'} not "
             f"delivered" + (f"; spooled to {outcome.spool_path} (send them with "
                             f"`panoply-async replay`)" if outcome.spool_path else ""))
    if outcome.interrupted:
        sys.exit(interrupt.exit_code)


def _stream_names(option: str | None, stream_cls: Any) -> list[str] | None:
    """The ``--streams`` names; checked here when the connector declares its streams
    statically (a dynamic catalog, or a legacy one, is checked when the run starts)."""
    from ..connectors import DataSource
    from ..connectors._streams import select_streams
    from ..errors import StreamError

    names = [name.strip() for name in (option or "").split(",") if name.strip()]
    if option is not None and not names:
        fail("--streams needs stream names, e.g. --streams users,orders", EXIT_USAGE)
    declared = getattr(stream_cls, "streams", ())
    if names and declared and getattr(stream_cls, "catalog", None) is DataSource.catalog:
        try:
            select_streams(declared, names)
        except StreamError as exc:
            fail(f"--streams: {exc}", EXIT_USAGE)
    return names or None


@cli.command()
@click.argument("module")
def validate(module: str) -> None:
    """Check that MODULE is a valid connector: Stream and CONFIG, every problem listed."""
    loaded = load_module(module)
    params = len(loaded.CONFIG.get("params", []))
    click.echo(f"{module}: ok ({loaded.Stream.__name__}, {params} params)")


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
    from .._wire.credentials import resolve_credentials
    from ._tail import tail_queue

    if local and queue_url:
        fail("--local and --queue-url exclude each other", EXIT_USAGE)

    async def main_task() -> None:
        if local:
            from ..local import LocalSQS, export_lines, local_credentials

            made = not (apikey or apisecret)
            key, secret = local_credentials() if made else require_credentials(
                apikey, apisecret)
            async with LocalSQS(port=port) as server:
                url = server.create_queue(key, secret)
                click.echo(f"endpoint={server.endpoint_url}", err=True)
                click.echo(f"queue={url}", err=True)
                # Local ones, made here: an app needs them to write to this queue.
                for line in export_lines(server.endpoint_url, key, secret) if made else ():
                    click.echo(line, err=True)
                await tail_queue(url, server.endpoint_url, False, limit, wait)
        elif queue_url:
            await tail_queue(queue_url, endpoint_url, True, limit, wait)
        else:
            key, secret = require_credentials(apikey, apisecret)
            credentials, endpoint = resolve_credentials(key, secret, endpoint_url, os.environ)
            await tail_queue(credentials.queue_url(endpoint), endpoint, False, limit, wait)

    from ._interrupt import Interrupt, run_interruptible

    interrupt = Interrupt()
    try:
        anyio.run(lambda: run_interruptible(main_task, interrupt))
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        fail(f"{type(exc).__name__}: {exc}")
    if interrupt.interrupted:
        sys.exit(interrupt.exit_code)


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


cli.add_command(check)
cli.add_command(discover)
cli.add_command(local)


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    cli(prog_name="panoply-async")
