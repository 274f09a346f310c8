"""Small MiniAOD-like ROOT files for skim tests, written here with uproot (independent of
``jetlib generate``): every branch of schemas/inputs/miniaod.yaml, random but valid content."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from jetlib.config.inputs import load_input_schema

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
NANO = SHARED / "nanoAOD_2015_CMS_Open_Data_ttbar.root"

INT_FIELDS = {"jetId", "nConstituents", "hadronFlavour", "partonFlavour", "charge", "pdgId", "nHits", "nPixelHits",
              "lostInnerHits", "highPurity", "fromPV", "ntracks", "tightId", "status", "statusFlags",
              "genPartIdxMother", "jetIdx", "candIdx"}  # fmt: skip


def _field(rng, name, n, counts=None):
    if name == "pt":
        return (15 + rng.exponential(30, n)).astype(np.float32)
    if name == "eta":
        return rng.uniform(-2.4, 2.4, n).astype(np.float32)
    if name == "phi":
        return rng.uniform(-np.pi, np.pi, n).astype(np.float32)
    if name == "jetId":
        return np.full(n, 6, np.int32)
    if name == "pdgId":
        return rng.choice([211, -211, 22, 130, 11, -13], n).astype(np.int32)
    if name == "charge":
        return rng.choice([-1, 0, 1], n).astype(np.int32)
    if name in ("dxyErr", "dzErr"):
        return np.full(n, 0.002, np.float32)
    if name == "genPartIdxMother":
        return np.full(n, -1, np.int32)
    if name in INT_FIELDS:
        return rng.integers(0, 4, n).astype(np.int32)
    return rng.normal(0, 1, n).astype(np.float32)


#: (collection, field): (first, step) of the entries that ``nan_jets`` makes non-finite: each
#: jet field its own jets, so that a jet has at most one bad value; every other GEN jet (few
#: match a reco jet in these random events)
_NAN_JETS = {("Jet", "pt"): (0, 7), ("Jet", "eta"): (1, 7), ("Jet", "phi"): (2, 7), ("Jet", "mass"): (3, 7),
             ("GenJet", "pt"): (0, 2)}  # fmt: skip


def _near_jets(rng, jet_eta, jet_phi, jet_counts, counts, max_dr: float):
    """(eta, phi) of ``counts`` GEN jets per event, each at a dR uniform in [0, max_dr) from a
    random reco jet of its event; uniform in |eta| < 2.4 where the event has no reco jet."""
    n = int(counts.sum())
    nj = np.repeat(jet_counts, counts)
    first = np.repeat(np.cumsum(jet_counts) - jet_counts, counts)
    k = first + rng.integers(0, 1 << 30, n) % np.maximum(nj, 1)
    dr, angle = rng.uniform(0, max_dr, n), rng.uniform(-np.pi, np.pi, n)
    has = nj > 0
    eta = np.where(has, jet_eta[np.minimum(k, jet_eta.size - 1)] + dr * np.cos(angle), rng.uniform(-2.4, 2.4, n))
    phi = np.where(has, jet_phi[np.minimum(k, jet_phi.size - 1)] + dr * np.sin(angle), rng.uniform(-np.pi, np.pi, n))
    return eta.astype(np.float32), ((phi + np.pi) % (2 * np.pi) - np.pi).astype(np.float32)


def nearest(etas, phis, eta: float, phi: float, radius: float = 0.4) -> int | None:
    """Index of the object nearest to (eta, phi) within dR < radius, or None (a plain NumPy
    reference for the skim's matching)."""
    etas, phis = np.asarray(etas, np.float64), np.asarray(phis, np.float64)
    dr2 = (etas - eta) ** 2 + ((phis - phi + np.pi) % (2 * np.pi) - np.pi) ** 2
    return int(np.argmin(dr2)) if dr2.size and dr2.min() < radius**2 else None


def write_miniaod(path: Path, n_events: int = 200, *, seed: int = 0, max_jets: int = 4, max_pf: int = 60,
                  drop: tuple[str, ...] = (), nan_pf: bool = False, as_rntuple: bool = False,
                  file_wide_links: bool = False, zero_flags: bool = False, nan_jets: bool = False,
                  varied_jets: bool = False) -> Path:  # fmt: skip
    """Write a MiniAOD-like file; ``drop`` leaves out branches, ``nan_pf`` puts NaN in PF pT,
    ``nan_jets`` NaN or inf in a few jets' pT, eta, phi or mass and in GEN jets' pT,
    ``file_wide_links`` numbers the link table's candidates across the file (a dumper's
    mistake), ``zero_flags`` writes GenPart statusFlags as 0. ``varied_jets`` gives jets a pT
    from 5 GeV, |eta| up to 3 and every jetId from 0 to 7 (each jet cut bites), and puts
    each GEN jet (with and without neutrinos) 0-0.8 in dR from a reco jet of its event."""
    rng = np.random.default_rng(seed)
    schema = load_input_schema("miniaod")
    data: dict = {}
    counts = {}
    jets_flat: dict[str, np.ndarray] = {}
    for cname, col in schema.collections.items():
        if cname == "Jet":
            c = rng.integers(0, max_jets + 1, n_events)
        elif cname == "PFCand":
            c = rng.integers(0, max_pf + 1, n_events)
        elif cname == "JetPFCand":  # every candidate of an event with jets is linked to one
            c = np.where(counts["Jet"] > 0, counts["PFCand"], 0)
        else:
            c = rng.integers(0, 6, n_events)
        counts[cname] = c
        n = int(c.sum())
        rec = {}
        near = None
        if varied_jets and cname in ("GenJet", "GenJetWithNu"):
            near = dict(zip(("eta", "phi"), _near_jets(rng, jets_flat["eta"], jets_flat["phi"], counts["Jet"], c, 0.8)))
        for f, b in col.all_fields.items():
            if b in drop:
                continue
            arr = _field(rng, f, n)
            if varied_jets and cname == "Jet":
                if f == "pt":
                    arr = (5 + rng.exponential(30, n)).astype(np.float32)
                elif f == "eta":
                    arr = rng.uniform(-3.0, 3.0, n).astype(np.float32)
                elif f == "jetId":
                    arr = rng.integers(0, 8, n).astype(np.int32)
            if near is not None and f in near:
                arr = near[f]
            if cname == "Jet":
                jets_flat[f] = arr.copy()
            if cname == "JetPFCand" and f == "jetIdx":
                nj = np.repeat(counts["Jet"], c)
                arr = (rng.integers(0, 1 << 30, n) % np.maximum(nj, 1)).astype(np.int32)
            if cname == "JetPFCand" and f == "candIdx":
                arr = (np.arange(n) - (0 if file_wide_links else np.repeat(np.cumsum(c) - c, c))).astype(np.int32)
            if zero_flags and f == "statusFlags":
                arr = np.zeros(n, np.int32)
            if nan_jets and n and (cname, f) in _NAN_JETS:
                first, step = _NAN_JETS[cname, f]
                arr[first::step] = np.nan if f != "eta" else np.inf
            if cname == "PFCand" and f == "pt":
                arr = rng.exponential(3, n).astype(np.float32) + 0.1
                if nan_pf and n:
                    arr[:: max(1, n // 10)] = np.nan
            rec[b[len(cname) + 1 :] if b.startswith(cname + "_") else b] = ak.unflatten(arr, c)
        if rec:
            data[cname] = ak.zip(rec)
    for role, b in schema.event.items():
        if b in drop:
            continue
        if role == "event":
            data[b] = np.arange(n_events, dtype=np.uint64) + 1000 * seed
        elif role in ("run", "lumi"):
            data[b] = np.ones(n_events, np.uint32)
        elif role == "npv":
            data[b] = rng.poisson(30, n_events).astype(np.int32)
        else:
            data[b] = rng.normal(0, 1, n_events).astype(np.float32)
    with uproot.recreate(path) as f:
        if as_rntuple:
            f.mkrntuple("Events", ak.Array({k: v for k, v in data.items()}))
        else:
            f.mktree("Events", {k: (v if isinstance(v, np.ndarray) else v) for k, v in data.items()})
    return path
