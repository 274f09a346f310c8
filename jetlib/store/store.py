"""Open a store: its metadata (``jetlib.json``), manifest and shards."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jetlib.errors import StoreError, near_matches
from jetlib.store.layout import ShardLayout
from jetlib.store.manifest import Manifest
from jetlib.store.shards import read_shard

__all__ = ["Store", "ShardEntry", "FORMAT_VERSION", "META_NAME", "write_meta", "write_json"]

FORMAT_VERSION = 1
META_NAME = "jetlib.json"
#: the skim's plan: every task key and its number, written before any work
TASKS_NAME = "tasks.json"


@dataclass(frozen=True)
class ShardEntry:
    name: str
    path: Path
    jets: int
    bytes: int
    checksum: str
    task: str


def write_json(path: str | Path, obj: Any, *, indent: int | None = 1) -> None:
    """Write ``obj`` as JSON to ``path`` atomically: a hidden temporary file beside it,
    fsynced, then renamed (a reader sees the old file or the new one, never half of one).

    ``indent=None`` writes one line with the json module's C encoder (indenting falls back
    to its pure-Python encoder: 10x slower on the weight and stats tables).
    """
    write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (hidden temporary file beside it, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_meta(store: str | Path, meta: dict[str, Any]) -> None:
    """Write ``jetlib.json`` atomically."""
    write_json(Path(store) / META_NAME, meta)


class Store:
    """A jetlib store on disk.

    Examples:
        >>> store = Store("store/")                       # doctest: +SKIP
        >>> store.classes, store.n_jets                  # doctest: +SKIP
        >>> arrays = store.read(["jet_pt", "label"])     # all shards, concatenated  # doctest: +SKIP
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        meta_path = self.path / META_NAME
        if not self.path.is_dir():
            what = "a file, not a store folder" if self.path.exists() else "no such folder"
            near = []
            if not self.path.exists() and self.path.parent.is_dir():  # a typo: name stores beside it
                beside = [p.name for p in self.path.parent.iterdir() if (p / META_NAME).is_file()]
                near = near_matches(self.path.name, beside)
            hint = f" (did you mean {', '.join(str(self.path.parent / n) for n in near)}?)" if near else ""
            raise StoreError(f"{self.path}: {what}{hint}; give the --out folder of a `jetlib skim`")
        if not meta_path.is_file():
            raise StoreError(f"{self.path}: not a jetlib store (no {META_NAME}); create one with `jetlib skim`")
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text())
        except json.JSONDecodeError as err:
            raise StoreError(f"{meta_path}: unreadable metadata ({err})") from err
        version = self.meta.get("format_version")
        if version != FORMAT_VERSION:
            raise StoreError(
                f"{self.path}: store format version {version!r}, this jetlib reads version {FORMAT_VERSION}; "
                "re-skim the inputs or use the jetlib version that wrote it"
            )
        self.layout = ShardLayout.from_json(self.meta["arrays"])
        self.manifest = Manifest.of(self.path)
        # the manifest's latest records and the shards they list, kept while the manifest
        # file is unchanged (its size, time and inode: the key)
        self._latest: tuple[tuple[int, int, int] | None, dict[str, dict[str, Any]]] | None = None
        self._shards: list[ShardEntry] | None = None

    # -- metadata shortcuts -------------------------------------------------------------
    @property
    def blocks(self) -> dict[str, dict[str, Any]]:
        """Node blocks: name -> {features, length, padding, collections, ...}."""
        return self.meta["blocks"]

    @property
    def jet_features(self) -> list[str]:
        return self.meta["jet_features"]

    @property
    def classes(self) -> list[str]:
        return self.meta["labels"]["classes"]

    @property
    def truth(self) -> list[str]:
        return self.meta["truth"]

    @property
    def format(self) -> str:
        return self.meta["shards"]["format"]

    # -- manifest and shards -------------------------------------------------------------
    def latest(self) -> dict[str, dict[str, Any]]:
        """The manifest's latest record of each task (:meth:`Manifest.latest`; do not modify).

        Parsed again only when the manifest has changed (its size, time or inode): a large
        store's manifest has one line per task, and weights, stats and the Reader ask often.
        """
        try:
            st = os.stat(self.manifest.path)
            key: tuple[int, int, int] | None = (st.st_size, st.st_mtime_ns, st.st_ino)
        except FileNotFoundError:
            key = None
        if self._latest is None or self._latest[0] != key:
            self._latest = (key, self.manifest.latest())
            self._shards = None
        return self._latest[1]

    def shards(self) -> list[ShardEntry]:
        """Shards of the tasks marked done, in task order (the manifest is the truth)."""
        latest = self.latest()
        if self._shards is None:
            self._shards = self._read_shards(latest)
        return list(self._shards)

    def _read_shards(self, latest: dict[str, dict[str, Any]]) -> list[ShardEntry]:
        out = []
        for key in sorted(latest, key=lambda k: latest[k].get("task_id", 0)):
            rec = latest[key]
            if rec["status"] != "done":
                continue
            for s in rec.get("shards", []):
                out.append(ShardEntry(s["name"], self.path / "shards" / s["name"], s["jets"], s["bytes"], s["checksum"], key))
        return out

    def no_jets_error(self) -> StoreError:
        """The error for a step that needs jets on a store that has none, saying why."""
        latest = self.latest()
        done = sum(r["status"] == "done" for r in latest.values())
        if done:
            why = f"its {done} finished tasks selected no jets (check the skim's jet selection)"
        elif latest:
            why = (f"all {len(latest)} of its tasks failed or were skipped; `jetlib verify {self.path}` lists "
                   "their reasons: fix the inputs and re-run the skim")
        else:
            why = "no task has finished yet; run `jetlib skim` into it first, or wait for the one running"
        return StoreError(f"{self.path}: the store has no jets: {why}")

    def unfinished_tasks(self) -> list[str]:
        """Tasks of the skim's plan with no record in the manifest: a skim was interrupted
        (or is still running); re-running it does them. The ranges of a file that failed or
        was skipped when a later run opened it again are accounted for by that file's record,
        not listed here (see :meth:`partial_files`)."""
        try:
            planned = json.loads((self.path / TASKS_NAME).read_text())["tasks"]
        except (OSError, ValueError, KeyError, TypeError):  # no plan (older store): nothing to say
            return []
        latest = self.latest()
        unopened = self.unopened_files()
        return [k for k in planned if k not in latest and k.rsplit(":", 1)[0] not in unopened]

    def unopened_files(self) -> dict[str, dict[str, Any]]:
        """Input file -> its file record, for files that failed or were skipped when a run
        opened them (their entry ranges, planned or not, have no records of their own)."""
        return {r["file"]: r for r in self.latest().values() if r.get("kind") == "file" and r["status"] != "done"}

    def partial_files(self) -> list[str]:
        """Inputs of which the store holds some entry ranges, while the rest failed or was
        skipped (a file damaged in part, or gone when a later run opened it again)."""
        latest = self.latest().values()
        done = {r["file"] for r in latest if r.get("kind", "range") == "range" and r["status"] == "done"}
        return sorted({r["file"] for r in latest if r["status"] != "done" and r["file"] in done})

    def incomplete(self) -> str | None:
        """Why the store's done tasks are not all of its inputs, as a clause for a warning
        (failed tasks, planned tasks not finished, inputs held in part), or None."""
        failed = sum(r["status"] == "failed" for r in self.latest().values())
        unfinished = len(self.unfinished_tasks())
        partial = len(self.partial_files())
        why = [f"{failed} task(s) failed"] if failed else []
        why += [f"{unfinished} planned task(s) never finished (an interrupted skim: re-run it)"] if unfinished else []
        why += [f"{partial} input file(s) are in it only in part (`jetlib verify` names them)"] if partial else []
        return " and ".join(why) or None

    @property
    def n_jets(self) -> int:
        return sum(s.jets for s in self.shards())

    def made_from_this_state(self, jets: int | None, config_hash: str | None, n_jets: int | None = None) -> bool:
        """Whether weights or stats computed over ``jets`` jets of a store of ``config_hash``
        are current: the store still holds that many jets (``n_jets``, default its own count)
        and its configuration; an unknown count or hash (older files) is not held against them."""
        n = self.n_jets if n_jets is None else n_jets
        return jets in (None, n) and (config_hash or None) in (None, self.meta.get("config_hash"))

    def iter_read(self, names: list[str]) -> Iterator[tuple[ShardEntry, dict[str, np.ndarray]]]:
        """Read ``names`` shard by shard (bounded memory)."""
        for s in self.shards():
            if s.jets:
                yield s, read_shard(s.path, self.layout, names)

    def read(self, names: list[str]) -> dict[str, np.ndarray]:
        """Read ``names`` from every shard and concatenate (for small stores and tests)."""
        parts = [a for _, a in self.iter_read(names)]
        if not parts:
            return {n: np.zeros((0, *self.layout.arrays[n].inner), self.layout.arrays[n].dtype) for n in names}
        return {n: np.concatenate([p[n] for p in parts]) for n in names}

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, format={self.format!r}, jets={self.n_jets}, blocks={list(self.blocks)})"
