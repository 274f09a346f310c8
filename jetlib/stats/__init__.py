"""Feature standardisation, kept in the store (``stats/stats.json``).

For every feature of every node block and of the jet features: the median as centre,
``1 / max(p84 - median, median - p16)`` as scale (weaver's choice: robust to tails), and
clip bounds ``±clip`` applied after scaling. Computed over real nodes only, never the
padding, from all shards, exactly (see :mod:`jetlib.stats.quantiles`).

Examples:
    >>> stats = compute_stats("store/")                                   # doctest: +SKIP
    >>> x = stats.apply("pf_features", batch["pf_features"], batch["pf_mask"])  # doctest: +SKIP

With the mask, padding comes out 0; for a block skimmed with ``padding: wrap``, whose padding
holds copies of real nodes, pass ``mask.max(axis=2, keepdims=True)`` instead (as
:class:`jetlib.Reader` does): the copies are standardised, as weaver does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jetlib.errors import ConfigError, StoreError
from jetlib.stats.quantiles import SAMPLE_VALUES, exact_percentiles, real_values
from jetlib.store.shards import CHUNK_JETS, read_shard
from jetlib.store.store import Store, write_json

__all__ = ["FeatureStats", "Stats", "compute_stats", "load_stats", "SAMPLE_JETS"]

STATS_DIR = "stats"
#: jets read in the first (bracketing) pass, from shards spread over the input files
SAMPLE_JETS = 20_000
#: clip bounds ±DEFAULT_CLIP after scaling (weaver's default)
DEFAULT_CLIP = 5.0
_MIN_SAMPLE = 64


@dataclass
class FeatureStats:
    """Standardisation of one array's features (axis 1)."""

    features: list[str]
    center: np.ndarray  # (F,) float32
    scale: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    extra: dict[str, list] = field(default_factory=dict)  # p16, p84, count: for people, not used

    def to_json(self) -> dict[str, Any]:
        d = {"features": self.features}
        for k in ("center", "scale", "lo", "hi"):
            d[k] = getattr(self, k).tolist()
        return d | self.extra

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FeatureStats:
        arr = {k: np.asarray(d[k], np.float32) for k in ("center", "scale", "lo", "hi")}
        return cls(list(d["features"]), **arr, extra={k: v for k, v in d.items() if k not in arr and k != "features"})


@dataclass
class Stats:
    """Standardisation of a store: ``arrays["pf_features"]``, ..., ``arrays["jet_features"]``."""

    arrays: dict[str, FeatureStats]
    clip: float = DEFAULT_CLIP
    jets: int = 0
    config_hash: str = ""

    def apply(self, name: str, x: np.ndarray, mask: np.ndarray | None = None, *, out: np.ndarray | None = None) -> np.ndarray:
        """``clip((x - center) * scale, lo, hi)`` per feature (axis 1); where ``mask`` is 0
        (padding) the result is 0.

        Args:
            name: ``"<block>_features"`` or ``"jet_features"``.
            x: (N, F, L) or (N, F).
            mask: (N, 1, L), optional.
            out: float32 output of x's shape (may be ``x`` itself).
        """
        if name not in self.arrays:
            raise KeyError(f"no standardisation for {name!r}; have {', '.join(self.arrays)}")
        fs = self.arrays[name]
        if x.ndim < 2 or x.shape[1] != len(fs.features):
            raise ValueError(f"{name}: expected {len(fs.features)} features on axis 1, got shape {x.shape}")
        shape = (1, -1) + (1,) * (x.ndim - 2)
        if out is None:
            out = np.empty(x.shape, np.float32)
        np.subtract(x, fs.center.reshape(shape), out=out)
        np.multiply(out, fs.scale.reshape(shape), out=out)
        np.clip(out, fs.lo.reshape(shape), fs.hi.reshape(shape), out=out)
        if mask is not None:
            np.multiply(out, mask, out=out)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"method": "exact percentiles p16/p50/p84 over real nodes", "clip": self.clip, "jets": self.jets,
                "config_hash": self.config_hash, "arrays": {k: v.to_json() for k, v in self.arrays.items()}}  # fmt: skip

    def command(self, store: str | Path) -> str:
        """The ``jetlib stats`` command that makes this standardisation again."""
        return f"jetlib stats {store}" + (f" --clip {self.clip:g}" if self.clip != DEFAULT_CLIP else "")

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Stats:
        return cls({k: FeatureStats.from_json(v) for k, v in d["arrays"].items()}, float(d["clip"]),
                   int(d["jets"]), d.get("config_hash", ""))  # fmt: skip


