"""Hand a store's layout, standardisation and weights to other tools.

- :func:`weaver_config`: a weaver-core data config (YAML) that reads the store's Parquet
  shards: every block as an input with its length, padding and the stored standardisation,
  the one-hot label columns, the observers, and the sampling weights as ``reweight_hists``.
- :func:`cmssw_preprocess`: the ``preprocess.json`` that CMSSW's ONNX jet-tagger producers
  read (input names, lengths, per-variable median / norm_factor / bounds / pad).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jetlib.errors import StoreError
from jetlib.stats import Stats, load_stats
from jetlib.store.store import Store
from jetlib.weights import SamplingWeights, load_weights

__all__ = ["weaver_config", "cmssw_preprocess", "wrapped_blocks", "dump_yaml"]


def _inputs(s: Store, stats: Stats | None, blocks: list[str] | None) -> dict[str, dict[str, Any]]:
    """name -> {length, pad_mode, vars: [[column, center, scale, min, max, pad]]}."""
    names = list(s.blocks) if blocks is None else blocks
    unknown = [b for b in names if b not in s.blocks and b != "jet"]
    if unknown:
        raise StoreError(f"{s.path}: no block {unknown[0]!r}; blocks are {', '.join(s.blocks)} and jet")
    out: dict[str, dict[str, Any]] = {}
    for b in names:
        if b == "jet":
            continue
        info = s.blocks[b]
        fs = stats.arrays.get(f"{b}_features") if stats else None
        rows = []
        for i, f in enumerate(info["features"]):
            col = f"{b}_{f}"
            if fs is None:
                rows.append([col, None])
            else:
                rows.append([col, float(fs.center[i]), float(fs.scale[i]), float(fs.lo[i]), float(fs.hi[i]), 0])
        pad = "wrap" if info.get("padding") == "wrap" else "constant"
        out[f"{b}_features"] = {"length": int(info["length"]), "pad_mode": pad, "vars": rows}
        out[f"{b}_mask"] = {"length": int(info["length"]), "pad_mode": "constant", "vars": [[f"{b}_mask", None]]}
    if blocks is None or "jet" in blocks:
        fs = stats.arrays.get("jet_features") if stats else None
        rows = []
        for i, f in enumerate(s.jet_features):
            col = f"jet_{f}"
            rows.append([col, None] if fs is None else
                        [col, float(fs.center[i]), float(fs.scale[i]), float(fs.lo[i]), float(fs.hi[i]), 0])  # fmt: skip
        out["jet_features"] = {"length": None, "vars": rows}
    return out


#: suffix of the weaver variables that hold only the real nodes of a block's feature column
UNPADDED = "_unpadded"


def _unpad(inputs: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Point the node features of ``inputs`` at jagged copies of their columns (real nodes
    only, the mask's slots), and return those as weaver ``new_variables``.

    weaver standardises every value of a column and then pads it to the input's length: on
    the store's fixed-length columns the padding was standardised too, ``(0 - median) *
    scale`` instead of 0. Jagged, weaver pads after standardising, with 0, as the Reader does
    (and in the same slots: the kernels put the real nodes first). It costs weaver's loader
    ~30% (56k jets: 19.6 s against 14.6 s).
    """
    new: dict[str, str] = {}
    for name, spec in inputs.items():
        if not name.endswith("_features") or spec["length"] is None:
            continue
        block = name[: -len("_features")]
        for row in spec["vars"]:
            new[row[0] + UNPADDED] = f"{row[0]}[{block}_mask > 0]"
            row[0] += UNPADDED
    return new


