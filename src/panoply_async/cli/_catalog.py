"""``panoply-async discover`` and ``check``: a connector's catalog, and a connection test.

Both build the source from the module's params exactly as ``run`` does, open it,
do one thing and close it; neither sends anything. Every line they print goes
through the redactor, which knows the secret params' values.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import click

from ._args import EXIT_FAILURE, ConnectorCommand, collect_source, load_module

__all__ = ["check", "discover"]

T = TypeVar("T")

#: what ``check`` verified when the connector has no ``check()`` of its own
NO_CHECK = ("no check() defined; verified that the module loads, its params are valid, "
            "and the source opens and closes")


def _prepare(ctx: click.Context, module: str, params: dict[str, Any],
             source_json: str | None) -> tuple[Any, dict[str, Any]]:
    """The loaded module and the source dict, its secrets registered with the redactor."""
    from .._engine.redact import redactor, secret_values
    from ..connectors import connector_name

    loaded = ctx.meta.get("panoply.module") or load_module(module)
    source = collect_source(ctx, loaded, params, source_json)
    # The CONFIG's secret params, and source keys named like credentials (token, ...).
    for secret in secret_values(loaded.CONFIG, source):
        redactor.add(secret)
    source.setdefault("type", connector_name(module))
    return loaded, source


async def _close(ds: Any) -> None:
    close = ds.close
    if inspect.iscoroutinefunction(close):
        await close()
        return
    result = await anyio.to_thread.run_sync(close)  # a legacy connector's plain close()
    if inspect.isawaitable(result):
        await result


async def _with_source(loaded: Any, source: dict[str, Any],
                       use: Callable[[Any], Awaitable[T]]) -> T:
    ds = loaded.Stream(source, {})
    try:
        return await use(ds)
    finally:
        with anyio.CancelScope(shield=True):
            await _close(ds)


async def _run_check(ds: Any) -> str:
    from ..connectors import DataSource

    checker = ds.check
    if getattr(type(ds), "check", None) is DataSource.check:
        return NO_CHECK
    if inspect.iscoroutinefunction(checker):
        said = await checker()
    else:
        said = await anyio.to_thread.run_sync(checker)
    if said is False:
        raise click.ClickException("check() returned False")
    return str(said) if said not in (None, True) else "check() passed"


def _one_line(text: str) -> str:
    return " ".join(text.split())


@click.command(cls=ConnectorCommand)
@click.argument("module")
@click.option("--source-json", type=click.Path(exists=True, dir_okay=False),
              help="Read the source dict from this JSON file; param options given on the "
                   "command line take precedence.")
@click.pass_context
def check(ctx: click.Context, /, module: str, source_json: str | None,
          **params: Any) -> None:
    """Test the connection of the connector MODULE: exit 0 if it works, 1 if not.

    Runs the connector's `async def check(self)` when it has one; otherwise says what
    was verified (the module loads, the params are valid, the source opens and closes).
    """
    from .._engine.redact import redactor

    loaded, source = _prepare(ctx, module, params, source_json)
    name = Path(module).stem if module.endswith(".py") else module
    try:
        said = anyio.run(_with_source, loaded, source, _run_check)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        click.echo(redactor.redact(_one_line(f"check failed: {name}: {reason}")), err=True)
        sys.exit(EXIT_FAILURE)
    click.echo(redactor.redact(_one_line(f"check ok: {name}: {said}")))


@click.command(cls=ConnectorCommand)
@click.argument("module")
@click.option("--source-json", type=click.Path(exists=True, dir_okay=False),
              help="Read the source dict from this JSON file; param options given on the "
                   "command line take precedence.")
@click.pass_context
def discover(ctx: click.Context, /, module: str, source_json: str | None,
             **params: Any) -> None:
    """Print the catalog of the connector MODULE as JSON: its streams, their tables,
    primary keys, cursor fields and sync modes (a legacy connector's list_resources)."""
    from .._engine.redact import redactor
    from ..connectors._streams import catalog_json

    loaded, source = _prepare(ctx, module, params, source_json)

    async def catalog(ds: Any) -> Any:
        return await ds.catalog()

    try:
        specs = anyio.run(_with_source, loaded, source, catalog)
    except Exception as exc:
        click.echo(redactor.redact(_one_line(
            f"error: discover failed: {type(exc).__name__}: {exc}")), err=True)
        sys.exit(EXIT_FAILURE)
    text = json.dumps(catalog_json(specs), indent=2, ensure_ascii=False, default=str)
    click.echo(redactor.redact(text))
