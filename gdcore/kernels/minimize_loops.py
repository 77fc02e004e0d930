"""Whole minimizations in one compiled call, for objectives compiled with Numba.

When ``fun`` (and ``jac``) are Numba ``@njit`` functions, :mod:`gdcore.minimize`
runs these loops instead of its Python drivers: no Python executes per
iteration.  They call the same kernels in the same order as the Python
drivers (:func:`.lbfgs.lbfgs_step`, :func:`.updates.apply_update`), so the
iterates are the same.

``fg(x, *args)`` returns ``(f, g)``; a separate ``jac`` is combined with
``fun`` into such a function by :func:`value_and_gradient`.  These drivers are specialised
on the user's function and therefore not cached on disk (see :mod:`._jit`).
"""

import math

from ._jit import jit
from .lbfgs import EVALUATE, FINISHED, ITERATE, PHASE, gradient_check, lbfgs_step
from .updates import apply_update

# Outcomes besides the lbfgs requests (kept apart from their values).
LIMIT_ITERATIONS = 10
LIMIT_EVALUATIONS = 11
BY_FTOL = 12  # first_order_loop: success by the relative decrease of f
NONFINITE_AT_X0 = 13  # first_order_loop: NaN/Inf already at x0 (no step taken)


_COMBINED = {}


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


@jit(cache=False)
def lbfgs_loop(fg, args, vec, pairs, rho, alpha, fs, js, lower, upper, x_eval, maxiter,
               maxfun):
    """Drive :func:`.lbfgs.lbfgs_step` with ``fg`` until it finishes or a limit is hit.

    ``x_eval`` (n,) is in the dtype the objective expects.  ``maxfun`` <= 0
    means no limit.

    Returns
    -------
    outcome : int
        The final request of the state machine, or ``LIMIT_*``.
    nit, nfev : int
    f_trial : float
        The last value evaluated.
    """
    nit = 0
    nfev = 0
    f_trial = 0.0
    while True:
        request = lbfgs_step(vec, pairs, rho, alpha, fs, js, f_trial, lower, upper)
        if request == EVALUATE:
            if maxfun > 0 and nfev >= maxfun:
                return LIMIT_EVALUATIONS, nit, nfev, f_trial
            x_eval[:] = vec[3]
            f, g = fg(x_eval, *args)
            nfev += 1
            f_trial = f
            vec[4][:] = g
        elif request == ITERATE:
            nit += 1
            if nit >= maxiter and js[PHASE] != FINISHED:
                return LIMIT_ITERATIONS, nit, nfev, f_trial
        else:
            return request, nit, nfev, f_trial


@jit(cache=False)
def first_order_loop(fg, args, code, hyper, lrs, x, x_prev, g, g_prev, slots, scalars, lower,
                     upper, has_bounds, gtol, ftol, maxiter, maxfun):
    """A gdcore update rule on ``fg``: the compiled twin of ``minimize.run_first_order``.

    ``lrs[k]`` is the learning rate of step ``k`` (``maxiter`` entries).

    Returns
    -------
    status : int
        0 gtol met, ``BY_FTOL`` ftol met, 1 iteration or evaluation limit,
        ``NONFINITE_AT_X0`` NaN/Inf at x0, 3 NaN/Inf after a step
        (``x_prev``, ``g_prev`` and ``f`` then hold the last finite point).
    nit, nfev : int
    f : float
    """
    f, grad = fg(x, *args)
    nfev = 1
    g[:] = grad
    finite, worst = gradient_check(x, g, lower, upper, has_bounds)
    if not (finite and math.isfinite(f)):
        x_prev[:] = x
        g_prev[:] = g
        return NONFINITE_AT_X0, 0, nfev, f
    nit = 0
    while True:
        if worst <= gtol:
            return 0, nit, nfev, f
        if nit >= maxiter or (maxfun > 0 and nfev >= maxfun):
            return 1, nit, nfev, f
        x_prev[:] = x
        g_prev[:] = g
        f_prev = f
        ok = apply_update(code, hyper, lrs[nit], x, g, slots, scalars, x, True)
        if has_bounds:
            for i in range(x.shape[0]):
                x[i] = min(max(x[i], lower[i]), upper[i])
        if ok:
            f, grad = fg(x, *args)
            nfev += 1
            g[:] = grad
            finite, worst = gradient_check(x, g, lower, upper, has_bounds)
            ok = finite and math.isfinite(f)
        if not ok:
            return 3, nit, nfev, f_prev
        nit += 1
        if ftol > 0 and abs(f_prev - f) <= ftol * max(abs(f_prev), abs(f), 1.0):
            return BY_FTOL, nit, nfev, f
