"""The drivers behind gdcore's ``scipy.optimize.minimize`` methods.

:mod:`gdcore.minimize` states the contract (options, statuses, results,
Ctrl-C); this module runs it: option checking, the evaluation counters and
the result (:class:`Run`), and one driver per kind of method, each with a
Python loop and, for objectives compiled with Numba, a compiled twin
(:mod:`gdcore.kernels.minimize_loops`):

* :func:`run_first_order`: a gdcore update rule (``gd.adam(...)``, ...);
* :func:`run_lbfgs`: L-BFGS (:mod:`gdcore.kernels.lbfgs`);
* :func:`run_gradient_descent`: steepest descent with Armijo backtracking.

It knows the method objects only by what they carry (their settings and
update kernel), never by their classes: :mod:`gdcore.optim` (the rules) and
:mod:`gdcore.minimize` (the line-search methods, :func:`gdcore.minimize`)
import it, and it imports neither.
"""
import dataclasses
import difflib
import functools
import inspect
import time
import warnings

import numpy as np
from scipy.optimize import Bounds, OptimizeResult, OptimizeWarning

from . import _validate, codes
from .kernels import lbfgs as lb
from .kernels import minimize_loops
from .kernels.updates import update_kernel
from ._interrupt import CtrlC
from .objective import FD_METHODS, Objective, compiled_fg
from .schedules import as_schedule

# The result's statuses (gdcore.minimize's docstring), defined once in gdcore.codes.
SUCCESS = codes.SUCCESS
LIMIT = codes.LIMIT
NO_PROGRESS = codes.NO_PROGRESS
NONFINITE = codes.NONFINITE
CALLBACK_STOP = codes.CALLBACK_STOP
INTERRUPTED = codes.INTERRUPTED

_GTOL_MESSAGE = "Optimization terminated successfully (gradient norm <= gtol)."
_FTOL_MESSAGE = "Optimization terminated successfully (relative reduction of f <= ftol)."
_NONFINITE_AT_X0_MESSAGE = "NaN or Inf in the objective or its gradient at x0"
_NONFINITE_MESSAGE = ("NaN or Inf in the objective or its gradient; returning the last finite "
                      "point")
_INTERRUPTED_MESSAGE = "Interrupted (KeyboardInterrupt); returning the last accepted iterate."
_INTERRUPTED_AT_X0_MESSAGE = ("Interrupted (KeyboardInterrupt) during the evaluation at x0; "
                              "returning x0, with fun and jac NaN")
_NO_BOUNDS = np.zeros(0)  # lower and upper of an unbounded problem, for the kernels

# The options every method honours (SciPy's names), and those of L-BFGS alone.
KNOWN_OPTIONS = ("maxiter", "maxfun", "maxfev", "gtol", "ftol", "tol", "eps",
                 "finite_diff_rel_step", "disp", "return_all", "n_samples", "batch_size",
                 "seed")
LBFGS_OPTIONS = ("maxcor", "maxls")
# Other libraries' names for gdcore's hyperparameters (torch, scikit-learn): refused
# like the gdcore names, with the gdcore name in the message.  (L-BFGS-B's maxcor is
# an option of its own: the memory of one run.)
ALIASES = {"lr": "learning_rate", "learning_rate_init": "learning_rate", "beta1": "b1",
           "beta2": "b2", "epsilon": "eps"}


class OptionWarning(OptimizeWarning, RuntimeWarning):
    """An option that has no effect on the run.

    Both an ``OptimizeWarning`` (what SciPy's own methods warn for unknown
    options, so SciPy users' filters catch it) and a ``RuntimeWarning`` (what
    gdcore warned before, so existing filters keep working).
    """


