"""jetlib.Reader: every jet once, values equal the store, zero copy where promised, sampling,
standardisation, workers/ranks, resume, and clear errors on bad stores."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jetlib.errors import ShardError, StoreError
from jetlib.reader import Reader
from jetlib.store import Store

IDS = ["event", "jet_index"]


def _ids(batch):
    return list(zip(np.asarray(batch["event"]).tolist(), np.asarray(batch["jet_index"]).tolist()))


_M64 = 2**64 - 1
_GAMMA = 0x9E3779B97F4A7C15


def _splitmix_mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _splitmix_uniforms(seed, epoch, shard, start, n):
    """Pure-Python reference of jet_uniforms: splitmix64 keyed by (seed, epoch, shard)."""
    key = _splitmix_mix(_splitmix_mix(_splitmix_mix((seed + _GAMMA) & _M64) ^ epoch) ^ shard)
    return [(_splitmix_mix((key + (start + i + 1) * _GAMMA) & _M64) >> 11) / 2**53 for i in range(n)]


def test_jet_uniforms_are_splitmix64_per_row():
    from jetlib.reader.plan import _mix, jet_uniforms

    # the reference's mixer gives splitmix64's published stream for seed 1234567
    state = 1234567
    for want in (6457827717110365317, 3203168211198807973, 9817491932198370423):
        state = (state + _GAMMA) & _M64
        assert _splitmix_mix(state) == want == int(_mix(np.uint64(state)))
    got = jet_uniforms(5, 2, 7, 1000, 300)
    np.testing.assert_array_equal(got, _splitmix_uniforms(5, 2, 7, 1000, 300))
    # a row's draw does not depend on the unit it is asked in
    np.testing.assert_array_equal(got, np.concatenate([jet_uniforms(5, 2, 7, 1000, 64), jet_uniforms(5, 2, 7, 1064, 236)]))
    assert not np.array_equal(got, jet_uniforms(5, 3, 7, 1000, 300))  # another epoch, other draws
    u = np.sort(jet_uniforms(1, 0, 0, 0, 200_000))  # Kolmogorov-Smirnov against U(0, 1)
    d = np.maximum(np.arange(1, u.size + 1) / u.size - u, u - np.arange(u.size) / u.size).max()
    assert d < 1.95 / np.sqrt(u.size)  # the 0.1% critical value


def _reference(path):
    s = Store(path)
    a = s.read(s.layout.arrays.keys())
    key = {k: i for i, k in enumerate(zip(a["event"].tolist(), a["jet_index"].tolist()))}
    return a, key


@pytest.mark.parametrize("shuffle", [False, True, "slices"])
@pytest.mark.parametrize("fmt,compression", [("hdf5", "none"), ("hdf5", "lz4"), ("parquet", "none")])
def test_every_jet_once_with_its_values(store_factory, shuffle, fmt, compression):
    path = store_factory(fmt=fmt, compression=compression)
    ref, key = _reference(path)
    r = Reader(path, batch_size=128, shuffle=shuffle, seed=3, observers=IDS, output="numpy", buffer_jets=300)
    seen = []
    for b in r:
        ids = _ids(b)
        rows = np.array([key[i] for i in ids])
        for n in ("pf_features", "pf_mask", "sv_features", "jet_features", "label_onehot", "truth"):
            np.testing.assert_array_equal(b[n], ref[n][rows], err_msg=n)
        np.testing.assert_array_equal(b["label"], ref["label"][rows])
        assert b["label"].dtype == np.int64
        seen += ids
    assert len(seen) == len(set(seen)) == len(key)
    assert len(r) == len([1 for _ in r])
    if shuffle:
        assert seen != sorted(seen, key=key.get)
    else:  # store order, also across the ends of shards (500 + 700 + 300 jets, batches of 128)
        assert seen == sorted(seen, key=key.get)


def _watch_decoding(monkeypatch, block_jets):
    """Make the reader read decoded stores in blocks of ``block_jets`` rows, and record each
    block it decodes to hold ((file, first row))."""
    import jetlib.reader.reader as mod

    monkeypatch.setattr(mod, "CHUNK_JETS", block_jets)
    monkeypatch.setattr(mod, "ROW_GROUP_JETS", block_jets)
    decoded = []
    real = mod.ReaderBase._block

    def watched(self, i, b, keep=()):
        if (i, b) not in self._blocks:
            decoded.append((self.entries[i].path.name, b * block_jets))
        return real(self, i, b, keep)

    monkeypatch.setattr(mod.ReaderBase, "_block", watched)
    return decoded


@pytest.mark.parametrize("shuffle", [True, "slices", False])
@pytest.mark.parametrize("fmt,compression", [("parquet", "none"), ("hdf5", "lz4")])
def test_decoded_blocks_stay_within_decoded_mb(store_factory, monkeypatch, shuffle, fmt, compression):
    """Compressed shards are decoded a window of blocks at a time: each block once per
    epoch, into a slab no larger than ``decoded_mb``, also when a batch joins two windows
    or the short last units of blocks; values as in the store."""
    path = store_factory(fmt=fmt, compression=compression, jets_per_shard=(300, 200, 250, 400, 150, 350))
    decoded = _watch_decoding(monkeypatch, 100)
    jet_bytes = sum(Store(path).layout.arrays[n].jet_bytes for n in Reader(path, output="numpy", observers=IDS).names)
    fit = 550  # jets: 5 blocks of 100
    r = Reader(path, batch_size=64, shuffle=shuffle, seed=2, output="numpy", observers=IDS, decoded_mb=fit * jet_bytes / 1e6)
    assert r.jet_bytes == jet_bytes and r.block_jets == 100 and r.window_blocks == 5 and r.window_jets == 500
    blocks = {(e.path.name, a) for e in r.entries for a in range(0, e.jets, 100)}
    ref, key = _reference(path)
    for epoch in range(2):
        r.set_epoch(epoch)
        decoded.clear()
        held = {(r.entries[i].path.name, b * 100) for i, b in r._blocks}  # the last window of the epoch before
        seen = []
        for b in r:
            ids = _ids(b)
            np.testing.assert_array_equal(b["pf_features"], ref["pf_features"][[key[i] for i in ids]])
            np.testing.assert_array_equal(b["label"], ref["label"][[key[i] for i in ids]])
            seen += ids
        assert len(seen) == len(set(seen)) == 1650
        assert len(decoded) == len(set(decoded)), decoded
        if shuffle is True:
            assert set(decoded) | held == blocks, (decoded, held)
        else:  # a block too short for a whole 64-jet unit is read by its rows alone
            whole = {(e.path.name, a) for e in r.entries for a in range(0, e.jets, 100) if min(e.jets - a, 100) >= 64}
            assert whole <= set(decoded) | held <= blocks, (decoded, held)
    # decoded rows are kept in the slab only (a block is decoded into its slot): 5 slots of 100 jets
    assert sum(a.nbytes for a in r._slab.values()) == 5 * 100 * jet_bytes <= fit * jet_bytes


def test_windows_mix_blocks_of_many_shards(store_factory, monkeypatch):
    """With blocks smaller than shards, a window (and so a batch) draws on more shards than
    a window of whole shards of the same size."""
    path = store_factory(fmt="hdf5", compression="lz4", jets_per_shard=(300, 200, 250, 400, 150, 350))
    import jetlib.reader.reader as mod

    per_batch = {}
    for block in (50, 400):  # (400: each shard is one block)
        monkeypatch.setattr(mod, "CHUNK_JETS", block)
        r = Reader(path, batch_size=64, shuffle=True, seed=4, output="numpy", observers=IDS, buffer_jets=400)
        shard_of = {ev: i for i, e in enumerate(r.entries) for ev in mod.read_shard(e.path, r.store.layout, ["event"])["event"]}
        per_batch[block] = np.mean([len({shard_of[ev] for ev in b["event"]}) for b in r])
    assert per_batch[50] > per_batch[400] + 1, per_batch


def test_decoded_mb_below_one_block_decodes_one_at_a_time(store_factory, monkeypatch):
    path = store_factory(fmt="parquet", jets_per_shard=(300, 200, 250, 400, 150, 350))
    decoded = _watch_decoding(monkeypatch, 100)
    with pytest.warns(UserWarning, match=r"holds \d+ jets .* fewer than a block of rows .* \(100 jets"):
        r = Reader(path, batch_size=64, shuffle=True, seed=1, output="numpy", observers=IDS, decoded_mb=0.01)
    assert r.window_blocks == 1 and not r._slab
    seen = [i for b in r for i in _ids(b)]
    assert len(seen) == len(set(seen)) == 1650
    assert len(decoded) == len(set(decoded)) == 18
    assert sum(a.nbytes for a in r._slab.values()) == 100 * r.jet_bytes


def test_same_seed_same_batches_and_set_epoch_reshuffles(store_factory):
    path = store_factory()
    order = lambda r: [i for b in r for i in _ids(b)]  # noqa: E731
    a = Reader(path, batch_size=100, seed=1, observers=IDS, output="numpy")
    b = Reader(path, batch_size=100, seed=1, observers=IDS, output="numpy")
    first = order(a)
    assert first == order(b)
    a.set_epoch(1)
    second = order(a)
    assert second != first and sorted(second) == sorted(first)


@pytest.mark.parametrize("shuffle", [True, "slices"])
@pytest.mark.parametrize("compression", ["none", "lz4"])
def test_ranks_and_workers_partition_the_epoch(store_factory, monkeypatch, shuffle, compression):
    """15 batches over 2 ranks: DDP needs 8 on each, so rank 1 repeats the epoch's first
    batch (rank 0's first); with drop_last both get 7 and no jet is read twice (a decoded
    store too, whose plan cuts units at its blocks, here of 256 jets)."""
    import jetlib.reader.reader as mod

    monkeypatch.setattr(mod, "CHUNK_JETS", 256)
    path = store_factory(compression=compression)  # 500 + 700 + 300 jets: 15 batches of 100 either way
    _, key = _reference(path)
    for drop_last in (False, True):
        per_rank = []
        for rank in range(2):
            r = Reader(path, batch_size=100, shuffle=shuffle, rank=rank, world_size=2, observers=IDS,
                       output="numpy", drop_last=drop_last)  # fmt: skip
            got = {w: [_ids(b) for b in r.batches(worker=w, num_workers=3)] for w in range(3)}
            per_rank.append([ids for w in range(3) for ids in got[w]])
            assert len(per_rank[-1]) == len(r) == (7 if drop_last else 8)
        seen = [i for ids in per_rank[0] + per_rank[1] for i in ids]
        if drop_last:
            assert len(seen) == len(set(seen)) == 1400
        else:
            assert set(seen) == set(key) and len(seen) == 1600
            one = Reader(path, batch_size=100, shuffle=shuffle, observers=IDS, output="numpy")
            first = _ids(next(iter(one)))
            twice = sorted(i for i in set(seen) if seen.count(i) == 2)
            assert twice == sorted(first)


def test_ranks_get_equal_batches_with_sampling_weights(store_factory):
    from jetlib.weights import compute_weights

    path = store_factory(fmt="parquet", jets_per_shard=(900, 800, 700), class_probs=[0.5, 0.3, 0.15, 0.05])
    compute_weights(path, bins="pt=15:300:log6,eta=-2.5:2.5:4")
    for batch_size, drop_last in ((70, False), (90, True), (1000, False)):
        for epoch in range(3):
            n = []
            for rank in range(3):
                r = Reader(path, batch_size=batch_size, weights="flat", rank=rank, world_size=3, seed=epoch,
                           output="numpy", drop_last=drop_last, buffer_jets=500)  # fmt: skip
                n.append(sum(1 for _ in r))
            one = Reader(path, batch_size=batch_size, weights="flat", seed=epoch, output="numpy",
                         drop_last=drop_last, buffer_jets=500)  # fmt: skip
            total = sum(1 for _ in one)
            assert n == [total // 3 if drop_last else -(-total // 3)] * 3, (batch_size, epoch, total)


def test_resume_mid_epoch(store_factory):
    path = store_factory()
    r = Reader(path, batch_size=100, seed=5, observers=IDS, output="numpy")
    r.set_epoch(2)
    full = [_ids(b) for b in r]
    it = iter(r)
    for _ in range(4):
        next(it)
    state = r.state_dict()
    assert state == {"epoch": 2, "batch": 4, "seed": 5}
    fresh = Reader(path, batch_size=100, seed=5, observers=IDS, output="numpy")
    fresh.load_state_dict(json.loads(json.dumps(state)))
    assert [_ids(b) for b in fresh] == full[4:]
    assert [_ids(b) for b in fresh] == full  # the next pass is a whole epoch again


def test_zero_copy_views_of_the_mapping(store_factory):
    path = store_factory(jets_per_shard=(1000,))
    r = Reader(path, batch_size=200, shuffle="slices", seed=0, output="numpy")
    lo, hi = r._shard(0).address_range()
    assert hi - lo == (path / "shards" / "part-00000.h5").stat().st_size
    n = 0
    for b in r:
        for name, arr in b.items():
            if name == "label":  # converted to int64 for losses: a copy by design
                continue
            assert lo <= arr.ctypes.data and arr.ctypes.data + arr.nbytes <= hi, name
        n += 1
    assert n == 5
    shuffled = Reader(path, batch_size=200, shuffle=True, output="numpy")
    b = next(iter(shuffled))
    assert not (lo <= b["pf_features"].ctypes.data < hi)  # a gathered batch is one copy, outside


def test_zero_copy_torch_tensors(store_factory):
    torch = pytest.importorskip("torch")
    path = store_factory(jets_per_shard=(1000,))
    r = Reader(path, batch_size=250, shuffle="slices", output="torch")
    lo, hi = r._shard(0).address_range()
    for b in r:
        t = b["pf_features"]
        assert isinstance(t, torch.Tensor)
        assert lo <= t.data_ptr() and t.data_ptr() + t.numel() * 4 <= hi


@pytest.mark.torch
def test_torch_batches_ids_are_signed(store_factory):
    """run, lumi and event (unsigned in the store) come as int64 tensors that torch can do
    arithmetic on, with the store's values; NumPy batches keep the store's dtypes."""
    torch = pytest.importorskip("torch")
    path = store_factory(jets_per_shard=(300,))
    ref, key = _reference(path)
    obs = ["run", "lumi", "event", "jet_index"]
    (b,) = Reader(path, batch_size=300, shuffle=True, observers=obs, output="torch")
    for k in ("run", "lumi", "event"):
        assert b[k].dtype == torch.int64
        rows = [key[i] for i in zip(b["event"].tolist(), b["jet_index"].tolist())]
        assert b[k].tolist() == ref[k][rows].tolist()
    assert (b["event"] % 2).sum() >= 0
    assert b["label_onehot"].dtype == torch.uint8
    (n,) = Reader(path, batch_size=300, observers=obs, output="numpy")
    assert n["event"].dtype == ref["event"].dtype == np.uint64


def test_standardize_applies_the_stored_stats(store_factory):
    from jetlib.stats import compute_stats

    path = store_factory()
    st = compute_stats(path)
    raw = Reader(path, batch_size=300, shuffle="slices", seed=2, output="numpy")
    std = Reader(path, batch_size=300, shuffle="slices", seed=2, output="numpy", standardize=True)
    for a, b in zip(raw, std):
        np.testing.assert_allclose(b["sv_features"], st.apply("sv_features", a["sv_features"], a["sv_mask"]), rtol=1e-6)
        np.testing.assert_allclose(b["jet_features"], st.apply("jet_features", a["jet_features"]), rtol=1e-6)
        np.testing.assert_array_equal(b["pf_mask"], a["pf_mask"])
    # the mapping was not written through
    np.testing.assert_array_equal(next(iter(raw))["pf_features"], next(iter(raw))["pf_features"])



def test_standardize_keeps_wrapped_padding_as_weaver_does(store_factory):
    """A block skimmed with `padding: wrap` holds copies of its real nodes in the padding:
    standardised they must be the standardised real nodes (weaver standardises, then wraps),
    not zeros."""
    from jetlib.stats import compute_stats

    path = store_factory(padding="wrap")
    st = compute_stats(path)
    fs = st.arrays["pf_features"]
    raw = Reader(path, batch_size=400, shuffle=False, output="numpy")
    std = Reader(path, batch_size=400, shuffle=False, output="numpy", standardize=True)
    for a, b in zip(raw, std):
        m = a["pf_mask"][:, 0] > 0
        n = m.sum(1)
        real = np.clip((a["pf_features"] - fs.center[None, :, None]) * fs.scale[None, :, None], fs.lo[None, :, None], fs.hi[None, :, None])
        expected = np.where(m[:, None, :], real, 0)
        for j in np.flatnonzero(n):  # the padding repeats the standardised real nodes
            expected[j] = expected[j][:, np.arange(m.shape[1]) % n[j]]
        np.testing.assert_allclose(b["pf_features"], expected, rtol=1e-6, atol=1e-7)
        assert (b["pf_features"][n < m.shape[1]] != 0).any()  # the padding is not zeroed

def test_weighted_sampling_matches_the_weights(store_factory):
    from jetlib.weights import compute_weights

    path = store_factory(jets_per_shard=(20_000, 20_000), class_probs=[0.5, 0.3, 0.15, 0.05])
    w = compute_weights(path, bins="pt=15:300:log6,eta=-2.5:2.5:4", class_weights={"b": 2})
    exp = np.array(list(w.expected_counts().values()))
    counts = np.zeros(4)
    epochs = 10
    r = Reader(path, batch_size=512, weights="flat", seed=7, observers=["jet_pt"], output="numpy")
    for e in range(epochs):
        r.set_epoch(e)
        for b in r:
            counts += np.bincount(b["label"], minlength=4)
    np.testing.assert_allclose(counts / epochs, exp, rtol=0.05)
    assert counts[0] / counts[1] == pytest.approx(2.0, rel=0.08)  # class weight b=2
    again = Reader(path, batch_size=512, weights="flat", seed=7, observers=IDS, output="numpy")
    again2 = Reader(path, batch_size=512, weights="flat", seed=7, observers=IDS, output="numpy")
    assert [_ids(b) for b in again] == [_ids(b) for b in again2]


@pytest.mark.parametrize("compression", ["none", "lz4"])
def test_weighted_sample_is_the_jets_drawn_below_their_acceptance(store_factory, monkeypatch, compression):
    """Each jet is kept when its splitmix64 draw (seed, epoch, shard, row) falls below its weights.lookup
    probability, whether the reader keeps whole shards' acceptance (default), looks each
    unit up alone (a mapped store bigger than its cache) or evicts shards (a decoded one)."""
    import jetlib.reader.reader as rr
    from jetlib.reader.plan import make_units
    from jetlib.weights import compute_weights

    path = store_factory(jets_per_shard=(3000, 2000, 2500), compression=compression)
    w = compute_weights(path, bins="pt=15:300:log6,eta=-2.5:2.5:4", class_weights={"b": 3})
    a, _ = _reference(path)
    p = w.lookup({"jet_pt": a["jet_pt"], "jet_eta": a["jet_eta"]}, a["label"])
    first = np.cumsum([0, 3000, 2000])
    for epoch in (0, 1):
        want = set()
        for u in make_units([3000, 2000, 2500], 64):
            draw = np.array(_splitmix_uniforms(5, epoch, u.shard, u.start, u.stop - u.start))
            rows = first[u.shard] + np.arange(u.start, u.stop)
            want |= {(int(a["event"][i]), int(a["jet_index"][i])) for i in rows[draw < p[rows]]}
        got = []
        for cache in (rr.ACCEPT_CACHE_JETS, 100):
            monkeypatch.setattr(rr, "ACCEPT_CACHE_JETS", cache)
            r = Reader(path, batch_size=256, weights="flat", seed=5, observers=IDS, output="numpy")
            r.set_epoch(epoch)
            got.append([_ids(b) for b in r])
        assert got[0] == got[1]  # same batches, in the same order
        ids = [i for b in got[0] for i in b]
        assert len(ids) == len(set(ids)) and set(ids) == want
        assert 0 < len(want) < len(p)


@pytest.mark.parametrize("compression", ["none", "lz4"])
def test_expected_jets_of_a_shard_subset(store_factory, compression):
    """With ``shards=``, the expected epoch is the summed acceptance of those shards' jets,
    not the whole store's."""
    from jetlib.weights import compute_weights

    path = store_factory(jets_per_shard=(3000, 2000, 2500), compression=compression)
    w = compute_weights(path, bins="pt=15:300:log6,eta=-2.5:2.5:4", class_weights={"b": 3})
    a, _ = _reference(path)
    p = w.lookup({"jet_pt": a["jet_pt"], "jet_eta": a["jet_eta"]}, a["label"])
    whole = Reader(path, weights="flat", output="numpy").expected_jets()
    assert whole == pytest.approx(p.sum(), rel=1e-9)
    assert whole == pytest.approx(sum(w.expected_counts().values()), rel=1e-9)
    assert Reader(path, weights="flat", shards=[1], output="numpy").expected_jets() == pytest.approx(p[3000:5000].sum(), rel=1e-9)
    assert Reader(path, weights="flat", shards=slice(0, 3, 2), output="numpy").expected_jets() == pytest.approx(
        p[:3000].sum() + p[5000:].sum(), rel=1e-9
    )
    assert Reader(path, shards=[1], output="numpy").expected_jets() == 2000


