"""gd.lbfgs near f's rounding floor: success where the minimum is reached, failure kept for
real failures.

Problems are the outside Moré-Garbow-Hillstrom set (``bench/_mgh.py``), plain and
with a constant added so that f changes only in its last bits near the optimum;
SciPy's L-BFGS-B runs beside gd.lbfgs on the same problems with the same options.
"""
import hashlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numba
import numpy as np
import pytest
import scipy.optimize as so

import gdcore as gd
from gdcore import differences
from gdcore.kernels import lbfgs as lb
from gdcore.objective import Objective

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import _mgh  # noqa: E402  (bench/ is a folder of scripts, not a package)

TIGHT = {"gtol": 1e-8, "ftol": 0, "maxiter": 20000, "maxfun": 50000}


def run(problem, method, jac=True, **options):
    fun = problem.fun_and_grad if jac else problem.fun
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflowing trial steps
        return so.minimize(fun, problem.x0, jac=jac, method=method, options=options)


# The problems whose f and gradient use only IEEE-exact arithmetic (no exp, sin,
# atan, no BLAS product; bench/_mgh.py sums with math.fsum): gd.lbfgs' iterates on
# them are then the same on every CPU, so the counts below cannot move with the
# machine.  The whole set, beside L-BFGS-B, is bench/bench_minimize.py's.
EXACT_ARITHMETIC = ["Rosenbrock", "Freudenstein-Roth", "Brown badly scaled", "Beale", "Bard",
                    "Powell singular", "Wood", "Kowalik-Osborne", "Extended Rosenbrock n=10",
                    "Extended Powell n=12", "Brown almost-linear n=10",
                    "Discrete boundary value n=10", "Broyden tridiagonal n=10", "Chebyquad n=8"]
# Not solved from x0, with why (L-BFGS-B does not solve them either):
UNSOLVED = {
    "Freudenstein-Roth": "every solver ends at the local minimum 48.98 from the standard x0",
    "Brown badly scaled": "jac=None only: x* = (1e6, 2e-6), and steps of max(1, |x|) "
                          "relative size cannot resolve the second variable",
}


@pytest.mark.parametrize("shift", [0.0, 79.48])
@pytest.mark.parametrize("jac", [True, None], ids=["exact", "jac=None"])
def test_success_wherever_the_minimum_is_reached(jac, shift):
    """Tight tolerances (gtol 1e-8, ftol 0) that the rounding of f or of the
    finite differences keeps out of reach: every run reaches f* but those
    :data:`UNSOLVED` names, and each that does reports success (L-BFGS-B ends
    Powell singular and Extended Powell with jac=None in status 2 there)."""
    unsolved, false_failures = set(), []
    for name in EXACT_ARITHMETIC:
        p = _mgh.by_name(name)
        p = _mgh.offset(p, shift) if shift else p
        res = run(p, gd.lbfgs(), jac, **TIGHT)
        if not _mgh.solved(p, res.fun):
            unsolved.add(name)
        elif res.status != 0:
            false_failures.append((name, res.status, res.message))
    assert not false_failures
    expected = {"Freudenstein-Roth"} | ({"Brown badly scaled"} if jac is None else set())
    assert unsolved == expected


def test_meyer_stops_at_the_floor_with_success():
    # Meyer's residuals are differences of numbers near 3e4: f jitters by 1e4 units
    # in the last place near the optimum, and gtol=1e-12 cannot be met.
    p = _mgh.by_name("Meyer")
    res = run(p, gd.lbfgs(), gtol=1e-12, ftol=0, maxiter=20000)
    assert res.status == 0, res.message
    assert "ROUNDING FLOOR" in res.message
    assert _mgh.solved(p, res.fun)


@numba.njit(cache=False)
def meyer_compiled(x, y):
    t = 45.0 + 5.0 * np.arange(1.0, 17.0)
    d = t + x[2]
    e = np.exp(x[1] / d)
    r = x[0] * e - y
    g = np.empty(3)
    g[0] = 2.0 * np.sum(r * e)
    g[1] = 2.0 * np.sum(r * x[0] * e / d)
    g[2] = 2.0 * np.sum(r * (-x[0] * x[1] * e / (d * d)))
    return np.sum(r * r), g


