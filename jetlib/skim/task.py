"""One skim task: an entry range of one file → one shard, run on a Dask worker.

The worker writes its shard atomically and returns a record; only the client writes the
manifest. Damaged inputs return a ``failed`` record at once (no retry); transient errors on
remote files are retried with backoff; a task that runs past its wall-clock limit (a read
hanging on a dead server or a stuck mount) returns a ``failed`` record with ``TaskTimeout``.
"""

from __future__ import annotations

import os
import resource
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from jetlib.errors import ConfigError, InputFileError, MissingBranchError, SchemaMismatchError, error_name, near_matches, one_line
from jetlib.skim.plan import SkimPlan
from jetlib.source.filelist import is_remote
from jetlib.source.open import (CORRUPT_ERRORS, DID_YOU_MEAN, NO_TREE_HINT, check_branches, cluster_starts, file_identity, forget_tree,
                                open_tree, open_tree_cached, tree_keys)  # fmt: skip

__all__ = ["Task", "run_task", "count_entries", "shard_name", "TaskTimeout", "DEFAULT_TASK_TIMEOUT_S", "CONFIG_ERRORS", "schema_fault"]

RETRIES = 3
BACKOFF_S = 2.0
DEFAULT_TASK_TIMEOUT_S = 900.0
BUNDLED_SCHEMAS = ("miniaod", "nanoaod")
#: errors of the configuration, not of a file: --skip-bad-files never skips them
CONFIG_ERRORS = ("MissingBranchError", "SchemaMismatchError")


class TaskTimeout(TimeoutError):
    """A task ran past its wall-clock limit."""


def _with_deadline(fn, seconds: float | None, what: str):
    """Run ``fn()`` with a wall-clock limit.

    Python cannot interrupt a thread blocked in a read, so ``fn`` runs in a daemon thread
    and, past the limit, is abandoned: the Dask worker thread returns a failure and goes on
    with the next task; the stuck thread holds no CPU and dies with the worker process.
    """
    if not seconds:
        return fn()
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as err:  # handed to the caller below
            box["error"] = err

    th = threading.Thread(target=target, name=f"jetlib-task {what}", daemon=True)
    th.start()
    th.join(seconds)
    if th.is_alive():
        raise TaskTimeout(f"{what}: no result after {seconds:g} s (--task-timeout); the read may hang on a dead server or mount")
    if "error" in box:
        raise box["error"]
    return box["value"]


@dataclass(frozen=True)
class Task:
    key: str  # "<path>:<start>-<stop>": stable across runs
    task_id: int
    path: str
    start: int
    stop: int
    entries: int  # entries of the whole file


def shard_name(task_id: int, fmt: str) -> str:
    from jetlib.store.shards import shard_suffix

    return f"part-{task_id:05d}{shard_suffix(fmt)}"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _with_retries(fn, path: str):
    """Call ``fn``; retry OSError/TimeoutError with backoff for remote files only (a local
    OSError is a damaged or missing file, not a network hiccup)."""
    for attempt in range(RETRIES + 1):
        try:
            return fn()
        except (InputFileError, MissingBranchError):
            raise
        except (OSError, TimeoutError):
            if not is_remote(path) or attempt == RETRIES:
                raise
            time.sleep(BACKOFF_S * 2**attempt)
    raise AssertionError("unreachable")


def lacks_tree(rec: dict) -> bool:
    """Whether a failure record is a file without the schema's tree (see open_tree)."""
    return NO_TREE_HINT in rec.get("reason", "")


def names_a_near_tree(rec: dict) -> bool:
    """Whether a failure record is a file without the schema's tree that holds one of a near
    name ('Events' for 'Event'): a typo in the schema's ``tree:``, where the output of a job
    that crashed holds no tree of the kind."""
    return lacks_tree(rec) and DID_YOU_MEAN in rec.get("reason", "")


