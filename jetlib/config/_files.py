"""Locate and parse the YAML files under ``schemas/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from jetlib.errors import ConfigError


def schema_root() -> Path:
    """The ``schemas/`` folder: packaged as ``jetlib/_schemas`` in a wheel, the repository's
    top-level ``schemas/`` in an editable install."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_schemas", here.parent / "schemas"):
        if candidate.is_dir():
            return candidate
    raise ConfigError("cannot find jetlib's schemas/ folder; reinstall jetlib")


#: what a file of each kind is, and the option that names it (for errors)
_WHAT = {"inputs": "input schema (--schema)", "skim": "skim config (--config)", "labels": "label scheme (--labels)"}

#: bundled files that are not themselves a schema of their folder's kind (loaded by name)
SUPPORT_FILES = {"skim": {"presets"}}


def resolve(kind: str, name_or_path: str | Path, *, support: bool = False) -> Path:
    """A bundled schema by name (``schemas/<kind>/<name>.yaml``) or a user's file by path;
    ``support`` allows the support files of :data:`SUPPORT_FILES` (the event-selection presets)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"no such {_WHAT.get(kind, kind)} file: {p}")
        return p
    support_files = SUPPORT_FILES.get(kind, set())
    bundled = schema_root() / kind / f"{name_or_path}.yaml"
    if bundled.is_file() and (support or str(name_or_path) not in support_files):
        return bundled
    known = sorted(x.stem for x in (schema_root() / kind).glob("*.yaml") if x.stem not in support_files)
    raise ConfigError(
        f"unknown {kind} schema {str(name_or_path)!r}; bundled ones are {', '.join(known)}, "
        "or give the path of a .yaml file"
    )


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last one:
    a second ``Muon:`` would silently replace the first)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} given twice in one mapping",
                                                        key_node.start_mark)  # fmt: skip
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: Path) -> Any:
    try:
        with open(path) as f:
            data = yaml.load(f, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        raise ConfigError(f"not valid YAML: {err}", source=str(path)) from err
    if data is None:
        raise ConfigError("the file is empty (or only comments); start from a bundled one under schemas/", source=str(path))
    return data


class Checker:
    """Small helper that reads typed keys from a mapping and names the file and key on error."""

    def __init__(self, data: Any, source: str, prefix: str = ""):
        if not isinstance(data, dict):
            raise ConfigError(f"expected a mapping, got {type(data).__name__}", source=source, key=prefix or None)
        self.data = data
        self.source = source
        self.prefix = prefix
        self.used: set[str] = set()

    def key(self, k: str) -> str:
        return f"{self.prefix}.{k}" if self.prefix else k

    def get(self, k: str, types: type | tuple[type, ...], default: Any = ..., choices: Any = None, *,
            low: float | None = None, above: float | None = None) -> Any:
        """The value of key ``k``, of ``types`` (an int is taken as a float), one of
        ``choices``, at least ``low`` and greater than ``above`` (a number is never NaN)."""
        self.used.add(k)
        if k not in self.data:
            if default is ...:
                raise ConfigError("missing required key", source=self.source, key=self.key(k))
            return default
        v = self.data[k]
        if v is None and default is None:
            return None
        if isinstance(types, tuple) and float in types and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        elif types is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, types) or (isinstance(v, bool) and types in (int, float)):
            tn = types.__name__ if isinstance(types, type) else "/".join(t.__name__ for t in types)
            raise ConfigError(f"expected {tn}, got {v!r}", source=self.source, key=self.key(k))
        if choices is not None and v not in choices:
            raise ConfigError(f"{v!r} is not one of {sorted(choices)}", source=self.source, key=self.key(k))
        if isinstance(v, float) and v != v:
            raise ConfigError("expected a number, got NaN", source=self.source, key=self.key(k))
        if (low is not None and v < low) or (above is not None and not v > above):
            bound = f">= {low:g}" if low is not None else f"> {above:g}"
            raise ConfigError(f"must be {bound}, got {v!r}", source=self.source, key=self.key(k))
        return v

    def sub(self, k: str) -> Checker:
        self.used.add(k)
        if k not in self.data:
            raise ConfigError("missing required section", source=self.source, key=self.key(k))
        return Checker(self.data[k], self.source, self.key(k))

    def done(self) -> None:
        """Unknown keys are errors: a typo must not silently fall back to a default."""
        unknown = set(self.data) - self.used
        if unknown:
            from jetlib.errors import near_matches

            k = sorted(unknown)[0]
            near = near_matches(str(k), self.used)
            hint = f"; did you mean {near[0]!r}?" if near else f"; known keys: {', '.join(sorted(self.used))}"
            raise ConfigError(f"unknown key{hint}", source=self.source, key=self.key(str(k)))
