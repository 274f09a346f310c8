"""jetlib generate: schema completeness, reproducibility, physics a tagger can learn."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from jetlib.config.inputs import load_input_schema
from jetlib.generate import generate


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("gen"), events=3000, files=1, seed=7, progress=False)[0]


def test_every_schema_branch_is_a_ttree_branch(sample):
    t = uproot.open(sample)["Events"]
    assert t.classname == "TTree" and t.num_entries == 3000
    keys = set(t.keys())
    for col in load_input_schema("miniaod").collections.values():
        for b in col.all_fields.values():
            assert b in keys, b
    for b in load_input_schema("miniaod").event.values():
        assert b in keys, b


def test_same_seed_same_events(tmp_path, sample):
    again = generate(tmp_path, events=3000, files=1, seed=7, progress=False)[0]
    other = generate(tmp_path / "o", events=3000, files=1, seed=8, progress=False)[0]
    a, b, c = (uproot.open(p)["Events"].arrays(["Jet_pt", "PFCand_dxy", "GenPart_pdgId"]) for p in (sample, again, other))
    assert ak.all(a.Jet_pt == b.Jet_pt) and ak.all(ak.flatten(a.PFCand_dxy) == ak.flatten(b.PFCand_dxy))
    assert ak.num(a.Jet_pt, axis=0) == ak.num(c.Jet_pt, axis=0) and not ak.all(ak.num(a.Jet_pt) == ak.num(c.Jet_pt))
    # the seed is the run number: samples of two seeds share no (run, lumi, event) key
    ids = [uproot.open(p)["Events"].arrays(["run", "luminosityBlock", "event"], library="np") for p in (sample, other)]
    assert set(ids[0]["run"].tolist()) == {7} and set(ids[1]["run"].tolist()) == {8}
    keys = [set(zip(*(d[k].tolist() for k in ("run", "luminosityBlock", "event")))) for d in ids]
    assert len(keys[0]) == 3000 and not keys[0] & keys[1]


def _link_jets(jet) -> tuple[np.ndarray, np.ndarray]:
    """The jets of the link table's entries (``jet``: JetPFCand_jetIdx per event) as keys
    event * 1000 + jet index, sorted, and each entry's position among them (for np.bincount)."""
    event = ak.broadcast_arrays(ak.local_index(jet, axis=0), jet)[0]
    return np.unique(ak.to_numpy(ak.flatten(event * 1000 + jet)), return_inverse=True)


def test_consistency_and_physics(sample):
    a = uproot.open(sample)["Events"].arrays()
    assert ak.all(a.nJet == ak.num(a.Jet_pt))
    assert ak.all((a.JetPFCand_candIdx >= 0) & (a.JetPFCand_candIdx < a.nPFCand))
    assert ak.all((a.JetPFCand_jetIdx >= 0) & (a.JetPFCand_jetIdx < a.nJet))
    idx = ak.local_index(a.GenPart_pdgId)
    assert ak.all(a.GenPart_genPartIdxMother < idx)
    pdg = ak.to_numpy(ak.flatten(a.GenPart_pdgId))
    assert (pdg == 21).any() and not (pdg == -21).any()  # a gluon has no antiparticle code
    pt = ak.to_numpy(ak.flatten(a.Jet_pt))
    assert pt.min() >= 5 and pt.max() < 1300 and np.abs(ak.to_numpy(ak.flatten(a.Jet_eta))).max() < 4.7
    assert ak.all(a.GenJetWithNu_pt >= a.GenJet_pt)
    # lifetime-signed IP significance of jet tracks: b jets >> light jets
    jet = a.JetPFCand_jetIdx
    cand = a.JetPFCand_candIdx
    hf = a.Jet_hadronFlavour[jet]
    dphi = a.Jet_phi[jet] - a.PFCand_phi[cand]
    dxy = a.PFCand_dxy[cand]
    sig = np.abs(dxy) * np.sign(dxy * np.sin(dphi)) / np.where(a.PFCand_dxyErr[cand] > 0, a.PFCand_dxyErr[cand], np.inf)
    charged = a.PFCand_charge[cand] != 0
    b = ak.to_numpy(ak.flatten(sig[(hf == 5) & charged]))
    light = ak.to_numpy(ak.flatten(sig[(hf == 0) & charged]))
    assert (b > 3).mean() > 5 * (light > 3).mean() and abs(np.median(light)) < 0.5
    # per jet, as a track-counting tagger sees it: two tracks above 3 sigma in most b jets
    # (CMS: ~50-60%), hardly any light jet (it was 17% of b jets)
    jets, inv = _link_jets(jet)
    n_above = np.bincount(inv, weights=ak.to_numpy(ak.flatten((sig > 3) & charged)), minlength=len(jets))
    jet_hf = np.zeros(len(jets), np.int64)
    jet_hf[inv] = ak.to_numpy(ak.flatten(hf))
    assert (n_above[jet_hf == 5] >= 2).mean() > 0.4 and (n_above[jet_hf == 0] >= 2).mean() < 0.01
    # gluon jets have more constituents than light-quark jets
    pf = a.Jet_partonFlavour
    n = a.Jet_nConstituents
    assert ak.mean(n[pf == 21]) > 1.2 * ak.mean(n[(abs(pf) >= 1) & (abs(pf) <= 3)])
    assert ak.max(a.SV_mass[...]) <= 5.5


