"""The per-process cache of open input trees: reused for the next entry range of a file,
never for a file that changed on disk, dropped after a read error."""

from __future__ import annotations

import os

import pytest

from jetlib.errors import InputFileError
from jetlib.source import open as source_open
from jetlib.source.open import forget_tree, open_tree_cached

from miniaod_inputs import write_miniaod


@pytest.fixture(autouse=True)
def empty_cache():
    source_open._OPEN.clear()
    yield
    source_open._OPEN.clear()


def test_reused_while_unchanged_then_reopened(tmp_path):
    path = write_miniaod(tmp_path / "a.root", 50, seed=1)
    t1 = open_tree_cached(str(path), "Events")
    assert open_tree_cached(str(path), "Events") is t1
    first = t1["event"].array(library="np")
    # the file is replaced by another (new content, new size and time): read afresh
    write_miniaod(tmp_path / "b.root", 80, seed=2)
    os.replace(tmp_path / "b.root", path)
    t2 = open_tree_cached(str(path), "Events")
    assert t2 is not t1
    assert t2.num_entries == 80 and t1.num_entries == 50
    assert t2["event"].array(library="np")[0] != first[0]


def test_at_most_a_few_files_stay_open(tmp_path):
    paths = [str(write_miniaod(tmp_path / f"f{i}.root", 10, seed=i)) for i in range(source_open._OPEN_MAX + 2)]
    trees = [open_tree_cached(p, "Events") for p in paths]
    assert len(source_open._OPEN) == source_open._OPEN_MAX
    assert open_tree_cached(paths[-1], "Events") is trees[-1]  # recent ones stay
    assert open_tree_cached(paths[0], "Events") is not trees[0]  # the oldest was dropped


def test_errors_are_not_cached_and_forget_drops_a_file(tmp_path):
    bad = tmp_path / "bad.root"
    bad.write_bytes(b"not a root file at all")
    for _ in range(2):
        with pytest.raises(InputFileError, match="not a ROOT file"):
            open_tree_cached(str(bad), "Events")
    assert not source_open._OPEN
    good = write_miniaod(tmp_path / "good.root", 10)
    t = open_tree_cached(str(good), "Events")
    forget_tree(str(good))
    assert open_tree_cached(str(good), "Events") is not t
