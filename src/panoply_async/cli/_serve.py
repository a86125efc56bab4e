"""``panoply-async local``: the embedded SQS server for development (docs/local.md)."""

from __future__ import annotations

import sys

import click

__all__ = ["local"]


@click.command()
@click.option("--port", default=4566, show_default=True, type=click.IntRange(0, 65535),
              help="Port on 127.0.0.1 to serve on (0: a free one).")
def local(port: int) -> None:
    """Serve a local SQS server for development until Ctrl-C or SIGTERM.

    Prints the endpoint and the `export` lines (endpoint and local credentials whose
    queue exists) that an app using `SDK()` with no arguments needs.
    """
    from ..local import main as serve

    sys.exit(serve(["--port", str(port)], prog="panoply-async local"))
