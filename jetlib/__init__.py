"""jetlib: MiniAOD-like events to padded, labelled jet libraries, and a zero-copy reader.

Examples:
    >>> import jetlib
    >>> store = jetlib.Store("store/")          # doctest: +SKIP
    >>> reader = jetlib.Reader("store/", batch_size=1024, shuffle=True)  # doctest: +SKIP
"""

from __future__ import annotations

from jetlib._version import __version__
from jetlib.errors import ConfigError, InputFileError, MissingBranchError, ShardError, StoreError
from jetlib.store import Store

__all__ = [
    "ConfigError",
    "InputFileError",
    "MissingBranchError",
    "Reader",
    "ShardError",
    "Store",
    "StoreError",
    "__version__",
]


def __getattr__(name: str):
    # the Reader pulls in its own dependencies only when asked for
    if name == "Reader":
        from jetlib.reader import Reader

        return Reader
    raise AttributeError(f"module 'jetlib' has no attribute {name!r}")
