"""Node blocks: associate PF candidates / SVs / tracks / leptons with each selected jet,
compute their features relative to the jet axis, sort, truncate and pad.

One pass per block over the selected jets, with outputs allocated by the caller
(``out_feat`` (N, F, L), ``out_mask`` (N, 1, L), ``out_count`` (N,)).

Nodes are given as a packed matrix ``X`` (n_nodes, R) whose first columns are the
roles in :data:`ROLES` (zero where a collection lacks them), followed by the block's other
raw fields. Features are read from a per-jet "bank" (entry × slot): the derived quantities
in :data:`DERIVED` followed by the columns of ``X``; the skim config picks bank entries by
name. The kernel writes every value of the output rows, padding included, so the caller
need not zero them.
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

__all__ = ["DERIVED", "ROLES", "MAX_KINDS", "fill_block", "bank_index"]

ROLES = ("pt", "eta", "phi", "mass", "charge", "pdgId", "dxy", "dxyErr", "dz", "dzErr")
MAX_KINDS = 4
DERIVED = (
    "energy", "log_pt", "log_e", "pt_rel", "e_rel", "log_pt_rel", "log_e_rel",
    "deta", "etarel", "dphi", "dr", "abs_eta", "dxy_sig", "dz_sig",
    "sip2d_val", "sip2d_sig", "sip3d_val", "sip3d_sig", "pt_perp_ratio", "ppar_ratio",
    "is_electron", "is_muon", "is_photon", "is_ch_hadron", "is_neu_hadron",
) + tuple(f"kind{i}" for i in range(MAX_KINDS))  # fmt: skip
N_DERIVED = len(DERIVED)
#: bank positions of the derived quantities; X's columns follow (see _node_banks)
N_BANK_DERIVED = 29


def bank_index(name: str, raw_columns: list[str], collections: list[str]) -> int:
    """Position of feature ``name`` in the node bank, or -1 if unknown."""
    if name.startswith("is_") and name[3:] in collections:
        return DERIVED.index(f"kind{collections.index(name[3:])}")
    if name in DERIVED and not name.startswith("kind"):
        return DERIVED.index(name)
    if name in raw_columns:
        return N_DERIVED + raw_columns.index(name)
    return -1


@nb.njit(cache=True)
def _sign(x: float) -> float:
    return 1.0 if x >= 0.0 else -1.0


@nb.njit(cache=True)
def _jet_consts(pt, eta, phi, mass):
    """The jet quantities that every node of the jet uses, computed once per jet: pT, eta,
    phi, E, px, py, pz, |p|, log pT, log E, sin phi, cos phi, sinh eta."""
    sinh_eta = math.sinh(eta)
    pz = pt * sinh_eta
    e = math.sqrt((pt * math.cosh(eta)) ** 2 + mass * mass)
    px = pt * math.cos(phi)
    py = pt * math.sin(phi)
    p = math.sqrt(px**2 + py**2 + pz * pz)
    log_pt = math.log(pt) if pt > 0 else np.nan
    log_e = math.log(e) if e > 0 else np.nan
    return (pt, eta, phi, e, px, py, pz, p, log_pt, log_e, math.sin(phi), math.cos(phi), sinh_eta)


#: scratch rows of the bank after its entries (see _node_banks)
_EX, _COS, _SIN, _PZ, _P = range(5)
N_SCRATCH = 5


@nb.njit(cache=True, error_model="numpy")
def _node_banks(X, kind, rows, nk, jet, bank):
    """Fill ``bank[b, s]`` with bank entry ``b`` of node ``rows[s]`` (a row of ``X``),
    relative to the jet (``jet``: the tuple of :func:`_jet_consts`), for the ``nk``
    slots; rows past the bank's entries are scratch (``_EX``...).

    One loop per quantity over the slots, so that LLVM runs the arithmetic on SIMD lanes;
    the calls to exp, log, cos and sin (scalar: Numba has no vector math library here) get
    loops of their own. Jet terms are computed once per jet and log ratios are differences
    of logs."""
    ncol = X.shape[1]
    scratch = bank.shape[0] - N_SCRATCH
    for s in range(nk):
        r = rows[s]
        for c in range(ncol):
            bank[N_BANK_DERIVED + c, s] = X[r, c]
    pt = bank[N_BANK_DERIVED + 0]
    eta = bank[N_BANK_DERIVED + 1]
    phi = bank[N_BANK_DERIVED + 2]
    m = bank[N_BANK_DERIVED + 3]
    q = bank[N_BANK_DERIVED + 4]
    pdg = bank[N_BANK_DERIVED + 5]
    dxy = bank[N_BANK_DERIVED + 6]
    dxyerr = bank[N_BANK_DERIVED + 7]
    dz = bank[N_BANK_DERIVED + 8]
    dzerr = bank[N_BANK_DERIVED + 9]
    ex = bank[scratch + _EX]
    cphi = bank[scratch + _COS]
    sphi = bank[scratch + _SIN]
    pz = bank[scratch + _PZ]
    p = bank[scratch + _P]
    e = bank[0]
    log_pt = bank[1]
    log_e = bank[2]
    for s in range(nk):
        # sinh and cosh from one exp, in double precision (no cancellation near eta = 0):
        # libm's float32 sinhf and coshf cost 33 and 14 ns a call here, an exp 5.5 ns
        ex[s] = math.exp(eta[s])
        cphi[s] = math.cos(phi[s])
        sphi[s] = math.sin(phi[s])
        log_pt[s] = math.log(pt[s]) if pt[s] > 0 else np.nan
    for s in range(nk):
        iex = 1.0 / ex[s]
        pz[s] = pt[s] * (0.5 * (ex[s] - iex))
        p[s] = pt[s] * (0.5 * (ex[s] + iex))
        e[s] = math.sqrt(p[s] * p[s] + m[s] * m[s])
    for s in range(nk):
        log_e[s] = math.log(e[s]) if e[s] > 0 else np.nan
    jpt, jeta, jphi, je, jpx, jpy, jpz, jp, jlogpt, jloge, jsinphi, jcosphi, jsinheta = jet
    sgn_jeta = _sign(jeta)
    for s in range(nk):
        bank[3, s] = pt[s] / jpt
        bank[4, s] = e[s] / je
        bank[5, s] = log_pt[s] - jlogpt
        bank[6, s] = log_e[s] - jloge
        deta = eta[s] - jeta
        dphi = delta_phi(phi[s], jphi)
        bank[7, s] = deta
        bank[8, s] = deta * sgn_jeta
        bank[9, s] = dphi
        bank[10, s] = math.sqrt(deta * deta + dphi * dphi)
        bank[11, s] = abs(eta[s])
    for s in range(nk):
        bank[12, s] = dxy[s] / dxyerr[s] if dxyerr[s] > 0 else 0.0
        bank[13, s] = dz[s] / dzerr[s] if dzerr[s] > 0 else 0.0
        # lifetime sign: the track's point of closest approach, dxy * (-sin phi, cos phi) in the
        # transverse plane and dz along z, projected on the jet direction (cos, sin, sinh eta);
        # sin(jphi - phi) expanded to reuse the sines and cosines
        proj2 = dxy[s] * (jsinphi * cphi[s] - jcosphi * sphi[s])
        sip2 = abs(dxy[s]) * _sign(proj2)
        bank[14, s] = sip2
        bank[15, s] = sip2 / dxyerr[s] if dxyerr[s] > 0 else 0.0
        ip3 = math.sqrt(dxy[s] * dxy[s] + dz[s] * dz[s])
        sip3 = ip3 * _sign(proj2 + dz[s] * jsinheta)
        bank[16, s] = sip3
        err3 = math.sqrt((dxy[s] * dxyerr[s]) ** 2 + (dz[s] * dzerr[s]) ** 2) / ip3
        bank[17, s] = sip3 / err3 if ip3 > 0 and err3 > 0 else 0.0
    for s in range(nk):
        px = pt[s] * cphi[s]
        py = pt[s] * sphi[s]
        ppar = (px * jpx + py * jpy + pz[s] * jpz) / jp
        # |p x j| / |j| rather than sqrt(p^2 - ppar^2), which cancels for nodes near the axis
        cx = py * jpz - pz[s] * jpy
        cy = pz[s] * jpx - px * jpz
        cz = px * jpy - py * jpx
        bank[18, s] = math.sqrt(cx * cx + cy * cy + cz * cz) / (jp * p[s]) if p[s] > 0 else 0.0
        bank[19, s] = ppar / p[s] if p[s] > 0 else 0.0  # cos of the angle to the jet axis (CMS's trackPParRatio)
    for s in range(nk):
        pid = abs(pdg[s])
        bank[20, s] = 1.0 if pid == 11 else 0.0
        bank[21, s] = 1.0 if pid == 13 else 0.0
        bank[22, s] = 1.0 if pid == 22 else 0.0
        had = pid != 0 and pid != 11 and pid != 13 and pid != 22
        bank[23, s] = 1.0 if (had and q[s] != 0) else 0.0
        bank[24, s] = 1.0 if (had and q[s] == 0) else 0.0
    for s in range(nk):
        k = kind[rows[s]]
        for i in range(4):
            bank[25 + i, s] = 1.0 if k == i else 0.0


#: up to this many candidates a jet's nodes are sorted by insertion, in place (NumPy's merge
#: sort allocates its result for every jet: the PF block took 80 against 73 ms); more go to
#: the merge sort, as insertion grows with the square
_INSERTION_MAX = 64


@nb.njit(cache=True)
def _argsort_stable(keys, n, order):
    """``order[:n]``: the indices that sort ``keys[:n]`` ascending, ties in index order."""
    if n > _INSERTION_MAX:
        order[:n] = np.argsort(keys[:n], kind="mergesort")
        return
    for i in range(n):
        k = keys[i]
        j = i
        while j > 0 and keys[order[j - 1]] > k:
            order[j] = order[j - 1]
            j -= 1
        order[j] = i


@nb.njit(cache=True, error_model="numpy")
def fill_block(
    sel_evt, sel_local, joff, jpt, jeta, jphi, jmass,
    noff, X, kind, use_link, radius, loff, ljet, lcand,
    min_pt, sort_idx, feat_idx, wrap,
    out_feat, out_mask, out_count,
):  # fmt: skip
    """Fill one node block for every selected jet; returns (non-finite values, bad links).

    ``sel_evt``/``sel_local``: event index and index within the event of each selected jet.
    ``use_link``: associate through the link table (``loff``, ``ljet``, ``lcand``, per event)
    instead of ΔR < ``radius`` to the jet axis. Non-finite feature values are written as 0
    and counted.
    """
    n_sel = sel_evt.shape[0]
    n_feat = feat_idx.shape[0]
    length = out_feat.shape[2]
    n_bank = N_BANK_DERIVED + X.shape[1]
    # scratch for one jet's candidates: a link table may list a node twice, so a jet can
    # have more candidates than its event has nodes
    max_nodes = 0
    for ev in range(noff.shape[0] - 1):
        max_nodes = max(max_nodes, noff[ev + 1] - noff[ev])
        if use_link:
            max_nodes = max(max_nodes, loff[ev + 1] - loff[ev])
    cand = np.empty(max(max_nodes, 1), np.int64)
    keys = np.empty(max(max_nodes, 1), np.float64)
    bank = np.empty((n_bank + N_SCRATCH, max(max_nodes, 1)), np.float64)
    order_rows = np.empty(max(max_nodes, 1), np.int64)
    order = np.empty(max(max_nodes, 1), np.int64)
    r2max = radius * radius
    nonfinite = 0
    bad_links = 0
    for j in range(n_sel):
        ev = sel_evt[j]
        gj = joff[ev] + sel_local[j]
        eta_j = jeta[gj]
        phi_j = jphi[gj]
        jet = _jet_consts(jpt[gj], eta_j, phi_j, jmass[gj])
        n0 = noff[ev]
        nn = noff[ev + 1] - n0
        # 1. candidate nodes of this jet
        nc = 0
        if use_link:
            for li in range(loff[ev], loff[ev + 1]):
                if ljet[li] != sel_local[j]:
                    continue
                c = lcand[li]
                if c < 0:  # 'no candidate' (README's schema section), not a bad link
                    continue
                if c >= nn:  # (process._check_links fails such a task before the kernel runs)
                    bad_links += 1
                    continue
                if X[n0 + c, 0] >= min_pt:
                    cand[nc] = n0 + c
                    nc += 1
                elif not math.isfinite(X[n0 + c, 0]):
                    nonfinite += 1  # a node without a valid pT is dropped, and counted
        else:
            for c in range(n0, n0 + nn):
                de = X[c, 1] - eta_j
                dp = delta_phi(X[c, 2], phi_j)
                if de * de + dp * dp < r2max:
                    if X[c, 0] >= min_pt:
                        cand[nc] = c
                        nc += 1
                    elif not math.isfinite(X[c, 0]):
                        # counted once for each jet it lies in, as a linked node once per link
                        nonfinite += 1
                elif not (math.isfinite(X[c, 1]) and math.isfinite(X[c, 2])):
                    # a direction that places it in no jet: dropped, and counted for each jet
                    nonfinite += 1
        out_count[j] = nc
        # 2. the sort key of each candidate: a raw column (pT, the default) is read from X,
        # and only the nodes kept get their features (12% of the benchmark's PF candidates
        # are past the block's 50); a derived key needs every candidate's features
        nk = min(nc, length)
        if nc > 0:
            raw_key = sort_idx >= N_BANK_DERIVED
            if raw_key:
                for i in range(nc):
                    k = np.float64(X[cand[i], sort_idx - N_BANK_DERIVED])
                    keys[i] = -k if k == k else np.inf  # descending; NaN last
                _argsort_stable(keys, nc, order)
                for s in range(nk):
                    order_rows[s] = cand[order[s]]
                _node_banks(X, kind, order_rows, nk, jet, bank)
            else:
                _node_banks(X, kind, cand, nc, jet, bank)
                for i in range(nc):
                    k = bank[sort_idx, i]
                    keys[i] = -k if k == k else np.inf
                _argsort_stable(keys, nc, order)
                # reorder the bank's columns into slot order
                for b in range(n_bank):
                    for s in range(nk):
                        keys[s] = bank[b, order[s]]
                    for s in range(nk):
                        bank[b, s] = keys[s]
        # 3. the first `length` nodes, then padding (zeros, or the nodes again with wrap):
        # every value of the jet's rows is written, so the caller's arrays need no zeroing
        for s in range(nk):
            out_mask[j, 0, s] = 1.0
        for s in range(nk, length):
            out_mask[j, 0, s] = 0.0
        for f in range(n_feat):
            row = bank[feat_idx[f]]
            bad = 0
            for s in range(nk):
                v = row[s]
                ok = math.isfinite(v)
                bad += not ok
                out_feat[j, f, s] = v if ok else 0.0
            nonfinite += bad
            if wrap and nk > 0:
                for s in range(nk, length):
                    out_feat[j, f, s] = out_feat[j, f, s % nk]
            else:
                for s in range(nk, length):
                    out_feat[j, f, s] = 0.0
    return nonfinite, bad_links
