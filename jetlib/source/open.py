"""Open input files with clear errors.

Damaged ROOT files fail in many ways (PITFALLS.md): truncation → OSError, flipped bytes →
zlib.error, broken baskets → DeserializationError, bad header → ValueError, zeroed tail →
AssertionError, missing branch → KeyInFileError. They all become :class:`InputFileError`
(or :class:`MissingBranchError`) naming the file and the cause.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import uproot

from jetlib.errors import InputFileError, MissingBranchError, error_name
from jetlib.source.filelist import is_remote

__all__ = ["CORRUPT_ERRORS", "check_header", "open_tree", "check_branches"]

#: exception classes that mean "this file is damaged", not "try again"
CORRUPT_ERRORS: tuple[type[BaseException], ...] = (
    zlib.error,
    uproot.DeserializationError,
    ValueError,
    AssertionError,
    KeyError,
    IndexError,
    struct.error,
    EOFError,
)


def check_header(path: str) -> None:
    """Cheap checks on a local file before uproot touches it: exists, ROOT magic, and the
    header's fEND (end of the last record) within the file size (truncation)."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(path, "file not found; check the path in your file list", cause="FileNotFoundError")
    if not p.is_file():
        raise InputFileError(path, "not a regular file (a folder, pipe or device); list ROOT files only", cause="NotAFile")
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(64)
    if len(head) < 4 or head[:4] != b"root":
        raise InputFileError(path, "not a ROOT file (no 'root' magic bytes)", cause="NotROOT")
    if len(head) < 21:
        raise InputFileError(path, f"truncated ROOT header ({size} bytes)", cause="Truncated")
    version = struct.unpack(">i", head[4:8])[0]
    big = version >= 1000000
    fend = struct.unpack(">q", head[12:20])[0] if big else struct.unpack(">i", head[12:16])[0]
    if fend > size:
        raise InputFileError(
            path, f"truncated: header says the file ends at byte {fend}, it has {size}; re-copy the file", cause="Truncated"
        )


def open_tree(path: str, tree: str):
    """Open ``tree`` in ``path`` (TTree or RNTuple)."""
    if not is_remote(path):
        check_header(path)
    try:
        f = uproot.open(path)
    except FileNotFoundError as err:
        raise InputFileError(path, "file not found", cause=error_name(err)) from err
    except ImportError as err:  # a protocol whose fsspec backend is not installed
        extra = "xrootd" if path.startswith("root://") else "http"
        raise InputFileError(path, f"cannot open this URL ({err}); pip install 'jetlib[{extra}]'",
                             cause="MissingDependency") from err  # fmt: skip
    except CORRUPT_ERRORS as err:
        raise InputFileError(path, f"cannot open as ROOT ({error_name(err)}: {err})", cause=error_name(err)) from err
    try:
        keys = f.keys(cycle=False)
        if tree not in keys:
            from jetlib.errors import near_matches

            near = near_matches(tree, keys)
            raise InputFileError(
                path,
                f"no tree {tree!r} in the file (it has: {', '.join(keys[:10]) or 'nothing'})"
                + (f"; did you mean {near[0]!r}?" if near else "")
                + "; set `tree:` in the input schema",
                cause="KeyInFileError",
            )
        return f[tree]
    except InputFileError:
        raise
    except CORRUPT_ERRORS as err:
        raise InputFileError(path, f"cannot read the tree ({error_name(err)}: {err})", cause=error_name(err)) from err


def tree_keys(t) -> list[str]:
    """Branch (TTree) or field (RNTuple) names, flat."""
    try:
        return list(t.keys(recursive=True, full_paths=False)) if hasattr(t, "field_names") else list(t.keys())
    except TypeError:
        return list(t.keys())


def check_branches(path: str, t, branches: list[str], schema: str) -> list[str]:
    """Raise :class:`MissingBranchError` for the first required branch that is absent
    (uproot would silently drop it for RNTuple, and for TTree with ``filter_name``).
    Returns the file's keys."""
    keys = tree_keys(t)
    have = set(keys)
    for b in branches:
        if b not in have:
            raise MissingBranchError(path, b, keys, schema)
    return keys
