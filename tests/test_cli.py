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


def test_usage_names_the_arguments_in_capitals():
    # typer 0.29 writes an argument without a metavar as '{store}' in the usage line, where
    # the help's own text says STORE
    for cmd, arg in (["weights", "STORE"], ["stats", "STORE"], ["inspect", "STORE"], ["verify", "STORE"], ["skim", "INPUTS"]):
        res = CliRunner().invoke(app, [cmd, "--help"], env={"COLUMNS": "200"})
        assert res.exit_code == 0
        usage = next(line for line in res.output.splitlines() if "Usage:" in line)
        assert usage.split()[-1].strip("{}[].") == arg, usage
    res = CliRunner().invoke(app, ["export", "weaver", "--help"], env={"COLUMNS": "200"})
    assert "[OPTIONS] {STORE}" in res.output


def test_stats_clip_default_is_the_library_default():
    # the CLI writes the number out to keep numba out of `jetlib --help`; the two must agree
    import typer.main

    from jetlib.stats import DEFAULT_CLIP

    stats = typer.main.get_command(app).commands["stats"]
    assert next(p.default for p in stats.params if p.name == "clip") == DEFAULT_CLIP


def test_skim_interrupted_says_so_once(monkeypatch, tmp_path):
    """Ctrl-C before the skim has tasks (reading the list, opening the store) exits 130 with
    one line; after, the skim's own line (how far it got) is the only one."""
    import jetlib.skim.run as run

    def interrupted(reported):
        def fake(*args, **kwargs):
            err = KeyboardInterrupt()
            if reported:
                print("interrupted: 3 of 9 tasks done; re-run the same command to resume")
                err.reported = True
            raise err

        return fake

    for reported, line in ((False, "interrupted; re-run the same command to resume"),
                           (True, "interrupted: 3 of 9 tasks done; re-run the same command to resume")):  # fmt: skip
        monkeypatch.setattr(run, "skim", interrupted(reported))
        res = CliRunner().invoke(app, ["skim", str(tmp_path / "files.txt"), "--out", str(tmp_path / "store")], env={"COLUMNS": "200"})
        assert res.exit_code == 130
        assert [ln for ln in res.output.splitlines() if ln.strip()] == [line]
