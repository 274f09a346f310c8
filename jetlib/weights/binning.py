"""Parse ``--bins`` specifications into observer names and bin edges.

Grammar (comma-separated, no ``eval``)::

    pt,eta                         default binning of each variable
    pt=15:1000:log25               25 log-spaced bins from 15 to 1000
    eta=-2.5:2.5:10                10 equal bins
    pt=15|30|60|120|1000           explicit edges

A short name ``pt`` means the observer ``jet_pt``; any observer of the store can be named.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from jetlib.errors import ConfigError, near_matches

__all__ = ["parse_bins", "bins_spec", "default_edges", "ALIASES"]

ALIASES = {"pt": "jet_pt", "eta": "jet_eta", "phi": "jet_phi", "mass": "jet_mass"}
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"^({_NUM}):({_NUM}):(log)?(\d+)$")
_EDGES = re.compile(rf"^{_NUM}(?:\|{_NUM})+$")
#: bins over all variables (weaver's usual maps have 10-500; 1000 x 1000 bins made a 200 MB JSON)
MAX_CELLS = 100_000


def default_edges(variable: str, meta: dict[str, Any] | None = None) -> np.ndarray:
    """Default edges: jet pT log-spaced 15..1000 GeV in 20 bins; η over the skim's |η| cut in 10."""
    jets = ((meta or {}).get("skim_config") or {}).get("jets") or {}
    if variable == "jet_pt":
        lo = float(jets.get("min_pt") or 15.0)
        return np.geomspace(max(lo, 1.0), max(1000.0, 2 * lo), 21)
    if variable == "jet_eta":
        eta = float(jets.get("max_abs_eta") or 2.5)
        return np.linspace(-eta, eta, 11)
    if variable == "jet_phi":
        return np.linspace(-np.pi, np.pi, 9)
    if variable == "jet_mass":
        return np.geomspace(1.0, 300.0, 21)
    raise ConfigError(f"no default binning for {variable!r}; give edges, e.g. '{variable}=0:100:20'", key=variable)


def parse_bins(spec: str, observers: list[str], meta: dict[str, Any] | None = None) -> tuple[list[str], list[np.ndarray]]:
    """Parse a ``--bins`` string into (observer names, edges per observer).

    Examples:
        >>> names, edges = parse_bins("pt=15:1000:log3,eta=-2.5:2.5:2", ["jet_pt", "jet_eta"])
        >>> names, [e.round(1).tolist() for e in edges]
        (['jet_pt', 'jet_eta'], [[15.0, 60.8, 246.6, 1000.0], [-2.5, 0.0, 2.5]])
    """
    names: list[str] = []
    edges: list[np.ndarray] = []
    parts = [p.strip() for p in spec.split(",")]
    if not any(parts):
        raise ConfigError("empty --bins; give e.g. 'pt,eta' or 'pt=15:1000:log20,eta=-2.5:2.5:10'", key="bins")
    if not all(parts):  # 'pt,,eta' or 'pt,eta,': most likely a variable left out, not meant
        raise ConfigError(f"--bins {spec!r} has an empty item; give e.g. 'pt,eta'", key="bins")
    for part in parts:
        name, eq, rhs = part.partition("=")
        name = name.strip()
        var = ALIASES.get(name, name)
        if var not in observers:
            hint = near_matches(var, observers + list(ALIASES))
            raise ConfigError(
                f"--bins {part!r}: {name!r} is not an observer of this store"
                + (f"; did you mean {', '.join(hint)}?" if hint else f"; observers are {', '.join(observers)}"),
                key="bins",
            )
        if var in names:
            raise ConfigError(f"--bins names {name!r} twice", key="bins")
        rhs = rhs.strip()
        if eq and not rhs:  # 'pt=' is an edge spec left out, not a request for the default
            raise ConfigError(f"--bins {part!r}: no edges after '='; give lo:hi:N, lo:hi:logN or e0|e1|...|eN, "
                              f"or {name!r} alone for the default binning", key="bins")  # fmt: skip
        if not rhs:
            e = default_edges(var, meta)
        elif m := _RANGE.match(rhs):
            lo, hi, log, n = float(m[1]), float(m[2]), bool(m[3]), int(m[4])
            if not (np.isfinite(lo) and np.isfinite(hi)):  # 1e400 parses, as inf
                raise ConfigError(f"--bins {part!r}: edges must be finite numbers", key="bins")
            why = ("the number of bins must be at least 1" if n < 1 else f"the low edge {m[1]} must be below the high edge {m[2]}"
                   if not hi > lo else f"log bins need a low edge above 0, not {m[1]}" if log and lo <= 0 else "")  # fmt: skip
            if why:
                raise ConfigError(f"--bins {part!r}: {why}", key="bins")
            e = np.geomspace(lo, hi, n + 1) if log else np.linspace(lo, hi, n + 1)
        elif _EDGES.match(rhs):
            e = np.array([float(x) for x in rhs.split("|")])
            if not np.isfinite(e).all():  # 1e400 parses, as inf
                raise ConfigError(f"--bins {part!r}: edges must be finite numbers", key="bins")
            if np.any(np.diff(e) <= 0):
                raise ConfigError(f"--bins {part!r}: edges must increase", key="bins")
        else:
            raise ConfigError(
                f"--bins {part!r}: cannot parse {rhs!r}; use lo:hi:N, lo:hi:logN or e0|e1|...|eN", key="bins"
            )
        names.append(var)
        edges.append(np.asarray(e, dtype=np.float64))
    cells = int(np.prod([len(e) - 1 for e in edges]))
    if cells > MAX_CELLS:
        raise ConfigError(
            f"--bins {spec!r} makes {cells:,} bins ({' x '.join(str(len(e) - 1) for e in edges)}); the weights need "
            f"many jets per bin and are stored per class and bin: use at most {MAX_CELLS:,}", key="bins",
        )  # fmt: skip
    return names, edges


def bins_spec(variables: list[str], edges: list[np.ndarray]) -> str:
    """The ``--bins`` string that :func:`parse_bins` turns back into ``variables`` and
    ``edges`` (to print the command that remakes saved weights)."""
    short = {v: k for k, v in ALIASES.items()}
    parts = []
    for v, e in zip(variables, edges):
        e = np.asarray(e, np.float64)
        lo, hi, n = e[0], e[-1], len(e) - 1
        if np.allclose(e, np.linspace(lo, hi, n + 1), rtol=1e-9, atol=0):
            rhs = f"{lo:.10g}:{hi:.10g}:{n}"
        elif lo > 0 and np.allclose(e, np.geomspace(lo, hi, n + 1), rtol=1e-9, atol=0):
            rhs = f"{lo:.10g}:{hi:.10g}:log{n}"
        else:
            rhs = "|".join(f"{x:.17g}" for x in e)
        parts.append(f"{short.get(v, v)}={rhs}")
    return ",".join(parts)
