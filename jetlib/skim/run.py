"""Run a skim on Dask distributed: plan tasks, submit them, commit results to the manifest.

The client (this process), not the workers, appends to the manifest, once per task key, so
a task that runs twice is recorded once. Re-running the same command does only the tasks
not yet ``done``; a changed configuration refuses to mix into an existing store.

Before anything is submitted, the plan (every task key and its number, which names its
shard) is written to ``tasks.json``: a re-run numbers its tasks the same way whatever finished
before, so a resumed store equals an uninterrupted one shard for shard, and ``jetlib verify``
knows every task that should have a record.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import itertools
import json
import logging
import math
import os
import platform
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape

from jetlib._version import __version__
from jetlib.config.inputs import load_input_schema
from jetlib.config.skim import load_label_scheme, load_skim_config
from jetlib.errors import ConfigError, StoreError, error_name
from jetlib.skim.plan import SkimPlan, make_plan
from jetlib.skim.process import observers, shard_layout
from jetlib.skim.task import CONFIG_ERRORS, DEFAULT_TASK_TIMEOUT_S, Task, count_entries, names_a_near_tree, run_task, schema_fault
from jetlib.source.filelist import is_remote, is_root_file, parse_inputs
from jetlib.source.open import header_uuid
from jetlib.store.inspect import schema_gaps
from jetlib.store.lock import LOCK_NAME, writer_lock
from jetlib.store.manifest import MANIFEST_NAME, Manifest, done_uuids, uuid_clashes
from jetlib.store.shards import COMPRESSIONS, FORMATS, parquet_clashes, publish_shard
from jetlib.store.store import FORMAT_VERSION, META_NAME, TASKS_NAME, write_json, write_meta
from jetlib.store.verify import ranges_problem

__all__ = ["skim", "SkimSummary", "build_meta", "DEFAULT_ENTRIES_PER_TASK", "TASKS_NAME", "load_task_ids"]

DEFAULT_ENTRIES_PER_TASK = 5000


def load_task_ids(store: Path) -> dict[str, int]:
    """Task key -> number, from ``tasks.json`` and (for tasks it lacks) the manifest."""
    ids: dict[str, int] = {}
    path = store / TASKS_NAME
    if path.exists():
        try:
            ids.update(json.loads(path.read_text())["tasks"])
        except (json.JSONDecodeError, KeyError) as err:
            raise StoreError(f"{path}: unreadable task plan ({err}); delete it and re-run the same command: the plan is "
                             "rebuilt from the manifest's records") from err  # fmt: skip
    for key, rec in Manifest.of(store).latest().items():
        ids.setdefault(key, rec["task_id"])
    seen: dict[int, str] = {}
    for key, n in ids.items():  # a number names a shard: two tasks under one would write one file
        if n in seen:
            raise StoreError(f"{path}: tasks {seen[n]} and {key} have the same number {n}; delete {TASKS_NAME} and re-run "
                             "the same command: the plan is rebuilt from the manifest's records")  # fmt: skip
        seen[n] = key
    return ids


@dataclass
class SkimSummary:
    store: Path
    done: int = 0
    failed: int = 0
    skipped: int = 0
    already_done: int = 0
    events: int = 0
    jets: int = 0
    seconds: float = 0.0
    time_split: dict[str, float] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    #: the client's time making the local workers' shards durable (fsync), beside their work
    publish_seconds: float = 0.0
    workers: int = 0
    dashboard: str | None = None
    #: the records of the tasks done by this run, for their non-finite counts (nonfinite_totals)
    records: list[dict] = field(default_factory=list)
    #: files this run did tasks of whose done ranges in the store hold no jet -> their events
    without_jets: dict[str, int] = field(default_factory=dict)

    @property
    def absent_optional(self) -> dict[str, list[str]]:
        """Optional branches of the schema that no file of this run's done tasks has -> the
        near names the first task's file has (a misspelt mapping reads as a missing branch)."""
        if not self.records:
            return {}
        absent = [r.get("absent_optional", {}) for r in self.records]
        return {b: near for b, near in absent[0].items() if all(b in a for a in absent)}

    @property
    def nothing_done(self) -> bool:
        """Every input was skipped (--skip-bad-files) and the store has no done task: most
        likely a wrong --schema or file list, not damage."""
        return self.skipped > 0 and self.done + self.already_done == 0

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.nothing_done


#: the version of what the kernels store (a feature's or a label's definition): part of the
#: configuration hash, so that a store of older definitions is not resumed with newer ones.
#: 2: ppar_ratio is p.j/(|p| |j|) (was p.j/|j|^2); e/mu labels need fromHardProcess; a tau
#: label needs a prompt tau. 3: a jet flavour (hadron_flavour, parton_flavour) that the
#: input file lacks is -999 (NO_FLAVOUR), not -1, a d-bar's parton flavour
DEFINITIONS = 3


