"""Turn one chunk of events into the arrays of a shard: jet selection, node blocks, jet
features, truth labels and truth kinematics. No per-event Python: NumPy on flat arrays for
selections and jet features, Numba kernels (jetlib.kernels) for blocks and labels."""

from __future__ import annotations

import numpy as np

from jetlib.config.expr import Expression
from jetlib.errors import SchemaMismatchError
from jetlib.kernels.events import indices_past_end, select_events
from jetlib.kernels.nodes import fill_block
from jetlib.kernels.truth import TRUTH_TARGETS, label_jets
from jetlib.skim.plan import SkimPlan
from jetlib.source.read import Chunk
from jetlib.store.layout import NO_FLAVOUR, ShardLayout

__all__ = ["shard_layout", "process_chunk", "OBSERVERS"]

OBSERVERS = {
    "jet_pt": "float32", "jet_eta": "float32", "jet_phi": "float32", "jet_mass": "float32",
    "run": "uint32", "lumi": "uint32", "event": "uint64", "jet_index": "int32",
}  # fmt: skip


def observers(plan: SkimPlan) -> dict[str, str]:
    obs = dict(OBSERVERS)
    if "hadronFlavour" in plan.jet_optional:
        obs["hadron_flavour"] = "int32"
    if "partonFlavour" in plan.jet_optional:
        obs["parton_flavour"] = "int32"
    return obs


def shard_layout(plan: SkimPlan) -> ShardLayout:
    return ShardLayout.build(
        blocks={n: (list(b.features), b.length) for n, b in plan.blocks.items()},
        jet_features=list(plan.jet_features),
        classes=list(plan.labels.classes),
        truth=list(plan.config.truth),
        observers=observers(plan),
    )


def select_jets(plan: SkimPlan, chunk: Chunk) -> tuple[np.ndarray, np.ndarray, int]:
    """(event index, index within the event) of each selected jet, in event order, and the
    number of jets left out because their pT, eta, phi or mass is not finite."""
    jc = plan.config.jets
    f = chunk.jets.fields
    # a jet without a finite four-momentum has no axis to associate nodes with and no value
    # to zero that would mean anything: it is left out, and counted (nonfinite_jet_p4), as
    # its NaN pT would have failed the cut below without a word
    p4_ok = np.isfinite(f["pt"]) & np.isfinite(f["eta"]) & np.isfinite(f["phi"]) & np.isfinite(f["mass"])
    mask = p4_ok & (f["pt"] > jc.min_pt) & (np.abs(f["eta"]) < jc.max_abs_eta)
    if jc.jet_id_mask:
        mask &= (f["jetId"].astype(np.int64) & jc.jet_id_mask) == jc.jet_id_mask
    if jc.expression:
        mask &= Expression(jc.expression, source="jets.expression").evaluate(f).astype(bool)
    counts = chunk.jets.counts
    evt = np.repeat(np.arange(chunk.n_events, dtype=np.int64), counts)
    if plan.preset is not None:
        ev_ok = select_events(
            plan.preset, chunk.n_events,
            muons=chunk.preset.get("Muon"), electrons=chunk.preset.get("Electron"), jets=chunk.preset.get(jc.collection),
        )  # fmt: skip
        mask &= ev_ok[evt]
    idx = np.flatnonzero(mask)
    return evt[idx], idx - chunk.jets.offsets[evt[idx]], int(p4_ok.size - np.count_nonzero(p4_ok))


#: fewest objects in a chunk for the content checks to judge it: GEN particles for "no
#: statusFlags bit set anywhere" (a real sample's hard-process partons carry fromHardProcess),
#: jets for the median pT
_MIN_TO_JUDGE = 100


