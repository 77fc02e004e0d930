"""Borrowed arrays: views that the step loop passes around without reference counting.

Every array a compiled function holds carries a pointer to its owner's
reference count (its ``meminfo``), and Numba raises and lowers that count
with an atomic instruction each time an array is bound to a variable, sliced,
passed to a compiled callee or dropped.  A small step does that dozens of
times: on the 10-32-1 network (385 float32 parameters, AMD EPYC Zen 3), the
atomic ``lock inc``/``lock dec`` pair was the hottest spot of the SGD update
(``perf``), and the update took 0.44 us per step against 0.27 us with its
arrays borrowed (same compiled loop, results bitwise the same).

:func:`borrowed` returns the same array without an owner (a null
``meminfo``, on which Numba's increment and decrement do nothing).  Its
views, slices and callees inherit the null owner, so none of them counts.
This is safe only while the original array outlives every use of the
borrowed one, which holds inside one kernel call: the caller's references
keep the memory alive until the call returns.  A borrowed array must never
leave the call (returned, stored in a container, or boxed for Python); the
kernels that borrow return scalars only.
"""

from numba import types
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array


@intrinsic
def borrowed(typingctx, value):
    """``value`` without reference counting, for use inside the current call only.

    An array comes back with the same data, shape and strides and no owner
    (see the module docstring); anything else (a :class:`.sparse.SparseRows`
    of a sparse ``X``) comes back unchanged, as a counted reference.
    """
    sig = value(value)

    if not isinstance(value, types.Array):
        def same(context, builder, signature, args):
            return impl_ret_borrowed(context, builder, signature.return_type, args[0])
        return sig, same

    def codegen(context, builder, signature, args):
        src = make_array(signature.args[0])(context, builder, args[0])
        out = make_array(signature.return_type)(context, builder)
        populate_array(out, data=src.data, shape=src.shape, strides=src.strides,
                       itemsize=src.itemsize, meminfo=None, parent=None)
        return out._getvalue()

    return sig, codegen