def test_compiled_objective_stops_at_the_floor_as_the_python_one():
    # The floor rule lives in the state machine, which the compiled loop shares.
    p = _mgh.by_name("Meyer")
    y = _mgh._MEYER_Y
    options = {"gtol": 1e-12, "ftol": 0, "maxiter": 20000}
    compiled = gd.minimize(meyer_compiled, p.x0, args=(y,), jac=True, method="lbfgs",
                           options=options)
    python = gd.minimize(lambda x, y: meyer_compiled(x, y), p.x0, args=(y,), jac=True,
                         method="lbfgs", options=options)
    assert compiled.status == python.status == 0, compiled.message
    assert "ROUNDING FLOOR" in compiled.message
    np.testing.assert_array_equal(compiled.x, python.x)
    assert compiled.nfev == python.nfev and compiled.nit == python.nit
    assert _mgh.solved(p, compiled.fun)


@pytest.mark.parametrize("wrong", ["negated", "biased"])
def test_a_wrong_gradient_still_fails(wrong):
    # Trials along a direction that is not a descent rise well above f(x) before
    # they shrink towards it: that is a failure, not the floor.
    def f(x):
        return float(np.sum((x - 1) ** 2) + 79.48)

    def jac(x):
        g = 2 * (x - 1)
        return -g if wrong == "negated" else g + np.array([5.0, 0.0, 0.0])

    res = so.minimize(f, np.zeros(3), jac=jac, method=gd.lbfgs(),
                      options={"gtol": 1e-10, "ftol": 0})
    assert res.status == 2 and not res.success


def test_forward_differences_refined_to_central_ones():
    # Helical valley, jac=None, gtol 1e-8: near f* = 0 the forward-difference
    # error (about 1e-8 |f''|) exceeds the gradient and no step decreases f;
    # central differences go on to the minimum.
    p = _mgh.by_name("Helical valley")
    res = so.minimize(p.fun, p.x0, method=gd.lbfgs(), options=TIGHT)
    assert res.status == 0, res.message
    assert _mgh.solved(p, res.fun)


@pytest.mark.parametrize("jac", [None, "2-point"])
def test_refine_climbs_to_central_then_to_steps_relative_to_x(jac):
    p = _mgh.by_name("Helical valley")
    x = p.x0 + 0.1
    f = p.fun(x)
    objective = Objective(p.fun, jac, ())
    assert objective.refinable()
    g = objective.refine(x, f)
    assert objective.jac == "3-point" and objective.refinable()
    np.testing.assert_array_equal(g, differences.gradient(p.fun, x, f, "3-point"))
    assert objective.nfev == 2 * x.shape[0]  # f(x) was given, not evaluated again
    g = objective.refine(x, f)
    r = np.finfo(np.float64).eps ** (1 / 3)
    np.testing.assert_array_equal(g, differences.gradient(p.fun, x, f, "3-point", rel_step=r))
    assert not objective.refinable()
    assert not Objective(p.fun, "3-point", (), rel_step=1e-4).refinable()
    assert not Objective(p.fun_and_grad, True, ()).refinable()


def test_badly_scaled_variable_refined_to_steps_relative_to_x():
    # Osborne 1, jac=None, gtol 1e-8: at its minimum the fourth variable is 0.013
    # and multiplies t up to 320 in exponentials; central differences with steps
    # eps**(1/3) max(1, |x|) give that gradient component the wrong sign, steps
    # relative to |x| do not.
    p = _mgh.by_name("Osborne 1")
    res = so.minimize(p.fun, p.x0, method=gd.lbfgs(), options=TIGHT)
    assert res.status == 0, res.message
    assert _mgh.solved(p, res.fun)


def test_restart_meets_gtol_with_the_new_gradient_or_searches_from_it():
    # The kernel entry the driver calls after refining the gradient.
    n, m = 3, 4
    shapes = lb.state_sizes(n, m)
    vec, pairs, rho, alpha, fs = (np.zeros(shapes[k]) for k in
                                  ("vectors", "pairs", "rho", "alpha", "fs"))
    js = np.zeros(shapes["js"], dtype=np.int64)
    fs[lb.GTOL] = 1e-6
    js[lb.M], js[lb.MAX_LS], js[lb.COUNT] = m, 20, 2
    vec[lb.X] = [0.5, 0.25, -1.0]
    vec[lb.G] = [1e-7, -1e-7, 0.0]
    none = np.zeros(0)
    assert lb.restart(vec, pairs, rho, alpha, fs, js, none, none) == lb.CONVERGED
    assert js[lb.MESSAGE] == lb.BY_GTOL and js[lb.COUNT] == 0
    vec[lb.G] = [3.0, -4.0, 0.0]
    js[lb.COUNT] = 2
    assert lb.restart(vec, pairs, rho, alpha, fs, js, none, none) == lb.EVALUATE
    assert js[lb.COUNT] == 0  # pairs built from the old gradients are dropped
    np.testing.assert_array_equal(vec[lb.D], -vec[lb.G])  # steepest descent
    np.testing.assert_allclose(vec[lb.X_TRIAL], vec[lb.X] - vec[lb.G] / 5.0)  # a unit first step
    # The prepared trial is handed out by the next call, without consuming a value.
    assert lb.lbfgs_step(vec, pairs, rho, alpha, fs, js, np.nan, none, none) == lb.EVALUATE