def build_meta(plan: SkimPlan, *, fmt: str, compression: str, entries_per_task: int) -> dict[str, Any]:
    import awkward
    import numba
    import numpy
    import uproot

    layout = shard_layout(plan)
    cfg = plan.config
    blocks = {
        n: {
            "features": list(b.features), "length": b.length, "dtype": "float32", "layout": "(N, F, L) features first",
            "padding": "wrap" if b.wrap else "zero", "collections": list(b.collections),
            "association": "link" if b.use_link else f"dr<{b.radius}", "min_pt": b.min_pt,
            "sort_by": cfg.blocks[n].sort_by,
        }
        for n, b in plan.blocks.items()
    }  # fmt: skip
    hashed = {
        "skim_config": cfg.raw, "labels": plan.labels.raw, "input_schema": plan.schema.raw,
        "format": fmt, "compression": compression, "entries_per_task": entries_per_task,
        "definitions": DEFINITIONS,
    }  # fmt: skip
    digest = hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "format_version": FORMAT_VERSION,
        "created_by": f"jetlib {__version__}",
        "shards": {"format": fmt, "compression": compression, "entries_per_task": entries_per_task},
        "blocks": blocks,
        "jet_features": list(plan.jet_features),
        "observers": list(observers(plan)),
        "labels": {"scheme": plan.labels.name, "classes": list(plan.labels.classes), "raw": plan.labels.raw},
        "truth": list(cfg.truth),
        "jet_selection": {"min_pt": cfg.jets.min_pt, "max_abs_eta": cfg.jets.max_abs_eta,
                          "jet_id_mask": cfg.jets.jet_id_mask, "expression": cfg.jets.expression},  # (defaults applied)
        "event_selection": {"preset": cfg.event_selection, "cuts": plan.preset} if cfg.event_selection else None,
        "nan_policy": cfg.nan_policy,
        "dropped": plan.dropped,
        "stand_ins": plan.stand_ins,
        "arrays": layout.to_json(),
        "skim_config": cfg.raw,
        "config_hash": digest,
        "definitions": DEFINITIONS,
        "input_schema": {"name": plan.schema.name, "raw": plan.schema.raw},
        "software": {
            "jetlib": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
            "awkward": awkward.__version__, "uproot": uproot.__version__, "numba": numba.__version__,
        },  # fmt: skip
    }


def _the_plan(plan: SkimPlan) -> SkimPlan:
    return plan


def task_ranges(entries: int, entries_per_task: int, clusters: list[int] | None = None) -> list[tuple[int, int]]:
    """The entry ranges of a file's tasks (one empty range for an empty file).

    A task ends at each multiple of ``entries_per_task``, or, where the file has one within a
    quarter task of it, at the nearest cluster boundary (``clusters``: entries where every
    branch read starts a basket): uproot decompresses a basket whole, so a basket across two
    tasks was inflated twice, once by each (the benchmark's files, clusters of 2,000 events
    and tasks of 5,000: 12 baskets per branch instead of 10). Tasks but the last stay within
    0.5-1.5x ``entries_per_task``; the same file and settings always give the same ranges.
    """
    if entries <= 0:
        return [(0, 0)]
    bounds = sorted({c for c in clusters or () if 0 < c < entries})
    reach = entries_per_task // 4
    cuts = [0]
    for target in range(entries_per_task, entries, entries_per_task):
        i = bisect.bisect_left(bounds, target)
        near = [b for b in bounds[max(i - 1, 0) : i + 1] if abs(b - target) <= reach and b > cuts[-1]]
        cuts.append(min(near, key=lambda b: (abs(b - target), b)) if near else target)
    cuts.append(entries)
    return list(zip(cuts[:-1], cuts[1:]))


def _planned(ids: dict[str, int]) -> dict[str, list[tuple[int, int]]]:
    """Each file's entry ranges in the store's task plan (``tasks.json``), sorted. A resumed
    skim keeps a file's ranges as they were planned: ranges planned anew (another version's
    rule) could overlap the done ones and put events in the store twice."""
    plans: dict[str, list[tuple[int, int]]] = {}
    for key in ids:
        path, _, span = key.rpartition(":")
        start, sep, stop = span.partition("-")
        if path and sep and start.isdigit() and stop.isdigit():
            plans.setdefault(path, []).append((int(start), int(stop)))
    return {p: sorted(r) for p, r in plans.items()}


def _file_entries(latest: dict[str, dict]) -> dict[str, int]:
    """Entries of each input file that has range records."""
    return {r["file"]: r["entries"] for r in latest.values() if r.get("kind") == "range"}


def _recorded_plans(latest: dict[str, dict], entries_per_task: int) -> dict[str, list[tuple[int, int]]]:
    """The ranges of the files with records in a store without ``tasks.json`` (from a jetlib
    that wrote none, or the file was lost): each file's recorded ranges, and the entries no
    record covers cut at each multiple of ``entries_per_task``, as a jetlib without a plan
    did. (Planned afresh at the files' clusters, the new ranges overlapped the done ones: a
    store whose tasks.json was deleted got every event twice.)"""
    plans: dict[str, list[tuple[int, int]]] = {}
    for path, n in _file_entries(latest).items():
        recorded = sorted({(r["start"], r["stop"]) for r in latest.values() if r.get("kind") == "range" and r["file"] == path})
        ranges: list[tuple[int, int]] = []
        pos = 0
        for a, b in [*recorded, (n, n)]:
            if a > pos:  # a gap: the whole-file cuts at the multiples (no clusters), clipped to it
                ranges += [(max(s, pos), t) for s, t in task_ranges(a, entries_per_task) if t > pos]
            if b > a:
                ranges.append((a, b))
            pos = max(pos, b)
        plans[path] = ranges
    return plans


def _publish(rec: dict, shards: Path) -> float:
    """Publish the shard that a local worker left pending (fsync, rename; see run_task) and
    return the seconds it took. The workers go on with their next tasks meanwhile: a task
    used to wait ~0.1 s for its own fsync (LZ4; ~0.2 s uncompressed), with the core idle.
    A disk that fails here fails the task, which is then not recorded done."""
    tmp = rec.pop("pending")
    final = shards / rec["shards"][0]["name"]
    t0 = time.perf_counter()
    try:
        publish_shard(shards / tmp, final)
    except OSError as err:  # (an fsync's error names no file)
        rec.update(status="failed", error="WorkerError", events=0, jets=0, shards=[],
                   reason=f"writing the shard {final} failed ({error_name(err)}: {err}); fix that (free space, "
                          "permissions), then re-run the same command to resume")  # fmt: skip
    return time.perf_counter() - t0


def _remove_pending(out: Path) -> None:
    """Remove the temporary shard files that no record will name."""
    for stale in (out / "shards").glob(".*.tmp-*"):
        stale.unlink(missing_ok=True)


