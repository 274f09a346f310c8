"""Findings of the skim audit: each test states the behaviour a user relies on."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from miniaod_inputs import NANO, write_miniaod

from jetlib.skim.run import skim
from jetlib.store import Store
from jetlib.store.verify import verify

KW = dict(workers=1, dashboard_address=None, progress=False, entries_per_task=200)


@pytest.fixture
def schema_checked_by_workers(monkeypatch):
    """No input checked against the schema before the store is made (as for remote inputs,
    or a misfit past the first few files): the workers' failure records say what is wrong."""
    monkeypatch.setattr("jetlib.skim.run._CHECK_UP_FRONT", 0)


def test_wrong_schema_fails_even_with_skip_bad_files_and_names_the_right_one(miniaod_files, tmp_path, schema_checked_by_workers):
    s = skim([str(p) for p in miniaod_files], tmp_path / "store", schema="nanoaod", skip_bad_files=True, **KW)
    assert not s.ok and s.failed == 2 and s.skipped == 0 and s.done == 0
    for rec in Store(tmp_path / "store").manifest.latest().values():
        assert rec["status"] == "failed" and rec["error"] == "MissingBranchError"
        assert "not found" in rec["reason"] and "pass --schema miniaod" in rec["reason"]
        assert "damaged" not in rec["reason"]


@pytest.mark.skipif(not NANO.exists(), reason="../shared/data not present")
def test_nanoaod_read_as_miniaod_suggests_nanoaod(tmp_path, schema_checked_by_workers):
    s = skim([str(NANO)], tmp_path / "store", **KW)
    (rec,) = s.failures
    assert rec["error"] == "MissingBranchError" and "pass --schema nanoaod" in rec["reason"]


def test_a_file_of_no_bundled_schema_says_to_check_the_schema(tmp_path, schema_checked_by_workers):
    odd = write_miniaod(tmp_path / "odd.root", 20, drop=("PFCand_dxy",))
    s = skim([str(odd)], tmp_path / "store", skip_bad_files=True, **KW)
    (rec,) = s.failures
    assert rec["status"] == "failed" and "'PFCand_dxy' not found" in rec["reason"]
    assert "check --schema" in rec["reason"] and "damaged" not in rec["reason"]


def test_every_missing_branch_is_named_at_once(tmp_path, schema_checked_by_workers):
    """Mapping a new ntuple should not take one skim per missing branch."""
    odd = write_miniaod(tmp_path / "odd.root", 20, drop=("Jet_area", "Rho_fixedGridRhoFastjetAll", "Muon_pfRelIso04_all"))
    s = skim([str(odd)], tmp_path / "store", **KW)
    (rec,) = s.failures
    assert rec["error"] == "MissingBranchError" and "branch 'Jet_area' not found (nor 2 other branch(es) the schema names: " in rec["reason"]
    assert "Rho_fixedGridRhoFastjetAll" in rec["reason"] and "Muon_pfRelIso04_all" in rec["reason"]


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


def _rewrite(path: str, seed: int) -> None:
    """Replace a file by another one of the same name, size class and entries."""
    write_miniaod(Path(path), 300, seed=seed)


def test_a_replaced_input_is_named_on_resume_and_by_verify(miniaod_files, tmp_path):
    import uproot

    from jetlib.errors import StoreError

    files = _copies(miniaod_files, tmp_path / "data")
    out = tmp_path / "store"
    assert skim(files, out, **KW).ok
    recs = Store(out).manifest.latest().values()
    for f in files:
        with uproot.open(f) as u:
            want = {(str(u.file.uuid), Path(f).stat().st_size)}
        assert {(r["file_uuid"], r["file_size"]) for r in recs if r["file"] == f} == want
    # a finished file replaced: the resume refuses, the store is untouched
    lines = (out / "manifest.jsonl").read_text()
    _rewrite(files[0], seed=10)
    with pytest.raises(StoreError, match=rf"{files[0]} \(UUID .*\): the file changed since it was skimmed; restore it, or re-skim with --overwrite"):
        skim(files, out, **KW)
    assert (out / "manifest.jsonl").read_text() == lines
    problems = [p for p in verify(out, inputs=True).errors if p.check == "inputs"]
    assert [p.where for p in problems] == [files[0]] and "changed since it was skimmed" in problems[0].message
    # a file with a task still to do is opened, and refused the same way
    shutil.copy(miniaod_files[0], files[0])
    _rewrite(files[1], seed=11)
    kept = [line for line in lines.splitlines(keepends=True) if f"{files[1]}:0-200" not in line]  # a task unfinished
    (out / "manifest.jsonl").write_text("".join(kept))
    with pytest.raises(StoreError, match=rf"{files[1]} \(UUID .*\): the file changed since it was skimmed"):
        skim(files, out, **KW)


def test_a_manifest_without_file_uuids_still_resumes_and_verifies(miniaod_files, tmp_path):
    import json

    files = _copies(miniaod_files, tmp_path / "data")
    out = tmp_path / "store"
    assert skim(files, out, **KW).ok
    old = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    for r in old:
        del r["file_uuid"], r["file_size"]
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old[:-1]))  # one task to redo
    s = skim(files, out, **KW)
    assert s.ok and s.done == 1 and s.already_done == 3
    assert verify(out, inputs=True).ok


def test_done_counts_range_tasks_only_when_a_failed_file_comes_back(miniaod_files, tmp_path):
    files = _copies(miniaod_files, tmp_path / "data")
    out = tmp_path / "store"
    shutil.move(files[1], tmp_path / "away.root")
    s = skim(files, out, **KW)
    assert s.failed == 1 and s.done == 2
    shutil.move(tmp_path / "away.root", files[1])
    s = skim(files, out, **KW)
    assert s.ok and s.done == 2 and s.already_done == 2  # 300 events: 2 tasks of 200
    assert verify(out).ok


def test_fail_fast_stops_on_a_file_that_does_not_open(miniaod_files, tmp_path):
    notroot = tmp_path / "notroot.root"
    notroot.write_text("not ROOT\n")
    files = [str(p) for p in miniaod_files] + [str(notroot)]
    s = skim(files, tmp_path / "store", fail_fast=True, **KW)
    assert s.failed == 1 and s.done == 0 and s.failures[0]["file"] == str(notroot)
    assert [r["status"] for r in Store(tmp_path / "store").manifest.records()] == ["failed"]  # no range task ran
    # the good files are in the plan, unfinished (counted or not when the run stopped): the
    # store of the failure alone does not pass for complete, even with --allow-failed
    rep = verify(tmp_path / "store", allow_failed=True)
    assert not rep.ok and rep.tasks["failed"] == 1 and rep.tasks["missing"] >= 2
    assert {p.where.rsplit(":", 1)[0] for p in rep.errors} == {str(Path(f).resolve()) for f in miniaod_files}
    assert len(Store(tmp_path / "store").unfinished_tasks()) == rep.tasks["missing"]
    s = skim(files, tmp_path / "store", **KW)  # the same list without --fail-fast: the rest is done
    assert s.failed == 1 and s.done == 4 and verify(tmp_path / "store", allow_failed=True).ok
    # a file missing from the list stops it before any file is opened; dropping the others
    # from the list with --skip-bad-files gives them up (the never-opened ones too)
    s = skim(files + [str(tmp_path / "gone.root")], tmp_path / "store2", fail_fast=True, **KW)
    assert s.failed == 1 and s.done == 0 and s.workers == 0 and "not found" in s.failures[0]["reason"]
    rep = verify(tmp_path / "store2", allow_failed=True)
    assert rep.tasks["missing"] == 3 and all("never opened (a --fail-fast run stopped first)" in p.message for p in rep.errors)
    s = skim(files[:1], tmp_path / "store2", skip_bad_files=True, **KW)
    assert s.done == 2 and verify(tmp_path / "store2").ok
    skipped = [r for r in Store(tmp_path / "store2").latest().values() if r["status"] == "skipped"]
    assert sorted(r["file"] for r in skipped) == sorted([str(Path(files[1]).resolve()), str(notroot), str(tmp_path / "gone.root")])
    # --skip-bad-files: a damaged file is skipped and the run goes on; a schema mismatch still stops it
    s = skim(files, tmp_path / "store3", fail_fast=True, skip_bad_files=True, **KW)
    assert s.skipped == 1 and s.done == 4
    s = skim(files, tmp_path / "store4", schema="nanoaod", fail_fast=True, skip_bad_files=True, **KW)
    assert s.failed >= 1 and s.done == 0


@pytest.mark.parametrize("option, kw", [
    ("--workers must be >= 1, or 0 for one per core (got -3)", dict(workers=-3)),
    ("--task-timeout must be a number of seconds >= 0, 0 for no limit (got -1)", dict(task_timeout=-1)),
    ("--entries-per-task must be >= 1 (got 0)", dict(entries_per_task=0)),
])  # fmt: skip
def test_invalid_numbers_are_refused_before_anything_starts(miniaod_files, tmp_path, option, kw):
    with pytest.raises(ValueError, match=re.escape(option)):
        skim([str(p) for p in miniaod_files], tmp_path / "store", **{**KW, **kw})
    assert not (tmp_path / "store").exists()


