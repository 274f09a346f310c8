"""fill_block against a slow, independent pure-Python reference on random jagged inputs."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from jetlib.kernels.nodes import DERIVED, ROLES, bank_index, fill_block


def ref_feature(name, node, jet, kinds):
    """Each feature written out by its definition, without the kernel's bank."""
    pt, eta, phi, m, q, pid, dxy, dxyerr, dz, dzerr = node[:10]
    jpt, jeta, jphi, jm = jet
    e = math.hypot(pt * math.cosh(eta), m)
    je = math.hypot(jpt * math.cosh(jeta), jm)
    dphi = (phi - jphi + math.pi) % (2 * math.pi) - math.pi
    p = np.array([pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)])
    j = np.array([jpt * math.cos(jphi), jpt * math.sin(jphi), jpt * math.sinh(jeta)])
    jhat = j / np.linalg.norm(j)
    # point of closest approach of the track in the transverse plane, and along z
    pca = np.array([-dxy * math.sin(phi), dxy * math.cos(phi), dz])
    s2 = 1.0 if np.dot(pca[:2], jhat[:2]) >= 0 else -1.0
    s3 = 1.0 if np.dot(pca, j / jpt) >= 0 else -1.0
    ip3 = math.hypot(dxy, dz)
    err3 = math.sqrt((dxy * dxyerr) ** 2 + (dz * dzerr) ** 2) / ip3 if ip3 > 0 else 0.0
    apid = abs(pid)
    had = apid not in (0, 11, 13, 22)
    f = {
        "energy": e, "log_pt": math.log(pt), "log_e": math.log(e), "pt_rel": pt / jpt, "e_rel": e / je,
        "log_pt_rel": math.log(pt / jpt), "log_e_rel": math.log(e / je), "deta": eta - jeta,
        "etarel": (eta - jeta) * (1 if jeta >= 0 else -1), "dphi": dphi, "dr": math.hypot(eta - jeta, dphi),
        "abs_eta": abs(eta), "dxy_sig": dxy / dxyerr if dxyerr > 0 else 0.0, "dz_sig": dz / dzerr if dzerr > 0 else 0.0,
        "sip2d_val": abs(dxy) * s2, "sip2d_sig": abs(dxy) * s2 / dxyerr if dxyerr > 0 else 0.0,
        "sip3d_val": ip3 * s3, "sip3d_sig": ip3 * s3 / err3 if err3 > 0 else 0.0,
        # 0 where |p| is not a positive number (a node whose eta is NaN), as for the significances
        "pt_perp_ratio": np.linalg.norm(np.cross(p, jhat)) / np.linalg.norm(p) if np.linalg.norm(p) > 0 else 0.0,
        "ppar_ratio": np.dot(p, jhat) / np.linalg.norm(p) if np.linalg.norm(p) > 0 else 0.0,  # CMS's trackPParRatio
        "is_electron": float(apid == 11), "is_muon": float(apid == 13), "is_photon": float(apid == 22),
        "is_ch_hadron": float(had and q != 0), "is_neu_hadron": float(had and q == 0),
    }  # fmt: skip
    return f


