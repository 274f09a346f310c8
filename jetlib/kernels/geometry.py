"""Angular helpers shared by the kernels (inlined into them by Numba)."""

from __future__ import annotations

import math

import numba as nb

__all__ = ["delta_phi", "delta_r2"]


@nb.njit(inline="always", cache=True)
def delta_phi(a: float, b: float) -> float:
    """a − b wrapped to [−π, π)."""
    d = a - b
    return d - 2.0 * math.pi * math.floor((d + math.pi) / (2.0 * math.pi))


@nb.njit(inline="always", cache=True)
def delta_r2(eta1: float, phi1: float, eta2: float, phi2: float) -> float:
    de = eta1 - eta2
    dp = delta_phi(phi1, phi2)
    return de * de + dp * dp
