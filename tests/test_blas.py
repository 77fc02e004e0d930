"""kernels.blas: the direct BLAS product against NumPy, in each of its bindings."""

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
from gdcore.kernels import blas, blas_libraries

MKL_INSTALLED = blas_libraries.mkl() is not None
CHOSEN = os.environ.get("GDCORE_BLAS", "auto").strip().lower() or "auto"


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


@given(m=st.integers(0, 12), k=st.integers(0, 12), n=st.integers(0, 12),
       trans_a=st.booleans(), trans_b=st.booleans(), seed=st.integers(0, 2**16),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_fallback_callback_matches_numpy(m, k, n, trans_a, trans_b, seed, dtype):
    """The np.dot callback behind GDCORE_BLAS=scipy, called as BLAS would be."""
    A, B, expected = operands(np.random.default_rng(seed), m, k, n, trans_a, trans_b, dtype)
    C = np.full((m, n), np.nan, dtype=dtype)
    flag = {True: blas.TRANS, False: blas.NO_TRANS}
    A_, B_ = np.ascontiguousarray(A), np.ascontiguousarray(B)

    callback = blas.fallback_callback(dtype).ctypes

    def ptr(x):
        return x.ctypes.data_as(callback.argtypes[7])

    callback(
        blas.ROW_MAJOR, flag[trans_a], flag[trans_b], m, n, k, 1.0, ptr(A_),
        max(1, A_.shape[1]), ptr(B_), max(1, B_.shape[1]), 0.0, ptr(C), max(1, n))
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(C, expected, rtol=tol, atol=tol)


def test_gemm_refuses_a_read_only_output_and_non_flag_transposes():
    A = np.ones((3, 3))
    C = np.empty((3, 3))
    C.flags.writeable = False
    with pytest.raises(numba.TypingError):
        product(A, A, C, False, False)
    with pytest.raises(numba.TypingError):
        product(A, A, np.empty((3, 3)), 0.5, False)


@pytest.mark.skipif(CHOSEN != "auto", reason="GDCORE_BLAS chooses the binding")
def test_auto_binds_mkl_on_intel_and_numpys_openblas_elsewhere():
    openblas = blas_libraries.numpy_carries_scipy_openblas64()
    intel = blas_libraries.cpu_vendor() == "GenuineIntel"
    if MKL_INSTALLED and (intel or not openblas):
        assert blas.BOUND_TO == "mkl"
        assert blas.LIBRARY.threads_on_gomp == (
            os.environ.get("MKL_THREADING_LAYER", "GNU").upper() == "GNU")
    elif openblas:
        assert blas.BOUND_TO == "openblas"
    else:
        assert blas.BOUND_TO == "scipy"


@pytest.mark.parametrize("vendor, expected", [("GenuineIntel", "mkl"),
                                              ("AuthenticAMD", "openblas"), ("", "openblas")])
def test_auto_chooses_by_the_cpus_vendor(monkeypatch, vendor, expected):
    libraries = {"mkl": object(), "openblas": object()}
    monkeypatch.setattr(blas_libraries, "cpu_vendor", lambda: vendor)
    monkeypatch.setattr(blas_libraries, "mkl", lambda: libraries["mkl"])
    monkeypatch.setattr(blas_libraries, "numpy_openblas", lambda: libraries["openblas"])
    assert blas._chosen_library("auto") is libraries[expected]
    monkeypatch.setattr(blas_libraries, "mkl", lambda: None)  # not installed
    assert blas._chosen_library("auto") is libraries["openblas"]



def test_bound_library_thread_count_is_steerable():
    from gdcore._blas_threads import blas_threads
    if blas.LIBRARY is None:
        pytest.skip("the fallback binding's BLAS is not steered")
    before = blas.get_blas_threads()
    for count in (1, 3):
        with blas_threads(count):  # as a call with threads=count holds it
            assert blas.get_blas_threads() == count
        assert blas.get_blas_threads() == before


def test_mkl_is_looked_for_in_the_users_site_too(monkeypatch, tmp_path):
    """pip install --user mkl puts libmkl_rt in the user base's lib."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "libmkl_rt.so.2").write_bytes(b"")
    monkeypatch.setattr(blas_libraries.site, "ENABLE_USER_SITE", True)
    monkeypatch.setattr(blas_libraries.site, "getuserbase", lambda: str(tmp_path))
    assert str(lib / "libmkl_rt.so.2") in blas_libraries._mkl_candidates()
    monkeypatch.setattr(blas_libraries.site, "ENABLE_USER_SITE", False)
    assert str(lib / "libmkl_rt.so.2") not in blas_libraries._mkl_candidates()


def test_asking_for_mkl_without_it_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(blas_libraries, "mkl", lambda: None)
    with pytest.raises(ImportError, match=r"GDCORE_BLAS=mkl.*gdcore\[mkl\]"):
        blas._chosen_library("mkl")


@pytest.mark.parametrize("choice", ["openblas", "numpy"])
def test_asking_for_numpys_openblas_without_it_names_the_alternatives(monkeypatch, choice):
    # An explicit choice is never silently replaced by another library.
    monkeypatch.setattr(blas_libraries, "numpy_openblas", lambda: None)
    with pytest.raises(ImportError, match=rf"GDCORE_BLAS={choice}, but this NumPy does not "
                                          r"ship OpenBLAS.*GDCORE_BLAS=mkl or scipy"):
        blas._chosen_library(choice)


def test_an_unknown_binding_is_refused_naming_the_variable():
    result = subprocess.run([sys.executable, "-c", "import gdcore"], capture_output=True,
                            text=True, timeout=300, env=dict(os.environ, GDCORE_BLAS="atlas"))
    assert result.returncode != 0
    assert "GDCORE_BLAS must be one of auto, openblas, numpy, mkl, scipy, got 'atlas'" \
        in result.stderr


def small_problem():
    """A classifier and batch whose products (but one) are big enough for BLAS."""
    model = gd.mlp([12, 40, 30, 8], loss="cross_entropy")
    X = np.sin(np.arange(50 * 12).reshape(50, 12))
    return model, gd.init(model, seed=1), X, np.arange(50) % 8


OTHER_BINDINGS = [pytest.param(name, marks=pytest.mark.skipif(
    name == "mkl" and not MKL_INSTALLED, reason="MKL is not installed (the mkl extra)"))
    for name in ("scipy", "openblas", "mkl")]


@pytest.mark.parametrize("binding", OTHER_BINDINGS)
def test_every_binding_gives_the_same_products(tmp_path, binding):
    """Each GDCORE_BLAS binding (the scipy fallback's np.dot callbacks, NumPy's
    OpenBLAS, MKL): products and a gradient agree with this process's.

    The subprocess loads the gradient kernel this process compiled (and cached
    on disk) with the other binding: cached code names the symbol, not the
    library behind it.
    """
    if binding == "openblas" and not blas_libraries.numpy_carries_scipy_openblas64():
        pytest.skip("NumPy is not built with scipy-openblas (64-bit integers)")
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import gdcore as gd
        from gdcore.kernels import blas, linalg
        from test_blas import small_problem
        assert blas.BOUND_TO == sys.argv[2], blas.BOUND_TO
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
        loss, g = gd.value_and_grad(*small_problem())
        from gdcore.kernels import entry
        assert entry.any_value_and_grad.stats.cache_hits, "compiled, not loaded"
        np.save(sys.argv[1], np.concatenate([[loss], g]))
    """)
    loss, g = gd.value_and_grad(*small_problem())
    out = tmp_path / f"{binding}.npy"
    path = os.pathsep.join(p for p in [os.path.dirname(__file__),
                                       os.environ.get("PYTHONPATH", "")] if p)
    subprocess.run([sys.executable, "-c", script, str(out), binding], check=True, timeout=600,
                   env=dict(os.environ, GDCORE_BLAS=binding, PYTHONPATH=path))
    np.testing.assert_allclose(np.load(out), np.concatenate([[loss], g]), rtol=1e-12,
                               atol=1e-14)