def reference(events, features, raw_cols, kinds, *, use_link, radius, min_pt, sort_by, length, wrap):
    """Blocks, masks and counts of the selected jets, and the counters: non-finite values
    (a node of the jet without a finite pT, a written value; by dR, also any node of the
    event without a finite eta or phi), link entries past the nodes."""
    out_f, out_m, out_c = [], [], []
    nonfinite = bad_links = 0
    for ev in events:
        for ji, jet in enumerate(ev["jets"]):
            if not ev["sel"][ji]:
                continue
            if use_link:
                mine = [c for (jj, c) in ev["links"] if jj == ji]
                bad_links += sum(c >= len(ev["nodes"]) for c in mine)
                cands = [c for c in mine if 0 <= c < len(ev["nodes"])]
            else:
                cands = [c for c in range(len(ev["nodes"]))
                         if math.hypot(ev["nodes"][c][1] - jet[1], (ev["nodes"][c][2] - jet[2] + math.pi) % (2 * math.pi) - math.pi) < radius]  # fmt: skip
                # a node without a finite direction is in no jet: counted for each
                nonfinite += sum(not (math.isfinite(n[1]) and math.isfinite(n[2])) for n in ev["nodes"])
            nonfinite += sum(not math.isfinite(ev["nodes"][c][0]) for c in cands)
            cands = [c for c in cands if ev["nodes"][c][0] >= min_pt]
            rows = []
            for c in cands:
                node = ev["nodes"][c]
                d = ref_feature(None, node, jet, kinds)
                for i, col in enumerate(raw_cols):
                    d[col] = node[i]
                for k, kn in enumerate(kinds):
                    d[f"is_{kn}"] = float(ev["kind"][c] == k)
                rows.append(d)
            # largest first, a NaN key last; stable, like the kernel's sorts
            rows.sort(key=lambda d: (math.isnan(d[sort_by]), -d[sort_by] if not math.isnan(d[sort_by]) else 0.0))
            F = np.zeros((len(features), length), np.float32)
            M = np.zeros((1, length), np.float32)
            for s, d in enumerate(rows[:length]):
                values = [d[f] for f in features]
                nonfinite += sum(not math.isfinite(v) for v in values)
                F[:, s] = [v if math.isfinite(v) else 0.0 for v in values]
                M[0, s] = 1
            if wrap and rows:
                n = min(len(rows), length)
                for s in range(n, length):
                    F[:, s] = F[:, s % n]
            out_f.append(F)
            out_m.append(M)
            out_c.append(len(cands))
    return out_f, out_m, out_c, (nonfinite, bad_links)


def random_events(rng, n_events, n_extra, kinds):
    events = []
    for _ in range(n_events):
        nj = rng.integers(0, 4)
        nn = rng.integers(0, 25)
        jets = [(rng.uniform(20, 200), rng.uniform(-2.4, 2.4), rng.uniform(-math.pi, math.pi), rng.uniform(1, 20)) for _ in range(nj)]
        nodes = []
        for _ in range(nn):
            j = jets[rng.integers(nj)] if nj else (50, 0, 0, 5)
            nodes.append([
                rng.exponential(5) + 0.1, j[1] + rng.normal(0, 0.3), ((j[2] + rng.normal(0, 0.3) + math.pi) % (2 * math.pi)) - math.pi,
                rng.choice([0.0, 0.14, 0.0005]), rng.choice([-1, 0, 1]), rng.choice([0, 11, -13, 22, 211, -211, 130]),
                rng.normal(0, 0.05), rng.choice([0.0, 0.002]), rng.normal(0, 0.1), rng.choice([0.0, 0.003]),
                *rng.normal(0, 3, n_extra),
            ])  # fmt: skip
        # a few NaN: a pT (the node is dropped), an eta (most derived features and the derived
        # sort keys: written as 0), a feature and a sort key (extra0, extra1)
        for n in nodes:
            for col in (0, 1, 10, 11):
                if n_extra and rng.random() < 0.05:
                    n[col] = np.nan
        nodes = [[float(v) for v in np.asarray(n, np.float32)] for n in nodes]  # what the kernel sees
        links = [(int(rng.integers(nj)), int(rng.integers(-1, nn + 2))) for _ in range(rng.integers(0, 30))] if nj else []
        events.append({"jets": jets, "nodes": nodes, "links": links, "sel": rng.random(nj) < 0.8,
                       "kind": rng.integers(0, len(kinds), nn)})  # fmt: skip
    return events


def run_kernel(events, features, raw_cols, kinds, *, use_link, radius, min_pt, sort_by, length, wrap, counters=False):
    joff = np.cumsum([0] + [len(e["jets"]) for e in events]).astype(np.int64)
    noff = np.cumsum([0] + [len(e["nodes"]) for e in events]).astype(np.int64)
    loff = np.cumsum([0] + [len(e["links"]) for e in events]).astype(np.int64)
    J = np.array([j for e in events for j in e["jets"]], np.float64).reshape(-1, 4)
    X = np.array([n for e in events for n in e["nodes"]], np.float32).reshape(-1, len(raw_cols))
    kind = np.array([k for e in events for k in e["kind"]], np.int8)
    L = np.array([lk for e in events for lk in e["links"]], np.int64).reshape(-1, 2)
    sel_evt = np.array([i for i, e in enumerate(events) for ji in range(len(e["jets"])) if e["sel"][ji]], np.int64)
    sel_local = np.array([ji for e in events for ji in range(len(e["jets"])) if e["sel"][ji]], np.int64)
    fidx = np.array([bank_index(f, raw_cols, kinds) for f in features], np.int64)
    assert (fidx >= 0).all()
    n = len(sel_evt)
    # NaN and -1 where the kernel must write: it fills its rows whole, padding included
    F = np.full((n, len(features), length), np.nan, np.float32)
    M = np.full((n, 1, length), np.nan, np.float32)
    C = np.full(n, -1, np.int64)
    counts = fill_block(sel_evt, sel_local, joff, J[:, 0], J[:, 1], J[:, 2], J[:, 3], noff, X, kind, use_link, radius,
                        loff, L[:, 0].copy(), L[:, 1].copy(), min_pt, bank_index(sort_by, raw_cols, kinds), fidx, wrap, F, M, C)  # fmt: skip
    return (F, M, C, counts) if counters else (F, M, C)


