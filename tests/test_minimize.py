"""gdcore's methods as ``scipy.optimize.minimize`` methods, and :func:`gdcore.minimize`.

The contract is SciPy's: every test calls the methods the way SciPy calls a
custom method (through ``scipy.optimize.minimize`` and ``basinhopping``
themselves wherever possible) and checks the result against the objective
evaluated independently in the test, against counts kept by the test's own
wrappers, or against SciPy's L-BFGS-B on the same problem.

* Arguments: ``jac`` (True, callable, finite differences), ``args``, both
  callback forms, ``StopIteration``, bounds (projected iterates; the bounded
  optimum against L-BFGS-B's), constraints, ``x0`` validation and dtypes.
* Statuses: 0 success, 1 iteration/evaluation limit, 2 no progress, 3
  NaN/Inf (last finite point), 99 callback stop.
* Convergence: every first-order rule on a diagonal quadratic of condition 10,
  ``gd()`` (Armijo) on it and on Rosenbrock, ``lbfgs`` on Rosenbrock n = 2, 10,
  100 to 1e-8, with ``nfev`` within 1.5x of L-BFGS-B's.
* Mini-batch objectives: ``fun(x, *args, batch=idx)`` with shuffled index
  arrays covering every sample once per epoch.
"""

import concurrent.futures
import importlib
import inspect
import re
import signal
import time
import warnings

import numpy as np
import pytest
import scipy.optimize as so
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, NonlinearConstraint, OptimizeResult

import gdcore as gd
from sigint import default_sigint, no_escape, run_with_sigint  # noqa: F401 (a fixture)

# A diagonal convex quadratic, n = 5, condition number 10, minimum at C (not on
# any grid a sign-based rule could land on exactly).
H = np.geomspace(1.0, 10.0, 5)
C = np.array([1.2345, -2.0817, 0.5123, 3.0031, -1.1111])


def quad(x):
    r = np.asarray(x, dtype=np.float64) - C
    return 0.5 * float(np.sum(H * r * r)), H * r


def quad_value(x):
    return quad(x)[0]


def quad_grad(x):
    return quad(x)[1]


def rosen_fg(x):
    return so.rosen(x), so.rosen_der(x)


def rosen2(x):
    """Rosenbrock n = 2 in plain floats (scipy's rosen costs ~70 us a call)."""
    a, b = float(x[0]), float(x[1])
    t = b - a * a
    return 100.0 * t * t + (1.0 - a) ** 2, np.array([-400.0 * t * a - 2.0 * (1.0 - a), 200.0 * t])


class Counted:
    """Wraps an objective; records a copy of every point and the keyword arguments."""

    def __init__(self, fun):
        self.fun = fun
        self.xs = []
        self.kwargs = []

    def __call__(self, x, *args, **kwargs):
        self.xs.append(np.array(x, copy=True))
        self.kwargs.append(kwargs)
        return self.fun(x, *args, **kwargs)

    @property
    def calls(self):
        return len(self.xs)


# First-order rules with settings that reach gtol 1e-6 on ``quad`` (Lion's sign
# steps need a decaying rate to settle; AdamW's decay would move the optimum).
FIRST_ORDER = {
    "sgd": gd.sgd(0.15),
    "adam": gd.adam(0.1),
    "adamw": gd.adamw(0.1, weight_decay=0.0),
    "rmsprop": gd.rmsprop(0.01),
    "adagrad": gd.adagrad(1.0),
    "adamax": gd.adamax(0.1),
    "nadam": gd.nadam(0.1),
    "lion": gd.lion(gd.exponential_decay(0.1, 0.99)),
}
METHODS = dict(FIRST_ORDER, gd=gd.gd(), lbfgs=gd.lbfgs())
SOME = ("lbfgs", "gd", "adam")  # one of each driver: line search, Armijo, update rule
RESULT_FIELDS = ("x", "fun", "jac", "nit", "nfev", "njev", "status", "success", "message")


def assert_consistent(res, fun=quad):
    """The result's fun and jac are the objective's at res.x."""
    f, g = fun(res.x)
    assert res.fun == pytest.approx(f, rel=1e-12, abs=1e-300)
    np.testing.assert_allclose(res.jac, g, rtol=1e-6, atol=1e-12)


# Result and convergence ----------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(FIRST_ORDER))
def test_first_order_converges_on_quadratic(name):
    fun = Counted(quad)
    res = so.minimize(fun, np.zeros(5), jac=True, method=METHODS[name],
                      options={"gtol": 1e-6, "maxiter": 5000})
    assert isinstance(res, OptimizeResult)
    for key in RESULT_FIELDS:
        assert key in res, key
    assert res.status == 0 and res.success is True, res.message
    assert np.max(np.abs(quad_grad(res.x))) <= 1e-6
    np.testing.assert_allclose(res.x, C, atol=1e-6)  # |x - C| <= |g| / min(H)
    assert_consistent(res)
    assert res.nfev == fun.calls == res.nit + 1  # one evaluation per step, plus x0


def test_gd_armijo_on_quadratic_and_rosenbrock():
    res = so.minimize(quad, np.zeros(5), jac=True, method=gd.gd(), options={"gtol": 1e-6})
    assert res.status == 0 and res.success, res.message
    np.testing.assert_allclose(res.x, C, atol=1e-6)
    assert_consistent(res)
    assert res.nfev > res.nit  # backtracking evaluates more than once per step sometimes

    x = np.array([0.3, -0.7])
    assert rosen2(x)[0] == pytest.approx(so.rosen(x), rel=1e-14)
    np.testing.assert_allclose(rosen2(x)[1], so.rosen_der(x), rtol=1e-14)
    res = so.minimize(rosen2, np.array([-1.2, 1.0]), jac=True, method=gd.gd(),
                      options={"gtol": 1e-6, "maxiter": 100_000})
    assert res.status == 0, res.message
    assert np.max(np.abs(res.x - 1.0)) <= 1e-5
    assert res.nit > 1000  # steepest descent crawls along the valley; L-BFGS takes ~40