def _is_done(rec: dict | None, out: Path) -> bool:
    """A task recorded done whose shards are all still on disk, of the size recorded (a shard
    cut short or replaced is redone; a byte changed in place only `jetlib verify`'s checksums see)."""
    return bool(rec) and rec["status"] == "done" and all(_has_shard(out / "shards" / sh["name"], sh.get("bytes")) for sh in rec["shards"])


def _has_shard(path: Path, size: int | None) -> bool:
    try:
        return size is None or path.stat().st_size == size
    except OSError:  # (gone)
        return False


def _finished_files(latest: dict[str, dict], planned: dict[str, list[tuple[int, int]]], out: Path) -> dict[str, int]:
    """Files whose every planned range task is done -> their number of tasks. A resumed skim
    does not open them again: they may be unreachable now, and their tasks must not be re-opened."""
    entries = _file_entries(latest)
    finished = {}
    for path, ranges in planned.items():
        keys = [f"{path}:{s}-{e}" for s, e in ranges]
        if path in entries and ranges_problem(ranges, entries[path]) is None and all(_is_done(latest.get(k), out) for k in keys):
            finished[path] = len(keys)
    return finished


def _refuse_changed(changed: list[tuple[str, str, str]]) -> None:
    """Refuse to go on with inputs replaced since they were skimmed: (path, UUID then, now)."""
    if not changed:
        return
    listed = "; ".join(f"{p} (UUID {old}, now {new})" for p, old, new in changed[:3])
    more = f"; and {len(changed) - 3} more" if len(changed) > 3 else ""
    raise StoreError(f"{listed}{more}: the file changed since it was skimmed; restore it, or re-skim with --overwrite")


def _refuse_same_file(counts: dict[str, dict], uuids: dict[str, str]) -> None:
    """Refuse to skim one ROOT file (one UUID) under two paths, in this list or the store: a
    copy, or a data folder moved and listed again, would put its events in the store twice."""
    first = {u: p for p, u in uuids.items()}  # done before, by UUID
    clashes = []
    for p, c in counts.items():
        u = c.get("file_uuid") if c["status"] == "ok" else None
        if u is None:
            continue
        other = first.setdefault(u, p)
        if other != p:
            clashes.append(f"{p} is {other} (ROOT UUID {u}), " + ("already skimmed into this store" if other in uuids else "also listed"))
    if clashes:
        more = f"; and {len(clashes) - 3} more" if len(clashes) > 3 else ""
        moved = any("already skimmed" in c for c in clashes)
        raise StoreError("; ".join(clashes[:3]) + more + ": its events would be in the store twice. A copy: list one "
                         "of the paths" + (". Data that moved: the store has these files already, list only those "
                         "it lacks (or re-skim from the new paths with --overwrite)" if moved else ""))  # fmt: skip


def _count_files(client, paths: list[str], plan: SkimPlan, plan_f, timeout: float | None, stop_at) -> dict[str, dict]:
    """:func:`count_entries` of each path on the workers, by path; once a result satisfies
    ``stop_at`` the counts still running are cancelled (and missing from the result)."""
    from distributed import as_completed

    futures = client.map(count_entries, paths, tree=plan.tree, timeout=timeout, plan=plan_f, pure=False)
    path_of = dict(zip(futures, paths))
    counts: dict[str, dict] = {}
    for fut in as_completed(futures):
        counts[path_of[fut]] = c = fut.result()
        if stop_at(c):
            for other in futures:
                other.cancel()
            break
    return counts


def _stop(summary: SkimSummary, ids: dict[str, int], t_start: float, console, fail_fast: bool) -> SkimSummary:
    """End a skim before any range task runs: nothing left to do, or --fail-fast after a
    failure met when opening the files. The plan written so far is kept."""
    write_json(summary.store / TASKS_NAME, {"tasks": ids})
    failed = [r["task"] for r in summary.failures if r["status"] == "failed"]
    if fail_fast and failed:
        console.print(f"[red]--fail-fast: stopping after the failure of {escape(failed[0])}[/]")
    summary.seconds = time.perf_counter() - t_start
    return summary


def _check_numbers(entries_per_task: int, workers: int | None, task_timeout: float | None) -> None:
    """Refuse values that would hang (no workers) or fail every task, before anything starts."""
    if entries_per_task < 1:
        raise ValueError(f"--entries-per-task must be >= 1 (got {entries_per_task})")
    if workers is not None and workers < 0:
        raise ValueError(f"--workers must be >= 1, or 0 for one per core (got {workers})")
    if task_timeout is not None and not (0 <= task_timeout < math.inf):
        raise ValueError(f"--task-timeout must be a number of seconds >= 0, 0 for no limit (got {task_timeout:g})")


