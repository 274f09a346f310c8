"""Rules of the skim that a mutation audit found unpinned: what a re-run retries or keeps
failed, what makes another configuration, verify --inputs without UUIDs, file-list paths,
retries, and stored values checked against the input branches (jet-level derived features,
event features, flavour observers, gen_pt_with_nu, the jet cuts, the GEN-jet match and the
truth columns by name). Each test fails if its rule is broken."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
import yaml
from miniaod_inputs import nearest, write_miniaod

from jetlib.config.skim import load_skim_config
from jetlib.errors import StoreError
from jetlib.skim.run import skim
from jetlib.store import Store
from jetlib.store.manifest import Manifest
from jetlib.store.verify import verify

KW = dict(workers=1, dashboard_address=None, progress=False, entries_per_task=200)


@pytest.fixture
def two(tmp_path):
    return [str(write_miniaod(tmp_path / f"f{i}.root", 300, seed=i)) for i in range(2)]


def _rewrite_manifest(out: Path, fn) -> None:
    """Replace each record ``r`` of the store's manifest by ``fn(r)``."""
    recs = Manifest.of(out).records()
    (out / "manifest.jsonl").write_text("".join(json.dumps(fn(r)) + "\n" for r in recs))


def _edit(out: Path, key: str, **kw) -> None:
    """Give the manifest's record of task ``key`` the fields ``kw``, no shards and no jets."""

    def edit(r: dict) -> dict:
        if r["task"] != key:
            return r
        for sh in r["shards"]:
            (out / "shards" / sh["name"]).unlink(missing_ok=True)
        return {**r, **kw, "shards": [], "events": 0, "jets": 0}

    _rewrite_manifest(out, edit)


def test_a_skipped_range_is_retried_when_the_file_reads_again(two, tmp_path):
    out = tmp_path / "s"
    ref = skim(two, out, **KW)
    _edit(out, f"{two[0]}:200-300", status="skipped", error="InputFileError", reason="damaged basket")
    s = skim(two, out, **KW)
    assert s.done == 1 and s.already_done == 3 and Store(out).n_jets == ref.jets


def test_a_partly_done_file_dropped_from_a_skip_bad_files_list_keeps_its_failure(two, tmp_path):
    out = tmp_path / "s"
    skim(two, out, **KW)
    _edit(out, f"{two[0]}:200-300", status="failed", error="InputFileError", reason="damaged basket")
    skim([two[1]], out, skip_bad_files=True, **KW)
    assert Store(out).latest()[f"{two[0]}:200-300"]["status"] == "failed"
    assert not verify(out).ok  # the store holds only part of f0


def test_another_entries_per_task_is_another_configuration(two, tmp_path):
    skim(two, tmp_path / "s", **KW)
    with pytest.raises(StoreError, match=r"another configuration \(entries_per_task 200 -> 100\)"):
        skim(two, tmp_path / "s", **{**KW, "entries_per_task": 100})


def test_verify_inputs_sees_other_entries_without_uuids(two, tmp_path):
    out = tmp_path / "s"
    skim(two, out, **KW)
    _rewrite_manifest(out, lambda r: {k: v for k, v in r.items() if k not in ("file_uuid", "file_size")})
    write_miniaod(Path(two[0]), 250, seed=9)
    errs = [e for e in verify(out, inputs=True).errors if e.check == "inputs"]
    assert [e.where for e in errs] == [two[0]] and "250 entries, the manifest 300" in errs[0].message


def test_stored_values_are_those_of_the_input_branches(tmp_path):
    """Jet energy and log pT, rho and nPV, the flavour observers and gen_pt_with_nu (the
    nearest GenJetWithNu within dR 0.4), each jet found again by (event, jet_index)."""
    f = write_miniaod(tmp_path / "in.root", 300, seed=21)
    assert skim([str(f)], tmp_path / "s", **KW).ok
    st = Store(tmp_path / "s")
    a = st.read(["event", "jet_index", "jet_features", "truth", "hadron_flavour", "parton_flavour"])
    col = {c: i for i, c in enumerate(st.jet_features)}
    t = uproot.open(f)["Events"].arrays()
    row = {int(e): i for i, e in enumerate(t.event)}
    ev = np.array([row[int(e)] for e in a["event"]])
    ji = a["jet_index"].astype(np.int64)

    def get(branch):
        return np.array([float(t[branch][e][j]) for e, j in zip(ev, ji)])

    pt, eta, phi, m = (get(f"Jet_{k}") for k in ("pt", "eta", "phi", "mass"))
    jf = a["jet_features"]
    np.testing.assert_allclose(jf[:, col["energy"]], np.sqrt((pt * np.cosh(eta)) ** 2 + m * m), rtol=1e-5)
    np.testing.assert_allclose(jf[:, col["log_pt"]], np.log(pt), rtol=1e-5)
    np.testing.assert_array_equal(jf[:, col["rho"]], ak.to_numpy(t.Rho_fixedGridRhoFastjetAll)[ev].astype(np.float32))
    np.testing.assert_array_equal(jf[:, col["npv"]], ak.to_numpy(t.PV_npvs)[ev].astype(np.float32))
    np.testing.assert_array_equal(a["hadron_flavour"], get("Jet_hadronFlavour"))
    np.testing.assert_array_equal(a["parton_flavour"], get("Jet_partonFlavour"))
    want = []
    for k, e in enumerate(ev):
        i = nearest(t.GenJetWithNu_eta[e], t.GenJetWithNu_phi[e], eta[k], phi[k])
        want.append(float(t.GenJetWithNu_pt[e][i]) if i is not None else a["truth"][k, 0])
    matched = a["truth"][:, 0] != 0
    assert matched.sum() > 10
    np.testing.assert_allclose(a["truth"][matched, 4], np.array(want, np.float32)[matched], rtol=1e-6)


