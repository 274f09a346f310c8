"""Reader throughput against weaver-core's loader and memcpy, and the reader's memory.

    pip install -e '.[bench]'
    python benchmarks/bench_reader.py                 # ~200k jets, ParticleNet-AK4-like layout

Same jets for everyone: a generated sample is skimmed twice (HDF5 and Parquet, uncompressed)
with a ParticleNet-AK4-like layout (PF 50×20, SV 5×11, lost tracks 5×19, leptons 4×14, jet 14),
`jetlib stats` computes the standardisation and `jetlib export weaver` writes weaver's data
config. The page cache is warmed first. One process each, batches of 1024; the Reader's
figures are its better of two epochs (the second runs with its shards already mapped).
Results go to the "Reader" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from _results import machine, record  # noqa: E402

HERE = Path(__file__).parent
PN_FEATURES = {
    "pf": ["log_pt", "log_e", "log_pt_rel", "log_e_rel", "deta", "dphi", "dr", "abs_eta", "charge", "is_electron",
           "is_muon", "is_photon", "is_ch_hadron", "is_neu_hadron", "puppiWeight", "dxy_sig", "dz_sig", "sip2d_sig",
           "sip3d_sig", "normChi2"],
    "sv": ["log_pt", "pt_rel", "etarel", "dphi", "dr", "mass", "ntracks", "chi2", "dxySig", "dlenSig", "pAngle"],
}  # fmt: skip


def rss() -> dict[str, float]:
    """RssAnon (private memory) and RssFile (mapped file pages, reclaimable) in MB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("RssAnon", "RssFile")):
            k, v = line.split(":")
            out[k] = int(v.split()[0]) / 1024
    return out


def prepare(cache: Path, events: int) -> tuple[Path, Path, Path, Path]:
    from jetlib.export import dump_yaml, weaver_config
    from jetlib.generate import generate
    from jetlib.skim.run import skim
    from jetlib.stats import compute_stats
    from jetlib.weights import compute_weights

    data = cache / "data"
    if not list(data.glob("*.root")):
        print(f"generating {events:,} events ...", flush=True)
        generate(data, events=events, files=4, seed=11, progress=False)
    cfg = yaml.safe_load((HERE.parent / "schemas" / "skim" / "default.yaml").read_text())
    for b, feats in PN_FEATURES.items():
        cfg["blocks"][b]["features"] = feats
    cfg_path = cache / "pn_ak4.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    files = sorted(str(p) for p in data.glob("*.root"))
    stores = {}
    # uncompressed shards for the zero-copy figures (and for weaver-core's Parquet); the
    # skim's default LZ4 for what a store made with default settings reads like
    for name, fmt, comp in (("hdf5", "hdf5", "none"), ("parquet", "parquet", "none"), ("hdf5_lz4", "hdf5", "lz4")):
        out = cache / f"store_{name}"
        if not (out / "stats" / "stats.json").exists():
            print(f"skimming into {name} ...", flush=True)
            shutil.rmtree(out, ignore_errors=True)
            skim(files, out, config=cfg_path, fmt=fmt, compression=comp, entries_per_task=5000, progress=False,
                 dashboard_address=None)  # fmt: skip
            compute_stats(out)
        if not (out / "weights" / "flat.json").exists():
            compute_weights(out)  # flat in (pt, eta): the weighted-sampling rows
        stores[name] = out
    (cache / "weaver.yaml").write_text(dump_yaml(weaver_config(stores["parquet"], weights=None)))
    # the skim's default layout (PF 50x40) and compression: the reader's memory for the store
    # that `jetlib skim` writes with no options
    default = cache / "store_default_lz4"
    if not (default / "stats" / "stats.json").exists():
        print("skimming into default_lz4 ...", flush=True)
        shutil.rmtree(default, ignore_errors=True)
        skim(files, default, entries_per_task=5000, progress=False, dashboard_address=None)
        compute_stats(default)
    return stores["hdf5"], stores["parquet"], stores["hdf5_lz4"], default


