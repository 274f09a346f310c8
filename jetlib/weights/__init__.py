"""Per-class pT/η sampling weights, kept in the store (``weights/<name>.json``).

These weights decide which jets a training *samples* (accept/reject), so that every class
is uniform in (pT, η) or shaped like a reference class, and the classes are balanced by
class weights. They are not loss weights.

Examples:
    >>> w = compute_weights("store/", bins="pt,eta", method="flat")      # doctest: +SKIP
    >>> w.expected_counts()                                             # doctest: +SKIP
    >>> p = w.lookup({"jet_pt": pt, "jet_eta": eta}, label)            # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from jetlib.errors import ConfigError, StoreError, near_matches
from jetlib.store.store import Store, write_json
from jetlib.weights.binning import bins_spec, parse_bins
from jetlib.weights.hist import FLOW_POLICIES, ClassHistograms, bin_index, fill_histograms, make_axis
from jetlib.weights.methods import METHODS, balance, flat_table, ref_table

__all__ = ["SamplingWeights", "compute_weights", "load_weights", "parse_class_weights", "DEFAULT_THRESHOLD"]

#: weaver's ``reweight_threshold`` default (a percentile, see :mod:`jetlib.weights.methods`)
DEFAULT_THRESHOLD = 10.0
WEIGHTS_DIR = "weights"


@dataclass
class SamplingWeights:
    """A weight table per class over the bins of ``variables``.

    ``tables[c]`` holds weaver-compatible weights (the most constrained class peaks at 0.9);
    :meth:`lookup` returns acceptance probabilities scaled so that the largest is 1.
    """

    name: str
    method: str
    variables: list[str]
    edges: list[np.ndarray]
    classes: list[str]
    class_weights: dict[str, float]
    tables: np.ndarray  # (C, n1, n2, ...)
    counts: np.ndarray  # (C, n1, n2, ...) jets per class and bin before sampling
    flow: str = "clip"
    threshold: float = DEFAULT_THRESHOLD
    reference: str | None = None
    jets: int = 0
    config_hash: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    # -- per jet ---------------------------------------------------------------------------
    @cached_property
    def axes(self) -> list:
        """The boost-histogram axis of each variable, as the histograms were filled with: a
        log-binned variable's axis is over log(x) (values go onto it through
        :func:`jetlib.weights.hist.to_axis`); :attr:`edges` are in the variable's own units."""
        return [make_axis(e) for e in self.edges]

    def bin_index(self, columns: dict[str, np.ndarray]) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        """Bin indices per variable and a mask of jets inside the edges (always all with ``clip``),
        on the same boost-histogram axes as the fill."""
        idx, inside = [], None
        for v, ax in zip(self.variables, self.axes):
            if v not in columns:
                raise KeyError(f"weights {self.name!r} need column {v!r}; got {sorted(columns)}")
            i, ok = bin_index(ax, columns[v], self.flow)
            idx.append(i)
            inside = ok if inside is None else inside & ok
        assert inside is not None
        return tuple(idx), (np.ones_like(inside) if self.flow == "clip" else inside)

    def lookup(self, columns: dict[str, np.ndarray], label: np.ndarray) -> np.ndarray:
        """Acceptance probability in [0, 1] (float64) of each jet; the largest over all
        classes and bins is 1.

        Args:
            columns: the binned observers, e.g. ``{"jet_pt": ..., "jet_eta": ...}``.
            label: integer class of each jet.
        """
        idx, inside = self.bin_index(columns)
        if self._peak <= 0:
            return np.zeros(len(label))
        p = self.tables[(np.asarray(label, np.intp), *idx)] / self._peak
        return p if self.flow == "clip" else np.where(inside, p, 0.0)

    @cached_property
    def _peak(self) -> float:
        return float(self.tables.max())

    # -- summaries ---------------------------------------------------------------------------
    def acceptance(self) -> np.ndarray:
        """The tables scaled to a maximum of 1 (what :meth:`lookup` returns per bin)."""
        return self.tables / self._peak if self._peak > 0 else self.tables

    def expected_counts(self) -> dict[str, float]:
        """Expected jets per class in one pass over the store with accept/reject sampling."""
        e = (self.acceptance() * self.counts).reshape(len(self.classes), -1).sum(axis=1)
        return dict(zip(self.classes, e.tolist()))

    def shape_share(self) -> float:
        """Share of the store's jets that each class's own table keeps, scaled to a peak of 1
        per class: what an epoch would sample before the classes are balanced. Below it, the
        shapes cost the jets (a class's sparsest bins set its level); between it and the
        share sampled, the balancing does (the limiting class sets every class's level)."""
        t = self.tables.reshape(len(self.classes), -1)
        peak = t.max(axis=1, keepdims=True)
        kept = np.divide(t, peak, out=np.zeros(t.shape), where=peak > 0) * self.counts.reshape(t.shape)
        return float(kept.sum() / self.jets) if self.jets else 0.0

    def limiting_class(self) -> str | None:
        """The class whose sparsest bin sets the sampling rate of every class (its acceptance
        reaches 1 there); None when no jet is sampled."""
        peak = self.acceptance().reshape(len(self.classes), -1).max(axis=1)
        return self.classes[int(peak.argmax())] if peak.max() > 0 else None

    def jets_per_filled_bin(self) -> float:
        """Median over classes with jets of the mean jets per non-empty bin: below ~10, the
        flat and ref weights follow the bins' statistical fluctuations."""
        c = self.counts.reshape(len(self.classes), -1)
        filled = (c > 0).sum(axis=1)
        live = filled > 0
        return float(np.median(c[live].sum(axis=1) / filled[live])) if live.any() else 0.0

    def _changed_class_weights(self) -> str:
        """``--class-weights`` of the classes whose weight is not 1 (``b=2,c=2``)."""
        return ",".join(f"{k}={v:g}" for k, v in self.class_weights.items() if v != 1)

    def describe(self) -> str:
        """What these weights were made with: method, reference, bins and their ranges, class weights."""
        bins = " x ".join(f"{v} {len(e) - 1}" for v, e in zip(self.variables, self.edges))
        ref = f" (reference {self.reference})" if self.reference else ""
        lo_hi = "; ".join(f"{v} {e[0]:g}..{e[-1]:g}" for v, e in zip(self.variables, self.edges))
        cw = self._changed_class_weights()
        return f"{self.method}{ref} weights over {bins} bins ({lo_hi})" + (f", class weights {cw}" if cw else "")

    def command(self, store: str | Path) -> str:
        """The ``jetlib weights`` command that makes these weights again."""
        args = [f"jetlib weights {store} --bins '{bins_spec(self.variables, self.edges)}'", f"--method {self.method}"]
        if self.reference:
            args.append(f"--reference {self.reference}")
        cw = self._changed_class_weights()
        if cw:
            args.append(f"--class-weights {cw}")
        if self.threshold != DEFAULT_THRESHOLD:
            args.append(f"--threshold {self.threshold:g}")
        if self.flow != "clip":
            args.append(f"--flow {self.flow}")
        if self.name != self.method:
            args.append(f"--name {self.name}")
        return " ".join(args)

    # -- persistence ---------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "method": self.method,
            "variables": self.variables,
            "edges": [e.tolist() for e in self.edges],
            "classes": self.classes,
            "class_weights": self.class_weights,
            "flow": self.flow,
            "threshold": self.threshold,
            "reference": self.reference,
            "jets": self.jets,
            "config_hash": self.config_hash,
            "expected_counts": self.expected_counts(),
            "tables": self.tables.tolist(),
            "counts": self.counts.tolist(),
            **self.extra,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SamplingWeights:
        known = {"name", "method", "variables", "edges", "classes", "class_weights", "flow", "threshold",
                 "reference", "jets", "config_hash", "tables", "counts", "expected_counts"}  # fmt: skip
        return cls(
            name=d["name"], method=d["method"], variables=list(d["variables"]),
            edges=[np.asarray(e, np.float64) for e in d["edges"]], classes=list(d["classes"]),
            class_weights={k: float(v) for k, v in d["class_weights"].items()},
            tables=np.asarray(d["tables"], np.float64), counts=np.asarray(d["counts"], np.float64),
            flow=d["flow"], threshold=float(d["threshold"]), reference=d.get("reference"),
            jets=int(d["jets"]), config_hash=d.get("config_hash", ""),
            extra={k: v for k, v in d.items() if k not in known},
        )  # fmt: skip

    def save(self, store: str | Path) -> Path:
        folder = Path(store) / WEIGHTS_DIR
        folder.mkdir(exist_ok=True)
        path = folder / f"{self.name}.json"
        write_json(path, self.to_json(), indent=None)
        return path


