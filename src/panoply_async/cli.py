"""The ``panoply-async`` command.

Exit codes: 0 success; 1 connector or delivery failure; 2 usage or
configuration error; 130 interrupted (Ctrl-C) after a clean drain.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
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
    from ._demo import DemoSummary, run_demo

    result: list[DemoSummary] = []

    def started() -> None:
        click.echo(f"streaming {records:,} records to a local SQS server...", err=True)

    # Ctrl-C: the demo drains, checks and leaves its summary in ``result``.
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(lambda: run_demo(records, result=result, on_start=started))
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


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    cli(prog_name="panoply-async")
