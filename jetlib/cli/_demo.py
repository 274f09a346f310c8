"""``jetlib demo``: the main job, end to end, on an embedded default sample.

generate → skim → weights (flat in pT, η) → stats → one shuffled, sampled, standardised
epoch through :class:`jetlib.Reader`, with the figures of each step. Every step is the
importable function that the matching command wraps.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

STEPS = 5


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        out: Path = typer.Option(Path("jetlib-demo"), "--out", "-o", help="Folder for the sample (data/) and the store (store/)."),
        events: int = typer.Option(20000, help="Events to generate."),
        files: int = typer.Option(4, help="ROOT files to spread them over (one skim task each, or more)."),
        workers: int = typer.Option(None, help="Dask worker processes for the skim (default: one per core)."),
        batch_size: int = typer.Option(1024, help="Jets per batch when reading the store back."),
        dashboard_address: str = typer.Option("127.0.0.1:8787", help="Dask dashboard bind address ('' for none)."),
    ) -> None:
        """The whole job on a generated sample: generate, skim, weights, stats, one Reader epoch.

        Generates events, skims them, computes weights and standardisation, and reads one epoch through jetlib.Reader."""
        from rich.console import Console
        from rich.markup import escape

        from jetlib.errors import ConfigError, InputFileError, MissingBranchError, ShardError, StoreError

        console = Console(soft_wrap=True, emoji=False)
        for name, value in (("--events", events), ("--files", files), ("--batch-size", batch_size)):
            if value < 1:  # a bad option, as for the other commands: exit 2, nothing made
                console.print(f"[red]error:[/] {name} must be >= 1 (got {value})")
                raise typer.Exit(2)
        try:
            ok = _run(console, out, events=events, files=files, workers=workers, batch_size=batch_size,
                      dashboard_address=dashboard_address or None)  # fmt: skip
        except (ConfigError, InputFileError, MissingBranchError, ShardError, StoreError, ValueError) as err:
            console.print(f"[red]error:[/] {escape(str(err))}")
            raise typer.Exit(1) from None
        except OSError as err:  # --out where nothing can be written: one line, not a traceback
            console.print(f"[red]error:[/] {escape(str(err))}; check --out and its permissions, or choose another --out")
            raise typer.Exit(1) from None
        if not ok:
            raise typer.Exit(1)


def _run(console, out: Path, *, events: int, files: int, workers: int | None, batch_size: int,
         dashboard_address: str | None) -> bool:  # fmt: skip
    """The five steps; False when the skim recorded failed tasks (the run stops there)."""
    import numpy as np
    from rich.markup import escape
    from rich.table import Table

    import jetlib
    from jetlib._numba import skip_numba_extensions
    from jetlib.generate import generate
    from jetlib.skim.run import skim
    from jetlib.stats import compute_stats
    from jetlib.weights import compute_weights

    skip_numba_extensions()  # this process is jetlib's own (stats and the Reader run here)

    data, store = out / "data", out / "store"

    def step(i: int, name: str, text: str) -> None:
        console.print(f"[bold]{i}/{STEPS} {name:<8}[/] {text}")

    # 1. a synthetic MiniAOD-like sample
    t0 = time.perf_counter()
    paths = generate(data, events=events, files=files, seed=1)
    dt = time.perf_counter() - t0
    (data / "files.txt").write_text("".join(f"{p.resolve()}\n" for p in paths))
    step(1, "generate", f"{events:,} events (ttbar, qcd, ztautau, zmumu) in {len(paths)} files, listed in {data}/files.txt "
                        f"({dt:.1f} s, {events / max(dt, 1e-9):,.0f} events/s)")  # fmt: skip

    # 2. skim into a store (a fresh one: the demo owns its folder)
    s = skim([str(p) for p in paths], store, workers=workers, dashboard_address=dashboard_address, overwrite=True,
             console=console)  # fmt: skip
    if not s.ok:
        console.print(f"[red]skim: {s.failed} task(s) failed[/]; see {store}/manifest.jsonl")
        for rec in s.failures[:5]:
            console.print(f"  {rec.get('task')}: {rec.get('error')}: {rec.get('reason')}")
        return False
    st = jetlib.Store(store)
    shards = st.shards()
    mb = sum(e.bytes for e in shards) / 1e6
    comp = st.meta["shards"]["compression"]
    step(2, "skim", f"{s.jets:,} jets from {s.events:,} events → {store}/ ({len(shards)} {st.format} shards, "
                    f"{mb:,.0f} MB, compression {comp}; {s.seconds:.1f} s, {s.jets / max(s.seconds, 1e-9):,.0f} jets/s "
                    f"on {s.workers} worker{'s' if s.workers != 1 else ''})")  # fmt: skip

    # 3. sampling weights: every class flat in (pT, η)
    t0 = time.perf_counter()
    w = compute_weights(st, bins="pt,eta", method="flat")
    dt = time.perf_counter() - t0
    shape = " × ".join(f"{v} {len(e) - 1}" for v, e in zip(w.variables, w.edges))
    exp = w.expected_counts()
    step(3, "weights", f"flat over {shape} bins → {store}/weights/{w.name}.json ({dt:.1f} s, {w.jets / max(dt, 1e-9):,.0f} jets/s)")
    t = Table(box=None, padding=(0, 2), pad_edge=False)
    for c in ("class", "jets", "expected after sampling"):
        t.add_column(c, justify="left" if c == "class" else "right")
    for i, c in enumerate(w.classes):
        n = int(w.counts[i].sum())
        if n:
            t.add_row(c, f"{n:,}", f"{exp[c]:,.0f}")
    t.add_row("all", f"{int(w.counts.sum()):,}", f"{sum(exp.values()):,.0f}")
    console.print(t)
    console.print(f"  equal class weights: every class gets the same expected count, set by the most constrained "
                  f"class ({w.limiting_class()}); change it with --class-weights or --bins")  # fmt: skip
    from jetlib.cli._weights import sampling_notes

    for line in sampling_notes(w):
        console.print(f"  {line}")

    # 4. standardisation of every node and jet feature
    t0 = time.perf_counter()
    stats = compute_stats(st)
    dt = time.perf_counter() - t0
    n_feat = sum(len(fs.features) for fs in stats.arrays.values())
    step(4, "stats", f"median / 16–84% scale of {n_feat} features in {len(stats.arrays)} arrays over "
                     f"{stats.jets:,} jets → {store}/stats/stats.json ({dt:.1f} s, {stats.jets / max(dt, 1e-9):,.0f} jets/s)")  # fmt: skip

    # 5. one training epoch as a trainer sees it (NumPy here; torch tensors by default when installed)
    t0 = time.perf_counter()
    import jetlib.reader  # noqa: F401 (imports torch when installed: the Reader is then an IterableDataset)

    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    reader = jetlib.Reader(st, batch_size=batch_size, shuffle=True, seed=1, weights="flat", standardize=True,
                           output="numpy")  # fmt: skip
    t_open = time.perf_counter() - t0
    reader.set_epoch(0)
    t0 = time.perf_counter()
    n_batches, jets, nbytes = 0, 0, 0
    per_class = np.zeros(len(st.classes), np.int64)
    for batch in reader:
        n_batches += 1
        jets += len(batch["label"])
        nbytes += sum(v.nbytes for v in batch.values())
        per_class += np.bincount(batch["label"], minlength=len(st.classes))
    dt = time.perf_counter() - t0
    how = "memory-mapped" if reader.mapped else f"decoded a window of blocks at a time ({comp})"
    rate = f"{st.n_jets / max(dt, 1e-9):,.0f} jets/s scanned, {jets / max(dt, 1e-9):,.0f} jets/s yielded"
    step(5, "read", f"jetlib.Reader(shuffle=True, weights='flat', standardize=True): 1 epoch = {n_batches:,} "
                    f"batch{'es' if n_batches != 1 else ''} of ≤{batch_size:,}, {jets:,} jets (expected "
                    f"{reader.expected_jets():,.0f}) accepted from {st.n_jets:,} in {dt:.1f} s ({rate}, "
                    f"{nbytes / 1e6:,.0f} MB, the first batch loading the compiled kernels); shards {how}; "
                    f"reader opened in {t_open:.1f} s (checksums {reader.timings['verify_s']:.2f} s)"
                    + (f" after importing torch in {t_import:.1f} s, once per process" if "torch" in sys.modules else ""))  # fmt: skip
    top = sorted(((int(n), c) for c, n in zip(st.classes, per_class) if n), reverse=True)
    console.print("  read per class: " + ", ".join(f"{c} {n:,}" for n, c in top))

    pq = out / "store-parquet"
    console.print("[bold]next:[/]")
    for cmd in (
        f"jetlib inspect {store}",
        f"jetlib weights {store} --method ref --reference b --plot     # PNGs: pip install -e '.[plot]'",
        f"jetlib export cmssw {store} -o preprocess.json",
        f"jetlib skim {data}/files.txt --format parquet --out {pq} && jetlib weights {pq} && jetlib stats {pq} "
        f"&& jetlib export weaver {pq} -o data.yaml",
        f"python {_example('train_deepsets.py')} {store} --epochs 3        # needs torch",
    ):
        console.print(f"  {escape(cmd)}")
    return True


def _example(name: str) -> str:
    """The path of an example script to print, runnable from here: relative when it is below
    the current directory, else absolute (the demo run elsewhere); the repository's
    examples/ folder of a clone (a wheel ships no examples)."""
    path = Path(__file__).resolve().parents[2] / "examples" / name
    if not path.is_file():
        return f"examples/{name}"  # (from a clone of the jetlib repository)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