# Arguments -------------------------------------------------------------------------------
def check_x0(x0):
    """x0 as a writeable 1-D float array (float32 stays float32; integers become float64)."""
    try:
        x = np.atleast_1d(np.asarray(x0))  # a scalar is one variable, as in SciPy
    except (TypeError, ValueError) as exc:  # ragged nesting, unconvertible objects
        raise ValueError(f"x0 must be a 1-D array of real numbers: {exc}") from None
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
    expected = (f"bounds must be scipy.optimize.Bounds or {n} (lo, hi) pairs like x0 "
                f"(None for no bound)")
    try:
        if isinstance(bounds, Bounds):
            lower = np.broadcast_to(bounds.lb, (n,))
            upper = np.broadcast_to(bounds.ub, (n,))
        else:
            pairs = list(bounds)
            if len(pairs) != n:
                raise ValueError(f"{expected}, got {len(pairs)} items")
            if any(len(p) != 2 for p in pairs):
                raise ValueError(f"{expected}, got an item that is not a pair")
            lower = np.array([-np.inf if p[0] is None else p[0] for p in pairs], dtype=float)
            upper = np.array([np.inf if p[1] is None else p[1] for p in pairs], dtype=float)
        lower = np.array(lower, dtype=np.float64)
        upper = np.array(upper, dtype=np.float64)
    except ValueError as exc:
        if str(exc).startswith(expected):
            raise
        raise ValueError(f"{expected}: {exc}") from None
    except TypeError as exc:  # not iterable, unsized items, non-numbers
        raise ValueError(f"{expected}: {exc}") from None
    if np.any(lower > upper) or np.any(np.isnan(lower)) or np.any(np.isnan(upper)):
        raise ValueError("bounds must have lo <= hi for every variable")
    return lower, upper


def known_options(method):
    """The option names ``method`` honours."""
    return KNOWN_OPTIONS + LBFGS_OPTIONS if method.name == "lbfgs" else KNOWN_OPTIONS


def warn_option(message):
    """An :class:`OptionWarning`, for a function that :func:`prepare` calls: the
    warning points at the caller of scipy.optimize.minimize or gd.minimize."""
    warnings.warn(message, OptionWarning, stacklevel=7)


def split_options(options, method):
    """Run options by name; an :class:`OptionWarning` for each unknown one (SciPy
    hands a method everything in ``options``), naming the closest known option or
    hyperparameter of ``method``."""
    known = known_options(method)
    for key in options:
        if key not in known:
            close = difflib.get_close_matches(key, known + hyperparameter_names(method), n=1,
                                              cutoff=0.75)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            warn_option(f"unknown option {key!r} ignored{hint}")
    return {k: options[k] for k in known if k in options}


def hyperparameter_names(method):
    """The names ``method``'s factory takes (``gd.adam``: learning_rate, b1, ...)."""
    settings = getattr(method, "settings", None)  # an Optimizer
    if settings is not None:
        return ("learning_rate",) + tuple(name for name, _ in settings)
    return tuple(field.name for field in dataclasses.fields(method))


def refuse_hyperparameters(method, options):
    """ValueError when ``options`` names a hyperparameter of the method object:
    its settings were fixed when it was made, and ignoring them would be silent."""
    known = known_options(method)
    if all(key in known for key in options):  # the common case, quickly
        return
    names = hyperparameter_names(method)
    for key, value in options.items():
        if key in known:  # eps: SciPy's finite-difference step, not gd.adam's eps
            continue
        name = key if key in names else ALIASES.get(key)
        if name in names:
            raise ValueError(
                f"option {key!r} cannot change the hyperparameters of the method object "
                f"{method!r}: write method=gd.{method.name}({name}={value!r}), or "
                f"gd.minimize(..., method={method.name!r}, options={{{name!r}: {value!r}}})")


def method_factory(make):
    """``make`` (a factory such as ``gd.lbfgs``), which says to call it when it is
    itself passed as a method and SciPy calls it with ``fun, x0, args=...``."""
    @functools.wraps(make)
    def factory(*args, **kwargs):
        if "args" in kwargs and "callback" in kwargs:  # how SciPy calls a custom method
            raise TypeError(factory_passed(make))
        return make(*args, **kwargs)

    return factory


def factory_passed(factory, by_name=False):
    """The message for a factory passed where the method it makes is expected."""
    name = factory.__name__
    required = ", ".join(f"{p.name}=..." for p in inspect.signature(factory).parameters.values()
                         if p.default is p.empty)
    alternative = f", or pass its name, method={name!r}" if by_name else ""
    return (f"method=gd.{name} is the factory of the method, not the method: call it, "
            f"method=gd.{name}({required}){alternative}")


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


