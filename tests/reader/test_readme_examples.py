"""The README's Python examples run as written: reading shards with plain h5py and pyarrow,
sampling weights, and the Reader in a training loop (on a store whose weights and statistics
were made by the calls the README shows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jetlib.stats import compute_stats
from jetlib.store import Store
from jetlib.weights import compute_weights

README = Path(__file__).parents[2] / "README.md"


def _example(marker: str) -> str:
    """The README's ```python block that contains ``marker``."""
    blocks = [b.split("```")[0] for b in README.read_text().split("```python\n")[1:]]
    (code,) = [b for b in blocks if marker in b]
    return code


def test_the_readme_example_of_reading_shards_without_jetlib_runs(store_factory, tmp_path, monkeypatch):
    """h5py on an LZ4 HDF5 shard and pyarrow on a Parquet shard of the same jets: the PF log pT
    that the example gets from the Parquet columns is the HDF5 array's."""
    store_factory("run/store", compression="lz4")
    store_factory("run/store_pq", fmt="parquet")  # (the same seed: the same jets)
    monkeypatch.chdir(tmp_path / "run")
    ns: dict = {}
    exec(compile(_example('pq.read_table("store_pq/'), "README.md", "exec"), ns)
    n = min(len(ns["log_pt"]), 1024)
    assert n > 0 and ns["log_pt"].shape[1] == ns["x"].shape[2]
    f = Store("store").blocks["pf"]["features"].index("log_pt")
    np.testing.assert_array_equal(ns["log_pt"][:n], ns["x"][:n, f])
    assert list(ns["df"].columns) == ["label", "jet_pt"] and len(ns["df"]) == len(ns["log_pt"])


def test_the_readme_weights_and_reader_examples_run(store_factory, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    path = store_factory(jets_per_shard=(700, 800))
    compute_weights(path)  # jetlib weights store/ (flat in pT, eta)
    compute_stats(path)  # jetlib stats store/
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "store").symlink_to(path)
    monkeypatch.chdir(tmp_path / "run")

    ns: dict = {}
    exec(compile(_example('load_weights(store, "flat")'), "README.md", "exec"), ns)
    assert ((ns["p"] >= 0) & (ns["p"] <= 1)).all() and 0 < ns["keep"].sum() < len(ns["p"])
    assert sum(ns["w"].expected_counts().values()) == pytest.approx(ns["p"].sum(), rel=1e-6)

    ns = {}
    exec(compile(_example("jetlib.Reader("), "README.md", "exec"), ns)
    x, mask, y = ns["x"], ns["mask"], ns["y"]
    assert isinstance(x, torch.Tensor) and x.ndim == 3 and mask.shape == (x.shape[0], 1, x.shape[2]) and y.shape == (x.shape[0],)
    assert ns["state"]["epoch"] == 9 and ns["state"]["batch"] == ns["i"] + 1  # the loop ran its 10 epochs
    # standardised, with the padding left at zero
    assert (x[mask.expand_as(x) == 0] == 0).all() and np.isfinite(x.numpy()).all()
