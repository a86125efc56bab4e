"""``run``'s options for bad records and trials (kept here so that ``_main`` stays a
list of commands)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["DEFAULT_DEAD_LETTER_FILE", "trial_options"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DEAD_LETTER_FILE = "panoply-dead-letter.jsonl"


def trial_options(func: F) -> F:
    """``--on-bad-record``, ``--dead-letter-file`` and ``--max-records``."""
    func = click.option(
        "--max-records", type=click.IntRange(min=1), metavar="N",
        help="A trial: write at most N records per table and stop reading once each "
             "table has them (the source is closed cleanly); no state is saved.")(func)
    func = click.option(
        "--dead-letter-file", default=DEFAULT_DEAD_LETTER_FILE, show_default=True,
        type=click.Path(dir_okay=False),
        help="With --on-bad-record dead-letter: append refused records here as JSON lines "
             "(mode 0600, secrets masked).")(func)
    func = click.option(
        "--on-bad-record", type=click.Choice(["fail", "skip", "dead-letter"]),
        default="fail", show_default=True,
        help="A record write() refuses: stop the run (fail), count it and go on (skip), "
             "or also keep it in --dead-letter-file (dead-letter).")(func)
    return func
