"""generate -> skim: every truth class of the default scheme appears in a small sample."""

from __future__ import annotations

from collections import Counter

import numpy as np
from typer.testing import CliRunner

from jetlib.cli import app
from jetlib.generate import generate
from jetlib.skim.run import skim
from jetlib.store import Store
from jetlib.store.inspect import describe


def test_every_class_appears_and_b_jets_are_displaced(tmp_path):
    files = generate(tmp_path / "data", events=6000, files=2, seed=3, progress=False)
    s = skim([str(f) for f in files], tmp_path / "store", workers=2, dashboard_address=None, progress=False)
    assert s.ok and s.events == 6000
    store = Store(tmp_path / "store")
    a = store.read(["label", "pf_features", "pf_mask", "hadron_flavour"])
    counts = np.bincount(a["label"], minlength=len(store.classes))
    assert (counts > 0).all(), dict(zip(store.classes, counts))
    f = store.blocks["pf"]["features"].index("sip2d_sig")
    lead = a["pf_features"][:, f, :].max(axis=1)  # largest signed IP significance in the jet
    b = lead[a["label"] == store.classes.index("b")]
    uds = lead[a["label"] == store.classes.index("uds")]
    # a displaced track (significance > 5) in ~30% of b jets, in almost no light jets
    assert (b > 5).mean() > 0.2 and (uds > 5).mean() < 0.02
    # inspect sets the input's Jet_hadronFlavour (the generator's B/C hadron match, kept for
    # comparison) beside each class, counted here again from the column: 5, 4, anything else
    hf, d = np.abs(a["hadron_flavour"]), describe(tmp_path / "store")
    for k, name in enumerate(store.classes):
        n = Counter(f if f in (4, 5) else 0 for f in hf[a["label"] == k].tolist())
        assert d["hadron_flavour"][name] == (n[5], n[4], n[0]), name
    share = {k: np.array(v) / max(sum(v), 1) for k, v in d["hadron_flavour"].items()}
    assert share["b"][0] > 0.9 and share["c"][1] > 0.8 and share["uds"][2] > 0.95 and share["g"][2] > 0.95, share
    res = CliRunner().invoke(app, ["inspect", str(tmp_path / "store")], env={"COLUMNS": "300"})
    assert res.exit_code == 0 and "kept for comparison, not used for the label" in res.output
    row = next(line for line in res.output.splitlines() if line.startswith("│ b "))
    assert [c.strip() for c in row.split("│")[4:7]] == [f"{x:.2f}" for x in share["b"]]