def _flatten(d: dict, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    for k, v in d.items():
        if isinstance(v, dict) and v:
            _flatten(v, f"{prefix}{k}.", out)
        else:
            out[f"{prefix}{k}"] = v
    return out


def _settings(meta: dict) -> dict[str, Any]:
    """The hashed settings of a store's metadata, flat: ``compression``, ``blocks.pf.length``,
    ``labels.…``; another input schema or label scheme is one setting, its name."""
    shards = meta.get("shards") or {}
    flat: dict[str, Any] = {k: shards.get(k) for k in ("format", "compression", "entries_per_task")}
    schema, labels = meta.get("input_schema") or {}, meta.get("labels") or {}
    flat["schema"], flat["labels"] = schema.get("name"), labels.get("scheme")
    flat["definitions"] = meta.get("definitions", 1)  # (jetlib's version of the stored values)
    _flatten(meta.get("skim_config") or {}, "", flat)
    _flatten(labels.get("raw") or {}, "labels.", flat)
    _flatten(schema.get("raw") or {}, "input_schema.", flat)
    return flat


def _show(value: Any, width: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _differences(old: dict, new: dict, most: int = 5) -> str:
    """The settings that differ between two stores' metadata, as ``compression lz4 -> zstd``."""
    a, b = _settings(old), _settings(new)
    # another schema or label scheme: its name says it, not each of its entries
    hidden = tuple(p for name, p in (("schema", "input_schema."), ("labels", "labels.")) if a.get(name) != b.get(name))
    keys = [k for k in dict.fromkeys([*b, *a]) if a.get(k) != b.get(k) and not (hidden and k.startswith(hidden))]
    diffs = [f"{k} {_show(a.get(k))} -> {_show(b.get(k))}" for k in keys]
    if not diffs:  # only what the hash covers beyond these settings
        return f"hash {old.get('config_hash')} vs {new['config_hash']}"
    return ", ".join(diffs[:most]) + (f" and {len(diffs) - most} more" if len(diffs) > most else "")


def _prepare_store(out: Path, meta: dict, overwrite: bool) -> None:
    meta_path = out / META_NAME
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old.get("config_hash") != meta["config_hash"]:
            if not overwrite:
                raise StoreError(
                    f"{out}: this store was made with another configuration ({_differences(old, meta)}); "
                    "pass --overwrite to replace it, or choose a new --out"
                )
            _clear_store(out)
        elif overwrite:
            _clear_store(out)
    elif out.exists() and any(p.name != LOCK_NAME for p in out.iterdir()):
        raise StoreError(f"{out}: exists, is not empty and is not a jetlib store; choose a new --out")
    (out / "shards").mkdir(parents=True, exist_ok=True)
    write_meta(out, meta)


#: local files checked against the schema before a store is made or cleared
_CHECK_UP_FRONT = 5


def _local_inputs(files: list, not_root: set[str]) -> Iterator[str]:
    """The listed local inputs, in order, that exist and whose header did not say 'not ROOT'
    (``not_root``): those the checks before a store is made open."""
    return (f.path for f in files if not f.problem and not is_remote(f.path) and f.path not in not_root)


def _refuse_misfit(files: list, plan: SkimPlan, timeout: float | None, not_root: set[str], *, clearing: bool) -> None:
    """Refuse a schema (or tree name) that fits none of the first local ROOT files of the list,
    before a new store is made (a store of failed records, made with the wrong schema, then
    refused the right one as another configuration) or, with ``clearing``, before --overwrite
    clears a store (an empty store where a complete one had been). The workers check every
    file; here one that fits (or fails for another reason, such as damage) lets the run go
    on. A file without the schema's tree refuses a new store only through --overwrite, or
    when it holds a tree of a near name (``tree: Event`` for Events): jobs that crashed leave
    ROOT files without the tree, and the first few of a long list may be such (they fail, the
    others are skimmed). ``not_root``: local files whose header says they are not ROOT (read
    by the caller)."""
    misfits = []
    for path in itertools.islice(_local_inputs(files, not_root), _CHECK_UP_FRONT):
        c = count_entries(path, plan.tree, timeout=timeout, plan=plan)
        if c["status"] == "ok" or not (schema_fault([c], nothing_done=clearing) or names_a_near_tree(c)):
            return
        misfits.append(c["reason"])
    if misfits:
        what = "--overwrite would clear the store, but the" if clearing else "the"
        left = "the store was left as it was" if clearing else "no store made"
        raise ValueError(f"{what} input schema fits none of the first {len(misfits)} listed file(s); {left}: {misfits[0]}")


def _refuse_bad_expression(files: list, plan: SkimPlan, not_root: set[str]) -> None:
    """Evaluate the jet selection's expression on the first entries of the first local input,
    before a store is made: an expression the branches' types do not take (`pt & 2` on
    float pT) failed every task on the workers, and the run's last line blamed the inputs.
    A file that does not open is left to the workers (which record it)."""
    text = plan.config.jets.expression
    path = next(_local_inputs(files, not_root), None)
    if not text or path is None:
        return
    import awkward as ak

    from jetlib.config.expr import Expression
    from jetlib.source.open import open_tree

    expr = Expression(text, source=f"{plan.config.source} [jets.expression]")
    try:
        t = open_tree(path, plan.tree)
        arrays = t.arrays([plan.jet_branches[n] for n in expr.names], entry_stop=min(t.num_entries, 100), library="ak", how=dict)
        fields = {n: ak.to_numpy(ak.flatten(arrays[plan.jet_branches[n]], axis=None)) for n in expr.names}
    except Exception:  # noqa: BLE001 (damage, a missing branch: the file's own record says what)
        return
    try:
        expr.evaluate(fields)
    except ConfigError as err:
        raise ConfigError(f"{err} (the branches of {path}); fix the expression in the skim config") from None


@contextlib.contextmanager
def _no_stub_left(out: Path):
    """Remove a store this run makes when the run stops with an error (a refusal found once the
    store was made, a cluster that did not start, Ctrl-C) before any task was done: a stub of
    metadata and failure records refused the next run with other options as another
    configuration, and ``jetlib verify`` passed it. Only for a folder that held nothing but the
    lock when the run took it; only jetlib's own files go, and only while ``shards/`` is empty;
    the folder and its lock file stay (see jetlib/store/lock.py)."""
    new = not out.exists() or all(p.name == LOCK_NAME for p in out.iterdir())
    try:
        yield
    except BaseException:
        if new:
            with contextlib.suppress(Exception):  # the error that stopped the run is the one to see
                if not any(r.get("status") == "done" for r in Manifest.of(out).latest().values()):
                    (out / "shards").rmdir()  # fails if a shard is there: then the store stays as it is
                    for name in _STORE_FILES:
                        (out / name).unlink(missing_ok=True)
        raise


#: the files of a store that jetlib writes beside its folders
_STORE_FILES = (META_NAME, MANIFEST_NAME, TASKS_NAME)


def _clear_store(out: Path) -> None:
    """Remove what jetlib wrote there, and nothing else."""
    for name in ("shards", "weights", "stats"):
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    for name in _STORE_FILES:
        (out / name).unlink(missing_ok=True)


#: glibc settings for jetlib's LocalCluster workers (see :func:`_client`; README for clusters
#: that jetlib does not start)
WORKER_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30), "MALLOC_ARENA_MAX": "1"}


