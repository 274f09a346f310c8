"""Open a shard's arrays for reading: memory-mapped views where the bytes lie on disk as the
arrays (uncompressed, contiguous HDF5 datasets), decoded arrays otherwise.

An uncompressed HDF5 dataset written by jetlib is one contiguous run of bytes in C order at
a known file offset (``ds.id.get_offset()``), so ``np.ndarray(buffer=mmap, offset=...)`` is the
dataset with no copy and no HDF5 call per batch. The file is mapped copy-on-write: the views
are writable (``torch.from_numpy`` accepts them without a warning) and a stray write stays
private to the process instead of changing the store.

Compressed HDF5 and Parquet shards are decoded once into memory when first touched (Parquet
keeps each feature in its own column, so the (N, F, L) blocks must be assembled anyway).
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np

from jetlib.errors import ShardError
from jetlib.store.layout import ShardLayout
from jetlib.store.shards import check_shape, read_shard

__all__ = ["ShardArrays", "open_shard"]


class ShardArrays:
    """The arrays of one shard, by name; ``mapped`` says whether they are views of the file."""

    def __init__(self, path: Path, arrays: dict[str, np.ndarray], jets: int, mapped: bool, buffer=None):
        self.path = path
        self.arrays = arrays
        self.jets = jets
        self.mapped = mapped
        self.buffer = buffer  # the mmap (kept alive with the views)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def address_range(self) -> tuple[int, int]:
        """[start, end) of the mapping in this process's memory (for zero-copy checks)."""
        if self.buffer is None:
            return (0, 0)
        base = np.frombuffer(self.buffer, np.uint8)
        start = base.ctypes.data
        return start, start + base.nbytes


def _mapped_hdf5(path: Path, layout: ShardLayout, names: list[str], jets: int) -> ShardArrays | None:
    """Views into an mmap of ``path``, or None when a dataset is chunked/compressed."""
    import h5py

    offsets = {}
    with h5py.File(path, "r") as f:
        for n in names:
            ds = f[n]
            check_shape(path, n, ds.shape, layout)
            if ds.chunks is not None or ds.compression is not None:
                return None
            off = ds.id.get_offset()
            if off is None and ds.shape[0] > 0:  # not allocated: cannot map
                return None
            offsets[n] = (off or 0, ds.shape, ds.dtype)
            if ds.shape[0] != jets:
                raise ShardError(str(path), f"dataset {n} has {ds.shape[0]} rows, the manifest says {jets}")
    size = path.stat().st_size
    for n, (off, shape, dtype) in offsets.items():
        end = off + int(np.prod(shape)) * dtype.itemsize
        if end > size:
            raise ShardError(str(path), f"dataset {n} ends at byte {end:,} but the file has {size:,}: truncated shard")
    with open(path, "rb") as fh:
        buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY) if size else None
    arrays = {}
    for n, (off, shape, dtype) in offsets.items():
        if buf is None or shape[0] == 0:
            arrays[n] = np.zeros(shape, dtype)
        else:
            arrays[n] = np.ndarray(shape, dtype, buffer=buf, offset=off)
    return ShardArrays(path, arrays, jets, True, buf)


def open_shard(path: Path, layout: ShardLayout, names: list[str], jets: int, *, mmap_ok: bool = True) -> ShardArrays:
    """Open ``names`` of the shard at ``path`` (memory-mapped when possible).

    Raises:
        ShardError: the file is missing, truncated, unreadable, or disagrees with the manifest.
    """
    path = Path(path)
    if not path.is_file():
        raise ShardError(str(path), "shard file is missing; run `jetlib verify` on the store")
    try:
        if mmap_ok and path.suffix in (".h5", ".hdf5"):
            m = _mapped_hdf5(path, layout, names, jets)
            if m is not None:
                return m
        arrays = read_shard(path, layout, names)
    except ShardError:
        raise
    except (OSError, ValueError, KeyError) as err:
        raise ShardError(str(path), f"cannot open shard ({type(err).__name__}: {err})") from err
    for n, a in arrays.items():
        if a.shape[0] != jets:
            raise ShardError(str(path), f"array {n} has {a.shape[0]} rows, the manifest says {jets}")
    return ShardArrays(path, arrays, jets, False)