def weaver_config(
    store: str | Path | Store,
    *,
    weights: str | None = "flat",
    standardize: bool = True,
    blocks: list[str] | None = None,
    unpad: bool = True,
) -> dict[str, Any]:
    """A weaver-core data config for the store's Parquet shards.

    Args:
        store: store folder or :class:`Store`.
        weights: name of stored sampling weights to export as ``reweight_hists``
            (``None``: no weights section). They must be 2D (weaver bins two variables).
        standardize: put the stored standardisation in the inputs (else weaver's
            ``center: null``, no standardisation).
        blocks: blocks to export (default all, plus ``jet``).
        unpad: read node features as jagged ``<column>_unpadded`` variables, so that weaver's
            padding is 0 after standardisation, as in the Reader (see :func:`_unpad`); False
            reads the fixed-length columns (faster; the padding is then standardised too,
            and only the ``*_mask`` inputs tell a model which slots are real).

    Returns:
        The config as a dict; :func:`dump_yaml` writes it.
    """
    s = store if isinstance(store, Store) else Store(store)
    if s.format != "parquet":
        raise StoreError(f"{s.path}: weaver's loader reads this layout from Parquet (its HDF5 reader expects "
                         f"another layout); this store has {s.format} shards. Skim with `--format parquet` to train "
                         "with weaver, or train with jetlib.Reader")  # fmt: skip
    stats = load_stats(s) if standardize else None
    inputs = _inputs(s, stats, blocks)
    new = _unpad(inputs) if unpad else {}
    observers = []
    for n, spec in s.layout.arrays.items():
        if spec.inner != () or n == "label":
            continue
        if spec.dtype == "uint64":  # torch's DataLoader cannot collate uint64 (weaver --predict failed)
            new[f"{n}_int64"] = f"ak.values_astype({n}, 'int64')"
            n = f"{n}_int64"
        observers.append(n)
    cfg: dict[str, Any] = {
        "treename": None,
        "selection": None,
        "new_variables": new or None,
        "preprocess": {"method": "manual", "data_fraction": 1.0, "params": None},
        "inputs": inputs,
        "labels": {"type": "simple", "value": [f"label_{c}" for c in s.classes]},
        "observers": observers + list(s.truth),
    }
    if weights:
        try:
            w: SamplingWeights = load_weights(s, weights)
        except StoreError as err:
            raise StoreError(f"{err}; or export without sampling weights: --weights none") from None
        if len(w.variables) != 2:
            raise StoreError(f"weights {weights!r} are binned in {len(w.variables)} variable(s) ({', '.join(w.variables)}); "
                             f"weaver's reweighting needs exactly 2 (re-run `jetlib weights {s.path} --bins pt,eta`)")  # fmt: skip
        live = [i for i, c in enumerate(w.classes) if w.counts[i].sum() > 0]
        if w.method == "ref" and w.reference in w.classes:  # weaver's ref method takes the first class as reference
            r = w.classes.index(w.reference)
            live = [r] + [i for i in live if i != r]
        cfg["weights"] = {
            "use_precomputed_weights": False,
            "reweight_method": w.method,
            "reweight_vars": {v: [float(x) for x in e] for v, e in zip(w.variables, w.edges)},
            "reweight_classes": [f"label_{w.classes[i]}" for i in live],
            "class_weights": [float(w.class_weights[w.classes[i]]) for i in live],
            "reweight_threshold": float(w.threshold),
            "reweight_discard_under_overflow": w.flow == "drop",
            "reweight_hists": {f"label_{w.classes[i]}": w.tables[i].astype(float).tolist() for i in live},
        }
    return cfg


def wrapped_blocks(store: str | Path | Store, blocks: list[str] | None = None) -> list[str]:
    """The node blocks (of ``blocks``, default all) skimmed with ``padding: wrap``: CMSSW's
    preprocessing pads with a constant (``pad``), so a tagger trained on their copies sees
    other inputs there."""
    s = store if isinstance(store, Store) else Store(store)
    return [b for b, info in s.blocks.items() if (blocks is None or b in blocks) and info.get("padding") == "wrap"]


def cmssw_preprocess(store: str | Path | Store, *, blocks: list[str] | None = None) -> dict[str, Any]:
    """CMSSW's ``preprocess.json`` for an ONNX tagger trained on this store (padding with
    ``pad``: 0, which differs from training for :func:`wrapped_blocks`)."""
    s = store if isinstance(store, Store) else Store(store)
    stats = load_stats(s)
    inputs = _inputs(s, stats, blocks)
    out: dict[str, Any] = {"output_names": [f"label_{c}" for c in s.classes], "input_names": list(inputs)}
    for name, spec in inputs.items():
        infos = {}
        for row in spec["vars"]:
            standardised = len(row) > 2
            infos[row[0]] = {
                "median": row[1] if standardised else 0,
                "norm_factor": row[2] if standardised else 1,
                "replace_inf_value": 0,
                "lower_bound": row[3] if standardised else -1e32,
                "upper_bound": row[4] if standardised else 1e32,
                "pad": 0,
            }
        out[name] = {"var_names": [r[0] for r in spec["vars"]], "var_infos": infos,
                     "var_length": spec["length"] if spec["length"] is not None else 1}  # fmt: skip
    return out


def dump_yaml(cfg: dict[str, Any]) -> str:
    """YAML text with one variable per line (readable diffs)."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _seq(dumper, data):
        flow = all(not isinstance(x, (list, dict)) for x in data)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)

    _Dumper.add_representer(list, _seq)
    return "# weaver-core data config written by `jetlib export weaver`\n" + yaml.dump(
        cfg, Dumper=_Dumper, sort_keys=False, width=200
    )
