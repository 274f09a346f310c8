"""A customised skim config (``--config``) is refused before any store is made when it would
store something other than what it says: each test is a user's edit of the default config."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from jetlib.config.expr import Expression
from jetlib.config.inputs import load_input_schema
from jetlib.config.skim import load_label_scheme, load_skim_config
from jetlib.errors import ConfigError
from jetlib.skim.plan import make_plan
from jetlib.skim.run import skim
from jetlib.store import Store

KW = dict(workers=1, dashboard_address=None, progress=False, entries_per_task=200)
SCHEMAS = Path(__file__).parents[2] / "schemas"


def _config(tmp_path: Path, edit, name: str = "my.yaml") -> Path:
    """A copy of the default skim config with ``edit(raw)`` applied."""
    raw = yaml.safe_load((SCHEMAS / "skim" / "default.yaml").read_text())
    edit(raw)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def _plan(path: Path, schema: str = "miniaod"):
    cfg = load_skim_config(path)
    return make_plan(load_input_schema(schema), cfg, load_label_scheme(cfg.labels))


@pytest.mark.parametrize("where, value, says", [
    (("jets", "max_abs_eta"), -1.0, r"\[jets.max_abs_eta\]: must be > 0, got -1.0"),
    (("jets", "min_pt"), float("nan"), r"\[jets.min_pt\]: expected a number, got NaN"),
    (("jets", "jet_id_mask"), -2, r"\[jets.jet_id_mask\]: must be >= 0, got -2"),
    (("blocks", "sv", "radius"), -0.4, r"\[blocks.sv.radius\]: must be > 0, got -0.4"),
    (("blocks", "pf", "min_pt"), -1.0, r"\[blocks.pf.min_pt\]: must be >= 0, got -1.0"),
    (("blocks", "pf", "length"), 0, r"\[blocks.pf.length\]: must be >= 1, got 0"),
])  # fmt: skip
def test_numbers_out_of_range_are_refused(tmp_path, where, value, says):
    """A negative radius acted as its absolute value (the kernels compare squares); a negative
    |eta| cut, a NaN pT cut or a negative ID mask made a store of no jets, exit 0."""

    def edit(raw):
        d = raw
        for k in where[:-1]:
            d = d[k]
        d[where[-1]] = value

    with pytest.raises(ConfigError, match=says):
        load_skim_config(_config(tmp_path, edit))
    assert load_skim_config(_config(tmp_path, lambda raw: None, "same.yaml")).jets.max_abs_eta == 2.5


def test_a_negative_match_radius_is_refused(tmp_path):
    text = (SCHEMAS / "labels" / "default.yaml").read_text()
    assert "match_radius: 0.4" in text
    (tmp_path / "lab.yaml").write_text(text.replace("match_radius: 0.4", "match_radius: -0.4"))
    with pytest.raises(ConfigError, match=r"\[match_radius\]: must be > 0, got -0.4"):
        load_label_scheme(tmp_path / "lab.yaml")


def test_the_bank_rows_behind_is_collection_are_no_feature_names(tmp_path):
    """kind0..kind3 are the bank rows that is_<Collection> reads; named directly they were
    taken, and the kernel stored a scratch row (the node's |p|) under that name."""
    for key in ("features", "sort_by"):

        def edit(raw, key=key):
            b = raw["blocks"]["lep"]
            b[key] = [*b[key], "kind0"] if key == "features" else "kind0"

        with pytest.raises(ConfigError, match=r"\[blocks.lep.features\]: feature 'kind0' is neither derived nor a field"):
            _plan(_config(tmp_path, edit))
    plan = _plan(SCHEMAS / "skim" / "default.yaml")
    assert all(i >= 0 for bp in plan.blocks.values() for i in (*bp.feat_idx, bp.sort_idx))  # every feature has its row


def test_a_relative_label_scheme_is_found_beside_the_config(tmp_path, monkeypatch):
    """`labels: mylab.yaml` in cfgdir/my.yaml: the file beside the config, as a file list's
    entries are found beside the list; a different file of that name in the current
    directory was used instead, without a word. Both there: an error naming the key."""
    (tmp_path / "cfgdir").mkdir()
    (tmp_path / "cfgdir" / "mylab.yaml").write_text((SCHEMAS / "labels" / "merged.yaml").read_text())
    cfg = _config(tmp_path / "cfgdir", lambda raw: raw.update(labels="mylab.yaml"))
    monkeypatch.chdir(tmp_path)
    assert load_label_scheme(load_skim_config(cfg).labels).name == load_label_scheme("merged").name
    (tmp_path / "mylab.yaml").write_text((SCHEMAS / "labels" / "default.yaml").read_text())
    with pytest.raises(ConfigError, match=r"my.yaml \[labels\]: 'mylab.yaml' is both .* \(beside the config\); write an absolute path"):
        load_skim_config(cfg)
    for missing, says in (("nolab.yaml", "no such label scheme file: nolab.yaml"), ("mergd", "unknown labels schema 'mergd'")):
        with pytest.raises(ConfigError, match=rf"my.yaml \[labels\]: {says}"):
            load_skim_config(_config(tmp_path / "cfgdir", lambda raw, m=missing: raw.update(labels=m)))


def test_a_misspelt_collection_of_the_skim_config_is_blamed_on_it(tmp_path):
    """It was blamed on the bundled input schema, which was told to rename its right key."""

    def kshort(raw):
        raw["blocks"]["sv"]["collections"] = ["SV", "Kshort", "Lambda"]
        raw["blocks"]["sv"]["features"].remove("is_KShort")

    with pytest.raises(ConfigError, match=r"my.yaml \[blocks.sv.collections\]: collection 'Kshort' is not in input schema "
                                          r"'miniaod'; did you mean 'KShort'\?"):  # fmt: skip
        _plan(_config(tmp_path, kshort))
    with pytest.raises(ConfigError, match=r"\[blocks.pf.link\]: collection 'JetPFCands' .* did you mean 'JetPFCand'\?"):
        _plan(_config(tmp_path, lambda raw: raw["blocks"]["pf"].update(link="JetPFCands")))


def test_expressions_the_branches_do_not_take_are_refused_before_a_store(miniaod_files, tmp_path):
    """`pt & 2` on float pT passed the parser, then failed every task on the workers and the
    run blamed the inputs; now it is refused, naming the config key, with no store made.
    A constant power is taken in floating point (Python's 9**9**9**9 never returned)."""
    bad = _config(tmp_path, lambda raw: raw["jets"].update(expression="(pt & 2) == 2"))
    with pytest.raises(ConfigError, match=r"my.yaml \[jets.expression\]: cannot evaluate '\(pt & 2\) == 2' .* "
                                          r"\(the branches of .*good_0.root\); fix the expression"):  # fmt: skip
        skim([str(p) for p in miniaod_files], tmp_path / "s", config=str(bad), **KW)
    assert not (tmp_path / "s").exists()
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="cannot evaluate"):
        Expression("pt > 9**9**9**9").evaluate({"pt": np.array([1.0])})
    assert time.perf_counter() - t0 < 5
    assert Expression("pt > 2**3").evaluate({"pt": np.array([7.0, 9.0])}).tolist() == [False, True]
    with pytest.raises(ConfigError, match=r"jet field 'hadronFlavour' in the expression is under optional:"):
        _plan(_config(tmp_path, lambda raw: raw["jets"].update(expression="hadronFlavour == 5"), "opt.yaml"))


