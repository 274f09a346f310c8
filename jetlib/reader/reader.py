"""``jetlib.Reader``: batches of padded jets straight from the store's shards.

Examples:
    >>> reader = Reader("store/", blocks=["pf", "sv", "jet"], batch_size=1024, shuffle=True,
    ...                 seed=1, weights="flat", standardize=True)        # doctest: +SKIP
    >>> for batch in reader:                                            # doctest: +SKIP
    ...     batch["pf_features"].shape                                  # (1024, F, 50)
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jetlib.errors import ShardError, StoreError, near_matches
from jetlib.reader.plan import Piece, Unit, epoch_batches, make_units
from jetlib.reader.shards import ShardArrays, open_shard
from jetlib.store.shards import CHUNK_JETS, ROW_GROUP_JETS, checksum, read_shard, read_shard_into
from jetlib.store.store import Store

__all__ = ["ReaderBase"]

SHUFFLE_MODES = (False, True, "jets", "slices")
#: jets whose acceptance (8 bytes each) the reader keeps for weighted sampling
ACCEPT_CACHE_JETS = 8_000_000


def _shared_cell(values: list[int]):
    """Integers that DataLoader worker processes share with the main process: a torch tensor
    in shared memory (inherited by forked workers, passed by handle to spawned ones), or a
    NumPy array without torch (then there are no DataLoader workers)."""
    if _torch_available():
        import torch

        return torch.tensor(values, dtype=torch.int64).share_memory_()
    return np.array(values, np.int64)


def _torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _torch_dtype(v: np.ndarray) -> np.ndarray:
    """``v`` as torch batches it: torch has uint16/32/64 tensors but no arithmetic on them
    (``event % 2`` raises), so ``run``, ``lumi`` and ``event`` become int64 (event numbers
    are far below 2**63); uint8 (``label_onehot``) stays."""
    return v.astype(np.int64) if v.dtype.kind == "u" and v.dtype.itemsize > 1 else v


def _select_shards(s: Store, entries: list, shards: Sequence[int | str] | slice) -> list:
    """The store's shard entries picked by ``shards`` (indices, a slice, or shard file names);
    an index out of range, an unknown name, a shard picked twice or a selection with no jets
    is an error, not an empty or doubled epoch."""
    n = len(entries)
    if isinstance(shards, slice):
        picked = entries[shards]
    else:
        shards = [shards] if isinstance(shards, str) else list(shards)  # (a generator, once)
        by_name = {}
        for i, e in enumerate(entries):
            by_name[e.name] = by_name[e.path.stem] = i
        index = []
        for i in shards:
            if isinstance(i, str):
                if i not in by_name:
                    hint = near_matches(i, list(by_name))
                    raise KeyError(f"{s.path}: shards={list(shards)!r}: no done shard named {i!r}"
                                   + (f" (did you mean {', '.join(hint)}?)" if hint else ""))  # fmt: skip
                index.append(by_name[i])
            elif isinstance(i, (int, np.integer)) and not isinstance(i, bool) and -n <= i < n:
                index.append(int(i) % n)
            else:
                raise IndexError(f"{s.path}: shards={list(shards)!r}: no shard {i!r}; the store has {n} shards (0..{n - 1})")
        twice = sorted({entries[i].name for i in index if index.count(i) > 1})
        if twice:
            raise ValueError(f"{s.path}: shards={list(shards)!r} picks {', '.join(twice)} more than once: its jets would "
                             "come twice per epoch")  # fmt: skip
        picked = [entries[i] for i in index]
    if not any(e.jets for e in picked):
        raise ValueError(f"{s.path}: shards={shards!r} selects no jets; the store has {n} shards (0..{n - 1}), "
                         f"{sum(1 for e in entries if e.jets)} of them with jets")  # fmt: skip
    return picked


class ReaderBase:
    """Iterate a store in batches (a torch ``IterableDataset`` when torch is installed).

    Args:
        store: store folder or :class:`~jetlib.store.Store`.
        blocks: node blocks to read, plus ``"jet"`` for the jet features (default: all).
        batch_size: jets per batch.
        shuffle: ``True``/``"jets"``: jets shuffled within a buffer of ``buffer_jets`` drawn
            from shuffled contiguous units (one gather copy per batch); ``"slices"``:
            batches are contiguous runs of jets taken in random order, each a view of the
            memory-mapped shard (zero copy); ``False``: store order, that of
            :meth:`Store.read <jetlib.store.Store.read>` (zero copy on a memory-mapped store,
            but for a batch that joins the ends of two shards).
        seed: seed of the shuffle and of the sampling, an integer >= 0; the same seed gives
            the same batches.
        weights: name of stored sampling weights (``jetlib weights``) to sample jets with
            accept/reject, or None for every jet once per epoch.
        standardize: apply the stored standardisation (``jetlib stats``); zero padding stays 0
            (the copies of a block skimmed with ``padding: wrap`` are standardised too).
        observers: extra per-jet columns in each batch (``jet_pt``, ``event``, ...).
        truth: include the ``truth`` targets.
        shards: read only these shards: file names (``"part-00004"``, stable: a shard's
            number is its task's, fixed when the skim is planned) or indices or a slice of
            ``store.shards()`` (positions among the done tasks' shards, which move when a
            failed task is redone), e.g. to hold some out for testing.
        rank, world_size: this process's DDP rank and the number of ranks (batches are dealt
            round-robin to ranks, then to DataLoader workers). Every rank gets the same number
            of batches, as DDP needs: a rank one short repeats a batch from the start of the
            epoch (as torch's ``DistributedSampler`` pads), or with ``drop_last`` the
            batches that do not fill a round are dropped.
        drop_last: drop the last, smaller batch (and, with several ranks, an incomplete round).
        buffer_jets: shuffle buffer for ``shuffle="jets"`` (for a compressed store, at most
            the window of ``decoded_mb``).
        decoded_mb: memory (MB) for the shards of a compressed HDF5 or Parquet store, which
            are decoded rather than memory-mapped, in blocks of rows (an HDF5 chunk, a
            Parquet row group): the reader decodes a window of blocks drawn at random from
            all shards, and shuffles within the window. A window holds about
            ``buffer_jets`` jets, fewer when those would take more than ``decoded_mb``
            (always at least one block). Batches and the interpreter come on top.
            Uncompressed HDF5 shards are mapped and decode nothing.
        unit_jets: jets per contiguous unit for ``shuffle="jets"``.
        output: ``"torch"``, ``"numpy"`` or None (torch when installed).
        verify: check every shard's checksum once, when the reader is created (a full read
            of the store); ``False`` checks only that the shards exist with the manifest's
            size.

    Batches are dicts: ``<block>_features`` (B, F, L) float32, ``<block>_mask`` (B, 1, L),
    ``jet_features`` (B, Fj), ``label`` (B,) int64, ``label_onehot`` (B, C) uint8,
    ``truth`` (B, T), and the requested observers (unsigned ``run``, ``lumi``, ``event``
    become int64 in torch batches). A zero-copy batch is a view of a mapped shard: NumPy
    batches are read-only; a torch tensor changed in place changes that batch only (for
    torch output the reader maps the shards afresh every epoch). A decoded store's batches
    are copies.

    A store with failed tasks, or one that a skim is still writing, is read with a warning:
    the reader reads the jets of the tasks done.
    """

    def __init__(
        self,
        store: str | Path | Store,
        *,
        blocks: Sequence[str] | None = None,
        batch_size: int = 1024,
        shuffle: bool | str = True,
        seed: int = 0,
        weights: str | None = None,
        standardize: bool = False,
        observers: Sequence[str] = (),
        truth: bool = True,
        shards: Sequence[int] | slice | None = None,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        buffer_jets: int = 65536,
        unit_jets: int = 64,
        decoded_mb: float = 512,
        output: str | None = None,
        verify: bool = True,
    ):
        s = store if isinstance(store, Store) else Store(store)
        self.store = s
        if weights is not None and not isinstance(weights, str):
            raise TypeError(f"weights= takes the name of saved weights (e.g. 'flat', from `jetlib weights`), not {weights!r}")
        if isinstance(blocks, str):  # one name, not its letters
            blocks = [blocks]
        if isinstance(observers, str):
            observers = [observers]
        if shuffle not in SHUFFLE_MODES:
            raise ValueError(f"shuffle={shuffle!r}; use one of {SHUFFLE_MODES}")
        for name, value in (("batch_size", batch_size), ("world_size", world_size), ("rank", rank),
                            ("buffer_jets", buffer_jets), ("unit_jets", unit_jets), ("seed", seed)):  # fmt: skip
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise TypeError(f"{name} must be an integer, not {value!r}")
        if isinstance(decoded_mb, bool) or not isinstance(decoded_mb, (int, float, np.integer, np.floating)) or not decoded_mb > 0:
            raise ValueError(f"decoded_mb must be a number of megabytes > 0, not {decoded_mb!r}")
        for name, value in (("batch_size", batch_size), ("world_size", world_size), ("unit_jets", unit_jets),
                            ("buffer_jets", buffer_jets)):  # fmt: skip
            if value < 1:
                raise ValueError(f"{name} must be >= 1, not {value}")
        if seed < 0:  # (NumPy's generators take none below 0)
            raise ValueError(f"seed must be >= 0, not {seed}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1} (world_size={world_size})")
        if output not in (None, "torch", "numpy"):
            raise ValueError(f"output={output!r}; use 'torch', 'numpy' or None")
        have = list(s.blocks) + ["jet"]
        blocks = list(have if blocks is None else blocks)
        for b in blocks:
            if b not in have:
                hint = near_matches(b, have)
                raise StoreError(
                    f"{s.path}: the store has no block {b!r}"
                    + (f" (did you mean {', '.join(hint)}?)" if hint else "")
                    + f"; its blocks are {', '.join(have)}"
                )
        self.blocks = blocks
        names = []
        for b in blocks:
            names += ["jet_features"] if b == "jet" else [f"{b}_features", f"{b}_mask"]
        names += ["label", "label_onehot"] + (["truth"] if truth else [])
        for o in observers:
            if o not in s.layout.arrays or s.layout.arrays[o].inner != ():
                raise StoreError(f"{s.path}: no observer {o!r}; observers are {', '.join(s.meta.get('observers', []))}")
            names.append(o)
        self.names = list(dict.fromkeys(names))
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.drop_last = drop_last
        self.buffer_jets = buffer_jets
        self.unit_jets = batch_size if shuffle in (False, "slices") else unit_jets
        self.output = output or ("torch" if _torch_available() else "numpy")
        # epoch, and the resume point (epoch, batch) of load_state_dict, in memory that
        # DataLoader workers share: with persistent_workers=True the workers keep their own
        # copy of the reader, which set_epoch in the main process would not reach otherwise
        self._cell = _shared_cell([0, -1, 0])
        self._yielded = 0
        self._lent_views = False  # batches were views of self._open's arrays (see batches())
        entries = s.shards()
        if not any(e.jets for e in entries):
            raise s.no_jets_error()  # not an empty loop that a training would take for an epoch
        self._subset = shards is not None
        if shards is not None:
            entries = _select_shards(s, entries, shards)
        self.entries = [e for e in entries if e.jets]
        fmt = s.meta["shards"]
        self.mapped = fmt["format"] == "hdf5" and fmt["compression"] == "none"
        # a decoded store is read a block of rows at a time: an HDF5 chunk, a Parquet row group,
        # or a whole shard when shards are smaller (a slot of the slab holds a block)
        self.block_jets = None if self.mapped else min(CHUNK_JETS if fmt["format"] == "hdf5" else ROW_GROUP_JETS,
                                                       max(e.jets for e in self.entries))  # fmt: skip
        self.units: list[Unit] = make_units([e.jets for e in self.entries], self.unit_jets, self.block_jets)
        self._n_jets = sum(e.jets for e in self.entries)
        self.weights = None
        if weights is not None:
            from jetlib.weights import load_weights

            self.weights = load_weights(s, weights)
        self.stats = None
        if standardize:
            from jetlib.stats import load_stats

            self.stats = load_stats(s)
        self._check_shards(verify)
        if self.weights is None and len(self) == 0:  # drop_last with more jets per batch than the store has
            what = f"batch of {batch_size:,} jets" if world_size == 1 else f"round of {world_size} batches of {batch_size:,} jets (one per rank)"
            raise ValueError(f"{s.path}: with drop_last=True no {what} fills up from the reader's {self._n_jets:,} "
                             "jets: the epoch would be empty; use a smaller batch_size or drop_last=False")  # fmt: skip
        self._warn_if_incomplete()
        # decoded stores are read a window of blocks at a time (plan.py), and the reader keeps
        # that window decoded and no more, in one preallocated slab per array: a slot of
        # block_jets rows per block, as many slots as decoded_mb holds
        self.jet_bytes = sum(s.layout.arrays[n].jet_bytes for n in self.names)  # decoded bytes per jet
        self.decoded_mb = decoded_mb
        fit = int(decoded_mb * 1e6 // self.jet_bytes) if np.isfinite(decoded_mb) else sys.maxsize  # jets it holds
        self.window_jets = self.window_blocks = None
        if not self.mapped:
            B = self.block_jets
            n_blocks = sum(-(-e.jets // B) for e in self.entries)
            if fit < B:
                warnings.warn(f"{s.path}: decoded_mb={decoded_mb:g} holds {fit:,} jets of {self.jet_bytes:,} bytes, "
                              f"fewer than a block of rows that the reader decodes at once ({B:,} jets, "
                              f"{B * self.jet_bytes / 1e6:,.1f} MB): it holds one block", stacklevel=2)  # fmt: skip
            self.window_blocks = max(1, min(fit // B, n_blocks))  # (slots)
            self.window_jets = max(1, min(max(buffer_jets, batch_size), self.window_blocks * B))
        # shuffle False or "slices" join the short last units of blocks into batches, which
        # can wait past their window: those rows are read alone (_read). With weights every
        # unit joins that queue, and none waits long.
        self._tail_alone = not self.mapped and shuffle in (False, "slices") and self.weights is None
        self._open: dict[int, ShardArrays] = {}  # mapped shards
        self._blocks: dict[tuple[int, int], int] = {}  # decoded blocks (shard, block) -> slot, least recently used first
        self._slab: dict[str, np.ndarray] = {}  # decoded rows by array, allocated when first used
        self._free: list[int] = []
        self._wcols: dict[Any, np.ndarray] = {}  # acceptance of each jet, per shard or (shard, block)
        self.timings = {"verify_s": self._verify_s}

    # -- checks --------------------------------------------------------------------------
    def _check_shards(self, verify: bool) -> None:
        t0 = time.perf_counter()
        for e in self.entries:
            if not e.path.is_file():
                raise ShardError(str(e.path), "shard file is missing; run `jetlib verify` on the store")
            size = e.path.stat().st_size
            if size != e.bytes:
                raise ShardError(str(e.path), f"shard has {size:,} bytes, the manifest says {e.bytes:,}: truncated or replaced")
            if verify and checksum(e.path) != e.checksum:
                raise ShardError(str(e.path), "checksum mismatch: the shard changed after it was written; re-skim its input")
        self._verify_s = time.perf_counter() - t0

    def _warn_if_incomplete(self) -> None:
        """A training on part of a store should know it (as `weights` and `stats` say)."""
        from jetlib.store.lock import writer

        s = self.store
        who = writer(s.path)
        if who:
            warnings.warn(f"{s.path}: {who} is still writing this store; the reader reads the {self._n_jets:,} jets "
                          "of the tasks done so far", stacklevel=3)  # fmt: skip
        elif why := s.incomplete():
            which = "the shards selected of the done ones" if self._subset else "the done ones"
            warnings.warn(f"{s.path}: {why}; the reader reads the {self._n_jets:,} jets of {which} "
                          f"(`jetlib verify {s.path}` lists them)", stacklevel=3)  # fmt: skip

    # -- pickling for DataLoader workers: open mappings stay in their process -------------
    def __getstate__(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["_open"] = {}
        d["_wcols"] = {}
        d["_blocks"], d["_slab"], d["_free"] = {}, {}, []
        return d

    # -- epoch control ---------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return int(self._cell[0])

    @property
    def _start_batch(self) -> int:
        """Batches of the current epoch to skip: the resume point of load_state_dict while
        its epoch is the current one."""
        return int(self._cell[2]) if int(self._cell[1]) == self.epoch else 0

    def set_epoch(self, epoch: int) -> None:
        """Use the shuffle and sampling of ``epoch`` (call before each epoch, as with
        DistributedSampler). A resume point from :meth:`load_state_dict` for this epoch stays."""
        if not isinstance(epoch, (int, np.integer)) or isinstance(epoch, bool):
            raise TypeError(f"set_epoch takes an integer >= 0, not {epoch!r}")
        if epoch < 0:
            raise ValueError(f"set_epoch takes an integer >= 0, not {epoch}")
        self._cell[0] = int(epoch)
        self._yielded = self._start_batch  # what state_dict() says before this epoch's first batch

    def state_dict(self, batch: int | None = None) -> dict[str, int]:
        """Where this rank is: epoch and batches consumed in it. Iterating the reader itself
        counts them; with a DataLoader pass the number of batches the loop received."""
        return {"epoch": self.epoch, "batch": self._yielded if batch is None else int(batch), "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume: the next pass over ``state["epoch"]`` starts at batch ``state["batch"]``
        (``set_epoch`` to that epoch keeps it; a complete pass of the reader itself uses it up;
        with DataLoader workers it holds until ``set_epoch`` moves to another epoch)."""
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(f"state was saved with seed {state['seed']}, this reader has seed {self.seed}")
        epoch, batch = int(state["epoch"]), int(state["batch"])
        if epoch < 0 or batch < 0:
            raise ValueError(f"state {state!r}: epoch and batch must be >= 0")
        if self.weights is None and batch > len(self):
            raise ValueError(f"state {state!r}: batch {batch} is past the end of the epoch ({len(self)} batches per "
                             "epoch for this rank): saved by another configuration of the reader?")  # fmt: skip
        self._cell[0], self._cell[1], self._cell[2] = epoch, epoch, batch
        self._yielded = batch

    # -- iteration ---------------------------------------------------------------------------
    def _accept(self, u: Unit) -> np.ndarray:
        """Acceptance probability of each jet of unit ``u`` under the sampling weights."""
        if self._n_jets <= ACCEPT_CACHE_JETS:  # every shard's acceptance fits: one read each, kept
            return self._shard_acceptance(u.shard)[u.start : u.stop]
        if self.block_jets:  # a big decoded store: its windows mix blocks of many shards
            b = u.start // self.block_jets
            a = b * self.block_jets
            return self._shard_acceptance(u.shard, b)[u.start - a : u.stop - a]
        # a big mapped store's units come in one global random order, which a bounded cache
        # of whole shards would miss: look up the unit alone (views of the mapping, no read)
        return self._lookup(self._shard(u.shard), u.start, u.stop)

    def _lookup(self, src: ShardArrays | dict[str, np.ndarray], start: int = 0, stop: int | None = None) -> np.ndarray:
        """Acceptance of rows ``start:stop`` of a shard's arrays (mapped, or the columns read)."""
        assert self.weights is not None
        cols = {v: src[v][start:stop] for v in self.weights.variables}
        return self.weights.lookup(cols, src["label"][start:stop])

    def _shard_acceptance(self, i: int, b: int | None = None) -> np.ndarray:
        """Acceptance of every jet of shard ``i`` (of its block ``b``, when given), looked up
        once and kept (up to ACCEPT_CACHE_JETS jets, least recently used out): a lookup per
        64-jet unit cost 0.24 ms, 75% of a weighted epoch's plan. A decoded shard's binned
        observers and label are read alone (a few small columns), so that counting an
        epoch's batches does not decode whole shards."""
        assert self.weights is not None
        key = i if b is None else (i, b)
        p = self._wcols.pop(key, None)
        if p is None:
            if self.mapped and b is None:
                p = self._lookup(self._shard(i))
            else:
                start, stop = (0, None) if b is None else self._block_rows(i, b)
                names = list(dict.fromkeys([*self.weights.variables, "label"]))
                p = self._lookup(read_shard(self.entries[i].path, self.store.layout, names, start=start, stop=stop))
            held = sum(len(v) for v in self._wcols.values()) + len(p)
            while self._wcols and held > ACCEPT_CACHE_JETS:
                held -= len(self._wcols.pop(next(iter(self._wcols))))
        self._wcols[key] = p
        return p

    def _block_rows(self, i: int, b: int) -> tuple[int, int]:
        assert self.block_jets
        return b * self.block_jets, min((b + 1) * self.block_jets, self.entries[i].jets)

    def _block(self, i: int, b: int, keep=()) -> int:
        """The slab slot of block ``b`` of decoded shard ``i``, decoded there (HDF5: its
        chunks) into a free slot or the least recently used one not in ``keep``."""
        key = (i, b)
        slot = self._blocks.pop(key, None)
        if slot is None:
            B = self.block_jets
            if not self._slab:
                for n in self.names:
                    spec = self.store.layout.arrays[n]
                    self._slab[n] = np.empty((self.window_blocks * B, *spec.inner), spec.dtype)
                self._free = list(range(self.window_blocks))[::-1]
            if self._free:
                slot = self._free.pop()
            else:
                slot = self._blocks.pop(next(k for k in self._blocks if k not in keep))
            start, stop = self._block_rows(i, b)
            e = self.entries[i]
            try:
                read_shard_into(e.path, self.store.layout, {n: a[slot * B : slot * B + stop - start] for n, a in self._slab.items()}, start)
            except BaseException:
                self._free.append(slot)
                raise
        self._blocks[key] = slot  # most recently used last
        return slot

    def _read_decoded(self, parts: list, out: dict[str, np.ndarray], joined: bool) -> None:
        """Fill ``out`` from decoded blocks: one gather per array from the slab when the
        batch's blocks fit in it together (a copy per block and array cost 25% of an epoch:
        a batch draws on ~60 blocks), else block by block."""
        B = self.block_jets
        slab_parts = []
        for key, rows, pos, k in parts:
            if joined and self._tail_alone and key not in self._blocks and isinstance(rows, slice):
                # short last units of blocks joined into a batch may come from a window let
                # go already: read those rows alone rather than decode their block again
                i, b = key
                a = b * B
                src = read_shard(self.entries[i].path, self.store.layout, self.names, start=a + rows.start, stop=a + rows.stop)
                for n in self.names:
                    out[n][pos : pos + k] = src[n]
            else:
                slab_parts.append((key, rows, pos, k))
        need = dict.fromkeys(key for key, *_ in slab_parts)
        if not need:
            return
        if len(need) <= self.window_blocks:
            for key in need:
                self._block(*key, keep=need)
            idx = np.concatenate([self._blocks[key] * B + (np.arange(rows.start, rows.stop) if isinstance(rows, slice) else rows)
                                  for key, rows, _, _ in slab_parts])  # fmt: skip
            if len(slab_parts) == len(parts):  # (rows in batch order)
                for n in self.names:
                    np.take(self._slab[n], idx, axis=0, out=out[n])
            else:
                dest = np.concatenate([np.arange(pos, pos + k) for _, _, pos, k in slab_parts])
                for n in self.names:
                    out[n][dest] = self._slab[n][idx]
            return
        # A batch that joins two windows: the held blocks first, and each block taken from
        # as soon as it is decoded, so the new window's blocks replace the old window's
        for key, rows, pos, k in sorted(slab_parts, key=lambda x: x[0] not in self._blocks):
            a = self._block(*key) * B
            for n in self.names:
                if isinstance(rows, slice):
                    out[n][pos : pos + k] = self._slab[n][a + rows.start : a + rows.stop]
                else:
                    np.take(self._slab[n], rows + a, axis=0, out=out[n][pos : pos + k])

    def _split(self, i: int, rows: slice | np.ndarray, pos: int) -> Iterator[tuple[Any, slice | np.ndarray, int, int]]:
        """Rows of shard ``i`` (a slice or sorted indices) for batch rows from ``pos``, cut by
        source: ``(key, rows of the source, batch position, count)``, the key a mapped
        shard's index or a decoded block's ``(shard, block)``."""
        B = self.block_jets
        if isinstance(rows, slice):
            if not B:
                yield i, rows, pos, rows.stop - rows.start
                return
            a = rows.start
            while a < rows.stop:
                b = a // B
                e = min(rows.stop, (b + 1) * B)
                yield (i, b), slice(a - b * B, e - b * B), pos + a - rows.start, e - a
                a = e
            return
        if not B:
            yield i, rows, pos, len(rows)
            return
        for seg in np.split(rows, np.flatnonzero(np.diff(rows // B)) + 1):
            b = int(seg[0]) // B
            yield (i, b), seg - b * B, pos, len(seg)
            pos += len(seg)

    def _shard(self, i: int) -> ShardArrays:
        sh = self._open.get(i)
        if sh is None:
            e = self.entries[i]
            extra = list(self.weights.variables) + ["label"] if self.weights is not None and self.mapped else []
            sh = open_shard(e.path, self.store.layout, list(dict.fromkeys(self.names + extra)), e.jets)
            if self.output == "numpy":  # zero-copy NumPy batches are read-only views (torch.from_numpy
                for a in sh.arrays.values():  # warns on those: torch batches stay writable)
                    a.flags.writeable = False
            self._open[i] = sh
        else:  # most recently used last
            self._open[i] = self._open.pop(i)
        return sh

    def _plan(self) -> Iterator[list[Piece]]:
        """The batches of the current epoch over all ranks (index arithmetic, no data read
        except the weights' columns)."""
        return epoch_batches(
            self.units, batch_size=self.batch_size, shuffle=self.shuffle, seed=self.seed, epoch=self.epoch,
            buffer_jets=self.buffer_jets, accept=self._accept if self.weights is not None else None,
            drop_last=self.drop_last, window_jets=self.window_jets, block_jets=self.block_jets,
            window_blocks=self.window_blocks,
        )  # fmt: skip

    def _plan_batches(self) -> int:
        """Batches in the current epoch's plan, over all ranks: counted from the jets, or by
        running the plan when sampling weights decide how many jets there are."""
        if self.weights is not None:
            return sum(1 for _ in self._plan())
        full, rest = divmod(self._n_jets, self.batch_size)
        if self.shuffle in (False, "slices"):  # a whole unit is a batch; the shorter ones are joined
            full = sum(1 for u in self.units if u.stop - u.start == self.batch_size)
            full_more, rest = divmod(sum(u.stop - u.start for u in self.units if u.stop - u.start < self.batch_size), self.batch_size)
            full += full_more
        return full + (1 if rest and not self.drop_last else 0)

    def _rank_batches(self, total: int) -> int:
        w = self.world_size
        return total if w == 1 else (total // w if self.drop_last else -(-total // w))

    def batches(self, *, worker: int = 0, num_workers: int = 1) -> Iterator[dict[str, np.ndarray]]:
        """NumPy batches of this rank and worker for the current epoch."""
        w, rank = self.world_size, self.rank
        start = self._start_batch
        if self.output == "torch" and self._lent_views:
            # torch tensors over views are writable: shards mapped and decoded afresh, so that a
            # batch changed in place does not carry the change into the next epoch (re-faulting
            # the mapping: 0.09-0.14 s against 0.02 s per zero-copy epoch of a 1 GB store;
            # gathered and standardised batches are copies, and need none)
            self._open.clear()
            self._lent_views = False

        def mine(k: int) -> bool:  # k: index among this rank's batches
            return k >= start and (k - start) % num_workers == worker

        total = self._plan_batches() if w > 1 else None
        n_rank = self._rank_batches(total) if total is not None else None
        for b, pieces in enumerate(self._plan()):
            k = b // w
            if n_rank is not None and k >= n_rank:
                break
            if b % w == rank and mine(k):
                yield self._read(pieces)
        if not total:  # one rank, or an empty epoch: nothing to pad
            return
        # DDP steps all ranks together: a rank one batch short would wait forever at the
        # last step, so it repeats a batch from the start of the epoch (plan batch b mod total)
        pads = {(k * w + rank) % total for k in range(n_rank) if k * w + rank >= total and mine(k)}
        if pads:
            for b, pieces in enumerate(self._plan()):
                if b in pads:
                    yield self._read(pieces)
                if b >= max(pads):
                    break

    def _read(self, pieces: list[Piece]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if self.mapped and len(pieces) == 1 and isinstance(pieces[0][1], slice):
            sh = self._shard(pieces[0][0])
            for n in self.names:
                out[n] = sh[n][pieces[0][1]]  # a view of the mapping (a decoded store's slab is reused: copies)
            self._lent_views = True
        else:
            sizes = [(p.stop - p.start) if isinstance(p, slice) else len(p) for _, p in pieces]
            for n in self.names:
                spec = self.store.layout.arrays[n]
                out[n] = np.empty((sum(sizes), *spec.inner), spec.dtype)
            parts = [x for (i, rows), pos in zip(pieces, np.cumsum([0, *sizes[:-1]])) for x in self._split(i, rows, int(pos))]
            if self.mapped:
                for key, rows, pos, k in parts:
                    sh = self._shard(key)
                    for n in self.names:
                        if isinstance(rows, slice):
                            out[n][pos : pos + k] = sh[n][rows]
                        else:
                            np.take(sh[n], rows, axis=0, out=out[n][pos : pos + k])
            else:
                self._read_decoded(parts, out, joined=len(pieces) > 1)
        if self.stats is not None:
            for n in self.names:
                if n == "jet_features":
                    out[n] = self.stats.apply(n, out[n])
                elif n.endswith("_features"):
                    # zero padding stays 0; a block skimmed with `padding: wrap` keeps its copies
                    # of real nodes, standardised, as weaver pads (wrap) after standardising:
                    # only a jet without real nodes (all zeros in the store) stays 0
                    block = n[: -len("_features")]
                    mask = out[f"{block}_mask"]
                    if self.store.blocks.get(block, {}).get("padding") == "wrap":
                        mask = mask.max(axis=2, keepdims=True)
                    out[n] = self.stats.apply(n, out[n], mask)
        out["label"] = out["label"].astype(np.int64)
        return out

    def _iterate(self, worker: int, num_workers: int, in_worker: bool) -> Iterator[dict[str, Any]]:
        to_torch = self.output == "torch"
        if to_torch:
            import torch
        epoch, resumed = self.epoch, self._start_batch
        self._yielded = resumed
        for batch in self.batches(worker=worker, num_workers=num_workers):
            self._yielded += 1
            yield {k: torch.from_numpy(_torch_dtype(v)) for k, v in batch.items()} if to_torch else batch
        if resumed and not in_worker and int(self._cell[1]) == epoch:
            self._cell[1] = -1  # the resumed epoch is done: another pass over it is whole

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker, num_workers, info = 0, 1, None
        if "torch.utils.data" in sys.modules:  # a DataLoader worker, whatever the output type
            info = sys.modules["torch.utils.data"].get_worker_info()
        if info is not None:
            worker, num_workers = info.id, info.num_workers
        return self._iterate(worker, num_workers, info is not None)

    def __len__(self) -> int:
        """Batches of this rank per epoch (exact without weights)."""
        if self.weights is not None:
            raise TypeError("with sampling weights the number of batches varies per epoch; see expected_jets()")
        return self._rank_batches(self._plan_batches())

    def expected_jets(self) -> float:
        """Jets per epoch over all ranks (expected value with sampling weights: from the
        weight tables for the whole store, from each jet's acceptance for a ``shards=``
        subset)."""
        if self.weights is None:
            return float(self._n_jets)
        if self._subset:
            return float(sum(self._shard_acceptance(i).sum(dtype=np.float64) for i in range(len(self.entries))))
        return float(sum(self.weights.expected_counts().values()))

    def __repr__(self) -> str:
        return (f"Reader({str(self.store.path)!r}, blocks={self.blocks}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle!r}, weights={self.weights.name if self.weights else None!r}, "
                f"standardize={self.stats is not None}, rank={self.rank}/{self.world_size})")  # fmt: skip
