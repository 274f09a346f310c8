"""``jetlib demo``: the main job on an embedded default sample."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        out: Path = typer.Option(Path("jetlib-demo"), "--out", "-o", help="Folder for the sample and the store."),
        events: int = typer.Option(20000, help="Events to generate."),
        workers: int = typer.Option(None, help="Dask workers (default: one per core)."),
    ) -> None:
        """Generate a sample, skim it into a store and summarise the store."""
        from rich.console import Console

        from jetlib.generate import generate
        from jetlib.skim.run import skim
        from jetlib.store.inspect import describe

        console = Console(stderr=True)
        files = generate(out / "data", events=events, files=4, seed=1)
        console.print(f"1/3 generated {events:,} events in {len(files)} files under {out / 'data'}")
        s = skim([str(f) for f in files], out / "store", workers=workers, overwrite=True, console=console)
        console.print(f"2/3 skimmed {s.jets:,} jets in {s.seconds:.1f} s ({s.jets / max(s.seconds, 1e-9):,.0f} jets/s) into {out / 'store'}")
        d = describe(out / "store")
        top = ", ".join(f"{k} {v:,}" for k, v in sorted(d["classes"].items(), key=lambda kv: -kv[1]))
        console.print(f"3/3 store: {d['jets']:,} jets in {d['shards']} shards ({d['bytes'] / 1e6:,.0f} MB); {top}")
        console.print(f"next: jetlib inspect {out / 'store'}")
        if not s.ok:
            raise typer.Exit(1)
