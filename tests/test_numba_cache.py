"""Numba caches a compiled function by its own source file: a kernel that calls compiled
functions of another jetlib file would run stale cached code after an edit (a `git pull` in
an editable install) that changes only that other file. Each such file is stamped with its
hash in the caller's ``NUMBA_DEPENDS``, so that the edit reaches the caller's file too."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import jetlib

PACKAGE = Path(jetlib.__file__).parent
REPO = PACKAGE.parent


def _compiled(text: str) -> bool:
    """Whether a file defines Numba-compiled functions (jitted, or intrinsics)."""
    return "nb.njit" in text or "from numba.extending import intrinsic" in text


def _stamp(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _jetlib_imports(tree: ast.Module) -> list[Path]:
    out = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("jetlib."):
            path = REPO / (node.module.replace(".", "/") + ".py")
            if path.is_file():
                out.append(path)
    return out


def _declared(tree: ast.Module) -> dict | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "NUMBA_DEPENDS" for t in node.targets):
            return ast.literal_eval(node.value)
    return None


def test_cached_kernels_stamp_the_compiled_code_they_call():
    checked = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        if "cache=True" not in text:
            continue
        tree = ast.parse(text)
        deps = [d for d in _jetlib_imports(tree) if _compiled(d.read_text())]
        want = {str(d.relative_to(REPO)): _stamp(d) for d in deps}
        have = _declared(tree)
        where = path.relative_to(REPO)
        if not want:
            assert have in (None, {}), f"{where}: NUMBA_DEPENDS names files it no longer imports compiled code from"
            continue
        assert have == want, f"{where}: set NUMBA_DEPENDS = {want!r} (a file whose compiled functions it calls changed)"
        checked += 1
    assert checked >= 3  # nodes.py and truth.py (geometry.py), stats/quantiles.py (_bitmask.py)
