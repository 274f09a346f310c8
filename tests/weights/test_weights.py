"""Sampling weights against an independent reimplementation of weaver-core's WeightMaker,
and by their effect: flat spectra (chi²) and class fractions after accept/reject sampling."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jetlib.errors import ConfigError, StoreError
from jetlib.store import Store
from jetlib.weights import compute_weights, load_weights
from jetlib.weights.binning import bins_spec, parse_bins

PT = np.geomspace(15, 1000, 21)
ETA = np.linspace(-2.5, 2.5, 11)


def weaver_reference(pt, eta, label, classes, method, class_weights, threshold=10.0, ref_class=0):
    """weaver-core's algorithm written out plainly for 2D (np.histogram2d, clipped into range)."""
    x = np.clip(pt, PT[0], PT[-1])
    y = np.clip(eta, ETA[0], ETA[-1])
    raw = {}
    for k in range(len(classes)):
        h, _, _ = np.histogram2d(x[label == k], y[label == k], bins=[PT, ETA])
        raw[k] = h.astype(np.float32)
    result, events = {}, {}
    for k in range(len(classes)):
        if method == "flat":
            h = raw[k]
            thr = np.median(h[h > 0]) * 0.01
            ref = np.percentile(h[h > thr], threshold)
            with np.errstate(divide="ignore"):
                w = np.clip(np.nan_to_num(ref / h, posinf=0), 0, 1)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.nan_to_num(raw[ref_class] / raw[k], posinf=0)
            upper = np.percentile(ratio[ratio > 0], 100 - threshold)
            w = np.clip(ratio / upper, 0, 1)
        result[k] = w
        events[k] = np.sum(raw[k] * w) / class_weights[k]
    m = min(events.values()) * 0.9
    return np.stack([result[k] * m / events[k] for k in range(len(classes))]), np.stack([raw[k] for k in raw])


def _columns(store):
    return Store(store).read(["jet_pt", "jet_eta", "label"])


@pytest.mark.parametrize("method", ["flat", "ref"])
def test_tables_equal_weaver_reference(store_factory, method):
    path = store_factory(jets_per_shard=(3000, 2500, 1500))
    cw = {"b": 2.0, "c": 1.5, "uds": 1.0, "g": 0.5}
    w = compute_weights(path, bins="pt=15:1000:log20,eta=-2.5:2.5:10", method=method,
                        reference="b" if method == "ref" else None, class_weights=cw)  # fmt: skip
    a = _columns(path)
    ref, raw = weaver_reference(a["jet_pt"], a["jet_eta"], a["label"], w.classes, method, [cw[c] for c in w.classes])
    np.testing.assert_allclose(w.counts, raw)
    np.testing.assert_allclose(w.tables, ref, rtol=1e-5, atol=1e-9)


def _sample(w, cols, seed):
    p = w.lookup({"jet_pt": cols["jet_pt"], "jet_eta": cols["jet_eta"]}, cols["label"])
    assert p.min() >= 0 and p.max() == pytest.approx(1.0)
    # a seed sequence unlike the store's (default_rng(0) also drew the store's labels and pT)
    return np.random.default_rng([seed, 2024]).random(len(p)) < p


