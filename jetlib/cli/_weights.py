"""``jetlib weights`` and ``jetlib stats``."""

from __future__ import annotations

from pathlib import Path

import typer


def _fail(console, err: Exception) -> None:
    from rich.markup import escape

    from jetlib.cli import shard_fix
    from jetlib.errors import ShardError

    hint = ""
    if isinstance(err, ShardError):  # a shard that cannot be read (an OSError too, but no write failed)
        hint = shard_fix(err)
    elif isinstance(err, OSError):  # the store's weights/ or stats/ could not be written
        hint = "; the results are written into the store: check that you may write there, or work on a copy of it"
    console.print(f"[red]error:[/] {escape(str(err))}{hint}")
    raise typer.Exit(2)


def _warn_if_written(console, store: Path) -> None:
    from rich.markup import escape

    from jetlib.store.lock import writer

    who = writer(store)
    if who:
        console.print(f"[yellow]warning:[/] {escape(who)} is still writing {escape(str(store))}: these results "
                      "cover the jets done so far; run again when it ends")  # fmt: skip


def _warn_if_incomplete(console, store: Path) -> None:
    """Weights and stats cover the done tasks only: say so when some failed or never finished."""
    from jetlib.store import Store

    why = Store(store).incomplete()
    if why:
        console.print(f"[yellow]warning:[/] {why}: these results cover the jets of the done ones; "
                      "`jetlib verify` lists them")  # fmt: skip


def sampling_notes(w) -> list[str]:
    """What an epoch samples with weights ``w`` (rich markup): the share of the store and the
    class that sets it, and warnings when that share is small or the bins hold few jets."""
    exp = w.expected_counts()
    kept = sum(exp.values()) / w.jets if w.jets else 0.0
    limiting = w.limiting_class()
    rate = f"; the rate is set by {limiting}, the most constrained class" if limiting else ""
    lines = [f"an epoch samples {sum(exp.values()):,.0f} of {w.jets:,} jets ({kept:.1%}){rate}"]
    if limiting and kept < 0.1:
        # what costs the jets, with the knobs that give them back (coarser bins and merged
        # labels did not: on the README's sample they sampled 0.9% and 1.4% against 2.0%)
        shape = w.shape_share()
        lines.append(f"[yellow]warning:[/] fewer than 10% of the jets are sampled. The shapes keep {shape:.1%} of them "
                     "(a class's sparsest bins set its level: a higher --threshold, e.g. 50, keeps more and flattens "
                     "less; so do --bins over a narrower range, e.g. pt=15:300:log20, where jets beyond it join the last "
                     f"bin). Balancing the classes keeps {kept / shape if shape else 0:.0%} of that (give the rarest "
                     f"classes a class weight below 1, e.g. --class-weights {limiting}=0.2).")  # fmt: skip
    per_bin = w.jets_per_filled_bin()
    if 0 < per_bin < 10:
        lines.append(f"[yellow]warning:[/] the median class has {per_bin:.1f} jets per filled bin: its weights "
                     "follow statistical fluctuations; use coarser --bins, or more jets")  # fmt: skip
    return lines


