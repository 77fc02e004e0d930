"""SciPy sparse matrices as inputs, handed to the kernels as SparseRows.

Any ``scipy.sparse`` matrix or array is accepted as ``X`` and read in CSR form
(other formats are converted: a copy of the stored values, never a dense
copy).  The kernels index ``data``, ``indices`` and ``indptr`` without bounds
checks, so everything they rely on is verified first, with every other input
check, by :func:`gdcore._validate.sparse_features`: the row pointers are
non-decreasing from 0 to the number of stored values and every column index
lies inside the model's inputs.  Stored NaN/Inf are left to the compiled
input scan, as for dense ``X``.  Here: recognising a sparse ``X``, picking
its kernels and slicing its rows.
"""

import numpy as np

from .kernels.sparse import SparseRows

__all__ = ["SparseRows", "is_sparse", "kernel", "rows"]


def is_sparse(X):
    """Whether ``X`` is a SciPy sparse matrix or array (SciPy is imported only if loaded)."""
    module = type(X).__module__
    if not module.startswith("scipy.sparse"):
        return False
    import scipy.sparse

    return scipy.sparse.issparse(X)


def kernel(table, key, X):
    """``table[key]`` for a dense ``X``; for SparseRows, the table's Numba kernel.

    The extensions compiled ahead of time take dense ``X`` only, so sparse
    inputs are served by Numba (compiled on first use, then cached on disk).
    """
    if type(X) is SparseRows:
        return table.jit_kernel(*(key if isinstance(key, tuple) else (key,)))
    return table[key]


def rows(X, which):
    """Samples ``which`` (a slice or an index array) of a kernel-form ``X``, C-contiguous.

    For SparseRows only the sample list is new: the stored values are shared.
    """
    if type(X) is SparseRows:
        return X._replace(rows=np.ascontiguousarray(X.rows[which]))
    return np.ascontiguousarray(X[which])
