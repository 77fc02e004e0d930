"""Software prefetch: ask the CPU to start loading rows that a later step will read.

A shuffled epoch gathers each mini-batch from rows scattered over the whole
training set, and every such row is a cache miss.  Inside the gather loop the
processor can only overlap a few of those misses, so on the 10-32-1 benchmark
network the shuffled epoch took about 3 us per step longer than one in
storage order, of which reading the same rows in storage order accounted for
only about 0.4 us.  :func:`prefetch_rows` issues the loads of the next batch's
rows before the current batch's gradient is computed; by the time the next
gather runs, the rows are in cache.  Narrow rows are gathered many
batches at a time (:mod:`.gather`); this prefetch serves wide rows, whose
chunk is a single batch.

A prefetch is only a hint: it never faults, changes no value and cannot
change a result, only when memory is read.
"""

from llvmlite import binding, ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import jit

LINE = 64  # bytes per cache line on the x86-64 and arm64 CPUs gdcore targets
MAX_LINES = 16  # a row's first 1 KiB: wider rows stream on from there by themselves
# The intrinsic's name carries its pointer type: "p0" since LLVM 17 (opaque
# pointers only), "p0i8" with the typed i8* of the LLVM versions before.
_PREFETCH = "llvm.prefetch.p0" if binding.llvm_version_info[0] >= 17 else "llvm.prefetch.p0i8"


@intrinsic
def prefetch(typingctx, arr, index, offset):
    """Prefetch the cache line holding byte ``offset`` of row ``index`` of a C array.

    ``arr`` is 1-D (row = element) or 2-D C-contiguous; nothing is read, and an
    address past the array is harmless (prefetches never fault).
    """
    sig = types.void(arr, index, offset)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        zero = context.get_constant(types.intp, 0)
        inds = [args[1]] + [zero] * (aryty.ndim - 1)
        ptr = cgutils.get_item_pointer2(
            context, builder, data=ary.data, shape=cgutils.unpack_tuple(builder, ary.shape),
            strides=cgutils.unpack_tuple(builder, ary.strides), layout=aryty.layout,
            inds=inds, wraparound=False)
        byte = ir.IntType(8)
        address = builder.gep(builder.bitcast(ptr, byte.as_pointer()), [args[2]])
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [byte.as_pointer(), i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _PREFETCH)
        # read access (0), keep in every cache level (3), data cache (1)
        builder.call(fn, [address, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@jit
def prefetch_rows(src, order, start, stop):
    """Prefetch rows ``order[start:stop]`` of ``src`` (1-D, or 2-D C-contiguous).

    Up to ``MAX_LINES`` cache lines per row; an empty ``src`` (data a model
    does not use) is skipped.
    """
    if src.shape[0] == 0:
        return
    row_bytes = src.itemsize
    for d in range(1, src.ndim):
        row_bytes *= src.shape[d]
    span = min(row_bytes, MAX_LINES * LINE)
    for r in range(start, stop):
        i = order[r]
        for offset in range(0, span, LINE):
            prefetch(src, i, offset)
        prefetch(src, i, span - 1)  # a row need not start on a line boundary
