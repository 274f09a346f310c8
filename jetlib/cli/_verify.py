"""``jetlib verify``."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def verify(
        store: Path = typer.Argument(..., metavar="STORE", help="Store folder."),
        quick: bool = typer.Option(False, "--quick", help="Sizes and row counts only; skip the checksums (no full read)."),
        inputs: bool = typer.Option(False, "--inputs", help="Also open every input file and compare its entries and UUID with the manifest."),
        allow_failed: bool = typer.Option(False, "--allow-failed", help="Accept failed tasks (an incomplete store)."),
        progress: bool = typer.Option(True, help="Show a progress bar while checksumming."),
    ) -> None:
        """Check a store: every input accounted for, events, jets, checksums, no orphan shards.

        Exits 0 when every check passes, 1 when one fails (each problem named), 2 when the
        folder is not a store.
        """
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        from jetlib.cli import counted, results_console
        from jetlib.errors import StoreError
        from jetlib.store.verify import verify as run_verify

        # the report goes to stdout (`jetlib verify store > report.txt`), a usage error to stderr;
        # long paths stay on one line (grep-able)
        console = results_console()
        try:
            r = run_verify(store, quick=quick, inputs=inputs, allow_failed=allow_failed, progress=progress)
        except StoreError as err:
            Console(stderr=True, soft_wrap=True, emoji=False).print(f"[red]error:[/] {escape(str(err))}")
            raise typer.Exit(2) from None
        t = Table(title=escape(f"verify {r.store}"), show_header=False)
        t.add_column(style="bold")
        t.add_column()
        tasks = ", ".join(f"{r.tasks.get(k, 0):,} {name}" for k, name in
                          (("done", "done"), ("failed", "failed"), ("skipped", "skipped"), ("missing", "unfinished")))  # fmt: skip
        t.add_row("input files", f"{r.files:,}" + (f" ({r.checked_inputs:,} re-opened)" if r.checked_inputs else ""))
        t.add_row("tasks", f"{sum(r.tasks.values()):,}: {tasks}")
        t.add_row("events read", f"{r.events:,}")
        where = counted(r.shards, "shard") if r.readable == r.shards else f"{r.readable:,} of {counted(r.shards, 'shard')} (the others below)"
        t.add_row("jets", f"{r.jets:,} in {where}, {r.bytes / 1e6:,.1f} MB")
        t.add_row("checksums", "checked" if r.checked_checksums else "not checked (--quick)")
        console.print(t)
        for p in r.warnings:
            console.print(f"[yellow]warning[/] {p.check}: {escape(p.where)}: {escape(p.message)}")
        for p in r.errors[:50]:
            console.print(f"[red]FAIL[/] {p.check}: {escape(p.where)}: {escape(p.message)}")
        if len(r.errors) > 50:
            console.print(f"... and {len(r.errors) - 50} more")
        if r.ok:
            failed = r.tasks.get("failed", 0)
            accepted = f"; {failed:,} failed task(s) accepted (--allow-failed)" if failed else ""
            warned = f" ({counted(len(r.warnings), 'warning')} above)" if r.warnings else ""
            console.print(f"[green]OK[/]: every check passed{warned}{accepted}")
        else:
            console.print(f"[red]{len(r.errors)} problem(s)[/]")
            failed = [] if allow_failed else r.failed  # (each one of the problems above)
            from jetlib.cli._skim import GIVE_UP
            from jetlib.skim.task import schema_fault

            if failed and not r.tasks.get("done") and (what := schema_fault(failed, nothing_done=True)):
                console.print(f"failed tasks: the input schema does not fit the inputs ({what}; the messages above say "
                              "more); re-run `jetlib skim` with the right --schema, and --overwrite if the store holds "
                              "no jets yet")  # fmt: skip
            elif failed:
                console.print("failed tasks: fix the input named and re-run the same `jetlib skim` command (it redoes "
                              f"only what is not done), {GIVE_UP}; `jetlib verify --allow-failed` accepts failed tasks "
                              "as they are")  # fmt: skip
            raise typer.Exit(1)