def _feature_arrays(s: Store) -> dict[str, tuple[list[str], str | None]]:
    """array name -> (feature names, mask array name or None)."""
    out: dict[str, tuple[list[str], str | None]] = {}
    for b, info in s.blocks.items():
        out[f"{b}_features"] = (list(info["features"]), f"{b}_mask")
    out["jet_features"] = (list(s.jet_features), None)
    return out


def _sample_range(jets: int, fraction: float, index: int) -> tuple[int, int]:
    """One contiguous slice of about ``fraction`` of a shard's jets (its events are i.i.d.
    within the file it came from), starting on a compression chunk chosen by the shard's
    ``index`` so that the sample moves through the files. A contiguous slice decodes each
    compressed chunk once; many small slices would decode the same chunk many times. Past
    one chunk, the slice is a whole number of chunks (the nearest): the benchmark store's
    1,250 jets per shard decoded two chunks of 1,024 for them."""
    n = min(jets, max(_MIN_SAMPLE, int(round(jets * fraction))))
    if n > CHUNK_JETS:
        n = min(jets, round(n / CHUNK_JETS) * CHUNK_JETS)
    chunks = -(-jets // CHUNK_JETS)
    start = min((index % chunks) * CHUNK_JETS, (jets - n) // CHUNK_JETS * CHUNK_JETS)
    return start, start + n


def _sample_shards(jets: list[int], files: list[str], sample_jets: int) -> list[int]:
    """Indices of the shards the bracketing sample reads: enough for ``sample_jets`` at one
    compression chunk (or the whole shard, if smaller) each, shared among the input files in
    proportion to their jets, at least one per file, spread evenly through each file's
    shards (in task order: through the file).

    Not a slice of every shard: a slice costs a whole compression chunk to decode whatever
    its length, and at the skim's default 5,000 events per task a shard holds ~14 chunks, so
    a slice of every shard decoded 7% of the store for a sample of ~20k jets (0.65 s of
    13.9 s for 1.8M jets). At least one shard per file keeps files that differ (samples
    binned in pT, eras) all in the sample; shards that differ within a file widen the
    brackets, or, when they differ more than that should allow for, make compute_stats take
    the sample from every shard (:func:`jetlib.stats.quantiles.exact_percentiles`' ``part``
    and ``resample``)."""
    if not jets:
        return []
    per_shard = max(1.0, min(CHUNK_JETS, sum(jets) / len(jets)))
    wanted = -(-sample_jets // int(per_shard))
    by_file: dict[str, list[int]] = {}
    for i, f in enumerate(files):
        by_file.setdefault(f, []).append(i)
    total = sum(jets) or 1
    picked = []
    for idx in by_file.values():
        n = min(len(idx), max(1, round(wanted * sum(jets[i] for i in idx) / total)))
        picked += [idx[(2 * k + 1) * len(idx) // (2 * n)] for k in range(n)]
    return sorted(picked)


def _read_ahead(read, items, enabled: bool):
    """``read(item)`` for each item; if ``enabled``, the next one is read in a thread while
    the caller works on the current one (the counting kernel releases the GIL)."""
    if not enabled:
        yield from (read(x) for x in items)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="jetlib-stats-read") as pool:
        pending = None
        for x in items:
            nxt = pool.submit(read, x)
            if pending is not None:
                yield pending.result()
            pending = nxt
        if pending is not None:
            yield pending.result()


def compute_stats(store: str | Path | Store, *, clip: float = DEFAULT_CLIP, sample_jets: int = SAMPLE_JETS,
                  progress: bool = False, read_ahead: bool = True) -> Stats:  # fmt: skip
    """Compute the standardisation of every feature and save ``<store>/stats/stats.json``.

    Args:
        store: store folder or :class:`Store`.
        clip: bounds ``±clip`` after scaling (weaver's default 5).
        sample_jets: jets in the bracketing pass (more: fewer retries, more memory).
        progress: show a progress bar.
        read_ahead: read the next shard in a second thread while the current one is
            counted (two cores busy); False does one thing at a time (one core).

    Returns:
        :class:`Stats`.
    """
    if not 0 < clip < np.inf:
        raise ConfigError(f"clip {clip:g} must be a finite number > 0: standardised values are clipped to ±clip "
                          "(for practically no clipping, give a large value such as 1e6)", key="clip")  # fmt: skip
    s = store if isinstance(store, Store) else Store(store)
    shards = [x for x in s.shards() if x.jets]
    total = sum(x.jets for x in shards)
    if total == 0:
        raise s.no_jets_error()
    arrays = _feature_arrays(s)
    names = [n for a, (_, m) in arrays.items() for n in (a, m) if n]

    latest = s.latest()
    files = [latest[sh.task].get("file", sh.task) for sh in shards]
    picked = _sample_shards([sh.jets for sh in shards], files, sample_jets)

    def sample(picked=picked):
        """The bracketing sample from the shards ``picked``: each value with its jet, and,
        unless every shard is picked, its shard's number among them."""
        fraction = sample_jets / sum(shards[i].jets for i in picked)
        ranges = {i: _sample_range(shards[i].jets, fraction, i) for i in picked}
        sampled = sum(b - a for a, b in ranges.values())
        first = 0  # sample jets numbered across shards
        for part, (i, (a, b)) in enumerate(ranges.items()):
            d = read_shard(shards[i].path, s.layout, names, start=a, stop=b)
            out = {}
            for k, (_, m) in arrays.items():
                jet = np.arange(b - a) if m is None else np.nonzero(d[m][:, 0, :] > 0)[0]
                # thinned here to about this shard's share of the values the brackets use
                # (the selection thins the whole sample to at most that many again)
                step = max(1, len(jet) * sampled // max(1, SAMPLE_VALUES * (b - a)))
                out[k] = (real_values(d[k], d[m] if m else None, step), jet[::step] + first)
                if len(picked) < len(shards):
                    out[k] += (np.full(len(out[k][1]), part),)
            first += b - a
            yield out

    # shards that differ more than the sample of some of them can allow for: all of them
    every = None if len(picked) == len(shards) else lambda: sample(range(len(shards)))

    def full():
        """One read of each shard serves every array."""
        it = shards
        if progress:
            from rich.console import Console
            from rich.progress import track

            # on stderr: stdout holds the results (a blank line there when piped, otherwise)
            it = track(shards, description="stats", transient=True, console=Console(stderr=True))
        for d in _read_ahead(lambda sh: read_shard(sh.path, s.layout, names), it, read_ahead):
            yield {k: (d[k], d[m] if m else None) for k, (_, m) in arrays.items()}

    out: dict[str, FeatureStats] = {}
    q = [16.0, 50.0, 84.0]
    results = exact_percentiles(sample, full, {k: len(f) for k, (f, _) in arrays.items()}, q, resample=every)
    for k, (feats, _) in arrays.items():
        p, counts = results[k]
        p16, med, p84 = p[:, 0], p[:, 1], p[:, 2]
        width = np.maximum(p84 - med, med - p16)
        scale = np.where((width > 0) & np.isfinite(width), 1.0 / np.where(width > 0, width, 1.0), 1.0)
        center = np.nan_to_num(med, nan=0.0)
        out[k] = FeatureStats(
            feats, center.astype(np.float32), scale.astype(np.float32),
            np.full(len(feats), -clip, np.float32), np.full(len(feats), clip, np.float32),
            extra={"p16": np.nan_to_num(p16).tolist(), "p84": np.nan_to_num(p84).tolist(), "count": counts.tolist()},
        )  # fmt: skip
    stats = Stats(out, float(clip), total, s.meta.get("config_hash", ""))
    folder = s.path / STATS_DIR
    folder.mkdir(exist_ok=True)
    write_json(folder / "stats.json", stats.to_json(), indent=None)
    return stats


def load_stats(store: str | Path | Store) -> Stats:
    """Load ``stats/stats.json``; a :class:`StoreError` says to run ``jetlib stats`` when it is
    absent or out of date, or, on a store without jets, why it has none."""
    s = store if isinstance(store, Store) else Store(store)
    path = s.path / STATS_DIR / "stats.json"
    if not path.is_file():
        if s.n_jets == 0:  # `jetlib stats` could not make one: say why instead
            raise s.no_jets_error()
        raise StoreError(f"{s.path}: no standardisation yet; run `jetlib stats {s.path}`")
    st = Stats.from_json(json.loads(path.read_text()))
    if not s.made_from_this_state(st.jets, st.config_hash):
        raise StoreError(f"{path}: computed for {st.jets:,} jets but the store now has {s.n_jets:,}; re-run `{st.command(s.path)}`")
    return st
