"""SciPy-style objectives: ``fun(x, *args)`` with a gradient from wherever SciPy allows.

:class:`Objective` turns the ``fun`` / ``jac`` / ``args`` of
``scipy.optimize.minimize`` into one call ``f = objective(x, g_out)`` and
counts evaluations as SciPy does (``nfev`` for ``fun``, ``njev`` for ``jac``):

* ``jac=True``: ``fun`` returns ``(f, g)``;
* ``jac`` callable: ``jac(x, *args)``;
* ``jac`` None, ``"2-point"`` or ``"3-point"``: finite differences through
  SciPy's public routines (``scipy.optimize.approx_fprime`` with relative
  steps; ``scipy.differentiate.derivative`` for central differences), each
  objective call counted in ``nfev``.  With bounds, the steps stay inside:
  one-sided (backward at an upper bound), and central differences fall back
  to one-sided ones near a bound.

``scipy.optimize.minimize(..., jac=True)`` hands a custom method a memoising
wrapper and its ``derivative``; it is unwrapped here, so ``fun`` runs once
per point.
"""

import numpy as np
from numba.core.dispatcher import Dispatcher
from scipy.differentiate import derivative
from scipy.optimize import approx_fprime

from .kernels import minimize_loops

# Relative finite-difference steps: about the cube root / square root of the
# float64 epsilon, scaled by max(1, |x|), as SciPy's approx_derivative does.
_STEP_2POINT = np.sqrt(np.finfo(np.float64).eps)
_STEP_3POINT = np.finfo(np.float64).eps ** (1 / 3)
FD_METHODS = (None, "2-point", "3-point")


def unwrap_memoized(fun, jac):
    """``(fun, True)`` for SciPy's MemoizeJac pair, else ``(fun, jac)`` unchanged."""
    owner = getattr(jac, "__self__", None)
    if owner is not None and type(owner).__name__ == "MemoizeJac" and owner is fun:
        return owner.fun, True
    return fun, jac


class Objective:
    """``f = objective(x, g)``: the value at ``x``, with the gradient written into ``g``.

    Parameters
    ----------
    fun : callable
        ``fun(x, *args, **kwargs) -> f`` (or ``(f, g)`` with ``jac=True``).
    jac : True, callable, None, "2-point" or "3-point"
    args : tuple
    eps : float or ndarray of shape (n,), optional
        Absolute forward-difference step when ``jac`` is None.
    rel_step : float or ndarray of shape (n,), optional
        Relative step when ``jac`` is "2-point" or "3-point".
    """

    def __init__(self, fun, jac, args, *, eps=None, rel_step=None):
        if not callable(fun):
            raise TypeError(f"fun must be callable, got {fun!r}")
        fun, jac = unwrap_memoized(fun, jac)
        # `jac in FD_METHODS` alone would compare an array elementwise (and raise).
        if not (jac is True or callable(jac) or jac is None
                or (isinstance(jac, str) and jac in FD_METHODS)):
            raise ValueError(f"jac must be True, a callable, None, '2-point' or '3-point', "
                             f"got {jac!r}")
        self.fun, self.jac, self.args = fun, jac, tuple(args)
        self.eps = eps  # absolute step of jac=None (None: 1e-8, as L-BFGS-B)
        self.rel_step = rel_step  # relative step of '2-point'/'3-point' (None: SciPy's)
        self.nfev = 0
        self.njev = 0  # gradients delivered, as SciPy counts them
        self.kwargs = {}  # e.g. {"batch": indices} for mini-batch objectives
        self.bounds = None  # (lower, upper): finite differences stay inside

    def count_compiled(self, n_calls):
        """Record ``n_calls`` value-and-gradient evaluations made by a compiled loop."""
        self.nfev += n_calls
        self.njev += n_calls

    def value(self, x):
        self.nfev += 1
        f = self.fun(x.copy(), *self.args, **self.kwargs)
        return _scalar(f)

    def __call__(self, x, g):
        """Value at ``x``; the gradient goes to ``g`` (same shape, any float dtype).

        ``fun`` gets a copy of ``x``, as with SciPy: it may keep it.
        """
        self.njev += 1
        if self.jac is True:
            self.nfev += 1
            out = self.fun(x.copy(), *self.args, **self.kwargs)
            try:
                f, grad = out
            except (TypeError, ValueError):
                raise TypeError("with jac=True, fun must return (f, g), got "
                                f"{type(out).__name__}") from None
            f = _scalar(f)
        elif callable(self.jac):
            f = self.value(x)
            grad = self.jac(x.copy(), *self.args, **self.kwargs)
        else:
            f = self.value(x)
            grad = self._finite_differences(np.asarray(x, dtype=np.float64), f)
        try:
            grad = np.asarray(grad)
        except (TypeError, ValueError):  # ragged sequences and the like
            raise TypeError(f"the gradient (jac) must be an array of real numbers, got "
                            f"{type(grad).__name__}") from None
        if grad.shape != g.shape:
            raise ValueError(f"the gradient has shape {grad.shape}, expected {g.shape} like x")
        if grad.dtype.kind not in "biuf":  # complex would lose its imaginary part silently
            raise TypeError(f"the gradient (jac) must hold real numbers, got dtype {grad.dtype}")
        g[:] = grad
        return f

    def _finite_differences(self, x, f0):
        scale = np.maximum(1.0, np.abs(x))
        lower, upper = self.bounds if self.bounds is not None else (-np.inf, np.inf)
        inside = np.all(x - _STEP_3POINT * scale >= lower) and \
            np.all(x + _STEP_3POINT * scale <= upper)
        if self.jac == "3-point" and inside:
            h = _STEP_3POINT * scale
            n = x.shape[0]

            def along(t):
                # t: (n,) or (n, k) points; row i varies coordinate i only.
                pts = t.reshape(n, -1)
                out = np.empty(pts.shape)
                for i in range(n):
                    for j in range(pts.shape[1]):
                        xi = x.copy()
                        xi[i] = pts[i, j]
                        out[i, j] = self.value(xi)
                return out.reshape(t.shape)

            res = derivative(along, x, initial_step=h, order=2, maxiter=1)
            return res.df
        if not np.isfinite(f0):
            return np.full_like(x, np.nan)
        h = _STEP_2POINT * scale
        # One-sided steps that stay inside the bounds: backward where forward leaves.
        h = np.where(x + h > upper, -h, h)
        # approx_fprime evaluates f at x itself; count it (and every step).
        return approx_fprime(x, self.value, h)


def _scalar(f):
    hint = " (with jac=True, fun returns (f, g); otherwise f alone)"
    try:
        arr = np.asarray(f)
    except (TypeError, ValueError):  # e.g. (f, g) returned without jac=True
        raise TypeError(f"fun must return a real scalar, got {type(f).__name__}{hint}") \
            from None
    if arr.size != 1:
        raise ValueError(f"fun must return a scalar, got an array of shape {arr.shape}{hint}")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"fun must return a real scalar, got dtype {arr.dtype}{hint}")
    return float(arr.reshape(()))


def compiled_fg(objective):
    """A Numba function ``fg(x, *args) -> (f, g)`` when the objective is compiled.

    None unless ``fun`` is a Numba dispatcher and the gradient comes from it
    (``jac=True``) or from a compiled ``jac``; finite differences and
    mini-batch keywords stay on the Python path.
    """
    fun, jac = objective.fun, objective.jac
    if not isinstance(fun, Dispatcher) or objective.kwargs:
        return None
    if jac is True:
        return fun
    if not isinstance(jac, Dispatcher):
        return None
    return minimize_loops.value_and_gradient(fun, jac)
