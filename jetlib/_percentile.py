"""NumPy's linear-interpolation percentile, in the two pieces that the weight tables and the
exact stats each compute by hand (NumPy only: ``jetlib weights`` imports no Numba)."""

from __future__ import annotations

import numpy as np

__all__ = ["rank_positions", "lerp"]


def rank_positions(n: int, q) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For percentiles ``q`` (in [0, 100]) of ``n`` sorted values: the ranks below and above
    each (``k0``, ``k1``) and the fraction of the way from one to the other."""
    pos = np.asarray(q, np.float64) / 100.0 * (n - 1)
    k0 = np.floor(pos).astype(np.int64)
    return k0, np.minimum(k0 + 1, n - 1), pos - k0


def lerp(a: float, b: float, t: float) -> float:
    """``a + (b - a) t`` as ``np.percentile`` computes it, from the nearer end: the same
    value to the last bit (the plain form differs in ~2% of cases)."""
    return b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t