def test_cli_refuses_negative_workers_with_exit_2(miniaod_files, tmp_path):
    from typer.testing import CliRunner

    from jetlib.cli import app

    (tmp_path / "files.txt").write_text(str(miniaod_files[0]) + "\n")
    res = CliRunner().invoke(app, ["skim", str(tmp_path / "files.txt"), "--out", str(tmp_path / "s"), "--workers", "-3"])
    assert res.exit_code == 2 and "--workers must be >= 1" in res.output and "Traceback" not in res.output


def test_inputs_given_directly_and_a_list_with_a_byte_order_mark(miniaod_files, tmp_path, monkeypatch):
    from jetlib.source.filelist import parse_inputs

    a, b = (str(Path(p).resolve()) for p in miniaod_files)
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf" + f"{a}\n{b}\n".encode())
    assert [f.path for f in parse_inputs(bom)] == [a, b] and not any(f.problem for f in parse_inputs(bom))
    monkeypatch.chdir(Path(a).parent)
    assert [f.path for f in parse_inputs(Path(a).name)] == [a]  # a .root file: a one-entry list
    assert [f.path for f in parse_inputs("good_*.root")] == [a, b]
    assert [f.path for f in parse_inputs("root://host//f.root")] == ["root://host//f.root"]
    with pytest.raises(ValueError, match="nothere.txt: no such file list; give a text file"):
        parse_inputs("nothere.txt")
    # a list whose first bytes are 'root' (a URL, a relative rootfiles/ folder) is a list, not a
    # ROOT file with a broken header, alone or among several arguments; a ROOT file cut after
    # its magic bytes is still a ROOT file, to be recorded as damaged
    (tmp_path / "remote.txt").write_text("root://host//f.root\n")
    (tmp_path / "rootfiles").mkdir()
    (tmp_path / "rootfiles" / "a.root").write_bytes(Path(a).read_bytes())
    (tmp_path / "rel.txt").write_text("rootfiles/a.root\n")
    for args in (str(tmp_path / "remote.txt"), [str(tmp_path / "remote.txt"), a]):
        assert [f.path for f in parse_inputs(args)][:1] == ["root://host//f.root"]
    assert [f.path for f in parse_inputs(tmp_path / "rel.txt")] == [str(tmp_path / "rootfiles" / "a.root")]
    head = Path(a).read_bytes()[:6]
    for cut in (4, 6):
        (tmp_path / "cut.dat").write_bytes(head[:cut])
        assert [f.path for f in parse_inputs(str(tmp_path / "cut.dat"))] == [str(tmp_path / "cut.dat")]
    (tmp_path / "blob.bin").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ValueError, match="blob.bin: not a text file list"):
        parse_inputs(tmp_path / "blob.bin")



def test_several_arguments_expand_each_file_list(miniaod_files, tmp_path):
    """`jetlib skim a.txt b.txt` skims the files the lists name, not the lists as ROOT files."""
    from jetlib.source.filelist import parse_inputs

    a, b = (str(Path(p).resolve()) for p in miniaod_files)
    (tmp_path / "one.txt").write_text(f"# first\n{a}\n")
    (tmp_path / "two.txt").write_text(f"{b}\n{tmp_path / 'gone.root'}\n")
    got = parse_inputs([str(tmp_path / "one.txt"), str(tmp_path / "two.txt")])
    assert [f.path for f in got] == [a, b, str(tmp_path / "gone.root")]
    assert [f.problem is None for f in got] == [True, True, False]  # the missing entry is kept, to be recorded
    # a ROOT file beside a list, the same file twice, and an argument that is no file at all
    got = parse_inputs([b, str(tmp_path / "one.txt"), a, str(tmp_path / "missing_list.txt")])
    assert [f.path for f in got] == [b, a, str(tmp_path / "missing_list.txt")]
    assert "file not found (argument 4)" in got[-1].problem
    # a shell-expanded dir/*: a README, a tarball and an empty file stay inputs (recorded as
    # not ROOT by the skim), not lists to read or drop
    (tmp_path / "README").write_text("Produced with CRAB.\nSee the twiki.\n")
    (tmp_path / "log.tar.gz").write_bytes(b"\x1f\x8b\x08\x00binary")
    (tmp_path / "empty").write_text("")
    others = [str(tmp_path / n) for n in ("README", "log.tar.gz", "empty")]
    assert [f.path for f in parse_inputs([a, *others])] == [a, *others]