def parse_class_weights(spec: str | dict[str, float] | None, classes: list[str]) -> dict[str, float]:
    """``"b=2,c=2"`` (or a dict) → a weight for every class (default 1)."""
    out = {c: 1.0 for c in classes}
    if not spec:
        return out
    items = spec.items() if isinstance(spec, dict) else [p.split("=", 1) for p in str(spec).split(",") if p.strip()]
    seen: set[str] = set()
    for item in items:
        if len(item) != 2:
            raise ConfigError(f"class weight {'='.join(item)!r}: use name=value, e.g. b=2", key="class_weights")
        k, v = item[0].strip(), item[1]
        if k not in out:
            hint = near_matches(k, classes)
            raise ConfigError(
                f"class weight for {k!r}: no such class" + (f"; did you mean {', '.join(hint)}?" if hint else f"; classes are {', '.join(classes)}"),
                key="class_weights",
            )
        if k in seen:
            raise ConfigError(f"class weight for {k!r} given twice; give each class once", key="class_weights")
        seen.add(k)
        try:
            out[k] = float(v)
        except ValueError:
            raise ConfigError(f"class weight {k}={v!r} is not a number", key="class_weights") from None
        if not 0 <= out[k] < np.inf:
            raise ConfigError(f"class weight {k}={v} must be a finite number >= 0", key="class_weights")
    return out