class Slices:
    """How much work one compiled call may do to last about ``SECONDS``.

    Sized from the time per evaluation measured so far (at first, the
    Python-side evaluation at ``x0``, an overestimate); capped at
    ``MAX_EVALUATIONS``, which also bounds the first-order loops' table of
    learning rates, whatever ``maxiter`` is.
    """

    SECONDS = 0.25
    MAX_EVALUATIONS = 1 << 16

    def __init__(self, seconds_per_evaluation):
        self.per_evaluation = seconds_per_evaluation

    def budget(self):
        """Evaluations for the next call (at least 1)."""
        return int(min(max(self.SECONDS / max(self.per_evaluation, 1e-9), 1.0),
                       self.MAX_EVALUATIONS))

    def measured(self, seconds, evaluations):
        if evaluations > 0:
            self.per_evaluation = seconds / evaluations


class Run:
    """Limits, counters and the outcome of one minimization."""

    def __init__(self, objective, options, default_maxiter, default_ftol):
        name = "gtol" if "gtol" in options else "tol"  # errors name what the user wrote
        self.gtol = _validate.nonnegative_float(options.get(name, 1e-5), name)
        self.ftol = _validate.nonnegative_float(options.get("ftol", default_ftol), "ftol")
        self.maxiter = _validate.positive_int(options.get("maxiter", default_maxiter),
                                              "maxiter")
        self.maxfun = evaluation_limit(options)
        self.objective = objective
        self.nit = 0
        self.stop = CtrlC()
        self.disp = bool(options.get("disp", False))
        # The iterates, x0 first, when return_all asks for them; the compiled
        # loops cannot record them, so a run that does takes the Python path.
        self.allvecs = [] if options.get("return_all", False) else None

    def evaluate(self, x, g):
        """``objective(x, g)``; Ctrl-C or the objective may raise KeyboardInterrupt."""
        return self.stop.user(self.objective, x, g)

    def evaluate_x0(self, x, g, fg=None):
        """The first evaluation, timed into ``seconds_x0``; None when interrupted.
        ``x`` (x0) is the first iterate recorded for return_all.

        With ``fg``, the objective's compiled ``(f, g)`` function, it is called
        directly (the Objective's checks cost microseconds, and the compiled
        loops then call ``fg`` the same way).
        """
        self.record(x)
        start = time.perf_counter()
        try:
            if fg is None:
                f = self.evaluate(x, g)
            else:
                f, grad = self.stop.user(fg, x, *self.objective.args)
        except KeyboardInterrupt:
            return None
        if fg is not None:
            f = float(f)
            g[:] = grad
            self.objective.count_compiled(1)
        self.seconds_x0 = time.perf_counter() - start
        return f

    def record(self, x):
        """Keep a copy of the iterate ``x`` (in x0's dtype) when return_all asked for them."""
        if self.allvecs is not None:
            self.allvecs.append(x.copy())

    def interrupted_at_x0(self, x):
        nan = np.full_like(x, np.nan)
        return self.result(x, np.nan, nan, INTERRUPTED, _INTERRUPTED_AT_X0_MESSAGE)

    def start(self, x, g, box, fg=None):
        """:meth:`evaluate_x0` and the gradient test there: ``(f, max-norm of the
        projected gradient, None)``, or ``(None, None, result)`` when the run ends at
        x0 (interrupted, or NaN/Inf)."""
        f = self.evaluate_x0(x, g, fg)
        if f is None:
            return None, None, self.interrupted_at_x0(x)
        finite, pg_norm = gradient_check(x, g, box)
        if not (finite and np.isfinite(f)):
            return None, None, self.result(x, f, g, NONFINITE, _NONFINITE_AT_X0_MESSAGE)
        return f, pg_norm, None

    def out_of_evaluations(self):
        return self.maxfun is not None and self.objective.nfev >= self.maxfun

    def before_step(self, x, f, g, pg_norm):
        """The result when gtol, a limit or Ctrl-C ends the run before another step,
        else None."""
        if pg_norm <= self.gtol:
            return self.result(x, f, g, SUCCESS, _GTOL_MESSAGE)
        if self.nit >= self.maxiter or self.out_of_evaluations():
            return self.result(x, f, g, LIMIT, limit_message(self))
        if self.stop.pending:
            return self.interrupted(x, f, g)
        return None

    def after_step(self, callback, x, f, g, f_prev):
        """Count the iteration, run the callback, test ftol: a result, or None to go on."""
        self.nit += 1
        self.record(x)
        if callback is not None:
            stopped = self.call_back(callback, x, f)
            if stopped is not None:
                return self.result(x, f, g, *stopped)
        if self.ftol > 0 and abs(f_prev - f) <= self.ftol * max(abs(f_prev), abs(f), 1.0):
            return self.result(x, f, g, SUCCESS, _FTOL_MESSAGE)
        return None

    def call_back(self, callback, x, f):
        """Run ``callback(x, f)``: ``(status, message)`` when it stops the run
        (``StopIteration``, ``KeyboardInterrupt``), else None."""
        try:
            self.stop.user(callback, x, f)
        except StopIteration:
            return CALLBACK_STOP, "`callback` raised `StopIteration`."
        except KeyboardInterrupt:
            return INTERRUPTED, _INTERRUPTED_MESSAGE
        return None

    def interrupted(self, x, f, g):
        return self.result(x, f, g, INTERRUPTED, _INTERRUPTED_MESSAGE)

    def result(self, x, f, g, status, message):
        """The run's result, made once, when it ends: with ``allvecs`` when
        return_all asked for it, and the summary printed when disp did."""
        res = OptimizeResult(x=x, fun=float(f), jac=g, nit=self.nit, nfev=self.objective.nfev,
                             njev=self.objective.njev, status=status,
                             success=status == SUCCESS, message=message)
        if self.allvecs is not None:
            res.allvecs = self.allvecs
        if self.disp:
            print_summary(res)
        return res


