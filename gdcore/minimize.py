"""gdcore's optimizers as ``scipy.optimize.minimize`` methods, and :func:`minimize`.

Every gdcore method object (``gd.adam(...)``, ``gd.sgd(...)``, ...,
``gd.lbfgs()``, ``gd.gd()``) is callable the way SciPy calls a custom
``method``::

    method(fun, x0, args=(), jac=None, hess=None, hessp=None, bounds=None,
           constraints=(), callback=None, **options) -> scipy.optimize.OptimizeResult

so ``scipy.optimize.minimize(fun, x0, jac=True, method=gd.adam(0.05))``
works unchanged.  The result has ``x, fun, jac, nit, nfev, njev, status,
success, message``; status 0 is success, 1 the iteration or evaluation
limit, 2 no progress (line search), 3 a NaN/Inf value or gradient (the
result keeps the last finite point), 99 a callback that raised
``StopIteration``.

Options (unknown ones are ignored, with a warning when they look like a
misspelled gdcore option): ``maxiter``, ``maxfun``, ``gtol`` (max-norm of the
projected gradient), ``ftol`` (relative decrease of ``f`` between
iterations), ``tol`` (what ``minimize(tol=...)`` passes: sets ``gtol``), and
for mini-batch objectives ``n_samples``, ``batch_size``, ``seed``: ``fun``
is then called as ``fun(x, *args, batch=indices)`` with shuffled index
arrays, epoch after epoch.
"""

import difflib
import inspect
import warnings

import numpy as np
from scipy.optimize import Bounds, OptimizeResult

from . import _validate
from .kernels import lbfgs as lb
from .kernels import minimize_loops
from .objective import Objective, compiled_fg
from .schedules import as_schedule

SUCCESS = 0
LIMIT = 1
NO_PROGRESS = 2
NONFINITE = 3
CALLBACK_STOP = 99

_GTOL_MESSAGE = "Optimization terminated successfully (gradient norm <= gtol)."
_FTOL_MESSAGE = "Optimization terminated successfully (relative reduction of f <= ftol)."
_NONFINITE_AT_X0_MESSAGE = "NaN or Inf in the objective or its gradient at x0"
_NONFINITE_MESSAGE = ("NaN or Inf in the objective or its gradient; returning the last finite "
                      "point")
_NO_BOUNDS = np.zeros(0)  # lower and upper of an unbounded problem, for the kernels

KNOWN_OPTIONS = ("maxiter", "maxfun", "gtol", "ftol", "tol", "n_samples", "batch_size",
                 "seed", "disp", "return_all")


# Arguments -------------------------------------------------------------------------------
def check_x0(x0):
    """x0 as a writeable 1-D float array (float32 stays float32; integers become float64)."""
    x = np.atleast_1d(np.asarray(x0))  # a scalar is one variable, as in SciPy
    if x.ndim != 1:
        raise ValueError(f"'x0' must only have one dimension, got shape {x.shape}")
    if x.dtype not in _validate.FLOAT_DTYPES:
        if x.dtype.kind not in "biuf":
            raise TypeError(f"x0 must hold real numbers, got dtype {x.dtype}")
        x = x.astype(np.float64)
    if x.shape[0] == 0:
        raise ValueError("x0 is empty")
    return np.array(x, dtype=x.dtype, order="C", copy=True)


def refuse_mini_batches(options, name):
    if "n_samples" in options or "batch_size" in options:
        raise ValueError(f"{name} needs full function values; mini-batch objectives "
                         "(n_samples, batch_size) need a first-order method such as sgd or adam")


def check_bounds(bounds, n):
    """``(lower, upper)`` float64 arrays of length n, or None for no bounds."""
    if bounds is None:
        return None
    if isinstance(bounds, Bounds):
        lower, upper = np.broadcast_to(bounds.lb, (n,)), np.broadcast_to(bounds.ub, (n,))
    else:
        pairs = list(bounds)
        if len(pairs) != n:
            raise ValueError(f"bounds must have {n} (lo, hi) pairs like x0, got {len(pairs)}")
        lower = np.array([-np.inf if p[0] is None else p[0] for p in pairs], dtype=float)
        upper = np.array([np.inf if p[1] is None else p[1] for p in pairs], dtype=float)
    lower = np.array(lower, dtype=np.float64)
    upper = np.array(upper, dtype=np.float64)
    if np.any(lower > upper) or np.any(np.isnan(lower)) or np.any(np.isnan(upper)):
        raise ValueError("bounds must have lo <= hi for every variable")
    return lower, upper