def tables_from_histograms(
    hists: ClassHistograms, *, method: str, threshold: float, reference: str | None, class_weights: dict[str, float]
) -> np.ndarray:
    """The weight tables for ``method`` (no I/O; used by :func:`compute_weights` and tests)."""
    counts = hists.counts
    if method == "flat":
        tables = np.stack([flat_table(c, threshold) for c in counts])
    elif method == "ref":
        if reference is None:
            raise ConfigError("method 'ref' needs a reference class (--reference b)", key="reference")
        if reference not in hists.classes:
            hint = near_matches(reference, hists.classes)
            raise ConfigError(f"reference class {reference!r} does not exist" + (f" (did you mean {', '.join(hint)}?)" if hint else "")
                              + f"; the store's classes are {', '.join(hists.classes)}", key="reference")  # fmt: skip
        ref = counts[hists.classes.index(reference)]
        if ref.sum() == 0:
            raise ConfigError(f"reference class {reference!r} has no jets in this store", key="reference")
        tables = np.stack([ref_table(c, ref, threshold) for c in counts])
    else:
        raise ConfigError(f"unknown method {method!r}; use one of {', '.join(METHODS)}", key="method")
    cw = np.array([class_weights[c] for c in hists.classes], np.float64)
    return balance(tables, counts, cw)