def warm(path: Path) -> int:
    n = 0
    for f in sorted((path / "shards").iterdir()):
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 24):
                n += len(chunk)
    return n


def time_reader(store: Path, *, touch: bool = False, **kw) -> dict:
    """One epoch. ``touch``: copy every batch into preallocated buffers, as a host-to-device
    transfer does, so that every byte of a zero-copy batch is really read from the mapping."""
    import jetlib

    r = jetlib.Reader(store, batch_size=1024, seed=1, output="numpy", verify=False, **kw)
    dst: dict[str, np.ndarray] = {}
    best = None
    for epoch in range(2):  # the second epoch is the steady state: shards mapped, buffers allocated
        r.set_epoch(epoch)
        t0 = time.perf_counter()
        jets = nbytes = 0
        for b in r:
            jets += len(b["label"])
            nbytes += sum(v.nbytes for v in b.values())
            if touch:
                for k, v in b.items():
                    if k not in dst:
                        dst[k] = np.empty((r.batch_size, *v.shape[1:]), v.dtype)
                    np.copyto(dst[k][: len(v)], v)
        dt = time.perf_counter() - t0
        res = {"jets": jets, "s": dt, "jets_s": jets / dt, "gb_s": nbytes / dt / 1e9, "bytes_per_jet": nbytes / jets}
        best = res if best is None or res["s"] < best["s"] else best
    return best


def time_dataloader(store: Path, workers: int) -> dict:
    import torch

    import jetlib

    r = jetlib.Reader(store, batch_size=1024, seed=1, standardize=True, verify=False)
    loader = torch.utils.data.DataLoader(r, batch_size=None, num_workers=workers, persistent_workers=False)
    t0 = time.perf_counter()
    jets = sum(len(b["label"]) for b in loader)
    dt = time.perf_counter() - t0
    return {"jets": jets, "s": dt, "jets_s": jets / dt}


def time_weaver(store: Path, cfg: Path, max_batches: int) -> dict:
    import logging

    import torch
    from weaver.utils.dataset import SimpleIterDataset

    logging.getLogger("weaver").setLevel(logging.WARNING)
    files = sorted(str(p) for p in (store / "shards").glob("*.parquet"))
    t0 = time.perf_counter()
    ds = SimpleIterDataset({"_": files}, str(cfg), for_training=True, load_range_and_fraction=None,
                           fetch_by_files=False, fetch_step=0.1, async_load=False)  # fmt: skip
    loader = torch.utils.data.DataLoader(ds, batch_size=1024, num_workers=0, drop_last=True)
    it = iter(loader)
    next(it)  # the first fetch reads and preprocesses a slice of every file
    t_first = time.perf_counter() - t0
    t1 = time.perf_counter()
    n = 0
    for _ in range(max_batches):
        try:
            X, y, Z = next(it)
        except StopIteration:
            break
        n += len(y["_label_"])
    dt = time.perf_counter() - t1
    return {"jets": n, "s": dt, "jets_s": n / dt, "first_batch_s": t_first}