def split_options(options):
    """Run options by name, warning about unknown names that resemble known ones."""
    warn_misspelled([k for k in options if k not in KNOWN_OPTIONS], KNOWN_OPTIONS, stacklevel=6)
    return {k: options[k] for k in KNOWN_OPTIONS if k in options}


def warn_misspelled(keys, known, stacklevel):
    """RuntimeWarning for each of ``keys`` that looks like a misspelling of one of ``known``.

    Other unknown names pass silently: SciPy hands every method the options
    meant for others (``disp``, ``iprint``, ...).
    """
    for key in keys:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
        if close:
            warnings.warn(f"unknown option {key!r} ignored; did you mean {close[0]!r}?",
                          RuntimeWarning, stacklevel=stacklevel)


def wrap_callback(callback):
    """``cb(x, f)`` calling ``callback`` in its SciPy form (new or legacy)."""
    if callback is None:
        return None
    try:
        params = inspect.signature(callback).parameters
    except (TypeError, ValueError):
        params = {}
    if set(params) == {"intermediate_result"}:
        return lambda x, f: callback(intermediate_result=OptimizeResult(x=x.copy(), fun=f))
    return lambda x, f: callback(x.copy())


class Run:
    """Limits, counters and the outcome of one minimization."""

    def __init__(self, objective, options, default_maxiter, default_ftol):
        gtol = options.get("gtol", options.get("tol", 1e-5))
        self.gtol = _validate.nonnegative_float(gtol, "gtol")
        self.ftol = _validate.nonnegative_float(options.get("ftol", default_ftol), "ftol")
        self.maxiter = _validate.positive_int(options.get("maxiter", default_maxiter),
                                              "maxiter")
        self.maxfun = options.get("maxfun")
        if self.maxfun is not None:
            self.maxfun = _validate.positive_int(self.maxfun, "maxfun")
        self.objective = objective
        self.nit = 0

    def out_of_evaluations(self):
        return self.maxfun is not None and self.objective.nfev >= self.maxfun

    def before_step(self, x, f, g, pg_norm):
        """The result when gtol or a limit ends the run before another step, else None."""
        if pg_norm <= self.gtol:
            return self.result(x, f, g, SUCCESS, _GTOL_MESSAGE)
        if self.nit >= self.maxiter or self.out_of_evaluations():
            return self.result(x, f, g, LIMIT, limit_message(self))
        return None

    def after_step(self, callback, x, f, g, f_prev):
        """Count the iteration, run the callback, test ftol: a result, or None to go on."""
        self.nit += 1
        if callback is not None:
            try:
                callback(x, f)
            except StopIteration:
                return self.result(x, f, g, CALLBACK_STOP, "`callback` raised `StopIteration`.")
        if self.ftol > 0 and abs(f_prev - f) <= self.ftol * max(abs(f_prev), abs(f), 1.0):
            return self.result(x, f, g, SUCCESS, _FTOL_MESSAGE)
        return None

    def result(self, x, f, g, status, message):
        return OptimizeResult(x=x, fun=f, jac=g, nit=self.nit, nfev=self.objective.nfev,
                              njev=self.objective.njev, status=status,
                              success=status == SUCCESS, message=message)


def limit_message(run):
    if run.out_of_evaluations():
        return "Maximum number of function evaluations has been exceeded."
    return "Maximum number of iterations has been exceeded."


def prepare(fun, x0, args, jac, bounds, constraints, options):
    """Common argument handling of every method: (objective, x, bounds, options)."""
    if constraints:
        raise NotImplementedError("gdcore methods handle bounds but not constraints; "
                                  "use SLSQP, COBYLA or trust-constr for constrained problems")
    x = check_x0(x0)
    if not isinstance(args, tuple):
        args = (args,)
    objective = Objective(fun, jac, args)
    box = check_bounds(bounds, x.shape[0])
    objective.bounds = box
    return objective, x, box, split_options(options)


