"""The options of gdcore's SciPy methods: none silently ignored.

SciPy's names keep SciPy's meanings (L-BFGS-B's ``maxcor``, ``maxls``,
``maxfun``, ``eps``, ``finite_diff_rel_step``; Nelder-Mead's ``maxfev``;
BFGS's ``disp`` summary and ``return_all``); anything else warns with a
warning that filters on ``RuntimeWarning`` or SciPy's ``OptimizeWarning``
catch.  ``fun`` in the result is a Python float from every method, with
Python and Numba objectives.
"""

import importlib
import re
import warnings

import numba
import numpy as np
import pytest
import scipy.optimize as so
from scipy.optimize import OptimizeWarning

import gdcore as gd
from gdcore import drivers
from test_minimize import METHODS as ALL_METHODS
from test_minimize import SOME, Counted, quad, quad_value, rosen_fg

minimize = importlib.import_module("gdcore.minimize")  # the module, not gd.minimize


@numba.njit(cache=True)
def quad_numba(x):
    r = x - 1.5
    return 0.5 * np.sum(r * r), r


# One method of each driver: line search, Armijo, update rule (Python and compiled).
METHODS = {name: ALL_METHODS[name] for name in ("lbfgs", "gd", "adam", "sgd")}


# maxfun / maxfev -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("key", ["maxfun", "maxfev"])
def test_maxfev_is_the_evaluation_limit(name, key):
    fun = Counted(quad)
    res = so.minimize(fun, np.zeros(5), jac=True, method=METHODS[name],
                      options={key: 7, "gtol": 1e-12})
    assert res.status == 1 and "evaluations" in res.message
    assert res.nfev == fun.calls == 7  # checked before each evaluation: never passed
    assert res.fun == quad_value(res.x)
    both = so.minimize(quad, np.zeros(5), jac=True, method=METHODS[name],
                       options={"maxfun": 7, "maxfev": 7, "gtol": 1e-12})
    assert both.nfev == 7
    np.testing.assert_array_equal(both.x, res.x)


@pytest.mark.parametrize("name", SOME)
def test_maxfev_with_finite_differences(name):
    """The issue's case (45 calls for maxfev=7): one gradient costs several calls, so
    the run passes the limit by less than one gradient's calls."""
    n = 5
    fun = Counted(quad_value)
    res = so.minimize(fun, np.zeros(n), method=METHODS[name],
                      options={"maxfev": 7, "gtol": 1e-12})
    assert res.status == 1
    assert res.nfev == fun.calls
    assert 7 <= res.nfev <= 6 + (n + 2)
    named = gd.minimize(quad_value, np.zeros(n), method=name,
                        options={"maxfev": 7, "gtol": 1e-12})
    assert named.status == 1 and named.nfev <= 6 + (n + 2)


def test_maxfun_and_maxfev_that_disagree_are_refused():
    with pytest.raises(ValueError, match="maxfun=7 and maxfev=9"):
        so.minimize(quad, np.zeros(5), jac=True, method=gd.lbfgs(),
                    options={"maxfun": 7, "maxfev": 9})
    with pytest.raises(ValueError, match="maxfev must be > 0"):
        gd.minimize(quad, np.zeros(5), jac=True, method="adam", options={"maxfev": 0})
    with pytest.raises(TypeError, match="maxfev"):
        so.minimize(quad, np.zeros(5), jac=True, method=gd.gd(), options={"maxfev": 2.5})
    # None is no limit, as when the option is absent.
    res = so.minimize(quad, np.zeros(5), jac=True, method=gd.lbfgs(),
                      options={"maxfun": None, "maxfev": 50})
    assert res.success


