"""Shared fixtures: small synthetic stores written with the store API (independent of the skim).

``make_store(path, ...)`` writes a store whose jets have known pT/η spectra per class and
node features with a known dependence on the label, in as many shards as asked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jetlib.store import Manifest, ShardLayout, write_meta, write_shard
from jetlib.store.shards import shard_suffix

CLASSES = ["b", "c", "uds", "g"]
BLOCKS = {"pf": (["log_pt", "deta", "dphi", "charge"], 8), "sv": (["mass", "dlenSig"], 3)}
JET_FEATURES = ["pt", "eta", "n_pf"]
OBSERVERS = {"jet_pt": "float32", "jet_eta": "float32", "jet_phi": "float32", "jet_mass": "float32",
             "run": "uint32", "lumi": "uint32", "event": "uint64", "jet_index": "int32"}  # fmt: skip


def synthetic_jets(n: int, rng: np.random.Generator, layout: ShardLayout, classes: list[str], *,
                   class_probs=None, first_event: int = 0) -> dict[str, np.ndarray]:  # fmt: skip
    """Jets with class-dependent pT spectra and features; real nodes first, zero padding."""
    a = layout.empty(n)
    label = rng.choice(len(classes), n, p=class_probs).astype(np.int32)
    # class k: pT ~ 15 + exponential with mean 30 (k + 1); η ~ N(0, 1 + 0.2 k), |η| < 2.5
    pt = 15 + rng.exponential(30.0 * (label + 1))
    eta = np.clip(rng.normal(0, 1 + 0.2 * label), -2.49, 2.49)
    a["label"][:] = label
    a["label_onehot"][np.arange(n), label] = 1
    a["jet_pt"][:], a["jet_eta"][:] = pt, eta
    a["jet_phi"][:] = rng.uniform(-np.pi, np.pi, n)
    a["jet_mass"][:] = pt * 0.1
    a["event"][:] = first_event + np.arange(n) // 2
    a["jet_index"][:] = np.arange(n) % 2
    a["run"][:] = 1
    for b, (feats, length) in BLOCKS.items():
        nreal = rng.integers(0, length + 1, n)
        real = np.arange(length)[None, :] < nreal[:, None]
        x = rng.normal(size=(n, len(feats), length)).astype(np.float32)
        x[:, 0, :] += label[:, None] * 1.5  # the label shows in the first feature
        if "charge" in feats:
            x[:, feats.index("charge"), :] = rng.integers(-1, 2, (n, length))
        a[f"{b}_features"][:] = x * real[:, None, :]
        a[f"{b}_mask"][:, 0, :] = real
    a["jet_features"][:] = np.stack([pt, eta, a["pf_mask"][:, 0].sum(1)], axis=1)
    a["truth"][:, 0] = pt * 1.05
    return a


def make_store(path: Path, *, jets_per_shard=(500, 700, 300), fmt: str = "hdf5", compression: str = "none",
               classes: list[str] = CLASSES, class_probs=None, seed: int = 0, failed: int = 0,
               padding: str = "zero", files: list[str] | None = None) -> Path:  # fmt: skip
    """Write a store at ``path``; ``failed`` extra manifest records with status failed;
    ``padding="wrap"``: the padding slots repeat the real nodes, as the skim's wrap option;
    ``files``: the input file of each shard (default: one file per shard)."""
    path = Path(path)
    (path / "shards").mkdir(parents=True, exist_ok=True)
    layout = ShardLayout.build(blocks=BLOCKS, jet_features=JET_FEATURES, classes=classes,
                               truth=["gen_pt"], observers=OBSERVERS)  # fmt: skip
    meta = {
        "format_version": 1,
        "shards": {"format": fmt, "compression": compression, "entries_per_task": 1000},
        "blocks": {b: {"features": f, "length": n, "padding": padding} for b, (f, n) in BLOCKS.items()},
        "jet_features": JET_FEATURES,
        "observers": list(OBSERVERS),
        "labels": {"scheme": "test", "classes": classes},
        "truth": ["gen_pt"],
        "arrays": layout.to_json(),
        "skim_config": {"jets": {"min_pt": 15.0, "max_abs_eta": 2.5}},
        "config_hash": "test",
        "input_schema": {"name": "test"},
    }
    write_meta(path, meta)
    rng = np.random.default_rng(seed)
    man = Manifest.of(path)
    first = 0
    for i, n in enumerate(jets_per_shard):
        arrays = synthetic_jets(n, rng, layout, classes, class_probs=class_probs, first_event=first)
        if padding == "wrap":
            for b, (_, length) in BLOCKS.items():
                nreal = arrays[f"{b}_mask"][:, 0].sum(1).astype(int)
                slot = np.arange(length)[None, :] % np.maximum(nreal, 1)[:, None]  # (N, L): the real slot each repeats
                wrapped = np.take_along_axis(arrays[f"{b}_features"], slot[:, None, :], axis=2)
                arrays[f"{b}_features"][:] = np.where(nreal[:, None, None] > 0, wrapped, 0)
        first += n
        name = f"part-{i:05d}{shard_suffix(fmt)}"
        info = write_shard(path / "shards" / name, arrays, layout, fmt=fmt, compression=compression)
        file, start = (files[i], first - n) if files else (f"f{i}.root", 0)  # shards of one file: its ranges in turn
        man.append({"task": f"{file}:{start}-{start + n}", "task_id": i, "kind": "range", "file": file, "start": start,
                    "stop": start + n, "entries": n, "status": "done", "events": n, "jets": n, "shards": [info.to_json()]})  # fmt: skip
    for j in range(failed):
        man.append({"task": f"bad{j}.root:file", "task_id": len(jets_per_shard) + j, "kind": "file",
                    "file": f"bad{j}.root", "entries": 0, "status": "failed", "error": "OSError",
                    "reason": "not a ROOT file"})  # fmt: skip
    return path


@pytest.fixture
def store_factory(tmp_path):
    """``store_factory(name, **kw)`` → a fresh synthetic store under tmp_path."""

    def factory(name: str = "store", **kw) -> Path:
        return make_store(tmp_path / name, **kw)

    return factory