# L-BFGS ----------------------------------------------------------------------------------
def run_lbfgs(method, fun, x0, args=(), jac=None, bounds=None, constraints=(), callback=None,
              **options):
    """L-BFGS through the reverse-communication kernel (:mod:`gdcore.kernels.lbfgs`)."""
    objective, x, box, options = prepare(fun, x0, args, jac, bounds, constraints, options)
    refuse_mini_batches(options, "lbfgs")
    n = x.shape[0]
    dtype = x.dtype
    run = Run(objective, options, default_maxiter=15000, default_ftol=2.220446049250313e-09)
    state = LbfgsState(n, method.m, method.c1, method.c2, run.gtol, run.ftol, box)
    if box is not None:
        np.clip(x, box[0], box[1], out=x)
    state.vec[3] = x
    cb = wrap_callback(callback)
    x_eval = np.empty(n, dtype=dtype)  # the objective sees x in x0's dtype
    g_eval = np.empty(n, dtype=np.float64)
    fg = compiled_fg(objective) if cb is None else None
    if fg is not None:
        outcome, run.nit, nfev, f_trial = minimize_loops.lbfgs_loop(
            fg, objective.args, state.vec, state.pairs, state.rho, state.alpha, state.fs,
            state.js, state.lower, state.upper, x_eval, run.maxiter, run.maxfun or 0)
        objective.count_compiled(nfev)
        if outcome in (minimize_loops.LIMIT_ITERATIONS, minimize_loops.LIMIT_EVALUATIONS):
            return state.result(run, LIMIT, limit_message(run), dtype)
        g_eval[:] = state.vec[4]
        return lbfgs_outcome(outcome, state, run, dtype, f_trial, g_eval)
    f_trial = 0.0
    while True:
        request = state.step(f_trial)
        if request == lb.EVALUATE:
            if run.out_of_evaluations():
                return state.result(run, LIMIT, limit_message(run), dtype)
            x_eval[:] = state.vec[3]
            f_trial = objective(x_eval, g_eval)
            state.vec[4] = g_eval
            continue
        if request == lb.ITERATE:
            run.nit += 1
            if cb is not None:
                try:
                    cb(state.vec[0].astype(dtype), state.fs[lb.F_X])
                except StopIteration:
                    return state.result(run, CALLBACK_STOP, "`callback` raised `StopIteration`.",
                                        dtype)
            if run.nit >= run.maxiter and state.js[lb.PHASE] != lb.FINISHED:
                return state.result(run, LIMIT, limit_message(run), dtype)
            continue
        return lbfgs_outcome(request, state, run, dtype, f_trial, g_eval)


def lbfgs_outcome(request, state, run, dtype, f_trial, g_eval):
    """The result for a final request of the L-BFGS state machine."""
    if request == lb.CONVERGED:
        why = ("CONVERGENCE: NORM OF PROJECTED GRADIENT <= GTOL"
               if state.js[lb.MESSAGE] == lb.BY_GTOL
               else "CONVERGENCE: RELATIVE REDUCTION OF F <= FTOL")
        return state.result(run, SUCCESS, why, dtype)
    if request == lb.FAILED:
        return state.result(run, NO_PROGRESS, "ABNORMAL: the line search found no step "
                            "that decreases f enough", dtype)
    # NONFINITE: only reported for the starting point.
    return run.result(state.vec[3].astype(dtype), f_trial, g_eval.astype(dtype), NONFINITE,
                      _NONFINITE_AT_X0_MESSAGE)


class LbfgsState:
    """The arrays of the L-BFGS state machine (:func:`gdcore.kernels.lbfgs.lbfgs_step`)."""

    def __init__(self, n, m, c1, c2, gtol, ftol, box):
        shapes = lb.state_sizes(n, m)
        self.vec, self.pairs, self.rho, self.alpha, self.fs = (
            np.zeros(shapes[k]) for k in ("vectors", "pairs", "rho", "alpha", "fs"))
        self.js = np.zeros(shapes["js"], dtype=np.int64)
        self.fs[lb.GTOL], self.fs[lb.FTOL], self.fs[lb.C1], self.fs[lb.C2] = gtol, ftol, c1, c2
        self.js[lb.M] = m
        self.js[lb.HAS_BOUNDS] = box is not None
        self.lower, self.upper = box if box is not None else (_NO_BOUNDS, _NO_BOUNDS)

    def step(self, f_trial):
        return lb.lbfgs_step(self.vec, self.pairs, self.rho, self.alpha, self.fs, self.js,
                             f_trial, self.lower, self.upper)

    def result(self, run, status, message, dtype):
        return run.result(self.vec[0].astype(dtype), self.fs[lb.F_X],
                          self.vec[1].astype(dtype), status, message)