def test_sampled_spectra_are_flat_and_class_fractions_follow_class_weights(store_factory):
    path = store_factory(jets_per_shard=(60_000, 60_000), class_probs=[0.4, 0.3, 0.2, 0.1])
    cw = {"b": 2.0, "c": 1.0, "uds": 1.0, "g": 0.5}
    w = compute_weights(path, bins="pt=15:200:log8,eta=-2.5:2.5:5", class_weights=cw)
    cols = _columns(path)
    pt_e, eta_e = w.edges
    accepted = np.zeros(len(w.classes))
    n_rep = 20  # repeat the sampling (epochs) to beat the noise of single passes
    hists = np.zeros_like(w.counts)
    for rep in range(n_rep):
        keep = _sample(w, cols, rep)
        for k in range(len(w.classes)):
            sel = keep & (cols["label"] == k)
            accepted[k] += sel.sum()
            x = np.clip(cols["jet_pt"][sel], pt_e[0], np.nextafter(pt_e[-1], 0))
            hists[k] += np.histogram2d(x, cols["jet_eta"][sel], bins=[pt_e, eta_e])[0]
    # flat: in the bins whose weight is below 1 (not limited by the low-count threshold) the
    # sampled counts are the same constant for every bin; chi² against their mean
    acc = w.acceptance()
    for k, c in enumerate(w.classes):
        full = (acc[k] > 0) & (w.tables[k] * w.counts[k] > 0) & (w.tables[k] < w.tables[k].max() - 1e-12)
        full &= w.counts[k] * acc[k] >= 0.999 * np.max(w.counts[k] * acc[k])
        obs = hists[k][full] / n_rep
        expected = (w.counts[k] * acc[k])[full]
        assert full.sum() >= 5, c
        np.testing.assert_allclose(expected, expected.mean(), rtol=1e-6)  # flat by construction
        chi2 = np.sum((obs - expected) ** 2 / (expected / n_rep))
        ndf = full.sum()
        assert chi2 < ndf + 5 * np.sqrt(2 * ndf), (c, chi2, ndf)
    # class fractions ∝ class weights, within binomial errors
    exp = np.array([w.expected_counts()[c] for c in w.classes])
    np.testing.assert_allclose(exp / exp.sum(), np.array([2, 1, 1, 0.5]) / 4.5, rtol=1e-9)
    frac = accepted / accepted.sum()
    err = np.sqrt(frac * (1 - frac) / accepted.sum())
    assert np.all(np.abs(frac - exp / exp.sum()) < 5 * err + 1e-4), (frac, exp / exp.sum())
    assert accepted / n_rep == pytest.approx(exp, rel=0.05)


def test_saved_and_loaded(store_factory):
    path = store_factory()
    w = compute_weights(path, method="flat", name="mine")
    d = json.loads((path / "weights" / "mine.json").read_text())
    assert d["method"] == "flat" and d["variables"] == ["jet_pt", "jet_eta"] and len(d["edges"]) == 2
    back = load_weights(path, "mine")
    np.testing.assert_array_equal(back.tables, w.tables)
    with pytest.raises(StoreError, match="jetlib weights"):
        load_weights(path, "nope")


def test_stale_weights_refused(store_factory):
    path = store_factory()
    compute_weights(path)
    from jetlib.store import Manifest

    rec = Manifest.of(path).records()[0]
    Manifest.of(path).append({**rec, "status": "failed"})  # one shard less now
    with pytest.raises(StoreError, match="re-run"):
        load_weights(path)


def test_class_without_jets_and_single_jet(store_factory):
    path = store_factory(jets_per_shard=(400,), class_probs=[0.5, 0.5, 0.0, 0.0])
    w = compute_weights(path)
    assert w.expected_counts()["uds"] == 0 and not w.tables[2].any()
    assert w.expected_counts()["b"] > 0
    one = store_factory("one", jets_per_shard=(1,))
    w1 = compute_weights(one)
    cols = _columns(one)
    assert w1.lookup(cols, cols["label"]).tolist() == [1.0]


def test_flow_policies(store_factory):
    path = store_factory()
    cols = _columns(path)
    w = compute_weights(path, bins="pt=15:40:5,eta=-1:1:4", flow="drop", name="drop")
    outside = (cols["jet_pt"] >= 40) | (np.abs(cols["jet_eta"]) >= 1)
    assert sum(w.extra["flow_jets"].values()) == outside.sum()
    assert w.counts.sum() == (~outside).sum()
    p = w.lookup(cols, cols["label"])
    assert np.all(p[outside] == 0)
    wc = compute_weights(path, bins="pt=15:40:5,eta=-1:1:4", flow="clip", name="clip")
    assert wc.counts.sum() == len(cols["label"])
    assert np.all(wc.lookup(cols, cols["label"])[outside] >= 0)


def test_failed_files_are_ignored(store_factory):
    path = store_factory(failed=2)
    w = compute_weights(path)
    assert w.counts.sum() == sum((500, 700, 300)) == w.jets


