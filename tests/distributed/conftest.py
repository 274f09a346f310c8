"""A real Dask cluster on localhost: one `dask scheduler` and two `dask worker` processes
(each under a nanny that restarts it), started once for the module's tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from jetlib.generate import generate



def _wait(cond, timeout: float, what: str):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if (v := cond()) is not None and v is not False:
            return v
        time.sleep(0.2)
    raise TimeoutError(f"no {what} after {timeout} s")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Address of a scheduler with two single-threaded workers."""
    d = tmp_path_factory.mktemp("cluster")
    sched_file = d / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False", "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(sched_file)],
                              env=env, stdout=subprocess.DEVNULL, stderr=open(d / "scheduler.log", "w"))]  # fmt: skip
    try:
        _wait(lambda: sched_file.exists() and sched_file.stat().st_size > 0, 60, "scheduler file")
        address = json.loads(sched_file.read_text())["address"]
        for i in range(2):
            procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                           "--nworkers", "1", "--no-dashboard", "--memory-limit", "0",
                                           "--local-directory", str(d / f"w{i}")],
                                          env=env, stdout=subprocess.DEVNULL, stderr=open(d / f"worker{i}.log", "w")))  # fmt: skip
        from distributed import Client

        with Client(address, timeout=60) as c:
            c.wait_for_workers(2, timeout=90)
        yield address
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> list[str]:
    """Four generated files of 600 events: 24 tasks of 100 events."""
    d = tmp_path_factory.mktemp("sample")
    return [str(p) for p in generate(d, events=2400, files=4, seed=5, progress=False)]
