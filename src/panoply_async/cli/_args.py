"""What the connector commands (``run``, ``check``, ``discover``) share: loading the
module, its params as options, the source dict, and failing with one masked line."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "ConnectorCommand",
    "collect_source",
    "fail",
    "load_module",
]

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    from .._engine.redact import redactor

    click.echo(redactor.redact(f"error: {message}"), err=True)
    sys.exit(code)


def load_module(target: str) -> Any:
    """Load and check a connector module; exit 2 listing every problem."""
    from ..connectors import validate_connector
    from ..errors import ConnectorError

    try:
        return validate_connector(target)
    except ConnectorError as exc:
        lines = "\n".join(f"  - {problem}" for problem in exc.problems)
        fail(f"{target} is not a valid connector module:\n{lines}", EXIT_USAGE)


class ConnectorCommand(click.Command):
    """``run|check|discover MODULE``: the options of MODULE's ``CONFIG["params"]`` join
    the command's."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        target = next((a for a in args if not a.startswith("-")), None)
        if target is not None and not ctx.resilient_parsing:
            from ._run import param_options

            module = load_module(target)
            ctx.meta["panoply.module"] = module
            known = {p.name for p in self.params}
            self.params.extend(
                o for o in param_options(module.CONFIG) if o.name not in known
            )
        return super().parse_args(ctx, args)


_EXPLICIT = ("COMMANDLINE", "ENVIRONMENT", "PROMPT")


def collect_source(ctx: click.Context, module: Any, values: dict[str, Any],
                   source_json: str | None) -> dict[str, Any]:
    """The source dict: ``--source-json`` when given, with the param options given
    explicitly on the command line taking precedence over it."""
    params = module.CONFIG.get("params", [])
    if source_json is not None:
        try:
            with open(source_json, encoding="utf-8") as handle:
                given = json.load(handle)
        except (OSError, ValueError) as exc:
            fail(f"--source-json {source_json}: {exc}", EXIT_USAGE)
        if not isinstance(given, dict):
            fail(f"--source-json {source_json} must hold a JSON object", EXIT_USAGE)
        for param in params:
            name = param["name"]
            origin = ctx.get_parameter_source(name)
            if origin is not None and origin.name in _EXPLICIT:
                given[name] = values.get(name)
        return given
    source: dict[str, Any] = {}
    for param in params:
        name = param["name"]
        value = values.get(name)
        if value is None and param.get("required"):
            if sys.stdin is not None and sys.stdin.isatty():
                value = click.prompt(param.get("title") or name,
                                     hide_input=bool(param.get("secret")))
            else:
                fail(f"missing required option {'--' + name.replace('_', '-')}", EXIT_USAGE)
        if value is not None:
            source[name] = value
    return source
