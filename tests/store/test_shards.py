"""Shard files: both formats hold the same values, and compress at the same levels."""

from __future__ import annotations

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from jetlib.store import Store
from jetlib.store.shards import read_shard, write_shard


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
