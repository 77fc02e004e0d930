"""Two-dimensional views of contiguous 1-D blocks, without ``reshape``'s run-time checks.

The kernels address every weight matrix and workspace block as a
``(rows, cols)`` view of a contiguous slice of a flat array.  ``reshape``
makes such a view through a call into Numba's C helper (it must handle any
layout and report incompatible shapes), about 20 ns each; one step of a small
network makes about twenty views, 5-7% of its time.  :func:`matrix_view`
builds the view directly, since the callers already know the slice is
contiguous and holds exactly ``rows * cols`` elements.  :func:`flat_view`
goes the other way, and :func:`byte_rows` views any array's rows as bytes.
"""

from numba import types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array


@intrinsic
def matrix_view(typingctx, vec, rows, cols):
    """``vec.reshape(rows, cols)`` for a C-contiguous 1-D ``vec`` of exactly ``rows * cols``.

    Returns a C-contiguous 2-D view sharing ``vec``'s memory.  The sizes are
    not checked: callers pass slices cut to that length.
    """
    if not (isinstance(vec, types.Array) and vec.ndim == 1 and vec.layout == "C"
            and isinstance(rows, types.Integer) and isinstance(cols, types.Integer)):
        return None
    matrix = vec.copy(ndim=2, layout="C")
    sig = matrix(vec, rows, cols)

    def codegen(context, builder, signature, args):
        src = make_array(signature.args[0])(context, builder, args[0])
        n_rows = context.cast(builder, args[1], signature.args[1], types.intp)
        n_cols = context.cast(builder, args[2], signature.args[2], types.intp)
        item = src.itemsize
        out = make_array(signature.return_type)(context, builder)
        populate_array(out, data=src.data, shape=cgutils.pack_array(builder, [n_rows, n_cols]),
                       strides=cgutils.pack_array(builder, [builder.mul(n_cols, item), item]),
                       itemsize=item, meminfo=src.meminfo, parent=src.parent)
        # A new reference to the same memory, as reshape returns.
        return impl_ret_borrowed(context, builder, signature.return_type, out._getvalue())

    return sig, codegen


@intrinsic
def flat_view(typingctx, mat):
    """``mat.reshape(-1)`` for a C-contiguous 2-D ``mat``: a 1-D view of its memory."""
    if not (isinstance(mat, types.Array) and mat.ndim == 2 and mat.layout == "C"):
        return None
    vector = mat.copy(ndim=1, layout="C")
    sig = vector(mat)

    def codegen(context, builder, signature, args):
        src = make_array(signature.args[0])(context, builder, args[0])
        out = make_array(signature.return_type)(context, builder)
        populate_array(out, data=src.data, shape=cgutils.pack_array(builder, [src.nitems]),
                       strides=cgutils.pack_array(builder, [src.itemsize]),
                       itemsize=src.itemsize, meminfo=src.meminfo, parent=src.parent)
        return impl_ret_borrowed(context, builder, signature.return_type, out._getvalue())

    return sig, codegen


@intrinsic
def byte_rows(typingctx, arr):
    """A read-only ``(rows, row_bytes)`` uint8 view of a C-contiguous 1-D or 2-D ``arr``.

    Code that only needs where rows are (prefetching) then compiles once for
    every dtype and dimension instead of once per array type.
    """
    if not (isinstance(arr, types.Array) and arr.ndim in (1, 2) and arr.layout == "C"):
        return None
    rows = types.Array(types.uint8, 2, "C", readonly=True)
    sig = rows(arr)

    def codegen(context, builder, signature, args):
        src = make_array(signature.args[0])(context, builder, args[0])
        shape = cgutils.unpack_tuple(builder, src.shape)
        item = src.itemsize
        row_bytes = builder.mul(shape[1], item) if len(shape) == 2 else item
        out = make_array(signature.return_type)(context, builder)
        one = context.get_constant(types.intp, 1)
        populate_array(out, data=builder.bitcast(src.data, out.data.type),
                       shape=cgutils.pack_array(builder, [shape[0], row_bytes]),
                       strides=cgutils.pack_array(builder, [row_bytes, one]),
                       itemsize=one, meminfo=src.meminfo, parent=None)
        # No parent: returned to Python, the view is a new read-only array (with
        # ``arr``'s parent, Numba would hand back ``arr`` itself when the shapes agree).
        return impl_ret_borrowed(context, builder, signature.return_type, out._getvalue())

    return sig, codegen
