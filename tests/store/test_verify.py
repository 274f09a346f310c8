"""jetlib verify on a real skimmed store: passes when intact, and names the shard, task or
file when a shard is deleted, corrupted, truncated or orphaned, or a task never finished."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jetlib.cli import app
from jetlib.generate import generate
from jetlib.skim.run import skim
from jetlib.store import Store
from jetlib.store.verify import verify


@pytest.fixture(scope="module")
def skimmed(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("v")
    files = generate(d / "data", events=1200, files=2, seed=9, progress=False)
    s = skim([str(f) for f in files], d / "store", workers=1, entries_per_task=200, dashboard_address=None, progress=False)
    assert s.ok and s.done == 6
    return d / "store"


@pytest.fixture
def store(skimmed, tmp_path) -> Path:
    out = tmp_path / "store"
    shutil.copytree(skimmed, out)
    return out


def _where(report) -> set[str]:
    return {Path(p.where).name for p in report.errors}


def test_intact_store_passes_with_exact_counts(store):
    r = verify(store, inputs=True)
    assert r.ok, r.errors
    assert r.tasks == {"done": 6} and r.files == 2 and r.events == 1200 and r.checked_inputs == 2
    assert r.jets == Store(store).n_jets == sum(json.loads(l)["jets"] for l in (store / "manifest.jsonl").read_text().splitlines())
    res = CliRunner().invoke(app, ["verify", str(store), "--no-progress"])
    assert res.exit_code == 0 and "every check passed" in res.output



def test_a_store_being_written_is_not_verified_and_inspect_says_so(store):
    """While a skim holds the writer lock its tasks are unfinished and its new shards not yet
    in the manifest: verify would report them as problems and advise a re-run (refused)."""
    from jetlib.store.lock import writer_lock

    with writer_lock(store, "jetlib skim list.txt"):
        res = CliRunner().invoke(app, ["verify", str(store), "--no-progress"])
        assert res.exit_code == 2 and "`jetlib skim list.txt` (pid" in res.output and "when that run has ended" in res.output
        res = CliRunner().invoke(app, ["inspect", str(store)])
        assert res.exit_code == 0 and "is still writing this store" in res.output
    assert verify(store).ok  # the lock released
    assert "still writing" not in CliRunner().invoke(app, ["inspect", str(store)]).output

def test_deleted_shard_is_named(store):
    victim = Store(store).shards()[2].name
    (store / "shards" / victim).unlink()
    r = verify(store)
    assert not r.ok and _where(r) == {victim} and "missing" in r.errors[0].message
    res = CliRunner().invoke(app, ["verify", str(store), "--no-progress"])
    assert res.exit_code == 1 and victim in res.output
    # the jets row counts the shards it found: 5 of the 6
    st = Store(store)
    assert r.shards == 6 and r.readable == 5 and r.jets == st.n_jets - st.shards()[2].jets
    assert f"{r.jets:,} in 5 of 6 shards" in res.output


def test_flipped_bit_fails_the_checksum_and_quick_mode_skips_it(store):
    victim = Store(store).shards()[1]
    b = bytearray(victim.path.read_bytes())
    b[len(b) // 2] ^= 1
    victim.path.write_bytes(bytes(b))
    r = verify(store)
    assert _where(r) == {victim.name} and "checksum" in r.errors[0].message
    assert verify(store, quick=True).ok  # sizes and row counts still agree


def test_the_report_goes_to_stdout_and_an_orphan_is_to_be_deleted(store):
    res = CliRunner().invoke(app, ["verify", str(store)])
    assert res.exit_code == 0 and "every check passed" in res.stdout and "events read" in res.stdout
    assert "every check passed" not in res.stderr
    shutil.copy(Store(store).shards()[0].path, store / "shards" / "part-99999.h5")
    res = CliRunner().invoke(app, ["verify", str(store), "--quick"])
    (line,) = [x for x in res.stdout.splitlines() if x.startswith("FAIL orphan")]
    assert res.exit_code == 1 and "part-99999.h5: shard on disk that no done task records" in line
    assert "delete it" in line and "re-run the skim or" not in line


def test_truncated_and_orphan_shards_are_named(store):
    shards = Store(store).shards()
    with open(shards[0].path, "r+b") as f:
        f.truncate(shards[0].bytes // 2)
    shutil.copy(shards[3].path, store / "shards" / "part-99999.h5")
    r = verify(store, quick=True)
    assert _where(r) == {shards[0].name, "part-99999.h5"}
    assert {p.check for p in r.errors} == {"shard", "orphan"}


def test_unfinished_tasks_and_changed_inputs(store):
    lines = (store / "manifest.jsonl").read_text().splitlines()
    (store / "manifest.jsonl").write_text("\n".join(lines[:4]) + "\n")  # as if the client died
    r = verify(store)
    assert r.tasks == {"done": 4, "missing": 2}
    assert {p.check for p in r.errors} == {"accounting", "orphan"}  # the two shards are on disk, unrecorded
    assert sum("never finished" in p.message for p in r.errors) == 2


def test_failed_tasks_fail_unless_allowed(store_factory):
    path = store_factory(failed=2)  # a synthetic store: no task plan, two failed files
    r = verify(path)
    assert r.tasks == {"done": 3, "failed": 2} and [p.check for p in r.warnings] == ["accounting"]
    assert {p.where for p in r.errors} == {"bad0.root:file", "bad1.root:file"}
    assert all("not a ROOT file" in p.message for p in r.errors)
    assert verify(path, allow_failed=True).ok
    res = CliRunner().invoke(app, ["verify", str(path), "--no-progress", "--allow-failed"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "every check passed (1 warning above); 2 failed task(s) accepted (--allow-failed)" in res.output
    res = CliRunner().invoke(app, ["verify", str(path), "--no-progress"], env={"COLUMNS": "200"})
    assert res.exit_code == 1 and "2 problem(s)" in res.output and "re-run the same `jetlib skim` command" in res.output


def test_not_a_store_exits_2(tmp_path):
    res = CliRunner().invoke(app, ["verify", str(tmp_path)])
    assert res.exit_code == 2 and "not a jetlib store" in res.output


def test_range_tiling_by_hand():
    from jetlib.store.verify import ranges_problem

    assert ranges_problem([(0, 100), (100, 250)], 250) is None
    assert ranges_problem([(100, 250), (0, 100)], 250) is None  # any order
    assert ranges_problem([(0, 100), (150, 250)], 250) == "entries 100-150 are in no task"
    assert ranges_problem([(0, 120), (100, 250)], 250) == "entries 100-120 are in two tasks"
    assert ranges_problem([(0, 100)], 250) == "entries 100-250 are in no task"
    assert ranges_problem([(0, 300)], 250) == "tasks run past the 250 entries"


def test_a_torn_manifest_line_is_named(store):
    """A skim killed while writing its last record: the fragment is named (a warning), and
    the task it was about counts as unfinished, with its shard as an orphan."""
    m = store / "manifest.jsonl"
    lines = m.read_text().splitlines(keepends=True)
    last = json.loads(lines[-1])
    m.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    r = verify(store)
    assert [(p.check, Path(p.where).name) for p in r.warnings] == [("accounting", "manifest.jsonl:6")]
    assert not r.ok and last["task"] in {p.where for p in r.errors}
    assert {Path(p.where).name for p in r.errors if p.check == "orphan"} == {s["name"] for s in last["shards"]}


def test_stale_weights_and_stats_name_the_command_with_their_options(store_factory):
    from jetlib.stats import compute_stats
    from jetlib.weights import compute_weights

    path = store_factory()
    w = compute_weights(path, bins="pt=15:300:log6,eta=-2.5:2.5:4", class_weights="b=2", flow="drop", name="mine")
    compute_stats(path, clip=3.0)
    assert not [p for p in verify(path).warnings if p.check == "derived"]
    for f in (path / "weights" / "mine.json", path / "stats" / "stats.json"):  # as if the store had grown
        d = json.loads(f.read_text())
        d["jets"] += 1
        f.write_text(json.dumps(d))
    msgs = {Path(p.where).name: p.message for p in verify(path).warnings if p.check == "derived"}
    assert msgs["mine.json"].endswith(f"re-run `{w.command(path)}`") and "--name mine" in msgs["mine.json"]
    assert msgs["stats.json"].endswith(f"re-run `jetlib stats {path} --clip 3`")
    res = CliRunner().invoke(app, ["verify", str(path), "--no-progress"], env={"COLUMNS": "400"})
    assert res.exit_code == 0 and "every check passed (3 warnings above)" in res.output  # and the synthetic store's plan