def test_gd_with_learning_rate_is_fixed_step_descent():
    a = so.minimize(quad, np.zeros(5), jac=True, method=gd.gd(0.15))
    b = so.minimize(quad, np.zeros(5), jac=True, method=gd.sgd(0.15))
    assert a.status == 0 and a.nit == b.nit and a.nfev == a.nit + 1
    np.testing.assert_array_equal(a.x, b.x)
    # x1 = x0 - lr g(x0), checked through the legacy callback.
    seen = []
    so.minimize(quad, np.zeros(5), jac=True, method=gd.gd(0.15), callback=seen.append)
    np.testing.assert_allclose(seen[0], -0.15 * quad_grad(np.zeros(5)), rtol=1e-15)


@pytest.mark.parametrize("n", [2, 10, 100])
def test_lbfgs_rosenbrock_against_lbfgsb(n):
    x0 = np.tile([-1.2, 1.0], n // 2)
    options = {"gtol": 1e-10, "ftol": 0.0, "maxiter": 100_000}
    fun = Counted(rosen_fg)
    res = so.minimize(fun, x0, jac=True, method=gd.lbfgs(), options=options)
    ref = so.minimize(rosen_fg, x0, jac=True, method="L-BFGS-B",
                      options=dict(options, maxfun=100_000))
    print(f"Rosenbrock n={n}: gdcore lbfgs nit={res.nit} nfev={res.nfev}; "
          f"L-BFGS-B nit={ref.nit} nfev={ref.nfev}")
    assert res.status == 0 and res.success, res.message
    assert np.max(np.abs(res.x - 1.0)) <= 1e-8
    assert res.nfev == fun.calls
    assert_consistent(res, rosen_fg)
    assert ref.success and np.max(np.abs(ref.x - 1.0)) <= 1e-6
    assert res.nfev <= 1.5 * ref.nfev


@pytest.mark.parametrize("m, error", [(0, ValueError), (-3, ValueError), (2.5, TypeError),
                                      (True, TypeError), ("10", TypeError), (None, TypeError)])
def test_lbfgs_memory_validation(m, error):
    with pytest.raises(error, match="m must"):
        gd.lbfgs(m=m)
    with pytest.raises(error, match="m must"):
        gd.minimize(quad, np.zeros(5), jac=True, method="lbfgs", options={"m": m})


def test_lbfgs_memory_is_used():
    x0 = np.tile([-1.2, 1.0], 5)
    runs = {m: gd.lbfgs(m=m)(rosen_fg, x0, jac=True, gtol=1e-10, ftol=0.0) for m in (1, 3, 10)}
    for m, res in runs.items():
        assert res.status == 0, (m, res.message)
        assert np.max(np.abs(res.x - 1.0)) <= 1e-8
    assert runs[1].nit > runs[3].nit > runs[10].nit  # more curvature pairs, fewer steps
    named = gd.minimize(rosen_fg, x0, jac=True, method="lbfgs",
                        options={"m": 3, "gtol": 1e-10, "ftol": 0.0})
    assert (named.nit, named.nfev) == (runs[3].nit, runs[3].nfev)


# jac and args -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", SOME)
def test_jac_true_through_scipy_runs_fun_once_per_point(name):
    fun = Counted(quad)
    res = so.minimize(fun, np.zeros(5), jac=True, method=METHODS[name],
                      options={"gtol": 1e-6})
    assert res.success, res.message
    assert res.nfev == fun.calls
    for a, b in zip(fun.xs, fun.xs[1:]):  # SciPy's MemoizeJac would not re-run fun; check
        assert not np.array_equal(a, b)   # gdcore never asks twice for one point either


@pytest.mark.parametrize("name", SOME)
@pytest.mark.parametrize("through_scipy", [True, False], ids=["scipy", "direct"])
def test_callable_jac(name, through_scipy):
    fun, jac = Counted(quad_value), Counted(quad_grad)
    if through_scipy:
        res = so.minimize(fun, np.zeros(5), jac=jac, method=METHODS[name],
                          options={"gtol": 1e-6})
    else:
        res = METHODS[name](fun, np.zeros(5), jac=jac, gtol=1e-6)
    assert res.status == 0, res.message
    np.testing.assert_allclose(res.x, C, atol=1e-6)
    assert res.nfev == fun.calls and res.njev == jac.calls
    assert fun.calls == jac.calls
    for a, b in zip(fun.xs, jac.xs):
        np.testing.assert_array_equal(a, b)


def sine_bowl(x, a, b):
    return float(a * np.sum((x - b) ** 2) + np.sum(np.sin(x)))


def sine_bowl_grad(x, a, b):
    return 2.0 * a * (x - b) + np.cos(x)


@pytest.mark.parametrize("name", SOME)
@pytest.mark.parametrize("jac", [None, "2-point", "3-point"])
def test_finite_differences_direct(name, jac):
    fun = Counted(sine_bowl)
    res = METHODS[name](fun, np.zeros(3), args=(2.0, 1.0), jac=jac, gtol=1e-5)
    assert res.status == 0, res.message
    true_grad = sine_bowl_grad(res.x, 2.0, 1.0)
    assert np.max(np.abs(true_grad)) <= 2e-5
    assert res.fun == pytest.approx(sine_bowl(res.x, 2.0, 1.0), rel=1e-14)
    # Every objective call, finite-difference steps included, is counted.
    assert res.nfev == fun.calls
    assert res.nfev >= (res.nit + 1) * (3 + 1)
    error = np.max(np.abs(res.jac - true_grad))
    assert error <= (1e-8 if jac == "3-point" else 1e-6)


@pytest.mark.parametrize("jac", [None, "2-point", "3-point"])
def test_finite_differences_through_scipy(jac):
    # SciPy hands a custom method jac=None for '2-point'/'3-point'.
    fun = Counted(sine_bowl)
    res = so.minimize(fun, np.zeros(3), args=(2.0, 1.0), jac=jac, method=gd.lbfgs(),
                      options={"gtol": 1e-6})
    assert res.status == 0, res.message
    assert np.max(np.abs(sine_bowl_grad(res.x, 2.0, 1.0))) <= 2e-6
    assert res.nfev == fun.calls > res.nit * 3


def shifted(x, center, scale):
    r = x - center
    return scale * float(r @ r), 2.0 * scale * r


@pytest.mark.parametrize("name", SOME)
def test_args_reach_fun_and_jac(name):
    center = np.array([3.0, -1.0, 0.5])
    seen = []

    def jac(x, center, scale):
        seen.append((center, scale))
        return shifted(x, center, scale)[1]

    method = METHODS[name]
    runs = [
        so.minimize(shifted, np.zeros(3), args=(center, 2.0), jac=True, method=method),
        method(shifted, np.zeros(3), args=(center, 2.0), jac=True),
        gd.minimize(shifted, np.zeros(3), args=(center, 2.0), jac=True, method=method),
        so.minimize(lambda x, c, s: shifted(x, c, s)[0], np.zeros(3), args=(center, 2.0),
                    jac=jac, method=method),
    ]
    for res in runs:
        assert res.status == 0, res.message
        np.testing.assert_allclose(res.x, center, atol=1e-5)
    assert seen and all(c is center and s == 2.0 for c, s in seen)

    # A single non-tuple argument is wrapped, as SciPy does.
    res = gd.minimize(lambda x, c: shifted(x, c, 1.0), np.zeros(3), args=center, jac=True,
                      method=method)
    np.testing.assert_allclose(res.x, center, atol=1e-5)


def test_hess_and_hessp_are_accepted_and_ignored():
    for method in METHODS.values():
        res = method(quad, np.zeros(5), jac=True, hess=lambda x: np.diag(H),
                     hessp=lambda x, p: H * p, maxiter=3)
        assert res.status in (0, 1) and res.nit <= 3


# Callbacks -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(METHODS))
def test_callback_intermediate_result(name):
    seen = []

    def callback(intermediate_result):
        seen.append((intermediate_result.x.copy(), intermediate_result.fun))
        intermediate_result.x[:] = np.nan  # a copy: the run must not notice

    res = so.minimize(quad, np.zeros(5), jac=True, method=METHODS[name], callback=callback,
                      options={"gtol": 1e-6})
    assert res.status == 0, res.message
    assert len(seen) == res.nit > 0
    for x, f in seen:
        assert x.shape == (5,)
        assert f == pytest.approx(quad_value(x), rel=1e-12)
    np.testing.assert_allclose(res.x, C, atol=1e-6)
    # gd.minimize forwards the callback the same way.
    count = []
    res = gd.minimize(quad, np.zeros(5), jac=True, method=METHODS[name],
                      callback=lambda intermediate_result: count.append(1),
                      options={"gtol": 1e-6})
    assert len(count) == res.nit


@pytest.mark.parametrize("name", sorted(METHODS))
def test_callback_legacy(name):
    seen = []
    res = so.minimize(quad, np.zeros(5), jac=True, method=METHODS[name], callback=seen.append,
                      options={"gtol": 1e-6})
    assert res.status == 0, res.message
    assert len(seen) == res.nit > 0
    assert all(isinstance(x, np.ndarray) and x.shape == (5,) for x in seen)
    assert not any(np.shares_memory(a, b) for a, b in zip(seen, seen[1:]))
    # Descent methods only go downhill between iterates.
    if name in ("lbfgs", "gd"):
        values = [quad_value(x) for x in seen]
        assert all(b < a for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("name", [
    "lbfgs", "gd", "adam", "sgd"])
def test_callback_sees_the_final_iterate(name):
    seen = []
    res = so.minimize(quad, np.zeros(5), jac=True, method=METHODS[name], callback=seen.append,
                      options={"gtol": 1e-6})
    assert res.success
    np.testing.assert_array_equal(seen[-1], res.x)
    # One step that lands on the minimum is one iteration, as L-BFGS-B counts it.
    one = so.minimize(lambda x: (float(x @ x), 2 * x), np.array([1.0]), jac=True,
                      method=gd.lbfgs() if name == "lbfgs" else gd.sgd(0.5))
    assert one.x[0] == 0.0 and one.nit == 1


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("form", ["new", "legacy"])
def test_callback_stop_iteration(name, form):
    seen = []

    def record(x):
        seen.append(x.copy())
        if len(seen) == 3:
            raise StopIteration

    if form == "new":
        def callback(intermediate_result):
            record(intermediate_result.x)
    else:
        callback = record
    fun = Counted(quad)
    res = so.minimize(fun, np.zeros(5), jac=True, method=METHODS[name], callback=callback,
                      options={"gtol": 1e-12})
    assert res.status == 99
    assert res.success is False
    assert res.message == "`callback` raised `StopIteration`."
    assert res.nit == 3 and len(seen) == 3
    np.testing.assert_array_equal(res.x, seen[-1])
    assert res.fun == pytest.approx(quad_value(res.x), rel=1e-12)
    assert res.nfev == fun.calls

    def stop_now(xk):
        raise StopIteration

    res = gd.minimize(quad, np.zeros(5), jac=True, method=METHODS[name], callback=stop_now)
    assert res.status == 99 and res.nit == 1 and not res.success


# Bounds and constraints ----------------------------------------------------------------------
def bounded_problem():
    """A convex quadratic whose unconstrained minimum lies outside the box."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 6))
    hess = a @ a.T + 6.0 * np.eye(6)
    b = hess @ np.array([3.0, -3.0, 0.5, 2.0, -0.2, 0.1])

    def fun(x):
        x = np.asarray(x, dtype=np.float64)
        return float(0.5 * x @ hess @ x - b @ x), hess @ x - b

    pairs = [(-1.0, 1.0), (None, 0.5), (0.0, None), (-1.0, 1.0), (None, None), (-2.0, 2.0)]
    lower = np.array([-np.inf if lo is None else lo for lo, _ in pairs])
    upper = np.array([np.inf if hi is None else hi for _, hi in pairs])
    return fun, pairs, lower, upper


def inside(x, lower, upper):
    return bool(np.all((x >= lower) & (x <= upper)))


@pytest.mark.parametrize("form", ["pairs", "Bounds"])
def test_bounded_lbfgs_matches_lbfgsb(form):
    fun, pairs, lower, upper = bounded_problem()
    bounds = pairs if form == "pairs" else Bounds(lower, upper)
    x0 = np.array([5.0, 5.0, -5.0, 0.0, 0.0, 0.0])  # outside the box: projected first
    options = {"gtol": 1e-10, "ftol": 0.0}
    ref = so.minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=pairs,
                      options={"gtol": 1e-12, "ftol": 0.0})
    free = so.minimize(fun, x0, jac=True, method="L-BFGS-B", options={"gtol": 1e-12})
    assert not inside(free.x, lower, upper)  # the box binds
    counted = Counted(fun)
    res = so.minimize(counted, x0, jac=True, method=gd.lbfgs(), bounds=bounds, options=options)
    assert res.status == 0, res.message
    np.testing.assert_allclose(res.x, ref.x, atol=1e-6)
    assert res.fun == pytest.approx(ref.fun, rel=1e-10)
    assert all(inside(x, lower, upper) for x in counted.xs)
    # Same through gd.minimize.
    res = gd.minimize(fun, x0, jac=True, bounds=bounds, options=options)
    np.testing.assert_allclose(res.x, ref.x, atol=1e-6)


@pytest.mark.parametrize("jac", [True, None])
def test_bounded_lbfgs_rosenbrock_evaluations_near_lbfgsb(jac):
    # The box of L-BFGS-B comparisons (x0 - max(1, |x0|), x0 + max(1, |x0|) / 2):
    # its upper bound on x[0] holds at the optimum, (-0.6, 0.36).  Halving steps
    # along the projected path took 92 evaluations (jac=True) and 282 (jac=None)
    # where L-BFGS-B takes 15 and 51, half of them at points projected onto the
    # one just tried.
    x0 = np.array([-1.2, 1.0])
    scale = np.maximum(1.0, np.abs(x0))
    pairs = list(zip(x0 - scale, x0 + 0.5 * scale))
    options = {"gtol": 1e-10, "ftol": 0.0}
    fun = Counted(rosen2 if jac else (lambda x: rosen2(x)[0]))
    res = so.minimize(fun, x0, jac=jac, method=gd.lbfgs(), bounds=pairs, options=options)
    ref = so.minimize(rosen2 if jac else (lambda x: rosen2(x)[0]), x0, jac=jac,
                      method="L-BFGS-B", bounds=pairs, options=options)
    assert res.status == 0, res.message
    assert res.fun <= ref.fun * (1 + 1e-10)
    assert res.nfev <= 1.7 * ref.nfev
    assert not any(np.array_equal(a, b) for a, b in zip(fun.xs, fun.xs[1:]))


# Rates for ``bounded_problem`` (Hessian eigenvalues up to ~20); lion and rmsprop keep
# ``FIRST_ORDER``'s and only hover near the optimum at a constant rate.
BOUNDED = dict(METHODS, sgd=gd.sgd(0.05), adam=gd.adam(0.05),
               adamw=gd.adamw(0.05, weight_decay=0.0), adagrad=gd.adagrad(0.5),
               adamax=gd.adamax(0.05), nadam=gd.nadam(0.05))


@pytest.mark.parametrize("name", sorted(BOUNDED))
def test_bounds_every_method(name):
    fun, pairs, lower, upper = bounded_problem()
    counted = Counted(fun)
    seen = []
    x0 = np.array([5.0, 5.0, -5.0, 0.0, 0.0, 0.0])
    res = so.minimize(counted, x0, jac=True, method=BOUNDED[name], bounds=pairs,
                      callback=lambda intermediate_result: seen.append(intermediate_result.x),
                      options={"gtol": 1e-8, "ftol": 0.0, "maxiter": 3000})
    assert len(seen) == res.nit > 0
    assert all(inside(x, lower, upper) for x in seen + counted.xs + [res.x])
    assert res.fun == pytest.approx(fun(res.x)[0], rel=1e-12)
    if name not in ("lion", "rmsprop"):  # constant-rate sign-like steps only hover
        ref = so.minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=pairs,
                          options={"gtol": 1e-12, "ftol": 0.0})
        np.testing.assert_allclose(res.x, ref.x, atol=1e-5)


def test_bounds_validation():
    for bad in ([(0, 1)] * 4, [(1.0, 0.0)] * 5, [(0.0, np.nan)] * 5):
        with pytest.raises(ValueError, match="bounds"):
            gd.lbfgs()(quad, np.zeros(5), jac=True, bounds=bad)
        with pytest.raises(ValueError, match="bounds"):
            gd.adam()(quad, np.zeros(5), jac=True, bounds=bad)


@pytest.mark.parametrize("name", SOME)
def test_constraints_raise(name):
    for constraints in ({"type": "ineq", "fun": lambda x: x[0]},
                        NonlinearConstraint(lambda x: x[0], 0.0, np.inf)):
        with pytest.raises(NotImplementedError, match="constraints"):
            so.minimize(quad, np.zeros(5), jac=True, method=METHODS[name],
                        constraints=constraints)
        with pytest.raises(NotImplementedError, match="constraints"):
            METHODS[name](quad, np.zeros(5), jac=True, constraints=[constraints])
    res = so.minimize(quad, np.zeros(5), jac=True, method=METHODS[name], constraints=())
    assert res.success


# x0 ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(METHODS))
def test_float32_stays_float32(name):
    fun = Counted(quad)
    seen = []
    res = so.minimize(fun, np.zeros(5, dtype=np.float32), jac=True, method=METHODS[name],
                      callback=lambda intermediate_result: seen.append(intermediate_result.x),
                      options={"gtol": 1e-4, "maxiter": 5000})
    assert res.status == 0, res.message
    assert res.x.dtype == np.float32 and res.jac.dtype == np.float32
    assert all(x.dtype == np.float32 for x in fun.xs + seen)
    np.testing.assert_allclose(res.x, C, atol=2e-4)


@pytest.mark.parametrize("name", SOME)
def test_integer_x0_becomes_float64(name):
    fun = Counted(quad)
    res = METHODS[name](fun, [0, 1, 0, 2, -1], jac=True, gtol=1e-6)
    assert res.x.dtype == np.float64 and all(x.dtype == np.float64 for x in fun.xs)
    np.testing.assert_allclose(res.x, C, atol=1e-6)
    res = gd.minimize(quad, np.zeros(5, dtype=np.int32), jac=True, method=METHODS[name])
    assert res.x.dtype == np.float64 and res.success


@pytest.mark.parametrize("name", SOME)
def test_bad_x0(name):
    method = METHODS[name]
    for bad in (np.zeros((2, 3)), [[1.0, 2.0]], np.zeros((1, 1, 5))):
        with pytest.raises(ValueError, match="one dimension"):
            method(quad, bad, jac=True)
        with pytest.raises(ValueError, match="one dimension"):
            gd.minimize(quad, bad, jac=True, method=name)
        with pytest.raises(ValueError, match="one dimension"):
            so.minimize(quad, bad, jac=True, method=method)
    for bad in (["a", "b"], np.array(["1.0", "2.0"]), "ab", [1.0 + 2j, 0.0], []):
        with pytest.raises((TypeError, ValueError)):
            method(quad, bad, jac=True)
        with pytest.raises((TypeError, ValueError)):
            gd.minimize(quad, bad, jac=True, method=name)


# Non-finite values and statuses ----------------------------------------------------------------
def bowl_with_hole(x):
    """(x - 1)^2 summed, NaN wherever some |x_i| > 5."""
    if np.any(np.abs(x) > 5.0):
        return np.nan, np.full_like(x, np.nan, dtype=np.float64)
    return float(np.sum((x - 1.0) ** 2)), 2.0 * (x - 1.0)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_nan_at_x0_is_status_3(name):
    x0 = np.array([20.0, 1.5])
    fun = Counted(bowl_with_hole)
    res = so.minimize(fun, x0, jac=True, method=METHODS[name])
    assert res.status == 3 and res.success is False
    assert res.nit == 0 and res.nfev == fun.calls == 1
    np.testing.assert_array_equal(res.x, x0)
    # A finite value with a NaN gradient, and an infinite value, are non-finite too.
    res = METHODS[name](lambda x: (1.0, np.array([np.nan])), np.array([1.0]), jac=True)
    assert res.status == 3
    res = METHODS[name](lambda x: (np.inf, 2 * x), np.array([1.0]), jac=True)
    assert res.status == 3


@pytest.mark.parametrize("method", [gd.sgd(1.05), gd.gd(1.05)], ids=["sgd", "gd-fixed"])
def test_nonfinite_midway_keeps_last_finite_point(method):
    """A rule that diverges into the NaN region stops with status 3 at the last finite point."""
    seen = []
    fun = Counted(bowl_with_hole)
    res = so.minimize(fun, np.array([2.0, 1.5]), jac=True, method=method,
                      callback=seen.append)
    assert res.status == 3 and res.success is False, res.message
    assert res.nit == len(seen) > 2
    assert np.all(np.isfinite(res.x)) and np.isfinite(res.fun)
    assert np.all(np.isfinite(res.jac))
    assert res.fun == pytest.approx(bowl_with_hole(res.x)[0], rel=1e-14)
    np.testing.assert_array_equal(res.x, seen[-1])
    assert np.isnan(bowl_with_hole(fun.xs[-1])[0])  # the last evaluation was the bad one
    assert res.nfev == fun.calls


def huber_with_cliff(x):
    """Pseudo-Huber around 1 (flat far away: big secant steps), NaN beyond x_i > 3."""
    if np.any(x > 3.0):
        return np.nan, np.full_like(x, np.nan, dtype=np.float64)
    r = np.sqrt(1.0 + (x - 1.0) ** 2)
    return float(np.sum(r)), (x - 1.0) / r


@pytest.mark.parametrize("name", ["lbfgs", "gd"])
def test_line_search_backs_off_from_nan(name):
    """The kernel's documented behaviour: a NaN trial point shortens the step."""
    fun = Counted(huber_with_cliff)
    res = so.minimize(fun, np.full(3, -20.0), jac=True, method=METHODS[name],
                      options={"gtol": 1e-8})
    assert any(np.any(x > 3.0) for x in fun.xs)  # the search did step into the NaN region
    assert res.status == 0 and res.success, res.message
    np.testing.assert_allclose(res.x, 1.0, atol=1e-7)


def wrong_gradient(x):
    return float(x @ x), -2.0 * x  # points uphill: no step along -g decreases f


@pytest.mark.parametrize("name", [
    "lbfgs", "gd"])
def test_no_progress_is_status_2(name):
    res = so.minimize(wrong_gradient, np.array([1.0, 2.0]), jac=True, method=METHODS[name])
    assert res.status == 2 and res.success is False, res.message
    np.testing.assert_array_equal(res.x, [1.0, 2.0])
    assert res.nfev < 200


@pytest.mark.parametrize("name", sorted(METHODS))
def test_maxiter(name):
    seen = []
    res = so.minimize(quad, np.zeros(5), jac=True, method=METHODS[name],
                      callback=seen.append, options={"maxiter": 7, "gtol": 1e-12})
    assert res.status == 1 and res.success is False
    assert "iterations" in res.message
    assert res.nit == 7 == len(seen)
    assert res.fun == pytest.approx(quad_value(res.x), rel=1e-12)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_maxfun(name):
    fun = Counted(quad)
    res = so.minimize(fun, np.zeros(5), jac=True, method=METHODS[name],
                      options={"maxfun": 9, "gtol": 1e-12})
    assert res.status == 1 and res.success is False
    assert "evaluations" in res.message
    assert res.nfev == fun.calls == 9  # the limit is checked before each evaluation
    assert res.fun == pytest.approx(quad_value(res.x), rel=1e-12)


@pytest.mark.parametrize("name", SOME)
def test_tol_sets_gtol(name):
    method = METHODS[name]
    loose = so.minimize(quad, np.zeros(5), jac=True, method=method, tol=1e-2,
                        options={"ftol": 0.0})
    tight = so.minimize(quad, np.zeros(5), jac=True, method=method, tol=1e-7,
                        options={"ftol": 0.0})
    for res, tol in ((loose, 1e-2), (tight, 1e-7)):
        assert res.status == 0, res.message
        assert np.max(np.abs(quad_grad(res.x))) <= tol
    assert loose.nit < tight.nit
    assert np.max(np.abs(quad_grad(loose.x))) > 1e-7
    # gd.minimize: tol too; an explicit gtol wins.
    res = gd.minimize(quad, np.zeros(5), jac=True, method=method, tol=1e-2,
                      options={"ftol": 0.0})
    assert res.nit == loose.nit
    res = gd.minimize(quad, np.zeros(5), jac=True, method=method, tol=1e-2,
                      options={"gtol": 1e-7, "ftol": 0.0})
    assert res.nit == tight.nit


@pytest.mark.parametrize("name", ["sgd", "gd", "lbfgs"])
def test_ftol(name):
    res = so.minimize(quad, np.zeros(5), jac=True, method=METHODS[name],
                      options={"ftol": 1e-3, "gtol": 0.0})
    assert res.status == 0 and "reduction of f" in res.message.lower(), res.message
    assert np.max(np.abs(quad_grad(res.x))) > 1e-8  # stopped before the gradient vanished
    full = so.minimize(quad, np.zeros(5), jac=True, method=METHODS[name],
                       options={"ftol": 0.0, "gtol": 1e-8})
    assert res.nit < full.nit


# Options -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(METHODS))
def test_unknown_options(name):
    """Every unknown option is ignored with a warning, as SciPy's own methods do; a
    near-miss names the option meant."""
    with pytest.warns(RuntimeWarning, match="'gtoll'.*'gtol'"):
        res = so.minimize(quad, np.zeros(5), jac=True, method=METHODS[name],
                          options={"gtoll": 1e-3, "maxiter": 3})
    assert res.nit <= 3
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        res = so.minimize(quad, np.zeros(5), jac=True, method=METHODS[name],
                          options={"foo": 1, "iprint": -1, "disp": False, "maxiter": 3})
    assert all(issubclass(w.category, RuntimeWarning) for w in record)
    assert sorted(str(w.message) for w in record) == [
        "unknown option 'foo' ignored", "unknown option 'iprint' ignored"]
    assert record[0].filename == __file__  # the warning points at the caller
    assert res.nit <= 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        so.minimize(quad, np.zeros(5), jac=True, method=METHODS[name],
                    options={"disp": True, "return_all": False, "maxiter": 3}, tol=1e-3)


def test_misspelled_hyperparameter_warns():
    with pytest.warns(RuntimeWarning, match="learning_rate"):
        gd.minimize(quad, np.zeros(5), jac=True, method="adam",
                    options={"learning_rat": 0.1, "maxiter": 3})


# (method object, option, the factory call the message must suggest)
HYPERPARAMETER_OPTIONS = [
    (gd.adam(), "learning_rate", "gd.adam(learning_rate=0.05)"),
    (gd.adam(), "lr", "gd.adam(learning_rate=0.05)"),
    (gd.adam(), "b1", "gd.adam(b1=0.05)"),
    (gd.sgd(0.1), "momentum", "gd.sgd(momentum=0.05)"),
    (gd.adamw(), "learning_rate_init", "gd.adamw(learning_rate=0.05)"),
    (gd.rmsprop(), "clip_norm", "gd.rmsprop(clip_norm=0.05)"),
    (gd.lbfgs(), "m", "gd.lbfgs(m=0.05)"),
    (gd.gd(), "learning_rate", "gd.gd(learning_rate=0.05)"),
    (gd.gd(0.1), "c1", "gd.gd(c1=0.05)"),
]


@pytest.mark.parametrize("method, key, suggestion", HYPERPARAMETER_OPTIONS,
                         ids=[f"{s.split('(')[0]}-{k}" for _, k, s in HYPERPARAMETER_OPTIONS])
@pytest.mark.parametrize("entry", ["scipy", "gd.minimize"])
def test_hyperparameter_options_of_a_method_object_are_refused(method, key, suggestion,
                                                              entry):
    """The object's settings are fixed: options naming them would be ignored, so they
    are refused, with what to write instead."""
    minimize = so.minimize if entry == "scipy" else gd.minimize
    with pytest.raises(ValueError, match=rf"option {key!r}.*method=" + re.escape(suggestion)):
        minimize(quad, np.zeros(5), jac=True, method=method, options={key: 0.05})


def test_hyperparameter_options_of_another_method_are_unknown():
    with pytest.warns(RuntimeWarning, match="unknown option 'momentum' ignored"):
        so.minimize(quad, np.zeros(5), jac=True, method=gd.adam(), options={"momentum": 0.9,
                                                                            "maxiter": 2})
    with pytest.warns(RuntimeWarning, match="unknown option 'learning_rate' ignored"):
        gd.minimize(quad, np.zeros(5), jac=True, method="lbfgs",
                    options={"learning_rate": 0.1, "maxiter": 2})


def test_aliases_by_name_give_the_gdcore_spelling():
    with pytest.raises(ValueError, match="'lr' is spelled 'learning_rate'"):
        gd.minimize(quad, np.zeros(5), jac=True, method="adam", options={"lr": 0.05})
    with pytest.raises(ValueError, match="'beta1' is spelled 'b1'"):
        gd.minimize(quad, np.zeros(5), jac=True, method="adam", options={"beta1": 0.5})


@pytest.mark.parametrize("name, call", [("lbfgs", "gd.lbfgs()"), ("gd", "gd.gd()"),
                                        ("adam", "gd.adam()"), ("nadam", "gd.nadam()"),
                                        ("sgd", "gd.sgd(learning_rate=...)")])
def test_a_factory_passed_as_the_method_says_to_call_it(name, call):
    factory = getattr(gd, name)
    with pytest.raises(TypeError, match=rf"method=gd.{name} is the factory.*method="
                       + re.escape(call) + f".*method='{name}'"):
        gd.minimize(quad, np.zeros(5), jac=True, method=factory)
    # Called by SciPy, the factory itself explains.
    with pytest.raises(TypeError, match=rf"method=gd.{name} is the factory.*method="
                       + re.escape(call)):
        so.minimize(quad, np.zeros(5), jac=True, method=factory)
    # Called as a factory, it still is one.
    made = factory(0.1) if name == "sgd" else factory()
    methods = importlib.import_module("gdcore.minimize").METHODS
    assert made == (methods[name](0.1) if name == "sgd" else methods[name]())
    assert factory.__name__ == name
    assert list(inspect.signature(factory).parameters)[0] in ("m", "learning_rate")


def test_minimize_by_name():
    for name, obj in [("adam", gd.adam(0.05, b1=0.8)), ("sgd", gd.sgd(0.1, momentum=0.5)),
                      ("gd", gd.gd(0.1)), ("lbfgs", gd.lbfgs(m=4))]:
        hyper = {"adam": {"learning_rate": 0.05, "b1": 0.8},
                 "sgd": {"learning_rate": 0.1, "momentum": 0.5},
                 "gd": {"learning_rate": 0.1}, "lbfgs": {"m": 4}}[name]
        a = gd.minimize(quad, np.zeros(5), jac=True, method=name.upper(),
                        options=dict(hyper, gtol=1e-6))
        b = so.minimize(quad, np.zeros(5), jac=True, method=obj, options={"gtol": 1e-6})
        assert a.success and (a.nit, a.nfev) == (b.nit, b.nfev)
        np.testing.assert_array_equal(a.x, b.x)
    # The hyperparameters are used: another rate, another run.
    a = gd.minimize(quad, np.zeros(5), jac=True, method="adam", options={"learning_rate": 0.05})
    b = gd.minimize(quad, np.zeros(5), jac=True, method="adam", options={"learning_rate": 0.1})
    assert a.nit != b.nit
    # The default method is lbfgs.
    a = gd.minimize(rosen_fg, np.array([-1.2, 1.0]), jac=True)
    b = gd.lbfgs()(rosen_fg, np.array([-1.2, 1.0]), jac=True)
    assert (a.nit, a.nfev) == (b.nit, b.nfev) and a.success
    with pytest.raises(ValueError, match="unknown method"):
        gd.minimize(quad, np.zeros(5), jac=True, method="bfgs")
    with pytest.raises(TypeError, match="method"):
        gd.minimize(quad, np.zeros(5), jac=True, method=3)


def test_basinhopping():
    def fun(x):
        fun.calls += 1
        return (float(np.cos(14.5 * x[0] - 0.3) + (x[0] + 0.2) * x[0]),
                np.array([-14.5 * np.sin(14.5 * x[0] - 0.3) + 2.0 * x[0] + 0.2]))

    fun.calls = 0
    res = so.basinhopping(fun, np.array([1.0]), niter=50, rng=np.random.default_rng(0),
                          minimizer_kwargs={"method": gd.lbfgs(), "jac": True})
    np.testing.assert_allclose(res.x, [-0.195], atol=1e-3)  # the global minimum
    assert res.fun == pytest.approx(-1.0008761844, abs=1e-8)
    assert res.lowest_optimization_result.success
    assert res.nfev == fun.calls  # each local run's nfev is right, MemoizeJac unwrapped


# Mini-batch objectives -----------------------------------------------------------------------
def record_batches(n_samples, batch_size, seed, epochs):
    steps = epochs * -(-n_samples // min(batch_size, n_samples))

    def fun(x, batch):
        return float(np.sum(x)), np.ones_like(x)

    counted = Counted(fun)
    res = gd.minimize(counted, np.zeros(2), jac=True, method="sgd",
                      options={"learning_rate": 1e-3, "n_samples": n_samples,
                               "batch_size": batch_size, "seed": seed, "maxiter": steps - 1})
    assert res.status == 1 and res.nfev == counted.calls == steps
    return [kw["batch"] for kw in counted.kwargs]


@settings(max_examples=40)
@given(n_samples=st.integers(1, 60), batch_size=st.integers(1, 70),
       seed=st.integers(0, 2**32 - 1))
def test_mini_batches_cover_every_sample_once_per_epoch(n_samples, batch_size, seed):
    batches = record_batches(n_samples, batch_size, seed, epochs=3)
    size = min(batch_size, n_samples)
    per_epoch = -(-n_samples // size)
    for e in range(3):
        epoch = batches[e * per_epoch:(e + 1) * per_epoch]
        for idx in epoch[:-1]:
            assert len(idx) == size
        assert 1 <= len(epoch[-1]) <= size
        assert np.asarray(epoch[0]).dtype.kind in "iu"
        np.testing.assert_array_equal(np.sort(np.concatenate(epoch)), np.arange(n_samples))


def test_mini_batches_shuffle_by_seed():
    a = np.concatenate(record_batches(50, 8, seed=0, epochs=2))
    b = np.concatenate(record_batches(50, 8, seed=0, epochs=2))
    c = np.concatenate(record_batches(50, 8, seed=1, epochs=2))
    np.testing.assert_array_equal(a, b)  # same seed, same order
    assert not np.array_equal(a, c)  # the seed matters
    assert not np.array_equal(a[:50], np.arange(50))  # shuffled
    assert not np.array_equal(a[:50], a[50:])  # reshuffled every epoch
    with pytest.raises(ValueError, match="batch_size"):
        gd.minimize(quad, np.zeros(5), jac=True, method="sgd",
                    options={"learning_rate": 0.1, "n_samples": 10})


def test_sgd_mini_batches_least_squares():
    rng = np.random.default_rng(1)
    n, d = 200, 4
    X = rng.standard_normal((n, d))
    y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.01 * rng.standard_normal(n)

    def loss(w, X, y, batch):
        Xb, yb = X[batch], y[batch]
        r = Xb @ w - yb
        return 0.5 * float(r @ r) / len(yb), Xb.T @ r / len(yb)

    fun = Counted(loss)
    res = so.minimize(fun, np.zeros(d), args=(X, y), jac=True, method=gd.sgd(0.05),
                      options={"n_samples": n, "batch_size": 16, "seed": 0, "maxiter": 1500,
                               "gtol": 0.0})
    assert res.nit == 1500 and res.nfev == fun.calls
    assert all(len(kw["batch"]) <= 16 for kw in fun.kwargs)
    w_star = np.linalg.lstsq(X, y, rcond=None)[0]
    assert np.max(np.abs(res.x - w_star)) <= 5e-3  # from 3.0 at x0


# Agreement with SciPy's semantics ---------------------------------------------------------------
def test_njev_counts_gradients_with_jac_true():
    ref = so.minimize(quad, np.zeros(5), jac=True, method="L-BFGS-B")
    assert ref.njev == ref.nfev
    res = so.minimize(quad, np.zeros(5), jac=True, method=gd.lbfgs())
    assert res.njev == res.nfev


@pytest.mark.parametrize("name", SOME)
def test_fun_may_keep_its_argument(name):
    kept, copies = [], []

    def fun(x):
        kept.append(x)
        copies.append(x.copy())
        return quad(x)

    res = so.minimize(fun, np.zeros(5), jac=True, method=METHODS[name], options={"maxiter": 5})
    for a, b in zip(kept, copies):
        np.testing.assert_array_equal(a, b)
    assert not any(np.shares_memory(res.x, a) for a in kept)


@pytest.mark.parametrize("name", SOME)
def test_finite_differences_stay_inside_bounds(name):
    outside = []

    def fun(x):
        if np.any(x > 1.0) or np.any(x < -5.0):
            outside.append(x.copy())
            return np.nan
        return float(np.sum((x - 3.0) ** 2))

    res = METHODS[name](fun, np.zeros(2), bounds=[(-5.0, 1.0)] * 2, gtol=1e-6)
    assert not outside
    np.testing.assert_allclose(res.x, 1.0, atol=1e-8)


# Interruption ----------------------------------------------------------------------------------
class InterruptAt:
    """``quad``, except that call number ``k`` raises KeyboardInterrupt (as Ctrl-C would)."""

    def __init__(self, k):
        self.k = k
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        if self.calls == self.k:
            raise KeyboardInterrupt
        return quad(x)


def assert_interrupted(res):
    assert res.status == 130 and res.success is False, res.message
    assert "interrupted" in res.message.lower()


@pytest.mark.parametrize("name", SOME + ("sgd",))
@pytest.mark.parametrize("k", [2, 7, 15])
def test_keyboard_interrupt_in_fun_returns_the_last_accepted_iterate(name, k):
    method = METHODS[name]
    options = {"gtol": 0.0, "ftol": 0.0}
    fun = InterruptAt(k)
    res = no_escape(lambda: so.minimize(fun, np.zeros(5), jac=True, method=method,
                                        options=options))
    assert_interrupted(res)
    assert res.nfev == fun.calls == k  # the interrupted call counts
    f, g = quad(res.x)
    assert res.fun == f
    np.testing.assert_array_equal(res.jac, g)
    if res.nit == 0:
        np.testing.assert_array_equal(res.x, 0.0)
    else:  # the iterate an uninterrupted run reaches after as many iterations
        ref = so.minimize(quad, np.zeros(5), jac=True, method=method,
                          options=dict(options, maxiter=res.nit))
        assert ref.nit == res.nit
        np.testing.assert_array_equal(res.x, ref.x)
        assert res.fun == ref.fun


@pytest.mark.parametrize("name", SOME)
def test_keyboard_interrupt_at_x0(name):
    res = no_escape(lambda: gd.minimize(InterruptAt(1), np.arange(5.0), jac=True,
                                        method=METHODS[name]))
    assert_interrupted(res)
    np.testing.assert_array_equal(res.x, np.arange(5.0))
    assert np.isnan(res.fun) and np.all(np.isnan(res.jac))
    assert (res.nit, res.nfev) == (0, 1)


@pytest.mark.parametrize("name", SOME)
def test_keyboard_interrupt_in_the_callback(name):
    seen = []

    def callback(xk):
        seen.append(xk.copy())
        if len(seen) == 3:
            raise KeyboardInterrupt

    res = no_escape(lambda: so.minimize(quad, np.zeros(5), jac=True, method=METHODS[name],
                                        callback=callback))
    assert_interrupted(res)
    assert res.nit == 3
    np.testing.assert_array_equal(res.x, seen[-1])
    assert res.fun == quad_value(res.x)


@pytest.mark.parametrize("name", SOME)
def test_sigint_during_a_slow_python_objective(name, default_sigint):
    """A real Ctrl-C stops the objective at once; the run returns its last iterate."""
    def slow(x):
        time.sleep(0.01)
        return rosen_fg(x)

    x0 = np.tile([-1.2, 1.0], 5)
    res, latency = run_with_sigint(lambda: so.minimize(
        slow, x0, jac=True, method=METHODS[name], options={"gtol": 0.0, "maxiter": 10**6}),
        0.5)
    print(f"{name}: returned {latency:.3f} s after SIGINT, nit {res.nit}")
    assert_interrupted(res)
    assert res.nit > 0
    assert res.fun == so.rosen(res.x)
    np.testing.assert_array_equal(res.jac, so.rosen_der(res.x))


def test_another_sigint_handler_is_left_alone():
    hits = []
    handlers = []

    def handler(signum, frame):
        hits.append(signum)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        res = so.minimize(quad, np.zeros(5), jac=True, method=gd.adam(0.1),
                          callback=lambda xk: handlers.append(signal.getsignal(signal.SIGINT)),
                          options={"maxiter": 3})
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, previous)
    assert res.nit == 3 and handlers == [handler] * 3


def test_the_default_handler_is_replaced_only_during_the_run(default_sigint):
    during = []
    so.minimize(quad, np.zeros(5), jac=True, method=gd.lbfgs(), options={"maxiter": 2},
                callback=lambda xk: during.append(signal.getsignal(signal.SIGINT)))
    assert len(during) == 2
    assert all(h is not signal.default_int_handler and callable(h) for h in during)
    # The fixture checks that the default handler is back.


def test_keyboard_interrupt_in_another_thread():
    """Threads get no signal handler (only the main thread may install one), and a
    KeyboardInterrupt from their objective is still an interruption."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        res = no_escape(pool.submit(so.minimize, InterruptAt(7), np.zeros(5), jac=True,
                                    method=gd.lbfgs()).result)
    assert_interrupted(res)
    assert res.nfev == 7 and res.fun == quad_value(res.x)
