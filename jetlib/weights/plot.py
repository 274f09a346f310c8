"""PNG plots of sampling weights: per-class pT/η before and after sampling, weight maps."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from jetlib.weights.hist import is_log

if TYPE_CHECKING:
    from jetlib.weights import SamplingWeights

__all__ = ["plot_weights"]


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import mplhep
    except ImportError as err:
        raise ImportError(f"plots need matplotlib and mplhep ({err}); install them with pip install 'jetlib[plot]'") from err
    plt.style.use(mplhep.style.CMS)
    return plt, mplhep


def _log_axis(variable: str, edges: np.ndarray, axis) -> bool:
    """A log axis for jet pT (also with explicit edges, 15|30|60|...) and for any log-spaced
    binning (``--bins lo:hi:logN``: the weights' histogram ``axis`` is over log(x))."""
    return bool(is_log(axis) or (variable == "jet_pt" and edges[0] > 0))


def plot_weights(w: SamplingWeights, folder: str | Path) -> list[Path]:
    """Write ``<name>_<variable>.png`` (each class's distribution before/after sampling,
    normalised) and, for two variables, ``<name>_maps.png`` (each class's acceptance per bin).
    A variable with log-spaced bins gets a log axis."""
    plt, mplhep = _pyplot()
    folder = Path(folder)
    out = []
    live = [i for i, c in enumerate(w.classes) if w.counts[i].sum() > 0]
    after = w.acceptance() * w.counts
    colors = plt.cm.tab20(np.linspace(0, 1, max(len(live), 2)))
    for v, (var, edges) in enumerate(zip(w.variables, w.edges)):
        others = tuple(a for a in range(w.counts.ndim - 1) if a != v)  # axes of one class's table
        fig, (a0, a1) = plt.subplots(1, 2, figsize=(20, 8))
        for k, i in enumerate(live):
            before, aft = w.counts[i].sum(axis=others), after[i].sum(axis=others)
            for ax, h in ((a0, before), (a1, aft)):
                if h.sum() > 0:
                    mplhep.histplot(h / h.sum(), edges, ax=ax, label=w.classes[i], color=colors[k])
        for ax, title in ((a0, "before sampling"), (a1, f"after sampling ({w.method})")):
            ax.set_xlabel(var)
            ax.set_ylabel("fraction of jets")
            ax.set_title(title, fontsize=18)
            if _log_axis(var, edges, w.axes[v]):
                ax.set_xscale("log")
        a1.legend(fontsize=11, ncol=2)
        path = folder / f"{w.name}_{var}.png"
        fig.savefig(path, dpi=80, bbox_inches="tight")
        plt.close(fig)
        out.append(path)
    if len(w.variables) == 2:
        acc = w.acceptance()
        ncol = min(4, len(live))
        nrow = -(-len(live) // ncol)
        # one colour bar for all maps (they share 0..1): a bar per map overlapped the next map's axis label
        fig, axes = plt.subplots(nrow, ncol, figsize=(6 * ncol, 5 * nrow), squeeze=False, layout="constrained")
        art = None
        for ax, i in zip(axes.flat, live):
            art = mplhep.hist2dplot(acc[i], w.edges[0], w.edges[1], ax=ax, cbar=False, cmin=0, cmax=1)
            ax.set_title(w.classes[i], fontsize=16)
            ax.set_xlabel(w.variables[0], fontsize=14)
            ax.set_ylabel(w.variables[1], fontsize=14)
            for var, edges, hax, axis, scale in zip(w.variables, w.edges, w.axes, (ax.xaxis, ax.yaxis), (ax.set_xscale, ax.set_yscale)):
                if _log_axis(var, edges, hax):
                    scale("log")
                    axis.set_minor_formatter(plt.NullFormatter())
            ax.tick_params(labelsize=11)
        for ax in list(axes.flat)[len(live):]:
            ax.set_visible(False)
        if art is not None:
            bar = fig.colorbar(art.pcolormesh, ax=axes, shrink=min(1.0, 0.4 + 0.15 * nrow), aspect=30)
            bar.set_label("acceptance (1: every jet kept)", fontsize=16)
        fig.suptitle(f"acceptance per class and bin ({w.method})", fontsize=20)
        path = folder / f"{w.name}_maps.png"
        fig.savefig(path, dpi=60, bbox_inches="tight")
        plt.close(fig)
        out.append(path)
    return out
