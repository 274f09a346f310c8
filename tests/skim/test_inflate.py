"""ZLIB baskets are inflated by libdeflate, and those it refuses by ISA-L
(jetlib/source/open.py): the same arrays as the standard library's zlib, and a damaged
basket is a recorded failure that says why, not a crash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import uproot

from jetlib.config.inputs import load_input_schema
from jetlib.config.skim import load_label_scheme, load_skim_config
from jetlib.skim.plan import make_plan
from jetlib.skim.task import Task, run_task
from jetlib.source import open as source_open
from jetlib.source.open import open_tree

from miniaod_inputs import write_miniaod


def _damage_basket(src: Path, dst: Path, branch: str = "PFCand_pt") -> None:
    """Copy ``src`` to ``dst`` with 64 zero bytes in the middle of ``branch``'s first
    compressed basket: the file opens, the basket fails its checksum when read."""
    b = uproot.open(src)["Events"][branch]
    key = b.basket_key(0)
    start = int(b.member("fBasketSeek")[0]) + key.fKeylen
    raw = bytearray(src.read_bytes())
    assert raw[start : start + 2] == b"ZL", "the test expects a ZLIB-compressed basket"
    mid = start + 9 + key.data_compressed_bytes // 2  # past ROOT's 9-byte block header
    raw[mid : mid + 64] = bytes(64)
    dst.write_bytes(raw)


def _zlib_arrays(path: str, monkeypatch) -> dict:
    """The reference: the same file read with the standard library's zlib only."""
    with monkeypatch.context() as m:
        m.delattr(uproot.compression._decompress_ZLIB, "decompress")  # the class's method again
        m.setattr(uproot.compression._decompress_ZLIB, "library", "zlib")
        return uproot.open(path, array_cache=None)["Events"].arrays(library="np")


def _assert_same(fast: dict, ref: dict) -> None:
    assert fast.keys() == ref.keys()
    for k in ref:
        for x, y in zip(fast[k], ref[k], strict=True):
            np.testing.assert_array_equal(x, y, err_msg=k)


def test_libdeflate_inflates_the_same_arrays_as_zlib(tmp_path, monkeypatch):
    import deflate
    from isal import isal_zlib

    path = str(write_miniaod(tmp_path / "a.root", 300, seed=11))
    calls = {"libdeflate": 0, "isal": 0}
    real, real_isal = deflate.zlib_decompress, isal_zlib.decompress

    def counted(name, fn):
        def call(*a, **k):
            calls[name] += 1
            return fn(*a, **k)

        return call

    monkeypatch.setattr(deflate, "zlib_decompress", counted("libdeflate", real))
    monkeypatch.setattr(isal_zlib, "decompress", counted("isal", real_isal))
    fast = open_tree(path, "Events").arrays(library="np")
    assert calls["libdeflate"] > 0 and calls["isal"] == 0, calls
    n = dict(calls)
    ref = _zlib_arrays(path, monkeypatch)
    assert calls == n  # the reference really used the standard library
    _assert_same(fast, ref)


def test_a_block_libdeflate_refuses_is_inflated_by_isal(tmp_path, monkeypatch):
    """libdeflate reports every fault as "Decompression failed"; ISA-L then decodes the
    block (had libdeflate been wrong) or raises with the reason."""
    import deflate
    from isal import isal_zlib

    path = str(write_miniaod(tmp_path / "a.root", 300, seed=12))

    refused = []

    def refuse(*a, **k):
        refused.append(1)
        raise deflate.DeflateError("Decompression failed")

    calls = []
    real_isal = isal_zlib.decompress
    monkeypatch.setattr(deflate, "zlib_decompress", refuse)
    monkeypatch.setattr(isal_zlib, "decompress", lambda *a, **k: calls.append(1) or real_isal(*a, **k))
    fast = uproot.open(path, array_cache=None)["Events"].arrays(library="np")
    assert refused and len(calls) == len(refused)
    _assert_same(fast, _zlib_arrays(path, monkeypatch))