def schema_fault(failed: list[dict], *, nothing_done: bool) -> str | None:
    """What is wrong when the input schema, not the files, failed every task of ``failed``
    (failure records), else None. Fixing the schema is a new configuration (``--schema``),
    where fixing a file is a re-run. A branch missing or of another shape is the schema's
    fault in any file; a missing tree only when nothing was read (one input of many
    without it is that input's problem)."""
    no_tree = [f for f in failed if nothing_done and lacks_tree(f)]
    if not failed or not all(f.get("error") in CONFIG_ERRORS or f in no_tree for f in failed):
        return None
    return "its tree is not in the files" if len(no_tree) == len(failed) else "branches missing, or of another shape or type"


def _failure(err: BaseException) -> dict:
    cause = getattr(err, "cause", None) or error_name(err)
    return {"status": "failed", "error": cause, "reason": str(err) + getattr(err, "schema_hint", "")}


def schema_hint(keys: list[str], plan: SkimPlan) -> str:
    """What to do about a branch the input schema names and the file lacks: the bundled
    schema whose branches the file has, else check --schema or write a schema."""
    from jetlib.config.inputs import load_input_schema
    from jetlib.skim.plan import make_plan

    have = set(keys)
    for name in BUNDLED_SCHEMAS:
        if name == plan.schema.name:
            continue
        try:
            other = make_plan(load_input_schema(name), plan.config, plan.labels)
        except ConfigError:  # that schema cannot feed this skim config at all
            continue
        if all(b in have for b in other.branches()):
            return f"; the file has the branches of the bundled {name!r} schema: pass --schema {name}"
    return f"; check --schema ({', '.join(BUNDLED_SCHEMAS)} or a YAML path), or write an input schema for this ntuple"


def _check_schema(path: str, t, plan: SkimPlan) -> list[str]:
    """:func:`check_branches` for ``plan``; a missing branch carries :func:`schema_hint`."""
    try:
        return check_branches(path, t, plan.branches(), plan.schema.name)
    except MissingBranchError as err:
        err.schema_hint = schema_hint(tree_keys(t), plan) + _records_note(t)
        raise


def _records_note(t) -> str:
    """An RNTuple whose collections are records (``ak4.pt``, what uproot writes for an
    ``ak.zip``) cannot be mapped: say so rather than leave near matches such as ``ak4``."""
    if not hasattr(t, "field_names"):
        return ""
    try:
        records = sorted({k.split(".")[0] for k in t.keys(recursive=True, full_paths=True) if "." in k})
    except TypeError:
        return ""
    if not records:
        return ""
    return (f"; this RNTuple holds {', '.join(records[:5])} as records of fields ({records[0]}.pt), which input schemas "
            f"cannot map yet: write the collections as flat fields ({records[0]}_pt), e.g. "
            f"f['Events'] = {{'{records[0]}_pt': {records[0]}.pt, ...}} with uproot")


def count_entries(path: str, tree: str, timeout: float | None = DEFAULT_TASK_TIMEOUT_S, plan: SkimPlan | None = None) -> dict:
    """Entries of ``tree`` in ``path``, or a failure record (runs on a worker). With ``plan``,
    the file must also have every branch the plan reads (else a MissingBranchError record)."""

    def open_checked():
        t = open_tree(path, tree)
        if plan is not None:
            _check_schema(path, t, plan)
        return t

    try:
        t = _with_deadline(lambda: _with_retries(open_checked, path), timeout, path)
        rec = {"status": "ok", "entries": int(t.num_entries), **file_identity(t, path)}
        if plan is not None:  # where the tasks of this file should end (skim.run.task_ranges)
            rec["clusters"] = cluster_starts(t, plan.branches())
        return rec
    except (InputFileError, MissingBranchError, OSError, *CORRUPT_ERRORS) as err:
        return _failure(err)


