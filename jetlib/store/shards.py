"""Write and read shards in HDF5 or Parquet, with atomic publication and checksums.

A shard is written under a temporary name in the same folder, fsynced, renamed to its
final name and the folder fsynced: nothing half-written is ever visible under a final name.
The write and the publication may happen in two processes (:func:`write_pending`, then
:func:`publish_shard`): a local skim's workers write and the client, beside them, waits for
the disk (jetlib/skim/run.py).
"""

from __future__ import annotations

import mmap
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import xxhash

from jetlib.errors import ShardError
from jetlib.store.layout import ShardLayout

__all__ = ["ShardInfo", "write_shard", "write_pending", "publish_shard", "read_shard", "read_shard_into", "checksum",
           "FORMATS", "COMPRESSIONS", "shard_suffix", "parquet_clashes"]

FORMATS = ("hdf5", "parquet")
COMPRESSIONS = ("none", "lz4", "zstd", "gzip")
_SUFFIX = {"hdf5": ".h5", "parquet": ".parquet"}
#: jets per HDF5 chunk when compressed (the PF block's chunk is then 8 MB: a 32 MB chunk of
#: 4096 jets made the LZ4 write of a worker's shard ~25% slower, 0.31 s against 0.25 s)
CHUNK_JETS = 1024
#: the block size of HDF5's LZ4 filter (H5Z-LZ4's default): a chunk up to it is one block
_LZ4_BLOCK = 1 << 30
#: LZ4's acceleration (1 is LZ4's default): LZ4 skips faster over bytes it cannot match,
#: here the float mantissas. On the benchmark's shards 8 compressed 1.5x faster (1,140
#: against 750 MB/s) into 6% more bytes (ratio 0.408 against 0.386), which read back as fast
#: (h5py); a worker's write took 3.1 against 3.8 s for the 16 tasks of 226k jets.
LZ4_ACCELERATION = 8
#: jets per Parquet row group
ROW_GROUP_JETS = 16384


def shard_suffix(fmt: str) -> str:
    return _SUFFIX[fmt]


@dataclass(frozen=True)
class ShardInfo:
    name: str
    jets: int
    bytes: int
    checksum: str

    def to_json(self) -> dict:
        return asdict(self)


def checksum(path: str | Path, *, bufsize: int = 1 << 22, mapped: bool = False) -> str:
    """xxh3-128 of the file's bytes (~10 GB/s; a cryptographic hash would cost more than
    the write for the 1.5 TB a full skim produces).

    ``mapped``: hash a memory map of the file instead of copying it through a buffer: 15
    against 37-44 ms for a 132 MB shard in the page cache. Only for a file no other process
    can truncate meanwhile (the writer's own temporary file): a map read past a new end of
    file kills the process (SIGBUS) instead of raising.
    """
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        m = None
        if mapped and os.fstat(f.fileno()).st_size > 0:  # (an empty file cannot be mapped)
            try:
                m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):  # a file system that cannot map files (some FUSE mounts)
                pass
        if m is not None:
            with m:
                h.update(m)
        else:
            while chunk := f.read(bufsize):
                h.update(chunk)
    return "xxh3_128:" + h.hexdigest()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_shard(path: str | Path, arrays: dict[str, np.ndarray], layout: ShardLayout, **options) -> ShardInfo:
    """Write ``arrays`` (validated against ``layout``) to ``path`` atomically; ``options``
    (``fmt``, ``compression``, ``attrs``) as for :func:`write_pending`."""
    info, tmp = write_pending(path, arrays, layout, **options)
    publish_shard(tmp, path)
    return info


def write_pending(
    path: str | Path,
    arrays: dict[str, np.ndarray],
    layout: ShardLayout,
    *,
    fmt: str = "hdf5",
    compression: str = "none",
    attrs: dict[str, str] | None = None,
) -> tuple[ShardInfo, Path]:
    """Write the shard of ``path`` under a hidden temporary name beside it, not yet fsynced;
    return its info (checksum, size) and the temporary path, for :func:`publish_shard`."""
    path = Path(path)
    n = layout.check(arrays)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        if fmt == "hdf5":
            _write_hdf5(tmp, arrays, layout, compression, attrs or {})
        elif fmt == "parquet":
            _write_parquet(tmp, arrays, layout, compression, attrs or {})
        else:
            raise ValueError(f"unknown shard format {fmt!r}; use one of {FORMATS}")
        digest = checksum(tmp, mapped=True)  # read back from the page cache: the bytes as written
        size = tmp.stat().st_size
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ShardInfo(path.name, n, size, digest), tmp


