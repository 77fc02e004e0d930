"""Sparse inputs: a model reads the rows of a CSR matrix without a dense copy.

A :class:`SparseRows` stands where the kernels take a dense ``X``: the CSR
arrays of the stored matrix and ``rows``, which of its rows are the samples,
in sample order.  A batch, a chunk of a shuffled epoch or a validation split
is a new ``rows`` over the same CSR arrays: selecting samples never copies
their values.

Only the first layer reads ``X``: its product ``X @ W`` and the weight
gradient ``X.T @ D`` run over the stored values of each row
(:func:`first_product`, :func:`first_product_tn`), as scikit-learn's MLP
does with ``safe_sparse_dot``; every later layer is dense.

The helpers below are overloaded on the type of ``X``: with a dense array
they compile to exactly the code the kernels ran before (one call of the
dense routine), so dense models compile and run as they did.
"""

from typing import NamedTuple

import numpy as np
from numba import types
from numba.extending import overload

from ._jit import jit, options
from .copies import gather_rows
from .finite import first_nonfinite
from .linalg import matmul, matmul_tn
from .prefetch import prefetch_rows
from .views import byte_rows, flat_view


class SparseRows(NamedTuple):
    """Samples that are rows of a CSR matrix (validated by :mod:`gdcore._sparse`)."""

    data: np.ndarray  # (nnz,), params dtype: the stored values
    indices: np.ndarray  # (nnz,), int64: the column of each stored value
    indptr: np.ndarray  # (n_stored_rows + 1,), int64: row r is data[indptr[r]:indptr[r + 1]]
    rows: np.ndarray  # (n_samples,), int64: the stored row of each sample
    n_features: int

    # Python side only (the kernels read the fields).
    @property
    def shape(self):
        """(n_samples, n_features), as a dense X's."""
        return (self.rows.shape[0], self.n_features)

    def stored(self, i):
        """The stored values of sample ``i``."""
        r = self.rows[i]
        return self.data[self.indptr[r]:self.indptr[r + 1]]


# Each overload compiles as a function of its own under the kernels' policy.
# Inlined into every caller (inline="always"), the first JIT compile of a
# gradient (generic kernels, one process each) took 18.9-20.9 s against
# 15.3-16.7 s without the sparse path; compiled apart, 16.7 s.
_POLICY = options()


def _dense(X):
    return isinstance(X, types.Array)


# Python stubs: the compiled code is the overload of each.
def n_rows(X):
    """Number of samples of ``X``."""


def rows_slice(X, start, stop):
    """Samples ``start:stop`` of ``X`` (a view)."""


def first_product(X, W, Z):
    """``Z = X @ W`` for ``X`` of shape (n, n_in), ``W`` (n_in, k), ``Z`` (n, k)."""


def first_product_tn(X, D, G):
    """``G = X.T @ D`` for ``X`` (n, n_in), ``D`` (n, k), ``G`` (n_in, k)."""


def first_nonfinite_row(X):
    """Index of the first sample of ``X`` holding NaN or Inf, or -1."""


def gather_samples(X, order, start, stop, Xb):
    """``Xb[:stop - start] = X[order[start:stop]]`` (samples; nothing is checked)."""


def prefetch_samples(X, order, start, stop):
    """Ask the CPU to load samples ``order[start:stop]`` of a dense ``X``."""


@overload(n_rows, jit_options=_POLICY)
def _n_rows(X):
    if _dense(X):
        return lambda X: X.shape[0]
    return lambda X: X.rows.shape[0]


@overload(rows_slice, jit_options=_POLICY)
def _rows_slice(X, start, stop):
    if _dense(X):
        return lambda X, start, stop: X[start:stop]
    return lambda X, start, stop: SparseRows(X.data, X.indices, X.indptr, X.rows[start:stop],
                                             X.n_features)


@overload(first_product, jit_options=_POLICY)
def _first_product(X, W, Z):
    if _dense(X):
        return lambda X, W, Z: matmul(X, W, Z)
    return lambda X, W, Z: sparse_matmul(X.data, X.indices, X.indptr, X.rows, W, Z)


@overload(first_product_tn, jit_options=_POLICY)
def _first_product_tn(X, D, G):
    if _dense(X):
        return lambda X, D, G: matmul_tn(X, D, G)
    return lambda X, D, G: sparse_matmul_tn(X.data, X.indices, X.indptr, X.rows, D, G)


@overload(first_nonfinite_row, jit_options=_POLICY)
def _first_nonfinite_row(X):
    if _dense(X):
        def dense(X):
            i = first_nonfinite(flat_view(X))  # not reshape: its checks compile for 0.2 s
            return i // X.shape[1] if i >= 0 else -1
        return dense
    return lambda X: sparse_nonfinite_row(X.data, X.indptr, X.rows)


@overload(gather_samples, jit_options=_POLICY)
def _gather_samples(X, order, start, stop, Xb):
    if _dense(X):
        return lambda X, order, start, stop, Xb: gather_rows(X, order, start, stop, Xb)

    def sparse(X, order, start, stop, Xb):
        for r in range(start, stop):
            Xb.rows[r - start] = X.rows[order[r]]
    return sparse


@overload(prefetch_samples, jit_options=_POLICY)
def _prefetch_samples(X, order, start, stop):
    if _dense(X):
        return lambda X, order, start, stop: prefetch_rows(byte_rows(X), order, start, stop)
    return lambda X, order, start, stop: None  # scattered values: nothing worth asking for


@jit
def sparse_matmul(data, indices, indptr, rows, W, Z):
    """``Z[i] = sum over stored (c, v) of row rows[i]: v * W[c]``."""
    k = W.shape[1]
    for i in range(rows.shape[0]):
        r = rows[i]
        for j in range(k):
            Z[i, j] = 0
        for p in range(indptr[r], indptr[r + 1]):
            v = data[p]
            c = indices[p]
            for j in range(k):
                Z[i, j] += v * W[c, j]


@jit
def sparse_matmul_tn(data, indices, indptr, rows, D, G):
    """``G = X.T @ D``: each stored (c, v) of sample i adds ``v * D[i]`` to ``G[c]``."""
    G[:, :] = 0
    k = G.shape[1]
    for i in range(rows.shape[0]):
        r = rows[i]
        for p in range(indptr[r], indptr[r + 1]):
            v = data[p]
            c = indices[p]
            for j in range(k):
                G[c, j] += v * D[i, j]


@jit
def sparse_nonfinite_row(data, indptr, rows):
    """The first sample whose stored values hold NaN or Inf, or -1."""
    for i in range(rows.shape[0]):
        r = rows[i]
        for p in range(indptr[r], indptr[r + 1]):
            if not np.isfinite(data[p]):
                return i
    return -1
