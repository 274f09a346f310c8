"""Rules of the store that a mutation audit found unpinned: verify's own checks, the order of
publication, fsync of each manifest record, shard order, the Parquet column guard and the
zeroed padding of the last LZ4 chunk. Each test fails if its rule is broken."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from jetlib.store import Store
from jetlib.store.manifest import Manifest
from jetlib.store.shards import read_shard
from jetlib.store.verify import ranges_problem, verify


def _rewrite_manifest(path: Path, fn) -> None:
    recs = Manifest.of(path).records()
    (Path(path) / "manifest.jsonl").write_text("".join(json.dumps(fn(r)) + "\n" for r in recs))


def test_a_one_entry_gap_between_ranges_is_reported():
    assert ranges_problem([(0, 100), (101, 250)], 250) == "entries 100-101 are in no task"


def test_a_done_range_that_read_fewer_events_than_it_spans_fails_verify(store_factory):
    p = store_factory(jets_per_shard=(50, 60), files=["a.root", "a.root"])
    _rewrite_manifest(p, lambda r: {**r, "entries": 110} if r["start"] else {**r, "entries": 110, "events": r["events"] - 1})
    r = verify(p)
    assert any(e.check == "events" and "read 49 events, the range has 50" in e.message for e in r.errors), r.errors


def test_rows_on_disk_must_equal_the_manifests_jets(store_factory):
    p = store_factory(jets_per_shard=(50,))
    _rewrite_manifest(p, lambda r: {**r, "jets": 51, "shards": [{**r["shards"][0], "jets": 51}]})
    assert any("50 jets on disk, 51 in the manifest" in e.message for e in verify(p).errors)


def test_a_shard_is_fsynced_then_renamed_then_its_folder_fsynced(store_factory, tmp_path, monkeypatch):
    from jetlib.store.shards import publish_shard, write_pending

    st = Store(store_factory(jets_per_shard=(20,)))
    _, tmp = write_pending(tmp_path / "x.h5", read_shard(st.shards()[0].path, st.layout), st.layout)
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))) or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: events.append(("replace", str(b))) or real_replace(a, b))
    publish_shard(tmp, tmp_path / "x.h5")
    assert events == [("fsync", str(tmp)), ("replace", str(tmp_path / "x.h5")), ("fsync", str(tmp_path))]


def test_parquet_refuses_two_different_arrays_under_one_column(store_factory, tmp_path):
    from jetlib.store.shards import write_shard

    st = Store(store_factory(jets_per_shard=(20,)))
    a = read_shard(st.shards()[0].path, st.layout)
    a["jet_pt"] = a["jet_pt"] + 1  # the observer jet_pt and the jet feature pt share the column
    with pytest.raises(ValueError, match="two different arrays would be written as column 'jet_pt'"):
        write_shard(tmp_path / "a.parquet", a, st.layout, fmt="parquet")


def test_each_manifest_record_is_fsynced(tmp_path, monkeypatch):
    synced, real = [], os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real(fd))
    m = Manifest.of(tmp_path)
    m.append({"task": "a:0-1", "status": "done"})
    assert synced == [str(m.path)]


def test_shards_are_in_task_order_whatever_the_manifest_order(store_factory):
    p = store_factory(jets_per_shard=(10, 20, 30))
    m = p / "manifest.jsonl"
    m.write_text("".join(m.read_text().splitlines(keepends=True)[::-1]))  # a resumed run finished task 2 first
    assert [s.name for s in Store(p).shards()] == ["part-00000.h5", "part-00001.h5", "part-00002.h5"]


def test_the_padding_of_the_last_lz4_chunk_is_zero(tmp_path):
    import h5py
    import hdf5plugin  # noqa: F401
    import lz4.block

    from jetlib.store.layout import ArraySpec, ShardLayout
    from jetlib.store.shards import CHUNK_JETS, write_shard

    arrays = {"x": np.ones((CHUNK_JETS + 5, 8), "f4")}
    layout = ShardLayout({"x": ArraySpec("x", "float32", (8,))})
    for _ in range(20):  # freed non-zero memory of the chunk's size, for the allocator to hand out
        junk = np.full((CHUNK_JETS, 8), 7.5, "f4")
        del junk
        write_shard(tmp_path / "a.h5", arrays, layout, compression="lz4")
        with h5py.File(tmp_path / "a.h5") as f:
            _, blob = f["x"].id.read_direct_chunk((CHUNK_JETS, 0))
        size = CHUNK_JETS * 32
        raw = blob[16:] if len(blob) - 16 == size else lz4.block.decompress(blob[16:], uncompressed_size=size)
        assert (np.frombuffer(raw, "f4").reshape(CHUNK_JETS, 8)[5:] == 0).all()
        (tmp_path / "a.h5").unlink()