def test_bad_specs(store_factory):
    path = store_factory()
    with pytest.raises(ConfigError, match="did you mean"):
        compute_weights(path, bins="ptt")
    with pytest.raises(ConfigError, match="cannot parse"):
        compute_weights(path, bins="pt=1:2:x")
    with pytest.raises(ConfigError, match="reference"):
        compute_weights(path, method="ref")
    with pytest.raises(ConfigError, match="no such class"):
        compute_weights(path, class_weights="q=2")
    with pytest.raises(ConfigError, match="unknown method"):
        compute_weights(path, method="magic")
    with pytest.raises(ConfigError, match="did you mean b"):
        compute_weights(path, class_weights="B=2")
    with pytest.raises(ConfigError, match=r"reference class 'B' does not exist \(did you mean b\?\); the store's classes are b, "):
        compute_weights(path, method="ref", reference="B")
    with pytest.raises(ConfigError, match="is for --method ref"):  # not silently flat
        compute_weights(path, reference="b")
    for bad in ("../../evil", "a/b", ".hidden", ""):
        with pytest.raises(ConfigError, match="--name"):
            compute_weights(path, name=bad)
    assert not (path.parent / "evil.json").exists() and not (path.parent.parent / "evil.json").exists()
    with pytest.raises(ConfigError, match="low edge 15 must be below the high edge 10"):
        compute_weights(path, bins="pt=15:10:5")
    with pytest.raises(ConfigError, match="1,000,000 bins"):
        compute_weights(path, bins="pt=15:1000:log1000,eta=-2.5:2.5:1000")
    for cw in ("b=inf", "b=nan", "b=-1"):  # inf would save NaN tables and sample nothing
        with pytest.raises(ConfigError, match="must be a finite number >= 0"):
            compute_weights(path, class_weights=cw)
    with pytest.raises(ConfigError, match="'b' given twice"):
        compute_weights(path, class_weights="b=2,b=3")
    for bins in ("pt,,eta", "pt,eta,", ",pt"):  # a variable left out, most likely
        with pytest.raises(ConfigError, match="has an empty item"):
            compute_weights(path, bins=bins)
    with pytest.raises(ConfigError, match="empty --bins"):
        compute_weights(path, bins=" , ")


def test_weights_that_sample_nothing_are_refused(store_factory):
    """An epoch with no jets is an error, not a saved file that gives a training empty epochs;
    weights of the same name from before stay."""
    path = store_factory()
    classes = Store(path).classes
    compute_weights(path)
    before = (path / "weights" / "flat.json").read_text()
    with pytest.raises(ConfigError, match=r"sample no jets \(every class weight is 0\); nothing saved"):
        compute_weights(path, class_weights={c: 0 for c in classes})
    with pytest.raises(ConfigError, match="no jet lies inside --bins .* --flow drop"):
        compute_weights(path, bins="pt=5000:6000:2,eta=-1:1:2", flow="drop")
    assert (path / "weights" / "flat.json").read_text() == before
    w = compute_weights(path, class_weights={c: 0 for c in classes[1:]}, name="one")  # one class only: fine
    assert sum(w.expected_counts().values()) > 0 and set(k for k, v in w.expected_counts().items() if v) == {classes[0]}


def test_parse_bins_defaults_follow_the_skim_cut():
    names, edges = parse_bins("pt,eta", ["jet_pt", "jet_eta"], {"skim_config": {"jets": {"min_pt": 20, "max_abs_eta": 2.4}}})
    assert names == ["jet_pt", "jet_eta"]
    assert edges[0][0] == 20 and edges[1][0] == -2.4 and edges[1][-1] == 2.4
    _, e = parse_bins("pt=15|30|1000", ["jet_pt"])
    assert e[0].tolist() == [15, 30, 1000]


