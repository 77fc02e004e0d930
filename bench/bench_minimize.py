"""Benchmark: ``gd.lbfgs`` and a compiled Adam loop against ``scipy.optimize.minimize``.

Side by side in one run, every solver with the same stopping rule:

* **problems** (float64): Rosenbrock n = 2, 100, 1000 (chained form, start
  ``x0 = [-1.2, 1, -1.2, 1, ...]``, solution ``x* = 1``, ``f* = 0``) and a
  rotated ill-conditioned convex quadratic, n = 100: ``f = 0.5 x'Ax - b'x``
  with ``A = Q diag(logspace(0, 4, n)) Q'`` (``Q`` from the QR of a seeded
  Gaussian matrix, condition number 1e4), ``b = A x*`` for a seeded Gaussian
  ``x*``, start ``x0 = 0``.
* **solvers**, all through ``scipy.optimize.minimize(fun, x0, jac=True, ...)``:
  ``method=gd.lbfgs()`` (memory 10), SciPy's ``"L-BFGS-B"`` (``maxcor`` 10,
  its default) and SciPy's ``"BFGS"``.  Stopping rule: ``gtol=1e-6`` on the
  max-norm of the (projected) gradient for all three; ``ftol=0`` for gdcore
  and L-BFGS-B so that the gradient criterion decides; ``maxiter`` and
  ``maxfun`` 20000.  BFGS on n = 1000 (dense 1000 x 1000 inverse-Hessian
  updates over ~5000 iterations) is skipped unless ``--bfgs-1000`` is given,
  and then run once, untimed repeats excluded.
* **objective kinds**: ``python`` -- plain NumPy functions returning
  ``(f, g)``; ``njit`` -- the same functions decorated with ``numba.njit``.
  gdcore detects a Numba dispatcher and runs the whole minimization in one
  compiled call; SciPy calls it from Python like any function.

Recorded for each (problem, solver, objective kind): success, nit, nfev,
``max |x - x*|``, ``f - f*``, and the median wall time of whole
``minimize`` calls (:func:`_harness.time_whole_runs`: implementations take
turns with a settle pause, rounds disturbed by other processes are dropped).
The first call of every case is the correctness pass and doubles as the
warm-up; its time is kept, so the first-call cost of the compiled path (Numba
compiling gdcore's driver, specialised on the user's function and therefore
never cached on disk) is reported apart from the steady state.

A second case runs ``gd.adam(1e-3)`` for exactly 2000 iterations (``gtol=0``)
on Rosenbrock n = 100 with the njit objective (one compiled call) and with
the NumPy objective (gdcore's Python loop), reporting time per iteration and
their ratio.  The compiled path must give the same iterates as the Python
path: it is compared bitwise with the Python loop fed the *same* compiled
function (a Python wrapper around the dispatcher, so ``f`` and ``g`` are
bitwise the same); the NumPy objective itself rounds differently (summation
order), so against it only ``max |dx|`` is shown.  The same identity check is
made for ``gd.lbfgs`` (x, nit, nfev) on the smaller problems.

Because SciPy's L-BFGS-B spends most of its time outside the objective,
a short breakdown shows where: the objective alone per call, L-BFGS-B
per evaluation with SciPy's default BLAS threads and with one BLAS thread
(threadpoolctl), and a cProfile of one run on Rosenbrock n = 1000 with each.

**Outside problems** (``bench/_mgh.py``: the 35 Moré-Garbow-Hillstrom
problems, written from the paper, not chosen by this project): L-BFGS-B and
``gd.lbfgs()`` through ``scipy.optimize.minimize`` from each problem's
standard start, in 8 settings: ``f`` as published or offset by 79.48
(:func:`_mgh.offset`: near the optimum ``f`` then changes only in its last
bits, the rounding-floor case where a line search finds no decrease) x
``jac=True`` (the hand-derived gradient) or ``jac=None`` (each solver's
finite differences) x a tight rule (``gtol=1e-8, ftol=0, maxiter=20000,
maxfun=50000``, the same for both) or each method's own defaults.
"Solved" is :func:`_mgh.solved` (``f - f* <= 1e-6 max(1, |f*|)``, ``f*``
before the offset).  Per setting: solved count, status-0 count, solved runs
with a status other than 0, and the median and max of
``nfev_gdcore / nfev_L-BFGS-B`` over the problems both solve; per problem
(status, nfev) for the tight ``jac=None`` and offset settings (every setting
with ``--verbose``).  Also the issue's own example,
``sum((x - (1.5, -2))**2) + 79.48`` from 0 with ``jac=None`` (gtol 1e-8,
ftol 0): status, nfev and ``f - f*`` of L-BFGS-B, BFGS and ``gd.lbfgs``.
These runs are counted, not timed, and run with one BLAS thread
(threadpoolctl): the problems are tiny and OpenBLAS' threads would dominate.
They take about 15 s.  The report says whether ``gd.lbfgs``' kernels were
loaded from Numba's on-disk cache or compiled in the run (first calls then
include compilation).  The counts are the same either way: the kernels are
compiled exact, with fixed-order sums (with fastmath flags they rounded
differently when compiled in the run, and 13 of the 35 tight ``jac=None``
stops moved; ``tests/test_lbfgs_floor.py`` checks that they no longer do).

Context (no target): the same problems in two boxes, ``b1`` around x0
(``[x0 - max(1, |x0|), x0 + max(1, |x0|) / 2]``) and ``b2`` with the first
variable held 0.1 below the unbounded minimiser, each solver's final f
compared with the other's (no worse: within 1e-6 relative or below), status-2
counts, and the median nfev ratio over the runs that end at the same f.

Targets (PASS/MISS):

* ``gd.lbfgs`` solves (success and ``max |x - x*| <= 1e-4``) at least as many
  of the (problem, objective kind) runs as L-BFGS-B, with the median over
  those runs of ``nfev_gdcore / nfev_L-BFGS-B`` at most 1.5;
* Rosenbrock n = 1000: ``gd.lbfgs`` with the njit objective >= 5x faster in
  wall time than L-BFGS-B with the Python objective (what a SciPy user has);
  L-BFGS-B fed the njit function is shown as context;
* the compiled-objective Adam loop >= 20x faster per iteration than the same
  loop with the Python objective;
* outside problems, in every one of the 8 settings: ``gd.lbfgs`` solves at
  least as many problems as L-BFGS-B, the median nfev ratio over the
  problems both solve is at most 1.2, and ``gd.lbfgs`` ends with status 0
  (success) on every problem it solved; the overall line passes only if
  every setting does.

Run ``make bench`` (or ``.venv/bin/python bench/bench_minimize.py``); about
two minutes on a quiet 2-core machine.  ``--quick`` skips n = 1000, repeats
less and runs only the tight outside-problem settings (development only);
``--verbose`` prints the per-problem table of every outside-problem setting.
The Markdown tables are printed for the README; everything also goes to
``bench/results/minimize.json``.
"""

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import scipy.optimize as so

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as harness  # noqa: E402  (bench/ is a folder of scripts, not a package)
import _mgh  # noqa: E402