def test_a_parquet_column_two_arrays_would_write_is_refused_before_a_store(miniaod_files, tmp_path):
    """A block `gen` with a feature `pt` and the truth column gen_pt: every task was skimmed,
    then failed at the write ('two different arrays would be written as column')."""

    def gen(raw):
        raw["blocks"]["gen"] = raw["blocks"].pop("lep")
        raw["blocks"]["gen"]["features"].append("pt")
        raw["jets"]["features"] = [f if f != "n_lep" else "n_gen" for f in raw["jets"]["features"]]

    cfg = _config(tmp_path, gen)
    with pytest.raises(ConfigError, match=r"gen_features and truth would both be written as column 'gen_pt'"):
        skim([str(miniaod_files[0])], tmp_path / "pq", config=str(cfg), fmt="parquet", **KW)
    assert not (tmp_path / "pq").exists()
    assert skim([str(miniaod_files[0])], tmp_path / "h5", config=str(cfg), **KW).ok  # HDF5 keeps them apart
    assert "gen_features" in Store(tmp_path / "h5").layout.arrays


def test_the_node_count_of_a_removed_block_says_so(tmp_path):
    """Block lt removed, n_lt kept among the jet features: the hint was "did you mean n_lep?"."""

    def no_lt(raw):
        del raw["blocks"]["lt"]

    with pytest.raises(ConfigError, match=r"\[jets.features\]: jet feature 'n_lt' counts the nodes of block 'lt', which this "
                                          r"config does not have \(blocks: .*\): remove 'n_lt' from jets.features"):  # fmt: skip
        _plan(_config(tmp_path, no_lt))
    with pytest.raises(ConfigError, match=r"jet feature 'n_Constituents' .*it maps a field 'nConstituents'"):  # a field's typo
        _plan(_config(tmp_path, lambda raw: raw["jets"]["features"].append("n_Constituents"), "typo.yaml"))