def test_cli_skims_a_root_file_given_directly(miniaod_files, tmp_path):
    from typer.testing import CliRunner

    from jetlib.cli import app

    res = CliRunner().invoke(app, ["skim", str(miniaod_files[0]), "--out", str(tmp_path / "s"), "--workers", "1",
                                  "--no-progress", "--dashboard-address", "", "--entries-per-task", "200"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert {r["file"] for r in Store(tmp_path / "s").manifest.records()} == {str(Path(miniaod_files[0]).resolve())}
    # besides the wall-time jets/s, the rate while the workers worked (from the task records)
    done = [r for r in Store(tmp_path / "s").manifest.latest().values() if r["status"] == "done"]
    busy = sum(sum(r["seconds"].values()) for r in done)
    assert f"({sum(r['jets'] for r in done) / busy:,.0f} jets/s per worker while working)" in res.output.replace("\n", " ")


def test_cli_wrong_schema_is_refused_before_a_store_is_made(miniaod_files, tmp_path):
    """A --schema the first listed files do not fit: exit 2, no store (a store of failed
    records refused the right --schema as another configuration), the right one named."""
    from typer.testing import CliRunner

    from jetlib.cli import app

    base = ["skim", str(miniaod_files[0]), "--out", str(tmp_path / "s"), "--workers", "1", "--no-progress",
            "--dashboard-address", "", "--entries-per-task", "200"]  # fmt: skip
    res = CliRunner().invoke(app, [*base, "--schema", "nanoaod"], env={"COLUMNS": "400"})
    assert res.exit_code == 2 and "no store made" in res.output and "pass --schema miniaod" in res.output, res.output
    assert not (tmp_path / "s" / "jetlib.json").exists()
    res = CliRunner().invoke(app, [*base, "--schema", "miniaod"])  # no --overwrite needed
    assert res.exit_code == 0, res.output
    assert Store(tmp_path / "s").n_jets > 0


def test_cli_wrong_schema_ends_with_the_fix_and_the_fix_works(miniaod_files, tmp_path, schema_checked_by_workers):
    """The last line of a skim with the wrong --schema says to change --schema, not to fix
    the files; with --overwrite the suggested command then fills the store it left empty."""
    from typer.testing import CliRunner

    from jetlib.cli import app

    base = ["skim", str(miniaod_files[0]), "--out", str(tmp_path / "s"), "--workers", "1", "--no-progress",
            "--dashboard-address", "", "--entries-per-task", "200"]  # fmt: skip
    res = CliRunner().invoke(app, [*base, "--schema", "nanoaod"], env={"COLUMNS": "400"})
    last = res.output.strip().splitlines()[-1]
    assert res.exit_code == 1 and "fix --schema" in last and "--overwrite" in last and "fix or remove" not in last, res.output
    assert "pass --schema miniaod" in res.output
    res = CliRunner().invoke(app, [*base, "--schema", "miniaod", "--overwrite"])
    assert res.exit_code == 0, res.output
    assert Store(tmp_path / "s").n_jets > 0


def test_cli_failure_lines_keep_their_brackets(tmp_path, monkeypatch):
    """Reasons are printed as text, not rich markup: '[xrootd]' in the advice stays."""
    from typer.testing import CliRunner

    import jetlib.skim.run
    from jetlib.cli import app
    from jetlib.skim.run import SkimSummary

    reason = "root://eos//f[1].root: cannot open this URL (no xrootd); pip install 'jetlib[xrootd]'"
    rec = {"task": "root://eos//f[1].root:file", "status": "failed", "error": "MissingDependency", "reason": reason}
    monkeypatch.setattr(jetlib.skim.run, "skim", lambda *a, **kw: SkimSummary(tmp_path / "[s]", failed=1, failures=[rec]))
    (tmp_path / "files.txt").write_text("root://eos//f[1].root\n")
    res = CliRunner().invoke(app, ["skim", str(tmp_path / "files.txt"), "--out", str(tmp_path / "s")])
    text = res.output.replace("\n", "")
    assert res.exit_code == 1 and f"failed root://eos//f[1].root:file: MissingDependency: {reason}" in text, res.output


def test_refusal_names_the_settings_that_differ(miniaod_files, tmp_path):
    import yaml

    from jetlib.config.skim import load_label_scheme, load_skim_config
    from jetlib.errors import StoreError

    raw = load_skim_config("default").raw
    raw["blocks"]["pf"]["length"] = 40
    (tmp_path / "pf40.yaml").write_text(yaml.safe_dump(raw))
    files = [str(p) for p in miniaod_files]
    out = tmp_path / "store"
    assert skim(files, out, **KW).ok
    with pytest.raises(StoreError, match=r"another configuration \(compression lz4 -> zstd, blocks\.pf\.length 50 -> 40\); pass --overwrite"):
        skim(files, out, compression="zstd", config=str(tmp_path / "pf40.yaml"), **KW)
    with pytest.raises(StoreError, match=r"another configuration \(schema miniaod -> nanoaod\)"):
        skim(files, out, schema="nanoaod", **KW)
    # a store of older value definitions (ppar_ratio, labels) is not resumed with newer ones
    meta = json.loads((out / "jetlib.json").read_text())
    del meta["definitions"]
    meta["config_hash"] = "0" * 16
    (out / "jetlib.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match=r"another configuration \(definitions 1 -> 3\); pass --overwrite"):
        skim(files, out, **KW)
    from jetlib.config.inputs import load_input_schema
    from jetlib.skim import run
    from jetlib.skim.plan import make_plan

    cfg = load_skim_config("default")
    plan = make_plan(load_input_schema("miniaod"), cfg, load_label_scheme(cfg.labels))
    now = run.build_meta(plan, fmt="hdf5", compression="lz4", entries_per_task=200)["config_hash"]
    run.DEFINITIONS, kept = 1, run.DEFINITIONS
    try:  # the hash itself moves with the definitions (the message above is only their display)
        assert run.build_meta(plan, fmt="hdf5", compression="lz4", entries_per_task=200)["config_hash"] != now
    finally:
        run.DEFINITIONS = kept


@pytest.mark.parametrize("signame, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_prints_one_line_with_how_far_it_got(miniaod_files, tmp_path, signame, code):
    """Ctrl-C reaches the whole process group (client and workers): the skim says how far
    it got in one line, with no worker tracebacks, and exits 130. So does a batch system's
    SIGTERM (pre-emption, a time limit), with 143."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "store"
    (tmp_path / "files.txt").write_text("".join(f"{f}\n" for f in miniaod_files))
    cmd = [sys.executable, "-c", "from jetlib.cli import main; main()", "skim", str(tmp_path / "files.txt"), "--out", str(out),
           "--workers", "1", "--entries-per-task", "1", "--no-progress", "--dashboard-address", ""]  # fmt: skip
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    try:
        while p.poll() is None and not ((out / "manifest.jsonl").exists() and (out / "manifest.jsonl").read_text().count("\n") >= 3):
            time.sleep(0.05)
        assert p.poll() is None, p.communicate()
        os.killpg(p.pid, getattr(signal, signame))
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    done = len(Store(out).manifest.records())
    assert p.returncode == code and err.splitlines() == [f"interrupted: {done} of 600 tasks done; re-run the same command to resume"]
    assert verify(out, quick=True).tasks == {"done": done, "missing": 600 - done}  # what a re-run resumes


def test_no_readable_input_makes_no_store(miniaod_files, tmp_path):
    """A typo in every path or glob is an error before any store is made; on an existing
    store the same inputs are recorded as failed (the manifest accounts for them)."""
    with pytest.raises(ValueError, match=r"no input to skim, no store made: .*nomatch\*\.root: pattern matches no file"):
        skim([str(tmp_path / "nomatch*.root")], tmp_path / "s", **KW)
    assert not (tmp_path / "s").exists()
    skim([str(miniaod_files[0])], tmp_path / "s", **KW)
    s = skim([str(tmp_path / "gone.root")], tmp_path / "s", **KW)
    assert s.failed == 1 and s.failures[0]["error"] == "FileNotFoundError"


def test_cli_failure_line_says_how_to_drop_an_input(miniaod_files, tmp_path):
    from typer.testing import CliRunner

    from jetlib.cli import app

    (tmp_path / "notroot.root").write_text("not a ROOT file\n")
    (tmp_path / "files.txt").write_text(f"{miniaod_files[0]}\n{tmp_path / 'notroot.root'}\n")
    res = CliRunner().invoke(app, ["skim", str(tmp_path / "files.txt"), "--out", str(tmp_path / "s"), "--workers", "1",
                                  "--no-progress", "--dashboard-address", "", "--entries-per-task", "200"],
                             env={"COLUMNS": "400"})  # fmt: skip
    last = res.output.strip().splitlines()[-1]
    assert res.exit_code == 1 and "--skip-bad-files" in last and "--overwrite" in last, res.output
    # and the advice works: the damaged input is recorded skipped, the run succeeds
    res = CliRunner().invoke(app, ["skim", str(tmp_path / "files.txt"), "--out", str(tmp_path / "s"), "--workers", "1",
                                  "--no-progress", "--dashboard-address", "", "--entries-per-task", "200", "--skip-bad-files"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert Store(tmp_path / "s").manifest.latest()[f"{(tmp_path / 'notroot.root').resolve()}:file"]["status"] == "skipped"


def test_cli_warns_when_no_jet_passes_the_selection(miniaod_files, tmp_path):
    """A skim that reads events but keeps no jet (a cut beyond the inputs' range) says so,
    instead of a plain success that weights and stats later fail on."""
    from typer.testing import CliRunner

    from jetlib.cli import app

    default = (Path(__file__).parents[2] / "schemas" / "skim" / "default.yaml").read_text()
    assert "  min_pt: 15.0\n" in default
    cfg = tmp_path / "hard.yaml"
    cfg.write_text(default.replace("  min_pt: 15.0\n", "  min_pt: 5000.0\n", 1))
    args = ["skim", str(miniaod_files[0]), "--workers", "1", "--no-progress", "--dashboard-address", "", "--entries-per-task", "200"]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "s"), "--config", str(cfg)], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "no jet of the 300 events read passed the selection of skim config" in out and "hard.yaml" in out
    assert Store(tmp_path / "s").n_jets == 0
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "ok")], env={"COLUMNS": "300"})
    assert res.exit_code == 0 and "no jet of the" not in res.output and Store(tmp_path / "ok").n_jets > 0


def test_rerun_with_fewer_inputs_says_the_others_stay(miniaod_files, tmp_path):
    """A shorter list does not take inputs out of a store; the skim says so, with their jets."""
    from typer.testing import CliRunner

    from jetlib.cli import app

    args = ["--out", str(tmp_path / "s"), "--workers", "1", "--no-progress", "--dashboard-address", "", "--entries-per-task", "200"]
    (tmp_path / "both.txt").write_text("\n".join(str(p) for p in miniaod_files) + "\n")
    (tmp_path / "one.txt").write_text(f"{miniaod_files[0]}\n")
    res = CliRunner().invoke(app, ["skim", str(tmp_path / "both.txt"), *args], env={"COLUMNS": "400"})
    assert res.exit_code == 0 and "note: the store also has records" not in res.output
    st = Store(tmp_path / "s")
    second = str(Path(miniaod_files[1]).resolve())
    jets = sum(r["jets"] for r in st.manifest.latest().values() if r["kind"] == "range" and r["file"] == second)
    res = CliRunner().invoke(app, ["skim", str(tmp_path / "one.txt"), *args], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    assert f"note: the store also has records of 1 input file(s) not in this list ({jets:,} jets; e.g. {second})" in res.output
    assert Store(tmp_path / "s").n_jets == st.n_jets
    # a failed input dropped from the list: its failure stays, and the note says what clears it
    bad = tmp_path / "bad.root"
    bad.write_text("not ROOT\n")
    res = CliRunner().invoke(app, ["skim", str(tmp_path / "one.txt"), str(bad), *args], env={"COLUMNS": "400"})
    assert res.exit_code == 1
    res = CliRunner().invoke(app, ["skim", str(tmp_path / "one.txt"), *args], env={"COLUMNS": "400"})
    said = " ".join(res.output.split())
    assert res.exit_code == 0 and not verify(tmp_path / "s").ok
    assert (f"not in this list ({jets:,} jets; e.g. {second}): they stay in it; 1 of them failed (e.g. {bad}): `jetlib verify` "
            "fails until a run with --skip-bad-files gives them up") in said
    res = CliRunner().invoke(app, ["skim", str(tmp_path / "one.txt"), "--skip-bad-files", *args], env={"COLUMNS": "400"})
    assert res.exit_code == 0 and verify(tmp_path / "s").ok


@pytest.mark.parametrize(
    "old, new, says",
    [
        ("{iso: Muon_pfRelIso04_all}", "{iso: Rho_fixedGridRhoFastjetAll}",
         "branch Rho_fixedGridRhoFastjetAll holds one value per event"),
        ("{iso: Muon_pfRelIso04_all}", "{iso: Electron_pfRelIso03_all}",
         "branch Electron_pfRelIso03_all (Muon.iso) has other counts per event than Muon_pt"),
        ("rho: Rho_fixedGridRhoFastjetAll", "rho: Jet_area", "event field 'rho' of the input schema needs one number per event"),
    ],
)  # fmt: skip
def test_a_branch_of_the_wrong_shape_is_a_schema_error_not_damage(miniaod_files, tmp_path, old, new, says):
    """A schema that maps a branch of another shape (an event value into a collection, another
    collection's branch, a list into an event field) fails as the schema's fault, naming the
    branch, with no traceback, and --skip-bad-files does not skip the (good) files for it."""
    text = (Path(__file__).parents[2] / "schemas" / "inputs" / "miniaod.yaml").read_text()
    assert old in text
    (tmp_path / "mine.yaml").write_text(text.replace(old, new, 1).replace("name: miniaod", "name: mine"))
    s = skim([str(p) for p in miniaod_files], tmp_path / "store", schema=str(tmp_path / "mine.yaml"), skip_bad_files=True, **KW)
    assert not s.ok and s.skipped == 0 and s.done == 0
    recs = [r for r in Store(tmp_path / "store").manifest.latest().values() if r["kind"] == "range"]
    assert recs and all(r["status"] == "failed" and r["error"] == "SchemaMismatchError" for r in recs)
    assert all(says in r["reason"] and "fix the input schema" in r["reason"] and "damaged" not in r["reason"] for r in recs)


def test_event_fields_take_one_number_per_event():
    import awkward as ak
    import numpy as np

    from jetlib.errors import SchemaMismatchError
    from jetlib.source.read import _event_field

    assert _event_field({"rho": ak.Array(np.array([1.5, 2.0], np.float32))}, "rho", "rho").tolist() == [1.5, 2.0]
    for bad, shape in ((ak.Array([[1.0], [2.0, 3.0]]), "var \\* float64"), (ak.Array(np.zeros((2, 3))), "3 \\* float64")):
        with pytest.raises(SchemaMismatchError, match=f"branch rho holds {shape} per event, but event field 'rho'"):
            _event_field({"rho": bad}, "rho", "rho")
    # run, lumi and event are stored as integers: a float branch there was cut (19.7 -> 19) silently
    assert _event_field({"e": ak.Array(np.array([7, 8], np.uint64))}, "event", "e").tolist() == [7, 8]
    with pytest.raises(SchemaMismatchError, match="branch rho holds float32 values, but event field 'event' .* needs integers"):
        _event_field({"rho": ak.Array(np.array([19.7, 2.0], np.float32))}, "event", "rho")


def test_integer_kinematics_are_refused():
    import awkward as ak

    from jetlib.errors import SchemaMismatchError
    from jetlib.source.read import _jagged

    arrays = {"Jet_pt": ak.Array([[30.5, 20.0], []]), "Jet_eta": ak.Array([[1, -2], []]), "Jet_n": ak.Array([[3, 4], []])}
    with pytest.raises(SchemaMismatchError, match="branch Jet_eta holds int64 values, but field 'eta' of Jet needs floating-point"):
        _jagged(arrays, {"pt": "Jet_pt", "eta": "Jet_eta"}, "Jet")
    assert _jagged(arrays, {"pt": "Jet_pt", "nConstituents": "Jet_n"}, "Jet").fields["nConstituents"].tolist() == [3, 4]


@pytest.mark.parametrize(
    "old, new, says",
    [
        ("  PFCand:\n", "  PFCands:\n", "collection 'PFCands' is read by nothing.*rename 'PFCands' to 'PFCand'"),
        ("{iso: Muon_pfRelIso04_all}", "{isolation: Muon_pfRelIso04_all}",
         "field 'isolation' of Muon is read by nothing.*rename 'isolation' to 'iso'"),
        ("optional: [hadronFlavour, partonFlavour]\n  PFCand:", "optional: [hadronFlavor, partonFlavour]\n  PFCand:",
         "field 'hadronFlavor' of Jet .*rename 'hadronFlavor' to 'hadronFlavour'"),
        ("  run: run\n", "  runn: run\n", "event field 'runn' is read by nothing.*rename 'runn' to 'run'"),
        ("fields: [pt, eta, phi, mass, jetId, area, nConstituents]", "fields: [pt, eta, phi, mass, jetId, nConstituents]",
         "jet feature 'area' is neither computed by jetlib nor a field of Jet in input schema .*mine.yaml.*add 'area' to "
         "collections.Jet.fields of the input schema, or remove it from jets.features"),
        ("fields: [pt, eta, phi, mass, jetId, area, nConstituents]", "fields: [pt, eta, phi, mass, jetId, area, nConstituent]",
         "jet feature 'nConstituents' is neither .* in input schema .*mine.yaml; it maps a field 'nConstituent' of Jet "
         "\\(branch Jet_nConstituent\\): if that is this feature, name it 'nConstituents' there "
         "\\(nConstituents: Jet_nConstituent\\); otherwise add"),
        ("fields: [pt, eta, phi, mass, jetId, area, nConstituents]", "fields: [pt, eta, phi, mass, jetid, area, nConstituents]",
         "no required field 'jetId' \\(did you mean 'jetid'\\?\\); without a jet ID branch, set jets.jet_id_mask: 0"),
        ("  GenPart:\n", "  GenParticles:\n", "collection 'GenPart' is not in input schema.*the truth labels are made from the GEN"),
        ("  Photon:\n", "  Muon:\n", "key 'Muon' given twice in one mapping"),
        ("    prefix: SV_\n    fields: [pt, eta, phi,", "    prefix: SV_\n    fields: [pt, eta, phii,",
         "node collection SV has no field 'phi' \\(it has 'phii': a typo\\?\\)"),
        ("  GenJet:\n    prefix: GenJet_\n", "  Unused:\n    prefix: GenJet_\n",
         "collection 'GenJet' is not in input schema 'miniaod' \\([^)]*\\); the truth targets"),  # not 'did you mean Jet'
        ("puppiWeight, fromPV, hcalFraction]", "puppiWeight, fromPV, {hcalFrac: PFCand_hcalFraction}]",
         "feature 'hcalFraction' is neither derived nor a field of PFCand; the input schema .*mine.yaml maps a field "
         "'hcalFrac' of PFCand: if that is this feature, name it 'hcalFraction' there"),
    ],
)  # fmt: skip
def test_schema_typos_that_would_drop_or_zero_data_are_refused(tmp_path, old, new, says):
    """A schema entry nothing reads, named like one the skim wants and the schema lacks, would
    silently drop a block or zero a feature: refused before anything runs, naming both."""
    from jetlib.config.inputs import load_input_schema
    from jetlib.config.skim import load_label_scheme, load_skim_config
    from jetlib.errors import ConfigError
    from jetlib.skim.plan import make_plan

    text = (Path(__file__).parents[2] / "schemas" / "inputs" / "miniaod.yaml").read_text()
    assert old in text
    (tmp_path / "mine.yaml").write_text(text.replace(old, new, 1))
    cfg = load_skim_config("default")
    make_plan(load_input_schema("miniaod"), cfg, load_label_scheme(cfg.labels))  # the bundled one is fine
    with pytest.raises(ConfigError, match=says):
        make_plan(load_input_schema(tmp_path / "mine.yaml"), cfg, load_label_scheme(cfg.labels))


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ("fields: [pt, eta, phi, mass, pdgId, status, statusFlags, genPartIdxMother]\n    optional: [vx, vy, vz]",
         "fields: [pt, eta, phi, mass, pdgId, genPartIdxMother]\n    optional: [status, statusFlags]",
         r"GenPart.status is listed under optional:, but every file must have it \(for the truth labels\); move it to fields:"),
        ("  JetPFCand:\n    prefix: JetPFCand_\n    fields: [jetIdx, candIdx]",
         "  JetPFCand:\n    prefix: JetPFCand_\n    fields: [jetIdx]\n    optional: [candIdx]",
         r"JetPFCand.candIdx is listed under optional:, but every file must have it \(for the pf block's link table\)"),
    ],
)  # fmt: skip
def test_optional_fields_the_skim_needs_everywhere_are_refused(tmp_path, old, new, says):
    """optional: means 'may be absent from a file'; a field the labels or a link table read
    from every file cannot be, and is refused when the schema loads (it failed every task)."""
    from jetlib.config.inputs import load_input_schema
    from jetlib.config.skim import load_label_scheme, load_skim_config
    from jetlib.errors import ConfigError
    from jetlib.skim.plan import make_plan

    text = (Path(__file__).parents[2] / "schemas" / "inputs" / "miniaod.yaml").read_text()
    assert old in text
    (tmp_path / "mine.yaml").write_text(text.replace(old, new, 1))
    cfg = load_skim_config("default")
    with pytest.raises(ConfigError, match=says):
        make_plan(load_input_schema(tmp_path / "mine.yaml"), cfg, load_label_scheme(cfg.labels))


def test_optional_never_demotes_a_required_branch_nor_refuses_bundled_fields(tmp_path):
    """A branch one collection needs under fields: stays required when another lists it under
    optional:, and a config asking for the bundled schemas' optional hadronFlavour as a jet
    feature still plans (it is read from every file, as before)."""
    from jetlib.config.inputs import load_input_schema
    from jetlib.config.skim import load_label_scheme, load_skim_config
    from jetlib.skim.plan import make_plan

    text = (Path(__file__).parents[2] / "schemas" / "inputs" / "miniaod.yaml").read_text()
    old = "{iso: Electron_pfRelIso03_all}, {tightId: Electron_mvaIso_WP80}]"
    (tmp_path / "mine.yaml").write_text(text.replace(old, "{iso: Electron_pfRelIso03_all}]\n    optional: [{tightId: Muon_tightId}]"))
    cfg = load_skim_config("default")
    plan = make_plan(load_input_schema(tmp_path / "mine.yaml"), cfg, load_label_scheme(cfg.labels))
    assert "Muon_tightId" in plan.branches() and "Muon_tightId" not in plan.node_optional
    raw = (Path(__file__).parents[2] / "schemas" / "skim" / "default.yaml").read_text()
    (tmp_path / "hf.yaml").write_text(raw.replace("n_pf, n_sv, n_lt, n_lep, rho, npv]", "n_pf, n_sv, n_lt, n_lep, rho, npv, hadronFlavour]"))
    hf = load_skim_config(tmp_path / "hf.yaml")
    for schema in ("miniaod", "nanoaod"):
        assert "hadronFlavour" in make_plan(load_input_schema(schema), hf, load_label_scheme(hf.labels)).jet_features


def test_a_jet_flavour_no_file_has_is_named_and_stored_as_no_flavour(miniaod_files, tmp_path):
    """An optional Jet flavour mapped to a misspelt branch is no error (data files lack the
    flavours), but the skim names it with the near branch, the column holds NO_FLAVOUR (-999,
    not -1: a parton flavour of -1 is a d-bar), and inspect shows no share table of it. A
    file without Jet_partonFlavour beside one with it: only its jets have NO_FLAVOUR."""
    import uproot
    from typer.testing import CliRunner

    from jetlib.cli import app
    from jetlib.store.inspect import describe
    from jetlib.store.layout import NO_FLAVOUR

    text = (Path(__file__).parents[2] / "schemas" / "inputs" / "miniaod.yaml").read_text()
    jet = "nConstituents]\n    optional: [hadronFlavour, partonFlavour]"
    assert text.count(jet) == 1  # (the Jet collection's)
    (tmp_path / "typo.yaml").write_text(text.replace(jet, jet.replace("[hadronFlavour,", "[{hadronFlavour: Jet_hadronFlavor},")))
    lacking = write_miniaod(tmp_path / "no_parton.root", 300, seed=5, drop=("Jet_partonFlavour",))
    files = [str(miniaod_files[0]), str(lacking)]
    out = tmp_path / "store"
    res = CliRunner().invoke(app, ["skim", *files, "--out", str(out), "--schema", str(tmp_path / "typo.yaml"), "--workers", "1",
                                   "--dashboard-address", "", "--no-progress", "--entries-per-task", "200"],
                             env={"COLUMNS": "400"})  # fmt: skip
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    assert "no input file of this run has the optional branch Jet_hadronFlavor (did you mean Jet_hadronFlavour, " in said
    assert f"it reads as missing ({NO_FLAVOUR} for a jet flavour" in said
    assert "optional branch Jet_partonFlavour" not in said  # one file has it
    a = Store(out).read(["hadron_flavour", "parton_flavour", "jet_index", "event"])
    assert (a["hadron_flavour"] == NO_FLAVOUR).all()
    for f in files:  # the parton flavour of each jet, from its file's branch, or NO_FLAVOUR
        with uproot.open(f) as fh:
            t = fh["Events"]
            ev = t["event"].array(library="np")
            pf = t["Jet_partonFlavour"].array(library="ak") if "Jet_partonFlavour" in t else None
        row = {int(e): i for i, e in enumerate(ev)}
        mine = np.isin(a["event"], ev) if f == files[0] else ~np.isin(a["event"], np.asarray(uproot.open(files[0])["Events"]["event"].array(library="np")))
        want = [NO_FLAVOUR if pf is None else int(pf[row[int(e)]][j]) for e, j in zip(a["event"][mine], a["jet_index"][mine])]
        assert mine.any() and a["parton_flavour"][mine].tolist() == want, f
    res = CliRunner().invoke(app, ["inspect", str(out)], env={"COLUMNS": "300"})
    assert res.exit_code == 0 and f"hadron_flavour is {NO_FLAVOUR} for every jet" in " ".join(res.output.split())
    assert "hadronFlavour 5" not in res.output
    # some files without Jet_hadronFlavour: their jets are in no column of inspect's table
    no_hf = write_miniaod(tmp_path / "no_hadron.root", 300, seed=6, drop=("Jet_hadronFlavour",))
    assert skim([str(miniaod_files[0]), str(no_hf)], tmp_path / "mixed", **KW).ok
    a = Store(tmp_path / "mixed").read(["hadron_flavour", "label"])
    d = describe(tmp_path / "mixed")
    none = a["hadron_flavour"] == NO_FLAVOUR
    assert 0 < none.sum() < len(none) and d["no_hadron_flavour"] == none.sum()
    assert sum(map(sum, d["hadron_flavour"].values())) == (~none).sum()
    res = CliRunner().invoke(app, ["inspect", str(tmp_path / "mixed")], env={"COLUMNS": "400"})
    assert f"; {none.sum():,} jets from files without that branch ({NO_FLAVOUR}) are in no column" in " ".join(res.output.split())


def test_an_optional_node_field_a_file_lacks_reads_as_zero(miniaod_files, tmp_path):
    """An optional: node field (a lepton ID some ntuple versions lack) is read where the file
    has it and is zero where it does not; the other values are unchanged."""
    text = (Path(__file__).parents[2] / "schemas" / "inputs" / "miniaod.yaml").read_text()
    old = "{iso: Electron_pfRelIso03_all}, {tightId: Electron_mvaIso_WP80}]"
    assert old in text
    present = tmp_path / "present.yaml"
    present.write_text(text.replace(old, "{iso: Electron_pfRelIso03_all}]\n    optional: [{tightId: Electron_mvaIso_WP80}]"))
    absent = tmp_path / "absent.yaml"
    absent.write_text(text.replace(old, "{iso: Electron_pfRelIso03_all}]\n    optional: [{tightId: Electron_noSuchBranch}]"))
    files = [str(miniaod_files[0])]
    stores = {}
    for name, schema in (("miniaod", "miniaod"), ("present", str(present)), ("absent", str(absent))):
        assert skim(files, tmp_path / name, schema=schema, **KW).ok
        stores[name] = Store(tmp_path / name).read(["lep_features", "lep_mask", "pf_features"])
    feats = Store(tmp_path / "absent").blocks["lep"]["features"]
    tid, pid = feats.index("tightId"), feats.index("is_Electron")
    ref, got = stores["miniaod"], stores["absent"]
    np.testing.assert_array_equal(stores["present"]["lep_features"], ref["lep_features"])
    ele = (ref["lep_features"][:, pid, :] > 0) & (ref["lep_mask"][:, 0, :] > 0)
    assert ele.any() and (ref["lep_features"][:, tid, :][ele] != 0).any()  # some electrons pass the ID
    assert (got["lep_features"][:, tid, :][ele] == 0).all()  # absent: zero for every electron
    keep = np.ones(len(feats), bool)
    keep[tid] = False
    np.testing.assert_array_equal(got["lep_features"][:, keep], ref["lep_features"][:, keep])
    muon = (ref["lep_features"][:, pid, :] == 0) & (ref["lep_mask"][:, 0, :] > 0)
    np.testing.assert_array_equal(got["lep_features"][:, tid, :][muon], ref["lep_features"][:, tid, :][muon])
    np.testing.assert_array_equal(got["pf_features"], ref["pf_features"])


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("file_wide_links", r"link branch 'JetPFCand_candIdx': [\d,]+ of [\d,]+ entries are outside their event's PFCand "
                            r"entries \(entry \d+ of the chunk: index \d+, the event has \d+\); a link table numbers each "
                            r"event's PFCand entries from 0, not across the file \(the README's schema section\); map "
                            r"branches that do in the input schema"),
        ("zero_flags", r"GenPart statusFlags is 0 for all [\d,]+ GEN particles of the chunk: the truth labels need NanoAOD's bits"),
    ],
)  # fmt: skip
def test_content_that_breaks_the_schemas_conventions_fails_its_task(tmp_path, kind, says):
    """A link table numbered across the file left almost every jet without PF candidates, and
    a statusFlags branch of zeros left e/mu/tau/uds/g unassigned: both skimmed with exit 0.
    Now the task fails as a schema error (not skipped by --skip-bad-files) naming the branch."""
    bad = write_miniaod(tmp_path / "bad.root", 200, **{kind: True})
    s = skim([str(bad)], tmp_path / "store", skip_bad_files=True, **KW)
    assert not s.ok and s.failed == 1 and s.jets == 0
    (rec,) = s.failures
    assert rec["error"] == "SchemaMismatchError" and re.search(says, rec["reason"]), rec["reason"]
    assert rec["reason"].startswith(f"{bad} (entries 0-200): ")


def test_jets_in_mev_fail_their_task():
    """MeV inputs passed the GeV cuts (5,794 jets instead of 5,541) and were skimmed with exit 0;
    a median jet pT above the beam energy can only be another unit."""
    from types import SimpleNamespace

    from jetlib.errors import SchemaMismatchError
    from jetlib.skim.process import _check_units
    from jetlib.source.read import Jagged

    rng = np.random.default_rng(1)
    gev = rng.exponential(40.0, 1000).astype(np.float32) + 15
    _check_units(SimpleNamespace(jets=Jagged(np.array([0, 1000]), {"pt": gev})))
    _check_units(SimpleNamespace(jets=Jagged(np.array([0, 3]), {"pt": gev[:3] * 1000})))  # too few jets to judge
    with pytest.raises(SchemaMismatchError, match=r"the median jet pT of the chunk is [\d,]+, more than the LHC's beam energy"):
        _check_units(SimpleNamespace(jets=Jagged(np.array([0, 1000]), {"pt": gev * 1000})))


def test_a_negative_link_index_means_none():
    """-1 in a link table marks 'no jet' or 'no candidate' (left out by the kernel, as before);
    only an index past the event's jets or candidates fails the task."""
    from types import SimpleNamespace

    from jetlib.config.inputs import load_input_schema
    from jetlib.config.skim import load_label_scheme, load_skim_config
    from jetlib.errors import SchemaMismatchError
    from jetlib.skim.plan import make_plan
    from jetlib.skim.process import _check_links
    from jetlib.source.read import Jagged

    cfg = load_skim_config("default")
    plan = make_plan(load_input_schema("miniaod"), cfg, load_label_scheme(cfg.labels))
    jets = Jagged(np.array([0, 2, 2, 3]))  # 2, 0 and 1 jets
    nodes = np.array([0, 3, 4, 6])  # 3, 1 and 2 candidates

    def chunk(jet, cand, offsets=(0, 3, 4, 6)):
        link = Jagged(np.array(offsets), {"jetIdx": np.array(jet), "candIdx": np.array(cand)})
        return SimpleNamespace(jets=jets, links={"pf": link}, blocks={"pf": (nodes, None, None)})

    _check_links(plan, chunk([0, 1, -1, -1, 0, 0], [0, 1, 2, 0, 0, -1]))
    with pytest.raises(SchemaMismatchError, match=r"'JetPFCand_jetIdx': 1 of 6 entries .* \(entry 1 of the chunk: index 0, the event has 0\)"):
        _check_links(plan, chunk([0, 1, -1, 0, 0, 0], [0, 1, 2, 0, 0, 1]))
    with pytest.raises(SchemaMismatchError, match=r"'JetPFCand_candIdx': 2 of 6 entries .* \(entry 0 of the chunk: index 3, the event has 3\)"):
        _check_links(plan, chunk([0, 1, -1, -1, 0, 0], [3, 1, 2, 0, 0, 5]))


def test_an_empty_schema_file_says_so(tmp_path):
    from jetlib.config.inputs import load_input_schema
    from jetlib.errors import ConfigError

    (tmp_path / "empty.yaml").write_text("# to do\n")
    with pytest.raises(ConfigError, match="empty.yaml: the file is empty"):
        load_input_schema(tmp_path / "empty.yaml")
    from jetlib.config.skim import load_skim_config

    # a missing file names the option it came from
    with pytest.raises(ConfigError, match=r"no such input schema \(--schema\) file: .*nosuch.yaml"):
        load_input_schema(tmp_path / "nosuch.yaml")
    with pytest.raises(ConfigError, match=r"no such skim config \(--config\) file: .*nosuch.yaml"):
        load_skim_config(tmp_path / "nosuch.yaml")


def test_a_schema_without_run_numbers_and_blocks_is_noted_at_the_start(miniaod_files, tmp_path):
    import io

    from rich.console import Console

    text = (Path(__file__).parents[2] / "schemas" / "inputs" / "miniaod.yaml").read_text()
    cut = text.replace("  run: run\n", "  nPU: Pileup_nPU\n").replace("  LostTrack:\n    prefix: LostTrack_\n", "  Unused:\n    prefix: LostTrack_\n")
    (tmp_path / "mine.yaml").write_text(cut)
    buf = io.StringIO()
    s = skim([str(miniaod_files[0])], tmp_path / "store", schema=str(tmp_path / "mine.yaml"), console=Console(file=buf, width=400), **KW)
    assert s.ok and s.jets > 0
    out = buf.getvalue()
    assert "does not feed (left out of the store): blocks: lt;" in out
    assert "does not feed (stored in their place): observer run: 0 (not in the input schema's event fields)" in out
    np.testing.assert_array_equal(Store(tmp_path / "store").read(["run"])["run"], 0)
    from typer.testing import CliRunner  # inspect says the same from jetlib.json

    from jetlib.cli import app

    res = CliRunner().invoke(app, ["inspect", str(tmp_path / "store")], terminal_width=400)
    assert res.exit_code == 0, res.output
    assert "not fed by the input schema (left out of the store): blocks: lt;" in res.output
    assert "not fed by the input schema (stored in their place): observer run: 0 (not in the input schema's" in res.output
    # keys the skim does not know were ignored without a word; a bundled schema gets no such note
    assert "note: nothing in this skim reads collections.Unused, event.nPU of input schema 'miniaod'; the collection" in out
    buf = io.StringIO()
    assert skim([str(miniaod_files[0])], tmp_path / "bundled", console=Console(file=buf, width=400), **KW).ok
    assert "nothing in this skim reads" not in buf.getvalue()
    assert set(Store(tmp_path / "store").read(["run"])["run"].tolist()) == {0}


def test_one_file_under_two_paths_is_refused_not_skimmed_twice(miniaod_files, tmp_path):
    """A data folder moved (or a copy listed beside the original) has the ROOT UUIDs of files
    the store holds: skimming them again would put every event in the store twice."""
    import json

    from jetlib.errors import StoreError

    files = _copies(miniaod_files, tmp_path / "data")
    out = tmp_path / "store"
    assert skim(files, out, **KW).ok
    lines = (out / "manifest.jsonl").read_text()
    (tmp_path / "data").rename(tmp_path / "moved")
    moved = [str(tmp_path / "moved" / Path(f).name) for f in files]
    with pytest.raises(StoreError, match=rf"{moved[0]} is {files[0]} \(ROOT UUID .*\), already skimmed into this store.*"
                                         "would be in the store twice"):
        skim(moved, out, **KW)
    assert (out / "manifest.jsonl").read_text() == lines
    copy = str(shutil.copy(moved[0], tmp_path / "copy.root"))
    with pytest.raises(StoreError, match=rf"{copy} is {moved[0]} \(ROOT UUID .*\), also listed"):
        skim([moved[0], copy], tmp_path / "fresh", **KW)
    # refused once the store was made: no stub is left to refuse the next run's other options
    assert [p.name for p in (tmp_path / "fresh").iterdir()] == [".jetlib.lock"]
    assert skim([moved[0]], tmp_path / "fresh", compression="zstd", **KW).ok
    # a store that holds one file twice (made before this check) fails verify and is not resumed
    recs = [json.loads(line) for line in lines.splitlines()]
    twin = {**recs[0], "task": recs[0]["task"].replace(files[0], copy), "file": copy, "task_id": 99}
    (out / "manifest.jsonl").write_text(lines + json.dumps(twin) + "\n")
    assert any("the same ROOT file" in p.message and "2 times" in p.message for p in verify(out).errors)
    with pytest.raises(StoreError, match="the same ROOT file"):
        skim(files, out, **KW)



def test_a_bad_dashboard_address_is_an_option_error(miniaod_files, tmp_path):
    from typer.testing import CliRunner

    from jetlib.cli import app

    res = CliRunner().invoke(app, ["skim", str(miniaod_files[0]), "--out", str(tmp_path / "s"), "--workers", "1",
                                   "--no-progress", "--dashboard-address", "no-such-host:1"])  # fmt: skip
    assert res.exit_code == 2 and "cannot start a local Dask cluster" in res.output and "--dashboard-address" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "s" / "jetlib.json").exists()


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads /proc")
def test_workers_ignore_ctrl_c_and_the_client_does_not(tmp_path):
    """Ctrl-C reaches the whole process group: the workers must ignore it (each printed a
    traceback), while this process must not, also while they start (it was ignored for the
    whole start, 2-5 s, and the skim ran on), also a worker that its nanny restarts."""
    import contextlib
    import os
    import signal
    import threading
    import time

    import psutil

    from jetlib.skim.run import _client

    me = psutil.Process()
    before = {c.pid for c in me.children()}

    def workers():
        return [c for c in me.children() if c.pid not in before and "spawn_main" in " ".join(c.cmdline())]

    def ctrl_c_while_they_boot():
        deadline = time.monotonic() + 30
        while not workers() and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.3)  # spawned, not yet connected (that takes seconds)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=ctrl_c_while_they_boot, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        _client(None, 1, None)
    psutil.wait_procs(workers(), timeout=20)
    assert not [c for c in workers() if c.status() != psutil.STATUS_ZOMBIE]  # the cluster was closed

    def sigint_ignored(pid):
        ignored = int(next(line for line in open(f"/proc/{pid}/status") if line.startswith("SigIgn:")).split()[1], 16)
        return bool(ignored & (1 << (signal.SIGINT - 1)))

    before_handler = signal.getsignal(signal.SIGINT)
    client, cluster = _client(None, 1, None)
    try:
        assert signal.getsignal(signal.SIGINT) is before_handler
        pids = client.run(os.getpid)
        assert all(sigint_ignored(pid) for pid in pids.values())
        # a worker that died (a crash, killed for memory) is restarted by its nanny: the
        # new process ignores SIGINT too, and skips Numba's extensions
        for pid in pids.values():
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        new = {}
        while time.monotonic() < deadline and not (new and set(new.values()).isdisjoint(pids.values())):
            time.sleep(0.2)
            with contextlib.suppress(Exception):
                new = client.run(os.getpid)
        assert new and set(new.values()).isdisjoint(pids.values()), (pids, new)
        assert all(sigint_ignored(pid) for pid in new.values())
        flags = client.run(lambda: __import__("numba.core.entrypoints", fromlist=["_"])._already_initialized)
        assert list(flags.values()) == [True]
    finally:
        client.close()
        cluster.close()


def test_an_error_after_a_done_task_keeps_the_new_store(miniaod_files, tmp_path, monkeypatch):
    """Only a new store with nothing done is removed when the run stops with an error."""
    import jetlib.skim.run

    real, calls = jetlib.skim.run._publish, []

    def publish(rec, folder):
        calls.append(rec["task"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(rec, folder)

    monkeypatch.setattr(jetlib.skim.run, "_publish", publish)
    with pytest.raises(KeyboardInterrupt):
        skim([str(f) for f in miniaod_files], tmp_path / "s", **KW)
    done = [r for r in Store(tmp_path / "s").latest().values() if r["status"] == "done"]
    assert [r["task"] for r in done] == calls[:1] and Store(tmp_path / "s").n_jets == done[0]["jets"] > 0

def test_a_file_replaced_while_the_skim_runs_fails_its_ranges(miniaod_files, tmp_path, monkeypatch):
    """Ranges read from another file than the one counted are not recorded done (the store
    would mix two files under one name); a store that has such a mix fails verify."""
    import json

    import jetlib.skim.run as run

    files = _copies(miniaod_files, tmp_path / "data")
    real = run._count_files

    def counted_before_a_replacement(*a, **k):
        counts = real(*a, **k)
        counts[files[0]]["file_uuid"] = "00000000-0000-0000-0000-000000000000"
        return counts

    monkeypatch.setattr(run, "_count_files", counted_before_a_replacement)
    out = tmp_path / "store"
    s = skim(files, out, **KW)
    assert s.failed == 2 and s.done == 2
    assert all(f["file"] == files[0] and f["error"] == "InputChanged" and "was replaced while the skim ran" in f["reason"]
               for f in s.failures)  # fmt: skip
    assert {e.task.rsplit(":", 1)[0] for e in Store(out).shards()} == {files[1]}
    # the failed ranges' shards, published before the client saw the UUID, are gone: no orphans
    assert sorted(p.name for p in (out / "shards").iterdir()) == sorted(e.name for e in Store(out).shards())
    # --skip-bad-files does not give such ranges up: their file is not bad, it changed
    s = skim(files, tmp_path / "skipping", skip_bad_files=True, **KW)
    assert s.failed == 2 and s.skipped == 0 and not s.ok
    monkeypatch.undo()
    assert skim(files, out, skip_bad_files=True, **KW).ok  # the file is as counted now: its ranges are done
    latest = Store(out).manifest.latest()
    key = next(k for k, r in latest.items() if r["file"] == files[1])
    mixed = {**latest[key], "file_uuid": "11111111-1111-1111-1111-111111111111"}
    with (out / "manifest.jsonl").open("a") as fh:
        fh.write(json.dumps(mixed) + "\n")
    assert any("come from different files" in p.message for p in verify(out).errors)


def test_overwrite_with_no_readable_input_leaves_the_store(miniaod_files, tmp_path):
    out = tmp_path / "store"
    assert skim([str(miniaod_files[0])], out, **KW).ok
    before = sorted(p.name for p in (out / "shards").iterdir())
    with pytest.raises(ValueError, match=r"no input to skim, the store was left as it was: .*typo\*\.root: pattern matches no file"):
        skim([str(tmp_path / "typo*.root")], out, overwrite=True, **KW)
    (tmp_path / "garbage.root").write_text("not ROOT")
    with pytest.raises(ValueError, match=r"the store was left as it was: .*garbage\.root: not a ROOT file"):
        skim([str(tmp_path / "garbage.root")], out, overwrite=True, **KW)
    with pytest.raises(ValueError, match=r"the store was left as it was: .*shards: a folder, not a ROOT file"):
        skim([str(out / "shards")], out, overwrite=True, **KW)
    assert sorted(p.name for p in (out / "shards").iterdir()) == before and Store(out).n_jets > 0


def test_overwrite_with_a_schema_that_fits_no_input_leaves_the_store(miniaod_files, tmp_path):
    """--overwrite with the wrong --schema (or tree name) cleared a complete store, then every
    task failed on the missing branches: the first input is checked before anything is cleared."""
    out = tmp_path / "store"
    assert skim([str(miniaod_files[0])], out, **KW).ok
    before = sorted(p.name for p in (out / "shards").iterdir())
    with pytest.raises(ValueError, match=r"left as it was: .*branch 'fixedGridRhoFastjetAll' not found.*pass --schema miniaod"):
        skim([str(miniaod_files[0])], out, overwrite=True, schema="nanoaod", **KW)
    bad_tree = tmp_path / "tree.yaml"
    bad_tree.write_text(re.sub(r"(?m)^tree: .*$", "tree: Eventz", (Path(__file__).parents[2] / "schemas" / "inputs" / "miniaod.yaml").read_text()))
    with pytest.raises(ValueError, match=r"left as it was: .*no tree 'Eventz' in the file.*did you mean 'Events'"):
        skim([str(miniaod_files[0])], out, overwrite=True, schema=str(bad_tree), **KW)
    assert sorted(p.name for p in (out / "shards").iterdir()) == before and Store(out).n_jets > 0
    assert skim([str(miniaod_files[0])], out, overwrite=True, **KW).ok  # a schema that fits still replaces it
    # one listed file without the tree (an empty job's output) does not stop a list that fits
    import uproot

    with uproot.recreate(tmp_path / "empty_job.root") as f:
        f["h"] = np.histogram(np.arange(10.0), bins=5)
    s = skim([str(tmp_path / "empty_job.root"), str(miniaod_files[0])], out, overwrite=True, skip_bad_files=True, **KW)
    assert s.jets > 0 and s.skipped == 1


def test_a_misspelt_tree_refuses_a_new_store_a_file_without_trees_does_not(miniaod_files, tmp_path):
    """A schema's ``tree: Eventz`` where the files hold Events made a store of failed records,
    which the corrected schema could replace only with --overwrite: it is refused before any
    store is made. A file without trees (a crashed job's) is not a reason to refuse."""
    bad_tree = tmp_path / "tree.yaml"
    bad_tree.write_text(re.sub(r"(?m)^tree: .*$", "tree: Eventz", (Path(__file__).parents[2] / "schemas" / "inputs" / "miniaod.yaml").read_text()))
    out = tmp_path / "store"
    with pytest.raises(ValueError, match=r"no store made: .*no tree 'Eventz' in the file.*did you mean 'Events'"):
        skim([str(miniaod_files[0])], out, schema=str(bad_tree), **KW)
    assert not (out / "jetlib.json").exists()
    assert skim([str(miniaod_files[0])], out, **KW).ok  # the corrected schema needs no --overwrite
    import uproot

    with uproot.recreate(tmp_path / "crashed_job.root") as f:
        f["h"] = np.histogram(np.arange(10.0), bins=5)
    s = skim([str(tmp_path / "crashed_job.root"), str(miniaod_files[1])], tmp_path / "two", **KW)
    assert s.failed == 1 and s.done > 0 and s.jets > 0


def test_every_input_skipped_is_not_a_success(miniaod_files, tmp_path, schema_checked_by_workers):
    """--skip-bad-files with a schema whose tree no file has skips every file: the run is not
    ok (the CLI exits 1), and says to check the schema."""
    from typer.testing import CliRunner

    from jetlib.cli import app

    schema = tmp_path / "mine.yaml"
    text = (Path(__file__).resolve().parents[2] / "schemas" / "inputs" / "miniaod.yaml").read_text()
    schema.write_text(text.replace("tree: Events", "tree: events"))
    s = skim([str(f) for f in miniaod_files], tmp_path / "store", schema=str(schema), skip_bad_files=True, **KW)
    assert s.skipped == 2 and s.nothing_done and not s.ok
    res = CliRunner().invoke(app, ["skim", *map(str, miniaod_files), "--out", str(tmp_path / "cli"), "--schema", str(schema),
                                   "--skip-bad-files", "--workers", "1", "--no-progress", "--dashboard-address", ""])  # fmt: skip
    assert res.exit_code == 1 and "nothing skimmed" in res.output, res.output
    # without --skip-bad-files: the last line says the tree is the schema's, fixed with --overwrite
    # (it said to fix the inputs and re-run the same command, which then refused the new schema)
    res = CliRunner().invoke(app, ["skim", *map(str, miniaod_files), "--out", str(tmp_path / "cli2"), "--schema", str(schema),
                                   "--workers", "1", "--no-progress", "--dashboard-address", ""])  # fmt: skip
    last = " ".join(res.output.split()[-40:])
    assert res.exit_code == 1 and "(its tree is not in the files); fix --schema" in last and "add --overwrite" in last, res.output
    # the two files fail for the same reason: it is shown once, with how many more share it
    shown = [line for line in res.output.splitlines() if line.startswith("failed ")]
    assert len(shown) == 1 and shown[0].endswith("(the same in 1 more task(s))"), res.output


def test_a_store_of_failed_tasks_shows_why_in_inspect_and_verify(miniaod_files, tmp_path, schema_checked_by_workers):
    """inspect showed '1 failed' with no reason and suggested `jetlib weights` (which then
    exits 2); verify said to fix the input where the schema was wrong."""
    from typer.testing import CliRunner

    from jetlib.cli import app

    out = tmp_path / "store"
    assert not skim([str(miniaod_files[0])], out, schema="nanoaod", **KW).ok
    res = CliRunner().invoke(app, ["inspect", str(out)], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    assert "failed: 1 task(s), e.g. " in res.output and "MissingBranchError: " in res.output and "pass --schema miniaod" in res.output
    assert "no jets yet: `jetlib weights`, `jetlib stats` and the Reader need jets" in res.output
    assert "no sampling weights or standardisation yet" not in res.output
    res = CliRunner().invoke(app, ["verify", str(out)], env={"COLUMNS": "400"})
    assert res.exit_code == 1 and "re-run `jetlib skim` with the right --schema, and --overwrite" in res.output, res.output
    assert "fix the input named" not in res.output


def test_the_last_line_blames_the_schema_only_when_no_input_fits():
    from types import SimpleNamespace

    from jetlib.cli._skim import _what_next

    no_tree = {"status": "failed", "error": "KeyInFileError", "reason": "f.root: no tree 'Events' ...; set `tree:` in the input schema"}
    one_of_many = SimpleNamespace(failures=[no_tree], done=3, already_done=0, jets=100)
    assert _what_next(one_of_many).startswith("fix those inputs and re-run the same command")
    none_fits = SimpleNamespace(failures=[no_tree, no_tree], done=0, already_done=0, jets=0)
    assert "(its tree is not in the files); fix --schema" in _what_next(none_fits) and "add --overwrite" in _what_next(none_fits)
    missing = {"status": "failed", "error": "MissingBranchError", "reason": "f.root: no branch 'Jet_pt' ..."}
    damaged = {"status": "failed", "error": "InputFileError", "reason": "f.root: cannot read entries 0-100 ..."}
    assert "(branches missing, or of another shape or type)" in _what_next(SimpleNamespace(failures=[missing, no_tree], done=0, already_done=0, jets=0))
    assert _what_next(SimpleNamespace(failures=[missing, damaged], done=0, already_done=0, jets=0)).startswith("fix those inputs")
    # other inputs were skimmed with the schema: the file that lacks the branch is at fault
    some_fit = _what_next(SimpleNamespace(failures=[missing], done=2, already_done=0, jets=10))
    assert some_fit.startswith("fix those inputs") and "inputs that lack a branch other inputs have" in some_fit


def test_verify_blames_the_schema_when_no_input_has_the_tree(miniaod_files, tmp_path, schema_checked_by_workers):
    """The rule of the skim's last line, in verify too: a tree no input has is the schema's."""
    from typer.testing import CliRunner

    from jetlib.cli import app

    out = tmp_path / "store"
    bad_tree = tmp_path / "tree.yaml"
    bad_tree.write_text(re.sub(r"(?m)^tree: .*$", "tree: Eventz", (Path(__file__).parents[2] / "schemas" / "inputs" / "miniaod.yaml").read_text()))
    assert not skim([str(miniaod_files[0])], out, schema=str(bad_tree), **KW).ok
    res = CliRunner().invoke(app, ["verify", str(out)], env={"COLUMNS": "400"})
    assert res.exit_code == 1 and "does not fit the inputs (its tree is not in the files" in res.output, res.output


def test_planned_tasks_never_finished_are_reported(miniaod_files, tmp_path):
    """A skim killed mid-way leaves tasks planned in tasks.json with no record: inspect, the
    weights/stats commands and the Reader say so, not only verify."""
    from typer.testing import CliRunner

    from jetlib.cli import app
    from jetlib.reader import Reader
    from jetlib.store.inspect import describe

    out = tmp_path / "store"
    assert skim([str(f) for f in miniaod_files], out, **KW).ok
    lines = (out / "manifest.jsonl").read_text().splitlines(keepends=True)
    first = {json.loads(line)["file"]: line for line in reversed(lines)}  # one task of each file
    (out / "manifest.jsonl").write_text("".join(first.values()))  # as if killed after two tasks
    assert len(Store(out).unfinished_tasks()) == 2
    assert describe(out)["status"] == {"done": 2, "unfinished (interrupted skim: re-run it)": 2}
    rep = verify(out)  # each unfinished task once; its range is planned, not 'in no task' (and 2 orphan shards)
    assert sorted(p.message for p in rep.errors if p.check == "accounting") == ["planned but never finished (interrupted run?): re-run the same `jetlib skim` command"] * 2
    assert rep.files == 2
    with pytest.warns(UserWarning, match=r"2 planned task\(s\) never finished"):
        Reader(out, output="numpy")
    res = CliRunner().invoke(app, ["weights", str(out)], env={"COLUMNS": "300"})
    assert res.exit_code == 0 and "2 planned task(s) never finished" in res.output, res.output


def test_a_file_gone_after_part_of_it_was_skimmed_is_named_as_partial(miniaod_files, tmp_path):
    """Ranges done before a file became unreadable stay in the store; --skip-bad-files then
    records the file skipped. The store says it holds that file in part (not 'interrupted:
    re-run', which cannot help), in verify, the Reader and the weights/stats warnings."""
    from jetlib.reader import Reader

    files = _copies(miniaod_files, tmp_path / "data")
    out = tmp_path / "store"
    assert skim(files, out, **KW).ok
    lines = (out / "manifest.jsonl").read_text().splitlines(keepends=True)
    (out / "manifest.jsonl").write_text("".join(line for line in lines if f"{files[0]}:200-300" not in line))
    Path(files[0]).rename(tmp_path / "elsewhere.root")
    s = skim(files, out, skip_bad_files=True, **KW)
    assert s.skipped == 1 and s.ok
    st = Store(out)
    assert st.partial_files() == [files[0]] and st.unfinished_tasks() == []
    msgs = [p.message for p in verify(out).errors if p.where == f"{files[0]}:200-300"]
    assert len(msgs) == 1 and msgs[0].startswith("not read: the file was skipped when a later run opened it")
    with pytest.warns(UserWarning, match=r"1 input file\(s\) are in it only in part"):
        Reader(out, output="numpy")
    from typer.testing import CliRunner

    from jetlib.cli import app

    res = CliRunner().invoke(app, ["skim", *files, "--out", str(out), "--skip-bad-files", "--workers", "1", "--no-progress",
                                   "--dashboard-address", "", "--entries-per-task", "200"], env={"COLUMNS": "300"})  # fmt: skip
    assert res.exit_code == 0 and "1 input file(s) are in the store only in part" in res.output, res.output


def test_file_list_comments_and_relative_names(tmp_path, monkeypatch):
    """'#' inside a path is part of it; a relative name that is a different file from the
    current directory and from the list's folder is an error, not a silent pick."""
    from jetlib.source.filelist import parse_filelist

    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "run#2.root").write_bytes(b"root")
    (lists / "only_here.root").write_bytes(b"root")
    (lists / "files.txt").write_text("# header\nrun#2.root   # the second run\n  # indented comment\nonly_here.root\n"
                                     "only_here.root  # a copy of root://eos.cern.ch//store/x.root\n"
                                     "https://host/x.root#frag   # mirror\n")  # fmt: skip
    monkeypatch.chdir(tmp_path)
    got = parse_filelist(lists / "files.txt")
    assert [(f.path, f.problem) for f in got] == [(str(lists / "run#2.root"), None), (str(lists / "only_here.root"), None),
                                                  ("https://host/x.root#frag", None)]  # fmt: skip
    (tmp_path / "only_here.root").write_bytes(b"root")  # the same name, another file, in the current directory
    with pytest.raises(ValueError, match=r"line 4 of .*files.txt: 'only_here.root' is both .* and .*; write an absolute path"):
        parse_filelist(lists / "files.txt")
    monkeypatch.chdir(lists)  # the same file either way: fine
    assert len(parse_filelist(Path("files.txt"))) == 3


def test_failures_sharing_a_reason_are_grouped_most_shared_first():
    from jetlib.cli._skim import _same_reason

    distinct = [{"task": f"/d/{i}.root:0-10", "file": f"/d/{i}.root", "status": "failed", "error": "OSError",
                 "reason": f"/d/{i}.root: damaged basket {i}"} for i in range(30)]  # fmt: skip
    same = [{"task": f"/s/{i}.root:file", "file": f"/s/{i}.root", "status": "failed", "error": "KeyInFileError",
             "reason": f"/s/{i}.root: no tree 'events'"} for i in range(500)]  # fmt: skip
    groups = _same_reason(distinct + same)
    assert groups[0] == (same[0], 500) and len(groups) == 31
    assert [g[0] for g in groups[1:]] == distinct and sum(n for _, n in groups) == 530
    # the entry ranges of one damaged file: one group
    ranges = [{"task": f"/r.root:{a}-{a + 200}", "file": "/r.root", "start": a, "stop": a + 200, "status": "failed",
               "error": "uproot.DeserializationError",
               "reason": f"/r.root: cannot read entries {a}-{a + 200} (uproot.DeserializationError: ...)"} for a in (0, 200, 400)]  # fmt: skip
    assert _same_reason(ranges) == [(ranges[0], 3)]