def publish_shard(tmp: str | Path, path: str | Path) -> None:
    """Make the pending shard ``tmp`` durable (fsync) and rename it to ``path``; fsync the
    folder; drop its pages from the page cache. On failure (a full or failing disk reports
    here) ``tmp`` is removed."""
    tmp, path = Path(tmp), Path(path)
    try:
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
            # the writer does not read the shard again: its pages, clean now, are handed
            # back rather than left to push other files (the inputs) out of the page cache,
            # and the next shard's writes reuse them: a worker's LZ4 write took 33 ms less
            # per 14k-jet shard (3.5-3.7 s against 4.1 s for the benchmark's 16 tasks)
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _hdf5_filter(compression: str) -> dict:
    if compression == "none":
        return {}
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 4}
    import hdf5plugin  # registers the LZ4 and Zstd filters with HDF5

    if compression == "lz4":
        return dict(hdf5plugin.LZ4())
    if compression == "zstd":
        return dict(hdf5plugin.Zstd(clevel=3))
    raise ValueError(f"unknown compression {compression!r}; use one of {COMPRESSIONS}")


def _write_hdf5(tmp: Path, arrays, layout: ShardLayout, compression: str, attrs: dict) -> None:
    import h5py

    filt = _hdf5_filter(compression)
    # Each dataset is flushed once written, so its chunks reach the file in layout order.
    # Left in h5py's chunk cache, small chunks were written when the dataset objects were
    # garbage-collected: chunk placement (not values) followed the process's GC timing and a
    # redone task's shard did not always have the same checksum.
    with h5py.File(tmp, "w", track_order=False) as f:
        for k, v in attrs.items():
            f.attrs[k] = v
        for name, spec in layout.arrays.items():
            arr = np.ascontiguousarray(arrays[name])
            kw: dict = {"track_times": False}
            if filt and arr.size > 0:
                kw.update(filt, chunks=(min(CHUNK_JETS, arr.shape[0]), *arr.shape[1:]))
            if compression == "lz4" and arr.size > 0 and arr[:1].nbytes * CHUNK_JETS < _LZ4_BLOCK:
                ds = f.create_dataset(name, shape=arr.shape, dtype=arr.dtype, **kw)
                _write_lz4_chunks(ds, arr)
            else:
                ds = f.create_dataset(name, data=arr, **kw)
            if spec.columns:
                ds.attrs["columns"] = [c.encode() for c in spec.columns]
            ds.flush()


def _write_lz4_chunks(ds, arr: np.ndarray) -> None:
    """Write ``arr`` into the LZ4-filtered dataset ``ds`` chunk by chunk, compressed here.

    Hand-written because it is faster: the bytes are those HDF5's LZ4 filter (hdf5plugin,
    H5Z-LZ4, one block per chunk) writes, so any reader with the filter decodes them, but
    HDF5 no longer copies every chunk into a buffer of its own first: 183 against 213 ms
    (best of 10, the workers' malloc settings) for a 14k-jet, 132 MB shard. The last chunk
    is padded with zeros to the full chunk, as HDF5 stores it. A chunk LZ4 cannot shrink is
    stored raw, as the filter does. The block is compressed with ``LZ4_ACCELERATION``
    (any LZ4 decoder reads it; the filter itself compresses with acceleration 1).
    """
    import struct

    rows = ds.chunks[0]
    inner = (0,) * (arr.ndim - 1)
    for start in range(0, arr.shape[0], rows):
        chunk = arr[start : start + rows]
        if chunk.shape[0] < rows:  # (np.concatenate would return native byte order)
            padded = np.zeros((rows, *arr.shape[1:]), arr.dtype)
            padded[: chunk.shape[0]] = chunk
            chunk = padded
        raw = memoryview(np.ascontiguousarray(chunk)).cast("B")
        packed = lz4_block(raw)
        if len(packed) >= len(raw):
            packed = raw
        # header: original size (int64), block size (int32), then the block's size (int32)
        ds.id.write_direct_chunk((start, *inner), struct.pack(">qii", len(raw), len(raw), len(packed)) + packed)


def lz4_block(raw) -> bytes:
    """One LZ4 block of the bytes ``raw``, as the HDF5 writer compresses a chunk (no size
    header, :data:`LZ4_ACCELERATION`); benchmarks/bench_skim.py times the codec with it."""
    import lz4.block

    return lz4.block.compress(raw, mode="fast", acceleration=LZ4_ACCELERATION, store_size=False)


