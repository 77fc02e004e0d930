"""kernels.blas: the direct BLAS product against NumPy, in both of its bindings."""

import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gdcore as gd
from gdcore.kernels import blas


@numba.njit
def product(A, B, C, trans_a, trans_b):
    blas.gemm(A, B, C, trans_a, trans_b)


def operands(rng, m, k, n, trans_a, trans_b, dtype):
    """C-contiguous A, B stored transposed where asked, and the NumPy reference."""
    a = rng.normal(size=(m, k)).astype(dtype)
    b = rng.normal(size=(k, n)).astype(dtype)
    A = np.ascontiguousarray(a.T) if trans_a else a
    B = np.ascontiguousarray(b.T) if trans_b else b
    return A, B, a.astype(np.float64) @ b.astype(np.float64)


@given(m=st.integers(0, 40), k=st.integers(0, 40), n=st.integers(0, 40),
       trans_a=st.booleans(), trans_b=st.booleans(), seed=st.integers(0, 2**16),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_gemm_matches_numpy_and_overwrites_its_output(m, k, n, trans_a, trans_b, seed, dtype):
    A, B, expected = operands(np.random.default_rng(seed), m, k, n, trans_a, trans_b, dtype)
    C = np.full((m, n), np.nan, dtype=dtype)  # stale contents, even for k == 0
    A0, B0 = A.copy(), B.copy()
    product(A, B, C, trans_a, trans_b)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(C, expected, rtol=tol, atol=tol)
    np.testing.assert_array_equal(A, A0)
    np.testing.assert_array_equal(B, B0)


def test_gemm_refuses_arrays_that_are_not_c_contiguous():
    A = np.ones((3, 3))
    with pytest.raises(numba.TypingError):
        product(A.T, A, np.empty((3, 3)), False, False)
    with pytest.raises(numba.TypingError):
        product(A, A.astype(np.float32), np.empty((3, 3)), False, False)


def _numpy_has_scipy_openblas64():
    try:
        blas_info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # noqa: BLE001
        return False
    return blas_info.get("name") == "scipy-openblas" and "USE64BITINT" in str(
        blas_info.get("openblas configuration", ""))


@pytest.mark.skipif(not _numpy_has_scipy_openblas64(),
                    reason="NumPy is not built with scipy-openblas (64-bit integers)")
@pytest.mark.skipif(os.environ.get("GDCORE_BLAS", "").lower() == "scipy",
                    reason="GDCORE_BLAS=scipy selects the fallback")
def test_products_use_numpys_blas_when_numpy_carries_one():
    assert blas.BOUND_TO == "numpy"


def tiny_problem():
    """A small classifier and batch: (model, params, X, y)."""
    model = gd.mlp([6, 9, 3], loss="cross_entropy")
    return model, gd.init(model, seed=1), np.linspace(-1, 1, 66).reshape(11, 6), np.arange(11) % 3


def test_fallback_binding_gives_the_same_products(tmp_path):
    """GDCORE_BLAS=scipy binds the np.dot callbacks: products and a gradient agree.

    The subprocess loads the kernels this process compiled from the on-disk
    cache: cached code names the symbol, not the library behind it.
    """
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import gdcore as gd
        from gdcore.kernels import blas, linalg
        from test_blas import tiny_problem
        assert blas.BOUND_TO == "scipy", blas.BOUND_TO
        rng = np.random.default_rng(0)
        for dtype in (np.float32, np.float64):
            A = rng.normal(size=(37, 19)).astype(dtype)
            B = rng.normal(size=(19, 23)).astype(dtype)
            C = np.full((37, 23), np.nan, dtype=dtype)
            linalg.matmul(A, B, C)
            np.testing.assert_allclose(C, A @ B, rtol=1e-5, atol=1e-5)
            C2 = np.full((19, 23), np.nan, dtype=dtype)
            linalg.matmul_tn(A, C, C2)
            np.testing.assert_allclose(C2, A.T @ C, rtol=1e-4, atol=1e-4)
            C3 = np.full((37, 37), np.nan, dtype=dtype)
            linalg.matmul_nt(A, A, C3)
            np.testing.assert_allclose(C3, A @ A.T, rtol=1e-4, atol=1e-4)
        loss, g = gd.value_and_grad(*tiny_problem())
        np.save(sys.argv[1], np.concatenate([[loss], g]))
    """)
    loss, g = gd.value_and_grad(*tiny_problem())
    out = tmp_path / "fallback.npy"
    path = os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")])
    subprocess.run([sys.executable, "-c", script, str(out)], check=True, timeout=600,
                   env=dict(os.environ, GDCORE_BLAS="scipy", PYTHONPATH=path))
    np.testing.assert_allclose(np.load(out), np.concatenate([[loss], g]), rtol=1e-12,
                               atol=1e-14)
