"""The ``jetlib`` command itself: version, and help that shows how options are written."""

from __future__ import annotations

from typer.testing import CliRunner

from jetlib import __version__
from jetlib.cli import app


def test_version():
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"jetlib {__version__}"


def test_help_shows_no_value_for_on_off_flags():
    res = CliRunner().invoke(app, ["weights", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    plot = next(line for line in res.output.splitlines() if "--plot" in line)
    assert "bool" not in plot.lower()  # '--plot <bool>' read as if '--plot true' were valid
    bins = next(line for line in res.output.splitlines() if "--bins" in line)
    assert "<str>" in bins or "TEXT" in bins  # options that take a value still show its type
