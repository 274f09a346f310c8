"""Reco-level objects of the truth jets: jets, PF candidates with tracks and impact
parameters, the jet-candidate link table, SVs, V0s, lost tracks, leptons, photons, GEN jets."""

from __future__ import annotations

import numpy as np

from jetlib.generate.jets import TAU_MODES, T

__all__ = ["reco_objects"]

CTAU = {"b": 0.045, "c": 0.03}  # cm


def _wrap(phi):
    return (phi + np.pi) % (2 * np.pi) - np.pi


def _ip(rng, vx, vy, vz, pvx, pvy, pvz, phi, eta, pt):
    """CMS-convention dxy, dz of straight tracks from (vx, vy, vz), smeared by their errors."""
    dxy = -(vx - pvx) * np.sin(phi) + (vy - pvy) * np.cos(phi)
    dz = (vz - pvz) - ((vx - pvx) * np.cos(phi) + (vy - pvy) * np.sin(phi)) * np.sinh(eta)
    err = 0.0015 + 0.006 / np.maximum(pt, 0.3)
    return (dxy + rng.normal(0, 1, len(dxy)) * err).astype(np.float32), err.astype(np.float32), \
        (dz + rng.normal(0, 1, len(dz)) * err * 1.5).astype(np.float32), (err * 1.5).astype(np.float32)  # fmt: skip


def _by_event(evt, n_events, fields):
    order = np.argsort(evt, kind="stable")
    return np.bincount(evt, minlength=n_events), {k: v[order] for k, v in fields.items()}


