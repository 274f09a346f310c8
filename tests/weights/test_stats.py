"""Standardisation equals np.percentile over the unpadded values, whatever the sampling."""

from __future__ import annotations

import numpy as np
import pytest

from jetlib.errors import ConfigError, StoreError
from jetlib.stats import compute_stats, load_stats
from jetlib.stats.quantiles import _scan as SCAN
from jetlib.stats.quantiles import _below_per_group, exact_percentiles, real_values
from jetlib.store import Store


def _reference(store):
    s = Store(store)
    out = {}
    for b in s.blocks:
        d = s.read([f"{b}_features", f"{b}_mask"])
        m = d[f"{b}_mask"][:, 0, :] > 0
        out[f"{b}_features"] = [d[f"{b}_features"][:, f, :][m] for f in range(d[f"{b}_features"].shape[1])]
    jf = s.read(["jet_features"])["jet_features"]
    out["jet_features"] = [jf[:, f] for f in range(jf.shape[1])]
    return out


@pytest.mark.parametrize("step", [1, 3, 7])
def test_real_values_thinned_in_jet_order(step):
    rng = np.random.default_rng(step)
    x = rng.normal(size=(30, 4, 6)).astype(np.float32)
    mask = (rng.random((30, 1, 6)) < 0.6).astype(np.float32)
    i, j = np.nonzero(mask[:, 0, :] > 0)
    expected = x[i, :, j].T[:, ::step]  # (F, n) in jet order, every step-th
    np.testing.assert_array_equal(real_values(x, mask, step), expected)
    np.testing.assert_array_equal(real_values(x[:, :, 0], None, step), x[::step, :, 0].T)


def test_values_below_per_group_match_a_numpy_count():
    rng = np.random.default_rng(5)
    sample = rng.normal(size=(3, 1000)).astype(np.float32)
    group = rng.integers(0, 7, 1000)
    est = np.sort(rng.normal(size=(3, 2)), axis=1)
    y = _below_per_group(sample, group, 7, est)
    for f in range(3):
        for q in range(2):
            below = sample[f] < est[f, q]
            np.testing.assert_array_equal(y[f, q], [np.sum(below[group == g]) for g in range(7)])


@pytest.mark.parametrize("fmt", ["hdf5", "parquet"])
@pytest.mark.parametrize("sample_jets", [20_000, 50, 1])
def test_stats_equal_numpy_percentiles(store_factory, fmt, sample_jets):
    path = store_factory(fmt=fmt, jets_per_shard=(900, 1300, 40))
    st = compute_stats(path, sample_jets=sample_jets)
    for name, values in _reference(path).items():
        fs = st.arrays[name]
        for f, v in enumerate(values):
            p16, med, p84 = np.percentile(v, [16, 50, 84])
            assert fs.center[f] == pytest.approx(med, rel=1e-6, abs=1e-7), (name, f)
            assert fs.extra["p16"][f] == pytest.approx(p16, rel=1e-6, abs=1e-7)
            assert fs.extra["p84"][f] == pytest.approx(p84, rel=1e-6, abs=1e-7)
            width = max(p84 - med, med - p16)
            assert fs.scale[f] == pytest.approx(1 / width if width > 0 else 1.0, rel=1e-5)
            assert fs.extra["count"][f] == len(v)


def test_exact_percentiles_recovers_from_a_misleading_sample():
    rng = np.random.default_rng(3)
    data = [rng.normal(size=(2, 5000)).astype(np.float32) for _ in range(4)]
    data[0][1] = 7.0  # ties, and values the sample below never sees
    biased = [np.sort(d, axis=1)[:, :50] for d in data[1:2]]  # the sample holds only low values
    res = exact_percentiles(lambda: ({"x": (b, np.arange(b.shape[1]))} for b in biased), lambda: ({"x": (d.T, None)} for d in data), {"x": 2}, [16, 50, 84])
    p, n = res["x"]
    allv = np.concatenate(data, axis=1)
    np.testing.assert_allclose(p, np.percentile(allv, [16, 50, 84], axis=1).T, rtol=1e-6)
    assert n.tolist() == [20000, 20000]


