"""Control-region event selections (schemas/skim/presets.yaml, jetlib.kernels.events) against
hand-built events with known outcomes and a slow pure-Python reference of each preset's cuts."""

from __future__ import annotations

import json
import math

import h5py
import hdf5plugin  # noqa: F401  (the skim's default LZ4 shards, read with plain h5py below)
import numpy as np
import pytest
import uproot
import yaml
from miniaod_inputs import NANO, write_miniaod

from jetlib.config.inputs import load_input_schema
from jetlib.config.skim import load_label_scheme, load_presets, load_skim_config
from jetlib.kernels.events import select_events
from jetlib.skim.plan import make_plan
from jetlib.skim.process import select_jets
from jetlib.source.open import check_branches, open_tree
from jetlib.source.read import Jagged, read_chunk

PRESETS = ["zmumu", "dy_mutau", "dijet", "ttbar_emu"]
MU = 0.1057
FIELDS = ("pt", "eta", "phi", "mass", "charge", "iso")


# -- the reference: one event at a time, plain Python ---------------------------------------


def _dphi(a: float, b: float) -> float:
    d = (a - b) % (2 * math.pi)
    return d - 2 * math.pi if d > math.pi else d


def _mass(a: dict, b: dict) -> float:
    e = px = py = pz = 0.0
    for o in (a, b):
        pt, eta, phi, m = (float(o[k]) for k in ("pt", "eta", "phi", "mass"))
        px += pt * math.cos(phi)
        py += pt * math.sin(phi)
        pz += pt * math.sinh(eta)
        e += math.sqrt((pt * math.cosh(eta)) ** 2 + m * m)
    return math.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0))


def _passes(o: dict, cut: dict) -> bool:
    if not float(o["pt"]) > cut.get("min_pt", 0.0):
        return False
    if not abs(float(o["eta"])) < cut.get("max_abs_eta", math.inf):
        return False
    return not ("max_iso" in cut and "iso" in o and not float(o["iso"]) < cut["max_iso"])


def _count_ok(n: int, cut: dict) -> bool:
    return n >= cut.get("min_count", 0) and n <= cut.get("max_count", n)


def ref_event(preset: dict, ev: dict[str, list[dict]]) -> bool:
    """Does one event (lists of objects, leading first) pass ``preset``?"""
    mus = [o for o in ev.get("muons", []) if _passes(o, preset.get("muons", {}))]
    if "muons" in preset:
        cut = preset["muons"]
        if not _count_ok(len(mus), cut):
            return False
        if cut.get("opposite_sign") and not (len(mus) >= 2 and mus[0]["charge"] * mus[1]["charge"] < 0):
            return False
        if "mass_window" in preset:
            lo, hi = preset["mass_window"]
            if not (len(mus) >= 2 and lo < _mass(mus[0], mus[1]) < hi):
                return False
    if "electrons" in preset:
        els = [o for o in ev.get("electrons", []) if _passes(o, preset["electrons"])]
        if not _count_ok(len(els), preset["electrons"]):
            return False
        if preset.get("opposite_sign_emu") and not (els and mus and els[0]["charge"] * mus[0]["charge"] < 0):
            return False
    if "jets" in preset:
        cut = preset["jets"]
        jets = [o for o in ev.get("jets", []) if _passes(o, cut)]
        if "min_dr_to_muon" in cut and "muons" in preset and mus:
            m = mus[0]
            jets = [j for j in jets
                    if math.hypot(float(j["eta"]) - float(m["eta"]), _dphi(float(j["phi"]), float(m["phi"]))) > cut["min_dr_to_muon"]]  # fmt: skip
        if not _count_ok(len(jets), cut):
            return False
        if "min_dphi_leading" in cut and not (
            len(jets) >= 2 and abs(_dphi(float(jets[0]["phi"]), float(jets[1]["phi"]))) > cut["min_dphi_leading"]
        ):
            return False
    return True


# -- building inputs ------------------------------------------------------------------------


def obj(pt, eta=0.0, phi=0.0, q=-1, iso=0.0, mass=MU) -> dict:
    return {"pt": pt, "eta": eta, "phi": phi, "mass": mass, "charge": q, "iso": iso}


