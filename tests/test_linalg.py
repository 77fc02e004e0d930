"""The matrix-product kernels against NumPy, on every shape class they branch on."""

import numpy as np
import pytest
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


@pytest.mark.parametrize("m, n", [(1, 1), (3, 7), (5, 2)])
def test_products_over_an_empty_inner_dimension_are_zero(m, n):
    """k == 0: an empty sum, whatever the output held before."""
    A = np.zeros((m, 0))
    B = np.zeros((0, n))
    C = np.full((m, n), np.nan)
    linalg.matmul(A, B, C)
    np.testing.assert_array_equal(C, 0)
    C[...] = np.nan
    linalg.matmul_nt(A, np.zeros((n, 0)), C)
    np.testing.assert_array_equal(C, 0)
