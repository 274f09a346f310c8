"""``jetlib skim``."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def skim(
        inputs: list[str] = typer.Argument(..., metavar="INPUTS", help="File lists (text: one ROOT file path, glob or root:// URL a line; # comments), or ROOT files, globs or root:// URLs given directly, or both."),
        out: Path = typer.Option(Path("store"), "--out", "-o", help="Store folder (created, or resumed if it exists)."),
        schema: str = typer.Option("miniaod", help="Input schema: miniaod, nanoaod, or a YAML path."),
        config: str = typer.Option("default", help="Skim config: default, or a YAML path: a copy of schemas/skim/default.yaml, whose jets: cuts (min_pt, max_abs_eta, jet_id_mask, an expression such as 'nConstituents > 1'), event_selection preset (zmumu, dy_mutau, dijet, ttbar_emu), blocks (lengths, features, padding: zero or wrap) and nan_policy you edit."),
        labels: str = typer.Option(None, help="Label scheme (default: the config's): default, merged, or a YAML path."),
        fmt: str = typer.Option("hdf5", "--format", help="Shard format: hdf5 or parquet."),
        compression: str = typer.Option("lz4", help="lz4 (light, the default), zstd, gzip, or none: uncompressed HDF5 lets jetlib.Reader memory-map shards (zero copy)."),
        entries_per_task: int = typer.Option(5000, help="Events per task and shard (bounds memory per worker); a task ends at the input's cluster boundary within a quarter of it."),
        workers: int = typer.Option(None, help="LocalCluster worker processes (default: one per core, as with 0)."),
        scheduler: str = typer.Option(None, help="Use an existing Dask scheduler, e.g. tcp://HOST:8786."),
        dashboard_address: str = typer.Option("127.0.0.1:8787", help="Dashboard bind address ('' for none)."),
        overwrite: bool = typer.Option(False, help="Replace a store made with another configuration."),
        fail_fast: bool = typer.Option(False, help="Stop at the first failed task."),
        skip_bad_files: bool = typer.Option(False, help="Record damaged inputs as skipped; exit 0 if nothing else failed (a branch missing for --schema still fails)."),
        task_timeout: float = typer.Option(900.0, help="Seconds allowed to open a file or read a task's entries; past it the task fails (0: no limit)."),
        progress: bool = typer.Option(True, help="Show a progress bar."),
    ) -> None:
        """Skim MiniAOD-like ROOT files into a store of padded, labelled jets.

        INPUTS: a file list (filelist.txt) or several, or ROOT files given directly (data/x.root, 'data/*.root', root://...).

        Re-running the same command resumes: only unfinished tasks run.
        """
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        from jetlib.errors import ConfigError, StoreError

        console = Console(stderr=True, soft_wrap=True, emoji=False)  # long paths stay on one line (grep-able)
        # a batch system ends a job with SIGTERM (pre-emption, a time limit): stop as on Ctrl-C,
        # saying how far the skim got and closing the workers, rather than die mid-line
        terminated = []

        def on_sigterm(signum, frame):
            terminated.append(signum)
            # sent to the whole job, it ends the workers too: their loss is no news
            logging.getLogger("distributed").setLevel(logging.CRITICAL)
            raise KeyboardInterrupt

        try:
            before, handled = signal.signal(signal.SIGTERM, on_sigterm), True
        except ValueError:  # not the main thread (jetlib's CLI called from a thread): as before
            before, handled = None, False
        try:
            from jetlib.skim.run import skim as run_skim  # (Dask's import: the first ~0.5 s of a skim)

            s = run_skim(
                inputs[0] if len(inputs) == 1 else inputs, out, schema=schema, config=config, labels=labels, fmt=fmt, compression=compression,
                entries_per_task=entries_per_task, scheduler=scheduler, workers=workers,
                dashboard_address=dashboard_address or None, overwrite=overwrite, fail_fast=fail_fast,
                skip_bad_files=skip_bad_files, task_timeout=task_timeout or None, progress=progress, console=console,
            )  # fmt: skip
        except (ConfigError, StoreError, ValueError, OSError) as err:  # OSError: e.g. the disk filled up
            hint = "; fix that (free space, permissions), then re-run the same command to resume" if isinstance(err, OSError) else ""
            console.print(f"[red]error:[/] {escape(str(err))}{hint}")
            raise typer.Exit(2) from None
        except KeyboardInterrupt as err:  # the skim printed how far it got, once it had a store and tasks
            if not getattr(err, "reported", False):  # before that: reading the file list, opening the store
                console.print("[red]interrupted[/]; re-run the same command to resume")
            raise typer.Exit(143 if terminated else 130) from None  # (128 + the signal, as a shell reports it)
        finally:
            if handled and before is not None:  # (None: a handler set outside Python, left to it)
                signal.signal(signal.SIGTERM, before)
        t = Table(title=escape(f"skim → {s.store}"), show_header=True)
        for c in ("done", "failed", "skipped", "already done", "events", "jets", "jets/s", "time"):
            t.add_column(c, justify="right")
        rate = s.jets / s.seconds if s.seconds else 0.0
        t.add_row(str(s.done), str(s.failed), str(s.skipped), str(s.already_done), f"{s.events:,}", f"{s.jets:,}",
                  f"{rate:,.0f}", f"{s.seconds:.1f} s")  # fmt: skip
        console.print(t)
        if s.time_split:
            tot = sum(s.time_split.values()) or 1.0
            split = ", ".join(f"{k} {100 * v / tot:.0f}%" for k, v in s.time_split.items())
            # the table's jets/s is over the wall time, cluster start and JIT loading included
            console.print(f"worker time: {split} ({s.jets / tot:,.0f} jets/s per worker while working); "
                          f"peak worker RSS {s.peak_rss_mb:.0f} MB")  # fmt: skip
        from jetlib.cli import counted
        from jetlib.store import Store
        from jetlib.store.layout import NO_FLAVOUR
        from jetlib.store.manifest import nonfinite_text, nonfinite_totals

        if (bad := nonfinite_totals(s.records))[0]:
            console.print(f"[yellow]note:[/] {escape(nonfinite_text(*bad))}")
        if s.jets and (empty := s.without_jets):  # (no jets at all: the warning below)
            first, events = next(iter(empty.items()))
            why = "an empty tree" if events == 0 else f"{events:,} events, no jet passed the selection"
            more = f" and {len(empty) - 1:,} more" if len(empty) > 1 else ""
            console.print(f"[yellow]note:[/] {counted(len(empty), 'input file')} gave no jets: {escape(first)} ({why}){more}")
        for branch, near in s.absent_optional.items():  # a misspelt optional mapping is not an error, nor silent
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            console.print(f"[yellow]note:[/] no input file of this run has the optional branch {escape(branch)}{escape(hint)}: "
                          f"it reads as missing ({NO_FLAVOUR} for a jet flavour, 0 for a node field); if the schema "
                          "misspells it, fix it and re-skim with --overwrite")  # fmt: skip
        groups = _same_reason(s.failures)
        for f, n in groups[:20]:
            line = f"{f['task']}: {f.get('error')}: {f.get('reason')}"
            same = f" (the same in {n - 1} more task(s))" if n > 1 else ""
            console.print(f"[yellow]{f['status']}[/] {escape(line)}{same}")  # paths and reasons may hold [brackets]
        if len(groups) > 20:
            console.print(f"... and {sum(n for _, n in groups[20:])} more: see {escape(str(s.store))}/manifest.jsonl")
        if s.done and s.events and not s.jets:
            console.print(f"[yellow]warning:[/] no jet of the {s.events:,} events read passed the selection of skim "
                          f"config {escape(repr(config))} (jets: min pT, |eta|, jet ID, cut; events: preset); check it "
                          "against the inputs (units GeV; jetId a bit mask: a 0/1 branch needs jet_id_mask: 1): "
                          "`jetlib weights`, `jetlib stats` and the Reader need jets")  # fmt: skip
        partial = Store(s.store).partial_files()
        if partial:  # counted as skipped or failed above, and yet some of their events are in the store
            console.print(f"[yellow]warning:[/] {len(partial)} input file(s) are in the store only in part (entry ranges "
                          f"done before the rest failed or was skipped), e.g. {escape(partial[0])}; `jetlib verify "
                          f"{escape(str(s.store))}` names the entries missing")  # fmt: skip
        if s.nothing_done and not s.failed:
            console.print("[red]nothing skimmed[/]: every input was skipped (the reasons are above); when they "
                          "share one reason, check --schema (its tree and branches) and the file list")  # fmt: skip
            raise typer.Exit(1)
        if not s.ok:
            console.print(f"[red]some tasks failed[/]: {_what_next(s)}")
            raise typer.Exit(1)


def _same_reason(failures: list[dict]) -> list[tuple[dict, int]]:
    """The failures grouped by status, error and reason (its file's name aside), each as its
    first record and how many there are, most shared first: a schema that fits no input
    gives 500 files the same message, which is then shown once, at the top."""
    groups: dict[tuple, list] = {}
    for f in failures:
        reason = str(f.get("reason"))
        if f.get("file"):
            reason = reason.replace(str(f["file"]), "\0")
        if "start" in f:  # a damaged file's entry ranges fail alike
            reason = reason.replace(f"entries {f['start']}-{f['stop']}", "entries \0")
        key = (f["status"], f.get("error"), reason)
        groups.setdefault(key, [f, 0])[1] += 1
    return sorted(((f, n) for f, n in groups.values()), key=lambda g: -g[1])  # (stable: ties keep their order)


def _what_next(s) -> str:
    """The last line of a skim with failures: a schema that does not fit the files is fixed
    by the command line, not by the files, and a store it left empty is replaced with it.
    Once some input is done with the schema, a file that lacks a branch is that file's fault."""
    from jetlib.skim.task import schema_fault

    failed = [f for f in s.failures if f["status"] == "failed"]
    nothing_done = s.done == 0 and s.already_done == 0
    if nothing_done and (what := schema_fault(failed, nothing_done=True)):
        again = ", and add --overwrite (this store holds no jets yet)" if s.jets == 0 else ""
        return f"the input schema does not fit the files ({what}); fix --schema as the message above says{again}."
    return (f"fix those inputs and re-run the same command to resume; {GIVE_UP}.")


#: what to do about an input that cannot be fixed (the skim's last line, jetlib verify)
GIVE_UP = ("or give them up: a run with --skip-bad-files records as skipped damaged inputs, inputs that lack a "
           "branch other inputs have, and failed inputs that hold no jets and are no longer in its list; "
           "--overwrite starts the store anew")
