"""The manifest: an append-only JSON-lines record of every input file and entry range.

Only the client appends to it (never the workers), one line per finished task, fsynced.
A task's latest line wins, so a re-run that redoes a failed task supersedes its old line;
a task that runs twice is recorded once because the client commits each task key once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Manifest", "STATUSES", "done_uuids", "uuid_clashes", "nonfinite_totals", "nonfinite_text"]

STATUSES = ("done", "failed", "skipped")
MANIFEST_NAME = "manifest.jsonl"


@dataclass
class Manifest:
    path: Path

    @classmethod
    def of(cls, store: str | Path) -> Manifest:
        return cls(Path(store) / MANIFEST_NAME)

    def append(self, record: dict[str, Any]) -> None:
        if record.get("status") not in STATUSES:
            raise ValueError(f"manifest status must be one of {STATUSES}: {record!r}")
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        with open(self.path, "a+b") as f:
            if f.tell() > 0:  # after a torn last line (client killed mid-write), start a new line:
                f.seek(-1, os.SEEK_END)  # glued to the fragment, this record would be unreadable
                if f.read(1) != b"\n":
                    line = b"\n" + line
            f.write(line)  # append mode: always at the end
            f.flush()
            os.fsync(f.fileno())

    def _lines(self) -> Iterator[tuple[int, dict[str, Any] | None]]:
        """(line number from 1, record), the record None where the line is not a complete
        one: a fragment left by a client killed mid-write."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:  # bytes: a line of garbage (not UTF-8) is one bad line, not a crash
            for n, line in enumerate(f, 1):
                try:
                    yield n, json.loads(line)
                except ValueError:  # (JSONDecodeError, UnicodeDecodeError)
                    yield n, None

    def records(self) -> list[dict[str, Any]]:
        """All lines in order; a torn line (client killed mid-write) is ignored."""
        return [r for _, r in self._lines() if r is not None]

    def unreadable(self) -> list[int]:
        """Numbers (from 1) of the lines that :meth:`records` ignores."""
        return [n for n, r in self._lines() if r is None]

    def latest(self) -> dict[str, dict[str, Any]]:
        """The latest record of each task, by task key."""
        last: dict[str, dict[str, Any]] = {}
        for r in self.records():
            last[r["task"]] = r
        return last


def done_uuids(latest: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Input file -> the ROOT UUID its done tasks recorded (manifests written before the UUID
    was recorded have none: such files are not checked)."""
    return {r["file"]: r["file_uuid"] for r in latest.values() if r["status"] == "done" and r.get("file_uuid")}


def uuid_clashes(latest: dict[str, dict[str, Any]]) -> list[str]:
    """What the done tasks' ROOT UUIDs say is wrong with a store, as sentences: one input path
    whose ranges came from different files (replaced while a skim ran), or one file (UUID)
    done under two paths (a copy, or data moved and listed again): its events are in the
    store twice."""
    by_file: dict[str, set[str]] = {}
    for r in latest.values():
        if r["status"] == "done" and r.get("file_uuid") and r.get("kind", "range") == "range":
            by_file.setdefault(r["file"], set()).add(r["file_uuid"])
    out = [f"{f}: its done entry ranges come from different files (UUIDs {', '.join(sorted(u))}): the file was "
           "replaced while it was skimmed; re-skim with --overwrite" for f, u in sorted(by_file.items()) if len(u) > 1]  # fmt: skip
    by_uuid: dict[str, list[str]] = {}
    for f, us in sorted(by_file.items()):
        for u in us:
            by_uuid.setdefault(u, []).append(f)
    out += [f"{', '.join(fs)}: the same ROOT file (UUID {u}) done under {len(fs)} paths: its events are in the store "
            f"{len(fs)} times; re-skim with --overwrite from a list that names it once" for u, fs in by_uuid.items() if len(fs) > 1]  # fmt: skip
    return out


def nonfinite_totals(records) -> tuple[dict[str, int], list[str]]:
    """The non-finite counters (``nonfinite_*``) of done tasks summed over ``records``, and
    the files whose tasks have any, in order of appearance."""
    totals: dict[str, int] = {}
    files: dict[str, None] = {}
    for r in records:
        if r.get("status") != "done":
            continue
        for k, v in r.get("counters", {}).items():
            if k.startswith("nonfinite_") and v:
                totals[k] = totals.get(k, 0) + int(v)
                files[r["file"]] = None
    return totals, list(files)


def nonfinite_text(totals: dict[str, int], files: list[str]) -> str:
    """One sentence on what ``nan_policy: zero`` did, for the skim's summary and ``jetlib inspect``."""
    where = {"nonfinite_jet": "the jet features", "nonfinite_truth": "the truth"}
    zeroed = [f"{n:,} in {where.get(k, 'block ' + k[len('nonfinite_'):])}" for k, n in totals.items() if k != "nonfinite_jet_p4"]
    parts = [f"{', '.join(zeroed)} set to 0"] if zeroed else []
    if n := totals.get("nonfinite_jet_p4"):
        parts.append(f"{n:,} jet(s) left out (their pT, eta, phi or mass is NaN or inf)")
    more = f" and {len(files) - 1:,} more" if len(files) > 1 else ""
    return (f"non-finite input values in {files[0]}{more} (nan_policy zero): {'; '.join(parts)} "
            "(counts per task: the counters of manifest.jsonl; nan_policy: error fails such tasks instead)")
