"""General matrix products through NumPy's own BLAS, called straight from compiled code.

Numba's ``np.dot`` reaches BLAS through SciPy: its C helper looks up SciPy's
Fortran ``sgemm``/``dgemm`` and re-checks shapes, layouts and transposition
on every call.  NumPy's wheels carry their own OpenBLAS (``scipy-openblas``,
64-bit integers) with a C interface, ``cblas_?gemm``.  :func:`gemm` calls that
interface directly: one call instruction, no helper, no checks that the
caller has already made.

The compiled kernels call a private symbol, ``gdcore_cblas_sgemm`` (or
``..._dgemm``), never an address: Numba's on-disk cache stores the symbol
name, and every import binds it again (:func:`_bind`) before any kernel is
compiled or loaded.  It is bound to

* NumPy's ``scipy_cblas_?gemm64_`` when NumPy was built with scipy-openblas
  (the PyPI wheels) and the library is found beside NumPy; else
* compiled C callbacks of :func:`_fallback`, which do the same product with
  Numba's ``np.dot`` (SciPy's BLAS).

Setting the environment variable ``GDCORE_BLAS=scipy`` before importing
gdcore selects the fallback.  :data:`BOUND_TO` says which was bound.

Only the subset of ``cblas_?gemm`` that :func:`gemm` uses is promised by both
bindings: row-major, ``alpha = 1``, ``beta = 0``, and leading dimensions equal
to the row lengths of C-contiguous operands.
"""

import ctypes
import glob
import os

import numba
import numpy as np
from llvmlite import binding, ir
from numba import carray, cfunc, types
from numba.core import cgutils
from numba.extending import intrinsic

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112  # CBLAS enumerators
SYMBOLS = {np.dtype(np.float32): "gdcore_cblas_sgemm", np.dtype(np.float64): "gdcore_cblas_dgemm"}
_NUMPY_SYMBOLS = {"gdcore_cblas_sgemm": "scipy_cblas_sgemm64_",
                  "gdcore_cblas_dgemm": "scipy_cblas_dgemm64_"}


def _cblas_signature(scalar):
    """``cblas_?gemm`` with 64-bit integers: (order, ta, tb, m, n, k, alpha, A, lda,
    B, ldb, beta, C, ldc)."""
    i32, i64, ptr = types.int32, types.int64, types.CPointer(scalar)
    return types.void(i32, i32, i32, i64, i64, i64, scalar, ptr, i64, ptr, i64, scalar,
                      ptr, i64)


def _fallback(order, trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    # The subset promised in the module docstring: row-major, alpha 1, beta 0,
    # leading dimensions equal to the row lengths.
    # One np.dot per case: a view chosen by a branch would lose its layout.
    c = carray(C, (m, n))
    if trans_a == TRANS and trans_b == TRANS:
        np.dot(carray(A, (k, m)).T, carray(B, (n, k)).T, c)
    elif trans_a == TRANS:
        np.dot(carray(A, (k, m)).T, carray(B, (k, n)), c)
    elif trans_b == TRANS:
        np.dot(carray(A, (m, k)), carray(B, (n, k)).T, c)
    else:
        np.dot(carray(A, (m, k)), carray(B, (k, n)), c)



def _numpy_openblas():
    """NumPy's bundled scipy-openblas (64-bit integers) as a ctypes library, or None."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # noqa: BLE001 -- an older or differently built NumPy
        return None
    if blas.get("name") != "scipy-openblas" or "USE64BITINT" not in str(
            blas.get("openblas configuration", "")):
        return None
    here = os.path.dirname(np.__file__)
    patterns = [os.path.join(here, os.pardir, "numpy.libs", "*openblas64*"),  # Linux, Windows
                os.path.join(here, ".dylibs", "*openblas64*")]  # macOS
    for path in sorted(p for pattern in patterns for p in glob.glob(pattern)):
        try:
            library = ctypes.CDLL(path)  # already loaded by NumPy: the same handle
            for name in _NUMPY_SYMBOLS.values():
                getattr(library, name)
        except (OSError, AttributeError):
            continue
        return library
    return None


def _bind():
    """Bind gdcore's product symbols; return what they were bound to.

    Returns
    -------
    str
        ``"numpy"`` (NumPy's OpenBLAS, C interface) or ``"scipy"`` (Numba's
        ``np.dot``, SciPy's BLAS).
    """
    library = None if os.environ.get("GDCORE_BLAS", "").lower() == "scipy" else _numpy_openblas()
    if library is not None:
        for ours, theirs in _NUMPY_SYMBOLS.items():
            binding.add_symbol(ours, ctypes.cast(getattr(library, theirs), ctypes.c_void_p).value)
        return "numpy"
    # Compiled (or loaded from the cache) only when needed.
    for dtype, symbol in SYMBOLS.items():
        callback = cfunc(_cblas_signature(numba.from_dtype(dtype)), cache=True)(_fallback)
        binding.add_symbol(symbol, callback.address)
    return "scipy"


BOUND_TO = _bind()


@intrinsic
def gemm(typingctx, A, B, C, trans_a, trans_b):
    """``C = op(A) @ op(B)``, ``op(X) = X.T`` where ``trans_x`` is true.

    A, B and C are C-contiguous 2-D arrays of one float dtype; ``C`` is
    (m, n), ``op(A)`` (m, k) and ``op(B)`` (k, n).  The caller checks the
    shapes: nothing is checked here.
    """
    if not (isinstance(C, types.Array) and C.dtype in (types.float32, types.float64)
            and all(isinstance(x, types.Array) and x.ndim == 2 and x.layout == "C"
                    and x.dtype == C.dtype for x in (A, B, C))):
        return None
    sig = types.void(A, B, C, trans_a, trans_b)
    symbol = SYMBOLS[np.dtype(C.dtype.name)]

    def codegen(context, builder, signature, args):
        a, b, c = (context.make_array(t)(context, builder, v)
                   for t, v in zip(signature.args[:3], args[:3]))
        i32, i64 = ir.IntType(32), ir.IntType(64)
        scalar = context.get_value_type(signature.args[2].dtype)
        ptr = scalar.as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, scalar, ptr, i64,
                                               ptr, i64, scalar, ptr, i64])
        fn = cgutils.get_or_insert_function(builder.module, fnty, symbol)
        a_rows, a_cols = cgutils.unpack_tuple(builder, a.shape)
        b_cols = cgutils.unpack_tuple(builder, b.shape)[1]
        m, n = cgutils.unpack_tuple(builder, c.shape)
        true = ir.Constant(ir.IntType(1), 1)
        ta, tb = (builder.icmp_unsigned("==", context.cast(builder, v, t, types.boolean), true)
                  for v, t in zip(args[3:], signature.args[3:]))
        k = builder.select(ta, a_rows, a_cols)
        flags = [builder.select(t, ir.Constant(i32, TRANS), ir.Constant(i32, NO_TRANS))
                 for t in (ta, tb)]
        one = ir.Constant(i64, 1)

        def leading(cols):  # BLAS requires a leading dimension of at least 1
            return builder.select(builder.icmp_signed("<", cols, one), one, cols)

        builder.call(fn, [ir.Constant(i32, ROW_MAJOR), flags[0], flags[1], m, n, k,
                          ir.Constant(scalar, 1.0), a.data, leading(a_cols), b.data,
                          leading(b_cols), ir.Constant(scalar, 0.0), c.data, leading(n)])
        return context.get_dummy_value()

    return sig, codegen
