"""Minimizations in bounded compiled calls, for objectives compiled with Numba.

When ``fun`` (and ``jac``) are Numba ``@njit`` functions, :mod:`gdcore.minimize`
runs these loops instead of its Python drivers: no Python executes per
iteration.  They call the same kernels in the same order as the Python
drivers (:func:`.lbfgs.lbfgs_step`, :func:`.updates.apply_update`), so the
iterates are the same.

Each call does a bounded share of the work and returns ``PAUSED`` at an
iteration boundary once its share is done; the whole state is in the
caller's arrays and in the counters a call takes and returns, so the next
call goes on exactly where the last one stopped.  Any split of a run into
calls gives bitwise the same iterates, and the driver can react to Ctrl-C
between calls (a signal handler runs only when the compiled code returns).
The first evaluation, at ``x0``, is the caller's.

``fg(x, *args)`` returns ``(f, g)``; a separate ``jac`` is combined with
``fun`` into such a function by :func:`value_and_gradient`.  These drivers are specialised
on the user's function and therefore not cached on disk (see :mod:`._jit`).
"""

import math

from .. import codes
from ._jit import jit
from .copies import copy_vector
from .lbfgs import (EVALUATE, FINISHED, G_TRIAL, ITERATE, PHASE, X_TRIAL, gradient_check,
                    lbfgs_step)

# The loops' outcomes (gdcore.codes): statuses, and the codes of their own.
SUCCESS = codes.SUCCESS
LIMIT = codes.LIMIT
NONFINITE = codes.NONFINITE
LIMIT_ITERATIONS = codes.LOOP_ITERATION_LIMIT
LIMIT_EVALUATIONS = codes.LOOP_EVALUATION_LIMIT
FTOL_MET = codes.LOOP_FTOL_MET
PAUSED = codes.LOOP_PAUSED


_COMBINED: dict = {}


def value_and_gradient(fun, jac):
    """``fg(x, *args) -> (fun(x, *args), jac(x, *args))`` for two Numba functions.

    One compiled function per (fun, jac) pair, kept for the life of the
    process; like the drivers, it is not cached on disk.
    """
    key = (fun, jac)
    if key not in _COMBINED:
        @jit(cache=False)
        def fg(x, *args):
            return fun(x, *args), jac(x, *args)

        _COMBINED[key] = fg
    return _COMBINED[key]


@jit(cache=False, exact=True)
def lbfgs_loop(fg, args, state, bounds, x_eval, limits, counters, f_trial, pause_at):
    """Drive :func:`.lbfgs.lbfgs_step` with ``fg`` until it finishes, a limit is hit,
    or an iteration ends after ``pause_at`` evaluations in all.

    Parameters
    ----------
    state : tuple (vec, pairs, rho, alpha, fs, js)
        The state machine's arrays (:func:`.lbfgs.state_sizes`), updated in
        place.
    bounds : tuple (lower, upper)
        The box, or two empty arrays.
    x_eval : ndarray of shape (n,)
        Scratch for the trial point, in the dtype the objective expects.
    limits : tuple (maxiter, maxfun)
        Limits of the whole run (``maxfun`` <= 0: none).
    counters : tuple (nit, nfev)
        Iterations and evaluations so far (the first call: 0 and 1, after
        the caller evaluated ``x0``).
    f_trial : float
        f at ``vec[X_TRIAL]`` when the state machine waits for it (the first call),
        else ignored.
    pause_at : int
        Return ``PAUSED`` at the first iteration boundary with
        ``nfev >= pause_at``.

    Returns
    -------
    outcome : int
        The final request of the state machine, ``LIMIT_*`` or ``PAUSED``.
    nit, nfev : int
        The counters to pass to the next call.
    f_trial : float
        The last value evaluated.
    """
    vec, pairs, rho, alpha, fs, js = state
    lower, upper = bounds
    maxiter, maxfun = limits
    nit, nfev = counters
    while True:
        request = lbfgs_step(vec, pairs, rho, alpha, fs, js, f_trial, lower, upper)
        if request == EVALUATE:
            if maxfun > 0 and nfev >= maxfun:
                return LIMIT_EVALUATIONS, nit, nfev, f_trial
            copy_vector(x_eval, vec[X_TRIAL])
            f, g = fg(x_eval, *args)
            nfev += 1
            f_trial = f
            if g.shape[0] != x_eval.shape[0]:
                raise ValueError("fun returned a gradient of another length than x")
            copy_vector(vec[G_TRIAL], g)
        elif request == ITERATE:
            nit += 1
            if nit >= maxiter and js[PHASE] != FINISHED:
                return LIMIT_ITERATIONS, nit, nfev, f_trial
            if nfev >= pause_at:  # the next lbfgs_step needs no new value
                return PAUSED, nit, nfev, f_trial
        else:
            return request, nit, nfev, f_trial