# First-order methods -----------------------------------------------------------------------
def run_first_order(optimizer, fun, x0, args=(), jac=None, bounds=None, constraints=(),
                    callback=None, **options):
    """A gdcore optimizer's update rule driven by a SciPy-style objective."""
    objective, x, box, options = prepare(fun, x0, args, jac, bounds, constraints, options)
    run = Run(objective, options, default_maxiter=10000, default_ftol=0.0)
    batches = MiniBatches.from_options(options)
    cb = wrap_callback(callback)
    state = optimizer.init(x)
    g = np.empty_like(x)
    if box is not None:
        np.clip(x, box[0], box[1], out=x)
    fg = compiled_fg(objective) if cb is None and batches is None else None
    if fg is not None:
        return first_order_compiled(fg, optimizer, objective, run, x, g, state, box)
    if batches is not None:
        objective.kwargs = {"batch": batches.next()}
    f = objective(x, g)
    finite, pg_norm = gradient_check(x, g, box)
    if not (finite and np.isfinite(f)):
        return run.result(x, f, g, NONFINITE, _NONFINITE_AT_X0_MESSAGE)
    x_prev, g_prev = x.copy(), g.copy()
    while True:
        done = run.before_step(x, f, g, pg_norm)
        if done is not None:
            return done
        x_prev[:] = x
        g_prev[:] = g
        f_prev = f
        finite = optimizer.update_inplace(g, state, x)
        if box is not None:
            np.clip(x, box[0], box[1], out=x)
        if finite:
            if batches is not None:
                objective.kwargs = {"batch": batches.next()}
            f = objective(x, g)
            finite, pg_norm = gradient_check(x, g, box)
            finite = finite and np.isfinite(f)
        if not finite:
            return run.result(x_prev, f_prev, g_prev, NONFINITE, _NONFINITE_MESSAGE)
        done = run.after_step(cb, x, f, g, f_prev)
        if done is not None:
            return done


def first_order_compiled(fg, optimizer, objective, run, x, g, state, box):
    """:func:`run_first_order`'s loop as one compiled call (same kernels, same iterates)."""
    lrs = np.asarray(as_schedule(optimizer.learning_rate)(np.arange(run.maxiter)),
                     dtype=np.float64)
    lower, upper = box if box is not None else (_NO_BOUNDS, _NO_BOUNDS)
    x_prev, g_prev = np.empty_like(x), np.empty_like(g)
    status, run.nit, nfev, f = minimize_loops.first_order_loop(
        fg, objective.args, optimizer.code, optimizer.hyper, lrs, x, x_prev, g, g_prev,
        state.slots, state.scalars, lower, upper, box is not None, run.gtol,
        run.ftol, run.maxiter, run.maxfun or 0)
    objective.count_compiled(nfev)
    if status == minimize_loops.NONFINITE_AT_X0:
        return run.result(x_prev, f, g_prev, NONFINITE, _NONFINITE_AT_X0_MESSAGE)
    if status == NONFINITE:
        return run.result(x_prev, f, g_prev, NONFINITE, _NONFINITE_MESSAGE)
    if status == LIMIT:
        return run.result(x, f, g, LIMIT, limit_message(run))
    return run.result(x, f, g, SUCCESS, _FTOL_MESSAGE if status == minimize_loops.BY_FTOL
                      else _GTOL_MESSAGE)




def gradient_check(x, g, box):
    """(g is finite, max-norm of the projected gradient): one compiled pass."""
    if box is None:
        return lb.gradient_check(x, g, _NO_BOUNDS, _NO_BOUNDS, False)
    return lb.gradient_check(x, g, box[0], box[1], True)


class MiniBatches:
    """Shuffled index arrays for ``fun(x, *args, batch=idx)``, epoch after epoch."""

    def __init__(self, n_samples, batch_size, seed):
        self.n = _validate.positive_int(n_samples, "n_samples")
        self.size = min(_validate.positive_int(batch_size, "batch_size"), self.n)
        self.rng = np.random.default_rng(_validate.nonnegative_int(seed, "seed"))
        self.order = self.rng.permutation(self.n)
        self.pos = 0

    @classmethod
    def from_options(cls, options):
        if "n_samples" not in options and "batch_size" not in options:
            return None
        if "n_samples" not in options or "batch_size" not in options:
            raise ValueError("mini-batch objectives need both n_samples and batch_size options")
        return cls(options["n_samples"], options["batch_size"], options.get("seed", 0))

    def next(self):
        if self.pos >= self.n:
            self.order = self.rng.permutation(self.n)
            self.pos = 0
        idx = self.order[self.pos:self.pos + self.size]
        self.pos += self.size
        return idx