def _check_links(plan: SkimPlan, chunk: Chunk) -> None:
    """Every link-table entry indexes its event's jets and candidates from 0 (a negative index
    is 'none' and is left out, as the kernel does): an ntuple that numbers them across the
    file left the PF block empty or wrong, silently."""
    for name, bp in plan.blocks.items():
        if not bp.link_branches:
            continue
        link = chunk.links[name]
        for role, branch, n in (("jetIdx", bp.link_branches[0], chunk.jets.counts),
                                ("candIdx", bp.link_branches[1], np.diff(chunk.blocks[name][0]))):  # fmt: skip
            idx = link.fields[role]
            bad, i = indices_past_end(link.offsets, idx, n)
            if bad:
                ev = int(np.searchsorted(link.offsets, i, "right")) - 1
                what = "jets" if role == "jetIdx" else f"{', '.join(bp.collections)} entries"
                raise SchemaMismatchError(
                    f"link branch {branch!r}: {bad:,} of {idx.size:,} entries are outside their event's "
                    f"{what} (entry {ev} of the chunk: index {int(idx[i])}, the event has {int(n[ev])}); "
                    f"a link table numbers each event's {what} from 0, not across the file (the README's schema section)"
                )


#: a median jet pT above the LHC's beam energy (GeV) can only be another unit (MeV)
_MAX_MEDIAN_JET_PT = 7000.0


def _check_units(chunk: Chunk) -> None:
    pt = chunk.jets.fields["pt"]
    if pt.size >= _MIN_TO_JUDGE and (median := float(np.median(pt))) > _MAX_MEDIAN_JET_PT:
        raise SchemaMismatchError(
            f"the median jet pT of the chunk is {median:,.0f}, more than the LHC's beam energy in GeV: the skim's cuts and "
            "features expect GeV (and cm for dxy/dz); map branches in GeV, or convert the ntuple (MeV: divide by 1000)"
        )


def _check_flags(chunk: Chunk) -> None:
    flags = chunk.gen.fields["statusFlags"]
    if flags.size >= _MIN_TO_JUDGE and not flags.any():
        raise SchemaMismatchError(
            f"GenPart statusFlags is 0 for all {flags.size:,} GEN particles of the chunk: the truth labels need "
            "NanoAOD's bits (0 isPrompt, 8 fromHardProcess, ...; e, mu, tau, uds and g would never be assigned); "
            "map a branch that holds them"
        )