@jit(cache=False, exact=True)
def first_order_loop(fg, args, update, rule, lrs, x, g, scratch, bounds, limits, counters,
                     pause_at):
    """A gdcore update rule on ``fg``: the compiled twin of ``minimize.run_first_order``'s loop.

    Starts from the iterate ``x`` (number ``nit``) with its value ``f``,
    gradient ``g`` and projected-gradient max-norm ``worst``, and steps until
    a stop, or until ``pause_at`` iterations in all.

    What travels together comes grouped in tuples (unpacked on entry: no
    cost in the compiled loop).

    Parameters
    ----------
    update : Numba dispatcher
        The optimizer's step, :func:`.updates.update_kernel` of ``code``: a
        kernel cached on disk, so this loop, which is compiled anew for each
        objective, does not compile the step again.
    rule : tuple (code, hyper, slots, scalars)
        The optimizer's code and hyperparameters, and its state (updated in
        place).
    lrs : ndarray of shape (min(pause_at, maxiter) - nit,), float64
        ``lrs[k]`` is the learning rate of step ``nit + k``.
    x, g : ndarray of shape (n,)
        The iterate and its gradient, updated in place.
    scratch : tuple (x_prev, g_prev) of ndarray of shape (n,)
        After ``NONFINITE`` they hold the last finite point.
    bounds : tuple (lower, upper, has_bounds)
        The box (empty arrays and False without one).
    limits : tuple (gtol, ftol, maxiter, maxfun)
        The stopping rules (``maxfun`` 0: no evaluation limit).
    counters : tuple (nit, nfev, f, worst)
        Iterations and evaluations so far (``x0``'s evaluation included),
        and the value and projected-gradient max-norm at ``x``.

    Returns
    -------
    status : int
        ``SUCCESS`` gtol met, ``FTOL_MET`` ftol met, ``LIMIT`` iteration or
        evaluation limit, ``NONFINITE`` NaN/Inf after a step (``x_prev``,
        ``g_prev`` and ``f`` then hold the last finite point), ``PAUSED``.
    nit, nfev : int
    f, worst : float
        At the iterate the call ended on (pass them to the next call).
    """
    code, hyper, slots, scalars = rule
    x_prev, g_prev = scratch
    lower, upper, has_bounds = bounds
    gtol, ftol, maxiter, maxfun = limits
    nit, nfev, f, worst = counters
    first = nit
    while True:
        if worst <= gtol:
            return SUCCESS, nit, nfev, f, worst
        if nit >= maxiter or (maxfun > 0 and nfev >= maxfun):
            return LIMIT, nit, nfev, f, worst
        if nit >= pause_at:
            return PAUSED, nit, nfev, f, worst
        copy_vector(x_prev, x)
        copy_vector(g_prev, g)
        f_prev = f
        ok = update(code, hyper, lrs[nit - first], x, g, slots, scalars, x, True)
        if has_bounds:
            for i in range(x.shape[0]):
                x[i] = min(max(x[i], lower[i]), upper[i])
        if ok:
            f, grad = fg(x, *args)
            nfev += 1
            if grad.shape[0] != g.shape[0]:
                raise ValueError("fun returned a gradient of another length than x")
            copy_vector(g, grad)
            finite, worst = gradient_check(x, g, lower, upper, has_bounds)
            ok = finite and math.isfinite(f)
        if not ok:
            return NONFINITE, nit, nfev, f_prev, worst
        nit += 1
        if ftol > 0 and abs(f_prev - f) <= ftol * max(abs(f_prev), abs(f), 1.0):
            return FTOL_MET, nit, nfev, f, worst
