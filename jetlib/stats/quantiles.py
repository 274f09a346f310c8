"""Exact percentiles of every feature over all real nodes of a store, in bounded memory.

Holding every value is out of the question (a million jets × 50 PF slots × 40 features is
8 GB), so the percentiles are found by selection in two passes:

1. a sample of evenly spaced jet slices from every shard gives, for each feature and
   percentile, a bracket ``[lo, hi]`` of values that contains the target rank with a
   margin of many binomial standard deviations;
2. one pass over all shards counts, per feature, the values below ``lo`` and keeps only
   the values inside the bracket (≈1% of them); the exact order statistic is then picked
   from the kept values.

A bracket that misses (astronomically rare, or heavily tied discrete values) is widened to
the side it missed and the second pass repeats for those features only. The result equals
``np.percentile`` (linear interpolation) over the unpadded values exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

__all__ = ["exact_percentiles", "real_values"]

#: binomial standard deviations of margin around the sample's estimate of each rank
_SIGMAS = 8.0


def real_values(x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """(F, n_real) values of the real nodes: ``x`` (N, F, L) with ``mask`` (N, 1, L), or
    ``x`` (N, F) without mask. Non-finite values count as 0, as weaver does."""
    if mask is None:
        v = np.ascontiguousarray(x.T)
    else:
        v = x.transpose(1, 0, 2)[:, mask[:, 0, :] > 0]
    if not np.isfinite(v).all():
        v = np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
    return v


def _positions(n: int, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos = q / 100.0 * (n - 1)
    k0 = np.floor(pos).astype(np.int64)
    return k0, np.minimum(k0 + 1, n - 1), pos - k0


def exact_percentiles(
    sample: Callable[[], Iterator[dict[str, np.ndarray]]],
    full: Callable[[], Iterator[dict[str, np.ndarray]]],
    n_features: dict[str, int],
    q: list[float],
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Percentiles ``q`` of each feature of each named array over all values ``full()`` yields.

    Args:
        sample: yields ``{name: (F, n) values}`` for a subset of the data (pass 1, read once).
        full: yields ``{name: (F, n) values}`` for all data (pass 2; may run again for a
            feature whose bracket missed).
        n_features: F per name.
        q: percentiles in [0, 100].

    Returns:
        ``{name: (percentiles (F, len(q)), counts (F,))}``; NaN where a feature has no values.
    """
    qa = np.asarray(q, np.float64)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in n_features}
    for d in sample():
        for k in n_features:
            parts[k].append(d[k])
    sel = {k: _Selection(np.concatenate(parts[k], axis=1) if parts[k] else np.zeros((f, 0), np.float32), qa)
           for k, f in n_features.items()}  # fmt: skip
    del parts
    for _attempt in range(4):
        if not any(x.todo.any() for x in sel.values()):
            break
        for x in sel.values():
            x.start_pass()
        for d in full():
            for k, x in sel.items():
                x.update(d[k])
        for x in sel.values():
            x.finish_pass()
    return {k: (x.result, x.n) for k, x in sel.items()}


class _Selection:
    """Brackets, counts and kept values of one array's features."""

    def __init__(self, sample: np.ndarray, qa: np.ndarray):
        f = sample.shape[0]
        self.qa = qa
        self.lo = np.full((f, len(qa)), -np.inf)
        self.hi = np.full((f, len(qa)), np.inf)
        if sample.shape[1]:
            s = np.sort(sample, axis=1)
            m = s.shape[1]
            margin = _SIGMAS * np.sqrt(m * qa / 100 * (1 - qa / 100)) + 2
            lo_r = np.floor(qa / 100 * (m - 1) - margin).astype(np.int64)
            hi_r = np.ceil(qa / 100 * (m - 1) + margin).astype(np.int64)
            self.lo = np.where(lo_r >= 0, s[:, np.clip(lo_r, 0, m - 1)], -np.inf)
            self.hi = np.where(hi_r < m, s[:, np.clip(hi_r, 0, m - 1)], np.inf)
        self.result = np.full((f, len(qa)), np.nan)
        self.todo = np.ones((f, len(qa)), bool)
        self.n = np.zeros(f, np.int64)

    def start_pass(self) -> None:
        f = self.todo.shape[0]
        self.below = np.zeros(self.todo.shape, np.int64)
        self.kept: list[list[list[np.ndarray]]] = [[[] for _ in self.qa] for _ in range(f)]
        self.n = np.zeros(f, np.int64)

    def update(self, v: np.ndarray) -> None:
        self.n += v.shape[1]
        for j in range(len(self.qa)):
            rows = np.flatnonzero(self.todo[:, j])
            if rows.size == 0:
                continue
            vv = v[rows]
            # the bounds are sample values (or ±inf), exact in the values' dtype: compare
            # without promoting the whole block to float64
            a, b = self.lo[rows, j, None].astype(vv.dtype), self.hi[rows, j, None].astype(vv.dtype)
            self.below[rows, j] += (vv < a).sum(axis=1)
            inside = (vv >= a) & (vv <= b)
            for r, f in enumerate(rows):
                self.kept[f][j].append(vv[r][inside[r]])

    def finish_pass(self) -> None:
        for f in range(self.todo.shape[0]):
            if self.n[f] == 0:
                self.todo[f] = False
                continue
            k0, k1, frac = _positions(int(self.n[f]), self.qa)
            for j in np.flatnonzero(self.todo[f]):
                kept = self.kept[f][j]
                w = np.sort(np.concatenate(kept)).astype(np.float64) if kept else np.zeros(0)
                b = self.below[f, j]
                if b <= k0[j] and k1[j] < b + w.size:
                    lo_v, hi_v = w[k0[j] - b], w[k1[j] - b]
                    self.result[f, j] = lo_v + (hi_v - lo_v) * frac[j]
                    self.todo[f, j] = False
                elif b > k0[j]:  # the rank lies below the bracket: search (-inf, lo]
                    self.lo[f, j], self.hi[f, j] = -np.inf, self.lo[f, j]
                else:  # above it: search [hi, inf)
                    self.lo[f, j], self.hi[f, j] = self.hi[f, j], np.inf
        del self.kept