def run_task(plan: SkimPlan, task: Task, store: str, fmt: str, compression: str,
             timeout: float | None = DEFAULT_TASK_TIMEOUT_S, publish: bool = True) -> dict:
    """Skim ``task`` into ``<store>/shards/`` and return its manifest record.

    ``timeout`` bounds the time to open the file and read the entries, where a remote or
    damaged source can hang (None: no limit); the kernels and the write are not cut off, so
    an abandoned task never publishes a shard behind the client's back.

    With ``publish=False`` the shard is left under its temporary name, not yet fsynced, and
    the record's ``pending`` names that file: the client publishes it
    (:func:`jetlib.store.shards.publish_shard`) before it records the task done.
    """
    from jetlib.skim.process import process_chunk, shard_layout
    from jetlib.source.read import read_chunk
    from jetlib.store.shards import publish_shard, write_pending

    rec: dict = {"task": task.key, "task_id": task.task_id, "kind": "range", "file": task.path,
                 "start": task.start, "stop": task.stop, "entries": task.entries,
                 "worker": f"{socket.gethostname()}:{os.getpid()}"}  # fmt: skip
    t0 = time.perf_counter()

    def read():
        t = open_tree_cached(task.path, plan.tree)
        try:
            rec.update(file_identity(t, task.path))
            keys = set(_check_schema(task.path, t, plan))
            if absent := [b for b in plan.optional_branches() if b not in keys]:  # read as zero / NO_FLAVOUR
                rec["absent_optional"] = {b: near_matches(b, keys) for b in absent}
            return read_chunk(t, plan, task.start, task.stop, keys)
        except SchemaMismatchError as err:  # the schema, not the file: the same in every file
            raise SchemaMismatchError(f"{task.path}: {err}; fix the input schema ({plan.schema.source})") from None
        except BaseException as err:
            forget_tree(task.path)  # a retry, or the next task, opens the file afresh
            if isinstance(err, MissingBranchError) or not isinstance(err, CORRUPT_ERRORS):
                raise  # (a missing branch is a KeyError, but a wrong schema, not damage)
            # damaged baskets show up only when read
            raise InputFileError(task.path, f"cannot read entries {task.start}-{task.stop} ({error_name(err)}: {one_line(err)}); "
                                 "the file is damaged: copy it again, or remove it from the file list",
                                 cause=error_name(err)) from err  # fmt: skip

    try:
        chunk = _with_deadline(lambda: _with_retries(read, task.path), timeout, task.key)
        t1 = time.perf_counter()
        layout = shard_layout(plan)
        try:
            arrays, counters = process_chunk(plan, chunk, layout)
        except SchemaMismatchError as err:  # the content does not follow the schema's conventions
            raise SchemaMismatchError(f"{task.path} (entries {task.start}-{task.stop}): {err}; map branches that do in "
                                      f"the input schema ({plan.schema.source}), or fix the ntuple") from None  # fmt: skip
        except FloatingPointError as err:  # nan_policy 'error': the reason names the file, as every other one does
            raise FloatingPointError(f"{task.path} (entries {task.start}-{task.stop}): {err}") from None
    except (InputFileError, MissingBranchError, SchemaMismatchError, OSError, FloatingPointError) as err:  # TaskTimeout is an OSError
        # bad input: recorded, never retried; programming errors propagate to the client
        rec.update(_failure(err))
        rec.update(events=0, jets=0, shards=[], seconds=round(time.perf_counter() - t0, 3))
        return rec
    t2 = time.perf_counter()
    name = shard_name(task.task_id, fmt)
    path = Path(store) / "shards" / name
    info, tmp = write_pending(path, arrays, layout, fmt=fmt, compression=compression, attrs={"task": task.key})
    if publish:
        publish_shard(tmp, path)
    else:
        rec["pending"] = tmp.name
    t3 = time.perf_counter()
    rec.update(
        status="done", events=chunk.n_events, jets=info.jets, shards=[info.to_json()], counters=counters,
        read_bytes=chunk.nbytes, peak_rss_mb=round(_peak_rss_mb(), 1),
        seconds={"read": round(t1 - t0, 4), "kernels": round(t2 - t1, 4), "write": round(t3 - t2, 4)},
    )  # fmt: skip
    return rec


def task_to_json(task: Task) -> dict:
    return asdict(task)
