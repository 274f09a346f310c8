"""The start-up of the workers of jetlib's own LocalCluster, as a Dask worker plugin: a
plugin also runs in a worker that its nanny restarts (after a crash, a kill for memory),
which ``client.run`` at start-up never reaches. Imported only when jetlib starts a cluster
(it imports distributed)."""

from __future__ import annotations

import signal
import threading

from distributed import WorkerPlugin

__all__ = ["OwnWorker"]


class OwnWorker(WorkerPlugin):
    """Ignore SIGINT: Ctrl-C in the terminal reaches the whole process group, and each worker
    printed its traceback and died mid-task; the client stops the workers itself. Skip
    Numba's extensions (jetlib/_numba.py): ~0.7-1.7 s less in each worker's first task."""

    name = "jetlib-own-worker"

    def setup(self, worker) -> None:
        from jetlib._numba import skip_numba_extensions

        if threading.current_thread() is threading.main_thread():  # (where a handler can be set)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        skip_numba_extensions()
