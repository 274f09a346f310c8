"""The manifest survives a client killed in the middle of writing a line."""

from __future__ import annotations

from jetlib.store.manifest import Manifest


def test_a_torn_line_loses_only_itself(tmp_path):
    m = Manifest.of(tmp_path)
    m.append({"task": "a.root:0-10", "status": "done", "jets": 7})
    with open(m.path, "a") as f:  # the client died half-way through the next line
        f.write('{"task": "b.root:0-10", "status": "do')
    m.append({"task": "c.root:0-10", "status": "failed", "jets": 0})
    m.append({"task": "a.root:0-10", "status": "failed", "jets": 0})
    assert [(r["task"], r["status"]) for r in m.records()] == [
        ("a.root:0-10", "done"), ("c.root:0-10", "failed"), ("a.root:0-10", "failed")]  # fmt: skip
    assert m.latest()["a.root:0-10"]["status"] == "failed"
    assert m.path.read_text().count("\n") == 4  # the fragment keeps its own line
