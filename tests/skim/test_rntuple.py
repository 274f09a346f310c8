"""RNTuple inputs: a MiniAOD-like RNTuple with flat fields (``Jet_pt``...) skims to the same
store content as the same events in a TTree; one whose collections are nested records
(``Jet.pt``) fails with a clear record naming the file and the missing branch."""

from __future__ import annotations

import h5py
import hdf5plugin  # noqa: F401  (the skim's default LZ4 shards, read with plain h5py below)
import numpy as np
import pytest
import uproot
from miniaod_inputs import write_miniaod

from jetlib.config.inputs import load_input_schema
from jetlib.config.skim import load_label_scheme, load_skim_config
from jetlib.skim.plan import make_plan
from jetlib.skim.task import Task, count_entries, run_task

pytestmark = pytest.mark.skipif(
    not hasattr(uproot.writing.writable.WritableDirectory, "mkrntuple"), reason="this uproot cannot write RNTuple"
)

N = 240


def _flat_rntuple(src, dst):
    """The TTree ``src`` rewritten as an RNTuple with one field per branch (counters dropped)."""
    arrays = uproot.open(src)["Events"].arrays(library="ak", how=dict)
    with uproot.recreate(dst) as f:
        f.mkrntuple("Events", {k: v for k, v in arrays.items() if not (k[0] == "n" and k[1:2].isupper())})
    return dst


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("rntuple")
    tree = write_miniaod(d / "tree.root", N, seed=5)
    rnt = _flat_rntuple(tree, d / "rntuple.root")
    assert "RNTuple" in type(uproot.open(rnt)["Events"]).__name__
    return tree, rnt


def _arrays_by_file(store) -> dict[str, dict[str, np.ndarray]]:
    from jetlib.store import Store

    st = Store(store)
    parts: dict[str, list[dict]] = {}
    for sh in st.shards():
        with h5py.File(sh.path, "r") as f:
            file = sh.task.rsplit(":", 1)[0]
            start = int(sh.task.rsplit(":", 1)[1].split("-")[0])
            parts.setdefault(file, []).append((start, {k: f[k][:] for k in st.layout.arrays}))
    return {
        file: {k: np.concatenate([a[k] for _, a in sorted(ps, key=lambda p: p[0])]) for k in ps[0][1]}
        for file, ps in parts.items()
    }


def test_flat_rntuple_skims_like_the_ttree(pair, tmp_path):
    from jetlib.skim.run import skim

    tree, rnt = pair
    # ranges of 70 entries do not fall on cluster or page boundaries
    s = skim([str(tree), str(rnt)], tmp_path / "store", workers=1, dashboard_address=None, progress=False,
             entries_per_task=70)  # fmt: skip
    assert s.ok, s.failures
    assert s.done == 2 * 4 and s.events == 2 * N
    by_file = _arrays_by_file(tmp_path / "store")
    a, b = by_file[str(tree.resolve())], by_file[str(rnt.resolve())]
    assert len(a["jet_pt"]) > 0 and a["pf_features"].shape[1:] == (40, 50)
    for k in a:
        np.testing.assert_array_equal(b[k], a[k], err_msg=k)


def test_nested_rntuple_names_the_file_and_the_branch(tmp_path):
    """Collections written as records (``Jet.pt``) do not match the schema's ``Jet_pt``: the
    task fails with MissingBranchError naming the file, not with an obscure uproot error."""
    path = write_miniaod(tmp_path / "nested.root", 50, seed=2, as_rntuple=True)
    cfg = load_skim_config("default")
    plan = make_plan(load_input_schema("miniaod"), cfg, load_label_scheme(cfg.labels))
    c = count_entries(str(path), plan.tree)
    assert c["status"] == "ok" and c["entries"] == 50
    assert count_entries(str(path), plan.tree, plan=plan)["error"] == "MissingBranchError"  # checked when opened
    (tmp_path / "store" / "shards").mkdir(parents=True)
    rec = run_task(plan, Task(f"{path}:0-50", 0, str(path), 0, 50, 50), str(tmp_path / "store"), "hdf5", "none")
    assert rec["status"] == "failed" and rec["error"] == "MissingBranchError"
    assert str(path) in rec["reason"] and "Jet_pt" in rec["reason"]
    assert "this RNTuple holds " in rec["reason"] and "as records of fields" in rec["reason"]
    assert "cannot map yet: write the collections as flat fields" in rec["reason"]
    assert not list((tmp_path / "store" / "shards").iterdir())
