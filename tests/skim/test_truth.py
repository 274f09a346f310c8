"""Hand-built GEN events: one per truth class, checked against the expected label."""

from __future__ import annotations


import numpy as np
import pytest

from jetlib.config.skim import load_label_scheme
from jetlib.kernels.truth import FINE, TRUTH_TARGETS, hadron_flavour, label_jets

PROMPT, HARD, FROM_HARD, LAST = 1, 1 << 7, 1 << 8, 1 << 13
JET = (0.5, 1.0)  # eta, phi of the reco jet


def P(pdg, pt=20.0, eta=0.5, phi=1.0, mass=0.0, status=1, flags=0, mother=-1):
    return dict(pdg=pdg, pt=pt, eta=eta, phi=phi, mass=mass, status=status, flags=flags, mother=mother)


def label_of(particles, *, genjet=True, genjet_nu_pt=None, jet=JET):
    g = {k: np.array([p[k] for p in particles], dtype=np.float32 if k in ("pt", "eta", "phi", "mass") else np.int64)
         for k in ("pdg", "pt", "eta", "phi", "mass", "status", "flags", "mother")}  # fmt: skip
    goff = np.array([0, len(particles)], np.int64)
    gj = [(40.0, jet[0] + 0.05, jet[1] - 0.05, 5.0)] if genjet else []
    gjoff = np.array([0, len(gj)], np.int64)
    gja = np.array(gj, np.float32).reshape(-1, 4)
    nu = [(genjet_nu_pt, jet[0], jet[1])] if genjet_nu_pt else []
    gna = np.array(nu, np.float32).reshape(-1, 3)
    fine = np.zeros(1, np.int32)
    truth = np.zeros((1, len(TRUTH_TARGETS)), np.float32)
    label_jets(np.array([0]), np.array([jet[0]]), np.array([jet[1]]),
               goff, g["pt"], g["eta"], g["phi"], g["mass"], g["pdg"], g["status"], g["flags"], g["mother"],
               gjoff, gja[:, 0].copy(), gja[:, 1].copy(), gja[:, 2].copy(), gja[:, 3].copy(),
               True, np.array([0, len(nu)], np.int64), gna[:, 0].copy(), gna[:, 1].copy(), gna[:, 2].copy(),
               0.4, 5.0, 5.0, fine, truth)  # fmt: skip
    return FINE[fine[0]], truth[0]


def quark(pdg, **kw):
    return P(pdg, status=23, flags=HARD | FROM_HARD | LAST, **kw)


