"""A summary of a store, for ``jetlib inspect``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from jetlib.store.layout import NO_FLAVOUR
from jetlib.store.lock import writer
from jetlib.store.manifest import nonfinite_totals
from jetlib.store.store import Store
from jetlib.store.verify import derived_files

__all__ = ["describe", "schema_gaps"]


def schema_gaps(dropped: dict, stand_ins: dict) -> list[tuple[str, str]]:
    """What an input schema does not feed, one (how, what) pair per line that the skim and
    ``jetlib inspect`` print: ("left out of the store", "pf: ..."), ("stored in their place",
    "truth gen_pt_with_nu: a copy of gen_pt ...") (``SkimPlan.dropped`` and ``stand_ins``, or
    the same read back from jetlib.json)."""
    lines = []
    if dropped:
        lines.append(("left out of the store", "; ".join(
            f"{k}: {', '.join(map(str, v)) if isinstance(v, (list, tuple)) else v}" for k, v in dropped.items())))
    if stand_ins:
        lines.append(("stored in their place", "; ".join(f"{k}: {v}" for k, v in stand_ins.items())))
    return lines


#: the input's Jet_hadronFlavour values that ``jetlib inspect`` sets beside each class: B, C, other
HADRON_FLAVOURS = (5, 4, 0)


def describe(path: str | Path) -> dict:
    """Blocks, array shapes, jets per class (from the ``label`` column only), sizes, status.

    ``hadron_flavour``: where the store keeps the input's ``Jet_hadronFlavour`` (in CMS files
    the ghost association of B and C hadrons; never used for the label), each class's jets
    counted by that flavour (5, 4, anything else: :data:`HADRON_FLAVOURS`), else None. b jets
    without flavour 5 show a GEN mapping gone wrong at a glance. Jets whose input file had no
    such branch (:data:`NO_FLAVOUR`) are counted apart, in ``no_hadron_flavour``."""
    s = Store(path)
    shards = s.shards()
    counts = np.zeros(len(s.classes), np.int64)
    with_hf = "hadron_flavour" in s.layout.arrays
    by_hf = np.zeros((len(s.classes), len(HADRON_FLAVOURS)), np.int64)
    no_hf = 0
    for _, a in s.iter_read(["label", "hadron_flavour"] if with_hf else ["label"]):
        counts += np.bincount(a["label"], minlength=len(s.classes))
        if with_hf:
            has = a["hadron_flavour"] != NO_FLAVOUR
            no_hf += int(has.size - has.sum())
            hf = np.abs(a["hadron_flavour"][has])
            column = np.where(hf == 5, 0, np.where(hf == 4, 1, 2))  # the order of HADRON_FLAVOURS
            by_hf += np.bincount(a["label"][has] * len(HADRON_FLAVOURS) + column, minlength=by_hf.size).reshape(by_hf.shape)
    status = Counter(r["status"] for r in s.latest().values())
    arrays = {}
    for name, spec in s.layout.arrays.items():
        if name.endswith("_features") and name != "jet_features":
            content = ", ".join(s.blocks[name[: -len("_features")]]["features"])
        elif name == "jet_features":
            content = ", ".join(s.jet_features)
        elif name == "label_onehot":
            content = ", ".join(s.classes)
        elif name == "truth":
            content = ", ".join(s.truth)
        elif spec.inner == () and name != "label":
            content = "observer (jetlib weights --bins can bin it)"
        else:
            content = ""
        arrays[name] = (str(("N", *spec.inner)).replace("'", ""), spec.dtype, content)
    return {
        "path": s.path,
        "jets": int(counts.sum()),
        "shards": len(shards),
        "bytes": sum(x.bytes for x in shards),
        "format": s.format,
        "compression": s.meta["shards"]["compression"],
        "status": dict(status) | ({"unfinished (interrupted skim: re-run it)": n} if (n := len(s.unfinished_tasks())) else {}),
        "schema": s.meta["input_schema"]["name"],
        "config_hash": s.meta["config_hash"],
        "arrays": arrays,
        "label_scheme": s.meta["labels"]["scheme"],
        "classes": dict(zip(s.classes, counts.tolist())),
        "hadron_flavour": dict(zip(s.classes, map(tuple, by_hf.tolist()))) if with_hf else None,
        "no_hadron_flavour": no_hf,
        "dropped": s.meta.get("dropped", {}),
        "stand_ins": s.meta.get("stand_ins", {}),
        "selection": _selection(s.meta),
        "derived": derived_files(s),
        "failures": [r for r in s.latest().values() if r["status"] == "failed"],
        "nonfinite": nonfinite_totals(s.latest().values()),  # (totals, files) of nan_policy zero
        "writer": writer(s.path),  # a skim writing the store now, or None
    }


def _selection(meta: dict) -> str:
    """The skim's cuts and padding as one line: 'jets: pT > 15 GeV, |eta| < 2.5, jetId & 2;
    events: all; padding: zero (pf, sv, ...)'."""
    # the cuts as applied (stores before jet_selection was recorded: as the config wrote them)
    j = meta.get("jet_selection") or meta.get("skim_config", {}).get("jets", {})
    jets = ([f"pT > {j['min_pt']} GeV"] if j.get("min_pt") is not None else []) + (
        [f"|eta| < {j['max_abs_eta']}"] if j.get("max_abs_eta") is not None else [])
    if j.get("jet_id_mask"):
        jets.append(f"jetId & {j['jet_id_mask']}")
    if j.get("expression"):
        jets.append(repr(j["expression"]))
    ev = meta.get("event_selection") or {}
    pads: dict[str, list[str]] = {}
    for name, b in meta.get("blocks", {}).items():
        pads.setdefault(b.get("padding", "zero"), []).append(name)
    padding = "; ".join(f"{k} ({', '.join(v)})" for k, v in pads.items())
    return (f"jets: {', '.join(jets) or 'all'}; events: {('preset ' + ev['preset']) if ev.get('preset') else 'all'}; "
            f"padding: {padding or 'none'}")