def _client(scheduler: str | None, workers: int | None, dashboard_address: str | None):
    import dask
    from distributed import Client

    if scheduler:
        from jetlib._dask import connect

        return connect(scheduler), None
    n = workers or max(1, len(os.sched_getaffinity(0)))
    # A task allocates ~700 MB of arrays (the input chunk, 132 MB of padded blocks, LZ4
    # buffers) and frees them; the next task asks for the same sizes again. With Dask's
    # worker settings glibc hands every large array out as a fresh mmap: its trim threshold
    # (64 kB) fixes the mmap threshold at 128 kB, and a thread's own arena cannot hold
    # arrays over 64 MB anyway. Each task then page-faulted and zeroed all of it again
    # (kernels 0.18 s against 0.13 s in one process). One arena that keeps up to 1 GiB of
    # freed heap serves the next task from memory already mapped: 18.3k -> 20.5k jets/s
    # per worker, peak RSS ~700 MB (benchmarks/RESULTS.md).
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.update(WORKER_MALLOC_ENV)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        cluster = _start_local_cluster(n, dashboard_address)
    client = Client(cluster)
    from jetlib._worker import OwnWorker

    client.register_plugin(OwnWorker())  # also in a worker that its nanny restarts
    return client, cluster


def _quiet_dask_logs() -> None:
    logging.getLogger("distributed").setLevel(logging.ERROR)


#: seconds for the workers of a LocalCluster to start (a few, or ~20 with a cold disk), and
#: for their processes to be spawned (milliseconds each)
_WORKERS_START_S, _SPAWN_S = 120.0, 10.0


def _start_local_cluster(n: int, dashboard_address: str | None):
    """A LocalCluster of ``n`` one-thread worker processes that ignore SIGINT.

    Ctrl-C in a terminal reaches the whole process group, and each worker printed its
    traceback; a process started while SIGINT is ignored inherits that (and Python then
    installs no KeyboardInterrupt handler). This process ignores it only until the worker
    processes exist (milliseconds), not while they boot and connect (seconds): a Ctrl-C
    then was lost, and the skim ran. The client stops the workers when it is interrupted.

    Raises:
        ConfigError: the cluster could not start (a bad dashboard address, a worker
            process that exited while starting, or no workers after _WORKERS_START_S).
    """
    import psutil
    from distributed import LocalCluster

    try:
        # no address asked for: a random loopback port, never all interfaces (PITFALLS.md)
        cluster = LocalCluster(n_workers=0, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=dashboard_address or "127.0.0.1:0")  # fmt: skip
    except (RuntimeError, OSError, ValueError) as err:
        raise ConfigError(f"cannot start a local Dask cluster ({error_name(err)}: {err}); check --dashboard-address "
                          f"({dashboard_address!r}: HOST:PORT, or '' for none)") from err  # fmt: skip
    try:
        me = psutil.Process()
        before = {c.pid for c in me.children()}
        spawned: list[psutil.Process] = []
        with _ctrl_c_ignored():
            cluster.scale(n)  # the cluster's own thread spawns the worker processes
            # a child inherits the ignored SIGINT when it is forked; multiprocessing lists it
            # only after it has read its start-up data (~2 s), so the OS's list is watched
            deadline = time.monotonic() + _SPAWN_S
            while len(spawned) < n and time.monotonic() < deadline:
                spawned = [c for c in me.children() if c.pid not in before and not _is_resource_tracker(c)]
                time.sleep(0.002)
        deadline = time.monotonic() + _WORKERS_START_S
        while len(cluster.scheduler_info.get("workers", {})) < n:
            if any(not _alive(c) for c in spawned):
                raise ConfigError("a Dask worker process exited while starting; its log is above")
            if time.monotonic() > deadline:
                raise ConfigError(f"{n} Dask worker(s) asked for, {len(cluster.scheduler_info.get('workers', {}))} "
                                  f"started within {_WORKERS_START_S:.0f} s; is the machine short of memory?")  # fmt: skip
            time.sleep(0.02)
    except BaseException:
        cluster.close()
        raise
    return cluster


def _is_resource_tracker(p) -> bool:
    """Whether child ``p`` is multiprocessing's resource tracker (not a worker)."""
    try:
        return "resource_tracker" in " ".join(p.cmdline())
    except Exception:  # gone, or not ours to read: not a worker being started either
        return True


def _alive(p) -> bool:
    import psutil

    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@contextlib.contextmanager