def jagged(events: list[list[dict]], fields=FIELDS) -> Jagged:
    counts = [len(e) for e in events]
    offsets = np.zeros(len(events) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    flat = [o for e in events for o in e]
    out = Jagged(offsets)
    for f in fields:
        dt = np.int32 if f == "charge" else np.float32
        out.fields[f] = np.array([o[f] for o in flat], dt)
    return out


def kernel(preset: dict, events: list[dict[str, list[dict]]]) -> np.ndarray:
    coll = {k: jagged([e.get(k, []) for e in events], FIELDS if k != "jets" else FIELDS[:4]) for k in ("muons", "electrons", "jets")}
    return select_events(preset, len(events), **coll)


def check(name: str, events: list[dict], expected: list[bool]) -> None:
    preset = load_presets()[name]
    ref = [ref_event(preset, e) for e in events]
    assert ref == expected, "the reference disagrees with the hand-made expectation"
    np.testing.assert_array_equal(kernel(preset, events), np.array(expected))


# -- hand-built events, outcome known ---------------------------------------------------------


def test_zmumu_by_hand():
    # two massless-ish muons of 45 GeV back to back at eta 0: m = 90 GeV
    z = [obj(45, phi=0.0, q=1), obj(45, phi=math.pi, q=-1)]
    events = [
        {"muons": z},  # Z
        {"muons": [obj(45, phi=0.0, q=1), obj(45, phi=math.pi, q=1)]},  # same sign
        {"muons": [obj(45, phi=0.0, q=1), obj(45, phi=math.pi / 2, q=-1)]},  # m = 63.6 GeV
        {"muons": [obj(45, q=1), obj(45, phi=math.pi, q=-1, iso=0.5)]},  # second muon not isolated
        {"muons": [obj(60, eta=2.6, q=1)] + z},  # leading muon out of acceptance, the next two make a Z
        {"muons": [obj(45, q=1), obj(19, phi=math.pi, q=-1)]},  # second muon below 20 GeV
        {"muons": []},
        {"muons": z, "jets": [obj(100, mass=10.0)]},  # jets do not matter
    ]
    check("zmumu", events, [True, False, False, False, True, False, False, True])


def test_dy_mutau_by_hand():
    mu = obj(30, phi=0.0, iso=0.1)
    far = obj(40, phi=1.0, mass=5.0)
    events = [
        {"muons": [mu], "jets": [far]},
        {"muons": [mu], "jets": [obj(40, phi=0.3, mass=5.0)]},  # the jet is the muon (dR 0.3)
        {"muons": [mu, obj(28, phi=2.0, iso=0.05)], "jets": [far]},  # two isolated muons
        {"muons": [mu, obj(28, phi=2.0, iso=0.5)], "jets": [far]},  # the second is not isolated: one muon
        {"muons": [mu], "jets": [obj(40, eta=2.4, phi=1.0)]},  # jet beyond |eta| 2.3
        {"muons": [obj(24, iso=0.1)], "jets": [far]},  # muon below 25 GeV
        {"muons": [obj(30, phi=3.0, iso=0.1)], "jets": [obj(40, phi=-3.0)]},  # dphi wraps: dR 0.28
        {"muons": [obj(30, phi=3.0, iso=0.1)], "jets": [obj(40, phi=-3.0), obj(25, phi=0.0)]},  # second jet far
        {"muons": [mu], "jets": []},
    ]
    check("dy_mutau", events, [True, False, False, True, False, False, False, True, False])


def test_dijet_by_hand():
    events = [
        {"jets": [obj(100, phi=0.0), obj(80, phi=3.0)]},
        {"jets": [obj(100, phi=0.0), obj(80, phi=2.0)]},  # not back to back
        {"jets": [obj(100, phi=0.0), obj(45, phi=3.0)]},  # second jet below 50 GeV
        {"jets": [obj(100, phi=2.0), obj(80, phi=-2.0)]},  # |dphi| wraps to 2.28
        {"jets": [obj(100, phi=1.6), obj(80, phi=-1.6)]},  # |dphi| 3.2 -> 3.08
        {"jets": [obj(150, eta=2.6, phi=1.0), obj(100, phi=0.0), obj(80, phi=3.0)]},  # leading jet out of acceptance
        {"jets": [obj(100, phi=0.0), obj(90, phi=1.0), obj(80, phi=3.0)]},  # the two leading are not back to back
        {"jets": [obj(100)]},
        {"jets": []},
    ]
    check("dijet", events, [True, False, False, False, True, True, False, False, False])
    # the same events with their jets listed out of pT order: the leading two by pT count
    unsorted = [
        {"jets": [obj(45, phi=1.0), obj(132, phi=0.0), obj(99, phi=3.14)]},  # rejected by file order
        {"jets": [obj(60, phi=0.0), obj(70, phi=3.0), obj(100, phi=1.0)]},  # kept by file order
    ]
    np.testing.assert_array_equal(kernel(load_presets()["dijet"], unsorted), [True, False])


def test_ttbar_emu_by_hand():
    jets = [obj(40, phi=1.0), obj(35, phi=2.0)]
    e, m = obj(30, q=-1, iso=0.1), obj(30, phi=2.0, q=1, iso=0.1)
    events = [
        {"electrons": [e], "muons": [m], "jets": jets},
        {"electrons": [e], "muons": [obj(30, q=-1)], "jets": jets},  # same sign
        {"electrons": [e], "muons": [m], "jets": [obj(40), obj(25)]},  # one jet above 30 GeV
        {"electrons": [obj(30, eta=2.45, q=-1)], "muons": [obj(30, eta=2.45, q=1)], "jets": jets},  # muon |eta| > 2.4
        {"electrons": [], "muons": [m], "jets": jets},
        {"electrons": [e], "muons": [obj(30, q=1, iso=0.3)], "jets": jets},  # muon not isolated
        # leading selected muon decides the sign: a non-isolated same-sign muon before it does not count
        {"electrons": [e], "muons": [obj(50, q=-1, iso=0.9), m], "jets": jets},
        {"electrons": [e], "muons": [m, obj(25, q=-1)], "jets": jets},
    ]
    check("ttbar_emu", events, [True, False, False, False, False, False, True, True])
    # a same-sign 25 GeV muon listed before the opposite-sign 40 GeV one: the leading muon decides
    unsorted = [{"electrons": [e], "muons": [obj(25, q=-1, iso=0.1), obj(40, phi=2.0, q=1, iso=0.1)], "jets": jets}]
    assert kernel(load_presets()["ttbar_emu"], unsorted).tolist() == [True]


# -- random events: kernel == reference -------------------------------------------------------


def random_events(rng: np.random.Generator, n: int) -> list[dict]:
    """Objects near the cut values (pt, iso, eta, charge both signs), leading first."""

    def one(k_max: int, pt_scale: float) -> list[dict]:
        k = int(rng.integers(0, k_max + 1))
        pts = np.sort(rng.uniform(5, pt_scale, k))[::-1]
        return [obj(float(np.float32(p)), eta=float(np.float32(rng.uniform(-2.8, 2.8))),
                    phi=float(np.float32(rng.uniform(-math.pi, math.pi))), q=int(rng.choice([-1, 1])),
                    iso=float(np.float32(rng.uniform(0, 0.4))), mass=float(np.float32(rng.choice([MU, 0.000511, 5.0]))))
                for p in pts]  # fmt: skip

    return [{"muons": one(3, 70), "electrons": one(2, 60), "jets": one(5, 140)} for _ in range(n)]


@pytest.mark.parametrize("name", PRESETS)
def test_random_events_match_the_reference(name):
    preset = load_presets()[name]
    events = random_events(np.random.default_rng(PRESETS.index(name)), 3000)
    ref = np.array([ref_event(preset, e) for e in events])
    # the kernel gets each event's objects in random order: it ranks them by pT itself
    rng = np.random.default_rng(99)
    shuffled = [{k: [v[i] for i in rng.permutation(len(v))] for k, v in e.items()} for e in events]
    got = kernel(preset, shuffled)
    assert 0.01 < ref.mean() < 0.99, f"{name}: the random events should both pass and fail ({ref.mean():.3f})"
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("name", PRESETS)
def test_no_objects_at_all(name):
    """Empty collections (no object in any event) select nothing and do not crash."""
    events = [{} for _ in range(5)]
    assert not kernel(load_presets()[name], events).any()


# -- through the skim's read path, and into the store -------------------------------------------


def _config(tmp_path, preset: str):
    from jetlib.config._files import resolve

    cfg = yaml.safe_load(resolve("skim", "default").read_text())
    cfg["event_selection"] = preset
    path = tmp_path / f"{preset}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _file_reference(path, preset: dict) -> tuple[np.ndarray, np.ndarray]:
    """(events passing the preset, events with >= 1 jet of the default selection) from uproot."""
    a = uproot.open(path)["Events"].arrays(filter_name=["event", "Muon_*", "Electron_*", "Jet_*"], library="np")
    cols = {"muons": ("Muon", {"iso": "Muon_pfRelIso04_all"}), "electrons": ("Electron", {"iso": "Electron_pfRelIso03_all"}),
            "jets": ("Jet", {})}  # fmt: skip
    n = len(a["event"])
    passing, has_jet = [], []
    for i in range(n):
        ev = {}
        for key, (c, renamed) in cols.items():
            names = {f: renamed.get(f, f"{c}_{f}") for f in FIELDS}
            k = len(a[f"{c}_pt"][i])
            objs = [{f: a[b][i][j] for f, b in names.items() if b in a} for j in range(k)]
            ev[key] = sorted(objs, key=lambda o: -o["pt"])  # leading first (stable: ties in file order)
        passing.append(ref_event(preset, ev))
        has_jet.append(any(pt > 15 and abs(eta) < 2.5 and (jid & 2) == 2
                           for pt, eta, jid in zip(a["Jet_pt"][i], a["Jet_eta"][i], a["Jet_jetId"][i])))  # fmt: skip
    return a["event"][np.array(passing, bool)], a["event"][np.array(passing, bool) & np.array(has_jet, bool)]


@pytest.fixture(scope="module")
def preset_file(tmp_path_factory):
    return write_miniaod(tmp_path_factory.mktemp("presets") / "ev.root", 600, seed=11)


@pytest.mark.parametrize("name", PRESETS)
def test_read_path_selects_the_reference_events(name, preset_file, tmp_path):
    """read_chunk + select_jets (what a task does) keep jets only of events that pass."""
    cfg = load_skim_config(_config(tmp_path, name))
    plan = make_plan(load_input_schema("miniaod"), cfg, load_label_scheme(cfg.labels))
    t = open_tree(str(preset_file), plan.tree)
    keys = set(check_branches(str(preset_file), t, plan.branches(), "miniaod"))
    chunk = read_chunk(t, plan, 0, t.num_entries, keys)
    evt, _, _ = select_jets(plan, chunk)
    passing, with_jets = _file_reference(preset_file, load_presets()[name])
    assert 0 < len(with_jets) < 600, f"{name}: the sample should have passing and failing events"
    got = np.unique(chunk.event["event"][evt])
    np.testing.assert_array_equal(got, np.sort(with_jets))
    # the event mask alone, too
    mask = select_events(plan.preset, chunk.n_events, muons=chunk.preset.get("Muon"),
                         electrons=chunk.preset.get("Electron"), jets=chunk.preset.get("Jet"))  # fmt: skip
    np.testing.assert_array_equal(chunk.event["event"][mask], passing)


@pytest.mark.skipif(not NANO.exists(), reason="../shared/data not present")
def test_the_presets_on_the_real_nanoaod_file(tmp_path):
    """Each preset's event mask on the real NanoAOD file (the nanoaod schema's muons, electrons
    and jets) equals the reference computed from the file's branches."""
    selected = {}
    for name in PRESETS:
        cfg = load_skim_config(_config(tmp_path, name))
        plan = make_plan(load_input_schema("nanoaod"), cfg, load_label_scheme(cfg.labels))
        t = open_tree(str(NANO), plan.tree)
        keys = set(check_branches(str(NANO), t, plan.branches(), "nanoaod"))
        chunk = read_chunk(t, plan, 0, t.num_entries, keys)
        mask = select_events(plan.preset, chunk.n_events, muons=chunk.preset.get("Muon"),
                             electrons=chunk.preset.get("Electron"), jets=chunk.preset.get("Jet"))  # fmt: skip
        passing, _ = _file_reference(NANO, load_presets()[name])
        np.testing.assert_array_equal(chunk.event["event"][mask], passing, err_msg=name)
        selected[name] = int(mask.sum())
    # 10 dy_mutau and 3 dijet events pass; no Z->mumu or e-mu event in these 200 ttbar events
    # (its one event with a muon and an electron over 20 GeV fails the electron isolation)
    assert selected["dy_mutau"] > 0 and selected["dijet"] > 0 and max(selected.values()) < 200, selected


def test_skim_records_the_preset(preset_file, tmp_path):
    from jetlib.skim.run import skim
    from jetlib.store import Store

    out = tmp_path / "store"
    s = skim([str(preset_file)], out, config=_config(tmp_path, "dijet"), workers=1, dashboard_address=None,
             progress=False, entries_per_task=300)  # fmt: skip
    assert s.ok and s.done == 2
    meta = json.loads((out / "jetlib.json").read_text())
    assert meta["event_selection"]["preset"] == "dijet"
    assert meta["event_selection"]["cuts"] == load_presets()["dijet"]
    assert meta["skim_config"]["event_selection"] == "dijet"
    _, with_jets = _file_reference(preset_file, load_presets()["dijet"])
    got = []
    for sh in Store(out).shards():
        with h5py.File(sh.path, "r") as f:
            got.append(f["event"][:])
    np.testing.assert_array_equal(np.unique(np.concatenate(got)), np.sort(with_jets))


def test_the_presets_file_is_not_offered_as_a_skim_config():
    from jetlib.errors import ConfigError

    assert "zmumu" in load_presets()
    with pytest.raises(ConfigError, match="bundled ones are default,") as err:
        load_skim_config("presets")  # it used to be listed, then failed with 'missing required section'
    assert "presets" not in str(err.value).split("bundled ones are")[1]
