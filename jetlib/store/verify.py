"""``jetlib verify``: check a store's invariants, and say which one fails and where.

1. Accounting: every task of the skim's plan (``tasks.json``) has a manifest record, done,
   failed or skipped; each file's entry ranges tile ``[0, entries)`` with no gap or overlap.
2. Events: a done range read ``stop - start`` events; with ``inputs=True`` each input file is
   opened again and its tree must still have the entries, and the file the UUID, that the
   manifest recorded.
3. Shards: every shard of a done task exists, has the recorded size and number of jets, and
   (unless ``quick``) the recorded xxh3 checksum; no shard lies in ``shards/`` outside the
   manifest.
4. Derived data: weights and stats made from another state of the store are reported as stale.

Failed tasks are accounted for but leave the store incomplete: they fail the check unless
``allow_failed``. Skipped inputs (``--skip-bad-files``) do not.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from jetlib.errors import StoreError
from jetlib.store.manifest import done_uuids, uuid_clashes
from jetlib.store.shards import checksum
from jetlib.store.store import Store

__all__ = ["verify", "VerifyReport", "Problem", "DerivedFile", "derived_files", "ranges_problem"]

_REDO = "delete it and re-run the same `jetlib skim` command to redo its task"


@dataclass(frozen=True)
class Problem:
    check: str  # accounting | events | shard | orphan | inputs | derived
    where: str  # a task key, file or shard path
    message: str


@dataclass
class VerifyReport:
    store: Path
    tasks: dict[str, int] = field(default_factory=dict)  # status -> count (+ "missing")
    files: int = 0
    events: int = 0
    jets: int = 0
    shards: int = 0  # in the manifest
    readable: int = 0  # of those, on disk with the recorded size and rows (jets and bytes count these)
    bytes: int = 0
    checked_checksums: bool = False
    checked_inputs: int = 0
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)  # the records of failed tasks

    @property
    def ok(self) -> bool:
        return not self.errors


def _shard_rows(path: Path) -> int:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    import h5py

    with h5py.File(path, "r") as f:
        return int(f["label"].shape[0])


def ranges_problem(ranges: list[tuple[int, int]], entries: int) -> str | None:
    """None if the task ``ranges`` of an input file tile its ``[0, entries)`` exactly, else
    what is wrong. The rule a store keeps for every input: ``jetlib verify`` checks it, and
    the skim checks it before it trusts a file's done tasks or plans the rest."""
    pos = 0
    for start, stop in sorted(ranges):
        if start > pos:
            return f"entries {pos}-{start} are in no task"
        if start < pos:
            return f"entries {start}-{min(pos, stop)} are in two tasks"
        pos = stop
    if pos != entries:
        return f"entries {pos}-{entries} are in no task" if pos < entries else f"tasks run past the {entries} entries"
    return None


