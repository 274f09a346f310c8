"""Numba settings for the processes that jetlib owns (its commands, its LocalCluster workers)."""

from __future__ import annotations

__all__ = ["skip_numba_extensions"]


def skip_numba_extensions() -> None:
    """Tell Numba that its third-party extensions are loaded, so that it does not load them.

    Numba imports every installed ``numba_extensions`` entry point before its first compile
    or cache load: awkward's (~0.7 s), and in environments with weaver-core or coffea,
    vector's, which imports sympy (~1 s more). jetlib's kernels take NumPy arrays only and
    need none of them: ``jetlib stats`` on the demo store's 56k jets took 4.2-4.7 s with
    them, 2.5 s without (first call in a fresh process). Only for processes jetlib starts: a
    user's own process may run Numba code that needs them. A Numba without this flag (a
    future one) is left as it is.
    """
    from numba.core import entrypoints

    if getattr(entrypoints, "_already_initialized", None) is False:
        entrypoints._already_initialized = True