# Plain gradient descent ---------------------------------------------------------------------
def run_gradient_descent(method, fun, x0, args=(), jac=None, bounds=None, constraints=(),
                         callback=None, **options):
    """Steepest descent with Armijo backtracking (``x - t g``, ``t`` halved until
    ``f`` drops by ``c1 t |g|^2``; the next search starts from ``2 t``)."""
    objective, x, box, options = prepare(fun, x0, args, jac, bounds, constraints, options)
    refuse_mini_batches(options, "gd")
    run = Run(objective, options, default_maxiter=10000, default_ftol=0.0)
    cb = wrap_callback(callback)
    g = np.empty_like(x)
    if box is not None:
        np.clip(x, box[0], box[1], out=x)
    f = objective(x, g)
    finite, pg_norm = gradient_check(x, g, box)
    if not (finite and np.isfinite(f)):
        return run.result(x, f, g, NONFINITE, _NONFINITE_AT_X0_MESSAGE)
    t = 1.0
    trial = np.empty_like(x)
    g_trial = np.empty_like(x)
    while True:
        done = run.before_step(x, f, g, pg_norm)
        if done is not None:
            return done
        t = min(2.0 * t, 1e10)
        g64 = g.astype(np.float64)  # g is fixed while the step is backtracked
        for _ in range(60):
            np.subtract(x, t * g, out=trial)
            if box is not None:
                np.clip(trial, box[0], box[1], out=trial)
            if np.array_equal(trial, x):
                return run.result(x, f, g, NO_PROGRESS, "ABNORMAL: the step fell below the "
                                  "resolution of x without decreasing f enough")
            if run.out_of_evaluations():
                return run.result(x, f, g, LIMIT, limit_message(run))
            f_trial = objective(trial, g_trial)
            decrease = float(np.dot(g64, (x - trial).astype(np.float64)))
            if np.isfinite(f_trial) and f_trial <= f - method.c1 * decrease:
                finite, pg_trial = gradient_check(trial, g_trial, box)
                if finite:
                    break
            t *= 0.5
        else:
            return run.result(x, f, g, NO_PROGRESS, "ABNORMAL: backtracking found no step "
                              "that decreases f enough")
        f_prev = f
        x[:], g[:], f = trial, g_trial, f_trial
        pg_norm = pg_trial
        done = run.after_step(cb, x, f, g, f_prev)
        if done is not None:
            return done


# gd.minimize ---------------------------------------------------------------------------------
def minimize(fun, x0, args=(), method="lbfgs", jac=None, callback=None, tol=None, options=None,
             bounds=None):
    """Minimize ``fun`` with a gdcore method, with ``scipy.optimize.minimize``'s semantics.

    Parameters
    ----------
    fun : callable
        ``fun(x, *args) -> f``, or ``-> (f, g)`` with ``jac=True``.
    x0 : array-like of shape (n,)
    args : tuple
    method : str or method object
        ``"lbfgs"``, ``"gd"``, ``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"``,
        ``"adagrad"``, ``"adamax"``, ``"nadam"``, ``"lion"``, or an object such as
        ``gd.adam(0.05)``.  With a name, ``options`` may also carry the
        method's hyperparameters (``{"learning_rate": 0.05}``).
    jac : True, callable, None, "2-point" or "3-point"
    callback : callable, optional
        ``callback(intermediate_result)`` or ``callback(xk)``, once per iteration.
    tol : float, optional
        Sets ``gtol`` unless ``options`` does.
    options : dict, optional
        ``maxiter``, ``maxfun``, ``gtol``, ``ftol``, and the mini-batch
        options ``n_samples``, ``batch_size``, ``seed``.
    bounds : sequence of (lo, hi) or scipy.optimize.Bounds, optional

    Returns
    -------
    scipy.optimize.OptimizeResult
    """
    from . import optim  # the factories live there; optim imports this module

    options = dict(options or {})
    if tol is not None:
        options.setdefault("tol", tol)
    if isinstance(method, str):
        factory = optim.METHODS.get(method.lower())
        if factory is None:
            raise ValueError(f"unknown method {method!r}; expected one of: "
                             f"{', '.join(sorted(optim.METHODS))}")
        names = list(inspect.signature(factory).parameters)
        hyper = {k: options.pop(k) for k in list(options) if k in names}
        warn_misspelled([k for k in options if k not in KNOWN_OPTIONS], names, stacklevel=3)
        method = factory(**hyper)
    if not callable(method):
        raise TypeError(f"method must be a name or a gdcore method object, got {method!r}")
    return method(fun, x0, args=args, jac=jac, bounds=bounds, callback=callback, **options)
