"""Sampling-weight tables from per-class histograms.

The semantics follow weaver-core's ``WeightMaker`` so that a store's weights can be handed to
weaver unchanged (``reweight_hists``), generalised from 2D to any number of binned
variables, and with classes that have no jets left out instead of failing:

``flat``
    every class becomes uniform in the binned variables: a bin's weight is
    ``ref / count`` clipped to [0, 1], where ``ref`` is the ``threshold``-th percentile of
    the bin counts above 1% of the median non-empty bin (so sparse bins are not blown up;
    they keep weight 1), and empty bins get 0.
``ref``
    every class takes the shape of a reference class: weight ``ref_count / count``,
    divided by its ``100 - threshold``-th percentile over non-zero ratios, clipped to [0, 1].

Then classes are balanced: each class table is scaled so that the expected number of
sampled jets of every class is proportional to its class weight, times weaver's 0.9
(kept so that the exported tables equal weaver's).
"""

from __future__ import annotations

import numpy as np

from jetlib._percentile import lerp, rank_positions

__all__ = ["METHODS", "flat_table", "ref_table", "balance"]

METHODS = ("flat", "ref")
#: weaver's margin below 1 for the most constrained class
MAX_WEIGHT = 0.9


def _percentile_sorted(v: np.ndarray, q: float) -> float:
    """``np.percentile(v, q)`` (linear interpolation) of sorted, non-empty ``v``.

    Written out because the tables are small (a few hundred bins per class) and NumPy's
    percentile and median cost ~0.1 ms each in overhead: 4 ms for 20 classes, against a
    weights call of ~40 ms on a 226k-jet store."""
    k0, k1, t = rank_positions(v.size, q)
    return lerp(float(v[k0]), float(v[k1]), float(t))


def flat_table(counts: np.ndarray, threshold: float) -> np.ndarray:
    """Weights that flatten one class's histogram ``counts`` (any shape)."""
    counts = np.asarray(counts, np.float64)
    filled = np.sort(counts[counts > 0], axis=None)
    if filled.size == 0:
        return np.zeros_like(counts)
    # = np.median(filled) exactly: the counts are whole numbers, whose midpoint is exact either way
    floor = _percentile_sorted(filled, 50.0) * 0.01
    ref = _percentile_sorted(filled[np.searchsorted(filled, floor, "right") :], threshold)
    with np.errstate(divide="ignore"):
        w = np.where(counts > 0, ref / np.where(counts > 0, counts, 1.0), 0.0)
    return np.clip(w, 0.0, 1.0)


def ref_table(counts: np.ndarray, ref_counts: np.ndarray, threshold: float) -> np.ndarray:
    """Weights that give ``counts`` the shape of ``ref_counts``."""
    counts = np.asarray(counts, np.float64)
    ratio = np.where(counts > 0, np.asarray(ref_counts, np.float64) / np.where(counts > 0, counts, 1.0), 0.0)
    positive = np.sort(ratio[ratio > 0], axis=None)
    if positive.size == 0:
        return np.zeros_like(counts)
    upper = _percentile_sorted(positive, 100 - threshold)
    return np.clip(ratio / upper, 0.0, 1.0)


def balance(tables: np.ndarray, counts: np.ndarray, class_weights: np.ndarray) -> np.ndarray:
    """Scale each class's table so that expected sampled jets ∝ ``class_weights``.

    Classes with no expected jets (no jets, or class weight 0) get an all-zero table.
    """
    tables = np.array(tables, np.float64, copy=True)
    c = tables.shape[0]
    expected = (tables * counts).reshape(c, -1).sum(axis=1)
    live = (expected > 0) & (class_weights > 0)
    if not np.any(live):
        return np.zeros_like(tables)
    per_weight = np.full(c, np.inf)
    per_weight[live] = expected[live] / class_weights[live]
    target = per_weight[live].min() * MAX_WEIGHT
    for i in range(c):
        tables[i] = tables[i] * (target / per_weight[i]) if live[i] else 0.0
    return tables
