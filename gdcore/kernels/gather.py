"""Gathering a shuffled epoch's rows into a contiguous buffer, a chunk of batches at a time.

A shuffled epoch reads the training set in a random order, so the rows of a
mini-batch are scattered over the whole set.  :func:`run_epoch
<gdcore.kernels.epoch.run_epoch>` copies them into contiguous buffers
:func:`chunk_rows` rows at a time: as many whole batches as fit in
``CHUNK_BYTES`` (so that the chunk is still in cache when its batches are
read), and at least one.  A copy loop with nothing else in it keeps many
cache misses in flight at once.  On the 10-32-1 benchmark network (64,000
rows of 44 bytes, chunks of 5,952 rows), in six alternating measurements, a
step took 0.08-0.21 us less (about 3%) than with the same gather done one
batch at a time.

Wide rows (784 inputs) make a chunk of one batch.  :func:`gather_chunk` then
prefetches the next batch's rows, to load while the current one trains
(:mod:`.prefetch`).

Each row is one copy of its bytes.  For 10-float rows, an element loop took
6.4-10.9 ns per row against 2.7-5.1 ns for a ``memcpy``.  For one-element rows it
took 3.2-3.7 ns against 4.1-5.2 ns, a difference too small to keep a second path
for.  A narrow row's width is only known at run time, so ``memcpy`` was a call
per row; rows under 64 bytes are now copied inline (:func:`copy_bytes`): the
10-32-1 benchmark's epoch (64,000 rows of 40 + 4 bytes) gathered in 0.22 us
per step instead of 0.40 (AMD EPYC Zen 3, medians of 200).
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array

from ._jit import jit
from .prefetch import prefetch_rows
from .sparse import gather_samples, n_rows, prefetch_samples
from .views import byte_rows

CHUNK_BYTES = 256 * 1024  # half the per-core L2 cache of the CPUs measured


def chunk_rows(batch_size, row_bytes, n_samples):
    """Rows to gather at a time: whole batches within ``CHUNK_BYTES``, at least one.

    Parameters
    ----------
    batch_size : int
    row_bytes : int
        Bytes of one sample over every array gathered (inputs, targets,
        labels, weights).
    n_samples : int
        No chunk is longer than the batches of the epoch.

    Returns
    -------
    int
        A multiple of ``batch_size``.
    """
    batches = max(1, CHUNK_BYTES // max(1, row_bytes * batch_size))
    n_batches = -(-n_samples // batch_size)
    return min(batches, n_batches) * batch_size


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


@jit
def gather_chunk(X, Y, labels, weights_, order, start, batch_size, Xb, Yb, Lb, Wb):
    """Gather the chunk of rows ``order[start:start + len(Xb)]`` of every data array.

    The chunk buffers ``Xb, Yb, Lb, Wb`` hold ``Xb.shape[0]`` rows, a multiple
    of ``batch_size`` (:func:`chunk_rows`); the last chunk of an epoch may be
    shorter.  With one batch per chunk (wide rows), the next batch's rows are
    prefetched too, to load while this one trains.
    """
    n = n_rows(X)
    chunk = n_rows(Xb)
    end = min(start + chunk, n)
    gather_samples(X, order, start, end, Xb)
    gather_rows(Y, order, start, end, Yb)
    gather_rows(labels, order, start, end, Lb)
    gather_rows(weights_, order, start, end, Wb)
    if chunk == batch_size and end < n:
        # As bytes, every array is the same type: prefetch_rows compiles once.
        after = min(end + batch_size, n)
        prefetch_samples(X, order, end, after)
        for src in (byte_rows(Y), byte_rows(labels), byte_rows(weights_)):
            prefetch_rows(src, order, end, after)
