"""Exact percentiles of every feature over all real nodes of a store, in bounded memory.

Holding every value is out of the question (a million jets × 50 PF slots × 40 features is
8 GB), so the percentiles are found by selection in two passes:

1. a sample spread over the input files gives, for each feature and percentile, a bracket
   ``[lo, hi]`` of values that contains the target rank with a margin of many standard
   deviations. The nodes of one jet are not independent draws (a hard jet's candidates
   are all hard), so the standard deviation is estimated from groups of sample jets,
   not from the binomial count of values, which understated it up to sqrt(nodes per jet);
2. one pass over all shards counts, per feature and percentile, the values below ``lo``,
   equal to ``lo`` and equal to ``hi``, and keeps only the values strictly inside
   (≈1% of them); the exact order statistic is then picked from the counts and the kept
   values. Counting the bounds rather than keeping them matters for discrete features
   (charge, particle-ID flags), whose bracket is often a single value. A bracket whose
   bounds no sample value repeats (a continuous feature) is closed instead: the values
   < lo and <= hi are counted and those in [lo, hi] kept, half the comparisons.

A bracket that misses (rare: the sample is not i.i.d. when events in a file drift, e.g.
ordered by run) is widened to ±inf on the side it missed and the second pass repeats once,
for those features only. The result equals
``np.percentile`` (linear interpolation) over the unpadded values exactly.

The second pass is one Numba loop over the shard's ``(N, F, L)`` array and its mask, so the
padding of long blocks (PF) is skipped where it lies instead of gathering the real nodes
into a copy first; blocks of a few slots per jet (SV, leptons), mostly padding, have their
real values gathered into one long row per feature.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numba as nb
import numpy as np

from jetlib._bitmask import LANES, at_most, below, equal, finite, lowest_bit, popcount
from jetlib._percentile import lerp, rank_positions

#: Numba caches a compiled function by its own file only: the hashes of the files whose
#: compiled functions this file's kernels call make an edit there an edit here, so that a
#: `git pull` that changes only those never runs a stale cached kernel (tests/test_numba_cache.py)
NUMBA_DEPENDS = {"jetlib/_bitmask.py": "sha256:0d6fadaa977f7e8c"}

__all__ = ["exact_percentiles", "real_values", "SAMPLE_VALUES"]

#: standard deviations of margin around the sample's estimate of each rank
_SIGMAS = 8.0
#: a sample of some shards is taken again from every shard when the spread between the
#: sampled shards is this many times what the groups of jets show for some feature: with
#: 20 shards alike the ratio stays near 1 (it is estimated from 19 degrees of freedom);
#: brackets widened by more would keep too many values (memory), and a sample of every
#: shard does not see shards differ at all (each is a stratum of its own)
_PARTS_DIFFER = 2.0
#: groups of sample jets for the standard deviation, and consecutive jets kept together
#: in a group (the jets of one event share event-level features such as rho and nPV)
_GROUPS, _RUN = 64, 8
#: sample values per feature used for the brackets (thinned evenly beyond this; the caller's
#: sample can thin to about this many as it gathers, as compute_stats does)
SAMPLE_VALUES = 200_000
#: rows with fewer slots than this are scanned as the real values of all jets, one long row
#: per feature (the per-row overhead of the counting loop would dominate)
_LONG_ROW = 16
#: fewest values scanned in a chunk for its kept fraction to size the next chunk's buffer
_RATE_VALUES = 4096
#: scratch columns at the end of a kept-value buffer (see _scan)
KEPT_SLACK = 2
#: what _scan does for a (feature, percentile): nothing (settled), the previous
#: percentile's counts again, count one value, or count and keep with a closed or open bracket
_DONE, _AS_BEFORE, _ONE_VALUE, _CLOSED, _OPEN = range(5)


def real_values(x: np.ndarray, mask: np.ndarray | None, step: int = 1) -> np.ndarray:
    """(F, n_real) values of the real nodes: ``x`` (N, F, L) with ``mask`` (N, 1, L), or
    ``x`` (N, F) without mask; with ``step``, every step-th real value only (in jet
    order, as ``np.nonzero(mask)[0][::step]`` numbers their jets). Non-finite values count
    as 0, as weaver does."""
    if mask is None:
        v = np.ascontiguousarray(x[::step].T)
    else:
        v = _gather_real(x, mask[:, 0, :], step)
    if not np.isfinite(v).all():
        v = np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
    return v


@nb.njit(cache=True, nogil=True)
def _gather_real(x, mask, step=1):  # pragma: no cover (compiled)
    """(F, n) values of ``x`` (N, F, L) where ``mask`` (N, L) > 0, in jet order: every real
    value, or every ``step``-th one.

    For blocks with a few slots per jet (SV, leptons), whose rows are too short for the
    counting loop, and for the bracketing sample, thinned as it is gathered (a PF sample
    of 20k jets is 120 MB whole, most of it thinned away after): numpy's
    ``x.transpose(1, 0, 2)[:, mask > 0]`` (or a transposed copy) took 4-6 ns per value,
    this loop under 1 ns."""
    n, nf, nl = x.shape
    total = 0
    for i in range(n):
        for j in range(nl):
            total += mask[i, j] > 0
    out = np.empty((nf, -(-total // step)), x.dtype)
    k = 0
    skip = 0  # real values still to pass over before the next one kept (no division per value)
    for i in range(n):
        for j in range(nl):
            if mask[i, j] > 0:
                if skip == 0:
                    for f in range(nf):
                        out[f, k] = x[i, f, j]
                    k += 1
                    skip = step
                skip -= 1
    return out


@nb.njit(cache=True, nogil=True)
def _scan(x, mask, lo, hi, slot, closed, counts, kept, n_kept):  # pragma: no cover (compiled)
    """One pass over ``x`` (N, F, L) where ``mask`` (N, L) > 0.

    For each feature f and percentile q still to do (``slot[f, q] >= 0``), adds to
    ``counts[f, q]`` the real values < lo, == lo, < hi and == hi, and stores those strictly
    between lo and hi in ``kept[slot[f, q], :]`` (counted in ``n_kept`` past the buffer's
    end, so the caller can retry with room; the last ``KEPT_SLACK`` columns of ``kept`` are
    scratch, not room). Where ``closed[f, q]`` (no value of the sample repeats at the
    bounds: a continuous feature), it counts only the values < lo and <= hi and stores those
    in [lo, hi]: half the comparisons, and the rare copies of a bound are kept rather than
    counted. Returns (real values per feature, finite real values summed over features): the
    caller redoes a chunk with non-finite values.

    Each row is taken in segments of 64 slots, each comparison giving one bit per slot
    (:mod:`jetlib._bitmask`): the real slots are a mask word, a count is the population count
    of a comparison's word and the mask, and the values inside a bracket are the set bits of
    two words, with no second look at the row.
    """
    n, nf, nl = x.shape
    nq = lo.shape[1]
    cap = kept.shape[1] - KEPT_SLACK
    ns = LANES
    real = 0
    finite_values = 0
    # A segment past the row's end reads the next row's slots, which the mask word leaves
    # out; one past the array's end is copied to ``tail`` first. (``src`` is set in both
    # branches: set first and overwritten in one, it cost 5% more, in reference counting.)
    xf = x.reshape(-1)
    tail = np.zeros(ns, x.dtype)
    n_seg = -(-nl // ns)
    words = np.zeros(n_seg, np.uint64)
    one = np.uint64(1)
    counts_row = np.zeros(4, np.int64)
    # what each (feature, percentile) needs, decided once rather than per segment (2-3%)
    kind = np.zeros((nf, nq), np.int8)
    for f in range(nf):
        for q in range(nq):
            a = lo[f, q]
            if slot[f, q] < 0:
                kind[f, q] = _DONE
            elif q and a == hi[f, q] and lo[f, q - 1] == a and hi[f, q - 1] == a and slot[f, q - 1] >= 0:
                # the previous percentile's bracket: one value (a flag whose p16, p50 and
                # p84 are all 0), counted already
                kind[f, q] = _AS_BEFORE
            elif a == hi[f, q]:  # a discrete feature's bracket of one value: nothing to keep
                kind[f, q] = _ONE_VALUE
            else:
                kind[f, q] = _CLOSED if closed[f, q] else _OPEN
    for i in range(n):
        r = 0
        for s in range(n_seg):
            w = np.uint64(0)
            for j in range(s * ns, min(nl, (s + 1) * ns)):
                if mask[i, j] > 0:
                    w |= one << np.uint64(j - s * ns)
            words[s] = w
            r += popcount(w)
        real += r
        if r == 0:
            continue
        for f in range(nf):
            for s in range(n_seg):
                m = words[s]
                if m == 0:
                    continue
                at = (i * nf + f) * nl + s * ns
                if at + ns <= xf.size:
                    src = xf
                else:
                    tail[: xf.size - at] = xf[at:]
                    src = tail
                    at = 0
                finite_values += popcount(finite(src, at, 0) & m)
                for q in range(nq):
                    kd = kind[f, q]
                    if kd == _DONE:
                        continue
                    if kd == _AS_BEFORE:
                        for c in range(4):
                            counts[f, q, c] += counts_row[c]
                        continue
                    sq = slot[f, q]
                    a = lo[f, q]
                    b = hi[f, q]
                    lt_a = below(src, at, a) & m
                    c0 = popcount(lt_a)
                    inside = np.uint64(0)
                    if kd == _ONE_VALUE:
                        c1 = popcount(equal(src, at, a) & m)
                        c2 = c0
                        c3 = c1
                    elif kd == _CLOSED:
                        le_b = at_most(src, at, b) & m
                        c1 = 0
                        c2 = popcount(le_b)
                        c3 = 0
                        inside = le_b & ~lt_a
                    else:
                        eq_a = equal(src, at, a) & m
                        lt_b = below(src, at, b) & m
                        c1 = popcount(eq_a)
                        c2 = popcount(lt_b)
                        c3 = popcount(equal(src, at, b) & m)
                        inside = lt_b & ~lt_a & ~eq_a
                    # in locals first: stores to counts_row, an array that might alias the
                    # outputs for all LLVM knows, between the comparisons cost ~2%
                    counts_row[0] = c0
                    counts_row[1] = c1
                    counts_row[2] = c2
                    counts_row[3] = c3
                    for c in range(4):
                        counts[f, q, c] += counts_row[c]
                    if kd == _ONE_VALUE:
                        continue
                    # the slots of the set bits. About half the segments of a continuous
                    # feature hold one or two values inside a bracket, at random: two
                    # stores without a branch (a bit that is not there reads slot 0 into
                    # the scratch columns) and a loop for the rare rest cost 2.1 against
                    # 2.5 ms per 1,000 PF jets for a loop over the set bits alone
                    k = n_kept[f, q]
                    got = popcount(inside)
                    if k + got <= cap:
                        kept[sq, k] = src[at + (lowest_bit(inside) & 63)]
                        inside &= inside - one
                        kept[sq, k + 1] = src[at + (lowest_bit(inside) & 63)]
                        inside &= inside - one
                        j = k + 2
                        while inside:
                            kept[sq, j] = src[at + lowest_bit(inside)]
                            j += 1
                            inside &= inside - one
                    n_kept[f, q] = k + got
    return real, finite_values


def _repeats(sorted_sample: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """(F, Q): whether ``bounds[f, q]`` occurs more than once in row f of the sorted sample."""
    out = np.zeros(bounds.shape, bool)
    for f in range(bounds.shape[0]):
        row = sorted_sample[f]
        out[f] = np.searchsorted(row, bounds[f], "right") - np.searchsorted(row, bounds[f], "left") > 1
    return out


Chunk = tuple[np.ndarray, "np.ndarray | None"]


def exact_percentiles(
    sample: Callable[[], Iterator[dict[str, tuple[np.ndarray, np.ndarray]]]],
    full: Callable[[], Iterator[dict[str, Chunk]]],
    n_features: dict[str, int],
    q: list[float],
    resample: Callable[[], Iterator[dict[str, tuple[np.ndarray, np.ndarray]]]] | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Percentiles ``q`` of each feature of each named array over all values ``full()`` yields.

    Args:
        sample: yields ``{name: ((F, n) values, (n,) jet)}`` for a subset of the data (pass 1,
            read once); ``jet`` numbers the sample jet each value belongs to. A third array
            ``(n,) part`` numbers the part of the data (0, 1, ...) each value was drawn from,
            when the sample reads some parts and not others (shards of a store): the brackets
            then also allow for the parts differing from each other, or, if they differ
            by more than sampling explains and ``resample`` is given, are taken from
            ``resample()``'s sample instead (one that reads every part, without ``part``).
        full: yields ``{name: (x, mask)}`` for all data (pass 2; may run again for a feature
            whose bracket missed): ``x`` (N, F, L) with ``mask`` (N, 1, L) or None, or
            ``x`` (N, F) with ``mask`` None.
        n_features: F per name.
        q: percentiles in [0, 100].

    Returns:
        ``{name: (percentiles (F, len(q)), counts (F,))}``; NaN where a feature has no values.
    """
    qa = np.asarray(q, np.float64)
    sel = _selections(sample, n_features, qa)
    if resample is not None and any(x.parts_differ for x in sel.values()):
        sel = _selections(resample, n_features, qa)
    _run_passes(sel, full)
    return {k: (x.result, x.n) for k, x in sel.items()}