def test_bounded_direction_uses_only_the_free_variables():
    # Under bounds the recursion runs on the free variables: the pairs' entries
    # for held variables (at a bound, gradient pushing out) must not move the
    # direction.  The full recursion with held entries zeroed afterwards let
    # them in, and bounded Watson n=9 took 125 iterations (L-BFGS-B 64; now 80).
    rng = np.random.default_rng(7)
    n, m, count = 6, 4, 3
    lower, upper = np.full(n, -1.0), np.full(n, 1.0)
    x = rng.uniform(-0.5, 0.5, n)
    x[1], x[4] = -1.0, 1.0
    g = rng.normal(size=n)
    g[1], g[4] = 2.0, -3.0  # both held
    S = np.zeros((m, n))
    Y = np.zeros((m, n))
    S[:count] = rng.normal(size=(count, n))
    Y[:count] = S[:count] * rng.uniform(1.0, 5.0, n)  # a diagonal Hessian: s.y > 0
    d = np.empty(n)
    lb.direction(g, S, Y, np.zeros(m), np.zeros(m), count - 1, count, m, x, lower, upper,
                 True, d)
    assert d[1] == 0.0 and d[4] == 0.0 and np.dot(g, d) < 0
    S[:count, [1, 4]] = rng.normal(size=(count, 2))
    Y[:count, [1, 4]] = 1e3 * rng.normal(size=(count, 2))
    d2 = np.empty(n)
    lb.direction(g, S, Y, np.zeros(m), np.zeros(m), count - 1, count, m, x, lower, upper,
                 True, d2)
    np.testing.assert_array_equal(d2, d)


def test_floor_sits_between_measured_noise_and_the_default_ftol():
    # What the floor must allow: Meyer's f jitters by 2e-12 relative near its
    # minimum (measured), and the floor must not stop runs that the default ftol
    # (L-BFGS-B's 2.2e-9) lets go on.  float32 variables get a coarser floor.
    assert 2e-12 < lb.floor_for(np.float64) < 2.220446049250313e-09
    assert lb.floor_for(np.float32) > 1e3 * lb.floor_for(np.float64)


@pytest.mark.parametrize("units", [8, 16, 32, 64])
def test_last_bit_noise_ends_at_the_floor_not_in_failure(units):
    # Another CPU's BLAS kernels round A @ x differently: the rotated quadratic of
    # cond 1e4 (bench_minimize's problem) with f and g perturbed by a few units in
    # the last place per call ended in status 2 at f - f* = 1e-9 before.
    n = 100
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = (q * np.logspace(0, 4, n)) @ q.T
    A = 0.5 * (A + A.T)
    b = A @ rng.standard_normal(n)
    x_star = np.linalg.solve(A, b)
    noise = np.random.default_rng(1)
    eps = np.finfo(np.float64).eps

    def fg(x):
        Ax = A @ x
        f = 0.5 * x @ Ax - b @ x
        return (f * (1 + units * eps * noise.uniform(-1, 1)),
                (Ax - b) * (1 + units * eps * noise.uniform(-1, 1, n)))

    res = so.minimize(fg, np.zeros(n), jac=True, method=gd.lbfgs(),
                      options={"gtol": 1e-6, "ftol": 0, "maxiter": 20000})
    assert res.status == 0, res.message
    assert np.max(np.abs(res.x - x_star)) <= 1e-4


