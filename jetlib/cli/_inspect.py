"""``jetlib inspect``."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def inspect(store: Path = typer.Argument(..., metavar="STORE", help="Store folder.")) -> None:
        """Show a store: blocks and shapes, jets per class, size, manifest status."""
        from rich.markup import escape
        from rich.table import Table

        from jetlib.cli import counted, results_console, shard_fix
        from jetlib.errors import ShardError, StoreError
        from jetlib.store.inspect import HADRON_FLAVOURS, describe, schema_gaps
        from jetlib.store.layout import NO_FLAVOUR
        from jetlib.store.manifest import nonfinite_text

        console = results_console()
        try:
            d = describe(store)
        except StoreError as err:
            console.print(f"[red]error:[/] {escape(str(err))}")
            raise typer.Exit(2) from None
        except ShardError as err:  # a store, with a shard missing or damaged
            console.print(f"[red]error:[/] {escape(str(err))}{escape(shard_fix(err))}")
            raise typer.Exit(1) from None
        console.print(
            f"[bold]{store}[/]: {d['jets']:,} jets in {counted(d['shards'], d['format'] + ' shard')} "
            f"({d['bytes'] / 1e6:,.1f} MB, compression {d['compression']}); "
            f"tasks: {', '.join(f'{n} {k}' for k, n in d['status'].items()) or 'none yet'}; "
            f"schema {d['schema']}, config hash {d['config_hash']}"
        )
        console.print(f"selection: {escape(d['selection'])}")
        if d["writer"]:
            console.print(f"[yellow]warning:[/] {escape(d['writer'])} is still writing this store: these figures cover "
                          "the tasks done so far, and its unfinished tasks are still running")  # fmt: skip
        if d["failures"]:  # the reasons, not only the count: inspect is where people look first
            r = d["failures"][0]
            console.print(f"[yellow]failed[/]: {len(d['failures'])} task(s), e.g. {escape(r['task'])}: {escape(str(r.get('error')))}: "
                          f"{escape(str(r.get('reason')))}; `jetlib verify {escape(str(store))}` lists them")  # fmt: skip
        if d["nonfinite"][0]:
            console.print(f"[yellow]note:[/] {escape(nonfinite_text(*d['nonfinite']))}")
        t = Table(title="arrays")
        for c in ("name", "shape", "dtype", "content"):
            t.add_column(c)
        for name, (shape, dtype, content) in d["arrays"].items():
            t.add_row(name, shape, dtype, content)
        console.print(t)
        c = Table(title=f"jets per class ({d['label_scheme']})")
        c.add_column("class")
        c.add_column("jets", justify="right")
        c.add_column("fraction", justify="right")
        hf = d["hadron_flavour"]
        none = d["no_hadron_flavour"]
        if hf and d["jets"] and none == d["jets"]:  # a column of zeros would say nothing
            hf = None
            console.print(f"[yellow]note:[/] hadron_flavour is {NO_FLAVOUR} for every jet: no input file had the "
                          "schema's hadronFlavour branch (check its name in the input schema)")  # fmt: skip
        if hf:  # the input's own flavour beside the GEN label: a check of the schema's GEN mapping
            c.caption = ("hadronFlavour: share of each class's jets by the input's Jet_hadronFlavour (in CMS files the "
                         "ghost association of B and C hadrons), kept for comparison, not used for the label")  # fmt: skip
            if none:
                c.caption += f"; {none:,} jets from files without that branch ({NO_FLAVOUR}) are in no column"
            for f in HADRON_FLAVOURS:
                c.add_column(f"hadronFlavour {f}" if f else "other", justify="right")
        for k, v in d["classes"].items():
            shares = [f"{n / v:.2f}" if v else "" for n in hf[k]] if hf else []
            c.add_row(k, f"{v:,}", f"{v / max(d['jets'], 1):.3f}", *shares)
        console.print(c)
        if d["derived"]:
            for f in d["derived"]:
                what = {"current": "[green]current[/]", "stale": f"[yellow]stale[/]: re-run `{escape(f.remake)}`",
                        "unreadable": "[red]unreadable JSON[/]"}[f.state]  # fmt: skip
                console.print(f"{f.kind}: {escape(f.path.relative_to(d['path']).as_posix())} ({what})")
        elif d["jets"] == 0:
            console.print("no jets yet: `jetlib weights`, `jetlib stats` and the Reader need jets")
        else:
            console.print(f"no sampling weights or standardisation yet: `jetlib weights {escape(str(store))}`, "
                          f"`jetlib stats {escape(str(store))}`")  # fmt: skip
        for how, what in schema_gaps(d["dropped"], d["stand_ins"]):
            console.print(f"not fed by the input schema ({how}): {escape(what)}")