def _to_arrow_columns(name: str, arr: np.ndarray, spec) -> list[tuple[str, object]]:
    import pyarrow as pa

    def col(a: np.ndarray):
        a = np.ascontiguousarray(a)
        if a.ndim == 1:
            return pa.array(a)
        if a.ndim == 2:
            return pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), a.shape[1])
        raise ValueError(f"{name}: cannot write a {a.ndim}-D column")

    if spec.columns:
        return [(c, col(arr[:, i])) for i, c in enumerate(spec.columns)]
    if arr.ndim == 3 and arr.shape[1] == 1:
        return [(name, col(arr[:, 0]))]
    return [(name, col(arr))]


def parquet_clashes(layout: ShardLayout) -> list[tuple[str, str, str]]:
    """(column, array, array) for each Parquet column that two arrays of ``layout`` would
    write, but for a jet feature and the observer of the same name (``jet_pt``: the same
    values, written once): a block ``gen`` with a feature ``pt`` against the truth column
    ``gen_pt``. The skim refuses such a layout before it starts (HDF5 keeps them apart)."""
    owner: dict[str, str] = {}
    out = []
    for name, spec in layout.arrays.items():
        cols = spec.columns or [name]
        for c in cols:
            if c in owner and not {owner[c], name} <= {"jet_features", c}:
                out.append((c, owner[c], name))
            owner.setdefault(c, name)
    return out


def _write_parquet(tmp: Path, arrays, layout: ShardLayout, compression: str, attrs: dict) -> None:
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    names, cols = [], []
    for name, spec in layout.arrays.items():
        for cname, c in _to_arrow_columns(name, arrays[name], spec):
            if cname in names:
                # a jet feature and an observer of the same name (jet_pt) hold the same values
                if not c.equals(cols[names.index(cname)]):
                    raise ValueError(f"two different arrays would be written as column {cname!r}")
                continue
            names.append(cname)
            cols.append(c)
    meta = {b"jetlib": json.dumps(attrs).encode()}
    table = pa.Table.from_arrays(cols, names=names).replace_schema_metadata(meta)
    # the levels of the HDF5 filters (_hdf5_filter), so both formats trade the same way:
    # pyarrow's own gzip default took 23 s for a 14k-jet shard, level 4 2.2 s (43.6 MB both)
    level = {"gzip": 4, "zstd": 3}.get(compression)
    pq.write_table(
        table,
        tmp,
        compression="NONE" if compression == "none" else compression.upper(),
        compression_level=level,
        use_dictionary=False,
        write_statistics=False,
        row_group_size=ROW_GROUP_JETS,
        write_page_checksum=True,
    )


def check_shape(path: str | Path, name: str, shape: tuple[int, ...], layout: ShardLayout) -> None:
    """Raise ShardError when array ``name`` of a shard has another shape per jet than the
    store's metadata gives it: a jetlib.json edited or from another store (a block length
    changed) read the shard with a wrong reshape, or crashed a compiled kernel."""
    inner = layout.arrays[name].inner
    if tuple(shape[1:]) != inner:
        raise ShardError(str(path), f"array {name} has {tuple(shape[1:])} per jet, the store's jetlib.json says {inner}: "
                                    "the metadata is not this shard's; re-run the same `jetlib skim` command, which "
                                    "rewrites jetlib.json, or run `jetlib verify`")  # fmt: skip


def _open_hdf5(path: Path):
    """An HDF5 shard opened for reading, with HDF5's LZ4/Zstd filters registered."""
    import h5py

    try:
        import hdf5plugin  # noqa: F401  (filters for LZ4/Zstd shards)
    except ImportError:  # pragma: no cover
        pass
    return h5py.File(path, "r")


