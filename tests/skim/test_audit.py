"""Findings of the skim audit: each test states the behaviour a user relies on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from miniaod_inputs import NANO, write_miniaod

from jetlib.skim.run import skim
from jetlib.store import Store
from jetlib.store.verify import verify

KW = dict(workers=1, dashboard_address=None, progress=False, entries_per_task=200)


def test_wrong_schema_fails_even_with_skip_bad_files_and_names_the_right_one(miniaod_files, tmp_path):
    s = skim([str(p) for p in miniaod_files], tmp_path / "store", schema="nanoaod", skip_bad_files=True, **KW)
    assert not s.ok and s.failed == 2 and s.skipped == 0 and s.done == 0
    for rec in Store(tmp_path / "store").manifest.latest().values():
        assert rec["status"] == "failed" and rec["error"] == "MissingBranchError"
        assert "not found" in rec["reason"] and "pass --schema miniaod" in rec["reason"]
        assert "damaged" not in rec["reason"]


@pytest.mark.skipif(not NANO.exists(), reason="../shared/data not present")
def test_nanoaod_read_as_miniaod_suggests_nanoaod(tmp_path):
    s = skim([str(NANO)], tmp_path / "store", **KW)
    (rec,) = s.failures
    assert rec["error"] == "MissingBranchError" and "pass --schema nanoaod" in rec["reason"]


def test_a_file_of_no_bundled_schema_says_to_check_the_schema(tmp_path):
    odd = write_miniaod(tmp_path / "odd.root", 20, drop=("PFCand_dxy",))
    s = skim([str(odd)], tmp_path / "store", skip_bad_files=True, **KW)
    (rec,) = s.failures
    assert rec["status"] == "failed" and "'PFCand_dxy' not found" in rec["reason"]
    assert "check --schema" in rec["reason"] and "damaged" not in rec["reason"]


def test_a_range_task_reports_a_missing_branch_as_a_schema_problem(tmp_path):
    """The same when a range task, not the file count, meets the missing branch."""
    from jetlib.config.inputs import load_input_schema
    from jetlib.config.skim import load_label_scheme, load_skim_config
    from jetlib.skim.plan import make_plan
    from jetlib.skim.task import Task, run_task

    f = write_miniaod(tmp_path / "f.root", 20)
    cfg = load_skim_config("default")
    plan = make_plan(load_input_schema("nanoaod"), cfg, load_label_scheme(cfg.labels))
    (tmp_path / "s" / "shards").mkdir(parents=True)
    rec = run_task(plan, Task(f"{f}:0-20", 0, str(f), 0, 20, 20), str(tmp_path / "s"), "hdf5", "lz4", None)
    assert rec["status"] == "failed" and rec["error"] == "MissingBranchError"
    assert "damaged" not in rec["reason"] and "pass --schema miniaod" in rec["reason"]


def _copies(files, folder: Path) -> list[str]:
    folder.mkdir()
    return [str(shutil.copy(p, folder / Path(p).name)) for p in files]


def test_resume_does_not_reopen_a_finished_file_that_is_gone(miniaod_files, tmp_path):
    files = _copies(miniaod_files, tmp_path / "data")
    out = tmp_path / "store"
    assert skim(files, out, **KW).ok
    lines = (out / "manifest.jsonl").read_text()
    Path(files[0]).unlink()  # unreachable now; its tasks are all done
    s = skim(files, out, **KW)
    assert s.ok and s.already_done == 4 and s.done == s.failed == 0
    assert (out / "manifest.jsonl").read_text() == lines  # nothing re-opened nor downgraded
    assert verify(out).ok