def print_summary(res):
    """The summary SciPy's BFGS prints with ``disp=True``, in its format (the message
    is printed whatever the status, where BFGS warns it for a failure)."""
    print(res.message)
    print(f"         Current function value: {res.fun:f}")
    print(f"         Iterations: {res.nit:d}")
    print(f"         Function evaluations: {res.nfev:d}")
    print(f"         Gradient evaluations: {res.njev:d}")


def evaluation_limit(options):
    """``maxfun`` (L-BFGS-B's name) or ``maxfev`` (Nelder-Mead's and Powell's): the
    most calls of ``fun``, or None for no limit."""
    given = {key: _validate.positive_int(options[key], key) for key in ("maxfun", "maxfev")
             if options.get(key) is not None}
    if len(set(given.values())) > 1:
        raise ValueError(f"maxfun={given['maxfun']} and maxfev={given['maxfev']} are two "
                         "names of one limit, the number of evaluations: give one")
    return next(iter(given.values()), None)


def limit_message(run):
    if run.out_of_evaluations():
        return "Maximum number of function evaluations has been exceeded."
    return "Maximum number of iterations has been exceeded."


def prepare(method, fun, x0, args, jac, bounds, constraints, options, callback=None):
    """Common argument handling of every method: (objective, x, bounds, options)."""
    if constraints:
        raise NotImplementedError("gdcore methods handle bounds but not constraints; "
                                  "use SLSQP, COBYLA or trust-constr for constrained problems")
    x = check_x0(x0)
    if not isinstance(args, tuple):
        args = (args,)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    options = split_options(options, method)
    objective = Objective(fun, jac, args,
                          **finite_difference_steps(options, method, jac, x.shape[0]))
    box = check_bounds(bounds, x.shape[0])
    objective.bounds = box
    return objective, x, box, options