def compute_weights(
    store: str | Path | Store,
    *,
    bins: str = "pt,eta",
    method: str = "flat",
    reference: str | None = None,
    class_weights: str | dict[str, float] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    flow: str = "clip",
    name: str | None = None,
    plot: bool = False,
    scheduler: str | None = None,
) -> SamplingWeights:
    """Compute sampling weights from the store's jets and save them in ``<store>/weights/``.

    Args:
        store: store folder or :class:`Store`.
        bins: ``--bins`` grammar of :func:`jetlib.weights.binning.parse_bins`.
        method: ``flat`` or ``ref``.
        reference: reference class for ``ref``.
        class_weights: ``"b=2,c=2"`` or a dict; classes not named get 1.
        threshold: percentile against low-count bins (weaver's ``reweight_threshold``).
        flow: ``clip`` jets outside the edges into the edge bins, or ``drop`` them (weight 0).
        name: file name under ``weights/`` (default: the method).
        plot: also write PNGs next to the JSON (needs ``jetlib[plot]``). The PNGs that
            earlier weights of this name wrote are removed first: they showed other weights.
        scheduler: Dask scheduler address for a large store (default: local threads).

    Returns:
        The :class:`SamplingWeights`, also saved as ``weights/<name>.json``.
    """
    if reference is not None and method != "ref":
        raise ConfigError(f"--reference {reference} is for --method ref; {method} weights have no reference class", key="reference")
    if name is not None and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
        raise ConfigError(f"--name {name!r}: weights are saved as weights/<name>.json; use letters, digits, '_', '-' and '.'",
                          key="name")  # fmt: skip
    s = store if isinstance(store, Store) else Store(store)
    if flow not in FLOW_POLICIES:
        raise ConfigError(f"flow {flow!r}; use one of {', '.join(FLOW_POLICIES)}", key="flow")
    if not 0 <= threshold < 100:
        raise ConfigError(f"threshold {threshold} must be a percentile in [0, 100)", key="threshold")
    observers = [n for n, spec in s.layout.arrays.items() if spec.inner == ()]
    variables, edges = parse_bins(bins, [o for o in observers if o != "label"], s.meta)
    cw = parse_class_weights(class_weights, s.classes)
    if s.n_jets == 0:
        raise s.no_jets_error()
    hists = fill_histograms(s, variables, edges, flow=flow, scheduler=scheduler)
    tables = tables_from_histograms(hists, method=method, threshold=threshold, reference=reference, class_weights=cw)
    w = SamplingWeights(
        name=name or method, method=method, variables=variables, edges=edges, classes=list(s.classes),
        class_weights=cw, tables=tables, counts=hists.counts, flow=flow, threshold=threshold,
        reference=reference, jets=s.n_jets, config_hash=s.meta.get("config_hash", ""),
        extra={"flow_jets": dict(zip(s.classes, hists.flow.tolist()))},
    )  # fmt: skip
    if not sum(w.expected_counts().values()) > 0:  # a Reader would yield empty epochs
        if not any(cw.values()):
            why = "every class weight is 0"
        elif hists.counts.sum() == 0:
            why = f"no jet lies inside --bins {bins!r}" + (" and --flow drop gives the others weight 0" if flow == "drop" else "")
        else:
            why = "every class with jets has class weight 0"
        raise ConfigError(f"these weights would sample no jets ({why}); nothing saved", key="class_weights")
    # the previous weights' plots show other weights: removed before the new weights are
    # saved, so that a failed --plot cannot leave them behind, unrecorded
    for png in _recorded_plots(s.path / WEIGHTS_DIR / f"{w.name}.json"):
        (s.path / WEIGHTS_DIR / png).unlink(missing_ok=True)
    w.save(s.path)
    if plot:
        from jetlib.weights.plot import plot_weights

        w.extra["plots"] = [str(p) for p in plot_weights(w, s.path / WEIGHTS_DIR)]
        w.save(s.path)
    return w


def _recorded_plots(path: Path) -> set[str]:
    """File names of the PNGs that the weights saved at ``path`` recorded (``--plot``)."""
    try:
        plots = json.loads(path.read_text()).get("plots", [])
    except (OSError, ValueError, AttributeError):
        return set()
    stem = path.stem + "_"
    return {n for n in (Path(str(p)).name for p in plots) if n.startswith(stem) and n.endswith(".png")}


def load_weights(store: str | Path | Store, name: str = "flat") -> SamplingWeights:
    """Load ``weights/<name>.json``; a :class:`StoreError` says how to make it when absent
    or when the store changed since (other jets or another configuration)."""
    s = store if isinstance(store, Store) else Store(store)
    path = s.path / WEIGHTS_DIR / f"{name}.json"
    if not path.is_file():
        have = sorted(p.stem for p in (s.path / WEIGHTS_DIR).glob("*.json"))
        raise StoreError(
            f"{s.path}: no sampling weights named {name!r}"
            + (f" (have: {', '.join(have)})" if have else "")
            + f"; run `jetlib weights {s.path} " + (f"--method {name}`" if name in METHODS else f"--name {name}` (with your --bins, --method...)")
        )
    w = SamplingWeights.from_json(json.loads(path.read_text()))
    if not s.made_from_this_state(w.jets, w.config_hash):
        raise StoreError(
            f"{path}: computed for {w.jets:,} jets but the store now has {s.n_jets:,} "
            f"(or another configuration); re-run `{w.command(s.path)}`"
        )
    return w