def _ctrl_c_ignored():
    """SIGINT ignored in this process for the ``with`` block (main thread only: elsewhere
    signal handlers cannot be set, and the caller is not the terminal's Ctrl-C target)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def skim(
    inputs: str | Path | list[str],
    out: str | Path,
    *,
    schema: str | Path = "miniaod",
    config: str | Path = "default",
    labels: str | Path | None = None,
    fmt: str = "hdf5",
    compression: str = "lz4",
    entries_per_task: int = DEFAULT_ENTRIES_PER_TASK,
    scheduler: str | None = None,
    workers: int | None = None,
    dashboard_address: str | None = "127.0.0.1:8787",
    overwrite: bool = False,
    fail_fast: bool = False,
    skip_bad_files: bool = False,
    task_timeout: float | None = DEFAULT_TASK_TIMEOUT_S,
    progress: bool = True,
    console=None,
) -> SkimSummary:
    """Skim the files of ``inputs`` (a file list path, or a list of paths) into the store ``out``.

    Args:
        inputs: file list (paths, globs, ``root://`` URLs, ``#`` comments), or a ROOT file,
            glob or URL given directly, or a list of those.
        out: store folder; created, or resumed if it holds a store of the same configuration.
        schema, config, labels: bundled names or YAML paths (labels default to the config's).
        fmt, compression: shard format (hdf5 | parquet) and compression (none | lz4 | zstd | gzip).
        entries_per_task: events per task and shard (bounds worker memory and shard size).
        scheduler: address of an existing Dask scheduler; else a LocalCluster of ``workers``
            (None or 0: one per core).
        overwrite: replace a store made with another configuration.
        fail_fast: stop at the first failed task. skip_bad_files: record damaged inputs as
            ``skipped`` (not ``failed``), so that they do not fail the run; a branch missing
            for the input schema (a wrong --schema) is a configuration error and still fails.
        task_timeout: wall-clock limit in seconds for opening a file and for reading a task's
            entries (None or 0: none); a task past it is recorded ``failed`` (TaskTimeout).

    Returns:
        A :class:`SkimSummary`; the manifest in the store has every task's record.
    """
    from rich.console import Console

    console = console or Console(stderr=True, emoji=False)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression {compression!r}; use one of {', '.join(COMPRESSIONS)}")
    _check_numbers(entries_per_task, workers, task_timeout)
    cfg = load_skim_config(config)
    plan = make_plan(load_input_schema(schema), cfg, load_label_scheme(labels or cfg.labels))
    out = Path(out)
    meta = build_meta(plan, fmt=fmt, compression=compression, entries_per_task=entries_per_task)
    if fmt == "parquet" and (clash := parquet_clashes(shard_layout(plan))):
        col, a, b = clash[0]
        raise ConfigError(f"with --format parquet, {a} and {b} would both be written as column {col!r}; rename the block "
                          "or drop the feature (HDF5 keeps them apart)", source=plan.config.source)  # fmt: skip
    files = parse_inputs(inputs)
    if not files:
        raise ValueError(f"{inputs}: the file list has no entries")
    # with --overwrite, a list of files that are not ROOT must not clear the store: their headers
    # are read here (once: the check against the schema below skips them)
    not_root = {f.path for f in files if overwrite and not f.problem and not is_remote(f.path) and not is_root_file(Path(f.path))}
    unreadable = [f for f in files if f.problem or f.path in not_root]
    if len(unreadable) == len(files) and (overwrite or not (out / META_NAME).exists()):
        # a typo in every path or glob: say so, rather than make a store of failed records (or
        # clear a store with --overwrite for nothing)
        more = f"; and {len(files) - 3} more" if len(files) > 3 else ""
        left = "the store was left as it was" if (out / META_NAME).exists() else "no store made"
        why = lambda f: f.problem or ("a folder, not a ROOT file" if Path(f.path).is_dir() else "not a ROOT file")  # noqa: E731
        raise ValueError(f"no input to skim, {left}: " + "; ".join(f"{f.path}: {why(f)}" for f in files[:3]) + more)
    new_store = not (out / META_NAME).exists()
    if new_store or overwrite:
        _refuse_misfit(files, plan, task_timeout, not_root, clearing=not new_store)
        _refuse_bad_expression(files, plan, not_root)
    if plan.unread:  # a key the skim does not know reads nothing: say so, with the names it knows
        console.print(f"note: nothing in this skim reads {escape(', '.join(plan.unread))} of input schema "
                      f"{escape(plan.schema.name)!r}; the collection and event keys are fixed names (those of "
                      "schemas/inputs/miniaod.yaml): rename the key and keep your branch names")  # fmt: skip
    # expected for a sparse schema (NanoAOD has no PF candidates), a typo otherwise
    for how, what in schema_gaps(plan.dropped, plan.stand_ins):
        console.print(f"note: input schema {escape(plan.schema.name)!r} does not feed ({how}): {escape(what)}")
    with writer_lock(out, "jetlib skim"), _no_stub_left(out):  # one writer per store (jetlib/store/lock.py)
        _prepare_store(out, meta, overwrite)
        _remove_pending(out)  # left by workers of an interrupted run
        manifest = Manifest.of(out)
        latest = manifest.latest()
        ids = load_task_ids(out)
        next_id = max(ids.values(), default=-1) + 1
        summary = SkimSummary(out)
        t_start = time.perf_counter()

        clashes = uuid_clashes(latest)
        if clashes:  # a store that holds an input twice, or two files under one path
            raise StoreError(f"{out}: " + "; ".join(clashes[:3]))
        counted: dict[str, str] = {}  # path -> the ROOT UUID this run counted entries in

        # the schema's branches are in some input once a task of the store is done or a file
        # of this run has opened with them (set again after counting): a branch that another
        # file lacks is then that file's fault, which --skip-bad-files skips, not the schema's
        schema_fits = any(r["status"] == "done" and r.get("kind") == "range" for r in latest.values())

        def stays_failed(error: str | None) -> bool:  # --skip-bad-files skips damaged inputs only
            if not skip_bad_files or error in ("WorkerError", "InputChanged"):
                return True
            if error == "MissingBranchError":
                return not schema_fits
            return error in CONFIG_ERRORS

        def commit(rec: dict) -> None:
            u = rec.get("file_uuid")
            if rec["status"] == "done" and u and counted.get(rec["file"], u) != u:
                # replaced after it was counted: ranges of two files would pass for one; its
                # shard, published already, is removed (no record will name it)
                for sh in rec.get("shards", []):
                    (out / "shards" / sh["name"]).unlink(missing_ok=True)
                rec.update(status="failed", error="InputChanged", events=0, jets=0, shards=[],
                           reason=f"{rec['file']} was replaced while the skim ran (UUID {counted[rec['file']]} when counted, "
                                  f"{u} when this range was read); re-skim with --overwrite")  # fmt: skip
            if rec["status"] == "failed" and not stays_failed(rec.get("error")):
                rec["status"] = "skipped"
            manifest.append(rec)
            latest[rec["task"]] = rec
            if rec["kind"] == "file" and rec["status"] == "done":
                return  # a file that opened on a later run: its range tasks are the ones counted
            if rec["status"] == "done":
                summary.done += 1
                summary.events += rec.get("events", 0)
                summary.jets += rec.get("jets", 0)
                for k, v in rec.get("seconds", {}).items():
                    summary.time_split[k] = summary.time_split.get(k, 0.0) + v
                summary.peak_rss_mb = max(summary.peak_rss_mb, rec.get("peak_rss_mb", 0.0))
                summary.records.append(rec)
            else:
                setattr(summary, rec["status"], getattr(summary, rec["status"]) + 1)
                summary.failures.append(rec)

        def task_id(key: str) -> int:
            """The task's number in the plan: kept from an earlier run, else the next free one."""
            nonlocal next_id
            if key not in ids:
                ids[key] = next_id
                next_id += 1
            return ids[key]

        def file_record(f: str, status: str, **kw) -> dict:
            key = f"{f}:file"
            return {"task": key, "task_id": task_id(key), "kind": "file", "file": f, "status": status, **kw}

        def plan_unopened(paths: list[str]) -> None:
            """Put inputs that --fail-fast stopped before they were opened into the plan (a
            file task, recorded when the file opens), so that verify and inspect count them
            unfinished: left out, the store of the files done so far passed for complete."""
            for p in paths:
                if p not in planned:
                    task_id(f"{p}:file")

        # each file's ranges as planned; a store from before tasks.json was cut at fixed multiples
        planned = _planned(ids) if (out / TASKS_NAME).exists() else _recorded_plans(latest, entries_per_task)
        finished = _finished_files(latest, planned, out)
        uuids = done_uuids(latest)
        # a finished local file is not opened again, but its header says whether it was replaced
        _refuse_changed([(f.path, uuids[f.path], now) for f in files if f.path in finished and f.path in uuids
                         and not is_remote(f.path) and (now := header_uuid(f.path)) not in (None, uuids[f.path])])  # fmt: skip
        summary.already_done += sum(finished.get(f.path, 0) for f in files)
        listed = {f.path for f in files}
        unlisted = sorted({r["file"] for r in latest.values() if r.get("file") and r["file"] not in listed})
        # with --skip-bad-files, a failed input with no jets in the store that the list no
        # longer names (a file given up on, a glob corrected) is given up: its records become
        # skipped, so that the store can verify; listed again, it is retried as any skipped
        # input is. (Without the flag a store filled from several lists keeps their failures.)
        done_files = {r["file"] for r in latest.values() if r.get("status") == "done" and r.get("kind") == "range"}
        if skip_bad_files:
            keep = listed | done_files
            for r in [r for r in latest.values() if r.get("file") and r["file"] not in keep and r["status"] == "failed"]:
                commit({**r, "status": "skipped", "reason": f"not in the file list of a run with --skip-bad-files (it "
                                                             f"holds no jets); it had failed: {r.get('reason')}"})  # fmt: skip
            unlisted = [f for f in unlisted if f in done_files]
            for key in [k for k in ids if k.endswith(":file") and k not in latest and k.removesuffix(":file") not in keep]:
                commit(file_record(key.removesuffix(":file"), "skipped", entries=0, reason="not in the file list of a run "
                                   "with --skip-bad-files; a --fail-fast run had stopped before opening it"))  # fmt: skip
        if unlisted:  # a shorter list does not take inputs out of a store
            gone = set(unlisted)
            kept = sum(r.get("jets", 0) for r in latest.values() if r.get("kind") == "range" and r.get("status") == "done" and r["file"] in gone)
            failed = sorted({r["file"] for r in latest.values() if r.get("file") in gone and r["status"] == "failed"})
            also = (f"; {len(failed):,} of them failed (e.g. {escape(failed[0])}): `jetlib verify` fails until a run with "
                    "--skip-bad-files gives them up" if failed else "")  # fmt: skip
            console.print(f"note: the store also has records of {len(unlisted):,} input file(s) not in this list ({kept:,} "
                          f"jets; e.g. {escape(unlisted[0])}): they stay in it{also}; --overwrite starts the store anew")  # fmt: skip
        files = [f for f in files if f.path not in finished]
        for f in files:
            if f.problem:
                commit(file_record(f.path, "failed", error="FileNotFoundError", reason=f"{f.path}: {f.problem}", entries=0))
        readable = [f.path for f in files if not f.problem]
        if not readable or (fail_fast and summary.failed):  # nothing to open: no cluster to start
            plan_unopened(readable)
            return _stop(summary, ids, t_start, console, fail_fast)

        try:
            client, cluster = _client(scheduler, workers, dashboard_address)
        except KeyboardInterrupt as err:
            console.print("[red]interrupted[/]: while starting the workers; re-run the same command to resume")
            err.reported = True  # (the CLI prints its own line only for an interrupt not told yet)
            raise
        total = None  # range tasks of the run, once planned
        try:
            summary.workers = len(client.scheduler_info()["workers"])
            summary.dashboard = client.dashboard_link if dashboard_address or scheduler else None
            if summary.dashboard:
                console.print(f"[bold]Dask dashboard:[/] {escape(summary.dashboard)}  ({summary.workers} worker{'s' if summary.workers != 1 else ''})")
            # 1. entries per file, on the workers (opening 500 remote files is work too)
            # the plan as a task's result, not scattered data: when the only worker holding
            # it dies, the scheduler computes it again; scattered data was lost with it, and
            # every task still waiting was cancelled ('already forgotten') instead of re-run
            plan_f = client.submit(_the_plan, plan, pure=False)
            tasks: list[Task] = []
            def stops(c: dict) -> bool:  # a count result that ends the run under --fail-fast
                return fail_fast and c["status"] != "ok" and stays_failed(c["error"])

            counts = _count_files(client, readable, plan, plan_f, task_timeout, stop_at=stops)
            _refuse_changed([(p, uuids[p], c["file_uuid"]) for p, c in counts.items()
                             if c["status"] == "ok" and uuids.get(p, c["file_uuid"]) != c["file_uuid"]])  # fmt: skip
            _refuse_same_file(counts, uuids)
            counted.update({p: c["file_uuid"] for p, c in counts.items() if c["status"] == "ok" and c.get("file_uuid")})
            schema_fits = schema_fits or any(c["status"] == "ok" for c in counts.values())
            stopping = any(stops(c) for c in counts.values())
            for path in readable:
                c = counts.get(path)
                if c is not None and c["status"] != "ok":
                    commit(file_record(path, "failed", entries=0, error=c["error"], reason=c["reason"]))
                if c is None:  # not counted: --fail-fast stopped first
                    plan_unopened([path])
                if c is None or c["status"] != "ok":
                    continue
                n = c["entries"]
                ranges = planned.get(path)
                if ranges and ranges_problem(ranges, n) and not any(f"{path}:{a}-{b}" in latest for a, b in ranges):
                    # planned, none of it run, and the file changed since: nothing to keep
                    for a, b in ranges:
                        ids.pop(f"{path}:{a}-{b}")
                    ranges = None
                ranges = ranges or task_ranges(n, entries_per_task, c.get("clusters"))
                if problem := ranges_problem(ranges, n):  # (a replaced file was refused above; tasks.json edited)
                    raise StoreError(f"{out}: the store's task plan ({TASKS_NAME}) for {path} does not cover its {n:,} "
                                     f"entries once each ({problem}); re-skim with --overwrite")  # fmt: skip
                fkey = f"{path}:file"
                if (fkey in ids or fkey in latest) and latest.get(fkey, {}).get("status") != "done":
                    # it opened this time (it had failed, was skipped, or a --fail-fast run
                    # stopped before it was opened): the ranges below account for it now
                    commit(file_record(path, "done", entries=n, reason="opened on a later run; see its entry ranges"))
                for s, e in ranges:
                    key = f"{path}:{s}-{e}"
                    task = Task(key, task_id(key), path, s, e, n)
                    if _is_done(latest.get(key), out):
                        summary.already_done += 1
                        continue
                    tasks.append(task)
            if stopping:  # (the files counted are planned: their ranges read as unfinished)
                return _stop(summary, ids, t_start, console, fail_fast)
            total = summary.already_done + len(tasks)
            write_json(out / TASKS_NAME, {"tasks": ids})
            # 2. the skim itself
            from distributed import as_completed
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            # workers of our own LocalCluster leave their shards pending, and this process,
            # beside them, waits for the disk (_publish); on a cluster elsewhere each worker
            # publishes its own: an fsync here would not reach another machine's page cache
            publish_here = cluster is not None
            futures = {}
            for t in tasks:
                fut = client.submit(run_task, plan_f, t, str(out.resolve()), fmt, compression, task_timeout, not publish_here,
                                    key=f"skim-{meta['config_hash'][:8]}-{t.task_id:05d}", pure=False)  # fmt: skip
                futures[fut] = t
            columns = (TextColumn("[bold]skim"), BarColumn(), MofNCompleteColumn(), TextColumn("tasks"),
                       TextColumn("{task.fields[jets]:,} jets"), TimeElapsedColumn(), TimeRemainingColumn())  # fmt: skip
            with Progress(*columns, console=console, disable=not progress, transient=False) as bar:
                pid = bar.add_task("skim", total=len(tasks), jets=0)
                for fut in as_completed(list(futures)):
                    t = futures[fut]
                    try:
                        rec = fut.result()
                    except Exception as err:  # a bug or a dead worker (KilledWorker): record, go on
                        rec = {"task": t.key, "task_id": t.task_id, "kind": "range", "file": t.path, "start": t.start,
                               "stop": t.stop, "entries": t.entries, "status": "failed", "error": "WorkerError",
                               "reason": f"{error_name(err)}: {err}", "events": 0, "jets": 0, "shards": []}  # fmt: skip
                    if "pending" in rec:
                        summary.publish_seconds += _publish(rec, out / "shards")
                    commit(rec)
                    bar.update(pid, advance=1, jets=summary.jets)
                    if fail_fast and rec["status"] == "failed":
                        for other in futures:
                            other.cancel()
                        console.print(f"[red]--fail-fast: stopping after the failure of {escape(t.key)}[/]")
                        break
        except KeyboardInterrupt as err:  # Ctrl-C: one line, not the traceback of every thread
            err.reported = True
            where = "while opening the inputs"
            if total is not None:  # counted from the manifest: Ctrl-C may have come between a record and its count
                on_disk = Manifest.of(out).latest()
                done = sum(on_disk.get(t.key, {}).get("status") == "done" for t in tasks)
                where = f"{summary.already_done + done} of {total} tasks done"
            console.print(f"[red]interrupted[/]: {where}; re-run the same command to resume")
            if cluster is not None:  # our own workers: their tasks being cancelled is no news
                with contextlib.suppress(Exception):
                    client.run(_quiet_dask_logs)
                _quiet_dask_logs()
            raise
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
                # shards of tasks that finished after --fail-fast or Ctrl-C stopped this loop
                _remove_pending(out)
        summary.without_jets = _without_jets(summary.records, latest)
        summary.seconds = time.perf_counter() - t_start
        return summary


def _without_jets(records: list[dict], latest: dict[str, dict]) -> dict[str, int]:
    """The files this run did tasks of (``records``) whose done ranges in the store (``latest``,
    earlier runs' too) hold no jet, with their events, by path."""
    files = {r["file"] for r in records}
    jets: dict[str, int] = {}
    events: dict[str, int] = {}
    for r in latest.values():
        if r.get("file") in files and r["status"] == "done" and r.get("kind", "range") == "range":
            jets[r["file"]] = jets.get(r["file"], 0) + r.get("jets", 0)
            events[r["file"]] = events.get(r["file"], 0) + r.get("events", 0)
    return {f: events[f] for f, n in sorted(jets.items()) if n == 0}
