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
    # bytes that are not UTF-8 (a damaged disk block) are one bad line, not a crash of every command
    with open(m.path, "ab") as f:
        f.write(b"\xff\xfe\x00\x80garbage\xc3\x28\n")
    m.append({"task": "d.root:0-10", "status": "done", "jets": 3})
    assert [r["task"] for r in m.records()][-1] == "d.root:0-10" and m.unreadable() == [2, 5]


def test_store_shards_follow_the_manifest_and_parse_it_once(store_factory, monkeypatch):
    from jetlib.store import Store

    st = Store(store_factory(jets_per_shard=(50, 70)))
    calls = []
    latest = Manifest.latest
    monkeypatch.setattr(Manifest, "latest", lambda self: calls.append(1) or latest(self))
    assert [s.jets for s in st.shards()] == [50, 70]
    st.shards().clear()  # a caller changing its list does not change the store's
    assert [s.jets for s in st.shards()] == [50, 70] and st.n_jets == 120
    assert len(calls) == 1
    # a re-run marks the second task failed: the next call sees it
    rec = dict(st.manifest.latest()["f1.root:0-70"], status="failed", shards=[])
    st.manifest.append(rec)
    assert [s.jets for s in st.shards()] == [50]
    assert len(calls) == 3  # the append's own latest() above, and one parse after it