def test_jet_cuts_gen_jet_match_and_truth_columns_by_name(tmp_path):
    """The stored jets are those with pT > 15, |eta| < 2.5 and (jetId & 2) == 2, selected here
    in Python; each one's truth is its nearest GEN jet within dR 0.4 (GEN jets placed 0-0.8
    from reco jets), zeros and the pu label without one; a config listing the truth targets in
    another order gets each column by its name."""
    f = write_miniaod(tmp_path / "in.root", 400, seed=31, varied_jets=True)
    cfg = load_skim_config("default").raw
    cfg["truth"] = truth = ["gen_pt_with_nu", "gen_mass", "gen_phi", "gen_eta", "gen_pt"]
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert skim([str(f)], tmp_path / "s", config=tmp_path / "cfg.yaml", **KW).ok
    st = Store(tmp_path / "s")
    assert st.truth == truth
    a = st.read(["event", "jet_index", "truth", "label"])
    t = ak.to_list(uproot.open(f)["Events"].arrays(filter_name=["event", "Jet_*", "GenJet_*", "GenJetWithNu_*"]))
    by_event = {e["event"]: e for e in t}

    def kept(e, j):
        return e["Jet_pt"][j] > 15 and abs(e["Jet_eta"][j]) < 2.5 and (e["Jet_jetId"][j] & 2) == 2

    want = sorted((e["event"], j) for e in t for j in range(len(e["Jet_pt"])) if kept(e, j))
    n_jets = sum(len(e["Jet_pt"]) for e in t)
    assert sorted(zip(a["event"].tolist(), a["jet_index"].tolist())) == want
    assert 0.2 * n_jets < len(want) < 0.6 * n_jets  # each cut left jets out

    col = {name: i for i, name in enumerate(truth)}
    pu = st.classes.index("pu")
    matched = 0
    for k, (ev, j) in enumerate(zip(a["event"].tolist(), a["jet_index"].tolist())):
        e = by_event[ev]
        eta, phi = e["Jet_eta"][j], e["Jet_phi"][j]
        g = nearest(e["GenJet_eta"], e["GenJet_phi"], eta, phi)
        if g is None:
            assert a["truth"][k].tolist() == [0.0] * 5 and a["label"][k] == pu
            continue
        matched += 1
        for x in ("pt", "eta", "phi", "mass"):
            assert a["truth"][k, col[f"gen_{x}"]] == np.float32(e[f"GenJet_{x}"][g]), (k, x)
        n = nearest(e["GenJetWithNu_eta"], e["GenJetWithNu_phi"], eta, phi)
        with_nu = e["GenJetWithNu_pt"][n] if n is not None else e["GenJet_pt"][g]
        assert a["truth"][k, col["gen_pt_with_nu"]] == np.float32(with_nu)
    assert 0.2 * len(want) < matched < 0.9 * len(want)


def test_glob_matches_are_sorted(tmp_path, monkeypatch):
    import jetlib.source.filelist as fl

    for n in ("a", "b", "c"):
        (tmp_path / f"{n}.root").write_bytes(b"root")
    real = fl.glob.glob
    monkeypatch.setattr(fl.glob, "glob", lambda p: sorted(real(p), reverse=True))  # directory order is arbitrary
    assert [Path(f.path).name for f in fl.parse_inputs(str(tmp_path / "*.root"))] == ["a.root", "b.root", "c.root"]


def test_a_file_url_is_a_local_path(tmp_path):
    from jetlib.source.filelist import is_remote, parse_inputs

    (tmp_path / "x.root").write_bytes(b"root")
    (got,) = parse_inputs(f"file://{tmp_path}/x.root")
    assert got.path == str(tmp_path / "x.root") and got.problem is None and not is_remote(got.path)
    assert not is_remote(f"file://{tmp_path}/x.root")


def test_a_local_oserror_is_not_retried_a_remote_one_is(monkeypatch):
    import jetlib.skim.task as task

    calls, slept = [], []
    monkeypatch.setattr(task.time, "sleep", slept.append)

    def fn():
        calls.append(1)
        raise OSError(5, "Input/output error")

    with pytest.raises(OSError):
        task._with_retries(fn, "/data/f.root")
    assert calls == [1] and slept == []
    calls.clear()
    with pytest.raises(OSError):
        task._with_retries(fn, "root://host//f.root")
    assert len(calls) == task.RETRIES + 1