def tau_event(pdg, n_ch, n_pi0, leptonic=False):
    parts = [P(23, pt=50, eta=0.0, phi=0.0, mass=91, status=62), P(pdg, pt=40, status=2, flags=PROMPT | FROM_HARD | LAST, mother=0)]
    charge = -1 if pdg > 0 else 1
    parts.append(P(16 if pdg > 0 else -16, pt=5, mother=1))
    if leptonic:
        parts += [P(13 * (1 if pdg > 0 else -1), pt=20, mother=1), P(-14, pt=5, mother=1)]
        return parts
    signs = [charge] * ((n_ch + 1) // 2) + [-charge] * (n_ch // 2)
    parts += [P(211 * s, pt=10, mother=1) for s in signs]
    parts += [P(111, pt=8, status=2, mother=1) for _ in range(n_pi0)]
    parts += [P(22, pt=4, mother=len(parts) - 1)] if n_pi0 else []  # a photon from the last pi0
    return parts


CASES = {
    "pu": ([quark(21)], False),
    "e": ([P(24, status=62), P(11, pt=30, flags=PROMPT | FROM_HARD | LAST, mother=0), quark(1)], True),
    "mu": ([P(23, status=62), P(-13, pt=30, flags=PROMPT | FROM_HARD | LAST, mother=0)], True),
    "taup_1h0p": (tau_event(-15, 1, 0), True),
    "taup_1h1p": (tau_event(-15, 1, 1), True),
    "taum_1h2p": (tau_event(15, 1, 2), True),
    "taum_3h0p": (tau_event(15, 3, 0), True),
    "taup_3h1p": (tau_event(-15, 3, 1), True),
    # B* -> B -> D: one B hadron (the last of the chain), its D does not make it c
    "b": ([quark(5), P(513, status=2, mother=0), P(511, status=2, mother=1), P(-411, status=2, mother=2),
           P(13, pt=6, mother=2)], True),  # non-prompt muon from the B: not "mu"  # fmt: skip
    "bb": ([quark(21), P(521, status=2, mother=0), P(-5122, status=2, eta=0.6, mother=0)], True),
    "c": ([quark(4), P(421, status=2, mother=0)], True),
    "cc": ([quark(21), P(421, status=2, mother=0), P(-431, status=2, phi=1.1, mother=0)], True),
    "uds": ([quark(3), quark(21, eta=1.2)], True),  # nearest parton is the s quark
    "g": ([quark(21, eta=0.45), quark(2, eta=0.8)], True),
    "undef": ([quark(21, eta=2.0)], True),  # a gen jet, but nothing of GEN within dR 0.4
}


@pytest.mark.parametrize("expected", list(CASES))
def test_each_class_by_hand(expected):
    parts, genjet = CASES[expected]
    assert label_of(parts, genjet=genjet)[0] == expected


def test_a_tau_from_a_b_hadron_decay_leaves_a_b_jet():
    """B_s -> D_s -> tau -> 3 pions: the tau is not prompt (statusFlags without isPrompt), so
    the jet is the B hadron's (seen in the CMS open-data NanoAOD, labelled taup_3h0p before)."""
    parts = [quark(5), P(-531, status=2, mother=0), P(-431, status=2, mother=1)]
    tau = [P(-15, pt=15, status=2, flags=LAST, mother=2), P(-16, pt=2, mother=3)]
    pions = [P(211, pt=4, mother=3), P(211, pt=4, mother=3), P(-211, pt=4, mother=3)]
    assert label_of(parts + tau + pions)[0] == "b"
    prompt = [dict(p, flags=PROMPT | LAST) if p["pdg"] == -15 else p for p in tau]
    assert label_of(parts + prompt + pions)[0] == "taup_3h0p"  # the same tau, prompt: a tau jet


def test_a_prompt_lepton_not_from_the_hard_process_is_not_a_lepton_jet():
    """DESIGN.md's e/mu come from the hard process: an isPrompt electron without
    fromHardProcess (a photon's conversion in the shower) does not make an e jet."""
    assert label_of([P(11, pt=12, flags=PROMPT | LAST), quark(1, eta=0.55)])[0] == "uds"
    assert label_of([P(11, pt=12, flags=PROMPT | FROM_HARD | LAST), quark(1, eta=0.55)])[0] == "e"


def test_leptonic_tau_is_not_a_tau_jet():
    assert label_of(tau_event(15, 0, 0, leptonic=True) + [quark(1, eta=0.55)])[0] == "uds"


def test_far_objects_do_not_match():
    far = dict(eta=JET[0] + 0.5)
    assert label_of([quark(5), P(511, status=2, mother=0, **far)])[0] == "undef"
    assert label_of([P(11, pt=30, flags=PROMPT | FROM_HARD, **far)])[0] == "undef"
    assert label_of([P(11, pt=3, flags=PROMPT | FROM_HARD)])[0] == "undef"  # below prompt_lepton_min_pt


def test_truth_kinematics():
    fine, truth = label_of([quark(1)], genjet_nu_pt=44.0)
    assert fine == "uds"
    np.testing.assert_allclose(truth, [40.0, JET[0] + 0.05, JET[1] - 0.05, 5.0, 44.0], rtol=1e-6)
    _, truth = label_of([quark(1)], genjet=False)
    assert (truth == 0).all()


@pytest.mark.parametrize(
    ("pdg", "flav"),
    [(511, 5), (-521, 5), (5122, 5), (553, 5), (541, 5), (421, 4), (-4122, 4), (443, 4), (211, 2), (2212, 2), (321, 3), (5101, 0), (21, 0), (15, 0)],
)
def test_hadron_flavour(pdg, flav):
    assert hadron_flavour(pdg) == flav


def test_label_schemes_cover_every_category():
    for name in ("default", "merged"):
        s = load_label_scheme(name)
        assert len(s.fine_to_class) == len(FINE) and min(s.fine_to_class) >= 0
    merged = load_label_scheme("merged")
    assert merged.classes[merged.fine_to_class[FINE.index("bb")]] == "b"
    assert merged.classes[merged.fine_to_class[FINE.index("taum_3h1p")]] == "tau3p"


def _tau(*decay):
    """A Z, a prompt tau- of pT 40 and its decay products ``decay`` (P dicts, mother set)."""
    return [P(23, pt=50, eta=0.0, phi=0.0, mass=91, status=62), P(15, pt=40, status=2, flags=PROMPT | FROM_HARD | LAST, mother=0),
            *({**d, "mother": 1} for d in decay)]  # fmt: skip


@pytest.mark.parametrize("particles, expected", [
    # DESIGN.md's priority: a hard-process muon and a hadronic tau within the jet -> mu
    (tau_event(15, 1, 0) + [P(13, pt=30, eta=0.52, flags=PROMPT | FROM_HARD | LAST)], "mu"),
    # the nearest hard parton is a b without a B hadron: not labelled by the farther gluon
    ([quark(5, eta=0.5), quark(21, eta=0.8)], "undef"),
    # tau- -> K- nu: a charged kaon is a prong
    (_tau(P(16, pt=5), P(-321, pt=35)), "taum_1h0p"),
    # visible pT = tau - nu_tau = 3 GeV < tau_min_visible_pt (5): not a tau jet
    (_tau(P(16, pt=37), P(-211, pt=3)) + [quark(1, eta=0.55)], "uds"),
    # five prongs are no tau decay mode
    (_tau(P(16, pt=5), *(P(211 * s, pt=7) for s in (-1, -1, -1, 1, 1))) + [quark(1, eta=0.55)], "uds"),
    # a prompt electron copy before FSR (status 23) is no final-state lepton
    ([P(11, pt=30, status=23, flags=PROMPT | FROM_HARD), quark(1, eta=0.55)], "uds"),
], ids=["lepton_before_tau", "b_parton_without_hadron", "tau_to_kaon", "tau_soft_visible", "five_prongs", "lepton_status_23"])  # fmt: skip
def test_label_rules_by_hand(particles, expected):
    assert label_of(particles)[0] == expected


def test_truth_takes_the_nearest_gen_jet_not_the_last_in_the_radius():
    g = {k: np.array([v], dtype=np.float32 if k in ("pt", "eta", "phi", "mass") else np.int64) for k, v in quark(1).items()}
    # three GEN jets within 0.4, listed far first: dR 0.30, 0.05, 0.35
    gj = np.array([(30.0, JET[0] + 0.3, JET[1], 3.0), (50.0, JET[0] + 0.05, JET[1], 5.0), (70.0, JET[0] - 0.35, JET[1], 7.0)], np.float32)
    fine, truth = np.zeros(1, np.int32), np.zeros((1, len(TRUTH_TARGETS)), np.float32)
    empty = np.zeros(0, np.float32)
    label_jets(np.array([0]), np.array([JET[0]]), np.array([JET[1]]), np.array([0, 1]), g["pt"], g["eta"], g["phi"], g["mass"],
               g["pdg"], g["status"], g["flags"], g["mother"], np.array([0, 3]), *(gj[:, i].copy() for i in range(4)),
               False, np.array([0, 0]), empty, empty, empty, 0.4, 5.0, 5.0, fine, truth)  # fmt: skip
    assert truth[0, 0] == 50.0 and truth[0, 3] == 5.0