def process_chunk(plan: SkimPlan, chunk: Chunk, layout: ShardLayout) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Arrays of one shard for ``chunk``, and counters (non-finite values per block, bad links)."""
    _check_links(plan, chunk)
    _check_flags(chunk)
    _check_units(chunk)
    sel_evt, sel_local, bad_p4 = select_jets(plan, chunk)
    n = sel_evt.shape[0]
    out = layout.empty(n, unset=tuple(f"{b}_{a}" for b in plan.blocks for a in ("features", "mask")))  # fill_block writes them whole
    counters: dict[str, int] = {"jets": n, "nonfinite_jet_p4": bad_p4}
    jf = chunk.jets.fields
    joff = chunk.jets.offsets
    gidx = joff[sel_evt] + sel_local
    counts: dict[str, np.ndarray] = {}
    for name, bp in plan.blocks.items():
        noff, X, kind = chunk.blocks[name]
        if bp.use_link:
            link = chunk.links[name]
            loff, ljet, lcand = link.offsets, link.fields["jetIdx"].astype(np.int64), link.fields["candIdx"].astype(np.int64)
        else:
            loff = ljet = lcand = np.zeros(1, np.int64)
        cnt = np.zeros(n, np.int64)
        bad_values, bad_links = fill_block(
            sel_evt, sel_local, joff,
            jf["pt"].astype(np.float64), jf["eta"].astype(np.float64), jf["phi"].astype(np.float64), jf["mass"].astype(np.float64),
            noff, X, kind, bp.use_link, bp.radius, loff, ljet, lcand,
            bp.min_pt, bp.sort_idx, np.asarray(bp.feat_idx, np.int64), bp.wrap,
            out[f"{name}_features"], out[f"{name}_mask"], cnt,
        )  # fmt: skip
        counts[name] = cnt
        counters[f"nonfinite_{name}"] = int(bad_values)
        if bad_links:
            counters[f"bad_links_{name}"] = int(bad_links)

    # -- jet-level features --------------------------------------------------------------
    pt, eta, phi, mass = (jf[k][gidx].astype(np.float64) for k in ("pt", "eta", "phi", "mass"))
    derived = {
        "pt": pt, "eta": eta, "phi": phi, "mass": mass,
        "energy": np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2), "log_pt": np.log(pt),
    }  # fmt: skip
    bad_jet = 0
    for i, f in enumerate(plan.jet_features):
        if f in derived:
            v = derived[f]
        elif f.startswith("n_") and f[2:] in counts:
            v = counts[f[2:]]
        elif f in chunk.event:
            v = chunk.event[f][sel_evt]
        else:
            v = jf[f][gidx]
        v = np.asarray(v, dtype=np.float32)
        finite = np.isfinite(v)
        if not finite.all():
            bad_jet += int((~finite).sum())
            v = np.where(finite, v, np.float32(0))
        out["jet_features"][:, i] = v
    counters["nonfinite_jet"] = bad_jet

    # -- truth -------------------------------------------------------------------------
    g, gj = chunk.gen, chunk.genjet
    gn = chunk.genjetnu
    fine = np.empty(n, np.int32)
    truth = np.zeros((n, len(TRUTH_TARGETS)), np.float32)
    lab = plan.labels
    empty_f, empty_o = np.zeros(0, np.float32), np.zeros(chunk.n_events + 1, np.int64)
    label_jets(
        sel_evt, eta, phi,
        g.offsets, g.fields["pt"], g.fields["eta"], g.fields["phi"], g.fields["mass"],
        g.fields["pdgId"].astype(np.int64), g.fields["status"].astype(np.int64),
        g.fields["statusFlags"].astype(np.int64), g.fields["genPartIdxMother"].astype(np.int64),
        gj.offsets, gj.fields["pt"], gj.fields["eta"], gj.fields["phi"], gj.fields["mass"],
        gn is not None, gn.offsets if gn else empty_o, gn.fields["pt"] if gn else empty_f,
        gn.fields["eta"] if gn else empty_f, gn.fields["phi"] if gn else empty_f,
        lab.match_radius, lab.prompt_lepton_min_pt, lab.tau_min_visible_pt,
        fine, truth,
    )  # fmt: skip
    label = np.asarray(lab.fine_to_class, np.int32)[fine]
    out["label"][:] = label
    out["label_onehot"][np.arange(n), label] = 1
    cols = [TRUTH_TARGETS.index(t) for t in plan.config.truth]
    truth = truth[:, cols]
    finite = np.isfinite(truth)  # a GEN jet or particle with a NaN in the input
    counters["nonfinite_truth"] = int(finite.size - np.count_nonzero(finite))
    out["truth"][:] = np.where(finite, truth, np.float32(0))

    # -- observers -----------------------------------------------------------------------
    out["jet_pt"][:] = pt
    out["jet_eta"][:] = eta
    out["jet_phi"][:] = phi
    out["jet_mass"][:] = mass
    for k in ("run", "lumi", "event"):
        if k in chunk.event:
            out[k][:] = chunk.event[k][sel_evt]
    out["jet_index"][:] = sel_local
    for f, o in (("hadronFlavour", "hadron_flavour"), ("partonFlavour", "parton_flavour")):
        if o in out:
            out[o][:] = jf[f][gidx] if f in jf else NO_FLAVOUR
    if plan.config.nan_policy == "error":
        bad = {k: v for k, v in counters.items() if k.startswith("nonfinite_") and v}
        if bad:
            raise FloatingPointError(f"non-finite input values with nan_policy 'error': {bad}; fix the input, or skim "
                                     "with nan_policy 'zero': values set to 0, jets whose pT, eta, phi or mass is not "
                                     "finite left out (nonfinite_jet_p4), both counted")
    return out, counters
