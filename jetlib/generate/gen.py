"""The GEN record of each truth jet, built from fixed slots (vectorised over all jets).

Slot layout per truth jet (a slot is kept or not, by jet type):
 0 parent: hard parton (status 23) or W/Z;  1 main object: B/C hadron, tau or prompt lepton;
 2 second hadron (bb, cc), C hadron from the B decay, or the tau neutrino;
 3-7 tau decay products (pi+-, pi0) or, for semileptonic heavy flavour, lepton + neutrino.
NanoAOD statusFlags: bit 0 isPrompt, 2-5 (direct, prompt) tau decay product, 7 isHardProcess,
8 fromHardProcess, 13 isLastCopy.
"""

from __future__ import annotations

import numpy as np

from jetlib.generate.jets import TAU_MODES, T

__all__ = ["gen_particles", "K"]

K = 8
PROMPT, HARD, FROM_HARD, LAST = 1, 1 << 7, 1 << 8, 1 << 13
#: a prompt tau's direct decay product: isTauDecayProduct (2), isPromptTauDecayProduct (3),
#: isDirectTauDecayProduct (4), isDirectPromptTauDecayProduct (5), as NanoAOD sets them
TAU_DIRECT = (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5)
B_HADRONS = np.array([511, 521, 531, 5122])
C_HADRONS = np.array([411, 421, 431, 4122])