def test_rises_along_d_needs_a_fourfold_shorter_step_and_no_lower_point():
    f0 = 1.0
    # f = f0 - t + t^2 (slope -1 at 0, the gradient's word): secant slopes 9 at
    # t = 10 and 1.5 at t = 2.5, less than half: not a rise against the gradient.
    assert not lb.rises_along_d(2.5, f0 + 2.5 ** 2 - 2.5, 0.0, 10.0, f0 + 90.0, f0)
    # f = f0 + t (a gradient of the wrong sign): the same slope at both steps.
    assert lb.rises_along_d(2.5, f0 + 2.5, 0.0, 10.0, f0 + 10.0, f0)
    assert not lb.rises_along_d(5.0, f0 + 5.0, 0.0, 10.0, f0 + 10.0, f0)  # only 2x shorter
    assert not lb.rises_along_d(2.5, f0 + 2.5, 1.0, 10.0, f0 + 10.0, f0)  # a lower point known
    assert not lb.rises_along_d(2.5, f0 - 1e-3, 0.0, 10.0, f0 + 10.0, f0)  # below f(x)


def same_results_digest():
    """A digest of gd.lbfgs' final iterates, nfev and status on every MGH problem, with
    and without the gradient."""
    h = hashlib.sha256()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p in _mgh.PROBLEMS:
            for jac in (True, None):
                r = run(p, gd.lbfgs(), jac=jac, gtol=1e-8, ftol=0, maxiter=20000,
                        maxfun=50000)
                h.update(r.x.tobytes())
                h.update(str((r.nfev, r.status)).encode())
    return h.hexdigest()


def lbfgs_kernels_by_origin():
    """``{"compiled": names, "loaded": names}``: the kernels of gdcore.kernels.lbfgs that
    this process compiled, and those it loaded from Numba's cache."""
    origin = {"compiled": [], "loaded": []}
    for name, kernel in sorted(vars(lb).items()):
        if isinstance(kernel, numba.core.dispatcher.Dispatcher) and kernel.overloads:
            if kernel.stats.cache_misses:
                origin["compiled"].append(name)
            if kernel.stats.cache_hits:
                origin["loaded"].append(name)
    return origin


IN_A_NEW_PROCESS = """
import json, sys
sys.path.insert(0, {tests!r})
from test_lbfgs_floor import lbfgs_kernels_by_origin, same_results_digest
print(json.dumps(dict(digest=same_results_digest(), **lbfgs_kernels_by_origin())))
"""