def test_unknown_process_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="known: ttbar"):
        generate(tmp_path, events=10, processes=["ttbaar"], progress=False)


def test_cli_reports_an_unwritable_out(tmp_path):
    from typer.testing import CliRunner

    from jetlib.cli import app

    (tmp_path / "file").write_text("not a folder")
    res = CliRunner().invoke(app, ["generate", "--events", "10", "--out", str(tmp_path / "file" / "gen")])
    assert res.exit_code == 2 and "Not a directory" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["generate", "--events", "10", "--out", str(tmp_path / "file")], env={"COLUMNS": "300"})
    assert res.exit_code == 2 and "file: is a file, not a folder for the generated files; choose another --out" in res.output
    assert (tmp_path / "file").read_text() == "not a folder"


@pytest.mark.parametrize("args, message", [
    (["--events", "3", "--files", "5"], "--files 5 is more than --events 3: every file needs at least one event"),
    (["--process", ""], "no process given; known: ttbar, qcd, ztautau, zmumu"),
    (["--process", " , "], "no process given; known: ttbar"),
])  # fmt: skip
def test_cli_refuses_settings_that_would_write_broken_files(tmp_path, args, message):
    from typer.testing import CliRunner

    from jetlib.cli import app

    res = CliRunner().invoke(app, ["generate", *args, "--out", str(tmp_path / "g")])
    assert res.exit_code == 2 and message in res.output.replace("\n", " ") and "Traceback" not in res.output
    assert not (tmp_path / "g").exists()  # nothing half-written


def test_cli_names_files_of_an_earlier_run_left_in_out(tmp_path):
    """`ls data/*.root > filelist.txt` after a smaller second run would list the first run's
    last files too: the command says they are there."""
    from typer.testing import CliRunner

    from jetlib.cli import app

    out = tmp_path / "g"
    assert CliRunner().invoke(app, ["generate", "--events", "30", "--files", "3", "--out", str(out)]).exit_code == 0
    res = CliRunner().invoke(app, ["generate", "--events", "20", "--files", "2", "--out", str(out)])
    assert res.exit_code == 0 and "also holds 1 file(s) of an earlier `jetlib generate` (jetlib_gen_002.root)" in res.output
    res = CliRunner().invoke(app, ["generate", "--events", "30", "--files", "3", "--out", str(out)])
    assert res.exit_code == 0 and "earlier" not in res.output