@pytest.mark.parametrize("slots,dtype", [(7, np.float32), (50, np.float32), (70, np.float32), (70, np.float64)])
def test_exact_percentiles_ties_padding_and_non_finite(monkeypatch, slots, dtype):
    """Discrete features (charge, one-hot flags) are settled in one pass: values equal to a
    bracket bound are counted, not kept. Padding never counts, wherever it lies in a row; NaN/inf
    count as 0. Chunks with far more values inside the brackets than the first one get room
    (buffer regrown). Rows of 7 slots are counted as one long row of real values, of 50 in one
    segment each, of 70 in two (and in float64, 64 values of 8 bytes per comparison)."""
    rng = np.random.default_rng(5)
    chunks = []
    for i in range(5):
        n = 300 * (1 + 3 * i)
        x = np.stack([rng.integers(-1, 2, (n, slots)), rng.integers(0, 2, (n, slots)) * (rng.random((n, slots)) < 0.1),
                      rng.normal(size=(n, slots)) * (i + 1)], axis=1).astype(dtype)  # fmt: skip
        x[rng.random(x.shape) < 0.01] = np.nan
        x[0, 2, 0] = np.inf
        mask = (rng.random((n, 1, slots)) < 0.7).astype(np.float32)
        x[np.broadcast_to(mask == 0, x.shape)] = 1e6  # padding that must not count
        chunks.append((x, mask))
    passes = []

    def full():
        passes.append(1)
        return ({"x": c} for c in chunks)

    from jetlib.stats import quantiles

    scans = []

    def counting_scan(*args):
        scans.append(1)
        return SCAN(*args)

    monkeypatch.setattr(quantiles, "_scan", counting_scan)
    sample = []
    for i, (x, mask) in enumerate(chunks):  # every 5th jet, numbered across chunks
        sample.append((np.nan_to_num(x[::5].transpose(1, 0, 2)[:, mask[::5, 0] > 0], posinf=0),
                       np.nonzero(mask[::5, 0] > 0)[0] + 10_000 * i))  # fmt: skip
    p, n = exact_percentiles(lambda: ({"x": v} for v in sample), full, {"x": 3}, [16, 50, 84])["x"]
    values = np.concatenate([c[0].transpose(1, 0, 2)[:, c[1][:, 0] > 0] for c in chunks], axis=1)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    np.testing.assert_allclose(p, np.percentile(values, [16, 50, 84], axis=1).T, rtol=1e-6)
    assert n.tolist() == [values.shape[1]] * 3
    assert len(passes) == 1
    assert len(scans) > len(chunks)  # a chunk with more values inside than expected was redone


def test_shards_of_different_sizes_are_each_scanned_once(monkeypatch):
    """The kept-value buffer follows each chunk's size: a shard 3x larger than the one before
    it (tasks cut at the input's clusters) used to overflow the buffer sized for the smaller
    one, and was counted twice (stats 30% slower on the benchmark's store)."""
    from jetlib.stats import quantiles

    rng = np.random.default_rng(9)
    chunks = [rng.normal(size=(n, 2)).astype(np.float32) for n in (4000, 12000, 4000, 12000, 4000)]
    scans = []
    monkeypatch.setattr(quantiles, "_scan", lambda *a: scans.append(a[0].shape) or SCAN(*a))
    sample = [(c[::5].T.copy(), np.arange(0, c.shape[0], 5) + 100_000 * i) for i, c in enumerate(chunks)]
    p, n = exact_percentiles(lambda: ({"x": v} for v in sample), lambda: ({"x": (c, None)} for c in chunks),
                             {"x": 2}, [16, 50, 84])["x"]  # fmt: skip
    np.testing.assert_allclose(p, np.percentile(np.concatenate(chunks), [16, 50, 84], axis=0).T, rtol=1e-6)
    assert len(scans) == len(chunks)


def test_a_tiny_chunk_does_not_size_the_next_ones_buffer(monkeypatch):
    """A file's last task may hold a few jets: all of its values may fall inside the brackets,
    which says nothing about the next chunk, whose buffer must not be sized for all of it."""
    from jetlib.stats import quantiles

    rng = np.random.default_rng(4)
    chunks = [rng.normal(size=(n, 2)).astype(np.float32) for n in (20000, 3, 20000)]
    chunks[1][:] = np.percentile(chunks[0], 50, axis=0)  # every value near the median: all kept
    buffers = []
    monkeypatch.setattr(quantiles, "_scan", lambda *a: buffers.append(a[7].shape[1]) or SCAN(*a))
    sample = [(c[::5].T.copy(), np.arange(0, c.shape[0], 5) + 100_000 * i) for i, c in enumerate(chunks)]
    p, _ = exact_percentiles(lambda: ({"x": v} for v in sample), lambda: ({"x": (c, None)} for c in chunks),
                             {"x": 2}, [16, 50, 84])["x"]  # fmt: skip
    np.testing.assert_allclose(p, np.percentile(np.concatenate(chunks), [16, 50, 84], axis=0).T, rtol=1e-6)
    assert buffers[-1] < 0.5 * 20000, buffers