def finite_difference_steps(options, method, jac, n):
    """Objective's ``eps`` and ``rel_step`` from the options ``eps`` and
    ``finite_diff_rel_step``, each passed only to the gradient it sets (``eps``:
    jac None; ``finite_diff_rel_step``: jac '2-point' or '3-point'), with an
    :class:`OptionWarning` where it has no effect."""
    by_jac = jac is True or callable(jac)
    relative = isinstance(jac, str) and jac in FD_METHODS
    steps = {}
    if options.get("eps") is not None:
        eps = step_size(options["eps"], "eps", n)
        if jac is None:
            steps["eps"] = eps
        elif relative:
            warn_option(f"option 'eps' has no effect with jac={jac!r}: it is the absolute "
                        f"step of jac=None; the relative step of {jac!r} is "
                        f"finite_diff_rel_step")
        elif by_jac:
            own = (f"; {method.name}'s own eps is set with method=gd.{method.name}(eps=...)"
                   if "eps" in hyperparameter_names(method) else "")
            warn_option(f"option 'eps' has no effect: the gradient comes from jac, not from "
                        f"finite differences{own}")
    if options.get("finite_diff_rel_step") is not None:
        rel_step = step_size(options["finite_diff_rel_step"], "finite_diff_rel_step", n)
        if relative:
            steps["rel_step"] = rel_step
        elif jac is None:
            warn_option("option 'finite_diff_rel_step' has no effect with jac=None: it is "
                        "the relative step of jac='2-point' and '3-point', and jac=None "
                        "steps by the absolute eps (scipy.optimize.minimize hands a custom "
                        "method jac=None in place of '2-point' and '3-point': gd.minimize "
                        "keeps them)")
        elif by_jac:
            warn_option("option 'finite_diff_rel_step' has no effect: the gradient comes "
                        "from jac, not from finite differences")
    return steps


def step_size(value, name, n):
    """A finite-difference step: a float > 0, or an array of shape (n,) of them."""
    try:
        step = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        step = None
    if step is None or step.shape not in ((), (n,)) or not np.all(np.isfinite(step)) \
            or not np.all(step > 0):
        raise ValueError(f"{name} must be a finite number > 0 or an array of {n} of them "
                         f"(one per variable), got {value!r}")
    return float(step) if step.shape == () else step


# L-BFGS ----------------------------------------------------------------------------------
def run_lbfgs(method, fun, x0, args=(), jac=None, bounds=None, constraints=(), callback=None,
              **options):
    """L-BFGS through the reverse-communication kernel (:mod:`gdcore.kernels.lbfgs`)."""
    objective, x, box, options = prepare(method, fun, x0, args, jac, bounds, constraints,
                                         options, callback)
    refuse_mini_batches(options, "lbfgs")
    n = x.shape[0]
    dtype = x.dtype
    run = Run(objective, options, default_maxiter=15000, default_ftol=2.220446049250313e-09)
    # maxcor: this run's memory in place of the object's m (L-BFGS-B's name).
    m = _validate.positive_int(options["maxcor"], "maxcor") if "maxcor" in options else method.m
    max_ls = _validate.positive_int(options.get("maxls", lb.MAX_LS_DEFAULT), "maxls")
    state = LbfgsState(n, m, method.c1, method.c2, run.gtol, run.ftol, box, max_ls, dtype)
    if box is not None:
        np.clip(x, box[0], box[1], out=x)
    state.vec[lb.X_TRIAL] = x
    # A forward-difference gradient is refined to central differences when a line
    # search fails (lbfgs_python), in place of the steepest-descent retry.
    state.js[lb.GRADIENT_REFINABLE] = objective.refinable()
    cb = wrap_callback(callback)
    x_eval = np.empty(n, dtype=dtype)  # the objective sees x in x0's dtype
    g_eval = np.empty(n, dtype=np.float64)
    fg = compiled_fg(objective) if cb is None and run.allvecs is None else None
    with run.stop:
        # The first value is taken here, timed for Slices: the state machine then
        # starts from it (FIRST_VALUE) instead of asking for it.
        state.js[lb.PHASE] = lb.FIRST_VALUE
        x_eval[:] = state.vec[lb.X_TRIAL]
        f_trial = run.evaluate_x0(x_eval, g_eval, fg)
        if f_trial is None:
            return run.interrupted_at_x0(x_eval)
        state.vec[lb.G_TRIAL] = g_eval
        if fg is not None:
            return lbfgs_compiled(fg, state, run, f_trial, x_eval, g_eval,
                                  Slices(run.seconds_x0), dtype)
        return lbfgs_python(state, run, cb, f_trial, x_eval, g_eval, dtype)


