"""Open input files with clear errors.

Damaged ROOT files fail in many ways (PITFALLS.md): truncation → OSError, flipped bytes →
zlib.error (IsalError: a ZLIB basket that libdeflate refuses is inflated again with ISA-L),
broken baskets → DeserializationError, bad header → ValueError, zeroed tail →
AssertionError, missing branch → KeyInFileError. They all become :class:`InputFileError`
(or :class:`MissingBranchError`) naming the file and the cause.
"""

from __future__ import annotations

import os
import struct
import threading
import uuid
import zlib
from collections import OrderedDict
from pathlib import Path

import uproot

from jetlib.errors import InputFileError, MissingBranchError, error_name, one_line
from jetlib.source.filelist import is_remote

__all__ = ["CORRUPT_ERRORS", "check_header", "open_tree", "open_tree_cached", "forget_tree", "check_branches",
           "file_identity", "header_uuid"]


#: the end of the reason for a file without the schema's tree (a schema fault when no input has it)
NO_TREE_HINT = "; set `tree:` in the input schema"
#: how the message of a file without the schema's tree names a tree of a near name
DID_YOU_MEAN = "; did you mean "


def _fast_inflate() -> tuple[type[BaseException], ...]:
    """Have uproot inflate ZLIB baskets with libdeflate, then ISA-L, when it imports.

    Inflating is most of a skim's read. For one 20,000-event file of the benchmark sample
    (1,540 ZLIB blocks, 281 MB out), the standard library's zlib took 0.91 s, ISA-L
    (``isal``) 0.51 s and libdeflate (``deflate``) 0.44 s, with the same bytes out.

    uproot's basket reader decompresses through a ``_DecompressZLIB`` instance that its
    documented switch (``uproot.ZLIB.library``) does not reach (uproot 5.7), so the instance
    is set here: its library to ISA-L, and its ``decompress`` to libdeflate first (uproot's
    own ``"deflate"`` option calls the ``deflate`` package with an argument that 0.9
    renamed). libdeflate says only "Decompression failed" for any fault, so a block it
    refuses is inflated again by ISA-L, which decodes it or raises with the reason (e.g.
    an incorrect checksum): never less than before. Writing (``jetlib generate``) is
    untouched. Returns the error classes of damaged data (not subclasses of zlib.error).
    """
    errors: tuple[type[BaseException], ...] = ()
    try:
        from isal import isal_zlib

        errors = (isal_zlib.error,)
    except ImportError:  # pragma: no cover - isal is a dependency; stay correct without it
        isal_zlib = None
    inflater = getattr(uproot.compression, "_decompress_ZLIB", None)
    if inflater is None or getattr(inflater, "library", None) != "zlib" or "decompress" in vars(inflater):
        return errors  # another uproot layout, a user's own choice, or set already: left alone
    if isal_zlib is not None:
        inflater.library = "isal"
    try:
        import deflate
    except ImportError:  # pragma: no cover - deflate is a dependency
        return errors
    again = inflater.decompress  # the class's method, with ISA-L (or zlib)
    mine = inflater.library

    def decompress(data, uncompressed_bytes=None):
        # libdeflate only for a positive expected size (asked for 0 bytes it returns nothing
        # for any input, and uproot's length check would pass a damaged header), and while
        # nobody has set uproot's ZLIB library since (a later choice is respected)
        if uncompressed_bytes and inflater.library == mine:
            try:
                return deflate.zlib_decompress(data, uncompressed_bytes)
            except deflate.DeflateError:
                pass
        return again(data, uncompressed_bytes)

    inflater.decompress = decompress
    return errors