def test_apply_standardises_and_keeps_padding_zero(store_factory):
    path = store_factory()
    st = compute_stats(path, clip=3.0)
    d = Store(path).read(["pf_features", "pf_mask", "jet_features"])
    x, m = d["pf_features"], d["pf_mask"]
    fs = st.arrays["pf_features"]
    got = st.apply("pf_features", x, m)
    ref = np.clip((x - fs.center[None, :, None]) * fs.scale[None, :, None], -3, 3) * m
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    assert np.all(got[np.broadcast_to(m == 0, got.shape)] == 0)
    assert got.min() >= -3 and got.max() <= 3
    j = st.apply("jet_features", d["jet_features"])
    fj = st.arrays["jet_features"]
    np.testing.assert_allclose(j, np.clip((d["jet_features"] - fj.center) * fj.scale, -3, 3), rtol=1e-6)
    with pytest.raises(KeyError, match="lt_features"):
        st.apply("lt_features", x)


def test_load_and_errors(store_factory):
    path = store_factory(failed=1)
    with pytest.raises(StoreError, match="jetlib stats"):
        load_stats(path)
    st = compute_stats(path)
    assert load_stats(path).arrays["sv_features"].features == st.arrays["sv_features"].features
    empty = store_factory("empty", jets_per_shard=())
    with pytest.raises(StoreError, match="no jets: no task has finished yet"):
        compute_stats(empty)
    failed = store_factory("failed", jets_per_shard=(), failed=2)
    with pytest.raises(StoreError, match="all 2 of its tasks failed .*jetlib verify"):
        compute_stats(failed)
    # what needs the stats (the exports) says why there are none, not "run jetlib stats"
    with pytest.raises(StoreError, match="all 2 of its tasks failed .*jetlib verify"):
        load_stats(failed)
    for clip in (0.0, -1.0, float("nan"), float("inf")):  # one constant, or Infinity in stats.json
        with pytest.raises(ConfigError, match="must be a finite number > 0"):
            compute_stats(path, clip=clip)
    compute_stats(path, clip=3.0)
    more = store_factory("more", jets_per_shard=(500, 700, 300, 50))
    (more / "stats").mkdir()
    (more / "stats" / "stats.json").write_text((path / "stats" / "stats.json").read_text())  # another state
    with pytest.raises(StoreError, match=f"re-run `jetlib stats {more} --clip 3`"):
        load_stats(more)


@pytest.mark.parametrize("lo, hi", [(40.0, 49.0), (50.0, 60.0), (49.0, 49.0), (70.0, 80.0), (10.0, 20.0)])
def test_brackets_that_cut_between_the_two_ranks_resolve_in_one_more_pass(lo, hi):
    """The median of 0..99 sits between ranks 49 and 50; a bracket that holds only one of
    them (or neither) is widened so that the next pass holds both."""
    from jetlib.stats.quantiles import _run_passes, _Selection

    data = np.arange(100, dtype=np.float32)[:, None]  # (N, F=1)
    sel = _Selection(np.zeros((1, 0), np.float32), np.zeros(0, np.int64), np.array([50.0]))
    sel.lo[:], sel.hi[:] = lo, hi
    passes = []

    def full():
        passes.append(1)
        return iter([{"x": (data[:37], None)}, {"x": (data[37:], None)}])

    _run_passes({"x": sel}, full)
    assert sel.result[0, 0] == 49.5
    assert len(passes) == 2 and sel.n.tolist() == [100]


def test_bounds_repeated_in_the_data_but_not_in_the_sample():
    """A sample with no repeated value gives closed brackets (values equal to a bound are
    kept, not counted); the full data repeating the bounds many times is still exact."""
    rng = np.random.default_rng(11)
    sample = np.unique(rng.normal(size=(1, 3000)).astype(np.float32))[None, :]
    from jetlib.stats.quantiles import _Selection

    sel = _Selection(sample, np.arange(sample.shape[1]), np.array([16.0, 50.0, 84.0]))
    assert sel.closed.all()
    # every sample value (bounds included) 40 times, plus fresh values
    data = np.concatenate([np.repeat(sample, 40, axis=1), rng.normal(size=(1, 30000)).astype(np.float32)], axis=1)
    data = data[:, rng.permutation(data.shape[1])]
    chunks = np.array_split(data, 7, axis=1)
    p, n = exact_percentiles(lambda: iter([{"x": (sample, np.arange(sample.shape[1]))}]),
                             lambda: ({"x": (c.T, None)} for c in chunks), {"x": 1}, [16, 50, 84])["x"]  # fmt: skip
    np.testing.assert_allclose(p[0], np.percentile(data[0], [16, 50, 84]), rtol=1e-6)
    assert n[0] == data.shape[1]


