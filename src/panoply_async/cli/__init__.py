"""The ``panoply-async`` command: run, validate, init, tail, demo, replay and local."""

from ._main import cli, main

__all__ = ["cli", "main"]