def read_shard(
    path: str | Path,
    layout: ShardLayout,
    names: list[str] | None = None,
    *,
    start: int = 0,
    stop: int | None = None,
) -> dict[str, np.ndarray]:
    """Read arrays (all, or ``names``) of a shard into memory as NumPy, rows ``start:stop``.

    Parquet columns are stacked back into the ``(N, F, L)`` arrays of the layout.
    """
    path = Path(path)
    names = list(layout.arrays) if names is None else list(names)
    unknown = [n for n in names if n not in layout.arrays]
    if unknown:
        raise KeyError(f"{path}: no array {unknown[0]!r} in this store; arrays are {', '.join(layout.arrays)}")
    if not path.is_file():
        raise ShardError(str(path), "shard file is missing; run `jetlib verify` on the store")
    try:
        if path.suffix in (".h5", ".hdf5"):
            out = {}
            with _open_hdf5(path) as f:
                for n in names:
                    ds = f[n]
                    check_shape(path, n, ds.shape, layout)
                    out[n] = ds[start:stop]
            return out
        import pyarrow.parquet as pq

        want: list[str] = []
        for n in names:
            spec = layout.arrays[n]
            want.extend(c for c in (spec.columns or [n]) if c not in want)
        pf = pq.ParquetFile(path, page_checksum_verification=True)
        if start or stop is not None:  # the row groups that hold the rows, and no more
            md = pf.metadata
            end = md.num_rows if stop is None else min(stop, md.num_rows)
            bounds = np.cumsum([0] + [md.row_group(g).num_rows for g in range(md.num_row_groups)])
            groups = [g for g in range(md.num_row_groups) if bounds[g] < end and bounds[g + 1] > start]
            table = pf.read_row_groups(groups, columns=want) if groups else pf.schema_arrow.empty_table().select(want)
            table = table.slice(start - int(bounds[groups[0]]) if groups else 0, max(0, end - start))
        else:
            table = pf.read(columns=want)
        out = {}
        for n in names:
            spec = layout.arrays[n]
            cols = spec.columns if spec.columns else [n]
            parts = [_arrow_to_numpy(table.column(c), spec.dtype) for c in cols]
            # values per jet in each column: L of a node feature, 1 of a jet feature, F x L of a mask
            per_col = int(np.prod(spec.inner[1:] if spec.columns else spec.inner))
            if any(int(np.prod(p.shape[1:])) != per_col for p in parts):
                got = (len(cols), *parts[0].shape[1:]) if spec.columns else parts[0].shape[1:]
                check_shape(path, n, (len(table), *got), layout)
            if spec.columns:
                out[n] = np.stack(parts, axis=1)
            else:
                out[n] = parts[0].reshape(-1, *spec.inner) if spec.inner else parts[0]
        return out
    except (OSError, ValueError, KeyError) as err:
        if isinstance(err, ShardError):
            raise
        raise ShardError(str(path), f"cannot read shard ({type(err).__name__}: {err})") from err


def read_shard_into(path: str | Path, layout: ShardLayout, out: dict[str, np.ndarray], start: int) -> None:
    """Read rows ``start : start + len(out[name])`` of each array named in ``out`` into it.

    HDF5 decodes straight into ``out``, with no temporary arrays to allocate and copy (the
    Reader's blocks: a shuffled epoch of the default layout went from 49k to 60k jets/s);
    Parquet reads, then copies.

    Raises:
        ShardError: the file is missing, unreadable, or has fewer rows.
    """
    path = Path(path)
    n = len(next(iter(out.values())))
    if path.suffix not in (".h5", ".hdf5"):
        for name, arr in read_shard(path, layout, list(out), start=start, stop=start + n).items():
            if len(arr) != n:
                raise ShardError(str(path), f"array {name} has {start + len(arr):,} rows, fewer than the {start + n:,} asked for; "
                                            "run `jetlib verify` on the store")
            out[name][...] = arr
        return
    if not path.is_file():
        raise ShardError(str(path), "shard file is missing; run `jetlib verify` on the store")
    try:
        with _open_hdf5(path) as f:
            for name, dst in out.items():
                ds = f[name]
                check_shape(path, name, ds.shape, layout)
                if ds.shape[0] < start + n:
                    raise ShardError(str(path), f"array {name} has {ds.shape[0]:,} rows, fewer than the {start + n:,} asked for; "
                                            "run `jetlib verify` on the store")
                if n:
                    ds.read_direct(dst, np.s_[start : start + n], np.s_[0:n])
    except ShardError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ShardError(str(path), f"cannot read shard ({type(err).__name__}: {err})") from err


def _arrow_to_numpy(chunked, dtype: str) -> np.ndarray:
    import pyarrow as pa

    arr = chunked.combine_chunks() if chunked.num_chunks != 1 else chunked.chunk(0)
    if isinstance(arr.type, pa.FixedSizeListType):
        size = arr.type.list_size
        # .values is the whole child array, past a slice's end too: only for an unsliced array
        flat = arr.values if arr.offset == 0 and len(arr.values) == len(arr) * size else arr.flatten()
        return flat.to_numpy(zero_copy_only=False).astype(dtype, copy=False).reshape(-1, size)
    return arr.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
