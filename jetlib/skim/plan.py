"""Resolve a skim config against an input schema into a plan: which branches to read,
how each block's node matrix is laid out, and which bank entries become features.

The plan is built once on the client and shipped to the workers (it pickles small)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from jetlib.config.inputs import NODE_ROLES, NODE_ROLES_REQUIRED, InputSchema
from jetlib.config.skim import LabelScheme, SkimConfig, load_presets
from jetlib.config.expr import Expression
from jetlib.errors import ConfigError, near_matches
from jetlib.kernels.nodes import DERIVED, bank_index

__all__ = ["BlockPlan", "SkimPlan", "make_plan", "JET_DERIVED", "EVENT_FEATURES"]

JET_DERIVED = ("pt", "eta", "phi", "mass", "energy", "log_pt")
#: the derived node features a config may name (the bank's kind<i> rows stand behind is_<Collection>)
NODE_DERIVED = tuple(d for d in DERIVED if not d.startswith("kind"))
EVENT_FEATURES = ("rho", "npv")
GEN_FIELDS = ("pt", "eta", "phi", "mass", "pdgId", "status", "statusFlags", "genPartIdxMother")
GENJET_FIELDS = ("pt", "eta", "phi", "mass")


@dataclass(frozen=True)
class BlockPlan:
    name: str
    collections: tuple[str, ...]
    raw_columns: tuple[str, ...]  # columns of the node matrix X: ROLES, then other fields
    branches: dict[str, tuple[str | None, ...]]  # collection -> branch per raw column (None: zeros)
    use_link: bool
    link_branches: tuple[str, str] | None  # (jetIdx, candIdx)
    radius: float
    length: int
    min_pt: float
    sort_idx: int
    feat_idx: tuple[int, ...]
    features: tuple[str, ...]
    wrap: bool


@dataclass(frozen=True)
class SkimPlan:
    schema: InputSchema
    config: SkimConfig
    labels: LabelScheme
    tree: str
    jet_branches: dict[str, str]  # jet field -> branch (pt, eta, phi, mass, jetId, expression names, raw features)
    jet_optional: dict[str, str]  # hadronFlavour, partonFlavour when the schema has them
    jet_features: tuple[str, ...]
    event_branches: dict[str, str]
    blocks: dict[str, BlockPlan]
    gen_branches: dict[str, str]
    genjet_branches: dict[str, str]
    genjetnu_branches: dict[str, str]
    preset: dict | None
    preset_branches: dict[str, dict[str, str]]  # collection -> field -> branch
    dropped: dict[str, list[str]] = field(default_factory=dict)  # what the schema cannot feed: left out
    #: what the schema cannot feed and the store holds something else in its place (the column
    #: stays, so that stores of every schema have the same layout): name -> what it holds
    stand_ins: dict[str, str] = field(default_factory=dict)
    #: node-field branches listed under ``optional:``: read where a file has them, zero where not
    node_optional: frozenset[str] = frozenset()
    #: schema entries nothing in this skim reads (``collections.X``, ``event.y``): a key the
    #: skim does not know is one of these, which the skim notes at its start
    unread: tuple[str, ...] = ()

    def branches(self) -> list[str]:
        """Every branch the skim reads (required ones; optional ones are checked per file)."""
        out: list[str] = []
        add = lambda b: b is not None and b not in out and out.append(b)  # noqa: E731
        for b in self.jet_branches.values():
            add(b)
        for b in self.event_branches.values():
            add(b)
        for bp in self.blocks.values():
            for brs in bp.branches.values():
                for b in brs:
                    if b not in self.node_optional:
                        add(b)
            if bp.link_branches:
                for b in bp.link_branches:
                    add(b)
        for d in (self.gen_branches, self.genjet_branches, self.genjetnu_branches):
            for b in d.values():
                add(b)
        for d in self.preset_branches.values():
            for b in d.values():
                add(b)
        return out

    def optional_branches(self) -> list[str]:
        return list(self.jet_optional.values()) + sorted(self.node_optional)


@functools.cache
def _known_keys() -> tuple[frozenset[str], frozenset[str]]:
    """The collection and event keys of the bundled input schemas (the fixed names the skim
    knows), parsed once: make_plan runs again for every schema hint."""
    from jetlib.config.inputs import load_input_schema

    bundled = [load_input_schema(name) for name in ("miniaod", "nanoaod")]
    return frozenset(c for b in bundled for c in b.collections), frozenset(k for b in bundled for k in b.event)


def _known_collections() -> frozenset[str]:
    return _known_keys()[0]


def _col(schema: InputSchema, name: str, where: str, needed_for: str = ""):
    if name not in schema.collections:
        # another fixed key the schema has (GenJet for a missing Jet) is no typo of this one
        near = [c for c in near_matches(name, schema.collections) if c not in _known_collections()]
        raise ConfigError(
            f"collection {name!r} is not in input schema {schema.name!r} ({', '.join(schema.collections)})"
            + (f"; did you mean {near[0]!r}? (the collection keys are fixed names: change its prefix:, not the key)" if near else "")
            + (f"; {needed_for}" if needed_for else ""),
            source=schema.source,
            key=where,
        )  # fmt: skip
    return schema.collections[name]


def make_plan(schema: InputSchema, config: SkimConfig, labels: LabelScheme) -> SkimPlan:
    """Check a skim config against an input schema and build the skim plan."""
    src = config.source
    dropped: dict[str, list[str]] = {}
    stand_ins: dict[str, str] = {}
    jc = _col(schema, config.jets.collection, "jets.collection", "the skim selects its jets from it")
    jet_branches: dict[str, str] = {}
    for f in ("pt", "eta", "phi", "mass") + (("jetId",) if config.jets.jet_id_mask else ()):
        if f not in jc.fields:
            near = near_matches(f, jc.all_fields)
            way_out = "; without a jet ID branch, set jets.jet_id_mask: 0 in a copy of the skim config (--config)" if f == "jetId" else ""
            raise ConfigError(f"jet collection {jc.name} has no required field {f!r}" + (f" (did you mean {near[0]!r}?)" if near else "")
                              + way_out, source=schema.source, key=f"collections.{jc.name}")  # fmt: skip
        jet_branches[f] = jc.fields[f]
    if config.jets.expression:
        expr = Expression(config.jets.expression, source=f"{src} [jets.expression]")
        for n in expr.names:
            if n in jc.optional:  # a file without the branch would have no value to select on
                raise ConfigError(f"jet field {n!r} in the expression is under optional: in input schema {schema.name!r}; "
                                  "an expression takes fields every file has (move it to fields: in a copy of the schema)",
                                  source=src, key="jets.expression")  # fmt: skip
            if n not in jc.fields:
                raise ConfigError(
                    f"unknown jet field {n!r} in expression; fields: {', '.join(jc.fields)}", source=src, key="jets.expression"
                )
            jet_branches[n] = jc.fields[n]
    jet_optional = {f: jc.optional[f] for f in ("hadronFlavour", "partonFlavour") if f in jc.optional}
    jet_optional.update({f: jc.fields[f] for f in ("hadronFlavour", "partonFlavour") if f in jc.fields})

    # -- blocks ------------------------------------------------------------------------
    blocks: dict[str, BlockPlan] = {}
    for b in config.blocks.values():
        cols = [c for c in b.collections if schema.has(c)]
        missing = [c for c in b.collections if not schema.has(c)]
        if not cols or (b.association == "link" and not schema.has(b.link or "")):
            dropped.setdefault("blocks", []).append(b.name)
            continue
        if missing:
            dropped.setdefault(f"blocks.{b.name}.collections", []).extend(missing)
        for c in cols:
            for r in NODE_ROLES_REQUIRED:
                if r not in schema.collections[c].all_fields:
                    near = near_matches(r, schema.collections[c].all_fields)
                    raise ConfigError(f"node collection {c} has no field {r!r}" + (f" (it has {near[0]!r}: a typo?)" if near else ""),
                                      source=schema.source, key=f"collections.{c}")  # fmt: skip
        kept = [c for c in b.collections if c in cols]
        feats = [f for f in b.features if not (f.startswith("is_") and f[3:] in missing)]
        if len(feats) != len(b.features):
            dropped.setdefault(f"blocks.{b.name}.features", []).extend(f for f in b.features if f not in feats)
        extra: list[str] = []
        for f in list(feats) + [b.sort_by]:
            if f in NODE_DERIVED or f in NODE_ROLES or (f.startswith("is_") and f[3:] in kept) or f in extra:
                continue
            if not any(f in schema.collections[c].all_fields for c in cols):
                known = sorted(set(NODE_DERIVED) | {f"is_{c}" for c in kept} | {x for c in cols for x in schema.collections[c].all_fields})
                near = near_matches(f, known)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                mapped = [c for c in cols if near and near[0] in schema.collections[c].all_fields]
                if mapped:  # most likely a field named differently in the user's input schema
                    hint = (f"; the input schema {schema.source} maps a field {near[0]!r} of {mapped[0]}: if that is this "
                            f"feature, name it {f!r} there (or use {near[0]!r} in the skim config)")  # fmt: skip
                raise ConfigError(
                    f"feature {f!r} is neither derived nor a field of {', '.join(cols)}{hint}", source=src, key=f"blocks.{b.name}.features"
                )
            extra.append(f)
        raw_columns = tuple(NODE_ROLES) + tuple(extra)
        branches = {c: tuple(schema.collections[c].all_fields.get(r) for r in raw_columns) for c in cols}
        link = None
        if b.association == "link":
            lc = schema.collections[b.link]
            if not {"jetIdx", "candIdx"} <= set(lc.all_fields):
                raise ConfigError(f"link collection {b.link} needs fields jetIdx and candIdx", source=schema.source, key=f"collections.{b.link}")
            link = (lc.all_fields["jetIdx"], lc.all_fields["candIdx"])
        fidx = tuple(bank_index(f, list(raw_columns), kept) for f in feats)
        sidx = bank_index(b.sort_by, list(raw_columns), kept)
        blocks[b.name] = BlockPlan(
            name=b.name, collections=tuple(cols), raw_columns=raw_columns, branches=branches,
            use_link=b.association == "link", link_branches=link, radius=b.radius, length=b.length,
            min_pt=b.min_pt, sort_idx=sidx, feat_idx=fidx, features=tuple(feats), wrap=b.padding == "wrap",
        )  # fmt: skip

    # -- jet-level features ------------------------------------------------------------
    jet_features: list[str] = []
    event_branches = {k: schema.event[k] for k in ("run", "lumi", "event") if k in schema.event}
    for f in config.jets.features:
        if f in JET_DERIVED:
            pass
        elif f.startswith("n_") and f[2:] in config.blocks:
            if f[2:] not in blocks:
                dropped.setdefault("jets.features", []).append(f)
                continue
        elif f in EVENT_FEATURES:
            if f not in schema.event:
                raise ConfigError(f"jet feature {f!r} needs event field {f!r} in the input schema", source=schema.source, key="event")
            event_branches[f] = schema.event[f]
        elif f in jc.all_fields:
            jet_branches[f] = jc.all_fields[f]
        elif f.startswith("n_") and not near_matches(f, jc.all_fields):  # a block's node count, not a field's typo
            raise ConfigError(f"jet feature {f!r} counts the nodes of block {f[2:]!r}, which this config does not have "
                              f"(blocks: {', '.join(config.blocks) or 'none'}): remove {f!r} from jets.features, or add "
                              "the block", source=src, key="jets.features")  # fmt: skip
        else:
            known = list(dict.fromkeys([*JET_DERIVED, *EVENT_FEATURES, *(f"n_{x}" for x in config.blocks), *jc.all_fields]))
            near = near_matches(f, known)
            if near and near[0] in jc.all_fields:  # most likely a typo in the schema, not in the config
                hint = (f"; it maps a field {near[0]!r} of {jc.name} (branch {jc.all_fields[near[0]]}): if that is this "
                        f"feature, name it {f!r} there ({f}: {jc.all_fields[near[0]]}); otherwise")
            else:
                hint = (f"; did you mean {near[0]!r}?" if near else f" (known: {', '.join(known)})") + ";"
            raise ConfigError(
                f"jet feature {f!r} is neither computed by jetlib nor a field of {jc.name} in input schema "
                f"{schema.source}{hint} add {f!r} to collections.{jc.name}.fields of the input schema, or remove it "
                "from jets.features of a copy of the skim config (--config)",
                source=src,
                key="jets.features",
            )  # fmt: skip
        jet_features.append(f)

    # -- GEN ---------------------------------------------------------------------------
    gp = _col(schema, "GenPart", "collections.GenPart", "the truth labels are made from the GEN particles (B/C hadrons, taus, leptons)")
    gen = {f: gp.all_fields[f] for f in GEN_FIELDS if f in gp.all_fields}
    if len(gen) != len(GEN_FIELDS):
        raise ConfigError(f"GenPart needs fields {', '.join(GEN_FIELDS)}", source=schema.source, key="collections.GenPart")
    gj = _col(schema, "GenJet", "collections.GenJet", "the truth targets (gen_pt, ...) come from the matched GEN jet")
    genjet = {f: gj.all_fields[f] for f in GENJET_FIELDS}
    genjetnu = {}
    if schema.has("GenJetWithNu"):
        genjetnu = {f: schema.collections["GenJetWithNu"].all_fields[f] for f in GENJET_FIELDS}
    elif "gen_pt_with_nu" in config.truth:
        stand_ins["truth gen_pt_with_nu"] = "a copy of gen_pt (the input schema has no GenJetWithNu)"

    # -- event selection preset ----------------------------------------------------------
    preset = None
    preset_branches: dict[str, dict[str, str]] = {}
    if config.event_selection:
        preset = load_presets()[config.event_selection]
        needs = {"muons": "Muon", "electrons": "Electron", "jets": config.jets.collection}
        for key, cname in needs.items():
            if key in preset or (key != "jets" and preset.get("opposite_sign_emu")):
                c = _col(schema, cname, f"event_selection {config.event_selection}")
                fields = ["pt", "eta", "phi", "mass"] + (["charge"] if key != "jets" else []) + (["iso"] if key != "jets" else [])
                preset_branches[cname] = {f: c.all_fields[f] for f in fields if f in c.all_fields}
    missing_ids = [k for k in ("run", "lumi", "event") if k not in schema.event]
    for k in missing_ids:
        stand_ins[f"observer {k}"] = "0 (not in the input schema's event fields)"
    _refuse_likely_typos(schema, config, jc.name, blocks, preset_branches, jet_features, missing_ids)
    node_optional = _optional_reads(schema, blocks, gen, genjet, genjetnu, preset_branches)
    return SkimPlan(
        schema=schema, config=config, labels=labels, tree=schema.tree, jet_branches=jet_branches,
        jet_optional=jet_optional, jet_features=tuple(jet_features), event_branches=event_branches,
        blocks=blocks, gen_branches=gen, genjet_branches=genjet, genjetnu_branches=genjetnu,
        preset=preset, preset_branches=preset_branches, dropped=dropped, stand_ins=stand_ins, node_optional=node_optional,
        unread=_unread(schema, config, blocks, preset_branches, event_branches, jet_branches),
    )  # fmt: skip


def _unread(schema: InputSchema, config: SkimConfig, blocks, preset_branches, event_branches, jet_branches) -> tuple[str, ...]:
    """Collections and event fields of ``schema`` that nothing reads and that the bundled
    schemas do not name either (``SecondaryVertex:`` for ``SV:``, ``nPU:``): most likely a key
    the skim does not know. A known key a config does not use (no SV block) is not listed."""
    known_e = _known_keys()[1]
    read = {config.jets.collection, "GenPart", "GenJet", "GenJetWithNu", *preset_branches, *_known_collections()}
    for bp in blocks.values():
        read.update(bp.collections)
    read.update(b.link for b in config.blocks.values() if b.link)
    used_event = set(event_branches.values()) | set(jet_branches.values())
    return tuple([f"collections.{c}" for c in schema.collections if c not in read]
                 + [f"event.{k}" for k, b in schema.event.items() if b not in used_event and k not in known_e])  # fmt: skip


def _optional_reads(schema: InputSchema, blocks, gen, genjet, genjetnu, preset_branches) -> frozenset[str]:
    """The ``optional:`` branches that node blocks read (zero where a file lacks them); an
    ``optional:`` field that the skim needs in every file is refused here, when the schema
    loads, rather than by a missing branch in every task."""
    # a branch that some collection lists under fields: stays required wherever else it appears
    required = {b for c in schema.collections.values() for b in c.fields.values()}
    optional = {b: f"{c.name}.{f}" for c in schema.collections.values() for f, b in c.optional.items() if b not in required}
    needs: dict[str, str] = {}
    # (jet features read from an optional jet field stay required reads, as before: a copy of
    # the skim config may ask for hadronFlavour, which the bundled schemas list as optional)
    for what, branches in (("the truth labels", gen.values()), ("the truth targets", [*genjet.values(), *genjetnu.values()]),
                           ("the event selection", [b for d in preset_branches.values() for b in d.values()])):  # fmt: skip
        for b in branches:
            needs.setdefault(b, what)
    node: set[str] = set()
    for bp in blocks.values():
        for b in bp.link_branches or ():
            needs.setdefault(b, f"the {bp.name} block's link table")
        for brs in bp.branches.values():
            for role, b in zip(bp.raw_columns, brs):
                if b is None:
                    continue
                if role in NODE_ROLES_REQUIRED:
                    needs.setdefault(b, f"the {bp.name} block's node kinematics")
                elif b in optional:
                    node.add(b)
    for b, what in needs.items():
        if b in optional:
            c, f = optional[b].split(".", 1)
            raise ConfigError(f"{optional[b]} is listed under optional:, but every file must have it (for {what}); "
                              "move it to fields:", source=schema.source, key=f"collections.{c}.optional")  # fmt: skip
    return frozenset(node - set(needs))


def _resembles(name: str, wanted: list[str]) -> list[str]:
    """Names of ``wanted`` that ``name`` looks like a misspelling or a longer form of."""
    longer = [w for w in wanted if len(w) >= 3 and w.lower() in name.lower() and w != name]
    return list(dict.fromkeys(near_matches(name, wanted) + longer))


def _refuse_likely_typos(schema: InputSchema, config: SkimConfig, jet_col: str, blocks: dict[str, BlockPlan],
                         preset_branches: dict[str, dict[str, str]], jet_features: list[str], missing_ids: list[str]) -> None:  # fmt: skip
    """An entry of the input schema that nothing reads, named like something the skim wants and
    the schema lacks, is a typo that would silently drop a block or read a feature as zeros
    (``PFCands:`` for ``PFCand:``, ``isolation`` for ``iso``): a ConfigError that names both."""
    wanted: dict[str, set[str]] = {jet_col: {"pt", "eta", "phi", "mass", "jetId", "hadronFlavour", "partonFlavour",
                                             *jet_features, *(Expression(config.jets.expression).names if config.jets.expression else ())}}  # fmt: skip
    for b in config.blocks.values():
        for c in b.collections:
            wanted.setdefault(c, set()).update(blocks[b.name].raw_columns if b.name in blocks else NODE_ROLES)
        if b.link:
            wanted.setdefault(b.link, set()).update(("jetIdx", "candIdx"))
    wanted.setdefault("GenPart", set()).update(GEN_FIELDS)
    for c in ("GenJet", "GenJetWithNu"):
        wanted.setdefault(c, set()).update(GENJET_FIELDS)
    for c, brs in preset_branches.items():
        wanted.setdefault(c, set()).update(brs)
    lacking = [c for c in wanted if c not in schema.collections]
    for name in schema.collections:
        if name not in wanted and (like := _resembles(name, lacking)):
            if name in _known_collections() and like[0] not in _known_collections():  # the skim config's typo
                where = next((f"blocks.{b.name}.{k}" for b in config.blocks.values() for k in ("collections", "link")
                              if like[0] in (b.collections if k == "collections" else (b.link,))), "jets.collection")  # fmt: skip
                raise ConfigError(f"collection {like[0]!r} is not in input schema {schema.name!r}; did you mean {name!r}?",
                                  source=config.source, key=where)  # fmt: skip
            raise ConfigError(f"collection {name!r} is read by nothing, and the skim wants a collection {like[0]!r} that the "
                              f"schema lacks (without it, what needs it is left out): rename {name!r} to {like[0]!r}",
                              source=schema.source, key=f"collections.{name}")  # fmt: skip
    for name, col in schema.collections.items():
        want = wanted.get(name, set())
        lacks = sorted(w for w in want if w not in col.all_fields)
        for f in col.all_fields:
            if f not in want and (like := _resembles(f, lacks)):
                raise ConfigError(f"field {f!r} of {name} is read by nothing, and the skim wants a field {like[0]!r} of {name} "
                                  f"that the schema lacks (read as 0 or left out): rename {f!r} to {like[0]!r}, or remove "
                                  f"{f!r} if {name} has no such branch", source=schema.source, key=f"collections.{name}")  # fmt: skip
    used_event = {"run", "lumi", "event", "rho", "npv"}
    for k in schema.event:
        if k not in used_event and (like := _resembles(k, missing_ids)):
            raise ConfigError(f"event field {k!r} is read by nothing, and the skim wants an event field {like[0]!r} that the "
                              f"schema lacks (written as 0): rename {k!r} to {like[0]!r}", source=schema.source, key=f"event.{k}")  # fmt: skip
