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