import gdcore as gd  # noqa: E402
from gdcore.minimize import OptionWarning  # noqa: E402

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # the one-thread context rows are then skipped
    threadpool_limits = None

SEED = 0
GTOL = 1e-6
MAXITER = 20000
SOLVED_XTOL = 1e-4  # "solved": success and max |x - x*| <= this
NFEV_RATIO_TARGET = 1.5
MGH_NFEV_RATIO_TARGET = 1.2  # the outside problems (bench/_mgh.py), every setting
MGH_SHIFT = 79.48  # f + this: flat to rounding near the optimum
MGH_RULES = (("tight", {"gtol": 1e-8, "ftol": 0.0, "maxiter": 20000, "maxfun": 50000}),
             ("defaults", {}))  # (label, options); defaults: each method's own
ROSEN1000_SPEEDUP_TARGET = 5.0
ADAM_SPEEDUP_TARGET = 20.0
ADAM_LR = 1e-3
ADAM_ITERS = 2000
RESULTS_PATH = Path(__file__).resolve().parent / "results" / "minimize.json"

# Timing policy (see harness.time_whole_runs): after the correctness pass (the
# warm-up), ROUNDS rounds in which every case of a problem runs, in rotated order
# after SETTLE_SECONDS of sleep, back to back for at least MIN_ROUND_SECONDS.
# A case whose rounds took MAX_CASE_SECONDS sits out the rest (after two rounds),
# so a slow peer on a busy machine cannot stretch the benchmark without bound.
ROUNDS = 4
SETTLE_SECONDS = 0.2
MIN_ROUND_SECONDS = 0.1
MAX_CASE_SECONDS = 5.0
MAX_BACKGROUND = 0.3

GDCORE = "gd.lbfgs"
LBFGSB = "L-BFGS-B"
BFGS = "BFGS"
SOLVERS = (GDCORE, LBFGSB, BFGS)
PY = "python"
NJIT = "njit"
KINDS = (PY, NJIT)
LBFGSB_1T = "L-BFGS-B [1 BLAS thread]"  # context rows, not in the targets


# Objectives: plain NumPy, returning (f, g); the njit twins are the same functions ------
def rosenbrock(x):
    """Chained Rosenbrock ``sum 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2`` and its gradient."""
    d = x[1:] - x[:-1] ** 2
    f = np.sum(100.0 * d * d + (1.0 - x[:-1]) ** 2)
    g = np.zeros_like(x)
    g[:-1] = -400.0 * x[:-1] * d - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * d
    return f, g


def quadratic(x, A, b):
    """``0.5 x'Ax - b'x`` and its gradient ``Ax - b``."""
    Ax = np.dot(A, x)
    return 0.5 * np.dot(x, Ax) - np.dot(b, x), Ax - b


rosenbrock_njit = numba.njit(rosenbrock)
quadratic_njit = numba.njit(quadratic)


@dataclass(frozen=True)
class Problem:
    name: str
    n: int
    fun: object  # NumPy objective
    fun_njit: object
    args: tuple
    x0: np.ndarray
    x_star: np.ndarray
    f_star: float


