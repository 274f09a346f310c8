"""The store: sharded HDF5/Parquet jet libraries with metadata and a manifest."""

from __future__ import annotations

from jetlib.store.layout import ArraySpec, ShardLayout
from jetlib.store.manifest import Manifest
from jetlib.store.shards import ShardInfo, checksum, read_shard, write_shard
from jetlib.store.store import FORMAT_VERSION, ShardEntry, Store, write_meta

__all__ = [
    "ArraySpec",
    "FORMAT_VERSION",
    "Manifest",
    "ShardEntry",
    "ShardInfo",
    "ShardLayout",
    "Store",
    "checksum",
    "read_shard",
    "write_meta",
    "write_shard",
]