def _summary(path: Path) -> str | None:
    """What saved weights were made with (method, bins, class weights), to say what a new
    run replaces; None if there are none or they cannot be read."""
    import json

    from jetlib.weights import SamplingWeights

    try:
        return SamplingWeights.from_json(json.loads(path.read_text())).describe()
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def register(app: typer.Typer) -> None:
    @app.command()
    def weights(
        store: Path = typer.Argument(..., metavar="STORE", help="Store folder."),
        bins: str = typer.Option(
            "pt,eta", help="Binned observers of the store (jetlib inspect lists them; pt, eta, phi, mass are short for jet_*): "
            "'pt,eta' takes the defaults (pT from the skim's cut to 1000 GeV in 20 log bins, η over the skim's |η| cut in 10), "
            "or give edges: 'pt=15:1000:log25,eta=-2.5:2.5:10' or 'pt=15|30|1000'."
        ),
        method: str = typer.Option("flat", help="flat | ref. flat: every class uniform in the bins; ref: every class shaped like --reference."),
        reference: str = typer.Option(None, help="Reference class for --method ref."),
        class_weights: str = typer.Option(None, help="Up/down-sample classes, e.g. 'b=2,c=2' (others 1)."),
        threshold: float = typer.Option(10.0, help="Percentile guarding low-count bins (weaver's reweight_threshold)."),
        flow: str = typer.Option("clip", help="clip | drop: jets outside the bins go into the edge bins, or get weight 0."),
        name: str = typer.Option(None, help="Save as weights/<name>.json (default: the method)."),
        plot: bool = typer.Option(False, "--plot", help="Write PNGs: per-class pT/η before/after, weight maps."),
        scheduler: str = typer.Option(None, help="Dask scheduler address for a large store (default: local threads)."),
    ) -> None:
        """Per-class pT/η sampling weights and class weights, saved in STORE/weights/."""
        from rich.table import Table

        from jetlib.cli import results_console
        from jetlib.errors import ConfigError, StoreError
        from jetlib.weights import compute_weights

        console = results_console()
        _warn_if_written(console, store)
        before = _summary(store / "weights" / f"{name or method}.json")
        try:
            w = compute_weights(
                store, bins=bins, method=method, reference=reference, class_weights=class_weights,
                threshold=threshold, flow=flow, name=name, plot=plot, scheduler=scheduler,
            )  # fmt: skip
        except (ConfigError, StoreError, ImportError, OSError) as err:  # OSError: a store we may not write
            _fail(console, err)
        shape = " × ".join(f"{v} {len(e) - 1}" for v, e in zip(w.variables, w.edges))
        t = Table(title=f"{w.method} weights over {shape} bins → {store}/weights/{w.name}.json")
        for c in ("class", "jets", "outside bins", "class weight", "expected after sampling", "fraction"):
            t.add_column(c, justify="right" if c != "class" else "left")
        exp = w.expected_counts()
        tot = sum(exp.values()) or 1.0
        flow_jets = w.extra.get("flow_jets", {})
        for i, c in enumerate(w.classes):
            n = int(w.counts[i].sum()) + (flow_jets.get(c, 0) if w.flow == "drop" else 0)
            if n == 0:
                continue
            t.add_row(c, f"{n:,}", f"{flow_jets.get(c, 0):,}", f"{w.class_weights[c]:g}", f"{exp[c]:,.0f}", f"{exp[c] / tot:.3f}")
        t.add_row("all", f"{w.jets:,}", f"{sum(flow_jets.values()):,}", "", f"{sum(exp.values()):,.0f}", "1.000", style="bold")
        console.print(t)
        for line in sampling_notes(w):
            console.print(line)
        empty = [c for i, c in enumerate(w.classes) if w.counts[i].sum() == 0]
        outside = sum(flow_jets.values())
        if outside > 0.01 * w.jets:
            what = "clipped into the edge bins" if w.flow == "clip" else "dropped (weight 0)"
            console.print(f"[yellow]warning:[/] {outside:,} jets ({outside / w.jets:.1%}) lie outside the bins and are "
                          f"{what}; check --bins against the store's ranges (`jetlib inspect`)")  # fmt: skip
        after = _summary(store / "weights" / f"{w.name}.json")
        if before and before != after:
            console.print(f"note: replaced weights/{w.name}.json, which held {before}; the Reader and `jetlib export` "
                          "take the latest: use --name to keep both")  # fmt: skip
        if empty:
            where = " inside the bins" if w.flow == "drop" else ""
            console.print(f"classes with no jets{where} (weight 0): {', '.join(empty)}")
        _warn_if_incomplete(console, store)
        for p in w.extra.get("plots", []):
            console.print(f"plot: {p}")

    @app.command()
    def stats(
        store: Path = typer.Argument(..., metavar="STORE", help="Store folder."),
        clip: float = typer.Option(5.0, help="Clip standardised values to ±CLIP."),  # = stats.DEFAULT_CLIP, not imported here (numba at startup)
    ) -> None:
        """Standardisation of every node and jet feature, saved in STORE/stats/stats.json.

        Median as centre, 16th/84th percentiles for the scale, clip bounds; exact, over real nodes only."""
        from rich.table import Table

        from jetlib._numba import skip_numba_extensions
        from jetlib.cli import results_console
        from jetlib.errors import ConfigError, StoreError
        from jetlib.stats import compute_stats

        skip_numba_extensions()  # this process is jetlib's own
        console = results_console()
        _warn_if_written(console, store)
        try:
            st = compute_stats(store, clip=clip, progress=True)
        except (ConfigError, StoreError, OSError) as err:  # OSError: a store we may not write
            _fail(console, err)
        _warn_if_incomplete(console, store)
        t = Table(title=f"standardisation of {st.jets:,} jets → {store}/stats/stats.json")
        for c in ("array", "feature", "values", "p16", "median", "p84", "scale"):
            t.add_column(c, justify="left" if c in ("array", "feature") else "right", no_wrap=True)
        for name, fs in st.arrays.items():
            for i, f in enumerate(fs.features):
                t.add_row(name if i == 0 else "", f, f"{fs.extra['count'][i]:,}", f"{fs.extra['p16'][i]:.4g}",
                          f"{fs.center[i]:.4g}", f"{fs.extra['p84'][i]:.4g}", f"{fs.scale[i]:.4g}")  # fmt: skip
        console.print(t)
