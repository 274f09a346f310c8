"""Connect to an existing Dask scheduler (``--scheduler``), with an error that says what to do."""

from __future__ import annotations

from jetlib.errors import StoreError, error_name

__all__ = ["connect"]


def connect(scheduler: str, timeout: str = "30s"):
    """A ``distributed.Client`` of the scheduler at ``scheduler`` (``tcp://host:8786``).

    Raises:
        StoreError: the address is malformed or nothing answers there within ``timeout``.
    """
    from distributed import Client

    try:
        return Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError, TypeError, ValueError) as err:  # TypeError: tls:// with no TLS config
        hint = (" tls:// needs distributed.comm.tls.* (CA, client cert, key) in your Dask config; see the README"
                if scheduler.startswith("tls://") else " check the address (tcp://HOST:PORT) and that the scheduler runs")  # fmt: skip
        raise StoreError(f"cannot connect to the Dask scheduler {scheduler} ({error_name(err)}: {err});{hint}") from err