def test_results_are_not_cut_in_a_pipe(monkeypatch, capsys):
    """Piped, rich assumed 80 columns and cut table cells ('375,4…'); the results console is
    wide there, unless COLUMNS says otherwise."""
    from rich.table import Table

    from jetlib.cli import results_console

    monkeypatch.delenv("COLUMNS", raising=False)
    t = Table()
    for c in ("array", "feature", "values", "p16", "median", "p84", "scale"):
        t.add_column(c, no_wrap=True)
    t.add_row("pf_features", "pt_perp_ratio_long_name", "375,414,123", "-5.136e-05", "0.03912345", "123.4567", "0.123456789")
    results_console().print(t)  # capsys: stdout is not a terminal
    out = capsys.readouterr().out
    assert "…" not in out and "375,414,123" in out and "0.123456789" in out
    monkeypatch.setenv("COLUMNS", "90")
    assert results_console().size.width == 90


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lane_masks_equal_numpy_comparisons(dtype):
    """The scan's comparisons of 64 values into one word: bit j is value at + j, NaN compares
    false, 'finite' leaves out NaN and ±inf; population count and lowest set bit (64 for 0)."""
    import numba as nb

    from jetlib import _bitmask as bm

    @nb.njit
    def words(x, at, a):
        return (bm.below(x, at, a), bm.at_most(x, at, a), bm.equal(x, at, a), bm.finite(x, at, 0))

    @nb.njit
    def bits(w):
        return bm.popcount(w), bm.lowest_bit(w)

    rng = np.random.default_rng(3)
    x = rng.integers(-3, 4, 300).astype(dtype)
    x[rng.random(300) < 0.1] = np.nan
    x[[5, 77, 140]] = [np.inf, -np.inf, np.inf]

    def word(flags):
        return sum(1 << int(j) for j in np.flatnonzero(flags))

    for at in (0, 1, 63, 100, 300 - 64):
        v = x[at : at + 64]
        for a in (-1.0, 0.0, 2.5, np.inf):
            got = words(x, at, a)
            assert got[:3] == (word(v < a), word(v <= a), word(v == a)), (at, a)
            assert got[3] == word(np.isfinite(v))
    for w in (0, 1, 1 << 63, 0b101000, 2**64 - 1):
        assert bits(np.uint64(w)) == (bin(w).count("1"), (w & -w).bit_length() - 1 if w else 64)


@pytest.mark.parametrize("jets", [10, 100, 1000, 1500, 14_000, 100_000])
@pytest.mark.parametrize("fraction", [0.001, 0.09, 0.5, 2.0])
def test_sample_slices_are_whole_compression_chunks_past_one(jets, fraction):
    from jetlib.stats import _sample_range
    from jetlib.store.shards import CHUNK_JETS

    for index in range(5):
        a, b = _sample_range(jets, fraction, index)
        n = b - a
        assert 0 <= a < b <= jets and n >= min(jets, 64)
        if n > CHUNK_JETS and n < jets:
            assert n % CHUNK_JETS == 0 and abs(n - jets * fraction) <= CHUNK_JETS / 2


@pytest.mark.parametrize("chunks", [1, 5, 20, 1000])
def test_sample_shards_cover_every_file_in_proportion(chunks):
    """About one shard per 1,024 sample jets, at least one of every input file, shared in
    proportion to the files' jets and spread through each file's shards; never one twice."""
    from jetlib.stats import _sample_shards

    # file a: 40 shards of 1,000 jets; b: 10 of 1,000; c: one small shard; d: 8 of 2,000
    files = ["a"] * 40 + ["b"] * 10 + ["c"] + ["d"] * 8
    jets = [1000] * 50 + [30] + [2000] * 8
    picked = _sample_shards(jets, files, chunks * 1024)
    assert picked == sorted(set(picked))
    per_file = {f: [i for i in picked if files[i] == f] for f in "abcd"}
    assert all(per_file.values())  # every file, the small one too
    if chunks >= len(files):
        assert len(picked) == len(files)
    if chunks == 20:
        assert [len(per_file[f]) for f in "abcd"] == [12, 3, 1, 5]  # 20 x 40/66, 10/66, 0, 16/66
        a = per_file["a"]
        assert a[0] < 4 and a[-1] > 35 and max(np.diff(a)) <= 4  # through the whole file