def _selections(sample, n_features: dict[str, int], qa: np.ndarray) -> dict[str, _Selection]:
    """The brackets of every array from one read of ``sample()`` (see exact_percentiles)."""
    parts: dict[str, list[tuple[np.ndarray, ...]]] = {k: [] for k in n_features}
    for d in sample():
        for k in n_features:
            parts[k].append(d[k])
    sel = {}
    for k, f in n_features.items():
        values = np.concatenate([p[0] for p in parts[k]], axis=1) if parts[k] else np.zeros((f, 0), np.float32)
        jet = np.concatenate([p[1] for p in parts[k]]) if parts[k] else np.zeros(0, np.int64)
        part = np.concatenate([p[2] for p in parts[k]]) if parts[k] and len(parts[k][0]) > 2 else None
        sel[k] = _Selection(values, jet, qa, part)
    return sel


def _run_passes(sel: dict[str, _Selection], full: Callable[[], Iterator[dict[str, Chunk]]]) -> None:
    """Pass 2 over all data, and at most one more for brackets that missed (a widened
    bracket reaches to ±inf on the side it missed, so it holds the rank)."""
    for _attempt in range(2):
        if not any(x.todo.any() for x in sel.values()):
            return
        for x in sel.values():
            x.start_pass()
        for d in full():
            for k, x in sel.items():
                x.update(*d[k])
        for x in sel.values():
            x.finish_pass()
    if any(x.todo.any() for x in sel.values()):  # pragma: no cover (a bug, not bad data)
        raise RuntimeError("percentile selection did not converge; please report this")