#: exception classes that mean "this file is damaged", not "try again"
CORRUPT_ERRORS: tuple[type[BaseException], ...] = (
    zlib.error,
    *_fast_inflate(),
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


#: the TFile header up to fUUID, for small (< 2 GB) and big files (ROOT's TFile::WriteHeader)
_HEADER_SMALL = struct.Struct(">4siiiiiiiBiiiH16s")
_HEADER_BIG = struct.Struct(">4siiqqiiiBiqiH16s")


def header_uuid(path: str) -> str | None:
    """The UUID in a local ROOT file's header, read without opening it with uproot; None
    when the file cannot be read or is not ROOT."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEADER_BIG.size)
    except OSError:
        return None
    if len(head) < _HEADER_SMALL.size or head[:4] != b"root":
        return None
    fields = _HEADER_BIG if struct.unpack(">i", head[4:8])[0] >= 1000000 else _HEADER_SMALL
    if len(head) < fields.size:
        return None
    return str(uuid.UUID(bytes=fields.unpack(head[: fields.size])[-1]))


def file_identity(t, path: str) -> dict:
    """``file_uuid`` and ``file_size`` of the file of an open tree: a file replaced under the
    same name has another UUID (ROOT writes a new one into every file it creates)."""
    f = t.file
    size = os.path.getsize(path) if not is_remote(path) else int(f.fEND)
    return {"file_uuid": str(f.uuid), "file_size": size}


def cluster_starts(t, branches: list[str]) -> list[int] | None:
    """Entries where every one of ``branches`` starts a new basket (a TTree's clusters), or
    None where the tree cannot say (an RNTuple, or no common boundary besides 0 and the end)."""
    try:
        starts = [int(x) for x in t.common_entry_offsets(filter_name=branches)]
    except (AttributeError, TypeError, ValueError, KeyError):
        return None
    return starts if len(starts) > 2 else None


def open_tree(path: str, tree: str):
    """Open ``tree`` in ``path`` (TTree or RNTuple)."""
    if not is_remote(path):
        check_header(path)
    try:
        # no array cache: a skim reads each entry range once, and uproot's default keeps up
        # to 100 MB of arrays per open file
        f = uproot.open(path, array_cache=None)
    except FileNotFoundError as err:
        raise InputFileError(path, "file not found", cause=error_name(err)) from err
    except ImportError as err:  # a protocol whose fsspec backend is not installed
        extra = "xrootd" if path.startswith("root://") else "http"
        raise InputFileError(path, f"cannot open this URL ({err}); pip install 'jetlib[{extra}]'",
                             cause="MissingDependency") from err  # fmt: skip
    except CORRUPT_ERRORS as err:
        raise InputFileError(path, f"cannot open as ROOT ({error_name(err)}: {one_line(err)})", cause=error_name(err)) from err
    try:
        keys = f.keys(cycle=False)
        if tree not in keys:
            from jetlib.errors import near_matches

            near = near_matches(tree, keys)
            raise InputFileError(
                path,
                f"no tree {tree!r} in the file (it has: {', '.join(keys[:10]) or 'nothing'})"
                + (f"{DID_YOU_MEAN}{near[0]!r}?" if near else "")
                + NO_TREE_HINT,
                cause="KeyInFileError",
            )
        return f[tree]
    except InputFileError:
        raise
    except CORRUPT_ERRORS as err:
        raise InputFileError(path, f"cannot read the tree ({error_name(err)}: {one_line(err)})", cause=error_name(err)) from err


#: trees of local files kept open in this process, most recently used last
_OPEN: OrderedDict[tuple, object] = OrderedDict()
_OPEN_LOCK = threading.Lock()
_OPEN_MAX = 4


def open_tree_cached(path: str, tree: str):
    """:func:`open_tree`, keeping the last few local files open in this process.

    A worker skims one file as several entry ranges; opening it again for each range read
    the TTree's metadata again (~80 ms for the 132-branch MiniAOD-like tree, about 8% of a
    5,000-event task). A file is reused only while its inode, size and modification time
    are unchanged; remote files are opened afresh (a hung connection is not reused).
    """
    if is_remote(path):
        return open_tree(path, tree)
    try:
        st = os.stat(path)
    except OSError:
        return open_tree(path, tree)  # gives the clear error
    key = (path, tree, st.st_ino, st.st_size, st.st_mtime_ns)
    with _OPEN_LOCK:
        t = _OPEN.get(key)
        if t is not None:
            _OPEN.move_to_end(key)
            return t
    t = open_tree(path, tree)
    with _OPEN_LOCK:
        _OPEN[key] = t
        while len(_OPEN) > _OPEN_MAX:
            _OPEN.popitem(last=False)
    return t


def forget_tree(path: str) -> None:
    """Drop ``path`` from the open-tree cache (after an error reading it)."""
    with _OPEN_LOCK:
        for key in [k for k in _OPEN if k[0] == path]:
            del _OPEN[key]


def tree_keys(t) -> list[str]:
    """Branch (TTree) or field (RNTuple) names, flat."""
    try:
        return list(t.keys(recursive=True, full_paths=False)) if hasattr(t, "field_names") else list(t.keys())
    except TypeError:
        return list(t.keys())


def check_branches(path: str, t, branches: list[str], schema: str) -> list[str]:
    """Raise :class:`MissingBranchError` naming the required branches that are absent (uproot
    would silently drop them for RNTuple, and for TTree with ``filter_name``). Returns the
    file's keys."""
    keys = tree_keys(t)
    have = set(keys)
    missing = [b for b in branches if b not in have]
    if missing:
        raise MissingBranchError(path, missing[0], keys, schema, missing[1:])
    return keys
