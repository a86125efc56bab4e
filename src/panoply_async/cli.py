"""The ``panoply-async`` command."""

from __future__ import annotations

import sys

import anyio
import click

from ._version import __version__

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="panoply-async")
def cli() -> None:
    """Stream records to Panoply through SQS, and run data-source connectors."""


@cli.command()
@click.option("--records", default=100_000, show_default=True, type=click.IntRange(min=1),
              help="How many records to stream.")
def demo(records: int) -> None:
    """Stream records through a local SQS server and check that every one arrived."""
    from ._demo import run_demo

    summary = anyio.run(run_demo, records)
    click.echo(
        f"{summary.records:,} records in {summary.messages} messages "
        f"({summary.bytes / 1e6:.1f} MB) in {summary.seconds:.2f} s: "
        f"{summary.records_per_second:,.0f} records/s"
    )
    for table, count in summary.per_table.items():
        click.echo(f"  {table}: {count:,}")
    if summary.ok:
        click.echo("every record arrived exactly once")
    else:
        click.echo(f"missing {summary.missing}, duplicates {summary.duplicates}", err=True)
        sys.exit(1)


def main() -> None:
    cli(prog_name="panoply-async")
