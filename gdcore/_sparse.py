"""SciPy sparse matrices as inputs: checked once, handed to the kernels as SparseRows.

Any ``scipy.sparse`` matrix or array is accepted as ``X`` and read in CSR form
(other formats are converted: a copy of the stored values, never a dense
copy).  The kernels index ``data``, ``indices`` and ``indptr`` without bounds
checks, so everything they rely on is verified here: the row pointers are
non-decreasing from 0 to the number of stored values and every column index
lies inside the model's inputs.  Stored NaN/Inf are left to the compiled
input scan, as for dense ``X``.
"""

import numpy as np

from .kernels.sparse import SparseRows

__all__ = ["SparseRows", "is_sparse", "kernel", "rows", "sparse_features"]


def is_sparse(X):
    """Whether ``X`` is a SciPy sparse matrix or array (SciPy is imported only if loaded)."""
    module = type(X).__module__
    if not module.startswith("scipy.sparse"):
        return False
    import scipy.sparse

    return scipy.sparse.issparse(X)


def sparse_features(model, X, dtype):
    """``X`` (SciPy sparse, shape (n_samples, model.n_inputs)) as SparseRows in ``dtype``.

    The CSR arrays are the caller's own when they already have the kernels'
    types (values in ``dtype``, int64 indices): nothing is copied then.
    """
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    n, n_features = X.shape
    if n == 0:
        raise ValueError("X is an empty batch: it must have at least one sample")
    if n_features != model.n_inputs:
        raise ValueError(f"X has {n_features} features but the model expects {model.n_inputs}")
    if X.format != "csr":
        X = X.tocsr()
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")
    data = np.ascontiguousarray(X.data, dtype=dtype)
    indices = np.ascontiguousarray(X.indices, dtype=np.int64)
    indptr = np.ascontiguousarray(X.indptr, dtype=np.int64)
    nnz = data.shape[0]
    if (data.ndim != 1 or indices.shape != (nnz,) or indptr.shape != (n + 1,)
            or indptr[0] != 0 or indptr[-1] != nnz or np.any(np.diff(indptr) < 0)):
        raise ValueError("X is a malformed CSR matrix: its indptr must rise from 0 to the "
                         "number of stored values, one entry per row plus one")
    if nnz and (indices.min() < 0 or indices.max() >= n_features):
        raise ValueError(f"X is a malformed CSR matrix: a column index lies outside "
                         f"[0, {n_features})")
    return SparseRows(data, indices, indptr, np.arange(n, dtype=np.int64), n_features)


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
