"""``jetlib generate``: seeded synthetic MiniAOD-like events written as ROOT TTrees.

Vectorised over batches of events (NumPy on flat arrays + counts; no Python loop per
particle). Each file holds a seeded mix of the requested processes in equal shares; every
branch of ``schemas/inputs/miniaod.yaml`` is written, with the ``nX`` counters.

Examples:
    >>> from jetlib.generate import generate
    >>> files = generate("data/", events=2000, files=2, seed=1)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np

from jetlib.generate.gen import K, gen_particles
from jetlib.generate.jets import PROCESSES, truth_jets
from jetlib.generate.reco import reco_objects

__all__ = ["generate", "generate_batch", "PROCESSES"]

BATCH = 2000


def generate_batch(rng: np.random.Generator, n: int, processes: list[int], first_event: int, run: int = 1) -> dict:
    """One batch of ``n`` events as a dict ready for ``uproot``'s ``mktree``/``extend``,
    numbered ``event = first_event + 1, ...`` in run ``run``."""
    from jetlib.config.inputs import load_input_schema

    process = np.asarray(processes)[rng.integers(0, len(processes), n)]
    npv = rng.poisson(30, n)
    ev = {"n": n, "pv_x": np.full(n, 0.1) + rng.normal(0, 0.001, n), "pv_y": rng.normal(0, 0.001, n),
          "pv_z": rng.normal(0, 4.0, n), "npv": npv}  # fmt: skip
    j = truth_jets(rng, process)
    g = gen_particles(rng, j)
    objs = reco_objects(rng, j, g, ev)
    # GEN record: kept slots, in jet order within each event; mother slot -> index in the event
    keep = g["keep"]
    pos = np.cumsum(keep.ravel()).reshape(keep.shape) - 1
    per_jet = keep.sum(axis=1)
    gen_counts = np.bincount(j["evt"], weights=per_jet, minlength=n).astype(np.int64)
    ev_start = np.concatenate([[0], np.cumsum(gen_counts)])[:-1]
    mother_slot = g["mother"]
    rows = np.arange(keep.shape[0])[:, None].repeat(K, 1)
    mother = np.where(mother_slot >= 0, pos[rows, np.maximum(mother_slot, 0)] - ev_start[j["evt"]][:, None], -1)
    genpart = {k: g[k][keep] for k in ("pt", "eta", "phi", "mass")}
    genpart.update(pdgId=g["pdg"][keep], status=g["status"][keep], statusFlags=g["flags"][keep], genPartIdxMother=mother[keep])
    genpart["vx"] = np.zeros(keep.sum(), np.float32)
    genpart["vy"] = np.zeros(keep.sum(), np.float32)
    genpart["vz"] = np.zeros(keep.sum(), np.float32)
    objs["GenPart"] = (gen_counts, genpart)
    schema = load_input_schema("miniaod")
    out: dict = {}
    for cname, col in schema.collections.items():
        counts, fields = objs[cname]
        total = int(counts.sum())
        rec = {}
        for f, branch in col.all_fields.items():
            arr = fields.get(f)
            if arr is None:
                arr = np.zeros(total, np.int32 if f in ("tightId",) else np.float32)
            arr = np.asarray(arr)
            if arr.dtype == np.float64:
                arr = arr.astype(np.float32)
            elif arr.dtype.kind in "iub" and arr.dtype != np.int32:
                arr = arr.astype(np.int32)
            rec[branch[len(cname) + 1 :]] = ak.unflatten(arr, counts)
        out[cname] = ak.zip(rec)
    out["run"] = np.full(n, run, np.uint32)
    out["luminosityBlock"] = (1 + (first_event + np.arange(n)) // 1000).astype(np.uint32)
    out["event"] = (first_event + np.arange(n) + 1).astype(np.uint64)
    out["PV_npvs"] = npv.astype(np.int32)
    out["PV_x"], out["PV_y"], out["PV_z"] = (ev[k].astype(np.float32) for k in ("pv_x", "pv_y", "pv_z"))
    out["Rho_fixedGridRhoFastjetAll"] = (0.6 * npv + rng.normal(0, 1.5, n)).clip(0).astype(np.float32)
    out["genProcess"] = process.astype(np.int32)
    return out


def generate(
    out_dir: str | Path,
    *,
    events: int = 10000,
    processes: tuple[str, ...] | list[str] = PROCESSES,
    files: int = 1,
    seed: int = 1,
    progress: bool = True,
) -> list[Path]:
    """Write ``events`` synthetic events split evenly over ``files`` ROOT files.

    Args:
        out_dir: folder for ``jetlib_gen_NNN.root`` (created).
        events: total number of events.
        processes: any of ttbar, qcd, ztautau, zmumu; each file mixes them in equal shares.
        files: number of files.
        seed: the same seed gives the same arrays. It is also the run number (modulo
            2**32), so that samples made with different seeds have distinct (run, lumi,
            event) keys and can be skimmed together.

    Returns:
        The paths written.
    """
    import uproot
    from rich.progress import Progress

    unknown = [p for p in processes if p not in PROCESSES]
    if unknown or not processes:
        what = f"unknown process {unknown[0]!r}" if unknown else "no process given"
        raise ValueError(f"{what}; known: {', '.join(PROCESSES)} (--process, comma-separated)")
    if events < 1 or files < 1:
        raise ValueError("--events and --files must be >= 1")
    if files > events:  # a file without events would have no Events tree
        raise ValueError(f"--files {files} is more than --events {events}: every file needs at least one event")
    proc = [PROCESSES.index(p) for p in processes]
    out_dir = Path(out_dir)
    if out_dir.is_file():  # (mkdir says only "File exists")
        raise ValueError(f"{out_dir}: is a file, not a folder for the generated files; choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    per_file = [events // files + (1 if i < events % files else 0) for i in range(files)]
    paths = []
    first = 0
    from rich.console import Console

    with Progress(disable=not progress, transient=True, console=Console(stderr=True)) as bar:  # stdout stays clean
        task = bar.add_task("generate", total=events)
        for i, n in enumerate(per_file):
            rng = np.random.default_rng([seed, i])
            path = out_dir / f"jetlib_gen_{i:03d}.root"
            with uproot.recreate(path) as f:
                tree = None
                for start in range(0, max(n, 1), BATCH):
                    m = min(BATCH, n - start)
                    if m <= 0:
                        break
                    batch = generate_batch(rng, m, proc, first, run=seed % 2**32)
                    first += m
                    if tree is None:
                        tree = f.mktree("Events", batch)  # a TTree: uproot >= 5.7 defaults to RNTuple otherwise
                    else:
                        tree.extend(batch)
                    bar.update(task, advance=m)
            paths.append(path)
    return paths
