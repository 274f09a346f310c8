"""jetlib's own processes skip Numba's third-party extensions (awkward's, vector's), which
cost ~0.7-1.7 s at the first kernel call; a user's process is left alone."""

from __future__ import annotations

import subprocess
import sys

_FIRST_KERNEL_CALL = """
import sys
import numpy as np
{setup}
from jetlib.stats.quantiles import exact_percentiles
x = np.arange(600, dtype=np.float32).reshape(200, 3)
p, n = exact_percentiles(lambda: iter([{{"x": (x.T.copy(), np.arange(200))}}]), lambda: iter([{{"x": (x, None)}}]),
                         {{"x": 3}}, [50.0])["x"]
assert np.allclose(p[:, 0], np.median(x, axis=0)), p
import numba.core.entrypoints as e
print(e._already_initialized, "awkward.numba" in sys.modules)
"""


def _run(setup: str) -> str:
    code = _FIRST_KERNEL_CALL.format(setup=setup)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()


def test_kernels_run_without_numbas_extensions_in_jetlibs_processes():
    # awkward registers a Numba extension (an entry point), loaded at the first compile or
    # cache load unless skipped; the kernels take NumPy arrays and work either way
    assert _run("") == ["True", "True"]
    assert _run("from jetlib._numba import skip_numba_extensions; skip_numba_extensions()") == ["True", "False"]


def test_the_workers_of_jetlibs_local_cluster_skip_them():
    from jetlib.skim.run import _client

    client, cluster = _client(None, 1, None)
    try:
        flags = client.run(lambda: __import__("numba.core.entrypoints", fromlist=["_"])._already_initialized)
        assert list(flags.values()) == [True]
    finally:
        client.close()
        cluster.close()
