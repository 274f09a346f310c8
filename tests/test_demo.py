"""``jetlib demo`` runs the whole main job; its outputs are checked here with the store API,
the JSON files and a plain unweighted Reader epoch, not with the demo's own printout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

import jetlib
from jetlib.cli import app


def test_demo_runs_the_main_job(tmp_path: Path):
    out = tmp_path / "demo"
    res = CliRunner().invoke(app, ["demo", "--events", "2000", "--workers", "1", "--out", str(out),
                                   "--dashboard-address", ""])  # fmt: skip
    assert res.exit_code == 0, res.output
    for i in range(1, 6):
        assert f"{i}/5 " in res.output
    assert "next:" in res.output

    files = (out / "data" / "files.txt").read_text().split()
    assert len(files) == 4 and all(Path(f).is_file() for f in files)

    store = out / "store"
    assert (store / "jetlib.json").is_file()
    s = jetlib.Store(store)
    assert s.n_jets > 0
    assert len(s.shards()) == 4  # 2000 events in 4 files: one task and shard per file

    # every jet once in an unweighted epoch, and as many as the manifest counts
    reader = jetlib.Reader(store, shuffle=False, output="numpy", verify=False)
    labels = np.concatenate([b["label"] for b in reader])
    assert len(labels) == s.n_jets

    flat = json.loads((store / "weights" / "flat.json").read_text())
    assert flat["method"] == "flat" and flat["variables"] == ["jet_pt", "jet_eta"]
    assert flat["jets"] == s.n_jets
    # the counts histogram holds every jet of the store (flow clipped into the edge bins)
    assert int(np.sum(flat["counts"])) == s.n_jets
    np.testing.assert_array_equal(np.asarray(flat["counts"]).reshape(len(s.classes), -1).sum(1),
                                  np.bincount(labels, minlength=len(s.classes)))  # fmt: skip
    assert sum(flat["expected_counts"].values()) > 0

    stats = json.loads((store / "stats" / "stats.json").read_text())
    assert stats["jets"] == s.n_jets
    assert {f"{b}_features" for b in s.blocks} | {"jet_features"} == set(stats["arrays"])


def test_demo_exits_nonzero_on_failure(tmp_path: Path):
    blocked = tmp_path / "afile"
    blocked.write_text("")  # --out below a file: nothing can be written there
    res = CliRunner().invoke(app, ["demo", "--events", "100", "--out", str(blocked / "demo")])
    assert res.exit_code == 1 and "choose another --out" in res.output and res.exception.__class__ is SystemExit


def test_demo_refuses_bad_numbers_before_making_anything(tmp_path: Path):
    for option in ("--events", "--files", "--batch-size"):
        res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "d"), option, "0"], env={"COLUMNS": "200"})
        assert res.exit_code == 2 and f"{option} must be >= 1 (got 0)" in res.output, res.output
    assert not (tmp_path / "d").exists()


def test_the_example_hint_runs_from_where_the_demo_ran(tmp_path: Path, monkeypatch):
    """The demo's last hint named examples/train_deepsets.py, which exists only from the
    repository root; run elsewhere, it names the script by a path that exists."""
    from jetlib.cli._demo import _example

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(repo)
    assert _example("train_deepsets.py") == "examples/train_deepsets.py"
    monkeypatch.chdir(tmp_path)
    assert Path(_example("train_deepsets.py")) == repo / "examples" / "train_deepsets.py"
