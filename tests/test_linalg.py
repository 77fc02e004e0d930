"""The matrix-product kernels against NumPy, on every shape class they branch on."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from gdcore.kernels import linalg

# 1..4 hits the loop branches (linalg.TINY), larger sizes the BLAS branch.
dims = st.sampled_from([1, 2, 3, 4, 5, 9, 33])


@given(m=dims, k=dims, n=dims, seed=st.integers(0, 2**16),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_products_match_numpy(m, k, n, seed, dtype):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(m, k)).astype(dtype)
    B = rng.normal(size=(k, n)).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12

    C = np.full((m, n), np.nan, dtype=dtype)  # stale contents must be overwritten
    linalg.matmul(A, B, C)
    np.testing.assert_allclose(C, A @ B, rtol=tol, atol=tol)

    At = np.ascontiguousarray(A.T)  # (k, m): C2 = At.T @ B... with shapes (k, m).T @ (k, n)
    C2 = np.full((m, n), np.nan, dtype=dtype)
    linalg.matmul_tn(At, B, C2)
    np.testing.assert_allclose(C2, A @ B, rtol=tol, atol=tol)

    Bt = np.ascontiguousarray(B.T)  # (n, k)
    C3 = np.full((m, n), np.nan, dtype=dtype)
    linalg.matmul_nt(A, Bt, C3)
    np.testing.assert_allclose(C3, A @ B, rtol=tol, atol=tol)