def verify(
    store: str | Path,
    *,
    quick: bool = False,
    inputs: bool = False,
    allow_failed: bool = False,
    progress: bool = False,
) -> VerifyReport:
    """Check the store at ``store``; see the module docstring for what is checked.

    Args:
        quick: check shard sizes and row counts but not checksums (no full read).
        inputs: open every input file again and compare its entries with the manifest.
        allow_failed: do not count failed tasks as errors.
        progress: show a progress bar while checksumming.

    Raises:
        StoreError: ``store`` is not a jetlib store (or of an unknown format version), or a
            skim is writing it (its tasks would read as unfinished, its new shards as orphans).
    """
    from jetlib.skim.run import TASKS_NAME, _planned, load_task_ids
    from jetlib.store.lock import writer

    st = Store(store)
    if who := writer(st.path):
        raise StoreError(f"{st.path}: {who} is writing this store; verify it when that run has ended")
    rep = VerifyReport(st.path, checked_checksums=not quick)
    err = lambda check, where, msg: rep.errors.append(Problem(check, str(where), msg))  # noqa: E731
    warn = lambda check, where, msg: rep.warnings.append(Problem(check, str(where), msg))  # noqa: E731
    latest = st.latest()
    planned = load_task_ids(st.path)
    if not (st.path / TASKS_NAME).exists():
        warn("accounting", st.path / TASKS_NAME, "no task plan (a store from an older jetlib, or the file was lost): only "
             "recorded tasks are checked; the next run of the same `jetlib skim` command rebuilds it from the manifest")  # fmt: skip
    for n in st.manifest.unreadable():
        warn("accounting", f"{st.manifest.path}:{n}", "not a complete record (a skim was killed while writing it): "
             "ignored; a task it was about is checked as unfinished below")  # fmt: skip

    # 1. accounting ----------------------------------------------------------------------------
    counts: dict[str, int] = defaultdict(int)
    unopened = st.unopened_files()
    for key in planned:
        rec = latest.get(key)
        if rec is None:
            counts["missing"] += 1
            if (f := unopened.get(key.rsplit(":", 1)[0])) is not None:  # re-running cannot read it
                err("accounting", key, f"not read: the file was {f['status']} when a later run opened it ({f.get('error')}: "
                    f"{f.get('reason')}), so the store holds only part of it; restore the file and re-run the same "
                    "`jetlib skim` command, or re-skim with --overwrite without it")  # fmt: skip
            elif key.endswith(":file"):  # an input a --fail-fast run stopped before opening
                err("accounting", key, "listed but never opened (a --fail-fast run stopped first): re-run the same "
                    "`jetlib skim` command")  # fmt: skip
            else:
                err("accounting", key, "planned but never finished (interrupted run?): re-run the same `jetlib skim` command")
            continue
        counts[rec["status"]] += 1
        if rec["status"] == "failed":
            rep.failed.append(rec)
            if not allow_failed:
                err("accounting", key, f"failed: {rec.get('error')}: {rec.get('reason')}")
    rep.tasks = dict(counts)
    for clash in uuid_clashes(latest):  # events of one file twice, or of two files under one name
        err("inputs", st.path, clash)
    by_file: dict[str, list[dict]] = defaultdict(list)
    file_recs: dict[str, dict] = {}
    for key, rec in latest.items():
        if rec.get("kind") == "file":
            file_recs[rec["file"]] = rec
        else:
            by_file[rec["file"]].append(rec)
    # the ranges planned with no record yet (named above as never finished) tile the file too
    waiting = _planned({k: n for k, n in planned.items() if k not in latest})
    rep.files = len(set(by_file) | set(file_recs) | set(waiting) | {k.removesuffix(":file") for k in planned if k.endswith(":file")})
    for f, recs in by_file.items():
        entries = {r["entries"] for r in recs}
        if len(entries) != 1:
            err("events", f, f"tasks disagree on the file's entries: {sorted(entries)}")
            continue
        (n,) = entries
        # (a store holds one --entries-per-task: it is part of the configuration hash)
        problem = ranges_problem([(r["start"], r["stop"]) for r in recs if r["stop"] > r["start"]] + waiting.get(f, []), n)
        if problem:
            err("accounting", f, problem)
        for r in recs:
            if r["status"] == "done" and r.get("events") != r["stop"] - r["start"]:
                err("events", r["task"], f"read {r.get('events')} events, the range has {r['stop'] - r['start']}")
            if r["status"] == "done":
                rep.events += r.get("events", 0)

    # 2. inputs -------------------------------------------------------------------------------
    if inputs:
        from jetlib.skim.task import count_entries

        tree = st.meta["input_schema"]["raw"].get("tree", "Events")
        uuids = done_uuids(latest)
        for f, recs in sorted(by_file.items()):
            c = count_entries(f, tree)
            rep.checked_inputs += 1
            if c["status"] != "ok":
                warn("inputs", f, f"cannot open it now ({c['error']}: {c['reason']}); entries not re-checked")
            elif c["entries"] != recs[0]["entries"]:
                err("inputs", f, f"the tree has {c['entries']} entries, the manifest {recs[0]['entries']}: the file changed")
            elif (old := uuids.get(f)) and old != c["file_uuid"]:
                err("inputs", f, f"the file changed since it was skimmed (UUID {old}, now {c['file_uuid']}): "
                    "restore it, or re-skim with --overwrite")  # fmt: skip

    # 3. shards -------------------------------------------------------------------------------
    shards = st.shards()
    todo = []
    for s in shards:
        if not s.path.is_file():
            err("shard", s.path, f"missing (task {s.task}); re-run the same `jetlib skim` command: it redoes tasks whose shard is gone")
            continue
        size = s.path.stat().st_size
        if size != s.bytes:
            err("shard", s.path, f"{size} bytes on disk, {s.bytes} in the manifest: truncated or replaced; {_REDO}")
            continue
        try:
            rows = _shard_rows(s.path)
        except Exception as e:  # any unreadable file is a finding, not a crash
            err("shard", s.path, f"unreadable ({type(e).__name__}: {e}); {_REDO}")
            continue
        if rows != s.jets:
            err("shard", s.path, f"{rows} jets on disk, {s.jets} in the manifest")
        todo.append(s)
        rep.jets += s.jets
        rep.bytes += s.bytes
    rep.shards = len(shards)
    rep.readable = len(todo)
    if not quick:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        # on stderr: stdout carries the report only (`jetlib verify store > report.txt`)
        with Progress(TextColumn("[bold]checksums"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                      disable=not progress, transient=True, console=Console(stderr=True)) as bar:  # fmt: skip
            pid = bar.add_task("sum", total=sum(s.bytes for s in todo))
            for s in todo:
                if checksum(s.path) != s.checksum:
                    err("shard", s.path, f"checksum mismatch: the file was modified or corrupted; {_REDO}")
                bar.advance(pid, s.bytes)
    known = {s.name for s in shards}
    for p in sorted((st.path / "shards").iterdir()) if (st.path / "shards").is_dir() else []:
        if p.name.startswith("."):
            warn("orphan", p, "temporary file of an interrupted write; the next skim run removes it")
        elif p.name not in known:
            err("orphan", p, "shard on disk that no done task records (left by an interrupted run, or copied in): delete it; "
                "re-running the skim does not remove it")  # fmt: skip

    # 4. derived data -----------------------------------------------------------------------
    for f in derived_files(st, sum(s.jets for s in shards)):
        if f.state == "unreadable":
            warn("derived", f.path, "unreadable JSON")
        elif f.state == "stale":
            warn("derived", f.path, f"{f.kind} made from another state of the store (the Reader and `jetlib export` "
                 f"refuse them): re-run `{f.remake}`")  # fmt: skip
    return rep


@dataclass(frozen=True)
class DerivedFile:
    kind: str  # weights | stats
    path: Path
    state: str  # current | stale | unreadable
    remake: str  # the command that makes it again


def derived_files(st: Store, n_jets: int | None = None) -> list[DerivedFile]:
    """The weights and stats files of a store, each current (made from the store as it is:
    its jets and configuration) or stale."""
    n_jets = st.n_jets if n_jets is None else n_jets
    out = []
    for kind, folder in (("weights", st.path / "weights"), ("stats", st.path / "stats")):
        for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                d = json.loads(p.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                d = None
            if not isinstance(d, dict):
                out.append(DerivedFile(kind, p, "unreadable", f"jetlib {kind} {st.path}"))
                continue
            current = st.made_from_this_state(d.get("jets"), d.get("config_hash"), n_jets)
            out.append(DerivedFile(kind, p, "current" if current else "stale", _remake(kind, d, st.path)))
    return out


def _remake(kind: str, d: dict, store: Path) -> str:
    """The command that makes a weights or stats file ``d`` again, with its options."""
    from jetlib.stats import Stats
    from jetlib.weights import SamplingWeights

    try:
        return (Stats if kind == "stats" else SamplingWeights).from_json(d).command(store)
    except (KeyError, TypeError, ValueError, AttributeError):  # an older version's file: options unknown
        return f"jetlib {kind} {store} ... (with its " + ("--bins, --method and --name)" if kind == "weights" else "--clip)")


def raise_if_bad(report: VerifyReport) -> None:
    """Raise :class:`StoreError` listing the first problems of a failed report."""
    if report.ok:
        return
    lines = [f"{p.check}: {p.where}: {p.message}" for p in report.errors[:10]]
    more = f"\n... and {len(report.errors) - 10} more" if len(report.errors) > 10 else ""
    raise StoreError(f"{report.store}: verify failed\n" + "\n".join(lines) + more)
