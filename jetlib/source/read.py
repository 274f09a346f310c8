"""Read one entry range of the branches a skim plan needs, as flat NumPy arrays + offsets.

Collections come back from uproot as awkward arrays; the kernels get each one's offsets and
content: taken as they are from a ListOffsetArray over numbers (uproot's usual output),
otherwise from ``ak.to_packed`` (so no IndexedArray's unfiltered contents reach a kernel).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import awkward as ak
import numpy as np

from jetlib.errors import SchemaMismatchError
from jetlib.skim.plan import BlockPlan, SkimPlan

__all__ = ["Jagged", "Chunk", "read_chunk", "merge_nodes"]


@dataclass
class Jagged:
    offsets: np.ndarray  # int64, (n_events + 1,)
    fields: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass
class Chunk:
    n_events: int
    event: dict[str, np.ndarray]
    jets: Jagged
    blocks: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # name -> (offsets, X, kind)
    links: dict[str, Jagged]
    gen: Jagged
    genjet: Jagged
    genjetnu: Jagged | None
    preset: dict[str, Jagged]
    nbytes: int


#: fields that must hold floating-point values: integers would truncate them silently
_FLOAT_FIELDS = ("pt", "eta", "phi", "mass")


def _split(a: ak.Array, name: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    layout = a.layout
    # uproot's jagged branches come as offsets over a NumPy content: used as they are (the
    # slices below are views); ak.to_packed copied them, 43 ms of a 5,000-event task's read
    if not (isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.NumpyArray)):
        layout = ak.to_packed(a).layout
    if not layout.is_list:
        raise SchemaMismatchError(f"branch {name} holds one value per event ({a.type}), but the input schema maps it "
                                  f"to a field of {what}, which needs a list per event (one value per object)")  # fmt: skip
    if not isinstance(layout, ak.contents.ListOffsetArray):
        layout = layout.to_ListOffsetArray64(True)
    offsets = np.asarray(layout.offsets.data, dtype=np.int64)
    if not isinstance(layout.content, ak.contents.NumpyArray) or layout.content.data.ndim != 1:
        raise SchemaMismatchError(f"branch {name} is not a list of numbers per event ({a.type}); the input schema maps "
                                  f"it to a field of {what}")  # fmt: skip
    content = np.asarray(layout.content.data)[offsets[0] : offsets[-1]]
    if offsets[0] != 0:
        offsets = offsets - offsets[0]
    return offsets, content


def _jagged(arrays: dict[str, ak.Array], branches: dict[str, str], what: str) -> Jagged:
    """The branches of one collection (``what``) as offsets and a content per field."""
    out = Jagged(np.zeros(1, np.int64))
    first = None
    for f, b in branches.items():
        off, content = _split(arrays[b], b, what)
        if f in _FLOAT_FIELDS and content.dtype.kind in "iub":
            raise SchemaMismatchError(f"branch {b} holds {content.dtype} values, but field {f!r} of {what} needs "
                                      "floating-point values (integers would truncate it)")  # fmt: skip
        if first is None:
            out.offsets, first = off, b
        elif off.shape != out.offsets.shape or not np.array_equal(off, out.offsets):
            i = int(np.flatnonzero(np.diff(off) != np.diff(out.offsets))[0]) if off.shape == out.offsets.shape else 0
            raise SchemaMismatchError(
                f"branch {b} ({what}.{f}) has other counts per event than {first}, the first branch of {what} "
                f"(event {i} of the range: {np.diff(off)[i] if off.size > 1 else 0} against "
                f"{np.diff(out.offsets)[i] if out.offsets.size > 1 else 0}); does the input schema map a branch of "
                f"another collection to {what}?"
            )  # fmt: skip
        out.fields[f] = content
    return out


def _event_field(arrays: dict[str, ak.Array], key: str, b: str) -> np.ndarray:
    a = arrays[b]
    try:
        v = ak.to_numpy(a, allow_missing=False)  # zero copy for uproot's flat branches
    except (ValueError, TypeError):  # a list per event, or missing values
        v = None
    if v is None or v.ndim != 1 or v.dtype.kind not in "iufb":
        raise SchemaMismatchError(f"branch {b} holds {a.type.content} per event, but event field {key!r} of the input "
                                  "schema needs one number per event")  # fmt: skip
    if key in ("run", "lumi", "event") and v.dtype.kind == "f":  # stored as integers: a float would be cut silently
        raise SchemaMismatchError(f"branch {b} holds {v.dtype} values, but event field {key!r} of the input schema "
                                  "needs integers (the run, lumi and event numbers)")  # fmt: skip
    return v


def merge_nodes(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interleave per-event node lists of several collections (each (offsets, X)):
    collection 0's nodes of an event first, then collection 1's... Returns (offsets, X, kind)."""
    if len(parts) == 1:
        off, x = parts[0]
        return off, x, np.zeros(x.shape[0], np.int8)
    counts = [np.diff(o) for o, _ in parts]
    total = np.sum(counts, axis=0)
    offsets = np.zeros(total.shape[0] + 1, np.int64)
    np.cumsum(total, out=offsets[1:])
    X = np.empty((int(offsets[-1]), parts[0][1].shape[1]), np.float32)
    kind = np.empty(int(offsets[-1]), np.int8)
    before = np.zeros_like(total)
    for k, ((off, x), cnt) in enumerate(zip(parts, counts)):
        evt = np.repeat(np.arange(cnt.shape[0]), cnt)
        local = np.arange(x.shape[0]) - off[evt]
        dest = offsets[evt] + before[evt] + local
        X[dest] = x
        kind[dest] = k
        before += cnt
    return offsets, X, kind