def lbfgs_python(state, run, cb, f_trial, x_eval, g_eval, dtype):
    """Drive the state machine with the objective, from the value at x0 on."""
    while True:
        request = state.step(f_trial)
        if request == lb.EVALUATE:
            if run.out_of_evaluations():
                return state.result(run, LIMIT, limit_message(run), dtype)
            if run.stop.pending:
                return state.result(run, INTERRUPTED, _INTERRUPTED_MESSAGE, dtype)
            x_eval[:] = state.vec[lb.X_TRIAL]
            try:
                f_trial = run.evaluate(x_eval, g_eval)
            except KeyboardInterrupt:
                return state.result(run, INTERRUPTED, _INTERRUPTED_MESSAGE, dtype)
            state.vec[lb.G_TRIAL] = g_eval
            continue
        if request == lb.ITERATE:
            run.nit += 1
            x_new = state.vec[lb.X].astype(dtype)  # a copy, in x0's dtype
            run.record(x_new)
            if cb is not None:
                stopped = run.call_back(cb, x_new, state.fs[lb.F_X])
                if stopped is not None:
                    return state.result(run, *stopped, dtype)
            if run.nit >= run.maxiter and state.js[lb.PHASE] != lb.FINISHED:
                return state.result(run, LIMIT, limit_message(run), dtype)
            continue
        if request == lb.FAILED and run.objective.refinable():
            # The finite differences no longer find a descent: go on with more
            # accurate ones (Objective.refine), from steepest descent.  Only this
            # Python driver refines: compiled objectives have exact gradients.
            if run.out_of_evaluations():
                return state.result(run, LIMIT, limit_message(run), dtype)
            if run.stop.pending:
                return state.result(run, INTERRUPTED, _INTERRUPTED_MESSAGE, dtype)
            x_eval[:] = state.vec[lb.X]
            g_before = state.vec[lb.G].copy()
            try:
                state.vec[lb.G] = run.stop.user(run.objective.refine, x_eval,
                                             state.fs[lb.F_X])
            except KeyboardInterrupt:
                state.vec[lb.G] = g_before
                return state.result(run, INTERRUPTED, _INTERRUPTED_MESSAGE, dtype)
            state.js[lb.GRADIENT_REFINABLE] = run.objective.refinable()
            request = lb.restart_kernel[0](state.vec, state.pairs, state.rho, state.alpha,
                                           state.fs, state.js, state.lower, state.upper)
            if request == lb.EVALUATE:
                continue
            if request == lb.FAILED:  # NaN or Inf in the refined gradient: report the last
                state.vec[lb.G] = g_before
        return lbfgs_outcome(request, state, run, dtype, f_trial, g_eval)


def lbfgs_compiled(fg, state, run, f_trial, x_eval, g_eval, slices, dtype):
    """:func:`lbfgs_python` as compiled calls of about ``Slices.SECONDS`` each."""
    objective = run.objective
    # lbfgs_loop's grouped arguments: the state machine's arrays, the box, the limits.
    arrays = (state.vec, state.pairs, state.rho, state.alpha, state.fs, state.js)
    bounds = (state.lower, state.upper)
    limits = (run.maxiter, run.maxfun or 0)
    nfev = 1
    while True:
        start = time.perf_counter()
        try:
            outcome, run.nit, nfev_now, f_trial = run.stop.compiled(
                minimize_loops.lbfgs_loop,
                fg, objective.args, arrays, bounds, x_eval, limits, (run.nit, nfev), f_trial,
                nfev + slices.budget())
        except KeyboardInterrupt:  # while Numba compiled the loop: nothing ran
            return lbfgs_interrupted(state, run, f_trial, dtype)
        slices.measured(time.perf_counter() - start, nfev_now - nfev)
        objective.count_compiled(nfev_now - nfev)
        nfev = nfev_now
        if outcome == minimize_loops.PAUSED:
            if run.stop.pending:
                return lbfgs_interrupted(state, run, f_trial, dtype)
            continue
        if outcome in (minimize_loops.LIMIT_ITERATIONS, minimize_loops.LIMIT_EVALUATIONS):
            return state.result(run, LIMIT, limit_message(run), dtype)
        g_eval[:] = state.vec[lb.G_TRIAL]
        return lbfgs_outcome(outcome, state, run, dtype, f_trial, g_eval)


