"""Matrix products on C-contiguous 2-D views: BLAS, or a loop for degenerate shapes.

Products go to BLAS through :func:`.blas.gemm`, one direct call of
``cblas_?gemm`` (NumPy's OpenBLAS where NumPy carries one).  A BLAS call still
has a fixed cost -- about 0.5 us on the benchmark machine -- which is most of
the time of a product where one dimension is tiny: the output layer of a
one-output network, the back-propagation into it, or any product of a batch
of one sample.  Those shapes are really matrix-vector or outer products, and a
loop whose innermost index runs over the long, contiguous dimension beats BLAS
there.  Everything else goes to BLAS.

Matrix-vector means one column (or one summed dimension for ``A @ B.T``):
with two to four columns the loops lost to BLAS at every shape measured
(float64, one thread, AMD EPYC Zen 3: 200x100 times 100x3 took 98 us in the
loop against 22 us in BLAS, 32x32 times 32x3 4.2 against 1.4 us; with one
column the loops won, 5.2 against 17 us and 0.28 against 1.0 us).

``A.T @ B`` with fewer than ``SMALL_PRODUCT`` multiply-adds (the weight
gradient of a 10-input layer on a 32-sample batch) also skips BLAS: a loop
over blocks of four rows of A does four multiply-adds per load of B.  The
threshold was set against Numba's ``np.dot`` (0.59-0.84 us against 1.12-1.56
us at 32x10x32).  Against :func:`.blas.gemm` the loop was slightly slower in
one run of ``bench/bench_gemm_floor.py`` (0.55 against 0.52 us), a difference
within this machine's run-to-run spread, so the threshold is unchanged until
more runs settle it.  The same loop for ``A @ B`` lost to both, so
``matmul`` leaves such products to BLAS.

Each function overwrites its output and allocates nothing.  The three
products are compiled into their callers (``jit(inline=True)``): in paired
in-process runs the 10-32-1 gradient took about 3% less time (median ratios
1.031 and 1.029).
"""

from ._jit import jit
from .blas import gemm

# A dimension at most this small makes the product degenerate (see above).
TINY = 4
# A.T @ B products below this many multiply-adds use the four-row loop (see above).
SMALL_PRODUCT = 12 * 1024


@jit(inline=True)
def matmul(A, B, C):
    """``C = A @ B`` for A (m, k), B (k, n), C (m, n)."""
    m, k = A.shape
    n = B.shape[1]
    if k == 0:
        C[:, :] = 0  # an empty sum (the loops below read row 0 of B)
    elif n == 1:
        # Matrix-vector products: dot products along A's contiguous rows.
        for i in range(m):
            for j in range(n):
                s = C.dtype.type(0)
                for p in range(k):
                    s += A[i, p] * B[p, j]
                C[i, j] = s
    elif m <= TINY or k <= TINY:
        four_row_matmul(A, B, C)
    else:
        gemm(A, B, C, False, False)


@jit(inline=True)
def matmul_tn(A, B, C):
    """``C = A.T @ B`` for A (m, k), B (m, n), C (k, n)."""
    m, k = A.shape
    n = B.shape[1]
    if n == 1:
        # One output column: a combination of A's rows.
        if m == 0:
            C[:, :] = 0
            return
        for j in range(n):  # the first row assigns: no separate zeroing pass
            b = B[0, j]
            for p in range(k):
                C[p, j] = A[0, p] * b
        for i in range(1, m):
            for j in range(n):
                b = B[i, j]
                for p in range(k):
                    C[p, j] += A[i, p] * b
    elif m <= TINY or k <= TINY or m * k * n < SMALL_PRODUCT:
        four_row_matmul_tn(A, B, C)
    else:
        gemm(A, B, C, True, False)


@jit(inline=True)
def matmul_nt(A, B, C):
    """``C = A @ B.T`` for A (m, k), B (n, k), C (m, n)."""
    m, k = A.shape
    n = B.shape[0]
    if k == 0:
        C[:, :] = 0  # an empty sum (the loop below reads column 0)
    elif k == 1 or m <= TINY or n <= TINY:
        loop_matmul_nt(A, B, C)
    else:
        gemm(A, B, C, False, True)


@jit(inline=True)
def loop_matmul_nt(A, B, C):
    """``C = A @ B.T`` with loops, for A (m, k >= 1), B (n, k), C (m, n): an outer
    product when k == 1, else dot products of contiguous rows of A and B."""
    m, k = A.shape
    n = B.shape[0]
    if k == 1:
        for i in range(m):
            a = A[i, 0]
            for j in range(n):
                C[i, j] = a * B[j, 0]
    else:
        for i in range(m):
            for j in range(n):
                s = C.dtype.type(0)
                for p in range(k):
                    s += A[i, p] * B[j, p]
                C[i, j] = s


@jit
def four_row_matmul(A, B, C):
    """``C = A @ B`` accumulating rows of B into four rows of C at a time.

    Row 0 of B is assigned rather than added to zeros: no zeroing pass (the
    products of a layer have k >= 1).
    """
    m, k = A.shape
    n = B.shape[1]
    i = 0
    while i + 4 <= m:
        a0, a1, a2, a3 = A[i, 0], A[i + 1, 0], A[i + 2, 0], A[i + 3, 0]
        for j in range(n):
            b = B[0, j]
            C[i, j] = a0 * b
            C[i + 1, j] = a1 * b
            C[i + 2, j] = a2 * b
            C[i + 3, j] = a3 * b
        for p in range(1, k):
            a0, a1, a2, a3 = A[i, p], A[i + 1, p], A[i + 2, p], A[i + 3, p]
            for j in range(n):
                b = B[p, j]
                C[i, j] += a0 * b
                C[i + 1, j] += a1 * b
                C[i + 2, j] += a2 * b
                C[i + 3, j] += a3 * b
        i += 4
    for i in range(i, m):
        a = A[i, 0]
        for j in range(n):
            C[i, j] = a * B[0, j]
        for p in range(1, k):
            a = A[i, p]
            for j in range(n):
                C[i, j] += a * B[p, j]


@jit
def four_row_matmul_tn(A, B, C):
    """``C = A.T @ B``: a sum of outer products of rows of A and B, four at a time.

    The first four rows (or the first row of a shorter A) assign rather than
    add to zeros: no zeroing pass.
    """
    m, k = A.shape
    n = B.shape[1]
    if m >= 4:
        for p in range(k):
            a0, a1, a2, a3 = A[0, p], A[1, p], A[2, p], A[3, p]
            for j in range(n):
                C[p, j] = a0 * B[0, j] + a1 * B[1, j] + a2 * B[2, j] + a3 * B[3, j]
        i = 4
    elif m > 0:
        for p in range(k):
            a = A[0, p]
            for j in range(n):
                C[p, j] = a * B[0, j]
        i = 1
    else:
        C[:, :] = 0
        return
    while i + 4 <= m:
        for p in range(k):
            a0, a1, a2, a3 = A[i, p], A[i + 1, p], A[i + 2, p], A[i + 3, p]
            for j in range(n):
                C[p, j] += (a0 * B[i, j] + a1 * B[i + 1, j]
                            + a2 * B[i + 2, j] + a3 * B[i + 3, j])
        i += 4
    for i in range(i, m):
        for p in range(k):
            a = A[i, p]
            for j in range(n):
                C[p, j] += a * B[i, j]
