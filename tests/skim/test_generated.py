"""generate -> skim: every truth class of the default scheme appears in a small sample."""

from __future__ import annotations

import numpy as np

from jetlib.generate import generate
from jetlib.skim.run import skim
from jetlib.store import Store


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
