"""Shard files: both formats hold the same values, and compress at the same levels."""

from __future__ import annotations

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from jetlib.store import Store
from jetlib.errors import ShardError
from jetlib.store.shards import read_shard, read_shard_into, write_shard


@pytest.mark.parametrize("compression, level", [("gzip", 4), ("zstd", 3), ("lz4", None), ("none", None)])
def test_parquet_and_hdf5_shards_hold_the_same_values_at_the_same_level(store_factory, tmp_path, monkeypatch,
                                                                        compression, level):  # fmt: skip
    import hdf5plugin  # noqa: F401  (LZ4/Zstd filters for plain h5py)

    s = Store(store_factory(jets_per_shard=(300,)))
    arrays = read_shard(s.shards()[0].path, s.layout)
    seen = {}
    real = pq.write_table
    monkeypatch.setattr(pq, "write_table", lambda *a, **k: seen.update(k) or real(*a, **k))
    write_shard(tmp_path / "a.parquet", arrays, s.layout, fmt="parquet", compression=compression)
    write_shard(tmp_path / "a.h5", arrays, s.layout, fmt="hdf5", compression=compression)
    assert seen["compression_level"] == level  # pyarrow's gzip default (9) was 10x slower than HDF5's 4
    with h5py.File(tmp_path / "a.h5", "r") as f:
        ds = f["pf_features"]
        if compression == "gzip":
            assert ds.compression == "gzip" and ds.compression_opts == level
        back_h5 = {k: f[k][:] for k in arrays}
    back_pq = read_shard(tmp_path / "a.parquet", s.layout)
    meta = pq.ParquetFile(tmp_path / "a.parquet").metadata
    assert meta.row_group(0).column(0).compression == {"none": "UNCOMPRESSED"}.get(compression, compression.upper())
    for k, v in arrays.items():
        np.testing.assert_array_equal(back_h5[k], v, err_msg=k)
        np.testing.assert_array_equal(back_pq[k], v, err_msg=k)


@pytest.mark.parametrize("fmt", ["hdf5", "parquet"])
def test_rows_of_a_shard_are_those_of_the_whole(store_factory, tmp_path, monkeypatch, fmt):
    """read_shard(start=, stop=) equals the rows of a whole read, across HDF5 chunks and
    Parquet row groups (an unsliced-looking Parquet slice from row 0 once came back whole)."""
    import jetlib.store.shards as mod

    s = Store(store_factory(jets_per_shard=(300,)))
    arrays = read_shard(s.shards()[0].path, s.layout)
    monkeypatch.setattr(mod, "CHUNK_JETS", 64)
    monkeypatch.setattr(mod, "ROW_GROUP_JETS", 64)
    path = tmp_path / f"a{mod.shard_suffix(fmt)}"
    write_shard(path, arrays, s.layout, fmt=fmt, compression="lz4")
    if fmt == "parquet":
        assert pq.ParquetFile(path).metadata.num_row_groups == 5
    for start, stop in ((0, 100), (0, 64), (64, 128), (100, 101), (250, 300), (0, 300), (299, None), (0, None), (300, 300)):
        part = read_shard(path, s.layout, start=start, stop=stop)
        into = {k: np.full_like(v[start:stop], 7) for k, v in arrays.items()}
        read_shard_into(path, s.layout, into, start)
        for k, v in arrays.items():
            np.testing.assert_array_equal(part[k], v[start:stop], err_msg=f"{k}[{start}:{stop}]")
            np.testing.assert_array_equal(into[k], v[start:stop], err_msg=f"into {k}[{start}:{stop}]")
    with pytest.raises(ShardError, match=r"^\S+a\.(h5|parquet): array label has 300 rows, fewer than the 301 asked for; run `jetlib verify`"):
        read_shard_into(path, s.layout, {"label": np.empty(2, np.int32)}, 299)


def test_a_pending_shard_is_hidden_until_published(store_factory, tmp_path, monkeypatch):
    """write_pending leaves the shard under a hidden temporary name (what a local skim's
    worker does); publish_shard fsyncs it and gives it its name; a failing disk at the
    fsync leaves neither file behind."""
    import os

    from jetlib.store.shards import checksum, publish_shard, write_pending

    s = Store(store_factory(jets_per_shard=(50,)))
    arrays = read_shard(s.shards()[0].path, s.layout)
    final = tmp_path / "part-00000.h5"
    info, tmp = write_pending(final, arrays, s.layout, fmt="hdf5", compression="lz4")
    assert not final.exists() and tmp.parent == tmp_path and tmp.name.startswith(".part-00000.h5.tmp-")
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real(fd))
    publish_shard(tmp, final)
    assert synced == [str(tmp), str(tmp_path)]  # the data before the rename, the folder after it
    assert not tmp.exists() and checksum(final) == info.checksum and final.stat().st_size == info.bytes
    for k, v in read_shard(final, s.layout).items():
        np.testing.assert_array_equal(v, arrays[k], err_msg=k)

    info, tmp = write_pending(tmp_path / "part-00001.h5", arrays, s.layout, fmt="hdf5")

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        publish_shard(tmp, tmp_path / "part-00001.h5")
    assert sorted(p.name for p in tmp_path.glob("*part-*")) == ["part-00000.h5"]


