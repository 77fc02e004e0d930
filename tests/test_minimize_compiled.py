"""The compiled-objective path gives the same iterates as the Python path.

With Numba objectives, gdcore runs the whole minimization in one compiled call
(:mod:`gdcore.kernels.minimize_loops`).  The Python path is forced by calling
the same compiled function through a plain Python wrapper, so both paths see
bitwise the same objective values; the results must then be identical.
"""

import numba
import numpy as np
import pytest
import scipy.optimize as so

import gdcore as gd
from gdcore import objective

# Compiled and Python drivers must take bitwise the same iterates on every CPU.
pytestmark = pytest.mark.bitwise


@numba.njit
def rosen_fg(x):
    f = 0.0
    g = np.zeros_like(x)
    for i in range(x.shape[0] - 1):
        a = x[i + 1] - x[i] * x[i]
        b = 1.0 - x[i]
        f += 100.0 * a * a + b * b
        g[i] += -400.0 * a * x[i] - 2.0 * b
        g[i + 1] += 200.0 * a
    return f, g


@numba.njit
def quad_f(x, scale):
    return 0.5 * np.sum(scale * (x - 1.5) ** 2)


@numba.njit
def quad_g(x, scale):
    return scale * (x - 1.5)


def python(fun):
    """The same compiled function behind a Python wrapper: forces the Python path."""
    return lambda x, *args: fun(x, *args)


def assert_same_run(compiled, python_):
    np.testing.assert_array_equal(compiled.x, python_.x)
    assert compiled.x.dtype == python_.x.dtype
    assert compiled.fun == python_.fun
    assert (compiled.nit, compiled.nfev, compiled.njev, compiled.status) == \
        (python_.nit, python_.nfev, python_.njev, python_.status)
    np.testing.assert_array_equal(compiled.jac, python_.jac)


def rosen_start(n, dtype=np.float64):
    x0 = np.full(n, -1.2, dtype=dtype)
    x0[1::2] = 1.0
    return x0


def test_the_compiled_path_is_taken_for_numba_objectives():
    obj = objective.Objective(rosen_fg, True, ())
    assert objective.compiled_fg(obj) is rosen_fg
    assert objective.compiled_fg(objective.Objective(python(rosen_fg), True, ())) is None
    separate = objective.Objective(quad_f, quad_g, (np.ones(3),))
    assert objective.compiled_fg(separate) is not None


@pytest.mark.parametrize("n", [2, 30])
@pytest.mark.parametrize("options", [{}, {"gtol": 1e-10, "ftol": 0.0}, {"maxiter": 7},
                                     {"maxfun": 9}])
def test_lbfgs_iterates_match(n, options):
    x0 = rosen_start(n)
    got = so.minimize(rosen_fg, x0, jac=True, method=gd.lbfgs(), options=options)
    want = so.minimize(python(rosen_fg), x0, jac=True, method=gd.lbfgs(), options=options)
    assert_same_run(got, want)


def test_lbfgs_with_bounds_and_separate_jac_match():
    scale = np.linspace(1.0, 100.0, 6)
    bounds = [(-1.0, 1.0)] * 6
    got = so.minimize(quad_f, np.zeros(6), args=(scale,), jac=quad_g, method=gd.lbfgs(),
                      bounds=bounds)
    want = so.minimize(python(quad_f), np.zeros(6), args=(scale,), jac=python(quad_g),
                       method=gd.lbfgs(), bounds=bounds)
    assert_same_run(got, want)
    np.testing.assert_allclose(got.x, 1.0, atol=1e-8)  # the box stops the way to 1.5


@pytest.mark.parametrize("method", [gd.adam(0.01), gd.sgd(1e-3, momentum=0.9),
                                    gd.rmsprop(1e-3, centered=True), gd.lion(1e-3)],
                         ids=["adam", "sgd", "rmsprop", "lion"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_first_order_iterates_match(method, dtype):
    x0 = rosen_start(6, dtype)
    options = {"maxiter": 300, "gtol": 1e-6}
    got = so.minimize(rosen_fg, x0, jac=True, method=method, options=options)
    want = so.minimize(python(rosen_fg), x0, jac=True, method=method, options=options)
    assert_same_run(got, want)
    assert got.x.dtype == dtype


def test_first_order_with_bounds_schedule_and_ftol_match():
    method = gd.adam(gd.exponential_decay(0.1, 0.99))
    options = {"maxiter": 2000, "ftol": 1e-12}
    bounds = [(-0.5, 0.8)] * 4
    got = so.minimize(rosen_fg, np.zeros(4), jac=True, method=method, bounds=bounds,
                      options=options)
    want = so.minimize(python(rosen_fg), np.zeros(4), jac=True, method=method, bounds=bounds,
                       options=options)
    assert_same_run(got, want)
    assert np.all(got.x <= 0.8) and np.all(got.x >= -0.5)


@numba.njit
def nan_beyond(x):
    f = np.sum(x * x)
    if x[0] < -2.0:
        f = np.nan
    return f, 2.0 * x


@numba.njit
def huge_gradient(x):
    return float(np.sum(x)), np.full_like(x, 1e200)


def test_overflow_in_the_first_step_reports_the_same_message():
    """Adam's squared gradient overflows in step one, leaving x at x0: not a NaN *at* x0."""
    method = gd.adam(1e-3)
    got = so.minimize(huge_gradient, np.ones(3), jac=True, method=method)
    want = so.minimize(python(huge_gradient), np.ones(3), jac=True, method=method)
    assert got.status == want.status == 3
    assert got.message == want.message
    assert "last finite point" in got.message
    assert_same_run(got, want)


def test_nonfinite_outcomes_match():
    # A fixed step overshoots from 1 to 1 - 0.8 * 2 * 2 ... into the NaN region.
    method = gd.sgd(1.6)
    got = so.minimize(nan_beyond, np.array([1.0, 0.5]), jac=True, method=method)
    want = so.minimize(python(nan_beyond), np.array([1.0, 0.5]), jac=True, method=method)
    assert got.status == want.status == 3
    assert_same_run(got, want)
    assert np.all(np.isfinite(got.x)) and np.isfinite(got.fun)