def memcpy_gb_s(nbytes: int) -> float:
    src = np.ones(nbytes // 4, np.float32)
    dst = np.zeros_like(src)  # pre-touched
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return nbytes / best / 1e9


def rss_trace(store: Path, epochs: int) -> list[tuple[int, dict]]:
    import jetlib

    r = jetlib.Reader(store, batch_size=1024, seed=1, output="numpy", standardize=True, verify=False)
    trace = [(0, rss())]
    jets = 0
    for e in range(epochs):
        r.set_epoch(e)
        for i, b in enumerate(r):
            jets += len(b["label"])
            if i % 50 == 0:
                trace.append((jets, rss()))
    trace.append((jets, rss()))
    return trace


def mixing(cache: Path) -> dict:
    """Per-batch class make-up when each input file holds one process, as CMS samples do:
    the spread of the b-jet fraction over the batches of 2 shuffled epochs of the default
    (LZ4) store, read in blocks (the reader) and, for comparison, in windows of whole shards
    within the same decoded_mb (the reader before blocks), against the binomial floor."""
    import jetlib
    import jetlib.reader.reader as rr
    from jetlib.generate import generate
    from jetlib.skim.run import skim

    store = cache / "store_per_process"
    if not (store / "jetlib.json").exists() or not jetlib.Store(store).n_jets:
        files = []
        for k, proc in enumerate(("ttbar", "qcd", "ztautau", "zmumu")):
            files += generate(cache / "per_process" / proc, events=12_000, processes=[proc], files=1, seed=30 + k, progress=False)
        print("skimming 4 single-process files ...", flush=True)
        shutil.rmtree(store, ignore_errors=True)
        skim([str(f) for f in files], store, progress=False, dashboard_address=None)
    b = jetlib.Store(store).classes.index("b")
    out = {}
    for how, block in (("blocks", rr.CHUNK_JETS), ("whole shards", 10**9)):
        kept, rr.CHUNK_JETS = rr.CHUNK_JETS, block
        try:
            r = jetlib.Reader(store, batch_size=1024, shuffle=True, seed=1, output="numpy", verify=False)
        finally:
            rr.CHUNK_JETS = kept
        frac = []
        for epoch in range(2):
            r.set_epoch(epoch)
            frac += [float(np.mean(x["label"] == b)) for x in r if len(x["label"]) == 1024]
        out[how] = {"std": float(np.std(frac)), "window": r.window_jets}
    p = float(np.mean(frac))
    return {**out, "b": p, "floor": float(np.sqrt(p * (1 - p) / 1024)), "jets": jetlib.Store(store).n_jets,
            "shards": len(r.entries)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=70_000, help="generated events (~2.8 jets each)")
    ap.add_argument("--cache", type=Path, default=HERE / ".cache" / "reader")
    ap.add_argument("--weaver-batches", type=int, default=40)
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--rss-trace", type=Path, help=argparse.SUPPRESS)  # internal: trace the reader's RSS
    a = ap.parse_args()
    if a.rss_trace:
        import json

        print(json.dumps(rss_trace(a.rss_trace, 3)))
        return
    a.cache.mkdir(parents=True, exist_ok=True)
    h5, pq, lz4, default_lz4 = prepare(a.cache, a.events)
    size = warm(h5) + warm(pq)
    size_lz4 = warm(lz4)
    import jetlib

    n_jets = jetlib.Store(h5).n_jets
    print(f"{n_jets:,} jets; shards {size / 2e9:.2f} GB per format; page cache warm", flush=True)
    res = {}
    res["zero-copy: shuffle='slices'"] = time_reader(h5, shuffle="slices")
    res["zero-copy + copy every batch out (as a host-to-device copy)"] = time_reader(h5, shuffle="slices", touch=True)
    res["shuffle=True (gather copy)"] = time_reader(h5, shuffle=True)
    res["shuffle=True, standardize"] = time_reader(h5, shuffle=True, standardize=True)
    res["shuffle=True, standardize, Parquet"] = time_reader(pq, shuffle=True, standardize=True)
    res["shuffle=True, standardize, HDF5 LZ4 (the skim's default compression)"] = time_reader(lz4, shuffle=True, standardize=True)
    # sampling weights: each jet is kept with its acceptance probability, so an epoch yields
    # only the expected count (flat in pt/eta for 20 classes, some rare: a few thousand jets)
    # and its time is the scan of the store; with several ranks, a counting pass over the
    # epoch's plan first gives every rank the same number of batches
    weighted = {
        "flat pt/eta weights, uncompressed": time_reader(h5, shuffle=True, standardize=True, weights="flat"),
        "flat pt/eta weights, HDF5 LZ4": time_reader(lz4, shuffle=True, standardize=True, weights="flat"),
        "flat pt/eta weights, uncompressed, rank 0 of world_size=2 (with the counting pass)": time_reader(
            h5, shuffle=True, standardize=True, weights="flat", rank=0, world_size=2),
    }  # fmt: skip
    for k, v in res.items():
        print(f"  {k:40s} {v['jets_s']:>12,.0f} jets/s  {v['gb_s']:6.2f} GB/s", flush=True)
    for k, v in weighted.items():
        print(f"  {k}: {v['jets']:,} jets yielded in {v['s']:.3f} s", flush=True)
    dl = {w: time_dataloader(h5, w) for w in (0, 2)}
    for w, v in dl.items():
        print(f"  DataLoader num_workers={w}: {v['jets_s']:,.0f} jets/s (torch tensors, shuffle, standardize)", flush=True)
    weaver = None
    try:
        weaver = time_weaver(pq, a.cache / "weaver.yaml", a.weaver_batches)
        print(f"  weaver-core SimpleIterDataset: {weaver['jets_s']:,.0f} jets/s (first batch after {weaver['first_batch_s']:.1f} s)")
    except ImportError as err:
        print(f"  weaver-core not installed ({err}); pip install -e '.[bench]'")
    bpj = res["shuffle=True (gather copy)"]["bytes_per_jet"]
    mem = memcpy_gb_s(int(min(n_jets * bpj, 2e9)))
    print(f"  memcpy: {mem:.2f} GB/s", flush=True)
    # in a fresh process: this one holds weaver's tables, torch and the memcpy buffers
    import json
    import subprocess

    def rss(store: Path) -> tuple[list[float], list[float]]:
        out = subprocess.run([sys.executable, __file__, "--rss-trace", str(store)], capture_output=True, text=True, check=True)
        trace = json.loads(out.stdout.strip().splitlines()[-1])
        anon = [t[1]["RssAnon"] for t in trace]
        filem = [t[1]["RssFile"] for t in trace]
        print(f"  reader RSS over 3 epochs (fresh process, {store.name}): anon {anon[0]:.0f} -> max {max(anon):.0f} MB; "
              f"mapped file pages max {max(filem):.0f} MB")  # fmt: skip
        return anon, filem

    anon, filem = rss(h5)
    anon_lz4, _ = rss(lz4)
    anon_def, _ = rss(default_lz4)
    def_kb = jetlib.Reader(default_lz4, output="numpy", verify=False).jet_bytes / 1e3

    like = res["shuffle=True, standardize"]["jets_s"]
    zc = res["zero-copy + copy every batch out (as a host-to-device copy)"]
    rows = ["| mode (one process, batches of 1024) | jets/s | GB/s |", "|---|---:|---:|"]
    rows += [f"| jetlib.Reader, {k} | {v['jets_s']:,.0f} | {v['gb_s']:.2f} |" for k, v in res.items()]
    rows += [f"| jetlib.Reader in DataLoader, num_workers={w}, torch tensors | {v['jets_s']:,.0f} | |" for w, v in dl.items()]
    if weaver:
        rows.append(f"| weaver-core SimpleIterDataset + DataLoader (Parquet, {weaver['jets']:,} jets after the first fetch) | {weaver['jets_s']:,.0f} | |")
    rows.append(f"| memcpy (np.copyto, pre-touched destination) | | {mem:.2f} |")
    wrows = ["| weighted sampling (shuffle=True, standardize) | jets yielded per epoch | epoch (s) | store jets scanned/s |",
             "|---|---:|---:|---:|"]
    wrows += [f"| {k} | {v['jets']:,} | {v['s']:.3f} | {n_jets / v['s']:,.0f} |" for k, v in weighted.items()]
    body = [
        f"Machine: {machine()}.",
        f"Command: `python benchmarks/bench_reader.py --events {a.events}`. {n_jets:,} jets, ParticleNet-AK4-like layout "
        f"(PF 50×20, SV 5×11, LT 5×19, lep 4×14, jet 14), {bpj / 1e3:.1f} kB per jet, uncompressed shards "
        f"unless the row says LZ4 ({size_lz4 / 1e6:.0f} MB against {size / 2e6:.0f} MB), page cache warm.",
        "",
        *rows,
        "",
        *wrows,
        "",
    ]
    if weaver:
        ratio = like / weaver["jets_s"]
        body.append(f"- Reader (shuffle=True, standardize) / weaver-core, one process each: **{ratio:.0f}×** "
                    f"(target ≥ 20×: {'met' if ratio >= 20 else 'NOT met'}).")  # fmt: skip
    frac = zc["gb_s"] / mem
    body.append(f"- Zero-copy batches copied out once / memcpy bandwidth: **{frac:.0%}** (target ≥ 30%: {'met' if frac >= 0.3 else 'NOT met'}). "
                f"Gathered (shuffled) batches: {res['shuffle=True (gather copy)']['gb_s'] / mem:.0%}.")  # fmt: skip
    body.append(f"- Reader memory over 3 shuffled, standardised epochs, in a fresh process: private (RssAnon) {anon[0]:.0f} MB after `import jetlib` and opening the reader, "
                f"{max(anon):.0f} MB at most (target ≤ 1 GB: {'met' if max(anon) <= 1024 else 'NOT met'}); "
                f"mapped shard pages (RssFile, page cache, reclaimable by the kernel) up to {max(filem):.0f} MB "
                f"of the {size / 2e6:.0f} MB store. Private memory does not grow with the store: "
                "the reader holds one batch and the plan's index arrays.")  # fmt: skip
    body.append(f"- The same on the LZ4 store: private memory {anon_lz4[0]:.0f} MB after opening, {max(anon_lz4):.0f} MB at most "
                f"(target ≤ 1 GB: {'met' if max(anon_lz4) <= 1024 else 'NOT met'}): compressed shards are decoded a window "
                "of blocks at a time into private memory instead of being mapped, up to `decoded_mb` (512 MB).")  # fmt: skip
    body.append(f"- The same on an LZ4 store of the skim's default layout (`jetlib skim` with no options: PF 50×40, "
                f"{def_kb:.1f} kB per jet): {anon_def[0]:.0f} MB after opening, {max(anon_def):.0f} MB at most "
                f"(target ≤ 1 GB: {'met' if max(anon_def) <= 1024 else 'NOT met'}).")  # fmt: skip
    body.append("- Weighted sampling keeps each jet with its acceptance probability (the largest is 1), so an epoch yields "
                "the expected count of `jetlib weights`' summary: flat weights for 20 classes, some of them rare here, keep "
                "a few thousand jets of the store; the epoch's time is the scan of the whole store. A DDP rank also runs "
                "the epoch's plan once to count its batches, so that every rank yields the same number.")  # fmt: skip
    mix = mixing(a.cache)
    print(f"  mixing: b-fraction spread {mix['blocks']['std']:.3f} (blocks), {mix['whole shards']['std']:.3f} (whole shards), "
          f"floor {mix['floor']:.3f}", flush=True)  # fmt: skip
    body.append(f"- Batches of one-process input files (4 files: ttbar, qcd, ztautau, zmumu; {mix['jets']:,} jets in "
                f"{mix['shards']} LZ4 shards, the skim's defaults): over 2 shuffled epochs the fraction of b jets "
                f"({mix['b']:.3f} on average) spreads over batches of 1,024 with a standard deviation of "
                f"**{mix['blocks']['std']:.3f}** when windows draw blocks of all shards ({mix['blocks']['window']:,} jets), "
                f"against {mix['whole shards']['std']:.3f} with windows of whole shards in the same memory "
                f"({mix['whole shards']['window']:,} jets, the reader before blocks); a full shuffle's floor is "
                f"{mix['floor']:.3f}.")  # fmt: skip
    text = "\n".join(body)
    print(text)
    if not a.no_record:
        record("Reader", text)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
