"""General matrix products through a BLAS's C interface, called straight from compiled code.

Numba's ``np.dot`` reaches BLAS through SciPy: its C helper looks up SciPy's
Fortran ``sgemm``/``dgemm`` and re-checks shapes, layouts and transposition
on every call.  :func:`gemm` calls a ``cblas_?gemm`` with 64-bit integers
directly: one call instruction, no helper, no checks that the caller has
already made.

The compiled kernels call a private symbol, ``gdcore_cblas_sgemm`` (or
``..._dgemm``), never an address: Numba's on-disk cache stores the symbol
name, and every import binds it again (:func:`_bind`) before any kernel is
compiled or loaded.  The environment variable ``GDCORE_BLAS``, read at
import, chooses what it is bound to (:data:`BOUND_TO` says which was):

* ``auto`` (the default): on Intel CPUs MKL where it is installed (the
  ``gdcore[mkl]`` extra), else NumPy's OpenBLAS; on other CPUs NumPy's
  OpenBLAS, else MKL; else the fallback.  On an Intel Xeon (Sapphire
  Rapids) the MNIST step's 8 float32 products took 588 us on two MKL
  threads against 771 us on OpenBLAS's (the measurement that opened issue
  15, not a bench_blas run).  On an AMD EPYC (Zen 3),
  ``bench/bench_blas.py``: MKL's one-thread float32 products of 128 x 128
  to 256 x 256 ran at 35-37 GFLOP/s against OpenBLAS's 12-16, but on two
  threads OpenBLAS was the faster (the MNIST step's products 2.07 against
  2.16-2.37 ms), and MKL's threads slowed down badly while OpenBLAS's still
  spun from a NumPy product just before;
* ``mkl``: MKL, or an ImportError that says how to install it;
* ``openblas`` (or ``numpy``, its former name): NumPy's own
  ``scipy-openblas`` (NumPy's PyPI wheels for Linux and Windows), or an
  ImportError that names the alternatives (a NumPy built on Accelerate or
  on MKL has none: ``auto`` then binds MKL or the fallback);
* ``scipy``: the fallback, compiled C callbacks of :func:`_fallback`
  (:func:`fallback_callback`) that do the same product with Numba's
  ``np.dot`` (SciPy's BLAS).

The libraries are found by :mod:`.blas_libraries`.  :data:`LIBRARY` is the
bound one, whose thread count :mod:`gdcore._blas_threads` steers through
:data:`get_blas_threads` and :data:`set_blas_threads`.  Results are
deterministic for a given library and thread count, not across libraries.

Extensions compiled ahead of time (:mod:`gdcore.aot_build`) cannot resolve a
symbol bound at run time: while :data:`AOT_BUILD` is set, :func:`gemm` loads
the function pointer from a global variable of the extension instead
(``gdcore_aot_?gemm_ptr``), which the loader (:mod:`gdcore.kernels._aot`)
fills at import through the exported :func:`set_gemm_pointer` with the same
addresses (:data:`ADDRESSES`) that the JIT binding uses.

Only the subset of ``cblas_?gemm`` that :func:`gemm` uses is promised by every
binding: row-major, ``alpha = 1``, ``beta = 0``, and leading dimensions equal
to the row lengths of C-contiguous operands.
"""

import os

import numba
import numpy as np
from llvmlite import binding, ir
from numba import carray, cfunc, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import blas_libraries

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112  # CBLAS enumerators
SYMBOLS = {np.dtype(np.float32): "gdcore_cblas_sgemm", np.dtype(np.float64): "gdcore_cblas_dgemm"}


def _cblas_signature(scalar):
    """``cblas_?gemm`` with 64-bit integers: (order, ta, tb, m, n, k, alpha, A, lda,
    B, ldb, beta, C, ldc)."""
    i32, i64, ptr = types.int32, types.int64, types.CPointer(scalar)
    return types.void(i32, i32, i32, i64, i64, i64, scalar, ptr, i64, ptr, i64, scalar,
                      ptr, i64)