# maxcor and maxls (gd.lbfgs only) ------------------------------------------------------------
def test_maxcor_is_the_memory_of_the_run():
    x0 = np.tile([-1.2, 1.0], 5)
    options = {"gtol": 1e-10, "ftol": 0.0}
    by_option = so.minimize(rosen_fg, x0, jac=True, method=gd.lbfgs(),
                            options=dict(options, maxcor=3))
    by_object = so.minimize(rosen_fg, x0, jac=True, method=gd.lbfgs(m=3), options=options)
    default = so.minimize(rosen_fg, x0, jac=True, method=gd.lbfgs(), options=options)
    assert (by_option.nit, by_option.nfev) == (by_object.nit, by_object.nfev)
    np.testing.assert_array_equal(by_option.x, by_object.x)
    assert by_option.nit != default.nit
    # maxcor overrides the object's m for that run only.
    wide = so.minimize(rosen_fg, x0, jac=True, method=gd.lbfgs(m=3),
                       options=dict(options, maxcor=10))
    assert (wide.nit, wide.nfev) == (default.nit, default.nfev)
    # By name: maxcor is honoured, and m and maxcor must agree.
    named = gd.minimize(rosen_fg, x0, jac=True, method="lbfgs", options=dict(options, maxcor=3))
    assert (named.nit, named.nfev) == (by_object.nit, by_object.nfev)
    named = gd.minimize(rosen_fg, x0, jac=True, method="lbfgs",
                        options=dict(options, maxcor=3, m=3))
    assert (named.nit, named.nfev) == (by_object.nit, by_object.nfev)
    with pytest.raises(ValueError, match="m=3 and maxcor=5"):
        gd.minimize(rosen_fg, x0, jac=True, method="lbfgs", options={"m": 3, "maxcor": 5})
    # m itself stays a hyperparameter of the object.
    with pytest.raises(ValueError, match=re.escape("gd.lbfgs(m=3)")):
        so.minimize(rosen_fg, x0, jac=True, method=gd.lbfgs(), options={"m": 3})


@pytest.mark.parametrize("key", ["maxcor", "maxls"])
@pytest.mark.parametrize("value, error", [(0, ValueError), (-2, ValueError), (2.5, TypeError),
                                          (True, TypeError), ("5", TypeError)])
def test_maxcor_and_maxls_validation(key, value, error):
    with pytest.raises(error, match=f"{key} must"):
        so.minimize(quad, np.zeros(5), jac=True, method=gd.lbfgs(), options={key: value})


def steep(x):
    """A bowl whose minimum is 1e-3 from x0 = 0 along a gradient of size 0.1: the first
    line search (steepest descent, no curvature pairs yet) needs about ten trials."""
    r = x - 1e-3
    return float(np.sum(np.cosh(50.0 * r))), 50.0 * np.sinh(50.0 * r)


@pytest.mark.parametrize("maxls", [1, 2, 4])
def test_maxls_bounds_one_line_search(maxls):
    def first_search(options):
        fun = Counted(steep)
        seen = []
        res = so.minimize(fun, np.zeros(2), jac=True, method=gd.lbfgs(), options=options,
                          callback=lambda xk: seen.append(fun.calls))
        return (seen[0] if seen else res.nfev) - 1, res

    default, res = first_search({})
    assert res.success and default > 4
    limited, res = first_search({"maxls": maxls})
    assert 1 <= limited <= maxls


@pytest.mark.parametrize("name", ["gd", "adam"])
def test_lbfgs_options_warn_for_other_methods(name):
    for key in ("maxcor", "maxls"):
        with pytest.warns(RuntimeWarning, match=f"unknown option {key!r} ignored"):
            so.minimize(quad, np.zeros(5), jac=True, method=METHODS[name],
                        options={key: 3, "maxiter": 2})


# eps and finite_diff_rel_step ----------------------------------------------------------------
@pytest.fixture
def objective_steps(monkeypatch):
    """The finite-difference steps each run gives its Objective."""
    seen = []
    original = drivers.Objective

    def spy(fun, jac, args, **steps):
        seen.append(steps)
        return original(fun, jac, args, **steps)

    monkeypatch.setattr(drivers, "Objective", spy)
    return seen


@pytest.mark.parametrize("name", SOME)
@pytest.mark.parametrize("entry", ["scipy", "gd.minimize"])
def test_eps_is_the_step_of_jac_none(name, entry, objective_steps):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # A method object: adam's own eps is fixed in it, so eps is the step.
        minimize_ = so.minimize if entry == "scipy" else gd.minimize
        minimize_(quad_value, np.zeros(5), method=METHODS[name],
                  options={"eps": 1e-3, "maxiter": 2})
        if name != "adam":  # by name too (adam's name takes eps as its hyperparameter)
            gd.minimize(quad_value, np.zeros(5), method=name,
                        options={"eps": 1e-3, "maxiter": 2})
    assert objective_steps == [{"eps": 1e-3}] * (1 if name == "adam" else 2)
    # One step per variable.
    steps = np.geomspace(1e-9, 1e-5, 5)
    so.minimize(quad_value, np.zeros(5), method=METHODS[name],
                options={"eps": steps, "maxiter": 2})
    np.testing.assert_array_equal(objective_steps[-1]["eps"], steps)


