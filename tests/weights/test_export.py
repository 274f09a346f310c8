"""Exports: weaver-core data config and CMSSW preprocess.json, from the stored stats/weights;
and the CLI commands end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from jetlib.cli import app
from jetlib.errors import StoreError
from jetlib.export import cmssw_preprocess, dump_yaml, weaver_config
from jetlib.stats import compute_stats
from jetlib.weights import compute_weights


@pytest.fixture
def parquet_store(store_factory):
    path = store_factory(fmt="parquet")
    compute_stats(path)
    compute_weights(path)
    return path


def test_weaver_config(parquet_store):
    cfg = yaml.safe_load(dump_yaml(weaver_config(parquet_store)))
    pf = cfg["inputs"]["pf_features"]
    assert pf["length"] == 8 and pf["pad_mode"] == "constant"
    assert [v[0] for v in pf["vars"]] == ["pf_log_pt_unpadded", "pf_deta_unpadded", "pf_dphi_unpadded", "pf_charge_unpadded"]
    assert cfg["new_variables"]["pf_log_pt_unpadded"] == "pf_log_pt[pf_mask > 0]"
    st = json.loads((parquet_store / "stats" / "stats.json").read_text())["arrays"]["pf_features"]
    assert pf["vars"][0][1:] == pytest.approx([st["center"][0], st["scale"][0], -5, 5, 0])
    assert cfg["inputs"]["pf_mask"]["vars"] == [["pf_mask", None]]
    assert cfg["labels"] == {"type": "simple", "value": ["label_b", "label_c", "label_uds", "label_g"]}
    w = cfg["weights"]
    assert w["reweight_vars"].keys() == {"jet_pt", "jet_eta"} and w["reweight_method"] == "flat"
    saved = json.loads((parquet_store / "weights" / "flat.json").read_text())
    np.testing.assert_allclose(np.array(w["reweight_hists"]["label_b"]), saved["tables"][0])
    assert "jet_pt" in cfg["observers"] and "gen_pt" in cfg["observers"] and "event_int64" in cfg["observers"]


def test_weaver_config_needs_parquet_and_2d(store_factory):
    h5 = store_factory("h5")
    with pytest.raises(StoreError, match="parquet"):
        weaver_config(h5)
    pq_store = store_factory("pq", fmt="parquet")
    compute_weights(pq_store, bins="pt", name="flat")
    with pytest.raises(StoreError, match="exactly 2"):
        weaver_config(pq_store, standardize=False)


def test_weaver_accepts_the_config(parquet_store, tmp_path):
    cfgmod = pytest.importorskip("weaver.utils.data.config")
    path = tmp_path / "data.yaml"
    path.write_text(dump_yaml(weaver_config(parquet_store)))
    dc = cfgmod.DataConfig.load(str(path))
    assert dc.input_shapes["pf_features"] == (-1, 4, 8)
    assert dc.reweight_branches == ("jet_pt", "jet_eta")


@pytest.mark.parametrize("unpad", [True, False])
def test_weaver_loads_what_the_reader_reads(parquet_store, tmp_path, unpad):
    """weaver's own loader on the exported config: the Reader's standardised values on real
    nodes; on padding 0 as in the Reader (unpad), or the standardised 0 (--no-unpad)."""
    pytest.importorskip("weaver.utils.dataset")
    torch = pytest.importorskip("torch")
    from weaver.utils.dataset import SimpleIterDataset

    from jetlib.reader import Reader

    path = tmp_path / "data.yaml"
    path.write_text(dump_yaml(weaver_config(parquet_store, weights=None, unpad=unpad)))
    files = sorted(str(p) for p in (parquet_store / "shards").glob("*.parquet"))
    ds = SimpleIterDataset({"_": files}, str(path), for_training=False, fetch_step=1.0, name="test")
    got = {"pf": [], "sv": [], "jet": [], "event": []}
    for X, _, Z in torch.utils.data.DataLoader(ds, batch_size=256):  # observers too: no uint64 left to collate
        got["pf"].append(X["pf_features"].numpy())
        got["sv"].append(X["sv_features"].numpy())
        got["jet"].append(X["jet_features"].numpy())
        got["event"].append(Z["event_int64"].numpy())
    got = {k: np.concatenate(v) for k, v in got.items()}
    ref = next(iter(Reader(parquet_store, batch_size=10_000, shuffle=False, standardize=True, output="numpy",
                           observers=["event"])))  # fmt: skip
    np.testing.assert_array_equal(got["event"], ref["event"].astype(np.int64))
    np.testing.assert_allclose(got["jet"], ref["jet_features"], rtol=1e-5, atol=1e-5)
    for b in ("pf", "sv"):
        real = np.broadcast_to(ref[f"{b}_mask"] > 0, ref[f"{b}_features"].shape)
        np.testing.assert_allclose(got[b][real], ref[f"{b}_features"][real], rtol=1e-5, atol=1e-5)
        pad = got[b][~real]
        assert (not pad.any()) if unpad else pad.any(), b


def test_cmssw_preprocess(parquet_store):
    j = cmssw_preprocess(parquet_store)
    assert j["input_names"] == ["pf_features", "pf_mask", "sv_features", "sv_mask", "jet_features"]
    info = j["sv_features"]["var_infos"]["sv_mass"]
    assert set(info) == {"median", "norm_factor", "replace_inf_value", "lower_bound", "upper_bound", "pad"}
    assert j["sv_features"]["var_length"] == 3 and j["jet_features"]["var_length"] == 1
    assert j["pf_mask"]["var_infos"]["pf_mask"]["norm_factor"] == 1


def test_cli(store_factory, tmp_path):
    path = store_factory(fmt="parquet")
    r = CliRunner()
    res = r.invoke(app, ["weights", str(path), "--bins", "pt=15:1000:log25,eta=-2.5:2.5:10", "--method", "flat",
                         "--class-weights", "b=2,c=2"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (path / "weights" / "flat.json").is_file()
    res = r.invoke(app, ["weights", str(path), "--method", "ref", "--reference", "b"])
    assert res.exit_code == 0, res.output
    res = r.invoke(app, ["weights", str(path), "--bins", "pt=oops"])
    assert res.exit_code == 2 and "cannot parse" in res.output
    res = r.invoke(app, ["stats", str(path)])
    assert res.exit_code == 0 and (path / "stats" / "stats.json").is_file()
    res = r.invoke(app, ["export", "weaver", str(path)])
    assert res.exit_code == 0 and yaml.safe_load(res.output)["labels"]["type"] == "simple"
    res = r.invoke(app, ["export", "cmssw", str(path)])
    assert res.exit_code == 0 and "pf_features" in json.loads(res.output)
    res = r.invoke(app, ["export", "weaver", str(tmp_path / "nowhere")])
    assert res.exit_code == 2



def test_cmssw_export_warns_about_wrapped_blocks(store_factory):
    """CMSSW pads with a constant: a tagger trained on wrapped copies would see zeros there."""
    from jetlib.stats import compute_stats

    for padding, warned in (("wrap", True), ("zero", False)):
        path = store_factory(padding, padding=padding)
        compute_stats(path)
        res = CliRunner().invoke(app, ["export", "cmssw", str(path), "-o", str(path / "preprocess.json")])
        assert res.exit_code == 0, res.output
        assert ("pf, sv were skimmed with `padding: wrap`" in res.output) is warned, res.output

def test_cli_on_a_store_it_cannot_write_to(store_factory):
    """A colleague's read-only store: one error line naming the path, no traceback (here the
    folders are blocked by files, since the tests may run as root)."""
    path = store_factory()
    (path / "stats").write_text("")
    (path / "weights").write_text("")
    r = CliRunner()
    for cmd in (["stats", str(path)], ["weights", str(path)]):
        res = r.invoke(app, cmd)
        assert res.exit_code == 2 and "error:" in res.output and "Traceback" not in res.output, res.output
        assert str(path) in res.output.replace("\n", "")
        assert "check that you may write there, or work on a copy of it" in res.output.replace("\n", "")


def test_cli_says_what_it_replaced_and_what_falls_outside(store_factory):
    path = store_factory()
    r = CliRunner()
    out = lambda res: res.output.replace("\n", " ")  # noqa: E731  (rich wraps at 80 columns)
    first = r.invoke(app, ["weights", str(path)])
    assert first.exit_code == 0 and "note: replaced" not in first.output and "outside the bins" not in first.output
    assert "jets per filled bin" in out(first)  # 1,500 jets in 4 classes x 200 bins
    res = r.invoke(app, ["weights", str(path), "--bins", "pt=15:40:5,eta=0:1:2", "--class-weights", "b=2"])
    assert res.exit_code == 0
    assert "lie outside the bins and are clipped into the edge bins" in out(res)
    assert "replaced weights/flat.json, which held flat weights over jet_pt 20 x jet_eta 10 bins" in out(res)
    # user text is printed as typed: rich would turn ':b:' into an emoji
    res = r.invoke(app, ["weights", str(path), "--bins", "pt=a:b:c"])
    assert res.exit_code == 2 and "'pt=a:b:c'" in res.output
    res = r.invoke(app, ["weights", str(path), "--scheduler", "notanaddress"])
    assert res.exit_code == 2 and "cannot connect to the Dask scheduler notanaddress" in out(res), res.output
    res = r.invoke(app, ["stats", str(path), "--clip", "-1"])
    assert res.exit_code == 2 and "must be a finite number > 0" in res.output


def test_weaver_ref_weights_list_the_reference_first(store_factory):
    """weaver's ref method takes the first of reweight_classes as the reference (when it
    remakes the weights), so the exported list starts with it."""
    path = store_factory(fmt="parquet")
    compute_weights(path, method="ref", reference="uds", class_weights={"b": 3}, name="flat")
    w = weaver_config(path, standardize=False)["weights"]
    assert w["reweight_classes"] == ["label_uds", "label_b", "label_c", "label_g"]
    assert w["class_weights"] == [1.0, 3.0, 1.0, 1.0]
    assert w["reweight_method"] == "ref"


def test_export_cli_errors_say_what_to_do(store_factory):
    path = store_factory(fmt="parquet")
    r = CliRunner()
    res = r.invoke(app, ["export", "weaver", str(path), "--no-standardize"])
    assert res.exit_code == 2 and "--weights none" in res.output
    res = r.invoke(app, ["export", "weaver", str(path), "--no-standardize", "--weights", "none"])
    assert res.exit_code == 0, res.output
    for cmd in ("weaver", "cmssw"):
        res = r.invoke(app, ["export", cmd, str(path), "--blocks", ","])
        assert res.exit_code == 2 and "names no block" in res.output


def test_export_output_file_is_written_whole_or_not_at_all(store_factory, tmp_path):
    """-o writes what stdout would carry; a failed export leaves no (empty) file, as a shell
    redirect would."""
    pq = store_factory("pq", fmt="parquet")
    compute_stats(pq)
    r = CliRunner()
    stdout = r.invoke(app, ["export", "cmssw", str(pq)]).stdout
    res = r.invoke(app, ["export", "cmssw", str(pq), "-o", str(tmp_path / "preprocess.json")])
    assert res.exit_code == 0 and (tmp_path / "preprocess.json").read_text() == stdout
    res = r.invoke(app, ["export", "weaver", str(pq), "--weights", "none", "--output", str(tmp_path / "data.yaml")])
    assert res.exit_code == 0 and yaml.safe_load((tmp_path / "data.yaml").read_text())["labels"]["type"] == "simple"
    h5 = store_factory("h5")
    res = r.invoke(app, ["export", "weaver", str(h5), "-o", str(tmp_path / "no.yaml")])
    assert res.exit_code == 2 and "Parquet" in res.output and not (tmp_path / "no.yaml").exists()
    (tmp_path / "adir").mkdir()  # a write that fails leaves no temporary file either
    res = r.invoke(app, ["export", "cmssw", str(pq), "-o", str(tmp_path / "adir")])
    assert res.exit_code == 2 and "cannot write" in res.output and sorted(p.name for p in tmp_path.iterdir()) == [
        "adir", "data.yaml", "h5", "pq", "preprocess.json"]