def test_bad_arguments_are_named(store_factory):
    path = store_factory(jets_per_shard=(300, 200))
    with pytest.raises(IndexError, match="no shard 7; the store has 2 shards"):
        Reader(path, shards=[7])
    with pytest.raises(ValueError, match=r"shards=slice\(5, None, None\) selects no jets"):
        Reader(path, shards=slice(5, None))
    with pytest.raises(ValueError, match="world_size must be >= 1, not 0"):
        Reader(path, world_size=0)
    with pytest.raises(ValueError, match="buffer_jets must be >= 1, not 0"):
        Reader(path, buffer_jets=0)
    with pytest.raises(ValueError, match="seed must be >= 0, not -1"):
        Reader(path, seed=-1)
    for bad in (None, 1.5, "abc"):  # named when the reader is made, not by NumPy at the first batch
        with pytest.raises(TypeError, match=f"seed must be an integer, not {bad!r}"):
            Reader(path, seed=bad)
    with pytest.raises(ValueError, match=r"rank 2 outside 0..1"):
        Reader(path, rank=2, world_size=2)
    with pytest.raises(TypeError, match="batch_size must be an integer, not 2.5"):
        Reader(path, batch_size=2.5)
    assert len(Reader(path, shards=[-1], batch_size=100, output="numpy")) == 2