def _hadrons(rng, table, n, quark_sign):
    """Hadrons drawn from ``table`` that hold a heavy quark of sign ``quark_sign`` (+1 the
    quark, -1 the antiquark): a B meson's positive code holds the anti-b (B+ = u b-bar), a b
    baryon's and a C hadron's the quark (Lambda_b = udb, D+ = c d-bar)."""
    pdg = rng.choice(table, n)
    return pdg * np.where(pdg // 100 == 5, -quark_sign, quark_sign)


def gen_particles(rng, j: dict) -> dict[str, np.ndarray]:
    """Fields (n_jets, K) of the GEN slots and ``keep`` (n_jets, K); ``mother`` is a slot
    number of the same jet (−1 none)."""
    n = len(j["type"])
    typ = j["type"]
    f = {k: np.zeros((n, K), dt) for k, dt in (("pdg", np.int32), ("status", np.int32), ("flags", np.int32),
                                                ("mother", np.int32), ("pt", np.float64), ("mass", np.float64))}  # fmt: skip
    keep = np.zeros((n, K), bool)
    f["mother"][:] = -1
    deta = rng.normal(0, 0.03, (n, K))
    dphi = rng.normal(0, 0.03, (n, K))
    pt = j["pt"][:, None] * np.ones((1, K))
    is_ = {t: typ == T[t] for t in T}
    quark = is_["b"] | is_["c"] | is_["uds"] | is_["g"] | is_["bb"] | is_["cc"]
    # slot 0: hard parton or boson
    parton = np.select([is_["b"], is_["c"], is_["uds"]], [5, 4, rng.choice([1, 2, 3], n)], 21)
    parton = np.where(parton == 21, 21, parton * rng.choice([-1, 1], n))  # quark or antiquark; a gluon is +21
    boson = np.where(is_["e"] & (rng.random(n) < 0.5), 24, 23)
    has0 = quark | is_["tau"] | is_["tau_lep"] | is_["e"] | is_["mu"]
    keep[:, 0] = has0
    f["pdg"][:, 0] = np.where(quark, parton, boson)
    f["status"][:, 0] = np.where(quark, 23, 62)
    f["flags"][:, 0] = HARD | FROM_HARD | LAST
    f["mass"][:, 0] = np.where(quark, 0.0, 91.19)
    pt[:, 0] = np.where(quark, j["pt"], j["pt"] * 1.5)
    deta[:, 0] = np.where(quark, deta[:, 0] * 2, rng.normal(0, 1.0, n))  # bosons point elsewhere
    # slot 1: main object
    heavyb = is_["b"] | is_["bb"]
    heavyc = is_["c"] | is_["cc"]
    qs = np.sign(parton)  # the heavy quark's (a gluon's pair: the first hadron's quark)
    hadron = np.where(heavyb, _hadrons(rng, B_HADRONS, n, qs), _hadrons(rng, C_HADRONS, n, qs))
    tau_pdg = -15 * j["charge"]  # tau- is +15
    lep_pdg = -np.where(is_["e"], 11, 13) * j["charge"]  # e- is +11
    keep[:, 1] = heavyb | heavyc | is_["tau"] | is_["tau_lep"] | is_["e"] | is_["mu"]
    f["pdg"][:, 1] = np.select([heavyb | heavyc, is_["tau"] | is_["tau_lep"]], [hadron, tau_pdg], lep_pdg)
    f["status"][:, 1] = np.where(heavyb | heavyc | is_["tau"] | is_["tau_lep"], 2, 1)
    f["flags"][:, 1] = np.where(heavyb | heavyc, LAST, PROMPT | FROM_HARD | LAST)
    f["mother"][:, 1] = 0
    f["mass"][:, 1] = np.select([heavyb, heavyc, is_["tau"] | is_["tau_lep"], is_["e"]], [5.28, 1.87, 1.777, 0.000511], 0.1057)
    pt[:, 1] = j["pt"] * np.select([heavyb | heavyc, is_["tau"] | is_["tau_lep"]], [0.7, 1.25], 1.0)
    # slot 2: second hadron (bb, cc: from the gluon), C from B, or the tau neutrino
    keep[:, 2] = is_["bb"] | is_["cc"] | is_["b"] | is_["tau"] | is_["tau_lep"]
    # the pair's other hadron holds the antiquark; a B's C hadron holds its c (b -> c)
    second = np.where(is_["bb"], _hadrons(rng, B_HADRONS, n, -qs), _hadrons(rng, C_HADRONS, n, np.where(is_["b"], qs, -qs)))
    f["pdg"][:, 2] = np.select([is_["tau"] | is_["tau_lep"]], [np.sign(tau_pdg) * 16], second)
    f["status"][:, 2] = np.where(is_["tau"] | is_["tau_lep"], 1, 2)
    f["flags"][:, 2] = np.where(is_["tau"] | is_["tau_lep"], TAU_DIRECT | LAST, LAST)
    f["mother"][:, 2] = np.where(is_["bb"] | is_["cc"], 0, 1)
    f["mass"][:, 2] = np.select([is_["bb"], is_["cc"] | is_["b"]], [5.28, 1.87], 0.0)
    pt[:, 2] = j["pt"] * np.select([is_["tau"] | is_["tau_lep"]], [0.25], 0.35)
    deta[:, 2] = np.where(is_["bb"] | is_["cc"], rng.normal(0, 0.12, n), deta[:, 2])  # g -> QQ: two close hadrons
    # slots 3-7: tau decay products
    nch = np.array([m[0] for m in TAU_MODES])[j["tau_mode"]]
    npi0 = np.array([m[1] for m in TAU_MODES])[j["tau_mode"]]
    for s in range(3, 8):
        k = s - 3
        ch = is_["tau"] & (k < nch)
        pi0 = is_["tau"] & (k >= nch) & (k < nch + npi0)
        charge = np.where(k == 1, -j["charge"], j["charge"])
        keep[:, s] |= ch | pi0
        f["pdg"][:, s] = np.where(ch, 211 * charge, 111)
        f["status"][:, s] = np.where(ch, 1, 2)
        f["flags"][:, s] = TAU_DIRECT | LAST
        f["mother"][:, s] = 1
        f["mass"][:, s] = np.where(ch, 0.1396, 0.135)
        pt[:, s] = j["pt"] / np.maximum(nch + npi0, 1)
    # leptonic tau: lepton + neutrino; semileptonic B/C: lepton + neutrino from the hadron
    lep_tau = is_["tau_lep"]
    semi = j["semilep"] & (heavyb | heavyc)
    flav = np.where(rng.random(n) < 0.5, 11, 13)
    # the charged lepton has the sign of the tau (tau- -> l- nu-bar nu), of a b quark (b -> c l-
    # nu-bar) and the opposite of a c quark (c -> s l+ nu); its neutrino the opposite sign
    lsign = np.where(lep_tau, np.sign(tau_pdg), np.where(heavyb, qs, -qs))
    for s, pdg in ((3, flav), (4, flav + 1)):
        m = lep_tau | semi
        keep[:, s] |= m
        f["pdg"][:, s] = np.where(m, pdg * np.where(s == 3, lsign, -lsign), f["pdg"][:, s])
        f["status"][:, s] = np.where(m, 1, f["status"][:, s])
        f["flags"][:, s] = np.where(m, np.where(lep_tau, TAU_DIRECT | LAST, LAST), f["flags"][:, s])
        f["mother"][:, s] = np.where(m, 1, f["mother"][:, s])
        f["mass"][:, s] = np.where(m & (s == 3), np.where(flav == 11, 0.000511, 0.1057), np.where(m, 0.0, f["mass"][:, s]))
        # leptonic tau: the lepton carries the visible jet (its reco lepton 0.95 of the jet,
        # reco.py); the two neutrinos the rest of the tau's 1.25 (0.25 + 0.05); B/C: 0.12 each
        share = np.where(lep_tau, 0.95 if s == 3 else 0.05, 0.12)
        pt[:, s] = np.where(m, j["pt"] * share, pt[:, s])
    f["pt"] = pt
    f["eta"] = j["eta"][:, None] + deta
    f["phi"] = (j["phi"][:, None] + dphi + np.pi) % (2 * np.pi) - np.pi
    f["keep"] = keep
    return f
