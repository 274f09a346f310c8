"""Truth labels and truth kinematics from GEN (never from reco).

Each selected jet gets one fine category, in this priority (DESIGN.md):
``pu`` (no gen jet within ΔR) → prompt ``e``, ``mu`` from the hard process → prompt
hadronic ``tau`` by decay mode and charge → ``bb``/``b`` (≥2 / 1 B hadrons within ΔR) →
``cc``/``c`` → ``uds``/``g`` (nearest hard-process parton) → ``undef``.
``schemas/labels/*.yaml`` map fine categories to classes.

GEN conventions (NanoAOD): ``statusFlags`` bit 0 isPrompt, bit 8 fromHardProcess;
``genPartIdxMother`` indexes the same event's GenPart list (−1: none).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from jetlib.kernels.geometry import delta_phi

#: Numba caches a compiled function by its own file only: the hashes of the files whose
#: compiled functions this file's kernels call make an edit there an edit here, so that a
#: `git pull` that changes only those never runs a stale cached kernel (tests/test_numba_cache.py)
NUMBA_DEPENDS = {"jetlib/kernels/geometry.py": "sha256:fcc4f7ce2d3e996c"}

__all__ = ["FINE", "TAU_MODES", "TRUTH_TARGETS", "label_jets", "hadron_flavour"]

TAU_MODES = ("1h0p", "1h1p", "1h2p", "3h0p", "3h1p")
FINE = (
    ("b", "bb", "c", "cc", "uds", "g", "undef", "pu", "e", "mu")
    + tuple(f"taup_{m}" for m in TAU_MODES)
    + tuple(f"taum_{m}" for m in TAU_MODES)
)
_B, _BB, _C, _CC, _UDS, _G, _UNDEF, _PU, _E, _MU, _TAU0 = range(11)
TRUTH_TARGETS = ("gen_pt", "gen_eta", "gen_phi", "gen_mass", "gen_pt_with_nu")
#: statusFlags bits: isPrompt, and isPrompt with fromHardProcess
_IS_PROMPT, _PROMPT_HARD = 1, 1 | 1 << 8
_MAX_DEPTH = 64  # longest mother chain followed (guards against cycles in broken inputs)


@nb.njit(cache=True)
def hadron_flavour(pdg: int) -> int:
    """Heaviest quark flavour of a hadron's PDG code (5 for B, 4 for C), 0 otherwise."""
    a = abs(pdg)
    if a < 100 or a >= 10000:
        return 0
    q1 = (a // 1000) % 10
    q2 = (a // 100) % 10
    q3 = (a // 10) % 10
    if q1 == 0:  # meson: digits q2 q3
        return max(q2, q3)
    if q3 == 0:  # diquark, not a hadron
        return 0
    return max(q1, max(q2, q3))


@nb.njit(cache=True)
def _is_ancestor(mother, start, target, begin):
    """Does the mother chain from local index ``start`` reach local index ``target``?"""
    m = mother[begin + start]
    depth = 0
    while m >= 0 and depth < _MAX_DEPTH:
        if m == target:
            return True
        m = mother[begin + m]
        depth += 1
    return False


@nb.njit(cache=True)
def _nearest(begin, end, eta, phi, eta_j, phi_j, r2):
    """Index in [begin, end) of the object nearest to the jet axis within dR^2 < r2, or -1."""
    best = -1
    bestd = r2
    for i in range(begin, end):
        de = eta[i] - eta_j
        dp = delta_phi(phi[i], phi_j)
        d = de * de + dp * dp
        if d < bestd:
            bestd = d
            best = i
    return best


@nb.njit(cache=True)
def label_jets(
    sel_evt, jeta, jphi,
    goff, g_pt, g_eta, g_phi, g_mass, g_pdg, g_status, g_flags, g_mother,
    gjoff, gj_pt, gj_eta, gj_phi, gj_mass,
    has_nu, gnoff, gn_pt, gn_eta, gn_phi,
    radius, lep_min_pt, tau_min_vis_pt,
    out_fine, out_truth,
):  # fmt: skip
    """Fill ``out_fine`` (N,) with indices into :data:`FINE` and ``out_truth`` (N, 5) with
    :data:`TRUTH_TARGETS`. ``jeta``/``jphi`` are the selected jets' axes; jets must be
    grouped by event (``sel_evt`` non-decreasing)."""
    n = sel_evt.shape[0]
    r2 = radius * radius
    max_gen = 1
    for ev in range(goff.shape[0] - 1):
        max_gen = max(max_gen, goff[ev + 1] - goff[ev])
    hflav = np.zeros(max_gen, np.int64)  # 5/4 for the last B/C hadron in a chain, else 0
    tau_mode = np.full(max_gen, -1, np.int64)
    tau_vis = np.zeros((max_gen, 4), np.float64)  # px, py, pz, E of the visible decay products
    tau_nch = np.zeros(max_gen, np.int64)
    tau_npi0 = np.zeros(max_gen, np.int64)
    tau_lep = np.zeros(max_gen, np.bool_)
    last_ev = -1
    for j in range(n):
        ev = sel_evt[j]
        g0 = goff[ev]
        ng = goff[ev + 1] - g0
        if ev != last_ev:
            last_ev = ev
            # -- per-event GEN scratch: last heavy hadrons, hadronic taus --------------
            for i in range(ng):
                hflav[i] = hadron_flavour(g_pdg[g0 + i])
                tau_mode[i] = -1
                tau_nch[i] = 0
                tau_npi0[i] = 0
                tau_lep[i] = False
                for c in range(4):
                    tau_vis[i, c] = 0.0
            for i in range(ng):
                m = g_mother[g0 + i]
                if 0 <= m < ng:
                    fi = hadron_flavour(g_pdg[g0 + i])
                    if fi != 0 and fi == hadron_flavour(g_pdg[g0 + m]):
                        hflav[m] = 0  # not the last hadron of its flavour in the chain
                    if abs(g_pdg[g0 + i]) == 15 and abs(g_pdg[g0 + m]) == 15:
                        tau_mode[m] = -2  # not the last tau copy
            for t in range(ng):
                if abs(g_pdg[g0 + t]) != 15 or tau_mode[t] == -2:
                    continue
                # visible p4 = tau p4 − final-state neutrinos among its descendants
                pt = g_pt[g0 + t]
                px = pt * math.cos(g_phi[g0 + t])
                py = pt * math.sin(g_phi[g0 + t])
                pz = pt * math.sinh(g_eta[g0 + t])
                e = math.sqrt((pt * math.cosh(g_eta[g0 + t])) ** 2 + g_mass[g0 + t] ** 2)
                nch = 0
                npi0 = 0
                lep = False
                for i in range(ng):
                    if not _is_ancestor(g_mother, i, t, g0):
                        continue
                    a = abs(g_pdg[g0 + i])
                    st = g_status[g0 + i]
                    if a == 111:
                        npi0 += 1
                    elif st == 1 and (a == 211 or a == 321):
                        nch += 1
                    elif st == 1 and (a == 11 or a == 13):
                        lep = True
                    elif st == 1 and (a == 12 or a == 14 or a == 16):
                        qt = g_pt[g0 + i]
                        px -= qt * math.cos(g_phi[g0 + i])
                        py -= qt * math.sin(g_phi[g0 + i])
                        pz -= qt * math.sinh(g_eta[g0 + i])
                        e -= qt * math.cosh(g_eta[g0 + i])
                tau_lep[t] = lep
                tau_nch[t] = nch
                tau_npi0[t] = npi0
                mode = -1
                if not lep:
                    if nch == 1:
                        mode = 0 if npi0 == 0 else (1 if npi0 == 1 else 2)
                    elif nch == 3:
                        mode = 3 if npi0 == 0 else 4
                tau_mode[t] = mode
                tau_vis[t, 0] = px
                tau_vis[t, 1] = py
                tau_vis[t, 2] = pz
                tau_vis[t, 3] = e
        eta_j = jeta[j]
        phi_j = jphi[j]
        # -- truth kinematics: nearest gen jet ------------------------------------------
        best = _nearest(gjoff[ev], gjoff[ev + 1], gj_eta, gj_phi, eta_j, phi_j, r2)
        for c in range(5):
            out_truth[j, c] = 0.0
        if best < 0:
            out_fine[j] = _PU
            continue
        out_truth[j, 0] = gj_pt[best]
        out_truth[j, 1] = gj_eta[best]
        out_truth[j, 2] = gj_phi[best]
        out_truth[j, 3] = gj_mass[best]
        out_truth[j, 4] = gj_pt[best]
        if has_nu:
            bn = _nearest(gnoff[ev], gnoff[ev + 1], gn_eta, gn_phi, eta_j, phi_j, r2)
            if bn >= 0:
                out_truth[j, 4] = gn_pt[bn]
        # -- label ---------------------------------------------------------------------
        label = -1
        # prompt leptons from the hard process (DESIGN.md): isPrompt alone also passed an
        # electron that a tau's photon converted, and excludes only tau, hadron and muon
        # decay products
        bestd = r2
        for i in range(ng):
            a = abs(g_pdg[g0 + i])
            if ((a == 11 or a == 13) and g_status[g0 + i] == 1 and (g_flags[g0 + i] & _PROMPT_HARD) == _PROMPT_HARD
                    and g_pt[g0 + i] > lep_min_pt):  # fmt: skip
                de = g_eta[g0 + i] - eta_j
                dp = delta_phi(g_phi[g0 + i], phi_j)
                d = de * de + dp * dp
                if d < bestd:
                    bestd = d
                    label = _E if a == 11 else _MU
        if label < 0:
            bestd = r2
            for t in range(ng):
                # a prompt tau only: one from a B -> D_s -> tau chain leaves the jet to the b step
                if tau_mode[t] < 0 or not (g_flags[g0 + t] & _IS_PROMPT):
                    continue
                px = tau_vis[t, 0]
                py = tau_vis[t, 1]
                vpt = math.sqrt(px * px + py * py)
                if vpt <= tau_min_vis_pt:
                    continue
                veta = math.asinh(tau_vis[t, 2] / vpt)
                vphi = math.atan2(py, px)
                de = veta - eta_j
                dp = delta_phi(vphi, phi_j)
                d = de * de + dp * dp
                if d < bestd:
                    bestd = d
                    # tau- has pdgId +15
                    label = _TAU0 + (5 if g_pdg[g0 + t] > 0 else 0) + tau_mode[t]
        if label < 0:
            nb_ = 0
            nc_ = 0
            for i in range(ng):
                f = hflav[i]
                if f != 5 and f != 4:
                    continue
                de = g_eta[g0 + i] - eta_j
                dp = delta_phi(g_phi[g0 + i], phi_j)
                if de * de + dp * dp < r2:
                    if f == 5:
                        nb_ += 1
                    else:
                        nc_ += 1
            if nb_ >= 2:
                label = _BB
            elif nb_ == 1:
                label = _B
            elif nc_ >= 2:
                label = _CC
            elif nc_ == 1:
                label = _C
        if label < 0:
            bestd = r2
            bp = 0
            for i in range(ng):
                a = abs(g_pdg[g0 + i])
                if not ((1 <= a <= 5) or a == 21) or not (g_flags[g0 + i] & 256):
                    continue
                de = g_eta[g0 + i] - eta_j
                dp = delta_phi(g_phi[g0 + i], phi_j)
                d = de * de + dp * dp
                if d < bestd:
                    bestd = d
                    bp = a
            if 1 <= bp <= 3:
                label = _UDS
            elif bp == 21:
                label = _G
        out_fine[j] = label if label >= 0 else _UNDEF
