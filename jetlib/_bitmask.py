"""64 values compared at once into a 64-bit mask, for Numba kernels.

Numba has no way to say "compare these 64 floats and give me one bit each": a loop that
ORs ``(v < a) << j`` into a word is vectorised by LLVM through 64-bit lanes (shifts and ORs
of ``vpmovm2q`` results), and population count and count-trailing-zeros are not exposed.
These intrinsics write the few lines of LLVM IR that say it directly: a ``<64 x float>``
load, one ``fcmp`` against the broadcast bound, and a bitcast of the ``<64 x i1>`` result to
``i64``, which LLVM lowers to four AVX-512 compares into mask registers (or eight AVX2
compares and ``vmovmskps``; NEON on ARM). Plain IR, no target intrinsics: portable to any
CPU that LLVM targets. Bit ``j`` of a result is value ``at + j``: LLVM's bitcast of a vector
of ``i1`` puts element 0 in the lowest bit on little-endian CPUs (x86-64, ARM64, POWER in
its little-endian mode): a big-endian one would need the bits reversed.

Hand-written because it makes the exact-percentile scan of :mod:`jetlib.stats.quantiles`
1.7× faster (a PF shard's counting and keeping: 3.7 against 2.1 ms per 1,000 jets).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["LANES", "below", "at_most", "equal", "finite", "popcount", "lowest_bit"]

#: values per mask: one bit each in a uint64
LANES = 64


def _splat(builder, value, vty):
    undef = ir.Constant(vty, ir.Undefined)
    one = builder.insert_element(undef, value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, undef, ir.Constant(ir.VectorType(ir.IntType(32), vty.count), [0] * vty.count))


_NAMES = {"<": "below", "<=": "at_most", "==": "equal", "finite": "finite"}


def _comparison(op: str):
    """An intrinsic ``(x, at, value) -> uint64``: bit j set where ``x[at + j] <op> value``
    (ordered: NaN compares false), for a 1-d contiguous float array ``x``; ``op`` "finite"
    ignores ``value`` and sets bit j where ``x[at + j]`` is neither NaN nor ±inf. The caller
    guarantees ``at + LANES <= len(x)``: the 64 values are loaded without a bounds check."""

    def typer(typingctx, x, at, value):
        if not (isinstance(x, types.Array) and x.ndim == 1 and x.layout == "C" and isinstance(x.dtype, types.Float)):
            return None
        if not (isinstance(at, types.Integer) and isinstance(value, (types.Float, types.Integer))):
            return None

        def codegen(context, builder, sig, args):
            xt, _, vt = sig.args
            array, offset, bound = args
            data = context.make_array(xt)(context, builder, array).data
            vty = ir.VectorType(context.get_value_type(xt.dtype), LANES)
            offset = context.cast(builder, offset, sig.args[1], types.intp)
            ptr = builder.bitcast(builder.gep(data, [offset]), vty.as_pointer())
            vec = builder.load(ptr, align=xt.dtype.bitwidth // 8)  # element alignment only
            if op == "finite":  # v - v is 0 for a finite v, NaN for NaN and ±inf
                cmp = builder.fcmp_ordered("==", builder.fsub(vec, vec), ir.Constant(vty, [0.0] * LANES))
            else:
                cmp = builder.fcmp_ordered(op, vec, _splat(builder, context.cast(builder, bound, vt, xt.dtype), vty))
            return builder.bitcast(cmp, ir.IntType(LANES))

        return types.uint64(x, at, value), codegen

    typer.__name__ = _NAMES[op]
    return intrinsic(typer)


#: ``below(x, at, a)``: bit j where ``x[at + j] < a``
below = _comparison("<")
#: ``at_most(x, at, b)``: bit j where ``x[at + j] <= b``
at_most = _comparison("<=")
#: ``equal(x, at, a)``: bit j where ``x[at + j] == a``
equal = _comparison("==")
#: ``finite(x, at, 0)``: bit j where ``x[at + j]`` is finite (the third argument is unused)
finite = _comparison("finite")


def _on_word(name: str, op):
    """An intrinsic ``(word) -> int64``: ``op(builder, w)`` of an integer taken as a uint64."""

    def typer(typingctx, word):
        if not isinstance(word, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            return op(builder, context.cast(builder, args[0], sig.args[0], types.uint64))

        return types.int64(word), codegen

    typer.__name__ = name
    return intrinsic(typer)


#: ``popcount(w)``: set bits of a uint64, as int64
popcount = _on_word("popcount", lambda builder, w: builder.ctpop(w))
#: ``lowest_bit(w)``: position of the lowest set bit of a uint64, as int64; 64 for 0 (defined,
#: not poison)
lowest_bit = _on_word("lowest_bit", lambda builder, w: builder.cttz(w, ir.Constant(ir.IntType(1), 0)))