@pytest.mark.parametrize("name", SOME)
@pytest.mark.parametrize("jac", ["2-point", "3-point"])
def test_finite_diff_rel_step_is_the_step_of_2_and_3_point(name, jac, objective_steps):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gd.minimize(quad_value, np.zeros(5), jac=jac, method=METHODS[name],
                    options={"finite_diff_rel_step": 1e-4, "maxiter": 2})
    assert objective_steps == [{"rel_step": 1e-4}]


def test_by_name_the_hyperparameter_eps_wins(objective_steps):
    a = gd.minimize(quad, np.zeros(5), jac=True, method="adam",
                    options={"learning_rate": 0.1, "eps": 1e-2, "maxiter": 50})
    b = so.minimize(quad, np.zeros(5), jac=True, method=gd.adam(0.1, eps=1e-2),
                    options={"maxiter": 50})
    c = so.minimize(quad, np.zeros(5), jac=True, method=gd.adam(0.1), options={"maxiter": 50})
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)
    assert objective_steps == [{}, {}, {}]


@pytest.mark.parametrize("name", SOME)
@pytest.mark.parametrize("key", ["eps", "finite_diff_rel_step"])
@pytest.mark.parametrize("jac", [True, "callable"])
def test_steps_without_finite_differences_warn(name, key, jac, objective_steps):
    fun, jac = (quad, True) if jac is True else (quad_value, lambda x: quad(x)[1])
    with pytest.warns(RuntimeWarning, match=f"option {key!r} has no effect: the gradient "
                      "comes from jac") as record:
        res = so.minimize(fun, np.zeros(5), jac=jac, method=METHODS[name],
                          options={key: 1e-3, "maxiter": 2})
    assert res.nit == 2
    assert objective_steps == [{}]
    assert record[0].filename == __file__
    assert issubclass(record[0].category, OptimizeWarning)
    if name == "adam" and key == "eps":  # not adam's own eps: say where that is set
        assert re.search(r"adam's own eps is set with method=gd\.adam\(eps=\.\.\.\)",
                         str(record[0].message))


def test_a_step_for_the_other_finite_differences_warns(objective_steps):
    with pytest.warns(RuntimeWarning, match="'eps' has no effect with jac='3-point'.*"
                      "finite_diff_rel_step"):
        gd.minimize(quad_value, np.zeros(5), jac="3-point", options={"eps": 1e-3,
                                                                     "maxiter": 2})
    # Through SciPy, '3-point' arrives as jac=None: the relative step says so.
    with pytest.warns(RuntimeWarning, match="'finite_diff_rel_step' has no effect with "
                      "jac=None.*gd.minimize"):
        so.minimize(quad_value, np.zeros(5), jac="3-point", method=gd.lbfgs(),
                    options={"finite_diff_rel_step": 1e-4, "maxiter": 2})
    assert objective_steps == [{}, {}]


@pytest.mark.parametrize("key", ["eps", "finite_diff_rel_step"])
@pytest.mark.parametrize("value", [0.0, -1e-8, np.inf, np.nan, "small", np.ones(3),
                                   np.array([1e-8, 1e-8, 1e-8, 1e-8, 0.0])])
def test_step_validation(key, value):
    with pytest.raises(ValueError, match=f"{key} must be a finite number > 0 or an array "
                       "of 5"):
        gd.minimize(quad_value, np.zeros(5), jac="2-point", options={key: value})


def test_scipy_hands_a_custom_method_jac_none_for_3_point():
    """What the docstrings warn of: SciPy replaces '2-point'/'3-point' by None."""
    seen = []

    def method(fun, x0, jac=None, **kwargs):
        seen.append(jac)
        return gd.lbfgs()(fun, x0, jac=jac, **kwargs)

    so.minimize(quad_value, np.zeros(5), jac="3-point", method=method)
    assert seen == [None]
    assert "jac=None" in minimize.__doc__ and "'3-point'" in minimize.__doc__


# disp ----------------------------------------------------------------------------------------
def summary(text):
    """The summary's lines, numbers blanked."""
    return [re.sub(r"-?\d+(\.\d+)?", "#", line) for line in text.splitlines()[1:]]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_disp_prints_bfgs_summary(name, capsys):
    so.minimize(quad_value, np.zeros(5), method="BFGS", options={"disp": True})
    scipy_lines = summary(capsys.readouterr().out)
    assert len(scipy_lines) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DeprecationWarning as L-BFGS-B's disp gives
        res = so.minimize(quad, np.zeros(5), jac=True, method=METHODS[name],
                          options={"disp": True, "maxiter": 40})
    out = capsys.readouterr().out
    assert out.splitlines()[0] == res.message
    assert summary(out) == scipy_lines
    assert out.splitlines()[1:] == [
        f"         Current function value: {res.fun:f}",
        f"         Iterations: {res.nit}",
        f"         Function evaluations: {res.nfev}",
        f"         Gradient evaluations: {res.njev}"]
    for off in (False, 0, None):
        so.minimize(quad, np.zeros(5), jac=True, method=METHODS[name],
                    options={"disp": off, "maxiter": 40})
        assert capsys.readouterr().out == ""


