"""Finite-difference gradients: the steps ``scipy.optimize.minimize`` takes for its own methods.

The reference is SciPy itself, through its public API: the points at which
L-BFGS-B and BFGS evaluate ``fun`` for their first gradient are recorded, and
gdcore's gradient must evaluate the same points, in the same order, and
divide by the same steps (bitwise, in float64: the same IEEE operations).
"""
import numpy as np
import pytest
import scipy.optimize as so

import gdcore as gd
from gdcore import differences
from gdcore.objective import Objective


def bumpy(x):
    return float(np.sum(np.sin(3 * x) * x ** 2) + np.prod(np.cos(x)) + 79.48)


class Recorder:
    """``fun`` that records every point it is called at."""

    def __init__(self, fun):
        self.fun, self.points = fun, []

    def __call__(self, x):
        self.points.append(np.array(x, copy=True))
        return self.fun(x)


def scipy_first_gradient(x0, jac, bounds=None, method="L-BFGS-B", **options):
    """The points SciPy evaluates for its first gradient, and that gradient."""
    rec = Recorder(bumpy)
    res = so.minimize(rec, x0, jac=jac, method=method, bounds=bounds,
                      options=dict(maxiter=1, **options))
    n_per = 2 if jac == "3-point" else 1
    return rec.points[:1 + n_per * x0.shape[0]], res


def gdcore_first_gradient(x0, jac, bounds=None, eps=None, rel_step=None):
    rec = Recorder(bumpy)
    objective = Objective(rec, jac, (), eps=eps, rel_step=rel_step)
    if bounds is not None:
        objective.bounds = tuple(np.array(b, dtype=float) for b in zip(*bounds))
    g = np.empty_like(x0)
    objective(x0.copy(), g)
    return rec.points, g, objective


def starting_points():
    rng = np.random.default_rng(7)
    for n in (1, 3, 6):
        x = rng.normal(size=n) * 10.0 ** rng.uniform(-9, 9, size=n)
        x[0] = 0.0  # a zero coordinate: the relative rules' max(1, |x|)
        yield x


@pytest.mark.parametrize("x0", list(starting_points()), ids=lambda x: f"n{x.shape[0]}")
@pytest.mark.parametrize("jac, options", [(None, {}), (None, {"eps": 1e-6}),
                                          ("2-point", {}),
                                          ("2-point", {"finite_diff_rel_step": 1e-5}),
                                          ("3-point", {})])
def test_same_points_and_gradient_as_lbfgsb(x0, jac, options):
    expected, _ = scipy_first_gradient(x0, jac, **options)
    points, g, objective = gdcore_first_gradient(
        x0, jac, eps=options.get("eps"), rel_step=options.get("finite_diff_rel_step"))
    assert len(points) == len(expected)  # f(x0) once, then the steps: no extra call
    for got, want in zip(points, expected):
        np.testing.assert_array_equal(got, want)
    # The gradient SciPy formed from those values: recompute it the SciPy way.
    f0 = bumpy(x0)
    if jac == "3-point":
        want = [(bumpy(expected[2 + 2 * i]) - bumpy(expected[1 + 2 * i]))
                / (expected[2 + 2 * i][i] - expected[1 + 2 * i][i]) for i in range(x0.shape[0])]
    else:
        want = [(bumpy(p) - f0) / (p[i] - x0[i]) for i, p in enumerate(expected[1:])]
    np.testing.assert_array_equal(g, want)
    assert objective.nfev == len(expected)
    if jac is None:  # and SciPy's public forward differences agree, bitwise
        np.testing.assert_array_equal(g, so.approx_fprime(x0, bumpy, options.get("eps", 1e-8)))


@pytest.mark.parametrize("jac", [None, "2-point", "3-point"])
def test_steps_stay_inside_bounds_as_scipy_takes_them(jac):
    # x0 at an upper bound, at a lower bound, between two close bounds, free.
    x0 = np.array([2.0, -1.0, 0.5, 3.0])
    bounds = [(0.0, 2.0), (-1.0, 5.0), (0.5 - 1e-9, 0.5 + 1e-9), (None, None)]
    expected, _ = scipy_first_gradient(x0, jac, bounds=bounds)
    points, _, _ = gdcore_first_gradient(x0, jac, bounds=bounds)
    assert len(points) == len(expected)
    for got, want in zip(points, expected):
        np.testing.assert_array_equal(got, want)
        lo = np.array([b[0] if b[0] is not None else -np.inf for b in bounds])
        hi = np.array([b[1] if b[1] is not None else np.inf for b in bounds])
        assert np.all((got >= lo) & (got <= hi))


def test_bfgs_three_point_points_match():
    x0 = np.array([0.0, 1.5, -2e3])
    expected, _ = scipy_first_gradient(x0, "3-point", method="BFGS")
    points, _, _ = gdcore_first_gradient(x0, "3-point")
    for got, want in zip(points, expected):
        np.testing.assert_array_equal(got, want)


def test_float32_steps_are_representable_and_accurate():
    # SciPy's absolute 1e-8 step vanishes in float32 wherever |x| > 0.2 (it would
    # report a zero gradient); gdcore's float32 default is the relative step.
    seen = []

    def fun(x):
        seen.append(x.dtype)
        return float(np.sum((x.astype(np.float64) - 1.3) ** 2))

    x = np.ones(3, dtype=np.float32)
    g = differences.gradient(fun, x, fun(x))
    assert set(seen) == {np.dtype(np.float32)}
    np.testing.assert_allclose(g, 2 * (1.0 - 1.3), rtol=1e-3)


def test_pinned_variable_gets_zero_and_no_evaluation():
    calls = []

    def fun(x):
        calls.append(x.copy())
        return float(np.sum(x ** 2))

    x = np.array([1.0, 2.0])
    g = differences.gradient(fun, x, fun(x), bounds=(np.array([1.0, 0.0]),
                                                     np.array([1.0, 5.0])))
    assert g[0] == 0.0 and abs(g[1] - 4.0) < 1e-6
    assert len(calls) == 2  # f(x) and the step of the free variable


def test_nonfinite_value_gives_nan_gradient_without_steps():
    calls = []
    g = differences.gradient(lambda x: calls.append(1) or 0.0, np.zeros(3), np.inf)
    assert np.isnan(g).all() and not calls


def test_issue_example_jac_none_reaches_the_target_like_lbfgsb():
    # f changes only in its last bits near the optimum (the offset), jac=None.
    c = np.array([1.5, -2.0])

    def f(x):
        return float(np.sum((x - c) ** 2) + 79.48)

    options = {"gtol": 1e-8, "ftol": 0}
    ref = so.minimize(f, np.zeros(2), method="L-BFGS-B", options=options)
    res = so.minimize(f, np.zeros(2), method=gd.lbfgs(), options=options)
    assert res.status == 0 and res.success, res.message
    assert res.nfev <= 1.2 * ref.nfev
    assert res.fun - 79.48 <= 1e-12
