"""``jetlib generate``."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def generate(
        events: int = typer.Option(20000, help="Total number of events."),
        process: str = typer.Option("ttbar,qcd,ztautau,zmumu", help="Comma-separated: ttbar (lepton+jets 45%, dileptonic 10%: e-mu in half, all-hadronic), qcd (multijet, b/c/light/gluon), ztautau (hadronic and leptonic taus), zmumu."),
        files: int = typer.Option(1, help="Number of ROOT files (events split evenly)."),
        out: Path = typer.Option(Path("data"), "--out", "-o", help="Output folder."),
        seed: int = typer.Option(1, min=0, help="Random seed: the same seed gives the same events. Also the run number, so samples of different seeds can be skimmed together."),
    ) -> None:
        """Generate synthetic MiniAOD-like events (ROOT TTrees) with every truth class."""
        import time

        from rich.console import Console
        from rich.markup import escape

        from jetlib.cli import counted
        from jetlib.generate import generate as run

        console = Console(stderr=True, soft_wrap=True, emoji=False)  # long paths stay on one line (grep-able)
        t0 = time.perf_counter()
        try:
            paths = run(out, events=events, processes=[p.strip() for p in process.split(",") if p.strip()], files=files, seed=seed)
        except (ValueError, OSError) as err:  # OSError: an --out that cannot be written, a full disk
            console.print(f"[red]error:[/] {escape(str(err))}")
            raise typer.Exit(2) from None
        dt = time.perf_counter() - t0
        console.print(f"wrote {events:,} events in {counted(len(paths), 'file')} to {out}/ ({events / dt:,.0f} events/s)")
        written = {p.name for p in paths}
        stale = sorted(p for p in out.glob("jetlib_gen_*.root") if p.name not in written)
        if stale:  # a later `ls data/*.root > filelist.txt` would list them with the new files
            console.print(f"[yellow]note:[/] {out}/ also holds {len(stale)} file(s) of an earlier `jetlib generate` "
                          f"({escape(stale[0].name)}{', ...' if len(stale) > 1 else ''}), not written now: remove them, "
                          "or generate into an empty --out")  # fmt: skip