@pytest.mark.parametrize("spec, message", [
    ("pt=15|1e400", "edges must be finite"), ("eta=-1:1e400:5", "edges must be finite"), ("pt=", "no edges after '='"),
])  # fmt: skip
def test_parse_bins_refuses_infinite_or_missing_edges(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_bins(spec, ["jet_pt", "jet_eta"])


def test_one_dimensional_weights(store_factory):
    path = store_factory()
    w = compute_weights(path, bins="pt=15:500:log10", name="pt_only")
    assert w.tables.shape == (4, 10)
    cols = _columns(path)
    assert w.lookup(cols, cols["label"]).max() == pytest.approx(1.0)


def test_plots_written(store_factory):
    pytest.importorskip("matplotlib")
    pytest.importorskip("mplhep")
    path = store_factory()
    w = compute_weights(path, plot=True)
    names = sorted(p.rsplit("/", 1)[1] for p in w.extra["plots"])
    assert names == ["flat_jet_eta.png", "flat_jet_pt.png", "flat_maps.png"]
    assert all((path / "weights" / n).stat().st_size > 1000 for n in names)


def test_plots_of_earlier_weights_of_the_same_name_are_removed(store_factory):
    """A re-run with other bins, or without --plot, leaves no PNG that shows the earlier
    weights; other names' plots and a user's own files stay."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("mplhep")
    path = store_factory()
    folder = path / "weights"
    compute_weights(path, plot=True)
    compute_weights(path, plot=True, name="flat_v2")
    (folder / "flat_notes.png").write_bytes(b"mine")
    assert {"flat_jet_eta.png", "flat_maps.png", "flat_v2_maps.png"} <= {p.name for p in folder.iterdir()}
    w = compute_weights(path, bins="pt", plot=True)
    assert [p.rsplit("/", 1)[1] for p in w.extra["plots"]] == ["flat_jet_pt.png"]
    pngs = sorted(p.name for p in folder.glob("*.png"))
    assert pngs == ["flat_jet_pt.png", "flat_notes.png", "flat_v2_jet_eta.png", "flat_v2_jet_pt.png", "flat_v2_maps.png"]
    compute_weights(path, bins="pt,eta")  # no --plot: the pT plot showed the 1D weights
    assert sorted(p.name for p in folder.glob("*.png")) == ["flat_notes.png", "flat_v2_jet_eta.png", "flat_v2_jet_pt.png",
                                                             "flat_v2_maps.png"]


def test_a_failed_plot_leaves_no_plots_of_earlier_weights(store_factory, monkeypatch):
    """--plot failing part-way (matplotlib missing, a full disk) after the new weights are
    saved: the earlier weights' PNGs are gone already, not left unrecorded for good."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("mplhep")
    import jetlib.weights.plot as plot

    path = store_factory()
    folder = path / "weights"
    compute_weights(path, plot=True, name="flat_v2")
    compute_weights(path, plot=True)

    def fail(w, folder):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plot, "plot_weights", fail)
    with pytest.raises(OSError):
        compute_weights(path, bins="pt", plot=True)
    only_v2 = ["flat_v2_jet_eta.png", "flat_v2_jet_pt.png", "flat_v2_maps.png"]
    assert sorted(p.name for p in folder.glob("*.png")) == only_v2
    monkeypatch.undo()
    compute_weights(path, bins="pt")
    assert sorted(p.name for p in folder.glob("*.png")) == only_v2


@pytest.mark.parametrize(
    "edges, kind",
    [(np.linspace(-2.5, 2.5, 11), "Regular"), (np.geomspace(15, 1000, 21), "Regular"), (np.array([15.0, 30, 60, 1000]), "Variable")],
)
@pytest.mark.parametrize("flow", ["clip", "drop"])
def test_fill_and_lookup_bin_alike(edges, kind, flow):
    """The histogram fill and the per-jet lookup put every value in the same bin, edges,
    flow values, 0, negative values, NaN and inf included; the bins agree with
    np.searchsorted off the edges, and a log axis with boost-histogram's own log transform."""
    import boost_histogram as bh

    from jetlib.weights.hist import _apply_flow, _empty, bin_index, make_axis, to_axis

    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(edges[0] - 5, edges[-1] + 5, 2000), edges, [np.inf, -np.inf, np.nan, 0.0, -1.0]])
    label = rng.integers(0, 2, len(x))
    ax = make_axis(edges)
    assert type(ax).__name__ == kind
    h = _empty(2, [edges])
    h.fill(label, to_axis(h.axes[1], x))
    counts, outside = _apply_flow(h.view(flow=True), flow)
    i, inside = bin_index(ax, x, flow)
    keep = inside | (flow == "clip")
    expect = np.stack([np.bincount(i[keep & (label == k)], minlength=len(edges) - 1) for k in (0, 1)])
    np.testing.assert_array_equal(counts, expect)
    assert outside.tolist() == [int((~inside & (label == k)).sum()) for k in (0, 1)]
    off_edge = np.isfinite(x) & ~np.isin(x, edges)
    ref = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    np.testing.assert_array_equal(i[off_edge & inside], ref[off_edge & inside])
    if edges[0] > 0 and np.allclose(edges, np.geomspace(edges[0], edges[-1], len(edges))):
        log_axis = bh.axis.Regular(len(edges) - 1, edges[0], edges[-1], transform=bh.axis.transform.log)
        near = np.isclose(x[:, None], edges[None, :], rtol=1e-12, atol=0).any(axis=1)
        np.testing.assert_array_equal(ax.index(to_axis(ax, x))[~near], log_axis.index(x)[~near])