def in_a_new_process(**env):
    script = IN_A_NEW_PROCESS.format(tests=str(Path(__file__).resolve().parent))
    done = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, **env),
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_same_iterates_whether_compiled_here_or_loaded_from_the_cache(tmp_path):
    # With fastmath flags the L-BFGS kernels gave other iterates in a process that
    # compiled them than in one that loaded them from Numba's cache (nfev changed
    # on 17 of 70 of these runs); compiled exact, they cannot.  This process has
    # compiled or loaded its kernels (whichever the suite's cache made it do): a
    # new process on the same cache loads every one of them, and only where this
    # process loaded some does a process with an empty cache compile them all.
    here = same_results_digest()
    origin = lbfgs_kernels_by_origin()
    assert "lbfgs_step" in origin["compiled"] + origin["loaded"]
    loading = in_a_new_process()
    assert loading["compiled"] == [] and loading["loaded"]
    assert loading["digest"] == here
    if origin["loaded"]:
        compiling = in_a_new_process(NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
        assert compiling["loaded"] == [] and compiling["compiled"]
        assert compiling["digest"] == here


@pytest.mark.parametrize("x0", [1.7, 10.0, 1e3])
@pytest.mark.parametrize("jac", [True, None], ids=["exact", "jac=None"])
def test_correct_gradient_with_a_linear_tail_is_not_taken_for_a_wrong_one(x0, jac):
    # sqrt(c + x^2): a first step that overshoots far lands where f grows
    # linearly, and shorter trials there rise about as steeply; the search jumps
    # to far shorter steps, where the gradient's decrease shows, instead of failing.
    def f(x):
        return float(np.sqrt(1e-6 + x[0] ** 2) - 1e-3)

    def fg(x):
        return f(x), np.array([x[0] / np.sqrt(1e-6 + x[0] ** 2)])

    res = so.minimize(fg if jac else f, np.array([x0]), jac=jac, method=gd.lbfgs())
    assert res.status == 0, res.message
    assert res.fun <= 1e-12


def test_nonfinite_refined_gradient_fails_with_the_last_finite_one():
    # log(x) near 0 with jac=None: the central steps of the refined gradient cross
    # 0 and give NaN; the run ends in status 2 (as L-BFGS-B's), never in success,
    # and reports the last finite gradient.
    def f(x):
        with np.errstate(invalid="ignore", divide="ignore"):
            return float((np.log(x[0]) + 20) ** 2)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = so.minimize(f, np.array([1e-6]), method=gd.lbfgs())
    assert res.status == 2 and not res.success
    assert np.all(np.isfinite(res.jac))


def test_refinement_counts_and_respects_maxfun():
    p = _mgh.by_name("Helical valley")
    full = so.minimize(p.fun, p.x0, method=gd.lbfgs(), options=TIGHT)
    assert full.njev < full.nfev  # central gradients count once each, like forward ones
    n = p.n
    for maxfun in range(150, full.nfev, 7):
        res = so.minimize(p.fun, p.x0, method=gd.lbfgs(), options=dict(TIGHT, maxfun=maxfun))
        assert res.nfev <= maxfun + 2 * n  # by less than one central gradient's calls
        # The limit is checked before each evaluation: only a run whose last
        # gradient began within the limit can still converge.
        assert res.status == 1 or (res.status == 0 and maxfun > full.nfev - 2 * n - 1), \
            (maxfun, res.status, res.nfev)


def zoom_state(n=2, m=3):
    """State arrays in the middle of a zoom from x = 0 along d = (1, ..., 1)."""
    shapes = lb.state_sizes(n, m)
    vec, pairs, rho, alpha, fs = (np.zeros(shapes[k]) for k in
                                  ("vectors", "pairs", "rho", "alpha", "fs"))
    js = np.zeros(shapes["js"], dtype=np.int64)
    js[lb.M], js[lb.MAX_LS], js[lb.PHASE], js[lb.STAGE] = m, 20, lb._SEARCHING, lb._ZOOM
    fs[lb.F_X], fs[lb.F_OLD], fs[lb.GTOL], fs[lb.FLOOR] = 5.0, 6.0, 1e-12, 1e-10
    vec[lb.G] = -1.0  # g
    vec[lb.D] = 1.0  # d
    fs[lb.DPHI0] = -float(n)
    fs[lb.A_LO], fs[lb.PHI_LO], fs[lb.DPHI_LO] = 0.25, 5.0 - 1e-12, -0.1
    fs[lb.A_HI], fs[lb.PHI_HI], fs[lb.DPHI_HI] = 0.5, 5.0 + 1e-12, 0.1
    return vec, pairs, rho, alpha, fs, js


@pytest.mark.parametrize("again", [5.0 - 1e-12, 5.0 + 1e-12])
def test_a_flat_search_takes_its_lowest_point_or_ends_at_the_floor(again):
    vec, pairs, rho, alpha, fs, js = zoom_state()
    none = np.zeros(0)
    # The current trial is not lower: the zoom's lowest point is asked for again.
    request = lb.finish_at_floor(vec, pairs, rho, alpha, fs, js, 5.0, none, none)
    assert request == lb.EVALUATE and js[lb.STAGE] == lb._TAKE_LOWEST
    np.testing.assert_array_equal(vec[lb.X_TRIAL], vec[lb.X] + 0.25 * vec[lb.D])
    vec[lb.G_TRIAL] = -0.5  # its gradient
    request = lb.lbfgs_step(vec, pairs, rho, alpha, fs, js, again, none, none)
    if again < 5.0:  # taken as an ordinary step: an iteration, and the run goes on
        assert request == lb.ITERATE and fs[lb.F_X] == again
        np.testing.assert_array_equal(vec[lb.X], 0.25)
    else:  # f gave another value at the same point: the run ends there
        assert request == lb.CONVERGED and js[lb.MESSAGE] == lb.BY_FLOOR
        assert fs[lb.F_X] == 5.0


def test_a_flat_search_with_nothing_lower_ends_at_the_floor():
    vec, pairs, rho, alpha, fs, js = zoom_state()
    fs[lb.A_LO], fs[lb.PHI_LO] = 0.0, 5.0  # no lower trial
    none = np.zeros(0)
    assert lb.finish_at_floor(vec, pairs, rho, alpha, fs, js, np.inf, none, none) \
        == lb.CONVERGED
    assert js[lb.MESSAGE] == lb.BY_FLOOR