def test_lz4_shards_are_chunks_of_hdf5s_own_lz4_filter(tmp_path):
    """write_shard compresses LZ4 chunks itself (faster); the datasets must be what HDF5's
    LZ4 filter writes: the same filter and chunks, the same chunk headers, and values that
    the filter decodes back, for a padded last chunk and a chunk LZ4 cannot shrink (random
    bytes, stored raw). (The LZ4 streams themselves may differ: hdf5plugin bundles its own
    LZ4 library, which compresses small chunks differently.)"""
    import hdf5plugin

    from jetlib.store.layout import ArraySpec, ShardLayout
    from jetlib.store.shards import CHUNK_JETS

    rng = np.random.default_rng(5)
    n = 2 * CHUNK_JETS + 37
    pf = rng.normal(size=(n, 6, 10)).astype("f4")
    pf[:, :, 7:] = 0  # padding: compressible
    noise = rng.integers(0, 256, size=(n, 64), dtype=np.uint8)  # incompressible
    arrays = {"pf": pf, "noise": noise, "label": rng.integers(0, 5, n).astype("i4")}
    layout = ShardLayout({k: ArraySpec(k, str(v.dtype), v.shape[1:]) for k, v in arrays.items()})
    write_shard(tmp_path / "ours.h5", arrays, layout, fmt="hdf5", compression="lz4")
    with h5py.File(tmp_path / "filter.h5", "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v, chunks=(CHUNK_JETS, *v.shape[1:]), **hdf5plugin.LZ4())
    with h5py.File(tmp_path / "ours.h5", "r") as ours, h5py.File(tmp_path / "filter.h5", "r") as ref:
        for k, v in arrays.items():
            assert ours[k]._filters == ref[k]._filters and ours[k].chunks == ref[k].chunks, k
            for start in range(0, n, CHUNK_JETS):
                at = (start,) + (0,) * (v.ndim - 1)
                (m1, b1), (m2, b2) = ours[k].id.read_direct_chunk(at), ref[k].id.read_direct_chunk(at)
                assert m1 == m2 == 0 and b1[:12] == b2[:12], (k, start)  # sizes of the chunk and its block
            np.testing.assert_array_equal(ours[k][:], v, err_msg=k)
        # the incompressible chunk is stored raw (its size field = the block size), as the filter does
        for f in (ours, ref):
            _, blob = f["noise"].id.read_direct_chunk((0, 0))
            assert len(blob) == 16 + CHUNK_JETS * 64 and blob[12:16] == blob[8:12]
        assert len(ours["pf"].id.read_direct_chunk((0, 0, 0))[1]) < 0.8 * CHUNK_JETS * pf[0].nbytes


@pytest.mark.parametrize("size", [0, 1, (1 << 22) + 3])
def test_checksum_mapped_or_read_is_the_xxh3_of_the_bytes(tmp_path, size):
    import xxhash

    from jetlib.store.shards import checksum

    p = tmp_path / "f"
    p.write_bytes(np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes())
    want = "xxh3_128:" + xxhash.xxh3_128(p.read_bytes()).hexdigest()
    assert checksum(p) == checksum(p, mapped=True) == checksum(p, bufsize=1000) == want


def test_checksum_reads_where_a_file_cannot_be_mapped(tmp_path, monkeypatch):
    import mmap

    from jetlib.store.shards import checksum

    p = tmp_path / "f"
    p.write_bytes(b"x" * 5000)
    want = checksum(p)

    def refuse(*a, **k):
        raise OSError(19, "No such device")  # what a FUSE mount without mmap says

    monkeypatch.setattr(mmap, "mmap", refuse)
    assert checksum(p, mapped=True) == want


def test_lz4_chunks_keep_a_big_endian_dtype(tmp_path):
    """The zero-padded last chunk is built in the array's own dtype (np.concatenate would
    return native byte order, and the bytes would be read back swapped)."""
    import hdf5plugin

    from jetlib.store.shards import CHUNK_JETS, _write_lz4_chunks

    a = np.random.default_rng(2).normal(size=(CHUNK_JETS + 1, 3)).astype(">f4")
    with h5py.File(tmp_path / "be.h5", "w") as f:
        ds = f.create_dataset("x", shape=a.shape, dtype=a.dtype, chunks=(CHUNK_JETS, 3), **hdf5plugin.LZ4())
        _write_lz4_chunks(ds, a)
    with h5py.File(tmp_path / "be.h5", "r") as f:
        np.testing.assert_array_equal(f["x"][:], a)


@pytest.mark.parametrize("fmt,compression", [("hdf5", "none"), ("hdf5", "lz4"), ("parquet", "none")])
def test_a_shard_of_another_shape_than_the_metadata_says_is_named(store_factory, fmt, compression):
    """jetlib.json edited (a block length 8 -> 6): Parquet shards were reshaped into wrong rows
    without a word, `jetlib stats` crashed in a compiled kernel (a segfault), the Reader raised
    a bare broadcast error. Every read now names the shard and the mismatch."""
    import json

    from jetlib.errors import ShardError
    from jetlib.reader import Reader
    from jetlib.stats import compute_stats
    from jetlib.store import Store

    path = store_factory(fmt=fmt, compression=compression)
    meta = json.loads((path / "jetlib.json").read_text())
    meta["arrays"]["pf_features"]["inner"] = [4, 6]
    meta["arrays"]["pf_mask"]["inner"] = [1, 6]
    meta["blocks"]["pf"]["length"] = 6
    (path / "jetlib.json").write_text(json.dumps(meta))
    says = r"array pf_(features|mask) has \(.*\) per jet, the store's jetlib.json says \((4|1), 6\)"
    with pytest.raises(ShardError, match=says):
        Store(path).read(["pf_features", "pf_mask"])
    with pytest.raises(ShardError, match=says):
        compute_stats(path)
    with pytest.raises(ShardError, match=says):
        next(iter(Reader(path, output="numpy", verify=False)))