FEATURES = [f for f in DERIVED if not f.startswith("kind")] + ["pt", "eta", "charge", "extra0", "is_A", "is_B"]
RAW = list(ROLES) + ["extra0", "extra1"]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    use_link=st.booleans(),
    length=st.integers(1, 12),
    wrap=st.booleans(),
    min_pt=st.sampled_from([0.0, 1.0, 5.0]),
    sort_by=st.sampled_from(["pt", "extra1", "sip2d_sig", "dr"]),
)
def test_fill_block_matches_reference(seed, use_link, length, wrap, min_pt, sort_by):
    rng = np.random.default_rng(seed)
    kinds = ["A", "B"]
    events = random_events(rng, int(rng.integers(1, 8)), 2, kinds)
    kw = dict(use_link=use_link, radius=0.4, min_pt=min_pt, sort_by=sort_by, length=length, wrap=wrap)
    F, M, C, counters = run_kernel(events, FEATURES, RAW, kinds, counters=True, **kw)
    rf, rm, rc, ref_counters = reference(events, FEATURES, RAW, kinds, **kw)
    assert len(rf) == F.shape[0]
    for i in range(F.shape[0]):
        assert C[i] == rc[i]
        np.testing.assert_array_equal(M[i], rm[i])
        np.testing.assert_allclose(F[i], rf[i], rtol=2e-4, atol=2e-5)
    assert tuple(counters) == ref_counters


def test_padding_and_truncation_by_hand():
    # one jet along x, three linked nodes of pT 3, 1, 2: sorted 3, 2 then truncated to 2
    nodes = [[3.0, 0.0, 0.0, 0.0] + [0] * 6, [1.0, 0.1, 0.0, 0.0] + [0] * 6, [2.0, 0.0, 0.1, 0.0] + [0] * 6]
    ev = {"jets": [(10.0, 0.0, 0.0, 0.0)], "nodes": nodes, "links": [(0, 0), (0, 1), (0, 2)], "sel": [True], "kind": [0, 0, 0]}
    F, M, C = run_kernel([ev], ["pt", "pt_rel"], list(ROLES), ["A"], use_link=True, radius=0.4, min_pt=0.0,
                         sort_by="pt", length=2, wrap=False)  # fmt: skip
    np.testing.assert_allclose(F[0], [[3, 2], [0.3, 0.2]], rtol=1e-6)
    assert C[0] == 3 and M[0].tolist() == [[1, 1]]
    F, M, C = run_kernel([ev], ["pt"], list(ROLES), ["A"], use_link=True, radius=0.4, min_pt=1.5,
                         sort_by="pt", length=4, wrap=True)  # fmt: skip
    np.testing.assert_allclose(F[0], [[3, 2, 3, 2]])
    assert M[0].tolist() == [[1, 1, 0, 0]] and C[0] == 2



def test_a_negative_link_is_none_an_index_past_the_nodes_a_bad_link():
    # links: node 0, 'no candidate' (-1), node 1, and 5 (past the event's 2 nodes)
    nodes = [[3.0, 0.0, 0.0, 0.0] + [0] * 6, [2.0, 0.0, 0.1, 0.0] + [0] * 6]
    ev = {"jets": [(10.0, 0.0, 0.0, 0.0)], "nodes": nodes, "links": [(0, 0), (0, -1), (0, 1), (0, 5)], "sel": [True],
          "kind": [0, 0]}  # fmt: skip
    F, M, C, (bad_values, bad_links) = run_kernel([ev], ["pt"], list(ROLES), ["A"], use_link=True, radius=0.4, min_pt=0.0,
                                                  sort_by="pt", length=3, wrap=False, counters=True)  # fmt: skip
    np.testing.assert_allclose(F[0], [[3, 2, 0]])
    assert C[0] == 2 and bad_values == 0 and bad_links == 1


