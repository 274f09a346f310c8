"""Skim configuration (``schemas/skim/*.yaml``) and label schemes (``schemas/labels/*.yaml``),
validated on load with errors that name the file and the key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from jetlib.config._files import Checker, load_yaml, resolve
from jetlib.errors import ConfigError

__all__ = [
    "BlockConfig",
    "JetConfig",
    "LabelScheme",
    "SkimConfig",
    "load_label_scheme",
    "load_presets",
    "load_skim_config",
]


@dataclass(frozen=True)
class BlockConfig:
    name: str
    collections: tuple[str, ...]
    association: str  # "link" | "dr"
    link: str | None
    radius: float
    length: int
    min_pt: float
    sort_by: str
    padding: str  # "zero" | "wrap"
    features: tuple[str, ...]


@dataclass(frozen=True)
class JetConfig:
    collection: str
    min_pt: float
    max_abs_eta: float
    jet_id_mask: int
    expression: str | None
    features: tuple[str, ...]


@dataclass(frozen=True)
class SkimConfig:
    jets: JetConfig
    blocks: dict[str, BlockConfig]
    labels: str
    truth: tuple[str, ...]
    event_selection: str | None
    nan_policy: str
    source: str
    raw: dict

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True).encode()).hexdigest()[:16]


def load_skim_config(name_or_path: str | Path = "default") -> SkimConfig:
    """Load and validate a skim config: a bundled name (``default``) or a path to a YAML file."""
    from jetlib.kernels.truth import TRUTH_TARGETS

    path = resolve("skim", name_or_path)
    src = str(path)
    raw = load_yaml(path)
    c = Checker(raw, src)
    j = c.sub("jets")
    jets = JetConfig(
        collection=j.get("collection", str, "Jet"),
        min_pt=j.get("min_pt", float, 15.0, low=0),
        max_abs_eta=j.get("max_abs_eta", float, 2.5, above=0),
        jet_id_mask=j.get("jet_id_mask", int, 0, low=0),
        expression=j.get("expression", str, None),
        features=tuple(_names(j.get("features", list), src, "jets.features")),
    )
    j.done()
    blocks: dict[str, BlockConfig] = {}
    bs = c.sub("blocks")
    for name in list(bs.data):
        b = bs.sub(name)
        if not str(name).isidentifier() or name == "jet":
            raise ConfigError("block names must be identifiers other than 'jet'", source=src, key=f"blocks.{name}")
        assoc = b.get("association", str, choices={"link", "dr"})
        block = BlockConfig(
            name=name,
            collections=tuple(_names(b.get("collections", list), src, f"blocks.{name}.collections")),
            association=assoc,
            link=b.get("link", str, None if assoc == "dr" else ...),
            radius=b.get("radius", float, 0.4, above=0),
            length=b.get("length", int, low=1),
            min_pt=b.get("min_pt", float, 0.0, low=0),
            sort_by=b.get("sort_by", str, "pt"),
            padding=b.get("padding", str, "zero", choices={"zero", "wrap"}),
            features=tuple(_names(b.get("features", list), src, f"blocks.{name}.features")),
        )
        if not 0 < len(block.collections) <= 4:
            raise ConfigError("a block takes 1 to 4 collections", source=src, key=f"blocks.{name}.collections")
        b.done()
        blocks[name] = block
    truth = tuple(_names(c.get("truth", list, list(TRUTH_TARGETS)), src, "truth"))
    for t in truth:
        if t not in TRUTH_TARGETS:
            raise ConfigError(f"unknown truth target {t!r}; known: {', '.join(TRUTH_TARGETS)}", source=src, key="truth")
    cfg = SkimConfig(
        jets=jets,
        blocks=blocks,
        labels=_label_scheme_of(path, c.get("labels", str, "default"), src),
        truth=truth,
        event_selection=c.get("event_selection", str, None),
        nan_policy=c.get("nan_policy", str, "zero", choices={"zero", "error"}),
        source=src,
        raw=raw,
    )
    c.done()
    if cfg.event_selection is not None and cfg.event_selection not in load_presets():
        raise ConfigError(
            f"unknown preset {cfg.event_selection!r}; known: {', '.join(load_presets())}", source=src, key="event_selection"
        )
    return cfg


def _label_scheme_of(config: Path, labels: str, src: str) -> str:
    """The label scheme a config names: a bundled name, or a path, found beside the config
    (as a file list's entries are beside the list) or from the current directory; two
    different files under that name, or none, are an error naming the config's key."""
    from jetlib.source.filelist import found_beside

    p = Path(labels)
    if p.suffix in (".yaml", ".yml") and not p.is_absolute():
        try:
            here = found_beside(p, config.parent, "beside the config")
        except ValueError as err:
            raise ConfigError(str(err), source=src, key="labels") from None
        if here is not None:
            return str(here.resolve())
        if not p.is_file():
            raise ConfigError(f"no such label scheme file: {labels} (looked beside the config and in the current directory)",
                              source=src, key="labels")  # fmt: skip
    try:
        resolve("labels", labels)
    except ConfigError as err:
        raise ConfigError(str(err), source=src, key="labels") from None
    return labels


def _names(v: list, src: str, key: str) -> list[str]:
    if not all(isinstance(x, str) for x in v):
        raise ConfigError("expected a list of names", source=src, key=key)
    if len(set(v)) != len(v):
        dup = next(x for x in v if v.count(x) > 1)
        raise ConfigError(f"{dup!r} is listed twice", source=src, key=key)
    return list(v)


def load_presets() -> dict[str, dict]:
    """Event-selection presets (``schemas/skim/presets.yaml``)."""
    return load_yaml(resolve("skim", "presets", support=True))


@dataclass(frozen=True)
class LabelScheme:
    name: str
    match_radius: float
    prompt_lepton_min_pt: float
    tau_min_visible_pt: float
    classes: tuple[str, ...]
    fine_to_class: tuple[int, ...]  # for each entry of jetlib.kernels.truth.FINE
    source: str
    raw: dict


def load_label_scheme(name_or_path: str | Path = "default") -> LabelScheme:
    """Load a label scheme and check that it maps every fine GEN category exactly once."""
    from jetlib.kernels.truth import FINE

    path = resolve("labels", name_or_path)
    src = str(path)
    raw = load_yaml(path)
    c = Checker(raw, src)
    name = c.get("name", str)
    radius = c.get("match_radius", float, 0.4, above=0)
    lep = c.get("prompt_lepton_min_pt", float, 5.0, low=0)
    tau = c.get("tau_min_visible_pt", float, 5.0, low=0)
    classes: list[str] = []
    fine_to_class = [-1] * len(FINE)
    for i, entry in enumerate(c.get("classes", list)):
        e = Checker(entry, src, f"classes[{i}]")
        cname = e.get("name", str)
        if cname in classes:
            raise ConfigError(f"class {cname!r} is defined twice", source=src, key=f"classes[{i}]")
        for f in _names(e.get("from", list), src, f"classes[{i}].from"):
            if f not in FINE:
                raise ConfigError(f"unknown category {f!r}; categories are {', '.join(FINE)}", source=src, key=f"classes[{i}].from")
            if fine_to_class[FINE.index(f)] >= 0:
                raise ConfigError(f"category {f!r} is mapped twice", source=src, key=f"classes[{i}].from")
            fine_to_class[FINE.index(f)] = len(classes)
        e.done()
        classes.append(cname)
    c.done()
    unmapped = [FINE[i] for i, k in enumerate(fine_to_class) if k < 0]
    if unmapped:
        raise ConfigError(f"categories not mapped to any class: {', '.join(unmapped)}", source=src, key="classes")
    return LabelScheme(name, radius, lep, tau, tuple(classes), tuple(fine_to_class), src, raw)