def _fallback(order, trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    """``cblas_?gemm`` through Numba's ``np.dot``, for the subset promised in the
    module docstring: row-major, alpha 1, beta 0, leading dimensions equal to
    the row lengths (``order``, ``alpha``, ``beta`` and the ``ld*`` are not read)."""
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


_CALLBACKS: dict = {}  # dtype -> compiled fallback; kept alive while its address is bound


def fallback_callback(dtype):
    """The compiled :func:`_fallback` for ``dtype`` (a ``numba.cfunc``; cached on disk)."""
    dtype = np.dtype(dtype)
    if dtype not in _CALLBACKS:
        _CALLBACKS[dtype] = cfunc(_cblas_signature(numba.from_dtype(dtype)),
                                  cache=True)(_fallback)
    return _CALLBACKS[dtype]


# Set by the AOT build before it compiles anything (see the module docstring); never
# set in a process that compiles JIT kernels, whose cache entries must not hold it.
AOT_BUILD = False
_AOT_GLOBALS = {types.float32: "gdcore_aot_sgemm_ptr", types.float64: "gdcore_aot_dgemm_ptr"}
# Address of each dtype's product, as bound by _bind (dtype -> int).
ADDRESSES: dict = {}

# The bound library's thread count, as ctypes functions; None under the fallback
# binding, whose BLAS (SciPy's) gdcore does not steer.  set_local_blas_threads
# sets the calling thread's count alone (MKL; None for OpenBLAS).
get_blas_threads = set_blas_threads = set_local_blas_threads = None
# The bound library (a blas_libraries.Library), None under the fallback binding.
LIBRARY = None

CHOICES = ("auto", "openblas", "numpy", "mkl", "scipy")


def _chosen_library(choice):
    """The :class:`~.blas_libraries.Library` that ``choice`` (GDCORE_BLAS) selects, or None."""
    if choice == "scipy":
        return None
    if choice == "mkl":
        found = blas_libraries.mkl()
        if found is None:
            raise ImportError("GDCORE_BLAS=mkl, but MKL's runtime library (libmkl_rt) was not "
                              "found: install the mkl extra (pip install 'gdcore[mkl]') or "
                              "unset GDCORE_BLAS")
        return found
    if choice == "auto":  # by the CPU's vendor (see the module docstring)
        if blas_libraries.cpu_vendor() == "GenuineIntel":
            return blas_libraries.mkl() or blas_libraries.numpy_openblas()
        return blas_libraries.numpy_openblas() or blas_libraries.mkl()
    found = blas_libraries.numpy_openblas()  # "openblas" ("numpy": its former name)
    if found is None:
        raise ImportError(f"GDCORE_BLAS={choice}, but this NumPy does not ship OpenBLAS "
                          "(scipy-openblas; NumPy's PyPI wheels for Linux and Windows do): "
                          "set GDCORE_BLAS=mkl or scipy, or unset it")
    return found


def _bind():
    """Bind gdcore's product symbols; return what they were bound to.

    Returns
    -------
    str
        ``"mkl"``, ``"openblas"`` (NumPy's) or ``"scipy"`` (the fallback:
        Numba's ``np.dot``, SciPy's BLAS).
    """
    global LIBRARY, get_blas_threads, set_blas_threads, set_local_blas_threads
    choice = os.environ.get("GDCORE_BLAS", "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise ValueError(f"GDCORE_BLAS must be one of {', '.join(CHOICES)}, got {choice!r}")
    library = _chosen_library(choice)
    if library is not None:
        for dtype, ours in SYMBOLS.items():
            ADDRESSES[dtype] = library.gemm[dtype]
            binding.add_symbol(ours, ADDRESSES[dtype])
        LIBRARY = library
        get_blas_threads, set_blas_threads = library.get_threads, library.set_threads
        set_local_blas_threads = library.set_local_threads
        return library.name
    # Compiled (or loaded from the cache) only when needed.
    for dtype, symbol in SYMBOLS.items():
        ADDRESSES[dtype] = fallback_callback(dtype).address
        binding.add_symbol(symbol, ADDRESSES[dtype])
    return "scipy"


BOUND_TO = _bind()


def _pointer_slot(module, name):
    """The module's global ``name`` holding a function pointer (null until set)."""
    i8p = ir.IntType(8).as_pointer()
    slot = module.globals.get(name)
    if slot is None:
        slot = ir.GlobalVariable(module, i8p, name)
        # Every module that uses the slot defines it: linking keeps one definition,
        # and hidden visibility keeps the float32 and float64 extensions' slots apart.
        slot.linkage = "linkonce_odr"
        slot.visibility = "hidden"
        slot.initializer = ir.Constant(i8p, None)
    return slot


@intrinsic
def set_gemm_pointer(typingctx, address, is_double):
    """Store ``address`` (int64) in the float64 (``is_double``) or float32 slot of
    an AOT extension; returns 0.  Only meaningful in code built with :data:`AOT_BUILD`."""
    if not (isinstance(address, types.Integer) and isinstance(is_double, types.Integer)):
        return None
    sig = types.int64(address, is_double)

    def codegen(context, builder, signature, args):
        pointer = builder.inttoptr(args[0], ir.IntType(8).as_pointer())
        double = builder.icmp_signed("!=", args[1], ir.Constant(args[1].type, 0))
        with builder.if_else(double) as (then, otherwise):
            with then:
                builder.store(pointer, _pointer_slot(builder.module,
                                                     _AOT_GLOBALS[types.float64]))
            with otherwise:
                builder.store(pointer, _pointer_slot(builder.module,
                                                     _AOT_GLOBALS[types.float32]))
        return ir.Constant(ir.IntType(64), 0)

    return sig, codegen


@intrinsic
def gemm(typingctx, A, B, C, trans_a, trans_b):
    """``C = op(A) @ op(B)``, ``op(X) = X.T`` where ``trans_x`` is true.

    A, B and C are C-contiguous 2-D arrays of one float dtype; ``C`` is
    (m, n), ``op(A)`` (m, k) and ``op(B)`` (k, n).  The caller checks the
    shapes: nothing is checked here.
    """
    if not (isinstance(C, types.Array) and C.dtype in (types.float32, types.float64)
            and C.mutable
            and all(isinstance(x, types.Array) and x.ndim == 2 and x.layout == "C"
                    and x.dtype == C.dtype for x in (A, B, C))
            and all(isinstance(t, (types.Boolean, types.Integer)) for t in (trans_a, trans_b))):
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
        if AOT_BUILD:  # read at codegen: an extension has no run-time symbol binding
            slot = _pointer_slot(builder.module, _AOT_GLOBALS[signature.args[2].dtype])
            fn = builder.bitcast(builder.load(slot), fnty.as_pointer())
        else:
            fn = cgutils.get_or_insert_function(builder.module, fnty, symbol)

        def as_i64(size):  # array sizes are intp; the interface takes 64-bit integers
            return context.cast(builder, size, types.intp, types.int64)

        a_rows, a_cols = (as_i64(v) for v in cgutils.unpack_tuple(builder, a.shape))
        b_cols = as_i64(cgutils.unpack_tuple(builder, b.shape)[1])
        m, n = (as_i64(v) for v in cgutils.unpack_tuple(builder, c.shape))
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
