"""Parse file lists: one path, glob or ``root://`` URL a line, ``#`` comments, blank lines."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

__all__ = ["InputFile", "parse_filelist"]


@dataclass(frozen=True)
class InputFile:
    path: str  # absolute local path or URL
    line: int  # line of the file list it came from
    problem: str | None = None  # why it cannot be read at all (recorded as failed)


def is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def parse_filelist(filelist: str | Path) -> list[InputFile]:
    """Entries of a file list, in order, globs expanded (sorted) and duplicates dropped.

    Relative paths are taken relative to the current directory, then to the file list's
    folder. A pattern that matches nothing or a missing path is kept with its ``problem`` so
    that the manifest accounts for it.
    """
    filelist = Path(filelist)
    out: list[InputFile] = []
    seen: set[str] = set()
    for n, raw in enumerate(filelist.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("root://") else raw.strip()
        if not line:
            continue
        if is_remote(line):
            items = [InputFile(line, n)]
        elif any(ch in line for ch in "*?["):
            base = line if Path(line).is_absolute() else (line if glob.glob(line) else str(filelist.parent / line))
            matches = sorted(glob.glob(base))
            items = [InputFile(str(Path(m).resolve()), n) for m in matches] or [
                InputFile(line, n, f"pattern matches no file (line {n} of {filelist})")
            ]
        else:
            p = Path(line.removeprefix("file://"))
            if not p.is_absolute() and not p.exists() and (filelist.parent / p).exists():
                p = filelist.parent / p
            problem = None if p.exists() else f"file not found (line {n} of {filelist})"
            items = [InputFile(str(p.resolve()), n, problem)]  # resolved even when missing: its name in the manifest
        for it in items:
            if it.path not in seen:
                seen.add(it.path)
                out.append(it)
    return out