def test_thread_pool_fill_equals_one_thread(store_factory):
    from jetlib.weights.hist import fill_histograms

    path = store_factory(jets_per_shard=(400, 300, 500, 200, 100, 600))
    variables, edges = parse_bins("pt,eta", ["jet_pt", "jet_eta"], Store(path).meta)
    one = fill_histograms(path, variables, edges, scheduler="sync")
    for _ in range(5):  # the threads copy the empty histogram while the total grows
        np.testing.assert_array_equal(fill_histograms(path, variables, edges).counts, one.counts)
    assert one.counts.sum() == 2100


@pytest.mark.parametrize("spec, expected", [
    ("pt=15:1000:log25,eta=-2.5:2.5:10", "pt=15:1000:log25,eta=-2.5:2.5:10"),
    ("pt,eta", "pt=15:1000:log20,eta=-2.5:2.5:10"),
    ("pt=15|30|60|1000,jet_mass=0:50:5", "pt=15|30|60|1000,mass=0:50:5"),
])  # fmt: skip
def test_bins_spec_round_trips(spec, expected):
    obs = ["jet_pt", "jet_eta", "jet_mass"]
    names, edges = parse_bins(spec, obs)
    assert bins_spec(names, edges) == expected
    n2, e2 = parse_bins(expected, obs)
    assert n2 == names
    for a, b in zip(edges, e2):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_stale_weights_name_the_command_that_remakes_them(store_factory):
    path = store_factory()
    w = compute_weights(path, bins="pt=20:500:log8,eta=-2:2:4", method="ref", reference="c",
                        class_weights="b=2", flow="drop", name="mine")  # fmt: skip
    from jetlib.store import Manifest

    rec = Manifest.of(path).records()[0]
    Manifest.of(path).append({**rec, "status": "failed"})
    with pytest.raises(StoreError) as err:
        load_weights(path, "mine")
    cmd = str(err.value).split("re-run `")[1].rstrip("`")
    assert cmd == (f"jetlib weights {path} --bins 'pt=20:500:log8,eta=-2:2:4' --method ref --reference c "
                   "--class-weights b=2 --flow drop --name mine")  # fmt: skip
    assert w.command(path) == cmd
    with pytest.raises(StoreError, match="--name nosuch"):
        load_weights(path, "nosuch")


