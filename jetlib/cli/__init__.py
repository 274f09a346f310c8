"""The ``jetlib`` command: a thin shell over importable functions.

Each command group lives in its own module with a ``register(app)`` function; this file
only assembles them. Heavy imports (numba, dask, torch) happen inside the commands so
that ``jetlib --help`` is instant.
"""

from __future__ import annotations

import importlib

import typer

__all__ = ["app", "main", "counted", "results_console"]

# typer 0.29 prints a value type for on/off flags too ('--plot <bool>'), which reads as if
# '--plot true' were valid (it is an error); flags take no value, so show none
_option = getattr(getattr(typer, "core", None), "TyperOption", None)
if _option is not None and hasattr(_option, "display_type_rich"):
    _display_type_rich = _option.display_type_rich
    _option.display_type_rich = lambda self, ctx: None if self.is_flag else _display_type_rich(self, ctx)

app = typer.Typer(
    name="jetlib",
    help="Jet-tagging data preparation: generate, skim, inspect, verify, weights, stats, export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def results_console():
    """The console for results on stdout. Piped or redirected, rich assumes 80 columns and
    cuts table cells ('375,4…'); there it is wide enough for any table (COLUMNS still wins)."""
    import os
    import sys

    from rich.console import Console

    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(soft_wrap=True, emoji=False, width=200 if wide else None)  # emoji=False: ':b:' stays text


def shard_fix(err: Exception) -> str:
    """What to do about a damaged or missing shard, after its error (inspect, weights, stats),
    unless the error says it already."""
    if "jetlib verify" in str(err):
        return ""
    return "; `jetlib verify` names every damaged shard: delete those and re-run the same `jetlib skim` command"


def counted(n: int, word: str) -> str:
    """``1 shard``, ``2 shards``, ``1,024 files``: a count and its noun (plural in ``s``)."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _show_version(value: bool) -> None:
    if value:
        from jetlib._version import __version__

        typer.echo(f"jetlib {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True, help="Show the version and exit."),
) -> None:
    pass


#: command modules, in the order their commands appear in --help
_COMMANDS = ["demo", "generate", "skim", "inspect", "verify", "weights", "export"]

for _name in _COMMANDS:
    importlib.import_module(f"jetlib.cli._{_name}").register(app)


def main() -> None:
    app()
