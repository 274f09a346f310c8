"""Per-class histograms of jet observables (pT, η), filled shard by shard.

Only the binned observer columns and ``label`` are read. Each shard is filled into its own
boost-histogram (a category axis for the class plus one variable axis per observable, with
under/overflow bins), the shard histograms are summed. Shards are spread over threads with
Dask (reading and filling release the GIL), or over a distributed cluster when a scheduler
address is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import boost_histogram as bh
import numpy as np

from jetlib.store.shards import read_shard
from jetlib.store.store import Store

__all__ = ["ClassHistograms", "fill_histograms", "FLOW_POLICIES"]

#: what happens to jets outside the edges: ``clip`` counts them in the first/last bin
#: (weaver's ``reweight_discard_under_overflow: false``), ``drop`` gives them weight 0
FLOW_POLICIES = ("clip", "drop")


@dataclass
class ClassHistograms:
    """Jet counts per class and bin: ``counts[c, i, j, ...]`` with flow bins removed.

    ``flow[c]`` counts the jets of class ``c`` that fell outside the edges (before
    clipping when the policy is ``clip``).
    """

    variables: list[str]
    edges: list[np.ndarray]
    classes: list[str]
    counts: np.ndarray  # (C, n1, n2, ...) float64
    flow: np.ndarray  # (C,) int64
    flow_policy: str

    @property
    def totals(self) -> np.ndarray:
        return self.counts.reshape(len(self.classes), -1).sum(axis=1)


def _empty(n_classes: int, edges: list[np.ndarray]) -> bh.Histogram:
    axes = [bh.axis.Integer(0, n_classes, underflow=False, overflow=False)]
    axes += [bh.axis.Variable(e, underflow=True, overflow=True) for e in edges]
    return bh.Histogram(*axes, storage=bh.storage.Double())


def clip_into(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Move values outside ``edges`` into the first/last bin (the upper edge itself is
    outside a boost-histogram axis, so clip just below it)."""
    top = np.nextafter(edges[-1], -np.inf)
    return np.clip(values, edges[0], top)


def _fill_one(path: Path, layout, variables: list[str], edges: list[np.ndarray], n_classes: int, policy: str):
    cols = read_shard(path, layout, [*variables, "label"])
    h = _empty(n_classes, edges)
    label = cols["label"]
    flow = np.zeros(n_classes, np.int64)
    values = []
    outside = np.zeros(len(label), bool)
    for v, e in zip(variables, edges):
        x = cols[v].astype(np.float64)
        outside |= ~((x >= e[0]) & (x < e[-1]))
        values.append(clip_into(x, e) if policy == "clip" else x)
    np.add.at(flow, label[outside], 1)
    h.fill(label, *values)
    return h, flow


def fill_histograms(
    store: str | Path | Store,
    variables: list[str],
    edges: list[np.ndarray],
    *,
    flow: str = "clip",
    scheduler: str | None = None,
) -> ClassHistograms:
    """Fill per-class histograms of ``variables`` over every done shard of ``store``.

    Args:
        store: a store folder or an open :class:`Store`.
        variables: observer names (``jet_pt``, ``jet_eta``).
        edges: bin edges per variable.
        flow: ``clip`` or ``drop`` (see :data:`FLOW_POLICIES`).
        scheduler: ``None`` for local threads, ``"sync"`` for one thread, or a Dask
            scheduler address (``tcp://host:8786``) for a cluster.

    Returns:
        :class:`ClassHistograms` with the flow bins removed.
    """
    import dask

    if flow not in FLOW_POLICIES:
        raise ValueError(f"flow={flow!r}; use one of {FLOW_POLICIES}")
    s = store if isinstance(store, Store) else Store(store)
    n_classes = len(s.classes)
    shards = [x for x in s.shards() if x.jets]
    tasks = [dask.delayed(_fill_one)(x.path, s.layout, variables, edges, n_classes, flow) for x in shards]
    if scheduler and scheduler not in ("sync", "threads"):
        from distributed import Client

        with Client(scheduler) as client:
            results = client.gather(client.compute(tasks))
    else:
        results = dask.compute(*tasks, scheduler="sync" if scheduler == "sync" else "threads")
    total = _empty(n_classes, edges)
    flows = np.zeros(n_classes, np.int64)
    for h, f in results:
        total += h
        flows += f
    inner = tuple([slice(None)] + [slice(1, -1)] * len(edges))  # drop the flow bins
    counts = total.view(flow=True)[inner].copy()
    return ClassHistograms(list(variables), [np.asarray(e) for e in edges], list(s.classes), counts, flows, flow)
