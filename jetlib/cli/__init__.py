"""The ``jetlib`` command: a thin shell over importable functions.

Each command group lives in its own module with a ``register(app)`` function; this file
only assembles them. Heavy imports (numba, dask, torch) happen inside the commands so
that ``jetlib --help`` is instant.
"""

from __future__ import annotations

import importlib

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="jetlib",
    help="Jet-tagging data preparation: generate, skim, inspect, verify, weights, stats, export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: command modules, in the order their commands appear in --help
_COMMANDS = ["demo", "generate", "skim", "inspect", "verify", "weights", "export"]

for _name in _COMMANDS:
    importlib.import_module(f"jetlib.cli._{_name}").register(app)


def main() -> None:
    app()
