"""``jetlib inspect``: the figures it prints equal those counted from the shards directly."""

from __future__ import annotations

import h5py
import numpy as np
from typer.testing import CliRunner

from jetlib.cli import app
from jetlib.store.inspect import describe


def test_inspect_counts_and_lists(store_factory):
    path = store_factory(failed=1)
    labels = np.concatenate([h5py.File(p, "r")["label"][:] for p in sorted((path / "shards").glob("*.h5"))])
    d = describe(path)
    assert d["jets"] == len(labels) == 1500 and d["shards"] == 3
    assert list(d["classes"].values()) == np.bincount(labels, minlength=4).tolist()
    assert d["status"] == {"done": 3, "failed": 1}
    assert d["arrays"]["pf_features"][0] == "(N, 4, 8)"
    assert d["hadron_flavour"] is None  # (the store keeps no hadron_flavour column)
    res = CliRunner().invoke(app, ["inspect", str(path)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "1,500 jets in 3 hdf5 shards" in res.output and "tasks: 3 done, 1 failed;" in res.output
    assert "log_pt, deta, dphi, charge" in res.output  # every feature, none cut off
    assert "jet_pt" in res.output and "observer" in res.output and "hadronFlavour" not in res.output
    res = CliRunner().invoke(app, ["inspect", str(path / "nowhere")])
    assert res.exit_code == 2 and "no such folder" in res.output and "did you mean" not in res.output
    res = CliRunner().invoke(app, ["inspect", str(path.parent / "stor")], env={"COLUMNS": "400"})
    assert res.exit_code == 2 and f"no such folder (did you mean {path}?)" in res.output
    res = CliRunner().invoke(app, ["inspect", str(path / "shards")])
    assert res.exit_code == 2 and "not a jetlib store" in res.output


def test_inspect_says_which_weights_and_stats_are_current(store_factory):
    import json

    from jetlib.stats import compute_stats
    from jetlib.weights import compute_weights

    path = store_factory()
    res = CliRunner().invoke(app, ["inspect", str(path)], env={"COLUMNS": "300"})
    assert "no sampling weights or standardisation yet" in res.output
    compute_weights(path)
    compute_stats(path, clip=3.0)
    res = CliRunner().invoke(app, ["inspect", str(path)], env={"COLUMNS": "300"})
    assert "weights: weights/flat.json (current)" in res.output and "stats: stats/stats.json (current)" in res.output
    f = path / "stats" / "stats.json"
    d = json.loads(f.read_text())
    d["jets"] += 1  # as if made before the store grew
    f.write_text(json.dumps(d))
    res = CliRunner().invoke(app, ["inspect", str(path)], env={"COLUMNS": "300"})
    assert f"stats: stats/stats.json (stale: re-run `jetlib stats {path} --clip 3`)" in res.output
    assert "weights: weights/flat.json (current)" in res.output
    (path / "weights" / "broken.json").write_text("[1, 2]")  # JSON, but not a weights file
    res = CliRunner().invoke(app, ["inspect", str(path)], env={"COLUMNS": "300"})
    assert res.exit_code == 0 and "weights: weights/broken.json (unreadable JSON)" in res.output


def test_inspect_shows_the_cuts_the_preset_and_the_padding():
    from jetlib.store.inspect import _selection

    meta = {"jet_selection": {"min_pt": 20.0, "max_abs_eta": 2.4, "jet_id_mask": 0, "expression": "area > 0.2"},
            "skim_config": {"jets": {"expression": "area > 0.2"}},  # (min_pt etc. left to their defaults)
            "event_selection": {"preset": "zmumu", "cuts": {}},
            "blocks": {"pf": {"padding": "wrap"}, "sv": {"padding": "zero"}, "lep": {"padding": "wrap"}}}  # fmt: skip
    assert _selection(meta) == "jets: pT > 20.0 GeV, |eta| < 2.4, 'area > 0.2'; events: preset zmumu; padding: wrap (pf, lep); zero (sv)"


def test_a_damaged_shard_is_named_with_what_to_do_not_a_traceback(store_factory):
    """inspect printed a traceback for a missing or truncated shard, and weights and stats
    said to check write permissions (a ShardError is an OSError)."""
    path = store_factory()
    shard = path / "shards" / "part-00001.h5"
    shard.write_bytes(shard.read_bytes()[:1000])
    for cmd in (["inspect"], ["weights"], ["stats"]):
        res = CliRunner().invoke(app, [*cmd, str(path)], env={"COLUMNS": "400"})
        said = " ".join(res.output.split())
        assert res.exit_code in (1, 2) and res.exception.__class__ is SystemExit, (cmd, res.output)
        assert "part-00001.h5: cannot read shard" in said and "`jetlib verify` names every damaged shard" in said, said
        assert "may write there" not in said