def test_a_header_that_expects_no_bytes_is_not_passed_by_libdeflate():
    """libdeflate asked for 0 bytes returns nothing for any input; a damaged block header
    saying 0 must still decode to what the block holds, so that uproot's length check
    fails the basket (as with zlib) instead of passing an unwritten buffer."""
    import types
    import zlib

    data = bytes(range(256)) * 40
    assert uproot.compression._decompress_ZLIB.decompress(zlib.compress(data), 0) == data
    head = bytearray(b"ZL\x08") + len(zlib.compress(data)).to_bytes(3, "little") + (0).to_bytes(3, "little")
    source = types.SimpleNamespace(file_path="damaged.root")  # what uproot names in its message
    chunk = uproot.source.chunk.Chunk.wrap(source, bytes(head) + zlib.compress(data))
    with pytest.raises(ValueError, match="expects 0"):
        uproot.compression.decompress(chunk, uproot.source.cursor.Cursor(0), {}, len(chunk.raw_data), 0)


def test_a_later_choice_of_uproots_zlib_library_is_respected(monkeypatch):
    import zlib

    import deflate

    used = []
    real = deflate.zlib_decompress
    monkeypatch.setattr(deflate, "zlib_decompress", lambda *a: used.append(1) or real(*a))
    data = b"jetlib" * 1000
    packed = zlib.compress(data)
    assert uproot.compression._decompress_ZLIB.decompress(packed, len(data)) == data and used
    monkeypatch.setattr(uproot.compression._decompress_ZLIB, "library", "zlib")
    used.clear()
    assert uproot.compression._decompress_ZLIB.decompress(packed, len(data)) == data and not used


def test_damaged_basket_is_a_failed_record(tmp_path):
    good = write_miniaod(tmp_path / "good.root", 150, seed=3)
    bad = tmp_path / "damaged.root"
    _damage_basket(good, bad)
    cfg = load_skim_config("default")
    plan = make_plan(load_input_schema("miniaod"), cfg, load_label_scheme(cfg.labels))
    (tmp_path / "store" / "shards").mkdir(parents=True)
    rec = run_task(plan, Task(f"{bad}:0-150", 0, str(bad), 0, 150, 150), str(tmp_path / "store"), "hdf5", "lz4")
    assert rec["status"] == "failed"
    assert "cannot read entries 0-150" in rec["reason"] and "checksum" in rec["reason"].lower()
    assert str(bad) in rec["reason"] and "copy it again" in rec["reason"]  # names the file and what to do
    assert not list((tmp_path / "store" / "shards").iterdir())  # nothing published
    # the file is dropped from the open-file cache, and the good file still skims
    assert str(bad) not in {k[0] for k in source_open._OPEN}
    ok = run_task(plan, Task(f"{good}:0-150", 1, str(good), 0, 150, 150), str(tmp_path / "store"), "hdf5", "lz4")
    assert ok["status"] == "done" and ok["jets"] > 0


def test_a_zeroed_basket_header_is_a_failed_record_on_one_line(tmp_path):
    """uproot describes a basket whose header reads as zeros over 15 lines; the record (and
    the skim's summary, once per task of the file) gets them on one."""
    good = write_miniaod(tmp_path / "good.root", 150, seed=3)
    b = uproot.open(good)["Events"]["PFCand_pt"]
    seek = int(b.member("fBasketSeek")[0])
    raw = bytearray(good.read_bytes())
    raw[seek : seek + b.basket_key(0).fKeylen] = bytes(b.basket_key(0).fKeylen)
    bad = tmp_path / "zeroed.root"
    bad.write_bytes(raw)
    cfg = load_skim_config("default")
    plan = make_plan(load_input_schema("miniaod"), cfg, load_label_scheme(cfg.labels))
    (tmp_path / "store" / "shards").mkdir(parents=True)
    rec = run_task(plan, Task(f"{bad}:0-150", 0, str(bad), 0, 150, 150), str(tmp_path / "store"), "hdf5", "lz4")
    assert rec["status"] == "failed" and rec["error"] == "uproot.DeserializationError", rec
    assert "\n" not in rec["reason"] and "fNbytes: 0 fObjlen: 0" in rec["reason"] and "copy it again" in rec["reason"]
