"""Finite-difference gradients by the rules ``scipy.optimize.minimize`` applies.

A user who swaps ``method="L-BFGS-B"`` for ``method=gd.lbfgs()`` keeps
``jac=None``; the gradient must then be the one SciPy would have computed,
or the two methods solve different problems near the optimum, where the
finite-difference error is of the size of the gradient itself.  SciPy's
rules (``scipy.optimize._numdiff.approx_derivative``, as its minimizers call
it), restated here:

* ``jac=None``: forward differences with the **absolute** step ``eps``
  (L-BFGS-B's option, default 1e-8) in every coordinate.  Where ``x + eps``
  rounds back to ``x``, the relative step below is used instead.
* ``jac="2-point"``: forward differences with the relative step
  ``h = r sign(x) max(1, |x|)``, ``r = sqrt(machine epsilon)`` (backward
  where ``x < 0``); with ``finite_diff_rel_step=r`` given, ``h = r sign(x) |x|``
  (the default rule again where that step vanishes).
* ``jac="3-point"``: central differences with ``|h|``, ``r`` the cube root
  of the machine epsilon; one-sided second-order differences
  (``(-3 f0 + 4 f(x+h) - f(x+2h)) / 2h``) where a bound leaves no room.
* Bounds: a one-sided step that would leave the box is reversed when the
  other side has room, else shortened to the farther bound; a central step
  becomes one-sided towards the side with more room, or is shortened so both
  sides fit.
* A variable with ``lower == upper`` has no room for a step: its entry is 0
  (SciPy divides by the zero step).
* The step divided by is the one actually taken, ``(x + h) - x`` rounded in
  the dtype of ``x``, and ``f(x)`` is never evaluated again (one call per
  coordinate for forward differences, two for central).

The machine epsilon is that of ``x``'s dtype.  One decision differs from
SciPy: for float32 ``x`` and ``jac=None`` without an explicit ``eps``, the
step is the relative float32 one (``sqrt(eps32) max(1, |x|)``), since the
absolute 1e-8 is below float32's resolution wherever ``|x| > 0.2`` (SciPy
would then divide a zero difference by 1e-8 and report a zero gradient).
"""

import numpy as np

DEFAULT_EPS = 1e-8  # L-BFGS-B's absolute step for jac=None


def gradient(value, x, f0, method=None, eps=None, rel_step=None, bounds=None):
    """Finite-difference gradient of ``value`` at ``x``.

    Parameters
    ----------
    value : callable
        ``value(point) -> float`` for a point of shape (n,) in ``x``'s dtype.
    x : ndarray of shape (n,), float32 or float64
    f0 : float
        ``value(x)``, already computed (not evaluated again).
    method : None, "2-point" or "3-point"
        None is ``jac=None``: forward differences with the absolute step ``eps``.
    eps : float or ndarray of shape (n,), optional
        Absolute step for ``method=None`` (default 1e-8).
    rel_step : float or ndarray of shape (n,), optional
        Relative step for "2-point" and "3-point".
    bounds : (lower, upper) ndarrays of shape (n,), optional

    Returns
    -------
    ndarray of shape (n,), float64
        NaN everywhere when ``f0`` is not finite.
    """
    n = x.shape[0]
    if not np.isfinite(f0):
        return np.full(n, np.nan)
    h = steps(x, method, eps, rel_step)
    lower, upper = bounds if bounds is not None else (None, None)
    if method == "3-point":
        h, one_sided = fit_central(x, np.abs(h), lower, upper)
    else:
        h = fit_forward(x, h, lower, upper)
        one_sided = np.ones(n, dtype=bool)
    grad = np.zeros(n)
    for i in range(n):
        if h[i] == 0:  # pinned by lower == upper: no room, and no use for a derivative
            continue
        ahead = x.copy()
        ahead[i] = x[i] + h[i]
        if method != "3-point":
            grad[i] = (value(ahead) - f0) / float(ahead[i] - x[i])
            continue
        other = x.copy()
        if one_sided[i]:
            other[i] = x[i] + 2 * h[i]
            f1, f2 = value(ahead), value(other)
            grad[i] = (-3.0 * f0 + 4 * f1 - f2) / float(other[i] - x[i])
        else:
            other[i] = x[i] - h[i]
            f1, f2 = value(other), value(ahead)  # SciPy's order: x - h, then x + h
            grad[i] = (f2 - f1) / float(ahead[i] - other[i])
    return grad


def steps(x, method, eps, rel_step):
    """The signed steps before the bounds are considered, in ``x``'s dtype."""
    unit = np.finfo(x.dtype).eps
    r = unit ** (1 / 3) if method == "3-point" else unit ** 0.5
    sign = np.where(x >= 0, 1.0, -1.0)
    relative = (r * sign * np.maximum(1.0, np.abs(x))).astype(x.dtype)
    if method is None:
        if eps is None and x.dtype == np.float32:
            return relative
        h = np.broadcast_to(np.asarray(DEFAULT_EPS if eps is None else eps, dtype=x.dtype),
                            x.shape)
    elif rel_step is None:
        return relative
    else:
        h = (np.asarray(rel_step, dtype=x.dtype) * sign * np.abs(x)).astype(x.dtype)
    # A step that rounds away entirely falls back to the default relative one.
    return np.where((x + h) - x == 0, relative, h).astype(x.dtype)


def fit_forward(x, h, lower, upper):
    """One-sided steps kept inside ``[lower, upper]``."""
    if lower is None:
        return h
    h = h.copy()
    below, above = x - lower, upper - x
    violated = (x + h < lower) | (x + h > upper)
    fits = np.abs(h) <= np.maximum(below, above)
    h[violated & fits] *= -1
    forward = (above >= below) & ~fits
    h[forward] = above[forward]
    backward = (above < below) & ~fits
    h[backward] = -below[backward]
    return h


def fit_central(x, h, lower, upper):
    """Central steps kept inside ``[lower, upper]``: ``(h, one_sided)``."""
    one_sided = np.zeros(x.shape[0], dtype=bool)
    if lower is None:
        return h, one_sided
    h = h.copy()
    below, above = x - lower, upper - x
    central = (below >= h) & (above >= h)
    forward = (above >= below) & ~central
    h[forward] = np.minimum(h[forward], 0.5 * above[forward])
    one_sided[forward] = True
    backward = (above < below) & ~central
    h[backward] = -np.minimum(h[backward], 0.5 * below[backward])
    one_sided[backward] = True
    # Too close to both bounds for a one-sided step of full length: central, shortened.
    room = np.minimum(above, below)
    shortened = ~central & (np.abs(h) <= room)
    h[shortened] = room[shortened]
    one_sided[shortened] = False
    return h, one_sided
