"""Truth jets of each process: type, kinematics, and how many per event.

Jet types (what the truth labeller should find): b, bb, c, cc, uds, g, undef (a gen jet with
no hard parton), tau (hadronic, by mode and charge), tau_lep (leptonic tau), e, mu (prompt
leptons), pu (a reco jet with no gen jet).
"""

from __future__ import annotations

import numpy as np

__all__ = ["TYPES", "PROCESSES", "TAU_MODES", "truth_jets"]

TYPES = ("b", "bb", "c", "cc", "uds", "g", "undef", "tau", "tau_lep", "e", "mu", "pu")
T = {t: i for i, t in enumerate(TYPES)}
PROCESSES = ("ttbar", "qcd", "ztautau", "zmumu")
# hadronic tau modes (charged, pi0) and their relative rates
TAU_MODES = ((1, 0), (1, 1), (1, 2), (3, 0), (3, 1))
TAU_MODE_P = np.array([0.17, 0.38, 0.14, 0.14, 0.07]) / 0.90


def _pt(rng, n, pt0, index, top=1000.0):
    """Falling spectrum: a power law from ``pt0`` to ``top`` GeV, drawn from the truncated law
    (a cap at 900-1000 GeV piled the tail up there: 231 jets per 100 GeV against 78 below)."""
    u_min = (top / pt0) ** (-index)
    return pt0 * (u_min + (1.0 - u_min) * rng.random(n)) ** (-1.0 / index)


def _qcd_types(rng, n):
    return rng.choice([T["g"], T["uds"], T["c"], T["b"], T["bb"], T["cc"]], n, p=[0.52, 0.30, 0.06, 0.05, 0.04, 0.03])


def truth_jets(rng, process: np.ndarray) -> dict[str, np.ndarray]:
    """Truth jets of a batch of events (``process``: process index per event), grouped by event."""
    evt, typ, pt, charge = [], [], [], []
    n_ev = len(process)
    for p, name in enumerate(PROCESSES):
        ev = np.flatnonzero(process == p)
        k = len(ev)
        if not k:
            continue
        # the charge of a jet's tau or prompt lepton; the two of one boson (Z, or the W+ W- of a
        # dileptonic ttbar) have opposite charges, so that opposite-sign presets find them
        q = rng.choice([-1, 1], k)
        qs = [q, -q]
        if name == "ttbar":
            r = rng.random(k)
            dilep, lep = r < 0.10, r < 0.55  # W+ W- -> l nu l nu (ee, mumu, emu), or l nu + jets
            third = np.where(lep, np.where(rng.random(k) < 0.5, T["e"], T["mu"]), np.where(rng.random(k) < 0.3, T["c"], T["uds"]))
            other = np.where(rng.random(k) < 0.5, np.where(third == T["e"], T["mu"], T["e"]), third)  # e-mu in half
            kinds = [np.full(k, T["b"]), np.full(k, T["b"]), third, np.where(dilep, other, np.where(lep, -1, T["uds"]))]
            pts = [_pt(rng, k, 30, 2.2) for _ in range(4)]
            qs = [q, -q, q, -q]
        elif name == "qcd":
            kinds = [_qcd_types(rng, k), _qcd_types(rng, k), np.where(rng.random(k) < 0.5, _qcd_types(rng, k), -1)]
            lead = _pt(rng, k, 25, 2.0)
            pts = [lead, lead * rng.uniform(0.6, 1.0, k), _pt(rng, k, 15, 2.5)]
        elif name == "ztautau":
            kinds = [np.where(rng.random(k) < 0.65, T["tau"], T["tau_lep"]) for _ in range(2)]
            pts = [_pt(rng, k, 20, 3.0) for _ in range(2)]
        else:  # zmumu
            kinds = [np.full(k, T["mu"]), np.full(k, T["mu"])]
            pts = [_pt(rng, k, 25, 3.0) for _ in range(2)]
        # initial-state radiation: a gluon jet, or a gen jet with no hard parton (undef)
        kinds.append(np.where(rng.random(k) < 0.4, np.where(rng.random(k) < 0.5, T["g"], T["undef"]), -1))
        pts.append(_pt(rng, k, 15, 2.8))
        qs = (qs + [rng.choice([-1, 1], k) for _ in kinds])[: len(kinds)]
        for kk, pp, qq in zip(kinds, pts, qs):
            keep = kk >= 0
            evt.append(ev[keep])
            typ.append(kk[keep])
            pt.append(pp[keep])
            charge.append(qq[keep])
    # pileup jets: reco jets with no gen jet
    npu = rng.poisson(0.5, n_ev)
    evt.append(np.repeat(np.arange(n_ev), npu))
    typ.append(np.full(npu.sum(), T["pu"]))
    pt.append(_pt(rng, int(npu.sum()), 15, 4.0))
    charge.append(rng.choice([-1, 1], int(npu.sum())))
    evt_a, typ_a, pt_a, q_a = np.concatenate(evt), np.concatenate(typ), np.concatenate(pt), np.concatenate(charge)
    order = np.argsort(evt_a, kind="stable")
    evt_a, typ_a, pt_a, q_a = evt_a[order], typ_a[order], pt_a[order], q_a[order]
    n = len(evt_a)
    eta = np.clip(rng.normal(0, 1.6, n), -4.6, 4.6)
    phi = rng.uniform(-np.pi, np.pi, n)
    tau_mode = rng.choice(len(TAU_MODES), n, p=TAU_MODE_P)
    return {"evt": evt_a, "type": typ_a, "pt": pt_a, "eta": eta, "phi": phi, "tau_mode": tau_mode,
            "charge": q_a, "semilep": rng.random(n) < 0.2}  # fmt: skip