def test_cli_summary_says_how_many_jets_an_epoch_samples(store_factory):
    """The total row equals the sum of the classes' expected counts; the limiting class is the
    one whose acceptance reaches 1; a store with a failed task is said to be incomplete."""
    from typer.testing import CliRunner

    from jetlib.cli import app

    path = store_factory(jets_per_shard=(3000, 2000), class_probs=[0.6, 0.3, 0.08, 0.02], failed=1)
    res = CliRunner().invoke(app, ["weights", str(path), "--bins", "pt=15:300:log6,eta=-2.5:2.5:4"], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    w = load_weights(path, "flat")
    total = sum(w.expected_counts().values())
    all_row = next(line for line in res.output.splitlines() if "│ all" in line)
    assert f"{total:,.0f}" in all_row and "5,000" in all_row
    acc = w.acceptance()
    limiting = w.limiting_class()
    assert acc[w.classes.index(limiting)].max() == pytest.approx(1.0)
    assert f"an epoch samples {total:,.0f} of 5,000 jets ({total / 5000:.1%}); the rate is set by {limiting}" in res.output
    assert "1 task(s) failed: these results cover" in res.output
    # few jets per bin and a small sampled fraction are called out
    res = CliRunner().invoke(app, ["weights", str(path), "--bins", "pt=15:300:log60,eta=-2.5:2.5:40"], env={"COLUMNS": "300"})
    assert res.exit_code == 0 and "jets per filled bin" in res.output and "fewer than 10% of the jets" in res.output
    # the warning splits the cost: each class's own shape (its table at a peak of 1), then the
    # balancing of the classes, counted here bin by bin
    w = load_weights(path, "flat")
    own = 0.0
    for k in range(len(w.classes)):
        table, counts = w.tables[k].ravel(), w.counts[k].ravel()
        if table.max() > 0:
            own += sum(t / table.max() * n for t, n in zip(table.tolist(), counts.tolist()))
    total = sum(w.expected_counts().values())
    said = " ".join(res.output.split())
    assert f"The shapes keep {own / 5000:.1%} of them" in said and w.shape_share() == pytest.approx(own / 5000)
    assert f"Balancing the classes keeps {total / own:.0%} of that" in said
    assert f"--class-weights {w.limiting_class()}=0.2" in said and "--threshold, e.g. 50" in said


def test_limiting_class_and_jets_per_filled_bin_by_hand():
    from jetlib.weights import SamplingWeights

    counts = np.array([[[10.0, 30.0]], [[0.0, 4.0]]])  # 2 classes, 1 x 2 bins
    tables = np.array([[[0.1, 0.05]], [[0.0, 0.9]]])
    w = SamplingWeights(name="t", method="flat", variables=["jet_pt", "jet_eta"], edges=[np.array([0.0, 1.0]), np.array([0.0, 1.0, 2.0])],
                        classes=["a", "b"], class_weights={"a": 1.0, "b": 1.0}, tables=tables, counts=counts)  # fmt: skip
    assert w.limiting_class() == "b"
    assert w.jets_per_filled_bin() == pytest.approx(np.median([40 / 2, 4 / 1]))


def test_tables_percentiles_are_numpys_to_the_last_bit():
    """flat/ref take their median and percentiles from one sort (no np.percentile call per
    class): the tables must equal those of np.median/np.percentile exactly, not just closely
    (NumPy interpolates from the nearer end: 1-ulp differences otherwise)."""
    from jetlib.weights.methods import _percentile_sorted, flat_table, ref_table

    assert _percentile_sorted(np.array([19 / 9, 6.0]), 90) == np.percentile([19 / 9, 6.0], 90)
    rng = np.random.default_rng(11)
    for _ in range(2000):
        v = np.sort(rng.exponential(3, rng.integers(1, 9)))
        q = float(rng.uniform(0, 100))
        assert _percentile_sorted(v, q) == np.percentile(v, q)
    for _ in range(500):
        c = rng.poisson(rng.uniform(0.5, 200), rng.integers(1, 30)).astype(np.float64)
        r = rng.poisson(rng.uniform(0.5, 200), c.shape).astype(np.float64)
        thr = float(rng.choice([0.0, 10.0, 37.5]))
        filled = c[c > 0]
        if filled.size:
            ref = np.percentile(c[c > np.median(filled) * 0.01], thr)
            with np.errstate(divide="ignore"):
                expected = np.clip(np.where(c > 0, ref / np.where(c > 0, c, 1.0), 0.0), 0, 1)
            np.testing.assert_array_equal(flat_table(c, thr), expected)
        ratio = np.where(c > 0, r / np.where(c > 0, c, 1.0), 0.0)
        if np.any(ratio > 0):
            expected = np.clip(ratio / np.percentile(ratio[ratio > 0], 100 - thr), 0, 1)
            np.testing.assert_array_equal(ref_table(c, r, thr), expected)