def test_errors_name_the_shard_or_block(store_factory, tmp_path):
    with pytest.raises(StoreError, match="no jets: all 1 of its tasks failed"):
        Reader(store_factory("failed", jets_per_shard=(), failed=1))
    path = store_factory()
    with pytest.raises(StoreError, match="no block 'pff'.*did you mean pf"):
        Reader(path, blocks=["pff"])
    with pytest.raises(StoreError, match="jetlib weights"):
        Reader(path, weights="flat")
    with pytest.raises(StoreError, match="jetlib stats"):
        Reader(path, standardize=True)
    shard = path / "shards" / "part-00001.h5"
    data = bytearray(shard.read_bytes())
    data[-100] ^= 0xFF  # same size, other content
    shard.write_bytes(bytes(data))
    with pytest.raises(ShardError, match="part-00001.h5.*checksum"):
        Reader(path)
    shard.write_bytes(bytes(data[:-1000]))
    with pytest.raises(ShardError, match="part-00001.h5.*truncated"):
        Reader(path, verify=False)
    meta = json.loads((path / "jetlib.json").read_text())
    meta["format_version"] = 99
    (path / "jetlib.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="format version 99"):
        Reader(path)


@pytest.mark.torch
def test_dataloader_workers_every_jet_once_and_errors_surface(store_factory):
    torch = pytest.importorskip("torch")
    path = store_factory()
    _, key = _reference(path)
    r = Reader(path, batch_size=64, observers=IDS)
    loader = torch.utils.data.DataLoader(r, batch_size=None, num_workers=2, timeout=60)
    seen = [i for b in loader for i in _ids(b)]
    assert len(seen) == len(set(seen)) == len(key)
    order0 = [i for b in Reader(path, batch_size=64, observers=IDS, output="numpy") for i in _ids(b)]
    assert seen == order0  # workers deal batches round-robin: the loader yields the plan's order
    # a shard that breaks after the reader was made: the worker's error reaches the main process
    shard = path / "shards" / "part-00002.h5"
    raw = bytearray(shard.read_bytes())
    raw[:8] = b"\0" * 8  # destroy the HDF5 signature
    shard.write_bytes(bytes(raw))
    loader = torch.utils.data.DataLoader(r, batch_size=None, num_workers=2, timeout=60)
    with pytest.raises(Exception, match="part-00002.h5"):
        for _ in loader:
            pass


@pytest.mark.parametrize("compression", ["none", "lz4"])
def test_batches_changed_in_place_do_not_change_later_epochs(store_factory, compression):
    """Zero-copy batches are views of the reader's mapping: NumPy batches are read-only, and a
    torch tensor changed in place (x.log_()) changes that batch only, not what the next epoch
    reads. A decoded store's batches are copies (its slab is reused)."""
    path = store_factory(compression=compression)
    ref, _ = _reference(path)
    r = Reader(path, batch_size=100, shuffle=False, output="numpy")
    b = next(iter(r))
    if compression == "none":
        with pytest.raises(ValueError, match="read-only"):
            b["jet_features"][:, 0] = 0
    else:
        b["jet_features"][:, 0] = 0
        np.testing.assert_array_equal(next(iter(r))["jet_features"], ref["jet_features"][:100])
    torch = pytest.importorskip("torch")
    r = Reader(path, batch_size=100, shuffle="slices", seed=1, output="torch", observers=IDS)
    _, key = _reference(path)
    for epoch in range(3):
        r.set_epoch(epoch % 2)  # epochs 0 and 2: the same batches again
        n = 0
        for b in r:
            rows = np.array([key[i] for i in _ids(b)])
            np.testing.assert_array_equal(b["pf_features"].numpy(), ref["pf_features"][rows])
            b["pf_features"].mul_(-2)  # in place, on a view of the reader's memory
            b["jet_features"][:, 0].log_()
            n += len(rows)
        assert n == len(key)
    assert torch.is_tensor(b["pf_features"])


@pytest.mark.torch
@pytest.mark.parametrize("output", ["torch", "numpy"])
def test_persistent_workers_follow_set_epoch_and_resume(store_factory, output):
    """DataLoader workers keep their copy of the reader with persistent_workers=True: the
    epoch and resume point live in shared memory, so set_epoch and load_state_dict reach them;
    NumPy output splits batches between workers too."""
    torch = pytest.importorskip("torch")
    path = store_factory()

    def plan(epoch):
        one = Reader(path, batch_size=64, seed=4, observers=IDS, output="numpy")
        one.set_epoch(epoch)
        return [_ids(b) for b in one]

    r = Reader(path, batch_size=64, seed=4, observers=IDS, output=output)
    loader = torch.utils.data.DataLoader(r, batch_size=None, num_workers=2, persistent_workers=True, timeout=60)
    for epoch in range(2):
        r.set_epoch(epoch)
        assert [_ids(b) for b in loader] == plan(epoch)
    assert plan(0) != plan(1)
    r.load_state_dict({"epoch": 1, "batch": 5, "seed": 4})
    for epoch in (1, 2):  # the README's loop after a resume
        r.set_epoch(epoch)
        assert [_ids(b) for b in loader] == plan(epoch)[5 if epoch == 1 else 0 :]


def test_resume_survives_set_epoch_of_its_epoch(store_factory):
    path = store_factory()
    r = Reader(path, batch_size=100, seed=5, observers=IDS, output="numpy")
    r.set_epoch(3)
    full = [_ids(b) for b in r]
    r.load_state_dict({"epoch": 3, "batch": 4, "seed": 5})
    r.set_epoch(3)  # as a training loop does at the top of each epoch
    assert [_ids(b) for b in r] == full[4:]
    r.set_epoch(4)
    r.load_state_dict({"epoch": 3, "batch": 4, "seed": 5})
    r.set_epoch(4)  # another epoch: the resume point does not apply
    assert len([_ids(b) for b in r]) == len(full)
    with pytest.raises(ValueError, match="past the end of the epoch"):
        r.load_state_dict({"epoch": 3, "batch": 99, "seed": 5})
    with pytest.raises(TypeError, match="set_epoch takes an integer"):
        r.set_epoch("1")
    with pytest.raises(ValueError, match="set_epoch takes an integer >= 0, not -1"):
        r.set_epoch(-1)
    # a checkpoint taken after set_epoch, before the epoch's first batch, is the epoch's start
    r.set_epoch(5)
    assert r.state_dict() == {"epoch": 5, "batch": 0, "seed": 5}
    r.load_state_dict({"epoch": 5, "batch": 2, "seed": 5})
    r.set_epoch(5)
    assert r.state_dict() == {"epoch": 5, "batch": 2, "seed": 5}


def test_shards_by_name_stay_put_when_a_failed_task_is_redone(store_factory):
    """Positions count done shards, so they move when a failed task is redone; names do not."""
    path = store_factory(jets_per_shard=(300, 200, 250))
    _, key = _reference(path)
    by_name = Reader(path, shards=["part-00002", "part-00000.h5"], observers=IDS, output="numpy", shuffle=False)
    ids = {i for b in by_name for i in _ids(b)}
    assert len(ids) == 550 and ids == {i for b in Reader(path, shards=[0, 2], observers=IDS, output="numpy") for i in _ids(b)}
    man = path / "manifest.jsonl"
    lines = man.read_text().splitlines()
    first = json.loads(lines[0])
    man.write_text("\n".join(lines[1:] + [json.dumps({**first, "status": "failed", "shards": []})]) + "\n")  # task 0 failed
    with pytest.warns(UserWarning, match="1 task.* failed"):
        later = Reader(path, shards=["part-00002"], observers=IDS, output="numpy")
    assert len({i for b in later for i in _ids(b)}) == 250
    with pytest.raises(KeyError, match="no done shard named 'part-00000'"):
        Reader(path, shards=["part-00000"])
    with pytest.raises(ValueError, match="picks part-00001.h5 more than once"):  # position 0 is part-00001 now
        Reader(path, shards=[0, "part-00001"])


def test_incomplete_stores_are_read_with_a_warning(store_factory):
    from jetlib.store.lock import writer_lock

    with pytest.warns(UserWarning, match=r"2 task\(s\) failed; the reader reads the 1,500 jets of the done ones"):
        Reader(store_factory("failed", failed=2), output="numpy")
    path = store_factory()
    with writer_lock(path, "jetlib skim x"):
        with pytest.warns(UserWarning, match="still writing this store"):
            Reader(path, output="numpy")


def test_more_bad_arguments_are_named(store_factory):
    path = store_factory(jets_per_shard=(300, 200))
    assert Reader(path, blocks="pf", observers="event", output="numpy").names[:2] == ["pf_features", "pf_mask"]
    with pytest.raises(ValueError, match="more than once"):
        Reader(path, shards=[0, -2])
    with pytest.raises(TypeError, match="weights= takes the name"):
        Reader(path, weights=True)
    with pytest.raises(ValueError, match="with drop_last=True no batch of 1,000 jets fills up"):
        Reader(path, batch_size=1000, drop_last=True)
    with pytest.raises(ValueError, match=r"no round of 2 batches of 300 jets \(one per rank\) fills up"):
        Reader(path, batch_size=300, drop_last=True, world_size=2)
    with pytest.raises(IndexError, match=r"shards=\[0, 5\]: no shard 5"):
        Reader(path, shards=(i for i in (0, 5)))  # a generator: named as given
    assert len(Reader(path, batch_size=1000, output="numpy")) == 1
    for bad in (0, -1.0, float("nan"), "512", True):
        with pytest.raises(ValueError, match="decoded_mb must be a number of megabytes > 0"):
            Reader(path, decoded_mb=bad)
