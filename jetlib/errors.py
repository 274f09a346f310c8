"""Exception classes: each subclasses a builtin and says which file, branch or shard failed
and what to do about it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "ConfigError",
    "InputFileError",
    "MissingBranchError",
    "StoreError",
    "ShardError",
    "near_matches",
    "error_name",
    "one_line",
]


def error_name(err: BaseException) -> str:
    """``ValueError``, ``zlib.error``, ``uproot.DeserializationError``: the class, with its
    package where the bare name says little."""
    cls = type(err)
    mod = cls.__module__.split(".")[0]
    return cls.__name__ if mod in ("builtins", "jetlib") else f"{mod}.{cls.__name__}"


def one_line(err: BaseException) -> str:
    """``str(err)`` on one line: uproot's DeserializationError spreads a damaged basket's
    header over 15 lines, repeated for every task of the file in the skim's summary."""
    return " ".join(str(err).split())


def near_matches(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The closest names to ``name`` among ``candidates`` (for 'did you mean' hints); a name
    that differs only in case comes first (``B`` for the class ``b``)."""
    candidates = list(candidates)
    same = [c for c in candidates if c.lower() == name.lower() and c != name]
    close = difflib.get_close_matches(name, candidates, n=n, cutoff=0.6)
    return (same + [c for c in close if c not in same])[:n]


class ConfigError(ValueError):
    """A schema or configuration file is invalid: names the file and the key."""

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None):
        self.source = source
        self.key = key
        # in a file, the key locates the error; without one (a command-line option or a
        # function argument) the message names the option itself
        where = f"{source} [{key}]" if source and key else (source or "")
        super().__init__(f"{where}: {message}" if where else message)


class InputFileError(OSError):
    """An input ROOT file cannot be used (missing, not ROOT, truncated, corrupt, no tree)."""

    def __init__(self, path: str, message: str, *, cause: str | None = None):
        self.path = path
        self.cause = cause
        super().__init__(f"{path}: {message}")

    def __reduce__(self):  # keep the fields across Dask's pickling
        return (type(self), (self.path, self.args[0].split(": ", 1)[-1]), {"cause": self.cause})


class MissingBranchError(KeyError):
    """A branch that the input schema needs is not in the file."""

    def __init__(self, path: str, branch: str, candidates: Iterable[str] = (), schema: str = "", others: Iterable[str] = ()):
        self.path = path
        self.branch = branch
        self.suggestions = near_matches(branch, candidates)
        self.schema = schema
        self.others = tuple(others)  # the other branches the file lacks, so that one run names them all
        super().__init__(branch)

    def __str__(self) -> str:
        hint = f"; near matches: {', '.join(self.suggestions)}" if self.suggestions else ""
        more = ""
        if self.others:
            shown = ", ".join(self.others[:12]) + (", ..." if len(self.others) > 12 else "")
            more = f" (nor {len(self.others)} other branch(es) the schema names: {shown})"
        fix = (
            f"; map it in your input schema ({self.schema}), or list a collection field that may be absent under optional:"
            if self.schema
            else ""
        )
        return f"{self.path}: branch {self.branch!r} not found{more}{hint}{fix}"

    def __reduce__(self):
        return (type(self), (self.path, self.branch, self.suggestions, self.schema, self.others))


class SchemaMismatchError(ValueError):
    """A branch the input schema names has another shape or type than its role needs (an event
    field that holds a list, a collection field that holds one value per event, a branch of
    another collection, integers for a kinematic field): the schema is wrong, not the file."""


class StoreError(RuntimeError):
    """A store is missing, of an unknown format, inconsistent, or mixed with another config."""


class ShardError(OSError):
    """A shard is unreadable, truncated or fails its checksum."""

    def __init__(self, path: str, message: str):
        self.path = path
        super().__init__(f"{path}: {message}")

    def __reduce__(self):
        return (type(self), (self.path, self.args[0].split(": ", 1)[-1]))