def lbfgs_interrupted(state, run, f_trial, dtype):
    """The interrupted result: the last iterate, or x0 while its value waits in the state."""
    if state.js[lb.PHASE] == lb.FIRST_VALUE:
        return run.interrupted(state.vec[lb.X_TRIAL].astype(dtype), f_trial,
                               state.vec[lb.G_TRIAL].astype(dtype))
    return state.result(run, INTERRUPTED, _INTERRUPTED_MESSAGE, dtype)


_LBFGS_CONVERGED = {
    lb.BY_GTOL: "CONVERGENCE: NORM OF PROJECTED GRADIENT <= GTOL",
    lb.BY_FTOL: "CONVERGENCE: RELATIVE REDUCTION OF F <= FTOL",
    lb.BY_FLOOR: ("CONVERGENCE: f AT ITS ROUNDING FLOOR (the line search changed f by no "
                  "more than ftol or rounding)"),
}


def lbfgs_outcome(request, state, run, dtype, f_trial, g_eval):
    """The result for a final request of the L-BFGS state machine."""
    if request == lb.CONVERGED:
        return state.result(run, SUCCESS, _LBFGS_CONVERGED[state.js[lb.MESSAGE]], dtype)
    if request == lb.FAILED:
        return state.result(run, NO_PROGRESS, "ABNORMAL: the line search found no step "
                            "that decreases f enough", dtype)
    # NONFINITE: only reported for the starting point.
    return run.result(state.vec[lb.X_TRIAL].astype(dtype), f_trial, g_eval.astype(dtype), NONFINITE,
                      _NONFINITE_AT_X0_MESSAGE)


class LbfgsState:
    """The arrays of the L-BFGS state machine (:func:`gdcore.kernels.lbfgs.lbfgs_step`)."""

    def __init__(self, n, m, c1, c2, gtol, ftol, box, max_ls=lb.MAX_LS_DEFAULT,
                 dtype=np.float64):
        shapes = lb.state_sizes(n, m)
        self.vec, self.pairs, self.rho, self.alpha, self.fs = (
            np.zeros(shapes[k]) for k in ("vectors", "pairs", "rho", "alpha", "fs"))
        self.js = np.zeros(shapes["js"], dtype=np.int64)
        self.fs[lb.GTOL], self.fs[lb.FTOL], self.fs[lb.C1], self.fs[lb.C2] = gtol, ftol, c1, c2
        self.fs[lb.FLOOR] = lb.floor_for(dtype)
        self.js[lb.M] = m
        self.js[lb.MAX_LS] = max_ls
        self.js[lb.HAS_BOUNDS] = box is not None
        self.lower, self.upper = box if box is not None else (_NO_BOUNDS, _NO_BOUNDS)

    def step(self, f_trial):
        return lb.lbfgs_step_kernel[0](self.vec, self.pairs, self.rho, self.alpha, self.fs,
                                       self.js, f_trial, self.lower, self.upper)

    def result(self, run, status, message, dtype):
        """The result at the current iterate."""
        return run.result(self.vec[lb.X].astype(dtype), self.fs[lb.F_X],
                          self.vec[lb.G].astype(dtype), status, message)


# First-order methods -----------------------------------------------------------------------
def run_first_order(optimizer, fun, x0, args=(), jac=None, bounds=None, constraints=(),
                    callback=None, **options):
    """A gdcore optimizer's update rule driven by a SciPy-style objective."""
    objective, x, box, options = prepare(optimizer, fun, x0, args, jac, bounds, constraints,
                                         options, callback)
    run = Run(objective, options, default_maxiter=10000, default_ftol=0.0)
    batches = MiniBatches.from_options(options)
    cb = wrap_callback(callback)
    state = optimizer.init(x)
    g = np.empty_like(x)
    if box is not None:
        np.clip(x, box[0], box[1], out=x)
    fg = (compiled_fg(objective) if cb is None and batches is None and run.allvecs is None
          else None)
    with run.stop:
        if batches is not None:
            objective.kwargs = {"batch": batches.next()}
        f, pg_norm, done = run.start(x, g, box, fg)
        if done is not None:
            return done
        if fg is not None:
            return first_order_compiled(fg, optimizer, run, x, f, g, pg_norm, state, box,
                                        Slices(run.seconds_x0))
        return first_order_python(optimizer, run, cb, batches, x, f, g, pg_norm, state, box)