def test_gomp_loads_with_short_spins_unless_the_user_chose(monkeypatch):
    seen = []
    monkeypatch.setattr(blas_libraries, "_gomp_loads",
                        lambda: seen.append(os.environ.get("GOMP_SPINCOUNT")) or True)
    monkeypatch.setattr(blas_libraries, "_gomp_loaded", lambda: False)
    for chosen in ({}, {"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "1000"}):
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
        monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
        for name, value in chosen.items():
            monkeypatch.setenv(name, value)
        assert blas_libraries._load_gomp()
        assert os.environ.get("GOMP_SPINCOUNT") == chosen.get("GOMP_SPINCOUNT")  # as it was
    assert seen == [str(blas_libraries.GOMP_SPINS), None, "1000"]  # what libgomp saw
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.setattr(blas_libraries, "_gomp_loaded", lambda: True)  # too late to choose
    assert blas_libraries._load_gomp()
    assert seen[-1] is None


@pytest.mark.skipif(not MKL_INSTALLED or blas.BOUND_TO != "mkl", reason="MKL is not bound")
@pytest.mark.skipif(bool(os.environ.get("MKL_CBWR")), reason="MKL_CBWR chooses the mode")
def test_mkl_runs_in_strict_reproducibility_mode():
    import ctypes
    library = ctypes.CDLL(blas_libraries._mkl_candidates()[0])
    mode = library.MKL_CBWR_Get(0xFFFFFFFF)  # MKL_CBWR_ALL: branch and strict flag
    assert mode == blas_libraries.MKL_CBWR_AUTO | blas_libraries.MKL_CBWR_STRICT


def _shifted(a, by):
    """A copy of ``a`` starting ``by`` elements into a fresh buffer (another alignment)."""
    buffer = np.empty(a.size + by, dtype=a.dtype)
    out = buffer[by:].reshape(a.shape)
    out[...] = a
    return out


@pytest.mark.bitwise
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_bits_do_not_depend_on_memory_alignment(dtype):
    model = gd.mlp([64, 96, 48, 10], loss="cross_entropy")
    params = gd.init(model, seed=2, dtype=dtype)
    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, 64)).astype(dtype)
    y = rng.integers(0, 10, 200)
    loss, grad = gd.value_and_grad(model, params, X, y)
    for by in (1, 3, 8):
        shifted = gd.value_and_grad(model, _shifted(params, by), _shifted(X, by), y)
        assert shifted[0] == loss
        np.testing.assert_array_equal(shifted[1], grad)