def test_small_shards_still_give_the_whole_sample():
    """Shards smaller than a compression chunk (a tight selection, small tasks): enough of
    them for the sample's jets, not one per 1,024 wanted."""
    from jetlib.stats import _sample_range, _sample_shards

    jets, files = [100] * 1000, ["f"] * 1000
    picked = _sample_shards(jets, files, 20_000)
    fraction = 20_000 / sum(jets[i] for i in picked)
    got = sum(b - a for a, b in (_sample_range(jets[i], fraction, i) for i in picked))
    assert len(picked) == 200 and got == 20_000


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.3])
def test_a_sample_of_some_shards_allows_for_shards_that_differ(shift):
    """A sample of some shards out of many whose values shift from shard to shard
    (conditions drifting along a file) by ``shift`` of the spread. Alike shards keep the
    sample of 20; slightly different ones widen the brackets; ones that differ more than the
    brackets should allow for are sampled again from every shard. Either way the brackets
    hold and one pass is enough: without this, 9-29 of 100 samples of shards shifted by
    0.2-0.3 missed a bracket, each a second pass over the store."""
    from jetlib.stats import _sample_range, _sample_shards

    rng = np.random.default_rng(3)  # a sample that missed a bracket at shift 0.3 before
    shards = [rng.normal(d, 1, (1000, 1)).astype(np.float32) for d in rng.normal(0, shift, 300)]
    picked = _sample_shards([1000] * 300, ["f"] * 300, 20_000)

    def sample_of(which, with_part):
        fraction = 20_000 / (1000 * len(which))
        for n, i in enumerate(which):
            a, b = _sample_range(1000, fraction, i)
            v = (shards[i][a:b].T.copy(), np.arange(a, b) + 1000 * i)
            yield {"x": v + ((np.full(b - a, n),) if with_part else ())}

    resampled, passes = [], []

    def every():
        resampled.append(1)
        return sample_of(range(300), False)

    def full():
        passes.append(1)
        return ({"x": (c, None)} for c in shards)

    p, n = exact_percentiles(lambda: sample_of(picked, True), full, {"x": 1}, [16, 50, 84], resample=every)["x"]
    np.testing.assert_allclose(p[0], np.percentile(np.concatenate(shards)[:, 0], [16, 50, 84]), rtol=1e-6)
    assert len(passes) == 1 and n[0] == 300_000
    assert len(resampled) == (shift > 0.1)


def test_compute_stats_samples_some_shards_of_a_file_and_can_sample_them_all(store_factory, monkeypatch):
    """compute_stats hands exact_percentiles a sample of some of a file's shards, each value
    with its shard's number, and a sample of every shard (without) to fall back on; with
    every shard in the sample there is nothing to fall back on."""
    import jetlib.stats as stats_module

    path = store_factory(jets_per_shard=(300,) * 12, files=["a.root"] * 12)
    original = stats_module.exact_percentiles
    seen = []

    def spy(sample, full, n_features, q, resample=None):
        def jets(make):  # (shards read, jets, tuple lengths, shard numbers)
            parts = [d["jet_features"] for d in make()]
            return len(parts), sum(p[1].size for p in parts), {len(p) for p in parts}, {int(p[2][0]) for p in parts if len(p) > 2}

        seen.append((jets(sample), resample and jets(resample)))
        return original(sample, full, n_features, q, resample=resample)

    monkeypatch.setattr(stats_module, "exact_percentiles", spy)
    st = compute_stats(path, sample_jets=600)  # 2 of the 12 shards of 300 jets
    assert seen[-1] == ((2, 600, {3}, {0, 1}), (12, 12 * 64, {2}, set()))  # (at least 64 jets a shard)
    jf = Store(path).read(["jet_features"])["jet_features"]
    np.testing.assert_allclose(st.arrays["jet_features"].center, np.median(jf, axis=0), rtol=1e-6)
    compute_stats(path, sample_jets=10_000)  # every shard
    assert seen[-1] == ((12, 3600, {2}, set()), None)
