"""Input schemas: how the branches of a user's ntuple map to jetlib's collections and roles."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from jetlib.config._files import Checker, load_yaml, resolve
from jetlib.errors import ConfigError

__all__ = ["Collection", "InputSchema", "load_input_schema", "NODE_ROLES"]

#: roles that node collections must provide (required) or may provide (read as zero if absent)
NODE_ROLES_REQUIRED = ("pt", "eta", "phi", "mass")
NODE_ROLES = NODE_ROLES_REQUIRED + ("charge", "pdgId", "dxy", "dxyErr", "dz", "dzErr")


@dataclass(frozen=True)
class Collection:
    name: str
    fields: dict[str, str]  # field name -> branch name (required)
    optional: dict[str, str] = field(default_factory=dict)  # field name -> branch (may be absent)

    def branch(self, f: str) -> str:
        return self.fields.get(f) or self.optional[f]

    @property
    def all_fields(self) -> dict[str, str]:
        return {**self.fields, **self.optional}


@dataclass(frozen=True)
class InputSchema:
    name: str
    tree: str
    event: dict[str, str]
    collections: dict[str, Collection]
    source: str
    raw: dict

    def has(self, collection: str) -> bool:
        return collection in self.collections

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True).encode()).hexdigest()[:16]


def _fields(items: object, prefix: str, source: str, key: str) -> dict[str, str]:
    if not isinstance(items, list):
        raise ConfigError("expected a list of field names or {name: branch} mappings", source=source, key=key)
    out: dict[str, str] = {}
    for item in items:
        if isinstance(item, str):
            out[item] = prefix + item
        elif isinstance(item, dict) and len(item) == 1:
            (k, v), = item.items()
            if not isinstance(v, str):
                raise ConfigError(f"branch of field {k!r} must be a string", source=source, key=key)
            out[str(k)] = v
        else:
            raise ConfigError(f"bad field entry {item!r}", source=source, key=key)
    return out


def load_input_schema(name_or_path: str | Path = "miniaod") -> InputSchema:
    """Load and validate an input schema: a bundled name (``miniaod``, ``nanoaod``) or a path."""
    path = resolve("inputs", name_or_path)
    src = str(path)
    raw = load_yaml(path)
    c = Checker(raw, src)
    name = c.get("name", str)
    tree = c.get("tree", str, "Events")
    event = c.get("event", dict, {})
    for k, v in event.items():
        if not isinstance(v, str):
            raise ConfigError("branch name must be a string", source=src, key=f"event.{k}")
    cols: dict[str, Collection] = {}
    cs = c.sub("collections")
    for cname in list(cs.data):
        cc = cs.sub(cname)
        prefix = cc.get("prefix", str, f"{cname}_")
        fields = _fields(cc.get("fields", list), prefix, src, f"collections.{cname}.fields")
        optional = _fields(cc.get("optional", list, []), prefix, src, f"collections.{cname}.optional")
        cc.done()
        cols[cname] = Collection(cname, fields, optional)
    c.done()
    return InputSchema(name=name, tree=tree, event=dict(event), collections=cols, source=src, raw=raw)
