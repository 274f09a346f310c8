"""One writer at a time: ``jetlib skim`` holds a lock on ``<store>/.jetlib.lock`` while it runs.

Two skims into one store would plan the same tasks, write the same shards, interleave their
manifest lines, and each would delete the other's temporary shard files (a run removes the
ones an interrupted run left behind); ``--overwrite`` would clear a store under a running
skim. The lock is ``flock`` on a file in the store, so the kernel drops it when the process
ends, however it ends: a crash or a kill never leaves a stale lock to clean up by hand. The
file says who holds it. On a file system without locks (some network mounts) the skim goes
on with a warning.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jetlib.errors import StoreError

try:
    import fcntl
except ImportError:  # pragma: no cover (not POSIX)
    fcntl = None

__all__ = ["LOCK_NAME", "writer_lock", "writer"]

LOCK_NAME = ".jetlib.lock"


@contextmanager
def writer_lock(store: str | Path, command: str) -> Iterator[None]:
    """Hold the store's writer lock for the ``with`` block (creates the folder if needed).

    Raises:
        StoreError: another process holds it; the message says which.
    """
    store = Path(store)
    try:
        store.mkdir(parents=True, exist_ok=True)
        fd = os.open(store / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        if store.is_file():  # (mkdir says only "File exists")
            raise StoreError(f"{store}: is a file, not a store folder; choose another --out") from err
        raise StoreError(f"{store}: cannot write a store here ({err.strerror or err}); check the path and its "
                         "permissions, or choose another --out") from err  # fmt: skip
    try:
        try:
            if fcntl is None:
                raise OSError("no fcntl on this platform")
            _flock_retrying(fd)
        except BlockingIOError:
            raise StoreError(
                f"{store}: {_holder(fd)} is writing this store; wait for it to finish (a resumed run "
                "skips its done tasks), or write to another --out"
            ) from None
        except OSError as err:
            warnings.warn(f"{store}: cannot lock the store ({err}); make sure no other jetlib skim writes to it",
                          stacklevel=3)  # fmt: skip
        else:
            when = time.strftime("%Y-%m-%d %H:%M:%S")
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"`{command}` (pid {os.getpid()} on {socket.gethostname()}, since {when})\n"
                          "# the last writer: the lock is held only while it runs (this file stays)\n".encode(), 0)  # fmt: skip
        yield
    finally:
        # closing releases the lock. The file is not removed: a skim starting meanwhile may
        # hold it open and would lock the removed file while a later one locked a new one
        os.close(fd)


def _holder(fd: int) -> str:
    """The lock file's line: who holds the lock, and since when."""
    return os.pread(fd, 1024, 0).decode(errors="replace").strip().split("\n", 1)[0] or "another process"


def _flock_retrying(fd: int, tries: int = 5, wait: float = 0.05) -> None:
    """Exclusive lock without blocking, tried a few times: :func:`writer` holds a shared lock
    for a few microseconds when it probes."""
    for i in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if i == tries - 1:
                raise
            time.sleep(wait)


def writer(store: str | Path) -> str | None:
    """Who is writing ``store`` now (the lock file's line), or None: for the commands that
    read a store, to warn that it is still growing. Probes without waiting, holds nothing."""
    path = Path(store) / LOCK_NAME
    if fcntl is None or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # a store we may not read the lock of: nothing to say
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(fd)
    except OSError:
        return None
    finally:
        os.close(fd)  # also drops the shared lock, if taken
    return None
