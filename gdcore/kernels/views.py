"""Views of contiguous blocks of the flat arrays, without ``reshape``'s run-time checks.

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

from .. import codes


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


# Views a model's offset table describes (columns in gdcore.codes).  Each is an
# intrinsic: a call costs its caller's compile one statement, where the same
# view written with slices and matrix_view, inlined, cost about twenty (a
# gradient kernel makes a dozen of them).  Nothing is checked: the table is a
# model's validated offset table and the buffers are long enough.

def _table_view_args(vec, table, row, scale=None):
    """Whether the arguments are (C 1-D array, int64 C 2-D table, integer[, integer])."""
    return (isinstance(vec, types.Array) and vec.ndim == 1 and vec.layout == "C"
            and isinstance(table, types.Array) and table.ndim == 2 and table.layout == "C"
            and table.dtype == types.int64 and isinstance(row, types.Integer)
            and (scale is None or isinstance(scale, types.Integer)))


def _view_codegen(shape_of):
    """Codegen of ``f(vec, table, row[, scale])`` from ``shape_of(builder, entry, scale)``.

    ``entry(col)`` loads ``table[row, col]`` (intp); ``shape_of`` returns the
    view's first element in ``vec`` and its shape (one or two intp values).
    """
    def codegen(context, builder, signature, args):
        vty, tty, rty = signature.args[:3]
        src = make_array(vty)(context, builder, args[0])
        table = make_array(tty)(context, builder, args[1])
        row = context.cast(builder, args[2], rty, types.intp)
        n_cols = cgutils.unpack_tuple(builder, table.shape)[1]
        first = builder.mul(row, n_cols)

        def entry(col):
            at = builder.add(first, context.get_constant(types.intp, col))
            return builder.load(builder.gep(table.data, [at]))

        scale = (context.cast(builder, args[3], signature.args[3], types.intp)
                 if len(args) > 3 else None)
        start, shape = shape_of(builder, entry, scale)
        item = src.itemsize
        strides = [item] if len(shape) == 1 else [builder.mul(shape[1], item), item]
        out = make_array(signature.return_type)(context, builder)
        populate_array(out, data=builder.gep(src.data, [start]),
                       shape=cgutils.pack_array(builder, shape),
                       strides=cgutils.pack_array(builder, strides),
                       itemsize=item, meminfo=src.meminfo, parent=src.parent)
        return impl_ret_borrowed(context, builder, signature.return_type, out._getvalue())

    return codegen


@intrinsic
def layer_block(typingctx, buf, offsets, l, n):
    """Layer ``l``'s ``(n, n_out)`` block of a per-unit workspace buffer (C-contiguous view).

    The block starts at ``n * offsets[l, COL_UNIT_START]``.
    """
    if not _table_view_args(buf, offsets, l, n):
        return None

    def shape_of(builder, entry, n_rows):
        return builder.mul(n_rows, entry(codes.COL_UNIT_START)), [n_rows, entry(codes.COL_N_OUT)]

    return buf.copy(ndim=2)(buf, offsets, l, n), _view_codegen(shape_of)


@intrinsic
def weights(typingctx, params, offsets, l):
    """Layer ``l``'s ``(n_in, n_out)`` weight block of ``params`` (C-contiguous view)."""
    if not _table_view_args(params, offsets, l):
        return None

    def shape_of(builder, entry, scale):
        return entry(codes.COL_W_START), [entry(codes.COL_N_IN), entry(codes.COL_N_OUT)]

    return params.copy(ndim=2)(params, offsets, l), _view_codegen(shape_of)


@intrinsic
def bias(typingctx, params, offsets, l):
    """Layer ``l``'s ``(n_out,)`` bias block of ``params`` (view)."""
    if not _table_view_args(params, offsets, l):
        return None

    def shape_of(builder, entry, scale):
        return entry(codes.COL_B_START), [entry(codes.COL_N_OUT)]

    return params(params, offsets, l), _view_codegen(shape_of)
