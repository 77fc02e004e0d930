"""Matrix products on C-contiguous 2-D views: BLAS, or a loop for degenerate shapes.

``np.dot(a, b, out)`` calls BLAS with a fixed cost of about a microsecond per
call (argument checks, buffer set-up), which is most of the time of a product
where one dimension is tiny: the output layer of a one-output network, the
back-propagation into it, or any product of a batch of one sample.  Those
shapes are really matrix-vector or outer products, and a loop whose innermost
index runs over the long, contiguous dimension beats BLAS there.  Everything
else goes to BLAS.

Each function overwrites its output and allocates nothing.
"""

import numpy as np

from ._jit import jit

# A dimension at most this small makes the product degenerate (see above).
TINY = 4


@jit
def matmul(A, B, C):
    """``C = A @ B`` for A (m, k), B (k, n), C (m, n)."""
    m, k = A.shape
    n = B.shape[1]
    if n <= TINY:
        # Matrix-vector products: dot products along A's contiguous rows.
        for i in range(m):
            for j in range(n):
                s = C.dtype.type(0)
                for p in range(k):
                    s += A[i, p] * B[p, j]
                C[i, j] = s
    elif m <= TINY or k <= TINY:
        # Few rows, or a short inner dimension: accumulate rows of B.
        for i in range(m):
            C[i, :] = 0
            for p in range(k):
                a = A[i, p]
                for j in range(n):
                    C[i, j] += a * B[p, j]
    else:
        np.dot(A, B, C)


@jit
def matmul_tn(A, B, C):
    """``C = A.T @ B`` for A (m, k), B (m, n), C (k, n)."""
    m, k = A.shape
    n = B.shape[1]
    if n <= TINY:
        # Few output columns: each is a combination of A's rows.
        C[:, :] = 0
        for i in range(m):
            for j in range(n):
                b = B[i, j]
                for p in range(k):
                    C[p, j] += A[i, p] * b
    elif m <= TINY or k <= TINY:
        # A sum of a few outer products (m small), or few output rows.
        C[:, :] = 0
        for i in range(m):
            for p in range(k):
                a = A[i, p]
                for j in range(n):
                    C[p, j] += a * B[i, j]
    else:
        np.dot(A.T, B, C)


@jit
def matmul_nt(A, B, C):
    """``C = A @ B.T`` for A (m, k), B (n, k), C (m, n)."""
    m, k = A.shape
    n = B.shape[0]
    if k <= TINY:
        # A sum of a few outer products.
        C[:, :] = 0
        for i in range(m):
            for p in range(k):
                a = A[i, p]
                for j in range(n):
                    C[i, j] += a * B[j, p]
    elif m <= TINY or n <= TINY:
        # Dot products of contiguous rows of A and B.
        for i in range(m):
            for j in range(n):
                s = C.dtype.type(0)
                for p in range(k):
                    s += A[i, p] * B[j, p]
                C[i, j] = s
    else:
        np.dot(A, B.T, C)
