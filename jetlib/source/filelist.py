"""Parse the inputs of a skim: a file list (one path, glob or ``root://`` URL a line, ``#``
comments, blank lines), or ROOT files, globs and URLs given directly."""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["InputFile", "parse_filelist", "parse_inputs"]

_COMMENT = re.compile(r"\s#")
_GIVE = "give a text file with one ROOT file, glob or root:// URL a line, or the ROOT files, a glob or a URL directly"


@dataclass(frozen=True)
class InputFile:
    path: str  # absolute local path or URL
    line: int  # line of the file list (or number of the argument) it came from
    problem: str | None = None  # why it cannot be read at all (recorded as failed)


def is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def is_root_file(p: Path) -> bool:
    """Whether ``p`` starts as a ROOT file: the magic bytes ``root``, then the format version
    as a big-endian int32, whose first byte is 0 (versions stay below 2**24). A text file list
    never holds a NUL byte, so one that starts with ``root://`` or ``rootfiles/`` is a list."""
    try:
        with open(p, "rb") as f:
            head = f.read(5)
    except OSError:
        return False
    return head[:4] == b"root" and head[4:] in (b"", b"\0")  # (a file cut after the magic: ROOT, damaged)


def found_beside(name: Path, folder: Path, folder_is: str) -> Path | None:
    """A relative ``name`` that exists in ``folder`` (a file list's, a skim config's: names
    written there are found beside it as well as from the current directory), else None.

    Raises:
        ValueError: the current directory holds another file of that name (``folder_is``
            says which the other one is): say which is meant rather than pick one.
    """
    if name.is_absolute() or not (folder / name).exists():
        return None
    if name.exists() and not name.samefile(folder / name):
        raise ValueError(f"{str(name)!r} is both {name.resolve()} (from the current directory) and {(folder / name).resolve()} "
                         f"({folder_is}); write an absolute path")  # fmt: skip
    return folder / name


def _entries(line: str, n: int, base: Path, where: str) -> list[InputFile]:
    """The input files of one line (or argument); relative paths are taken relative to the
    current directory or to ``base``, wherever the file is. ``where`` names the line."""
    if is_remote(line):
        return [InputFile(line, n)]
    if _is_glob(line) and not Path(line).exists():
        pattern = line if Path(line).is_absolute() or glob.glob(line) else str(base / line)
        matches = sorted(glob.glob(pattern))
        return [InputFile(str(Path(m).resolve()), n) for m in matches] or [InputFile(line, n, f"pattern matches no file ({where})")]
    p = Path(line.removeprefix("file://"))
    try:
        p = found_beside(p, base, "from the file list's folder") or p
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    problem = None if p.exists() else f"file not found ({where})"
    return [InputFile(str(p.resolve()), n, problem)]  # resolved even when missing: its name in the manifest


def _unique(items: list[InputFile]) -> list[InputFile]:
    seen: set[str] = set()
    return [it for it in items if not (it.path in seen or seen.add(it.path))]


def parse_filelist(filelist: str | Path) -> list[InputFile]:
    """Entries of a file list, in order, globs expanded (sorted) and duplicates dropped.

    Relative paths are taken relative to the current directory or to the file list's folder,
    wherever the file is; a name that is a different file in both is an error. ``#`` starts a
    comment at the start of a line or after a space (``data/run#2.root`` is a path). A pattern that matches nothing or a missing path is kept with its ``problem`` so
    that the manifest accounts for it. A UTF-8 byte-order mark at the start is ignored.
    """
    filelist = Path(filelist)
    try:
        text = filelist.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValueError(f"{filelist}: no such file list; {_GIVE}") from None
    except IsADirectoryError:
        raise ValueError(f"{filelist}: is a folder; {_GIVE} (e.g. '{filelist}/*.root')") from None
    except UnicodeDecodeError:
        raise ValueError(f"{filelist}: not a text file list (nor a ROOT file); {_GIVE}") from None
    items: list[InputFile] = []
    for n, line in _lines(text):
        items += _entries(line, n, filelist.parent, f"line {n} of {filelist}")
    return _unique(items)


def _lines(text: str):
    """(line number, entry) of a file list's text, without comments and blank lines."""
    for n, raw in enumerate(text.splitlines(), start=1):
        # a comment starts a line or follows a space: a '#' inside a path (run#2.root) or a
        # URL is part of it
        line = raw.strip()
        line = "" if line.startswith("#") else _COMMENT.split(line, 1)[0].strip()
        if line:
            yield n, line


#: the largest file taken for a file list among several arguments (500 paths are ~50 kB)
_MAX_LIST_BYTES = 16 << 20


def _is_filelist(p: Path) -> bool:
    """Whether ``p``, one of several arguments, reads as a file list: text whose entries all
    name ROOT files, globs or URLs. Another file (a README, a tarball, an empty file in a
    shell-expanded ``dir/*``) is an input like the others, recorded as not ROOT."""
    try:
        if p.stat().st_size > _MAX_LIST_BYTES:  # (not read into memory to find out)
            return False
        entries = [line for _, line in _lines(p.read_text(encoding="utf-8-sig"))]
    except (OSError, UnicodeDecodeError):
        return False
    return bool(entries) and all(is_remote(e) or e.endswith(".root") or _is_glob(e) for e in entries)


def parse_inputs(inputs: str | Path | list[str] | tuple[str, ...]) -> list[InputFile]:
    """The input files of a skim: ``inputs`` is a file list, or a ROOT file (``.root`` name or
    ROOT magic bytes), a glob or a URL given directly, or a list of any of these (file lists
    are expanded; duplicates dropped)."""
    many = isinstance(inputs, list | tuple)
    items: list[InputFile] = []
    for n, text in enumerate(map(str, inputs if many else [inputs]), 1):
        direct = is_remote(text) or text.endswith(".root") or (_is_glob(text) and not Path(text).exists())
        # a lone argument that is not ROOT is a file list (a missing one is an error); one of
        # several is one if it reads as one, else an input (missing or not ROOT: recorded)
        if direct or is_root_file(Path(text)) or (many and not (Path(text).is_file() and _is_filelist(Path(text)))):
            items += _entries(text, n, Path.cwd(), f"argument {n}")
        else:
            items += parse_filelist(text)
    return _unique(items)
