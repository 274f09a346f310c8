"""The arrays of a shard: names, dtypes, shapes and their Parquet column names.

Every shard holds the same named arrays, whatever its format:

===================  =============  ==========================================
name                 shape          content
===================  =============  ==========================================
``<block>_features`` ``(N, F, L)``  float32 node features, features first
``<block>_mask``     ``(N, 1, L)``  float32, 1 for a real node, 0 for padding
``jet_features``     ``(N, F)``     float32 jet- and event-level features
``label``            ``(N,)``       int32 class index
``label_onehot``     ``(N, C)``     uint8 one-hot of ``label``
``truth``            ``(N, T)``     float32 truth targets (gen jet kinematics)
observers            ``(N,)``       ``jet_pt``, ``jet_eta``, ``jet_phi``, ``jet_mass``,
                                    ``run``, ``lumi``, ``event``, ``jet_index``, ...
===================  =============  ==========================================

HDF5 shards store each array as one dataset of that name (contiguous when uncompressed, so
it can be memory-mapped). Parquet shards split the feature axis into one column per feature
(``pf_log_pt``, ``jet_pt``, ``label_b``, ``gen_pt``...), each a fixed-size list of length L for
node blocks, so that pandas, polars and weaver-core see plain named columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ArraySpec", "ShardLayout", "NO_FLAVOUR"]

#: the hadron_flavour and parton_flavour of a jet whose input file has no such branch: no
#: flavour value (parton flavours are signed PDG ids, -1 a d-bar; 0 is CMS's "unmatched")
NO_FLAVOUR = -999


@dataclass(frozen=True)
class ArraySpec:
    name: str
    dtype: str
    inner: tuple[int, ...]  # shape without the leading jet axis
    columns: tuple[str, ...] | None = None  # Parquet names along axis 1, or None for one column

    @property
    def jet_bytes(self) -> int:
        """Bytes of one jet's row."""
        return int(np.prod(self.inner, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def to_json(self) -> dict:
        return {"dtype": self.dtype, "inner": list(self.inner), "columns": list(self.columns) if self.columns else None}

    @classmethod
    def from_json(cls, name: str, d: dict) -> ArraySpec:
        return cls(name, d["dtype"], tuple(d["inner"]), tuple(d["columns"]) if d.get("columns") else None)


@dataclass(frozen=True)
class ShardLayout:
    arrays: dict[str, ArraySpec]

    @classmethod
    def build(
        cls,
        *,
        blocks: dict[str, tuple[list[str], int]],
        jet_features: list[str],
        classes: list[str],
        truth: list[str],
        observers: dict[str, str],
    ) -> ShardLayout:
        """``blocks``: name -> (feature names, length); ``observers``: name -> dtype."""
        a: dict[str, ArraySpec] = {}
        for b, (feats, length) in blocks.items():
            a[f"{b}_features"] = ArraySpec(f"{b}_features", "float32", (len(feats), length), tuple(f"{b}_{f}" for f in feats))
            a[f"{b}_mask"] = ArraySpec(f"{b}_mask", "float32", (1, length), None)
        a["jet_features"] = ArraySpec("jet_features", "float32", (len(jet_features),), tuple(f"jet_{f}" for f in jet_features))
        a["label"] = ArraySpec("label", "int32", ())
        a["label_onehot"] = ArraySpec("label_onehot", "uint8", (len(classes),), tuple(f"label_{c}" for c in classes))
        a["truth"] = ArraySpec("truth", "float32", (len(truth),), tuple(truth))
        for name, dt in observers.items():
            a[name] = ArraySpec(name, dt, ())
        return cls(a)

    def to_json(self) -> dict:
        return {k: v.to_json() for k, v in self.arrays.items()}

    @classmethod
    def from_json(cls, d: dict) -> ShardLayout:
        return cls({k: ArraySpec.from_json(k, v) for k, v in d.items()})

    def empty(self, n: int, *, unset: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        """Arrays for ``n`` jets (the kernels' caller-allocated outputs), zeroed but for
        those named in ``unset``, which the caller fills whole (zeroing the node blocks
        cost as much as the PF kernel's stores of them)."""
        return {k: (np.empty if k in unset else np.zeros)((n, *s.inner), dtype=s.dtype) for k, s in self.arrays.items()}

    def check(self, arrays: dict[str, np.ndarray]) -> int:
        """Validate names, dtypes and shapes; return the number of jets."""
        missing = set(self.arrays) - set(arrays)
        extra = set(arrays) - set(self.arrays)
        if missing or extra:
            raise ValueError(f"shard arrays differ from the layout: missing {sorted(missing)}, extra {sorted(extra)}")
        ns = {a.shape[0] for a in arrays.values()}
        if len(ns) != 1:
            raise ValueError(f"arrays of a shard have different lengths: {sorted(ns)}")
        for k, s in self.arrays.items():
            arr = arrays[k]
            if arr.shape[1:] != s.inner or arr.dtype != np.dtype(s.dtype):
                raise ValueError(f"{k}: expected (N, {s.inner}) {s.dtype}, got {arr.shape} {arr.dtype}")
        return ns.pop()
