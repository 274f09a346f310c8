"""A read that hangs (a server that accepts the connection and never answers) is cut off by
the per-task wall-clock limit and recorded; the other files complete."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from jetlib.skim.run import skim
from jetlib.store import Store

pytest.importorskip("aiohttp", reason="http:// inputs need the http extra")


@pytest.fixture
def silent_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held = []
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])  # accept, never answer
            except TimeoutError:
                pass

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}/events.root"
    stop.set()
    th.join(2)
    for c in held:
        c.close()
    srv.close()


def test_hanging_read_is_cut_off_and_recorded(sample, silent_server, tmp_path):
    t0 = time.monotonic()
    s = skim([sample[0], silent_server], tmp_path / "store", workers=1, entries_per_task=300,
             dashboard_address=None, progress=False, task_timeout=3)  # fmt: skip
    assert time.monotonic() - t0 < 60
    assert s.failed == 1 and s.done == 2
    rec = Store(tmp_path / "store").manifest.latest()[f"{silent_server}:file"]
    assert rec["status"] == "failed" and rec["error"] == "TaskTimeout" and silent_server in rec["reason"]
