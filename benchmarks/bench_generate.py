"""Events/s per core of ``jetlib generate`` (one process: the generator is single-threaded).

    python benchmarks/bench_generate.py --events 40000

Times ``jetlib.generate.generate`` writing ROOT TTrees into a temporary folder, split into
batch generation (``generate_batch``, NumPy) and the rest (uproot's TTree writing), reports
the output size and the sample's content (jets and PF candidates per event). Best of
``--repeat`` runs. Results go to the "generate" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _results import machine, record  # noqa: E402

TARGET = 1_000  # events/s per core


def time_batches(events: int, seed: int) -> float:
    """Seconds spent in ``generate_batch`` alone for ``events`` events (same batch size)."""
    from jetlib.generate import BATCH, PROCESSES, generate_batch

    rng = np.random.default_rng([seed, 0])
    proc = list(range(len(PROCESSES)))
    t0 = time.perf_counter()
    for start in range(0, events, BATCH):
        generate_batch(rng, min(BATCH, events - start), proc, start)
    return time.perf_counter() - t0


def content(path: Path) -> dict:
    import awkward as ak
    import uproot

    t = uproot.open(path)["Events"]
    a = t.arrays(["Jet_pt", "PFCand_pt"])
    n = t.num_entries
    return {"jets": float(ak.sum(ak.num(a.Jet_pt))) / n, "pf": float(ak.sum(ak.num(a.PFCand_pt))) / n}


def main(argv: list[str] | None = None) -> None:
    from jetlib.generate import generate

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=40_000)
    ap.add_argument("--files", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--no-record", action="store_true", help="print only; leave RESULTS.md alone")
    a = ap.parse_args(argv)
    cmd = "python benchmarks/bench_generate.py " + " ".join(shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:]))

    generate_batch_warm = time_batches(2000, a.seed)  # imports and first-call costs out of the timing
    del generate_batch_warm
    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.repeat):
            out = Path(tmp) / f"run{i}"
            c0, t0 = time.process_time(), time.perf_counter()
            paths = generate(out, events=a.events, files=a.files, seed=a.seed, progress=False)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        size = sum(p.stat().st_size for p in paths)
        info = content(paths[0])
    batch_s = time_batches(a.events, a.seed)
    wall = min(walls)
    cpu = cpus[int(np.argmin(walls))]
    rate = a.events / wall
    rows = [
        ("events/s per core (wall, best of %d)" % a.repeat, f"{rate:,.0f}", f"{'PASS' if rate >= TARGET else 'FAIL'} (>= {TARGET:,})"),
        ("events/s per CPU second (process time)", f"{a.events / cpu:,.0f}", ""),
        ("time in generate_batch (NumPy) / writing (uproot)", f"{batch_s:.2f} s / {max(wall - batch_s, 0):.2f} s "
                                                              f"({batch_s / wall:.0%} / {max(wall - batch_s, 0) / wall:.0%})", ""),
        ("output", f"{size / 1e6:,.0f} MB in {a.files} files ({size / a.events / 1e3:.1f} kB/event)", ""),
        ("content per event", f"{info['jets']:.2f} jets, {info['pf']:.1f} PF candidates", ""),
    ]  # fmt: skip
    table = "| measure | value | target |\n|---|---|---|\n" + "\n".join(f"| {m} | {v} | {t} |" for m, v, t in rows)
    body = (f"Machine: {machine()}\n\nCommand: `{cmd}`\n\n{a.events:,} events (ttbar, qcd, ztautau, zmumu in equal "
            f"shares), TTrees with uproot's default compression, one process.\n\n{table}")  # fmt: skip
    print(table)
    if not a.no_record:
        record("generate", body)
        print(f"written to {Path(__file__).with_name('RESULTS.md')}")


if __name__ == "__main__":
    main()