def test_a_nan_sort_key_goes_last():
    # three linked nodes; the middle one has a NaN in the key: a raw column (extra0), or its
    # eta, which makes the derived key dr NaN. Largest first, then the NaN node, ties kept
    def node(pt, eta, extra):
        return [pt, eta, 0.0, 0.0] + [0.0] * 6 + [extra]

    for key, nodes, want_pt in (
        ("extra0", [node(1.0, 0.1, 2.0), node(2.0, 0.1, np.nan), node(3.0, 0.1, 5.0)], [3.0, 1.0, 2.0]),
        ("dr", [node(1.0, 0.1, 0.0), node(2.0, np.nan, 0.0), node(3.0, 0.2, 0.0)], [3.0, 1.0, 2.0]),
    ):
        ev = {"jets": [(10.0, 0.0, 0.0, 0.0)], "nodes": nodes, "links": [(0, 0), (0, 1), (0, 2)], "sel": [True],
              "kind": [0, 0, 0]}  # fmt: skip
        F, M, C = run_kernel([ev], ["pt"], [*ROLES, "extra0"], ["A"], use_link=True, radius=0.4, min_pt=0.0,
                             sort_by=key, length=3, wrap=False)  # fmt: skip
        np.testing.assert_array_equal(F[0, 0], want_pt, err_msg=key)


def test_nonfinite_values_are_zeroed_and_counted():
    nodes = [[0.0, 0.0, 0.0, 0.0] + [0] * 6, [2.0, 0.0, 0.0, 0.0] + [0] * 6]  # log(0) = -inf
    joff = np.array([0, 1]); noff = np.array([0, 2])
    X = np.array(nodes, np.float32)
    F = np.zeros((1, 1, 3), np.float32); M = np.zeros((1, 1, 3), np.float32); C = np.zeros(1, np.int64)
    bad, links = fill_block(np.array([0]), np.array([0]), joff, np.array([10.0]), np.zeros(1), np.zeros(1), np.zeros(1),
                            noff, X, np.zeros(2, np.int8), True, 0.4, np.array([0, 2]), np.array([0, 0]), np.array([0, 1]),
                            0.0, bank_index("pt", list(ROLES), []), np.array([bank_index("log_pt", list(ROLES), [])]), False, F, M, C)  # fmt: skip
    assert bad == 1 and links == 0
    np.testing.assert_allclose(F[0, 0], [math.log(2.0), 0.0, 0.0])
    assert M[0, 0].tolist() == [1, 1, 0]


def test_many_candidates_sort_like_the_reference():
    # past the kernel's insertion-sort limit (64 candidates) it sorts with NumPy's merge
    # sort: both keep ties in candidate order; pT from a few values makes many ties
    rng = np.random.default_rng(5)
    kinds = ["A"]
    jet = (150.0, 0.3, 1.0, 10.0)
    nodes = []
    for _ in range(150):
        nodes.append([float(rng.choice([0.5, 1.0, 2.0, 4.0])), 0.3 + rng.normal(0, 0.2), 1.0 + rng.normal(0, 0.2),
                      0.0, float(rng.choice([-1, 0, 1])), 211.0, rng.normal(0, 0.05), 0.002, rng.normal(0, 0.1), 0.003])  # fmt: skip
    nodes = [[float(v) for v in np.asarray(n, np.float32)] for n in nodes]
    for n_nodes in (64, 65, 150):
        ev = {"jets": [jet], "nodes": nodes[:n_nodes], "links": [(0, c) for c in range(n_nodes)], "sel": [True],
              "kind": [0] * n_nodes}  # fmt: skip
        for sort_by in ("pt", "dr"):
            kw = dict(use_link=True, radius=0.4, min_pt=0.0, sort_by=sort_by, length=80, wrap=False)
            F, M, C = run_kernel([ev], ["pt", "dr", "charge"], list(ROLES), kinds, **kw)
            rf, rm, rc, _ = reference([ev], ["pt", "dr", "charge"], list(ROLES), kinds, **kw)
            assert C[0] == rc[0] == n_nodes
            np.testing.assert_array_equal(M[0], rm[0])
            np.testing.assert_allclose(F[0], rf[0], rtol=1e-6, atol=1e-7)
