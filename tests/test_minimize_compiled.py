"""The compiled-objective path gives the same iterates as the Python path.

With Numba objectives, gdcore runs the whole minimization in one compiled call
(:mod:`gdcore.kernels.minimize_loops`).  The Python path is forced by calling
the same compiled function through a plain Python wrapper, so both paths see
bitwise the same objective values; the results must then be identical.
"""

import importlib
import math
import time

import numba
import numpy as np
import pytest
import scipy.optimize as so

import gdcore as gd
from gdcore import drivers, objective
from sigint import default_sigint, run_with_sigint  # noqa: F401 (a fixture)

minimize = importlib.import_module("gdcore.minimize")  # the module, not gd.minimize

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


# Bounded compiled calls --------------------------------------------------------------------
@pytest.fixture(params=[None, 1, 3], ids=["timed calls", "calls of 1", "calls of 3"])
def tiny_calls(request, monkeypatch):
    """Compiled calls as timed, or of at most 1 or 3 evaluations: split many times."""
    if request.param is not None:
        monkeypatch.setattr(drivers.Slices, "MAX_EVALUATIONS", request.param)
    return request.param


@pytest.mark.parametrize("options", [{}, {"maxiter": 7}, {"maxfun": 9}])
def test_lbfgs_split_into_many_calls_matches(tiny_calls, options):
    x0 = rosen_start(8)
    got = so.minimize(rosen_fg, x0, jac=True, method=gd.lbfgs(), options=options)
    want = so.minimize(python(rosen_fg), x0, jac=True, method=gd.lbfgs(), options=options)
    assert_same_run(got, want)


@pytest.mark.parametrize("options", [{"maxiter": 300, "gtol": 1e-6}, {"maxiter": 7},
                                     {"maxfun": 9}, {"maxiter": 2000, "ftol": 1e-12}])
def test_first_order_with_bounds_and_schedule_split_into_calls_matches(tiny_calls, options):
    method = gd.adam(gd.exponential_decay(0.1, 0.99))
    bounds = [(-0.5, 0.8)] * 4
    got = so.minimize(rosen_fg, np.zeros(4), jac=True, method=method, bounds=bounds,
                      options=options)
    want = so.minimize(python(rosen_fg), np.zeros(4), jac=True, method=method, bounds=bounds,
                       options=options)
    assert_same_run(got, want)
    assert np.all(got.x <= 0.8) and np.all(got.x >= -0.5)


@numba.njit
def bowl(x):
    r = x - 1.5
    return 0.5 * np.sum(r * r), r


@pytest.mark.parametrize("method", ["adam", gd.adam(gd.exponential_decay(0.1, 0.999))],
                         ids=["adam", "adam-schedule"])
def test_huge_maxiter_allocates_no_table_of_its_size(method):
    """maxiter=10**10 once allocated a 74.5 GiB table of learning rates (MemoryError)."""
    res = gd.minimize(bowl, np.zeros(3), method=method, jac=True,
                      options={"maxiter": 10**10, "gtol": 1e-6})
    assert res.status == 0, res.message
    np.testing.assert_allclose(res.x, 1.5, atol=1e-5)


# Ctrl-C --------------------------------------------------------------------------------------
@numba.njit
def slow_rosen(x, reps):
    """Rosenbrock, with ``reps`` sines of busy work that leave f and g unchanged."""
    f, g = rosen_fg(x)
    busy = 0.0
    for r in range(reps):
        busy += math.sin(x[r % x.shape[0]] + r)
    return f + 0.0 * busy, g


def assert_interrupted_at_an_iterate(res, fg, args=()):
    assert res.status == minimize.INTERRUPTED == 130 and res.success is False
    assert "interrupted" in res.message.lower()
    f, g = fg(res.x, *args)
    assert res.fun == f
    np.testing.assert_array_equal(res.jac, g)


def busy_reps(seconds):
    """The ``reps`` that make one ``slow_rosen`` evaluation (n = 100) last about ``seconds``."""
    x = rosen_start(100)
    slow_rosen(x, 1)
    start = time.perf_counter()
    slow_rosen(x, 100_000)
    return max(1, int(100_000 * seconds / (time.perf_counter() - start)))


@pytest.mark.parametrize("method", [gd.lbfgs(), gd.adam(0.01)], ids=["lbfgs", "adam"])
def test_sigint_stops_a_compiled_run_with_its_last_iterate(method, default_sigint):
    """Uninterrupted, the run would last about 8 s (L-BFGS: 841 evaluations until its
    line search fails, Adam: 1000 iterations) and then raise KeyboardInterrupt."""
    x0 = rosen_start(100)
    options = {"gtol": 0.0, "ftol": 0.0, "maxiter": 1000}
    so.minimize(slow_rosen, x0, args=(1,), jac=True, method=method,
                options={"maxiter": 2})  # compiles the loop before the clock starts
    reps = busy_reps(0.01)
    res, latency = run_with_sigint(lambda: so.minimize(
        slow_rosen, x0, args=(reps,), jac=True, method=method, options=options), 0.3)
    print(f"{method!r}: returned {latency:.3f} s after SIGINT, nit {res.nit}")
    assert_interrupted_at_an_iterate(res, slow_rosen, (reps,))
    assert 0 < res.nit < 1000 and res.nfev >= res.nit
    # Resumed by hand from the returned iterate, the run goes on.
    assert so.minimize(rosen_fg, res.x, jac=True, method=method,
                       options={"maxiter": 3}).nit == 3


def test_sigint_while_numba_compiles_the_loop(default_sigint):
    """A new objective: the loop compiles for seconds, and Ctrl-C stops that at once."""
    @numba.njit
    def fresh(x):
        return rosen_fg(x)

    x0 = rosen_start(4)
    fresh(x0)  # compiles the objective itself, not the loop
    res, latency = run_with_sigint(lambda: gd.minimize(fresh, x0, jac=True), 0.2)
    print(f"returned {latency:.3f} s after SIGINT, nit {res.nit}")
    assert_interrupted_at_an_iterate(res, fresh)
    if res.nit == 0:
        np.testing.assert_array_equal(res.x, x0)
        assert res.nfev == 1


@numba.njit
def _grad_grows_after_x0(x):
    """A gradient of x's length at x0 = 1 (the checked first evaluation), one longer after."""
    if x[0] == 1.0:
        return float(x @ x), 2.0 * x
    return float(x @ x), np.zeros(x.shape[0] + 1)


@pytest.mark.parametrize("method", ["lbfgs", "adam"])
def test_a_gradient_of_another_length_is_refused_in_compiled_loops(method):
    """The compiled loops copy each gradient element by element; one of the wrong
    length must stop the run with an error, not be read or written past its end."""
    with pytest.raises(ValueError, match="gradient of another length"):
        gd.minimize(_grad_grows_after_x0, np.ones(4), jac=True, method=method,
                    options={"maxiter": 5})