def reco_objects(rng, j: dict, gen: dict, ev: dict) -> dict[str, tuple[np.ndarray, dict]]:
    """Collections as (counts per event, flat fields). ``ev`` has n, pv_x, pv_y, pv_z, npv."""
    n_ev = ev["n"]
    typ, evt = j["type"], j["evt"]
    n = len(typ)
    is_ = {t: typ == T[t] for t in T}
    heavyb, heavyc = is_["b"] | is_["bb"], is_["c"] | is_["cc"]
    wide = is_["g"] | is_["undef"] | is_["pu"]
    prompt = is_["e"] | is_["mu"]
    # a jet of a prompt lepton or of a leptonic tau: the lepton and a few soft candidates
    lepjet = prompt | is_["tau_lep"]
    gpdg = gen["pdg"]
    lep_pdg = np.where(prompt, gpdg[:, 1], gpdg[:, 3])  # the GEN lepton (slot 1 prompt, 3 from a decay)
    semi = j["semilep"] & (heavyb | heavyc)
    out: dict = {}
    # -- GEN jets (visible) and with neutrinos --------------------------------------------
    real = ~is_["pu"]
    nu = np.where(j["semilep"] & (heavyb | heavyc), 0.12 * j["pt"], 0.0) + np.where(is_["tau"] | is_["tau_lep"], 0.3 * j["pt"], 0.0)
    gj = {"pt": j["pt"][real], "eta": j["eta"][real], "phi": j["phi"][real], "mass": 0.1 * j["pt"][real] * rng.uniform(0.3, 1.0, real.sum())}
    out["GenJet"] = _by_event(evt[real], n_ev, {**gj, "hadronFlavour": np.select([heavyb, heavyc], [5, 4], 0)[real].astype(np.int32),
                                                "partonFlavour": gen["pdg"][:, 0][real]})  # fmt: skip
    out["GenJetWithNu"] = _by_event(evt[real], n_ev, {**gj, "pt": (j["pt"] + nu)[real]})
    # -- reco jets ---------------------------------------------------------------------
    rpt = np.maximum(j["pt"] * rng.normal(1.0, 0.12, n), 5.0)
    reta = j["eta"] + rng.normal(0, 0.02, n)
    rphi = _wrap(j["phi"] + rng.normal(0, 0.02, n))
    nch_tau = np.array([m[0] for m in TAU_MODES])[j["tau_mode"]]
    npi0_tau = np.array([m[1] for m in TAU_MODES])[j["tau_mode"]]
    # ~40 constituents for a typical 30-100 GeV AK4 jet, gluon-like jets 60% more
    mean = (20 + 18 * np.log(rpt / 10)) * np.where(wide, 1.6, 1.0)
    ncons = np.where(is_["tau"], nch_tau + 2 * npi0_tau + rng.poisson(0.5, n),
                     np.where(lepjet, 1 + rng.poisson(1.5, n), 1 + rng.poisson(np.maximum(mean, 1))))  # fmt: skip
    ev_start = np.concatenate([[0], np.cumsum(np.bincount(evt, minlength=n_ev))])[:-1]
    jet_local = np.arange(n) - ev_start[evt]
    # constituents
    cj = np.repeat(np.arange(n), ncons)
    first = np.cumsum(ncons) - ncons  # each jet's first constituent
    k = np.arange(len(cj)) - np.repeat(first, ncons)
    w = rng.exponential(1.0, len(cj)) ** np.where(wide[cj], 1.0, 1.6)
    # the heavy-flavour hadron's decay products (displaced below) carry a large share of the jet
    ndisp = np.select([heavyb, heavyc], [4, 2], 0)
    w = np.where(k < ndisp[cj], 3.0 * w + 1.0, w)
    w = np.where(k == 0, w * np.where(lepjet[cj], 30.0, 1.0), w)  # the lepton carries the lepton jet
    frac = w / np.bincount(cj, weights=w, minlength=n)[cj]
    cpt = (rpt[cj] * frac).astype(np.float32)
    pdg = rng.choice([211, 22, 130], len(cj), p=[0.6, 0.27, 0.13]) * np.where(rng.random(len(cj)) < 0.5, 1, -1)
    pdg = np.where(np.abs(pdg) == 211, pdg, np.abs(pdg))
    taucons = is_["tau"][cj]
    # the prongs' charges as in GEN (gen.py): +q, -q, +q for a tau of charge q
    pdg = np.where(taucons, np.where(k < nch_tau[cj], 211 * np.where(k == 1, -1, 1) * j["charge"][cj], 22), pdg)
    # the GEN lepton of a lepton jet, and a semileptonic B/C decay's among its tracks
    pdg = np.where((lepjet | semi)[cj] & (k == 0), lep_pdg[cj], pdg)
    charge = np.where(np.isin(np.abs(pdg), [22, 130]), 0, -np.sign(pdg) * np.where(np.abs(pdg) == 211, -1, 1))
    # production vertex: displaced for the first charged tracks of heavy-flavour jets
    ctau = np.where(heavyb, CTAU["b"], CTAU["c"])
    bg = 0.7 * rpt * np.cosh(reta) / np.where(heavyb, 5.28, 1.87)
    flight = rng.exponential(1.0, n) * ctau * bg
    disp = (k < ndisp[cj]) & (charge != 0)
    # directions: spread about the jet axis; a heavy hadron's decay products leave its flight
    # direction (the axis) at ~p*/p (p*: their momentum across the flight, ~1.5 GeV in B and
    # ~0.7 GeV in D decays), so that their impact parameter, flight x angle, is ~c tau at any
    # boost. (Spread as the other constituents, 3x less, b tracks' dxy/dxyErr was rarely > 3.)
    sig = np.select([wide[cj], is_["tau"][cj] | lepjet[cj]], [0.11, 0.03], 0.06) * (30.0 / np.maximum(rpt[cj], 30.0)) ** 0.3
    sig = np.where(disp, np.minimum(np.where(heavyb[cj], 1.5, 0.7) / np.maximum(cpt, 0.5), 0.4), sig)
    ceta = reta[cj] + rng.normal(0, 1, len(cj)) * sig
    cphi = _wrap(rphi[cj] + rng.normal(0, 1, len(cj)) * sig)
    L = np.where(disp, flight[cj], 0.0)
    vx = ev["pv_x"][evt[cj]] + L * np.cos(rphi[cj]) / np.cosh(reta[cj])
    vy = ev["pv_y"][evt[cj]] + L * np.sin(rphi[cj]) / np.cosh(reta[cj])
    vz = ev["pv_z"][evt[cj]] + L * np.tanh(reta[cj])
    ispu_c = is_["pu"][cj]
    vz = vz + np.where(ispu_c, rng.normal(0, 4.0, len(cj)), 0.0)
    dxy, dxyerr, dz, dzerr = _ip(rng, vx, vy, vz, ev["pv_x"][evt[cj]], ev["pv_y"][evt[cj]], ev["pv_z"][evt[cj]], cphi, ceta, cpt)
    trk = charge != 0
    cons = {"pt": cpt, "eta": ceta.astype(np.float32), "phi": cphi.astype(np.float32), "pdgId": pdg.astype(np.int32),
            "charge": charge.astype(np.int32), "dxy": np.where(trk, dxy, 0), "dxyErr": np.where(trk, dxyerr, 0),
            "dz": np.where(trk, dz, 0), "dzErr": np.where(trk, dzerr, 0),
            "fromPV": np.where(ispu_c, rng.integers(0, 2, len(cj)), 3), "puppiWeight": np.where(ispu_c, 0.1, 1.0)}  # fmt: skip
    # pileup candidates, not in any jet
    npu = rng.poisson(1.0 * ev["npv"])
    pe = np.repeat(np.arange(n_ev), npu)
    m = len(pe)
    ppt = (0.3 + rng.exponential(0.8, m)).astype(np.float32)
    peta, pphi = rng.uniform(-3, 3, m), rng.uniform(-np.pi, np.pi, m)
    ppdg = rng.choice([211, -211, 22, 130], m)
    pq = np.where(np.abs(ppdg) == 211, np.sign(ppdg), 0)
    pvz = ev["pv_z"][pe] + rng.normal(0, 4.0, m)
    pdxy, pdxyerr, pdz, pdzerr = _ip(rng, ev["pv_x"][pe], ev["pv_y"][pe], pvz, ev["pv_x"][pe], ev["pv_y"][pe], ev["pv_z"][pe], pphi, peta, ppt)
    ptrk = pq != 0
    pu = {"pt": ppt, "eta": peta.astype(np.float32), "phi": pphi.astype(np.float32), "pdgId": ppdg.astype(np.int32),
          "charge": pq.astype(np.int32), "dxy": np.where(ptrk, pdxy, 0), "dxyErr": np.where(ptrk, pdxyerr, 0),
          "dz": np.where(ptrk, pdz, 0), "dzErr": np.where(ptrk, pdzerr, 0), "fromPV": rng.integers(0, 2, m), "puppiWeight": np.full(m, 0.05)}  # fmt: skip
    all_evt = np.concatenate([evt[cj], pe])
    order = np.lexsort((np.r_[np.zeros(len(cj)), np.ones(m)], all_evt))
    pf = {key: np.concatenate([cons[key], pu[key]])[order] for key in cons}
    pf_counts = np.bincount(all_evt, minlength=n_ev)
    pf_start = np.concatenate([[0], np.cumsum(pf_counts)])[:-1]
    # position of each constituent in its event's PFCand list
    inv = np.empty(len(order), np.int64)
    inv[order] = np.arange(len(order))
    cand_local = inv[: len(cj)] - pf_start[evt[cj]]
    n_all = len(order)
    isch = pf["charge"] != 0
    pf.update(
        mass=np.where(np.abs(pf["pdgId"]) == 211, 0.1396, 0.0).astype(np.float32),
        normChi2=np.where(isch, rng.gamma(2, 0.5, n_all), 0).astype(np.float32),
        nHits=np.where(isch, rng.integers(8, 25, n_all), 0).astype(np.int32),
        nPixelHits=np.where(isch, rng.integers(2, 6, n_all), 0).astype(np.int32),
        lostInnerHits=np.where(isch, rng.choice([-1, 0, 1], n_all, p=[0.8, 0.15, 0.05]), 0).astype(np.int32),
        highPurity=np.where(isch, rng.random(n_all) < 0.95, 0).astype(np.int32),
        hcalFraction=np.where(pf["pdgId"] == 130, rng.uniform(0.5, 1, n_all), 0).astype(np.float32),
    )
    out["PFCand"] = (pf_counts, pf)
    out["JetPFCand"] = _by_event(evt[cj], n_ev, {"jetIdx": jet_local[cj].astype(np.int32), "candIdx": cand_local.astype(np.int32)})
    jet_id = np.where(rng.random(n) < 0.98, 6, 0)
    out["Jet"] = (np.bincount(evt, minlength=n_ev), {
        "pt": rpt.astype(np.float32), "eta": reta.astype(np.float32), "phi": rphi.astype(np.float32),
        "mass": (rpt * rng.uniform(0.05, 0.2, n)).astype(np.float32), "jetId": jet_id.astype(np.int32),
        "area": rng.normal(0.5, 0.04, n).astype(np.float32), "nConstituents": ncons.astype(np.int32),
        "hadronFlavour": np.select([heavyb, heavyc], [5, 4], 0).astype(np.int32),
        "partonFlavour": np.where(is_["pu"], 0, gen["pdg"][:, 0]).astype(np.int32)})  # fmt: skip
    # -- secondary vertices and V0s -----------------------------------------------------------
    # a vertex carries the pT of its tracks: a heavy hadron's displaced ones (a fake vertex
    # in a light jet, a V0: two of the jet's first candidates), not a fixed share of the jet
    sv_trk = np.bincount(cj, weights=cons["pt"] * (k < np.maximum(ndisp, 2)[cj]) * (charge != 0), minlength=n)
    sv_pt = np.where(sv_trk > 0, sv_trk, 0.5 * rpt)  # (no charged candidate among them: rare)
    pair = np.bincount(cj, weights=cons["pt"] * ((k == 1) | (k == 2)), minlength=n)
    v0_pt = np.where(pair > 0, pair, 0.15 * rpt)
    has_sv = np.select([heavyb, heavyc], [rng.random(n) < 0.7, rng.random(n) < 0.4], rng.random(n) < 0.03) & ~is_["pu"]
    sv_m = np.select([heavyb, heavyc], [rng.uniform(1.0, 5.2, n), rng.uniform(0.5, 2.0, n)], rng.uniform(0.3, 1.2, n))
    sv_L = np.where(heavyb | heavyc, flight, rng.exponential(0.02, n)) + 0.005
    out["SV"] = _by_event(evt[has_sv], n_ev, _vertex(rng, sv_pt, reta, rphi, sv_m, sv_L, has_sv, np.where(heavyb, 4, 2)))
    for name, mass, p in (("KShort", 0.4976, 0.10), ("Lambda", 1.1157, 0.04)):
        has = (is_["uds"] | is_["g"]) & (rng.random(n) < p)
        out[name] = _by_event(evt[has], n_ev, _vertex(rng, v0_pt, reta, rphi, np.full(n, mass), rng.exponential(2.0, n), has, np.full(n, 2)))
    # -- lost tracks ----------------------------------------------------------------------
    nlt = rng.poisson(4, n_ev)
    le = np.repeat(np.arange(n_ev), nlt)
    ml = len(le)
    lpt = (0.5 + rng.exponential(1.5, ml)).astype(np.float32)
    leta, lphi = rng.uniform(-2.5, 2.5, ml), rng.uniform(-np.pi, np.pi, ml)
    ldxy, ldxyerr, ldz, ldzerr = _ip(rng, ev["pv_x"][le] + rng.normal(0, 0.05, ml), ev["pv_y"][le] + rng.normal(0, 0.05, ml), ev["pv_z"][le],
                                     ev["pv_x"][le], ev["pv_y"][le], ev["pv_z"][le], lphi, leta, lpt)  # fmt: skip
    q = rng.choice([-1, 1], ml)
    out["LostTrack"] = (nlt, {"pt": lpt, "eta": leta.astype(np.float32), "phi": lphi.astype(np.float32), "mass": np.full(ml, 0.1396, np.float32),
                              "charge": q.astype(np.int32), "pdgId": (211 * q).astype(np.int32), "dxy": ldxy, "dxyErr": ldxyerr, "dz": ldz,
                              "dzErr": ldzerr, "normChi2": rng.gamma(2, 1, ml).astype(np.float32), "nHits": rng.integers(3, 15, ml).astype(np.int32),
                              "nPixelHits": rng.integers(0, 4, ml).astype(np.int32), "lostInnerHits": rng.integers(-1, 3, ml).astype(np.int32),
                              "highPurity": (rng.random(ml) < 0.5).astype(np.int32), "fromPV": rng.integers(0, 4, ml).astype(np.int32)})  # fmt: skip
    # -- leptons and photons --------------------------------------------------------------
    for name, pid in (("Muon", 13), ("Electron", 11)):
        # prompt, from a leptonic tau (isolated both), or from a semileptonic B/C decay
        has = (lepjet | semi) & (np.abs(lep_pdg) == pid)
        h = np.flatnonzero(has)
        q = -np.sign(lep_pdg[h])  # the GEN lepton's charge
        # the same particle as the jet's first PF candidate (in CMS the PF muon or electron
        # is the reco one): its pT, direction and track, displaced in a semileptonic B/C
        # decay (it was a fixed share of the jet, from the primary vertex). The draws of the
        # earlier smearing are still made, so that a seed's other values stay as they were.
        c0 = first[h]
        rng.standard_normal(4 * len(h))
        lp, le_eta, le_phi = cons["pt"][c0], cons["eta"][c0], cons["phi"][c0]
        d = [cons[f][c0] for f in ("dxy", "dxyErr", "dz", "dzErr")]
        out[name] = _by_event(evt[h], n_ev, {
            "pt": lp.astype(np.float32), "eta": le_eta.astype(np.float32), "phi": le_phi.astype(np.float32),
            "mass": np.full(len(h), 0.1057 if pid == 13 else 0.000511, np.float32), "charge": q.astype(np.int32),
            "pdgId": (-pid * q).astype(np.int32), "dxy": d[0], "dxyErr": d[1], "dz": d[2], "dzErr": d[3],
            "iso": np.where(lepjet[h], rng.exponential(0.03, len(h)), rng.uniform(0.3, 2.0, len(h))).astype(np.float32),
            "tightId": lepjet[h].astype(np.int32)})  # fmt: skip
    has = (rng.random(n) < 0.2) & ~lepjet
    h = np.flatnonzero(has)
    out["Photon"] = _by_event(evt[h], n_ev, {"pt": (rpt[h] * rng.uniform(0.05, 0.3, len(h))).astype(np.float32),
                                             "eta": (reta[h] + rng.normal(0, 0.05, len(h))).astype(np.float32),
                                             "phi": _wrap(rphi[h] + rng.normal(0, 0.05, len(h))).astype(np.float32),
                                             "mass": np.zeros(len(h), np.float32), "pdgId": np.full(len(h), 22, np.int32),
                                             "iso": rng.uniform(0, 1, len(h)).astype(np.float32)})  # fmt: skip
    return out


def _vertex(rng, pt, eta, phi, mass, L, mask, ntr):
    """The vertices of the jets in ``mask``: ``pt`` (of its tracks), ``mass``, flight ``L``,
    ``ntr`` tracks per jet."""
    h = np.flatnonzero(mask)
    m = len(h)
    Lt = L[h] / np.cosh(eta[h])
    err = 0.002 + 0.01 * rng.random(m)
    return {"pt": pt[h].astype(np.float32), "eta": (eta[h] + rng.normal(0, 0.03, m)).astype(np.float32),
            "phi": _wrap(phi[h] + rng.normal(0, 0.03, m)).astype(np.float32), "mass": mass[h].astype(np.float32),
            "ntracks": (ntr[h] + rng.integers(0, 3, m)).astype(np.int32), "chi2": rng.gamma(2, 1, m).astype(np.float32),
            "ndof": rng.integers(1, 8, m).astype(np.float32), "dxy": Lt.astype(np.float32), "dxySig": (Lt / err).astype(np.float32),
            "dlen": L[h].astype(np.float32), "dlenSig": (L[h] / (err * 1.3)).astype(np.float32),
            "pAngle": np.abs(rng.normal(0, 0.02, m)).astype(np.float32)}  # fmt: skip