def _block(arrays, bp: BlockPlan, n_events: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = []
    for cname, brs in bp.branches.items():
        # an optional field a file lacks (not read) is zero, like a role the collection lacks
        present = {c: b for c, b in zip(bp.raw_columns, brs) if b is not None and b in arrays}
        jag = _jagged(arrays, present, cname)
        n = int(jag.offsets[-1])
        # columns are gathered contiguously, then transposed in one copy: writing each
        # column into the row-major X (a 160-byte stride) took 3x longer
        cols = np.empty((len(bp.raw_columns), n), np.float32)
        for i, c in enumerate(bp.raw_columns):
            cols[i] = jag.fields[c] if c in jag.fields else 0
        parts.append((jag.offsets, np.ascontiguousarray(cols.T)))
    return merge_nodes(parts)


def read_chunk(t, plan: SkimPlan, start: int, stop: int, keys: set[str]) -> Chunk:
    """Read entries [start, stop) of tree ``t`` for ``plan``; ``keys`` are the file's branch
    names (optional branches absent from the file are skipped)."""
    wanted = plan.branches() + [b for b in plan.optional_branches() if b in keys]
    arrays = t.arrays(wanted, entry_start=start, entry_stop=stop, library="ak", how=dict)
    nbytes = sum(int(a.layout.nbytes) for a in arrays.values())
    n = stop - start
    event = {k: _event_field(arrays, k, b) for k, b in plan.event_branches.items()}
    jet_fields = dict(plan.jet_branches)
    jet_fields.update({f: b for f, b in plan.jet_optional.items() if b in keys})
    jets = _jagged(arrays, jet_fields, plan.config.jets.collection)
    blocks = {name: _block(arrays, bp, n) for name, bp in plan.blocks.items()}
    links = {
        name: _jagged(arrays, {"jetIdx": bp.link_branches[0], "candIdx": bp.link_branches[1]}, f"the {name} block's link")
        for name, bp in plan.blocks.items()
        if bp.link_branches
    }
    gen = _jagged(arrays, plan.gen_branches, "GenPart")
    genjet = _jagged(arrays, plan.genjet_branches, "GenJet")
    genjetnu = _jagged(arrays, plan.genjetnu_branches, "GenJetWithNu") if plan.genjetnu_branches else None
    preset = {c: _jagged(arrays, brs, c) for c, brs in plan.preset_branches.items()}
    return Chunk(n, event, jets, blocks, links, gen, genjet, genjetnu, preset, nbytes)