def test_charges_and_hadron_codes_follow_the_decays(sample):
    """GEN: a tau's lepton has the tau's sign (tau- -> l- ...), a b quark's lepton its sign, a
    c quark's the opposite; a B meson's code is negative for a b quark (B- = b u-bar), a b
    baryon's and a C hadron's positive. Reco: a tau's prongs sum to its charge, a tight lepton
    has the charge of its GEN lepton."""
    a = uproot.open(sample)["Events"].arrays()
    pdg, mother = a.GenPart_pdgId, a.GenPart_genPartIdxMother
    mpdg = ak.where(mother >= 0, pdg[ak.where(mother >= 0, mother, 0)], 0)
    lep = (abs(pdg) == 11) | (abs(pdg) == 13)
    from_tau = ak.to_numpy(ak.flatten((pdg * mpdg)[lep & (abs(mpdg) == 15)]))
    assert len(from_tau) > 50 and (from_tau > 0).all()
    quark = ak.where(mother >= 0, mpdg[ak.where(mother >= 0, mother, 0)], 0)  # the hadron's mother
    from_b = ak.to_numpy(ak.flatten((pdg * quark)[lep & (abs(mpdg) // 100 % 10 == 5) & (abs(quark) == 5)]))
    from_c = ak.to_numpy(ak.flatten((pdg * quark)[lep & (abs(mpdg) // 100 % 10 == 4) & (abs(quark) == 4)]))
    assert len(from_b) > 20 and (from_b > 0).all() and len(from_c) > 5 and (from_c < 0).all()
    b_hadron = (abs(mpdg) == 5) & ((abs(pdg) // 100 == 5) | (abs(pdg) // 1000 == 5))
    meson = ak.to_numpy(ak.flatten((pdg * mpdg)[b_hadron & (abs(pdg) < 1000)]))
    baryon = ak.to_numpy(ak.flatten((pdg * mpdg)[b_hadron & (abs(pdg) > 1000)]))
    assert len(meson) > 20 and (meson < 0).all() and len(baryon) > 5 and (baryon > 0).all()
    c_hadron = (abs(mpdg) == 4) & (abs(pdg) // 100 % 10 == 4)
    assert (ak.to_numpy(ak.flatten((pdg * mpdg)[c_hadron])) > 0).all()
    # reco: a 3-prong tau's candidates sum to +-1 (jets of at most 6 candidates, 3 of them
    # charged, none a lepton, in events with a GEN tau), a tight muon has its GEN muon's charge
    jet, q = a.JetPFCand_jetIdx, a.PFCand_charge[a.JetPFCand_candIdx]
    cand_pdg = abs(a.PFCand_pdgId[a.JetPFCand_candIdx])
    jets, inv = _link_jets(jet)
    qsum = np.bincount(inv, weights=ak.to_numpy(ak.flatten(q)), minlength=len(jets))
    nch = np.bincount(inv, weights=ak.to_numpy(ak.flatten(q != 0)), minlength=len(jets))
    ncons = np.bincount(inv, minlength=len(jets))
    nlep = np.bincount(inv, weights=ak.to_numpy(ak.flatten((cand_pdg == 11) | (cand_pdg == 13))), minlength=len(jets))
    has_tau = ak.to_numpy(ak.any(abs(pdg) == 15, axis=1))[jets // 1000]
    three = (ncons <= 6) & (nch == 3) & (nlep == 0) & has_tau
    assert three.sum() > 30 and (np.abs(qsum[three]) == 1).all()
    mu = a.Muon_tightId == 1
    gmu = (abs(pdg) == 13) & (a.GenPart_statusFlags & 1 == 1)  # prompt
    pair = ak.cartesian({"r": ak.zip({"q": a.Muon_charge[mu], "eta": a.Muon_eta[mu], "phi": a.Muon_phi[mu]}),
                         "g": ak.zip({"pdg": pdg[gmu], "eta": a.GenPart_eta[gmu], "phi": a.GenPart_phi[gmu]})}, nested=True)
    r, g = pair.r, pair.g
    d2 = (r.eta - g.eta) ** 2 + ((r.phi - g.phi + np.pi) % (2 * np.pi) - np.pi) ** 2
    best = ak.argmin(d2, axis=-1, keepdims=True)
    near = ak.flatten(d2[best], axis=-1) < 0.1**2
    reco_q = ak.to_numpy(ak.flatten(r.q[best][near], axis=None))
    gen_q = -np.sign(ak.to_numpy(ak.flatten(g.pdg[best][near], axis=None)))
    assert len(reco_q) > 100 and (reco_q == gen_q).mean() > 0.95


def test_the_pt_spectrum_falls_to_its_end():
    """The truncated power law: every bin holds the law's share up to 1000 GeV (a cap at
    900-1000 GeV piled the tail there, 3x the bin below)."""
    from jetlib.generate.jets import _pt

    pt0, index = 30.0, 2.2
    pt = _pt(np.random.default_rng(1), 2_000_000, pt0, index)
    assert pt.min() >= pt0 and pt.max() <= 1000.0
    edges = np.array([100.0, 300.0, 500.0, 700.0, 900.0, 1000.0])
    got = np.histogram(pt, edges)[0] / len(pt)
    cdf = lambda x: (1 - (x / pt0) ** -index) / (1 - (1000.0 / pt0) ** -index)  # noqa: E731
    np.testing.assert_allclose(got, np.diff(cdf(edges)), rtol=0.05)


def test_lepton_pairs_of_one_boson_have_opposite_charges_and_the_presets_find_them(sample, tmp_path):
    """Z -> mumu, Z -> tautau and dileptonic ttbar (e-mu in half) give opposite-sign pairs:
    the zmumu and ttbar_emu control-region presets select events of the generated sample."""
    import yaml

    from jetlib.config._files import resolve
    from jetlib.config.inputs import load_input_schema
    from jetlib.config.skim import load_label_scheme, load_skim_config
    from jetlib.kernels.events import select_events
    from jetlib.skim.plan import make_plan
    from jetlib.source.open import check_branches, open_tree
    from jetlib.source.read import read_chunk

    a = uproot.open(sample)["Events"].arrays(["GenPart_pdgId", "GenPart_status", "GenPart_statusFlags", "GenPart_genPartIdxMother"])
    pdg = a.GenPart_pdgId
    prompt = ((abs(pdg) == 11) | (abs(pdg) == 13)) & (a.GenPart_status == 1) & ((a.GenPart_statusFlags & 257) == 257)
    taus = abs(pdg) == 15
    for sel in (prompt, taus):
        two = ak.num(pdg[sel]) == 2
        signs = ak.to_numpy(ak.prod(np.sign(pdg[sel][two]), axis=1))
        assert len(signs) > 50 and (signs < 0).all()
    emu = (ak.sum(prompt & (abs(pdg) == 11), axis=1) == 1) & (ak.sum(prompt & (abs(pdg) == 13), axis=1) == 1)
    assert ak.sum(emu) > 10
    for preset, least in (("zmumu", 100), ("ttbar_emu", 20)):
        cfg = yaml.safe_load(resolve("skim", "default").read_text())
        cfg["event_selection"] = preset
        (tmp_path / f"{preset}.yaml").write_text(yaml.safe_dump(cfg))
        c = load_skim_config(tmp_path / f"{preset}.yaml")
        plan = make_plan(load_input_schema("miniaod"), c, load_label_scheme(c.labels))
        t = open_tree(str(sample), plan.tree)
        chunk = read_chunk(t, plan, 0, t.num_entries, set(check_branches(str(sample), t, plan.branches(), "miniaod")))
        ok = select_events(plan.preset, chunk.n_events, muons=chunk.preset.get("Muon"),
                           electrons=chunk.preset.get("Electron"), jets=chunk.preset.get("Jet"))  # fmt: skip
        assert ok.sum() >= least, (preset, ok.sum())  # (170 and 35 of 3000 events)


def test_a_leptonic_taus_gen_lepton_is_its_reco_lepton(sample):
    """A tau's decay products share its pT; in a leptonic tau the lepton carries the visible
    jet, so its reco Muon/Electron (0.95 of the reco jet) has the GEN lepton's pT within the
    jet resolution (the GEN lepton had 0.5 of the jet, half of what reco holds)."""
    a = uproot.open(sample)["Events"].arrays()
    cnt = ak.to_numpy(ak.num(a.GenPart_pdgId))
    start = np.repeat(np.cumsum(cnt) - cnt, cnt)
    pdg = ak.to_numpy(ak.flatten(a.GenPart_pdgId))
    pt = ak.to_numpy(ak.flatten(a.GenPart_pt)).astype(np.float64)
    m = ak.to_numpy(ak.flatten(a.GenPart_genPartIdxMother))
    mother = np.where(m >= 0, m + start, -1)
    has = mother >= 0
    tau = np.abs(pdg) == 15
    shared = np.bincount(mother[has], weights=pt[has], minlength=len(pt))
    assert tau.sum() > 100 and np.allclose(shared[tau], pt[tau], rtol=1e-5)
    from_tau = ((np.abs(pdg) == 11) | (np.abs(pdg) == 13)) & has & (np.abs(pdg[np.maximum(mother, 0)]) == 15)
    ratios = []
    for coll, ident, code in (("Muon", "tightId", 13), ("Electron", "mvaIso_WP80", 11)):
        reco = a[f"{coll}_{ident}"] == 1
        gen = ak.unflatten(from_tau & (np.abs(pdg) == code), cnt)
        pair = ak.cartesian({"g": ak.zip({"pt": a.GenPart_pt[gen], "eta": a.GenPart_eta[gen], "phi": a.GenPart_phi[gen]}),
                             "r": ak.zip({"pt": a[f"{coll}_pt"][reco], "eta": a[f"{coll}_eta"][reco],
                                          "phi": a[f"{coll}_phi"][reco]})}, nested=True)
        g, r = pair.g, pair.r
        d2 = (r.eta - g.eta) ** 2 + ((r.phi - g.phi + np.pi) % (2 * np.pi) - np.pi) ** 2
        best = ak.argmin(d2, axis=-1, keepdims=True)
        near = ak.flatten(d2[best], axis=-1) < 0.1**2
        ratios.append(ak.to_numpy(ak.flatten((r.pt / g.pt)[best][near], axis=None)))
    ratio = np.concatenate(ratios)
    assert len(ratio) > 100 and 0.9 < np.median(ratio) < 1.1


def test_a_reco_lepton_is_its_pf_candidate_and_a_vertex_carries_its_tracks(sample):
    """Each Muon/Electron is a particle of the event's PF list (the first candidate of its jet),
    as in CMS: the same pT, charge, direction and impact parameter, so that a semileptonic B
    decay's lepton is displaced in both collections
    (it was at a fixed 0.12 or 0.95 of the jet pT, from the primary vertex: 0.5% of the
    muons had |dxy/dxyErr| > 3 where 82% of their PF candidates did). A vertex carries the
    pT of its tracks, not a fixed half of the jet (every SV had pT/jet pT = 0.5)."""
    t = uproot.open(sample)["Events"]
    a = t.arrays(["PFCand_pt", "PFCand_eta", "PFCand_phi", "PFCand_charge", "PFCand_dxy", "PFCand_pdgId",
                  "Muon_pt", "Muon_eta", "Muon_phi", "Muon_charge", "Muon_dxy", "Muon_dxyErr", "SV_pt", "Jet_pt"])  # fmt: skip
    n_mu = n_displaced = 0
    for ev in range(len(a)):
        cands = a[ev]
        for pt, eta, phi, q, dxy, err in zip(*(cands[f"Muon_{f}"].to_numpy() for f in ("pt", "eta", "phi", "charge", "dxy", "dxyErr"))):
            same = np.flatnonzero((cands.PFCand_pt.to_numpy() == pt) & (np.abs(cands.PFCand_pdgId.to_numpy()) == 13))
            assert len(same) == 1, (ev, pt)
            i = same[0]
            assert cands.PFCand_charge[i] == q
            assert (cands.PFCand_eta[i], cands.PFCand_phi[i], cands.PFCand_dxy[i]) == (eta, phi, dxy)
            n_mu += 1
            n_displaced += abs(dxy / err) > 3
    assert n_mu > 200 and 0.02 < n_displaced / n_mu < 0.5  # semileptonic b/c muons among prompt ones
    share = ak.flatten(a.SV_pt).to_numpy()
    assert len(np.unique(share)) > 0.9 * len(share) > 100