def _rank_sd(sample: np.ndarray, jet: np.ndarray, est: np.ndarray, qa: np.ndarray) -> np.ndarray:
    """(F, Q) standard deviation, in sample ranks, of the number of sample values below each
    estimated percentile ``est``: from the spread between groups of jets, and never below
    the binomial value for independent draws."""
    m = sample.shape[1]
    binomial = np.sqrt(m * qa / 100 * (1 - qa / 100))[None, :]
    sd = _cluster_sd(sample, (jet // _RUN) % _GROUPS, est)
    return np.broadcast_to(binomial, est.shape) if sd is None else np.maximum(sd, binomial)


def _cluster_sd(sample: np.ndarray, cluster: np.ndarray, est: np.ndarray) -> np.ndarray | None:
    """(F, Q) standard deviation, in sample ranks, of the number of sample values below
    ``est``, from the spread between the clusters the values fall in (a ratio estimator
    over clusters); None with fewer than two clusters."""
    n_groups = int(cluster.max()) + 1 if cluster.size else 0
    if n_groups < 2:
        return None
    n_g = np.bincount(cluster, minlength=n_groups)
    y_g = _below_per_group(sample, cluster, n_groups, est)  # (F, Q, G) values below
    p = y_g.sum(axis=2, keepdims=True) / sample.shape[1]
    return np.sqrt(n_groups / (n_groups - 1) * ((y_g - p * n_g) ** 2).sum(axis=2))  # ranks


@nb.njit(cache=True, nogil=True)
def _below_per_group(sample, group, n_groups, est):  # pragma: no cover (compiled)
    """(F, Q, G): values of row f of ``sample`` (F, m) below ``est[f, q]`` among those of
    group ``g``. One pass, against a comparison array and a reduceat per percentile with
    NumPy (160 against ~30 ms for a 200k-value PF sample)."""
    nf, m = sample.shape
    nq = est.shape[1]
    y = np.zeros((nf, nq, n_groups), np.int64)
    for f in range(nf):
        for k in range(m):
            v = sample[f, k]
            g = group[k]
            for q in range(nq):
                y[f, q, g] += v < est[f, q]
    return y


class _Selection:
    """Brackets, counts and kept values of one array's features."""

    def __init__(self, sample: np.ndarray, jet: np.ndarray, qa: np.ndarray, part: np.ndarray | None = None):
        f = sample.shape[0]
        self.qa = qa
        self.lo = np.full((f, len(qa)), -np.inf)
        self.hi = np.full((f, len(qa)), np.inf)
        #: bounds that no sample value repeats: values equal to them are kept, not counted
        self.closed = np.ones((f, len(qa)), bool)
        #: kept values per value scanned, expected from the sample (sizes the kept buffers)
        self.kept_fraction = 1.0
        #: the sampled parts (shards) differ by more than sampling explains (see _PARTS_DIFFER)
        self.parts_differ = False
        if sample.shape[1] > SAMPLE_VALUES:
            # the jets are the independent units: thinning each jet's values costs little
            # precision and saves sorting and counting millions of correlated values
            step = -(-sample.shape[1] // SAMPLE_VALUES)
            sample, jet = sample[:, ::step], jet[::step]
            part = None if part is None else part[::step]
        if sample.shape[1]:
            s = np.sort(sample, axis=1)
            m = s.shape[1]
            est = s[:, np.rint(qa / 100 * (m - 1)).astype(np.int64)]
            sd = _rank_sd(sample, jet, est, qa)
            between = None if part is None else _cluster_sd(sample, part, est)
            if between is not None:
                # shards that differ move a sample of some of them more than the jet groups
                # (each mixing all shards) show: the caller samples every shard instead
                # when they differ this much, else the brackets allow for it
                self.parts_differ = bool((between > _PARTS_DIFFER * sd).any())
                sd = np.maximum(sd, between)
            margin = _SIGMAS * sd + 2
            lo_r = np.floor(qa / 100 * (m - 1) - margin).astype(np.int64)
            hi_r = np.ceil(qa / 100 * (m - 1) + margin).astype(np.int64)
            rows = np.arange(f)[:, None]
            self.lo = np.where(lo_r >= 0, s[rows, np.clip(lo_r, 0, m - 1)], -np.inf)
            self.hi = np.where(hi_r < m, s[rows, np.clip(hi_r, 0, m - 1)], np.inf)
            self.kept_fraction = float(min(1.0, (hi_r - lo_r).max() / m * 1.5))
            self.closed = ~(_repeats(s, self.lo) | _repeats(s, self.hi))
        self.result = np.full((f, len(qa)), np.nan)
        self.todo = np.ones((f, len(qa)), bool)
        self.n = np.zeros(f, np.int64)

    def start_pass(self) -> None:
        shape = self.todo.shape
        self.counts = np.zeros((*shape, 4), np.int64)  # < lo, == lo, < hi, == hi
        self.kept: list[list[list[np.ndarray]]] = [[[] for _ in self.qa] for _ in range(shape[0])]
        self.n = np.zeros(shape[0], np.int64)
        self.rate = 0.0  # kept values per value scanned in the last chunk, with room (0: kept_fraction)

    def update(self, x: np.ndarray, mask: np.ndarray | None) -> None:
        x3 = np.ascontiguousarray(x[:, :, None] if x.ndim == 2 else x)
        m2 = np.ones((x3.shape[0], 1), np.float32) if mask is None else mask[:, 0, :]
        if x3.shape[2] < _LONG_ROW:  # short rows: the loop overhead per row would dominate
            x3 = _gather_real(x3, m2)[None]
            m2 = np.ones((1, x3.shape[2]), np.float32)
        # one buffer row per (feature, percentile) still to do, sized from what the sample
        # (then the previous chunk, per value: shards differ in size) says falls inside the
        # brackets; redone with room if short
        slot = np.where(self.todo, np.cumsum(self.todo).reshape(self.todo.shape) - 1, -1)
        lo, hi = self.lo.astype(x3.dtype), self.hi.astype(x3.dtype)  # exact: sample values or ±inf
        values = x3.shape[0] * x3.shape[2]
        cap = min(values, int(values * (self.rate or self.kept_fraction)) + 64)
        while True:
            counts = np.zeros_like(self.counts)
            n_kept = np.zeros(self.todo.shape, np.int64)
            kept = np.empty((int(self.todo.sum()), cap + KEPT_SLACK), x3.dtype)
            real, finite = _scan(x3, m2, lo, hi, slot, self.closed, counts, kept, n_kept)
            if finite < real * x3.shape[1]:  # NaN/inf count as 0, as weaver does
                x3 = np.nan_to_num(x3, nan=0.0, posinf=0.0, neginf=0.0)
                continue
            most = int(n_kept.max(initial=0))
            if most <= cap:
                break
            cap = most
        if values >= _RATE_VALUES:  # a few values (a file's last, tiny task) say little about the next chunk
            self.rate = most * 1.25 / values
        self.n += real
        self.counts += counts
        for f, j in zip(*np.nonzero(n_kept)):
            self.kept[f][j].append(kept[slot[f, j], : n_kept[f, j]].copy())

    def finish_pass(self) -> None:
        for f in range(self.todo.shape[0]):
            if self.n[f] == 0:
                self.todo[f] = False
                continue
            k0, k1, frac = rank_positions(int(self.n[f]), self.qa)
            for j in np.flatnonzero(self.todo[f]):
                kept = self.kept[f][j]
                w = np.concatenate(kept) if kept else np.zeros(0)
                lo, hi = self.lo[f, j], self.hi[f, j]
                # (< lo, == lo, < hi, == hi), or (< lo, 0, <= hi, 0) for a closed bracket
                below, eq_lo, below_hi, eq_hi = self.counts[f, j]
                if lo == hi:
                    eq_hi = 0
                assert lo == hi or w.size == below_hi - below - eq_lo, "kept values do not match the counts"
                # only two consecutive ranks are looked up: a partition at the first and the
                # smallest value above it, not a sort (~1% of all values are kept). NumPy's
                # SIMD sort is fast, a partition at two ranks slower than it (1.7 against
                # 1.1 ms for 125k values), a partition at one 0.2 ms
                at = sorted({i for i in (int(k0[j] - below - eq_lo), int(k1[j] - below - eq_lo)) if 0 <= i < w.size})
                if at:
                    w = np.partition(w, at[0])
                    if len(at) == 2:  # at[1] == at[0] + 1: swap the smallest value above into place
                        m = at[1] + int(np.argmin(w[at[1] :]))
                        w[at[1]], w[m] = w[m], w[at[1]]
                found = [self._at(r, below, eq_lo, w, eq_hi, lo, hi) for r in (k0[j], k1[j])]
                if found[0] is not None and found[1] is not None:
                    self.result[f, j] = lerp(found[0], found[1], float(frac[j]))
                    self.todo[f, j] = False
                # a rank outside: widen to ±inf on that side, keeping the other bound, so
                # that both ranks (k0 and k1 = k0 + 1 may straddle a bound) are inside
                elif below > k0[j]:
                    self.lo[f, j] = -np.inf
                else:
                    self.hi[f, j] = np.inf
        self.kept_fraction = 0.5  # a repeated pass may keep a whole side of a missed bracket
        del self.kept

    @staticmethod
    def _at(r: int, below: int, eq_lo: int, kept: np.ndarray, eq_hi: int, lo: float, hi: float) -> float | None:
        """The value of rank ``r`` in the sorted data, which holds ``below`` values < lo, then
        ``eq_lo`` copies of lo, the ``kept`` values (in order at least where ``r`` falls),
        ``eq_hi`` copies of hi; None when ``r`` falls outside the bracket."""
        r -= below
        if r < 0:
            return None
        if r < eq_lo:
            return float(lo)
        r -= eq_lo
        if r < kept.size:
            return float(kept[r])
        r -= kept.size
        return float(hi) if r < eq_hi else None