# return_all ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_return_all_gives_the_iterates(name, dtype):
    x0 = np.zeros(5, dtype=dtype)
    seen = []
    res = so.minimize(quad, x0, jac=True, method=METHODS[name], callback=seen.append,
                      options={"return_all": True, "maxiter": 30})
    assert len(res.allvecs) == res.nit + 1 == len(seen) + 1
    np.testing.assert_array_equal(res.allvecs[0], x0)
    for got, want in zip(res.allvecs[1:], seen):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(res.allvecs[-1], res.x)
    assert all(v.dtype == dtype and v.shape == (5,) for v in res.allvecs)
    assert len({id(v) for v in res.allvecs}) == len(res.allvecs)  # copies
    assert res.allvecs[-1] is not res.x
    # Without the option there is no allvecs, as with SciPy's BFGS.
    res = so.minimize(quad, x0, jac=True, method=METHODS[name],
                      options={"return_all": False, "maxiter": 30})
    assert "allvecs" not in res


def test_return_all_with_bounds_starts_from_the_projected_x0():
    res = so.minimize(quad, np.full(5, 5.0), jac=True, method=gd.lbfgs(),
                      bounds=[(-1.0, 1.0)] * 5, options={"return_all": True})
    np.testing.assert_array_equal(res.allvecs[0], np.ones(5))
    assert all(np.all(np.abs(v) <= 1.0) for v in res.allvecs)


@pytest.mark.parametrize("name", ["lbfgs", "adam"])
def test_return_all_with_a_numba_objective(name):
    """The compiled loops cannot record iterates: such a run takes the Python path."""
    x0 = np.zeros(4)
    fast = so.minimize(quad_numba, x0, jac=True, method=METHODS[name])
    res = so.minimize(quad_numba, x0, jac=True, method=METHODS[name],
                      options={"return_all": True})
    seen = []
    so.minimize(quad_numba, x0, jac=True, method=METHODS[name], callback=seen.append)
    assert res.success and fast.success
    np.testing.assert_allclose(res.x, fast.x, rtol=1e-12, atol=1e-15)
    assert len(res.allvecs) == res.nit + 1 == len(seen) + 1
    np.testing.assert_array_equal(res.allvecs[0], x0)
    for got, want in zip(res.allvecs[1:], seen):
        np.testing.assert_array_equal(got, want)


# fun is a float ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SOME)
@pytest.mark.parametrize("objective", ["python", "numba"])
@pytest.mark.parametrize("options", [{}, {"maxiter": 3}], ids=["converged", "limit"])
def test_fun_is_a_python_float(name, objective, options):
    fun = quad_numba if objective == "numba" else (lambda x: quad_numba(x))
    res = so.minimize(fun, np.zeros(4), jac=True, method=METHODS[name], options=options)
    assert type(res.fun) is float
    lbfgsb = so.minimize(fun, np.zeros(4), jac=True, method="L-BFGS-B")
    assert type(lbfgsb.fun) is type(res.fun)
    res = gd.minimize(fun, np.zeros(4, dtype=np.float32), jac=True, method=name,
                      options=options)
    assert type(res.fun) is float


# Unknown options -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", SOME)
def test_unknown_options_warn_as_scipy_and_as_before(name):
    """SciPy warns OptimizeWarning for unknown options, gdcore warned RuntimeWarning:
    the warning is both, so either filter catches it."""
    for category in (OptimizeWarning, RuntimeWarning):
        with warnings.catch_warnings():
            warnings.simplefilter("error", category)
            with pytest.raises(category, match="unknown option 'workers' ignored"):
                so.minimize(quad, np.zeros(5), jac=True, method=METHODS[name],
                            options={"workers": 2})
    with pytest.warns(minimize.OptionWarning, match="'iprint'") as record:
        so.minimize(quad, np.zeros(5), jac=True, method=METHODS[name],
                    options={"iprint": 1, "maxiter": 2})
    assert record[0].filename == __file__