def first_order_python(optimizer, run, cb, batches, x, f, g, pg_norm, state, box):
    """Steps from the evaluated x0 on, one Python iteration per step."""
    objective = run.objective
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
            try:
                f = run.evaluate(x, g)
            except KeyboardInterrupt:
                return run.interrupted(x_prev, f_prev, g_prev)
            finite, pg_norm = gradient_check(x, g, box)
            finite = finite and np.isfinite(f)
        if not finite:
            return run.result(x_prev, f_prev, g_prev, NONFINITE, _NONFINITE_MESSAGE)
        done = run.after_step(cb, x, f, g, f_prev)
        if done is not None:
            return done


def first_order_compiled(fg, optimizer, run, x, f, g, pg_norm, state, box, slices):
    """:func:`first_order_python` as compiled calls of about ``Slices.SECONDS`` each (same
    kernels, same iterates); the learning rates are evaluated for one call at a time."""
    objective = run.objective
    schedule = as_schedule(optimizer.learning_rate)
    lower, upper = box if box is not None else (_NO_BOUNDS, _NO_BOUNDS)
    x_prev, g_prev = np.empty_like(x), np.empty_like(g)
    # first_order_loop's grouped arguments (the rule and its state, the scratch, the box
    # and the stopping rules); the counters change from call to call.
    rule = (optimizer.code, optimizer.hyper, state.slots, state.scalars)
    scratch, bounds = (x_prev, g_prev), (lower, upper, box is not None)
    limits = (run.gtol, run.ftol, run.maxiter, run.maxfun or 0)
    nfev = 1
    while True:
        pause_at = run.nit + slices.budget()
        lrs = np.asarray(schedule(np.arange(run.nit, min(pause_at, run.maxiter))),
                         dtype=np.float64)
        start = time.perf_counter()
        try:
            status, run.nit, nfev_now, f, pg_norm = run.stop.compiled(
                minimize_loops.first_order_loop,
                fg, objective.args, update_kernel.jit_kernel(optimizer.code), rule, lrs, x, g,
                scratch, bounds, limits, (run.nit, nfev, f, pg_norm), pause_at)
        except KeyboardInterrupt:  # while Numba compiled the loop: nothing ran
            return run.interrupted(x, f, g)
        slices.measured(time.perf_counter() - start, nfev_now - nfev)
        objective.count_compiled(nfev_now - nfev)
        nfev = nfev_now
        if status == minimize_loops.PAUSED:
            if run.stop.pending:
                return run.interrupted(x, f, g)
            continue
        if status == NONFINITE:
            return run.result(x_prev, f, g_prev, NONFINITE, _NONFINITE_MESSAGE)
        if status == LIMIT:
            return run.result(x, f, g, LIMIT, limit_message(run))
        return run.result(x, f, g, SUCCESS, _FTOL_MESSAGE if status == minimize_loops.FTOL_MET
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
    objective, x, box, options = prepare(method, fun, x0, args, jac, bounds, constraints,
                                         options, callback)
    refuse_mini_batches(options, "gd")
    run = Run(objective, options, default_maxiter=10000, default_ftol=0.0)
    cb = wrap_callback(callback)
    g = np.empty_like(x)
    if box is not None:
        np.clip(x, box[0], box[1], out=x)
    with run.stop:
        f, pg_norm, done = run.start(x, g, box)
        if done is not None:
            return done
        return armijo_descent(method, run, cb, x, f, g, pg_norm, box)


def armijo_descent(method, run, cb, x, f, g, pg_norm, box):
    """:func:`run_gradient_descent`'s iterations from the evaluated x0 on."""
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
            if run.stop.pending:
                return run.interrupted(x, f, g)
            try:
                f_trial = run.evaluate(trial, g_trial)
            except KeyboardInterrupt:
                return run.interrupted(x, f, g)
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
