"""Copies between arrays whose shapes the caller has matched.

``dst[:] = src`` in a kernel checks the shapes at run time, and for the error
it may raise compiles Numba's string formatting of both shapes: about 3 s of
a cold first ``predict`` or ``gd.lbfgs`` call, once per process (Numba's
passes timed per function, AMD EPYC Zen 3), for a check the callers have
already made.  These loops copy without it.

Rows are copied as their bytes (:func:`copy_row`, :func:`gather_rows`, which
a shuffled epoch's gather uses: :mod:`.gather` says why and what it measured).
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array

from ._jit import jit


@jit(exact=True, inline=True)
def copy_vector(dst, src):
    """``dst[:] = src`` for two 1-D arrays of one length (not checked); exact kernels only."""
    for i in range(dst.shape[0]):
        dst[i] = src[i]


@jit(inline=True)
def copy_matrix(dst, src):
    """``dst[:, :] = src`` for two 2-D arrays of one shape (not checked)."""
    for i in range(dst.shape[0]):
        for j in range(dst.shape[1]):
            dst[i, j] = src[i, j]


# Row widths (bytes) copied without a call to memcpy: a row of ``k <= w < 2k``
# bytes is two fixed-size copies of ``k`` bytes, one from each end (they overlap
# when ``w < 2k``), which compile to a pair of loads and stores.
SMALL_COPIES = (32, 16, 8, 4, 2, 1)


def copy_bytes(context, builder, dst, src, size):
    """Emit ``memcpy(dst, src, size)`` for a run-time ``size``: small sizes inline.

    Sizes below ``2 * SMALL_COPIES[0]`` are two overlapping fixed-size copies
    of the largest ``k <= size``; larger ones call memcpy.  A row's width is
    the same for every row, so the branches are predicted.
    """
    def fixed(k):
        at = builder.sub(size, context.get_constant(types.intp, k))
        cgutils.raw_memcpy(builder, dst, src, context.get_constant(types.intp, k), 1)
        cgutils.raw_memcpy(builder, builder.gep(dst, [at]), builder.gep(src, [at]),
                           context.get_constant(types.intp, k), 1)

    def sizes(ks):
        if not ks:  # size 0: nothing
            return
        k = ks[0]
        small = builder.icmp_signed("<", size, context.get_constant(types.intp, k))
        with builder.if_else(small) as (below, at_least):
            with below:
                sizes(ks[1:])
            with at_least:
                fixed(k)

    large = builder.icmp_signed(">=", size, context.get_constant(types.intp, 2 * SMALL_COPIES[0]))
    with builder.if_else(large) as (call, inline):
        with call:
            cgutils.raw_memcpy(builder, dst, src, size, 1)
        with inline:
            sizes(SMALL_COPIES)


@intrinsic
def copy_row(typingctx, dst, r, src, i):
    """``dst[r] = src[i]`` for two C-contiguous arrays of one dtype, ndim and row width.

    A row of a 1-D array is one element.  One ``memcpy`` of the row's bytes
    (``dst``'s row stride); nothing is checked.
    """
    if not (isinstance(dst, types.Array) and isinstance(src, types.Array)
            and dst.ndim == src.ndim and dst.ndim in (1, 2) and dst.layout == "C"
            and src.layout == "C" and dst.dtype == src.dtype and isinstance(r, types.Integer)
            and isinstance(i, types.Integer)):
        return None
    sig = types.void(dst, r, src, i)

    def codegen(context, builder, signature, args):
        d = make_array(signature.args[0])(context, builder, args[0])
        s = make_array(signature.args[2])(context, builder, args[2])
        if signature.args[0].ndim == 1:  # a constant size: the copy compiles to a load and a store
            item = context.get_abi_sizeof(context.get_data_type(signature.args[0].dtype))
            row_bytes = context.get_constant(types.intp, item)
        else:
            row_bytes = cgutils.unpack_tuple(builder, d.strides)[0]
        byte = ir.IntType(8).as_pointer()

        def row(array, index, index_type):
            at = context.cast(builder, index, index_type, types.intp)
            return builder.gep(builder.bitcast(array.data, byte), [builder.mul(at, row_bytes)])

        dst, src = row(d, args[1], signature.args[1]), row(s, args[3], signature.args[3])
        if signature.args[0].ndim == 1:
            cgutils.raw_memcpy(builder, dst, src, row_bytes, 1)
        else:
            copy_bytes(context, builder, dst, src, row_bytes)
        return context.get_dummy_value()

    return sig, codegen


@jit
def gather_rows(src, order, start, stop, dst):
    """``dst[:stop - start] = src[order[start:stop]]`` for a C-contiguous 1-D or 2-D ``src``.

    ``dst`` has the same number of dimensions, dtype and row width, and at
    least ``stop - start`` rows; none of this is checked (a narrower ``dst``
    would be overrun).  An empty ``src`` (data a model does not use) is left
    alone.
    """
    if src.shape[0] == 0:
        return
    for r in range(start, stop):
        copy_row(dst, r - start, src, order[r])
