"""The training example learns: a short run on a synthetic store whose node features depend on
the label gives a b vs udsg AUC far above chance; the AUC helper matches a brute-force count."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_deepsets.py"


def _example():
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("train_deepsets", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_roc_auc_matches_pair_counting():
    ex = _example()
    rng = np.random.default_rng(0)
    score = rng.integers(0, 20, 300).astype(float)  # many ties
    sig = rng.random(300) < 0.4
    s1, s0 = score[sig][:, None], score[~sig][None, :]
    brute = ((s1 > s0).sum() + 0.5 * (s1 == s0).sum()) / (sig.sum() * (~sig).sum())
    assert ex.roc_auc(score, sig) == pytest.approx(brute)


@pytest.mark.torch
def test_short_training_beats_chance(store_factory):
    ex = _example()
    from jetlib.stats import compute_stats

    path = store_factory(jets_per_shard=(1500, 1500, 1500, 1500, 1500))
    compute_stats(path)
    out = ex.train(str(path), epochs=2, batch_size=256, log=lambda *_: None)
    assert out["auc"] > 0.85


def test_held_out_shards_are_chosen_by_task_number(store_factory):
    """The split is by shard name (task number): a redone failed task moves no shard."""
    import json

    import jetlib

    ex = _example()
    path = store_factory(jets_per_shard=(100,) * 7)
    train, test = ex.split_shards(jetlib.Store(path))
    assert test == ["part-00004.h5"] and len(train) == 6 and "part-00004.h5" not in train
    man = path / "manifest.jsonl"
    lines = man.read_text().splitlines()
    man.write_text("\n".join(lines + [json.dumps({**json.loads(lines[1]), "status": "failed", "shards": []})]) + "\n")
    assert ex.split_shards(jetlib.Store(path))[1] == ["part-00004.h5"]
    assert ex.split_shards(jetlib.Store(store_factory("two", jets_per_shard=(100, 100))))[1] == ["part-00001.h5"]
