"""gdcore's optimizers as ``scipy.optimize.minimize`` methods, and :func:`minimize`.

Every gdcore method object (``gd.adam(...)``, ``gd.sgd(...)``, ...,
``gd.lbfgs()``, ``gd.gd()``) is callable the way SciPy calls a custom
``method``::

    method(fun, x0, args=(), jac=None, hess=None, hessp=None, bounds=None,
           constraints=(), callback=None, **options) -> scipy.optimize.OptimizeResult

so ``scipy.optimize.minimize(fun, x0, jac=True, method=gd.adam(0.05))``
works unchanged.  The result has ``x, fun, jac, nit, nfev, njev, status,
success, message``; status 0 is success (for ``gd.lbfgs()`` also where f
reached its rounding floor, as L-BFGS-B reports it:
:mod:`gdcore.kernels.lbfgs`), 1 the iteration or evaluation limit, 2 no
progress (the line search failed: a wrong gradient, a non-smooth ``f``), 3 a
NaN/Inf value or gradient (the
result keeps the last finite point), 99 a callback that raised
``StopIteration``, 130 (``INTERRUPTED``, 128 + SIGINT as shells report
Ctrl-C) an interruption: Ctrl-C, or ``KeyboardInterrupt`` raised by
``fun``, ``jac`` or the callback.  An interrupted run returns the last
accepted iterate with its ``fun`` and ``jac`` (``nit`` and ``nfev`` count
the work done, the interrupted evaluation included); interrupted during
the evaluation at ``x0``, it returns ``x0`` with ``fun`` and ``jac`` NaN.

Options (SciPy's names; every method honours them):

* ``maxiter``: the most iterations.
* ``maxfun``, or ``maxfev`` (Nelder-Mead's and Powell's name; both given and
  different is a ValueError): the most calls of ``fun``.  The limit is checked
  before each evaluation, and the run stops at the last accepted iterate
  (L-BFGS-B checks it only at the end of an iteration, so it overshoots by the
  rest of a line search); a finite-difference gradient costs several calls
  (``n + 1`` for forward differences), so its run may pass the limit by less
  than one gradient's calls.
* ``gtol``: max-norm of the projected gradient; ``tol`` (what
  ``minimize(tol=...)`` passes) sets it unless ``gtol`` is given.
* ``ftol``: relative decrease of ``f`` between iterations.
* Finite differences (``jac`` None, '2-point', '3-point') take the steps
  ``scipy.optimize.minimize`` takes for its own methods
  (:mod:`gdcore.differences`).  When a ``gd.lbfgs()`` line search fails on a
  finite-difference gradient, the run goes on with more accurate ones rather
  than fail: central differences, then central steps relative to ``|x|``
  (:meth:`gdcore.objective.Objective.refine`).
* ``eps``: the absolute finite-difference step when ``jac`` is None (a float
  or one per variable); ``finite_diff_rel_step``: the relative step when
  ``jac`` is '2-point' or '3-point'.  Where a step has no effect (the
  gradient comes from ``jac``, or the other kind of finite differences) an
  :class:`OptionWarning` says so.  With a method object that has an ``eps``
  hyperparameter (``gd.adam()``), ``options={"eps": ...}`` is this step too:
  the object's own ``eps`` is fixed (``gd.adam(eps=...)``), and by name
  (``gd.minimize(..., method="adam", options={"eps": ...})``) the
  hyperparameter wins.
* ``disp``: when true, a summary printed to stdout at the end in the format of
  SciPy's BFGS (message, current function value, iterations, function and
  gradient evaluations), whatever the status.
* ``return_all``: the result gets ``allvecs``, the iterates as copies in
  x0's dtype: x0 (projected onto the bounds) first, then each accepted
  iterate.  Such a run takes the Python path (Numba objectives too), as with
  a callback.
* mini-batch objectives: ``n_samples``, ``batch_size``, ``seed``: ``fun`` is
  then called as ``fun(x, *args, batch=indices)`` with shuffled index arrays,
  epoch after epoch (first-order methods only).
* ``gd.lbfgs()`` only: ``maxcor``, the memory of this run (in place of the
  object's ``m``), and ``maxls``, the most evaluations one line search may
  take (default ``gdcore.kernels.lbfgs.MAX_LS_DEFAULT``).  Both must be
  integers > 0.

Any other option (``iprint``, ``workers``, ...) is ignored with an
:class:`OptionWarning`, a subclass of both SciPy's ``OptimizeWarning`` (what
its own methods warn for unknown options) and ``RuntimeWarning`` (what gdcore
warned before), so filters on either catch it.  A hyperparameter of the
method object (``learning_rate``, ``lr``, ``b1``, ``m``, ...) is a
``ValueError`` saying to write ``method=gd.adam(learning_rate=0.05)``, since
the object's settings are fixed when it is made.

``fun`` in the result is a Python float, as SciPy's L-BFGS-B gives.

``scipy.optimize.minimize(..., jac='2-point' or '3-point', method=gd.lbfgs())``:
SciPy hands a custom method ``jac=None`` for these, so the run uses forward
differences with the absolute step ``eps``, and nothing in the call it
receives shows what was asked.  ``gd.minimize(..., jac='3-point')`` honours
'3-point' (and '2-point'); so does a callable ``jac``.

Ctrl-C: in the main thread, while SIGINT has Python's default handler, a
run installs its own for its duration (:class:`gdcore._interrupt.CtrlC`) and restores
the previous one.  With Numba objectives the run is a series of compiled
calls of about 0.25 s each (:class:`Slices`; any split gives bitwise the
same iterates), so Ctrl-C takes effect within about that time plus one
evaluation.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import Bounds, OptimizeResult

from . import _validate
from ._typing import LearningRate
from .drivers import (
    ALIASES, CALLBACK_STOP, INTERRUPTED, LIMIT, NO_PROGRESS, NONFINITE, SUCCESS, OptionWarning,
    factory_passed, method_factory, refuse_hyperparameters, run_first_order,
    run_gradient_descent, run_lbfgs)
from .optim import RULES, sgd
from .schedules import Schedule

# The statuses and OptionWarning are the drivers', and this module's API too.
__all__ = ["CALLBACK_STOP", "GradientDescent", "INTERRUPTED", "LBFGS", "LIMIT", "METHODS",
           "NONFINITE", "NO_PROGRESS", "OptionWarning", "SUCCESS", "gd", "lbfgs", "minimize"]


# Line-search methods (SciPy-style objectives only) -------------------------------------
@dataclass(frozen=True)
class LBFGS:
    """Limited-memory BFGS with a strong-Wolfe line search (projected with bounds).

    Only usable as a ``scipy.optimize.minimize`` method (it needs function
    values); see :mod:`gdcore.minimize`.  The option ``maxcor`` (L-BFGS-B's
    name) replaces ``m`` for one run; ``maxls`` bounds a line search.
    """

    m: int = 10
    c1: float = 1e-4
    c2: float = 0.9
    name = "lbfgs"  # its factory (not a field)

    def __post_init__(self):
        object.__setattr__(self, "m", _validate.positive_int(self.m, "m"))
        object.__setattr__(self, "c1", _validate.real_in(self.c1, "c1", 0, 1, low_open=True,
                                                         high_open=True))
        object.__setattr__(self, "c2", _validate.real_in(self.c2, "c2", self.c1, 1,
                                                         low_open=True, high_open=True))

    def __call__(self, fun, x0, args=(), jac=None, hess=None, hessp=None, bounds=None,
                 constraints=(), callback=None, **options):
        refuse_hyperparameters(self, options)
        return run_lbfgs(self, fun, x0, args=args, jac=jac, bounds=bounds,
                         constraints=constraints, callback=callback, **options)


@dataclass(frozen=True)
class GradientDescent:
    """Steepest descent: a fixed ``learning_rate``, or Armijo backtracking when None."""

    learning_rate: object = None
    c1: float = 1e-4
    name = "gd"  # its factory (not a field)

    def __post_init__(self):
        if self.learning_rate is not None and not isinstance(self.learning_rate, Schedule):
            object.__setattr__(self, "learning_rate", _validate.real_in(
                self.learning_rate, "learning_rate", 0.0, np.inf, low_open=True,
                high_open=True))
        object.__setattr__(self, "c1", _validate.real_in(self.c1, "c1", 0, 1, low_open=True,
                                                         high_open=True))

    def __call__(self, fun, x0, args=(), jac=None, hess=None, hessp=None, bounds=None,
                 constraints=(), callback=None, **options):
        refuse_hyperparameters(self, options)
        if self.learning_rate is not None:
            return run_first_order(sgd(self.learning_rate), fun, x0, args=args, jac=jac,
                                   bounds=bounds, constraints=constraints, callback=callback,
                                   **options)
        return run_gradient_descent(self, fun, x0, args=args, jac=jac, bounds=bounds,
                                    constraints=constraints, callback=callback, **options)


@method_factory
def lbfgs(m: int = 10, c1: float = 1e-4, c2: float = 0.9) -> LBFGS:
    """L-BFGS with a strong-Wolfe line search: a ``scipy.optimize.minimize`` method.

    Parameters
    ----------
    m : int > 0, default 10
        Memory: the curvature pairs kept (the option ``maxcor`` replaces it
        for one run).
    c1, c2 : float, 0 < c1 < c2 < 1, defaults 1e-4 and 0.9
        The Wolfe constants: sufficient decrease and curvature.

    Returns
    -------
    LBFGS
        Called as SciPy calls a custom method; see :mod:`gdcore.minimize`.
    """
    return LBFGS(m, c1, c2)


@method_factory
def gd(learning_rate: LearningRate | None = None, c1: float = 1e-4) -> GradientDescent:
    """Steepest descent: a ``scipy.optimize.minimize`` method.

    Parameters
    ----------
    learning_rate : float > 0, Schedule or None, default None
        A fixed step size (or schedule); None backtracks each step to the
        Armijo condition.
    c1 : float in (0, 1), default 1e-4
        The Armijo constant of the backtracking.

    Returns
    -------
    GradientDescent
        Called as SciPy calls a custom method; see :mod:`gdcore.minimize`.
    """
    return GradientDescent(learning_rate, c1)


# Every method by name: the line-search methods and the rules.
METHODS = {"lbfgs": lbfgs, "gd": gd, **RULES}


# gd.minimize ---------------------------------------------------------------------------------
def minimize(fun: Callable[..., Any], x0: ArrayLike, args: tuple = (),
             method: str | Callable[..., OptimizeResult] = "lbfgs",
             jac: bool | str | Callable[..., Any] | None = None,
             callback: Callable[..., Any] | None = None, tol: float | None = None,
             options: Mapping[str, Any] | None = None,
             bounds: Sequence[tuple[float | None, float | None]] | Bounds | None = None,
             ) -> OptimizeResult:
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
        method's hyperparameters (``{"learning_rate": 0.05}``); with an
        object they are refused (ValueError), as are factories (``gd.adam``
        instead of ``gd.adam()``: TypeError).
    jac : True, callable, None, "2-point" or "3-point"
        As SciPy defines them; unlike ``scipy.optimize.minimize`` with a
        method object (which hands it ``jac=None`` instead), '2-point' and
        '3-point' reach the method.
    callback : callable, optional
        ``callback(intermediate_result)`` or ``callback(xk)``, once per iteration.
    tol : float, optional
        Sets ``gtol`` unless ``options`` does.
    options : dict, optional
        ``maxiter``; ``maxfun`` or ``maxfev`` (calls of ``fun``); ``gtol``;
        ``ftol``; ``eps`` (absolute step of ``jac=None``) and
        ``finite_diff_rel_step`` (relative step of '2-point' and '3-point');
        ``disp`` (print a summary at the end); ``return_all`` (the iterates
        in ``allvecs``); for "lbfgs", ``maxcor`` (memory; ``m`` too, with
        the same value if both) and ``maxls`` (evaluations per line search);
        the mini-batch options ``n_samples``, ``batch_size``, ``seed``; and
        with a method name, that method's hyperparameters, which win over
        options of the same name (``{"eps": 1e-6}`` for "adam" is Adam's
        eps).  The meanings are in :mod:`gdcore.minimize`'s docstring; any
        other option is ignored with an :class:`OptionWarning` (a
        ``RuntimeWarning`` and an ``OptimizeWarning``).
    bounds : sequence of (lo, hi) or scipy.optimize.Bounds, optional

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``fun`` a Python float; ``allvecs`` with ``return_all``; ``status``
        130 (``INTERRUPTED``) after Ctrl-C or a ``KeyboardInterrupt`` from
        ``fun``, ``jac`` or the callback, with the last accepted iterate.
    """
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise TypeError(f"options must be a dict of option names to values, got "
                        f"{type(options).__name__}")
    options = dict(options)
    if tol is not None:
        options.setdefault("tol", tol)
    if isinstance(method, str):
        factory = METHODS.get(method.lower())
        if factory is None:
            raise ValueError(f"unknown method {method!r}; expected one of: "
                             f"{', '.join(sorted(METHODS))}")
        names = list(inspect.signature(factory).parameters)
        for key, value in options.items():
            if ALIASES.get(key) in names:
                raise ValueError(f"option {key!r} is spelled {ALIASES[key]!r} in gdcore: "
                                 f"options={{{ALIASES[key]!r}: {value!r}}}")
        hyper = {k: options.pop(k) for k in list(options) if k in names}
        if "m" in hyper and options.get("maxcor", hyper["m"]) != hyper["m"]:
            raise ValueError(f"options m={hyper['m']!r} and maxcor={options['maxcor']!r} are "
                             "two names of the memory of L-BFGS: give one")
        method = factory(**hyper)
    if any(method is factory for factory in METHODS.values()):
        raise TypeError(factory_passed(method, by_name=True))
    if not callable(method):
        raise TypeError(f"method must be a name or a gdcore method object, got {method!r}")
    return method(fun, x0, args=args, jac=jac, bounds=bounds, callback=callback, **options)