def rosenbrock_problem(n):
    return Problem(f"Rosenbrock n={n}", n, rosenbrock, rosenbrock_njit, (),
                   np.tile([-1.2, 1.0], n // 2), np.ones(n), 0.0)


def quadratic_problem(n=100, seed=SEED):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = np.ascontiguousarray((q * np.logspace(0, 4, n)) @ q.T)
    A = 0.5 * (A + A.T)  # exactly symmetric
    x_star = rng.standard_normal(n)
    b = A @ x_star
    # x* from A itself (not the rounded b): the reference solution of the problem solved
    x_star = np.linalg.solve(A, b)
    f_star = float(-0.5 * b @ x_star)
    return Problem(f"quadratic n={n}, cond 1e4", n, quadratic, quadratic_njit, (A, b),
                   np.zeros(n), x_star, f_star)


def make_problems(quick):
    sizes = (2, 100) if quick else (2, 100, 1000)
    return [rosenbrock_problem(n) for n in sizes] + [quadratic_problem()]


# Solving -----------------------------------------------------------------------------
def solve(problem, solver, kind, fun=None):
    """One ``scipy.optimize.minimize`` call with the common stopping rule."""
    if fun is None:
        fun = problem.fun_njit if kind == NJIT else problem.fun
    if solver == GDCORE:
        method = gd.lbfgs()
        options = {"gtol": GTOL, "ftol": 0.0, "maxiter": MAXITER, "maxfun": MAXITER}
    elif solver == LBFGSB:
        method = "L-BFGS-B"
        options = {"gtol": GTOL, "ftol": 0.0, "maxiter": MAXITER, "maxfun": MAXITER}
    else:
        method = "BFGS"
        options = {"gtol": GTOL, "maxiter": MAXITER}
    return so.minimize(fun, problem.x0, args=problem.args, jac=True, method=method,
                       options=options)


def one_thread(call):
    """``call`` with SciPy's and NumPy's BLAS limited to one thread."""
    def run():
        with threadpool_limits(limits=1, user_api="blas"):
            return call()
    return run


def check(problem, res):
    err_x = float(np.max(np.abs(res.x - problem.x_star)))
    return {"success": bool(res.success), "status": int(res.status), "message": str(res.message),
            "nit": int(res.nit), "nfev": int(res.nfev), "max_abs_x_err": err_x,
            "f_minus_fstar": float(res.fun - problem.f_star),
            "max_abs_grad": float(np.max(np.abs(res.jac))),
            "solved": bool(res.success) and err_x <= SOLVED_XTOL}


def cases_of(problem, bfgs_1000):
    """(label, solver, kind, call) of every timed case of ``problem``."""
    out = []
    for solver in SOLVERS:
        if solver == BFGS and problem.n >= 1000 and not bfgs_1000:
            continue
        for kind in KINDS:
            out.append((f"{solver} / {kind}", solver, kind,
                        lambda s=solver, k=kind: solve(problem, s, k)))
    if threadpool_limits is not None and problem.name.startswith("Rosenbrock") \
            and problem.n >= 100:
        out.append((f"{LBFGSB_1T} / {PY}", LBFGSB_1T, PY,
                    one_thread(lambda: solve(problem, LBFGSB, PY))))
    return out


def run_problem(problem, bfgs_1000, rounds):
    """Correctness pass (first calls, timed), identity check, then steady-state timing."""
    first = {}
    checks = {}
    calls = {}
    for label, solver, kind, call in cases_of(problem, bfgs_1000):
        t0 = time.perf_counter()
        res = call()
        first[label] = time.perf_counter() - t0
        checks[label] = check(problem, res)
        checks[label].update(solver=solver, kind=kind)
        calls[label] = call
    identity = None
    if problem.n <= 100:
        identity = lbfgs_identity(problem)
    timed = {k: v for k, v in calls.items()
             if not (checks[k]["solver"] == BFGS and problem.n >= 1000)}  # --bfgs-1000: once
    timings, background = harness.time_whole_runs(
        timed, rounds=rounds, settle_seconds=SETTLE_SECONDS,
        min_round_seconds=MIN_ROUND_SECONDS, max_background=MAX_BACKGROUND, warmup=False,
        max_impl_seconds=MAX_CASE_SECONDS)
    for label in calls:
        if label not in timings:  # run once only: its first call is its only figure
            timings[label] = harness.Timing(first[label] * 1e6, first[label] * 1e6,
                                            first[label] * 1e6, first[label] * 1e6, 1, 0, 1, 1,
                                            True)
            background[label] = [None]
    return {"problem": problem, "checks": checks, "first_call_s": first, "timings": timings,
            "background": background, "identity": identity}


def lbfgs_identity(problem):
    """gd.lbfgs with the njit objective vs its Python loop fed the same compiled function."""
    fn = problem.fun_njit

    def wrapped(x, *args):  # a plain Python function: gdcore takes its Python path
        return fn(x, *args)

    a = solve(problem, GDCORE, NJIT)
    b = solve(problem, GDCORE, PY, fun=wrapped)
    return {"x_identical": bool(np.array_equal(a.x, b.x)), "nit": (int(a.nit), int(b.nit)),
            "nfev": (int(a.nfev), int(b.nfev)), "max_abs_dx": float(np.max(np.abs(a.x - b.x)))}


# Adam: compiled loop vs Python loop ----------------------------------------------------
def adam_case(rounds):
    problem = rosenbrock_problem(100)

    def run(fun):
        return so.minimize(fun, problem.x0, jac=True, method=gd.adam(ADAM_LR),
                           options={"maxiter": ADAM_ITERS, "gtol": 0.0})

    def wrapped(x):
        return rosenbrock_njit(x)

    fns = {"Adam / njit (one compiled call)": lambda: run(rosenbrock_njit),
           "Adam / python (NumPy objective)": lambda: run(rosenbrock),
           "Adam / python loop, njit function wrapped (context)": lambda: run(wrapped)}
    first, results = {}, {}
    for label, fn in fns.items():
        t0 = time.perf_counter()
        results[label] = fn()
        first[label] = time.perf_counter() - t0
    nj, py, wr = (results[k] for k in fns)
    identity = {
        "x_identical_to_python_loop_same_function": bool(np.array_equal(nj.x, wr.x)),
        "nit": {k: int(r.nit) for k, r in results.items()},
        "nfev": {k: int(r.nfev) for k, r in results.items()},
        "max_abs_dx_vs_numpy_objective": float(np.max(np.abs(nj.x - py.x))),
        "max_abs_dx_vs_python_loop_same_function": float(np.max(np.abs(nj.x - wr.x))),
        "f": {k: float(r.fun) for k, r in results.items()},
    }
    timings, background = harness.time_whole_runs(
        fns, rounds=rounds, settle_seconds=SETTLE_SECONDS, min_round_seconds=MIN_ROUND_SECONDS,
        max_background=MAX_BACKGROUND, warmup=False, max_impl_seconds=MAX_CASE_SECONDS)
    per_iter = {k: t.median_us / results[k].nit for k, t in timings.items()}
    return {"problem": problem.name, "iterations": ADAM_ITERS, "learning_rate": ADAM_LR,
            "first_call_s": first, "timings": timings, "background": background,
            "us_per_iteration": per_iter, "identity": identity, "labels": list(fns)}


# Where L-BFGS-B's time goes --------------------------------------------------------------
def objective_costs(problems):
    """µs per call of each objective alone (NumPy and njit), side by side."""
    fns = {}
    for p in problems:
        for kind, fun in ((PY, p.fun), (NJIT, p.fun_njit)):
            fns[f"{p.name} / {kind}"] = (lambda f=fun, x=p.x0, a=p.args: f(x, *a))
    timings, _ = harness.time_side_by_side(
        fns, passes=1, blocks_per_pass=3, block_seconds=0.1, settle_seconds=0.05,
        warmup_seconds=0.05, max_pass_seconds=0.6, max_background=MAX_BACKGROUND)
    return {k: t.median_us for k, t in timings.items()}


def profile_lbfgsb(problem, threads, top=5):
    """cProfile of one L-BFGS-B run with the NumPy objective: the top entries by own time.

    ``threads``: None for SciPy's default BLAS threads, 1 for one thread.
    """
    def call():
        return solve(problem, LBFGSB, PY)

    if threads == 1:
        call = one_thread(call)
    time.sleep(SETTLE_SECONDS)
    prof = cProfile.Profile()
    prof.enable()
    call()
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = stats.total_tt
    rows = []
    for (path, line, name), (_, ncalls, tottime, cumtime, _) in sorted(
            stats.stats.items(), key=lambda kv: -kv[1][2])[:top]:
        rows.append({"function": f"{Path(path).name}:{line}({name})", "ncalls": ncalls,
                     "tottime_s": tottime, "cumtime_s": cumtime,
                     "pct_total": 100 * tottime / total if total else 0.0})
    return {"problem": problem.name, "blas_threads": threads or "default", "total_s": total,
            "top": rows}


# Outside problems: Moré-Garbow-Hillstrom, flat-to-rounding and finite-difference sets ----------
def mgh_settings(quick):
    """(label, shift, jac, rule, options) of every setting: shift x jac x stopping rule."""
    rules = MGH_RULES[:1] if quick else MGH_RULES
    out = []
    for shift in (0.0, MGH_SHIFT):
        for jac in (True, None):
            for rule, options in rules:
                label = (f"{'f + ' + format(shift, 'g') if shift else 'f'}, "
                         f"jac={jac}, {rule}")
                out.append((label, shift, jac, rule, options))
    return out


def mgh_run(problem, jac, method, options):
    """One ``scipy.optimize.minimize`` call on an MGH problem: what the tables need."""
    fun = problem.fun_and_grad if jac else problem.fun
    res = so.minimize(fun, problem.x0, jac=jac, method=method, options=dict(options))
    return {"status": int(res.status), "success": bool(res.success), "nit": int(res.nit),
            "nfev": int(res.nfev), "f_minus_fstar": float(res.fun - problem.f_star),
            "solved": _mgh.solved(problem, res.fun)}


def mgh_setting(shift, jac, options):
    """L-BFGS-B and gd.lbfgs on every MGH problem (offset by ``shift``): one row each."""
    rows = []
    for p in _mgh.PROBLEMS:
        q = _mgh.offset(p, shift) if shift else p
        rows.append({"problem": p.name,
                     LBFGSB: mgh_run(q, jac, "L-BFGS-B", options),
                     GDCORE: mgh_run(q, jac, gd.lbfgs(), options)})
    return rows


def mgh_summary(rows):
    """Counts per solver and the nfev ratios over the problems both solve."""
    out = {"problems": len(rows)}
    for solver in (LBFGSB, GDCORE):
        runs = [r[solver] for r in rows]
        out[solver] = {
            "solved": sum(r["solved"] for r in runs),
            "status0": sum(r["status"] == 0 for r in runs),
            "solved_not_status0": [row["problem"] for row, r in zip(rows, runs)
                                   if r["solved"] and r["status"] != 0],
            "status0_not_solved": [row["problem"] for row, r in zip(rows, runs)
                                   if not r["solved"] and r["status"] == 0]}
    ratios = [r[GDCORE]["nfev"] / r[LBFGSB]["nfev"] for r in rows
              if r[GDCORE]["solved"] and r[LBFGSB]["solved"]]
    out["nfev_ratio"] = {"runs": len(ratios),
                         "median": float(np.median(ratios)) if ratios else float("nan"),
                         "min": min(ratios, default=float("nan")),
                         "max": max(ratios, default=float("nan"))}
    out["only_lbfgsb_solved"] = [r["problem"] for r in rows
                                 if r[LBFGSB]["solved"] and not r[GDCORE]["solved"]]
    out["only_gdcore_solved"] = [r["problem"] for r in rows
                                 if r[GDCORE]["solved"] and not r[LBFGSB]["solved"]]
    return out


def flat_example():
    """The issue's example: ``sum((x - (1.5, -2))**2) + 79.48`` from 0, ``jac=None``.

    f reaches its minimum 79.48 exactly, and near it changes only in its last
    bits: a forward-difference line search then finds no decrease.
    """
    c = np.array([1.5, -2.0])
    f_star = 79.48

    def fun(x):
        return np.sum((x - c) ** 2) + f_star

    out = {}
    for solver, method, options in (
            (LBFGSB, "L-BFGS-B", {"gtol": 1e-8, "ftol": 0.0}),
            (BFGS, "BFGS", {"gtol": 1e-8}),
            (GDCORE, gd.lbfgs(), {"gtol": 1e-8, "ftol": 0.0})):
        res = so.minimize(fun, np.zeros(2), jac=None, method=method, options=options)
        out[solver] = {"status": int(res.status), "nit": int(res.nit), "nfev": int(res.nfev),
                       "f_minus_fstar": float(res.fun - f_star),
                       "max_abs_x_err": float(np.max(np.abs(res.x - c))),
                       "message": str(res.message)}
    return out


def lbfgs_kernel_cache():
    """How many of gd.lbfgs' kernels (``kernels/lbfgs.py``) Numba's on-disk cache holds.

    Called before anything compiles: 0 means they compile in this process, and
    the first calls' times include compilation.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):  # a folder per source folder below it
        return len(list(Path(os.environ["NUMBA_CACHE_DIR"]).glob("**/lbfgs.*.nbi")))
    cache = Path(gd.__file__).resolve().parent / "kernels" / "__pycache__"
    return len(list(cache.glob("lbfgs.*.nbi")))


def mgh_case(quick):
    """Every setting of :func:`mgh_settings` and the issue's example, one BLAS thread."""
    limit = (threadpool_limits(limits=1, user_api="blas") if threadpool_limits is not None
             else contextlib.nullcontext())
    t0 = time.perf_counter()
    settings = []
    with limit, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflowing trial steps (exp)
        warnings.simplefilter("default", OptionWarning)  # but never an ignored option
        for label, shift, jac, rule, options in mgh_settings(quick):
            rows = mgh_setting(shift, jac, options)
            settings.append({"label": label, "shift": shift, "jac": jac, "rule": rule,
                             "options": options, "rows": rows,
                             "summary": mgh_summary(rows)})
        example = flat_example()
    return {"settings": settings, "example": example,
            "blas_threads": 1 if threadpool_limits is not None else "default",
            "seconds": time.perf_counter() - t0}


def mgh_summary_markdown(mgh):
    headers = ["setting", "problems", "L-BFGS-B solved", "status 0", "solved, status ≠ 0",
               "gd.lbfgs solved", "status 0", "solved, status ≠ 0",
               "nfev ratio, median", "max", "solved by both"]
    body = []
    for s in mgh["settings"]:
        m = s["summary"]
        lb_, gd_, r = m[LBFGSB], m[GDCORE], m["nfev_ratio"]
        body.append([s["label"], m["problems"], lb_["solved"], lb_["status0"],
                     len(lb_["solved_not_status0"]), gd_["solved"], gd_["status0"],
                     len(gd_["solved_not_status0"]), f"{r['median']:.3f}",
                     f"{r['max']:.2f}", r["runs"]])
    return harness.markdown_table(headers, body)


def mgh_cell(run):
    return f"{run['nfev']:,} ({run['status']})" + ("" if run["solved"] else " ✗")


def mgh_problem_markdown(settings):
    """Per problem: nfev (status) of each solver in each of ``settings``; ✗: not solved."""
    headers = ["problem"]
    for s in settings:
        headers += [f"{s['label']}: L-BFGS-B", "gd.lbfgs"]
    body = []
    for i, p in enumerate(_mgh.PROBLEMS):
        row = [p.name]
        for s in settings:
            r = s["rows"][i]
            row += [mgh_cell(r[LBFGSB]), mgh_cell(r[GDCORE])]
        body.append(row)
    return harness.markdown_table(headers, body)


def example_markdown(example):
    headers = ["sum((x - (1.5, -2))**2) + 79.48, x0 = 0, jac=None, gtol 1e-8", "status",
               "nit", "nfev", "f - f*", "max abs(x - x*)"]
    body = [[solver, r["status"], r["nit"], r["nfev"], f"{r['f_minus_fstar']:.1e}",
             f"{r['max_abs_x_err']:.1e}"] for solver, r in example.items()]
    return harness.markdown_table(headers, body)


def print_mgh(mgh, verbose):
    print(f"\noutside problems (Moré-Garbow-Hillstrom, {len(_mgh.PROBLEMS)} problems; "
          f"{mgh['seconds']:.1f} s, BLAS threads {mgh['blas_threads']}): L-BFGS-B and "
          "gd.lbfgs through scipy.optimize.minimize; solved: f - f* <= 1e-6 max(1, |f*|) "
          "(bench/_mgh.py, f* of the problem before the offset); 'f + 79.48': f offset by "
          "79.48, flat to rounding near the optimum; jac=None: SciPy's and gdcore's "
          "forward differences; tight: " + ", ".join(f"{k}={v:g}" for k, v in
                                                   MGH_RULES[0][1].items())
          + "; defaults: each method's own")
    print()
    print(mgh_summary_markdown(mgh))
    print("\n`status 0` counts every run that ended with status 0, solved or not; "
          "`nfev ratio`: nfev_gd.lbfgs / nfev_L-BFGS-B over the problems both solve.")
    for s in mgh["settings"]:
        m = s["summary"]
        notes = []
        for key, what in (("only_lbfgsb_solved", "solved by L-BFGS-B only"),
                          ("only_gdcore_solved", "solved by gd.lbfgs only")):
            if m[key]:
                notes.append(f"{what}: {', '.join(m[key])}")
        for solver in (LBFGSB, GDCORE):
            if m[solver]["solved_not_status0"]:
                notes.append(f"{solver} solved with status ≠ 0: "
                             f"{', '.join(m[solver]['solved_not_status0'])}")
        if notes:
            print(f"  {s['label']}: " + "; ".join(notes))
    # By default the tight settings this section exists for (offset or finite
    # differences); --verbose: every setting, one table per stopping rule.
    tables = ([[s for s in mgh["settings"] if s["rule"] == rule] for rule, _ in MGH_RULES]
              if verbose else
              [[s for s in mgh["settings"]
                if s["rule"] == MGH_RULES[0][0] and (s["shift"] or s["jac"] is None)]])
    for settings in tables:
        if settings:
            print()
            print(mgh_problem_markdown(settings))
    print("\nCells: nfev (status); ✗: not solved.")
    print()
    print(example_markdown(mgh["example"]))


def mgh_boxes(problem):
    """``(name, bounds)`` of the two boxes of the bounded comparison.

    ``b1``: ``[x0 - max(1, |x0|), x0 + max(1, |x0|) / 2]`` around the start;
    ``b2``: wide enough to hold both x0 and the unbounded minimiser L-BFGS-B
    finds, except that the first variable must stay 0.1 below that
    minimiser, so the bound is active at the solution.
    """
    x0 = problem.x0
    lo, hi = x0 - np.maximum(1.0, np.abs(x0)), x0 + 0.5 * np.maximum(1.0, np.abs(x0))
    xs = so.minimize(problem.fun_and_grad, x0, jac=True, method="L-BFGS-B",
                     options={"gtol": 1e-10, "ftol": 0.0, "maxiter": 20000}).x
    lo2 = np.minimum(lo, xs - np.maximum(1.0, np.abs(xs)))
    hi2 = np.maximum(hi, xs + 0.5 * np.maximum(1.0, np.abs(xs)))
    hi2[0] = xs[0] - 0.1
    lo2[0] = min(lo2[0], hi2[0] - 1.0)
    return ("b1", list(zip(lo, hi))), ("b2", list(zip(lo2, hi2)))


def mgh_bounded_case(quick):
    """L-BFGS-B and gd.lbfgs on every MGH problem in two boxes, context for the
    bounded search: per (box, jac, rule), the median nfev ratio and how often
    each solver ends at an f no worse than the other's (within 1e-6 relative)."""
    limit = (threadpool_limits(limits=1, user_api="blas") if threadpool_limits is not None
             else contextlib.nullcontext())
    rules = MGH_RULES[:1] if quick else MGH_RULES
    cells = {}
    t0 = time.perf_counter()
    with limit, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for p in _mgh.PROBLEMS:
            for box, bounds in mgh_boxes(p):
                for jac in (True, None):
                    fun = p.fun_and_grad if jac else p.fun
                    for rule, options in rules:
                        runs = [so.minimize(fun, p.x0, jac=jac, method=method, bounds=bounds,
                                            options=dict(options))
                                for method in ("L-BFGS-B", gd.lbfgs())]
                        cells.setdefault((box, jac, rule), []).append(runs)
    rows = []
    for (box, jac, rule), pairs in cells.items():
        def no_worse(a, b):
            return a.fun <= b.fun + 1e-6 * max(1.0, abs(b.fun))
        ratios = [g.nfev / lb.nfev for lb, g in pairs if no_worse(g, lb) and no_worse(lb, g)]
        rows.append({"box": box, "jac": jac, "rule": rule, "problems": len(pairs),
                     "gd_no_worse": sum(no_worse(g, lb) for lb, g in pairs),
                     "lbfgsb_no_worse": sum(no_worse(lb, g) for lb, g in pairs),
                     "gd_status2": sum(g.status == 2 for lb, g in pairs),
                     "lbfgsb_status2": sum(lb.status == 2 for lb, g in pairs),
                     "median_nfev_ratio": float(np.median(ratios)) if ratios else float("nan"),
                     "max_nfev_ratio": float(np.max(ratios)) if ratios else float("nan"),
                     "same_f": len(ratios)})
    return {"rows": rows, "seconds": time.perf_counter() - t0}


def print_mgh_bounded(bounded):
    print(f"\nbounded outside problems (context; {bounded['seconds']:.1f} s, one BLAS thread): "
          "the 35 MGH problems in box b1 (around x0) and b2 (first variable held 0.1 "
          "below the unbounded minimiser); 'no worse': final f within 1e-6 relative of "
          "the other solver's or below; nfev ratio over the runs where both end at the "
          "same f\n")
    print("| box | jac | rule | problems | gd.lbfgs no worse | L-BFGS-B no worse | "
          "status 2: gd.lbfgs | L-BFGS-B | nfev ratio, median | max |")
    print("|-----|-----|------|---------:|------------------:|------------------:|"
          "-------------------:|---------:|-------------------:|----:|")
    for r in bounded["rows"]:
        print(f"| {r['box']} | {r['jac']} | {r['rule']} | {r['problems']} | "
              f"{r['gd_no_worse']} | {r['lbfgsb_no_worse']} | {r['gd_status2']} | "
              f"{r['lbfgsb_status2']} | {r['median_nfev_ratio']:.2f} | "
              f"{r['max_nfev_ratio']:.2f} |")


def mgh_targets(mgh):
    """Per setting: solved count, median nfev ratio, status 0 wherever solved; then overall."""
    out = []
    for s in mgh["settings"]:
        m = s["summary"]
        g, peer, r = m[GDCORE], m[LBFGSB], m["nfev_ratio"]
        n = m["problems"]
        ok_solved = g["solved"] >= peer["solved"]
        ok_ratio = r["runs"] > 0 and r["median"] <= MGH_NFEV_RATIO_TARGET
        ok_status = not g["solved_not_status0"]
        value = (f"solved {g['solved']}/{n} vs {peer['solved']}/{n}; median nfev ratio "
                 f"{r['median']:.3f} over {r['runs']} solved by both (max {r['max']:.2f}); "
                 f"solved with status ≠ 0: {len(g['solved_not_status0'])}")
        if not ok_solved:
            value += f" [solved by L-BFGS-B only: {', '.join(m['only_lbfgsb_solved'])}]"
        if not ok_status:
            value += f" [{', '.join(g['solved_not_status0'])}]"
        out.append(harness.verdict(
            f"MGH {s['label']}: gd.lbfgs solves >= as many as L-BFGS-B, median nfev ratio "
            f"<= {MGH_NFEV_RATIO_TARGET}, status 0 on every run it solves",
            value, ok_solved and ok_ratio and ok_status, False))
    passed = sum(v["status"] == "PASS" for v in out)
    out.append(harness.verdict(
        "MGH outside problems: every setting meets its targets",
        f"{passed} of {len(out)} settings", passed == len(out), False))
    return out


# Reporting --------------------------------------------------------------------------------
def fmt_time(us):
    return harness.fmt_time(us, small_digits=1)


def table_rows(results):
    rows = []
    for r in results:
        t = r["timings"]
        base_label = f"{GDCORE} / {NJIT}"
        base = t[base_label].median_us
        for label, c in r["checks"].items():
            tm = t[label]
            rows.append({
                "problem": r["problem"].name, "solver": c["solver"], "objective": c["kind"],
                "solved": c["solved"], "success": c["success"], "nit": c["nit"],
                "nfev": c["nfev"], "max_abs_x_err": c["max_abs_x_err"],
                "f_minus_fstar": c["f_minus_fstar"], "median_us": tm.median_us,
                "us_per_eval": tm.median_us / max(c["nfev"], 1),
                "time_over_gdcore_njit": tm.median_us / base,
                "once_only": tm.calls == 1 and tm.blocks_run == 1,
                "contended": tm.contended,
            })
    return rows


def markdown(rows):
    headers = ["problem", "solver", "objective", "solved", "nit", "nfev", "max abs(x - x*)",
               "f - f*", "time (median)", "µs/eval", "time / gd.lbfgs-njit"]
    body = []
    for r in rows:
        flag = " (once)" if r["once_only"] else (" (contended)" if r["contended"] else "")
        body.append([r["problem"], r["solver"], r["objective"],
                     "yes" if r["solved"] else ("no" if not r["success"] else "no (x err)"),
                     f"{r['nit']:,}", f"{r['nfev']:,}", f"{r['max_abs_x_err']:.1e}",
                     f"{r['f_minus_fstar']:.1e}", fmt_time(r["median_us"]) + flag,
                     f"{r['us_per_eval']:,.1f}", f"{r['time_over_gdcore_njit']:,.1f}x"])
    return harness.markdown_table(headers, body)


def adam_markdown(adam):
    headers = ["Adam, Rosenbrock n=100, 2000 iterations", "time (median)", "µs/iteration",
               "ratio to compiled"]
    base = adam["us_per_iteration"][adam["labels"][0]]
    body = [[k, fmt_time(adam["timings"][k].median_us), f"{v:,.2f}", f"{v / base:,.1f}x"]
            for k, v in adam["us_per_iteration"].items()]
    return harness.markdown_table(headers, body)


def targets(results, adam):
    out = []
    # 1. solved count and nfev ratio over (problem, objective kind) runs
    solved = {GDCORE: 0, LBFGSB: 0}
    ratios = []
    runs = 0
    for r in results:
        for kind in KINDS:
            g, s = r["checks"][f"{GDCORE} / {kind}"], r["checks"][f"{LBFGSB} / {kind}"]
            runs += 1
            solved[GDCORE] += g["solved"]
            solved[LBFGSB] += s["solved"]
            if g["solved"] and s["solved"]:
                ratios.append(g["nfev"] / s["nfev"])
    med = float(np.median(ratios)) if ratios else float("nan")
    ok = solved[GDCORE] >= solved[LBFGSB] and med <= NFEV_RATIO_TARGET
    out.append(harness.verdict(
        f"gd.lbfgs solves >= as many runs as L-BFGS-B and median over runs of "
        f"nfev_gdcore/nfev_L-BFGS-B <= {NFEV_RATIO_TARGET}",
        f"solved {solved[GDCORE]}/{runs} vs {solved[LBFGSB]}/{runs}; median ratio {med:.3f} "
        f"over {len(ratios)} runs solved by both (range {min(ratios):.3f}-{max(ratios):.3f})"
        if ratios else "no run solved by both", ok, False))
    # 2. Rosenbrock n=1000 wall time
    big = [r for r in results if r["problem"].name == "Rosenbrock n=1000"]
    if big:
        t = big[0]["timings"]
        gdn = t[f"{GDCORE} / {NJIT}"]
        peer = t[f"{LBFGSB} / {PY}"]
        speed = peer.median_us / gdn.median_us
        ctx = [f"vs L-BFGS-B fed the njit function "
               f"{t[f'{LBFGSB} / {NJIT}'].median_us / gdn.median_us:.1f}x"]
        if f"{LBFGSB_1T} / {PY}" in t:
            ctx.append(f"vs L-BFGS-B python objective, 1 BLAS thread "
                       f"{t[f'{LBFGSB_1T} / {PY}'].median_us / gdn.median_us:.1f}x")
        out.append(harness.verdict(
            f"Rosenbrock n=1000: gd.lbfgs (njit objective) >= {ROSEN1000_SPEEDUP_TARGET:.0f}x "
            "faster than L-BFGS-B (python objective)",
            f"{speed:.1f}x ({fmt_time(peer.median_us)} vs {fmt_time(gdn.median_us)}; "
            + "; ".join(ctx) + ")",
            speed >= ROSEN1000_SPEEDUP_TARGET, gdn.contended or peer.contended))
    else:
        out.append({"target": "Rosenbrock n=1000 speedup", "value": "n/a",
                    "status": "SKIP (--quick)", "contended": False})
    # 3. Adam per iteration
    nj, py = adam["labels"][0], adam["labels"][1]
    ratio = adam["us_per_iteration"][py] / adam["us_per_iteration"][nj]
    same = adam["identity"]["x_identical_to_python_loop_same_function"]
    out.append(harness.verdict(
        f"Adam, Rosenbrock n=100: compiled-objective loop >= {ADAM_SPEEDUP_TARGET:.0f}x faster "
        "per iteration than the Python-objective loop, same iterates",
        f"{ratio:.1f}x ({adam['us_per_iteration'][py]:.2f} vs "
        f"{adam['us_per_iteration'][nj]:.3f} µs/iteration; x identical to the Python loop "
        f"on the same function: {same})",
        ratio >= ADAM_SPEEDUP_TARGET and same,
        adam["timings"][nj].contended or adam["timings"][py].contended))
    return out


def print_results(results, adam):
    print("\ncorrectness (first call of each case; solved = success and max|x - x*| <= "
          f"{SOLVED_XTOL:g}):")
    for r in results:
        for label, c in r["checks"].items():
            print(f"  {r['problem'].name:<26} {label:<36} success={c['success']!s:<5} "
                  f"nit={c['nit']:>5} nfev={c['nfev']:>5} max|x-x*|={c['max_abs_x_err']:.1e} "
                  f"f-f*={c['f_minus_fstar']:.1e} max|g|={c['max_abs_grad']:.1e}"
                  + ("" if c["success"] else f"  [{c['message']}]"))
        if r["identity"]:
            i = r["identity"]
            print(f"  {r['problem'].name:<26} gd.lbfgs njit vs Python loop on the same compiled "
                  f"function: x identical {i['x_identical']}, nit {i['nit']}, nfev {i['nfev']}")
    print(f"\nsteady state, whole minimize calls: median [p25, p75]; rounds quiet/run "
          f"(quiet: other processes <= {MAX_BACKGROUND} cores)")
    for r in results:
        print(f"  {r['problem'].name}:")
        for label, t in r["timings"].items():
            first = r["first_call_s"][label]
            flag = "  ** CONTENDED: too few quiet rounds, all kept **" if t.contended else ""
            if t.blocks_run == 1 and t.calls == 1:
                flag = "  (run once: BFGS n=1000)"
            print(f"    {label:<36} {fmt_time(t.median_us):>10} [{fmt_time(t.p25_us)}, "
                  f"{fmt_time(t.p75_us)}]  rounds {t.blocks_quiet}/{t.blocks_run}, "
                  f"{t.calls} calls; first call {fmt_time(first * 1e6)}{flag}")
    print("  Adam, Rosenbrock n=100, 2000 iterations:")
    for label, t in adam["timings"].items():
        flag = "  ** CONTENDED **" if t.contended else ""
        print(f"    {label:<52} {fmt_time(t.median_us):>10} [{fmt_time(t.p25_us)}, "
              f"{fmt_time(t.p75_us)}]  rounds {t.blocks_quiet}/{t.blocks_run}; "
              f"{adam['us_per_iteration'][label]:.3f} µs/iteration; first call "
              f"{fmt_time(adam['first_call_s'][label] * 1e6)}{flag}")
    i = adam["identity"]
    print(f"    iterates: compiled vs Python loop on the same compiled function: x identical "
          f"{i['x_identical_to_python_loop_same_function']} (max|dx| "
          f"{i['max_abs_dx_vs_python_loop_same_function']:.1e}); vs the NumPy objective "
          f"max|dx| {i['max_abs_dx_vs_numpy_objective']:.1e}"
          + (" (the NumPy function rounds differently from its njit twin)"
             if i["max_abs_dx_vs_numpy_objective"] else "")
          + f"; nit {sorted(set(i['nit'].values()))}")


def compile_report(results, adam, objective_compile):
    """First call minus steady state of the compiled paths: Numba compiling gdcore's driver."""
    out = {"objective_first_call_s": objective_compile, "driver": {}}
    for r in results:
        label = f"{GDCORE} / {NJIT}"
        first = r["first_call_s"][label]
        out["driver"][f"{r['problem'].name}: gd.lbfgs njit"] = {
            "first_call_s": first, "steady_s": r["timings"][label].median_us * 1e-6}
    label = adam["labels"][0]
    out["driver"]["Adam n=100 njit"] = {"first_call_s": adam["first_call_s"][label],
                                        "steady_s": adam["timings"][label].median_us * 1e-6}
    print("\nfirst-call cost of the compiled path (in this process; gdcore's drivers "
          "lbfgs_loop / first_order_loop are specialised on the user's function, cache=False, "
          "so every new process and every new objective pays it):")
    print("  objectives themselves (numba.njit, first call): " + ", ".join(
        f"{k} {v:.2f} s" for k, v in objective_compile.items()))
    for k, v in out["driver"].items():
        print(f"  {k:<46} first call {v['first_call_s']:7.2f} s, steady "
              f"{fmt_time(v['steady_s'] * 1e6)}")
    return out


def breakdown(results, objective_us, profile):
    """Per-evaluation cost of L-BFGS-B: objective, SciPy's wrapper + Fortran/C core, threads."""
    print("\nwhere L-BFGS-B's time goes (per objective evaluation, medians; 'rest' = "
          "per-eval time minus the objective alone, i.e. SciPy's Python wrapper + the "
          "L-BFGS-B core + BLAS; the objective alone is called from Python, so for njit it "
          "includes ~1-2 µs of dispatch that gd.lbfgs' compiled loop does not pay):")
    out = {}
    for r in results:
        name = r["problem"].name
        t = r["timings"]
        row = {}
        for label in (f"{LBFGSB} / {PY}", f"{LBFGSB} / {NJIT}", f"{LBFGSB_1T} / {PY}",
                      f"{GDCORE} / {PY}", f"{GDCORE} / {NJIT}"):
            if label not in t:
                continue
            kind = label.rsplit(" / ", 1)[1]
            per_eval = t[label].median_us / r["checks"][label]["nfev"]
            obj = objective_us[f"{name} / {kind}"]
            row[label] = {"us_per_eval": per_eval, "objective_us": obj,
                          "rest_us": per_eval - obj}
        out[name] = row
        print(f"  {name}:")
        for label, v in row.items():
            print(f"    {label:<36} {v['us_per_eval']:9.1f} µs/eval = objective "
                  f"{v['objective_us']:7.1f} + rest {v['rest_us']:8.1f}")
    for prof in profile:
        print(f"  cProfile of one L-BFGS-B run, python objective, {prof['problem']}, "
              f"BLAS threads {prof['blas_threads']} ({prof['total_s'] * 1e3:.0f} ms under the "
              "profiler), top by own time:")
        for row in prof["top"]:
            print(f"    {row['pct_total']:5.1f}%  {row['tottime_s'] * 1e3:7.1f} ms  "
                  f"{row['ncalls']:>6} calls ({row['tottime_s'] / row['ncalls'] * 1e6:7.1f} "
                  f"µs/call)  {row['function']}")
    return out


# Main -----------------------------------------------------------------------------------------
def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="skip n=1000 and repeat less (development only)")
    parser.add_argument("--bfgs-1000", action="store_true",
                        help="also run BFGS on Rosenbrock n=1000, once (slow)")
    parser.add_argument("--verbose", action="store_true",
                        help="per-problem tables of every outside-problem setting")
    opts = parser.parse_args()
    rounds = 2 if opts.quick else ROUNDS
    import scipy.linalg.cython_blas  # noqa: F401  (so threadpoolctl sees SciPy's BLAS)

    t_start = time.perf_counter()
    cached_kernels = lbfgs_kernel_cache()
    print(f"gdcore minimize benchmark (float64; scipy {scipy.__version__}, numba "
          f"{numba.__version__})")
    harness.print_machine()
    idle = harness.print_background(MAX_BACKGROUND, "rounds")
    blas = harness.blas_report()
    harness.print_blas(blas, "SciPy's L-BFGS-B and BFGS use these BLAS libraries; gd.lbfgs' "
                       "kernel uses none; np.dot in the njit quadratic calls SciPy's",
                       "threadpoolctl not installed: BLAS unknown; one-thread context rows "
                       "skipped")
    problems = make_problems(opts.quick)
    print(f"gd.lbfgs kernels in Numba's on-disk cache: {cached_kernels}"
          + (" (warm: loaded, not compiled)" if cached_kernels else
             " (cold: compiled in this run; first calls include compilation)"))
    print(f"stopping rule: gtol={GTOL:g} (max-norm of the gradient) for all; ftol=0 for "
          f"gd.lbfgs and L-BFGS-B; maxiter=maxfun={MAXITER}; memory m=10 for both L-BFGS")

    objective_compile = {}
    for name, fun, x, args in (("rosenbrock", rosenbrock_njit, problems[0].x0, ()),
                               ("quadratic", quadratic_njit, problems[-1].x0,
                                problems[-1].args)):
        t0 = time.perf_counter()
        fun(x, *args)
        objective_compile[name] = time.perf_counter() - t0

    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # BFGS line-search overflow chatter
        for p in problems:
            print(f"running {p.name} ...", flush=True)
            results.append(run_problem(p, opts.bfgs_1000, rounds))
    if not opts.bfgs_1000 and not opts.quick:
        print("note: BFGS on Rosenbrock n=1000 skipped (dense n x n updates over ~5000 "
              "iterations; run with --bfgs-1000 to include it once)")
    print("running Adam, compiled vs Python objective ...", flush=True)
    adam = adam_case(rounds)
    print("timing the objectives alone ...", flush=True)
    objective_us = objective_costs(problems)
    prof_problem = max((p for p in problems if p.name.startswith("Rosenbrock")),
                       key=lambda p: p.n)  # n=1000, the target case (n=100 with --quick)
    profile = [profile_lbfgsb(prof_problem, None)]
    if threadpool_limits is not None:
        profile.append(profile_lbfgsb(prof_problem, 1))
    print(f"running the outside problems (Moré-Garbow-Hillstrom), "
          f"{len(mgh_settings(opts.quick))} settings ...", flush=True)
    mgh = mgh_case(opts.quick)
    print("running the bounded outside problems (context) ...", flush=True)
    mgh_bounded = mgh_bounded_case(opts.quick)

    print_results(results, adam)
    compiled = compile_report(results, adam, objective_compile)
    lbfgsb_breakdown = breakdown(results, objective_us, profile)

    rows = table_rows(results)
    print()
    print(markdown(rows))
    print()
    print(adam_markdown(adam))
    print("\nTimes are medians of whole `scipy.optimize.minimize` calls after a warm-up call "
          "(Numba compilation excluded; see the first-call section). `python`: NumPy objective "
          "returning (f, g); `njit`: the same function under `numba.njit` -- gd.lbfgs then runs "
          "the whole minimization in one compiled call, SciPy still calls it from Python. "
          "nfev counts (f, g) evaluations. `L-BFGS-B [1 BLAS thread]` is context (threadpoolctl "
          "limit), not a target.")
    noisy = sorted({f"{r['problem']} / {r['solver']} / {r['objective']}" for r in rows
                    if r["contended"] and not r["once_only"]})
    if noisy or any(t.contended for t in adam["timings"].values()):
        print(f"\n> Not for publication: other processes used more than {MAX_BACKGROUND} cores "
              f"during most rounds of: {', '.join(noisy) or 'the Adam case'}.")
    print_mgh(mgh, opts.verbose)
    print_mgh_bounded(mgh_bounded)
    print()
    verdicts = targets(results, adam) + mgh_targets(mgh)
    harness.print_verdicts(verdicts)

    out = {
        "environment": harness.environment(),
        "blas": blas,
        "background_before_cores": idle,
        "settings": {"gtol": GTOL, "ftol_gdcore_lbfgsb": 0.0, "maxiter": MAXITER,
                     "maxfun": MAXITER, "solved_xtol": SOLVED_XTOL, "quick": opts.quick,
                     "bfgs_1000": opts.bfgs_1000, "mgh_shift": MGH_SHIFT,
                     "mgh_rules": dict(MGH_RULES),
                     "mgh_nfev_ratio_target": MGH_NFEV_RATIO_TARGET},
        "timing_policy": {"rounds": rounds, "settle_seconds": SETTLE_SECONDS,
                          "min_round_seconds": MIN_ROUND_SECONDS,
                          "max_case_seconds": MAX_CASE_SECONDS,
                          "max_background_cores": MAX_BACKGROUND},
        "problems": [{"name": r["problem"].name, "n": r["problem"].n, "checks": r["checks"],
                      "first_call_s": r["first_call_s"], "timings_us": r["timings"],
                      "round_background_cores": r["background"],
                      "lbfgs_identity": r["identity"]} for r in results],
        "adam": {k: v for k, v in adam.items() if k != "labels"},
        "objective_us_per_call": objective_us,
        "compile": compiled,
        "lbfgsb_breakdown": lbfgsb_breakdown,
        "lbfgsb_profile": profile,
        "mgh": mgh,
        "mgh_bounded": mgh_bounded["rows"],
        "lbfgs_kernels_cached_at_start": cached_kernels,
        "table": rows,
        "targets": verdicts,
    }
    harness.write_results(RESULTS_PATH, out, t_start)


if __name__ == "__main__":
    main()
