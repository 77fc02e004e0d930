"""SciPy-style objectives: ``fun(x, *args)`` with a gradient from wherever SciPy allows.

:class:`Objective` turns the ``fun`` / ``jac`` / ``args`` of
``scipy.optimize.minimize`` into one call ``f = objective(x, g_out)`` and
counts evaluations as SciPy does (``nfev`` for ``fun``, ``njev`` for ``jac``):

* ``jac=True``: ``fun`` returns ``(f, g)``;
* ``jac`` callable: ``jac(x, *args)``;
* ``jac`` None, ``"2-point"`` or ``"3-point"``: finite differences with the
  steps ``scipy.optimize.minimize`` takes for its own methods
  (:mod:`gdcore.differences`: absolute 1e-8 forward steps for None, as
  L-BFGS-B), each objective call counted in ``nfev``.  With bounds, the steps
  stay inside.

``scipy.optimize.minimize(..., jac=True)`` hands a custom method a memoising
wrapper and its ``derivative``; it is unwrapped here, so ``fun`` runs once
per point.
"""

import numpy as np
from numba.core.dispatcher import Dispatcher

from . import differences
from .kernels import minimize_loops

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

    def refinable(self):
        """Whether :meth:`refine` can make the finite differences more accurate:
        forward ones (jac None or "2-point"), or central ones with SciPy's default
        steps."""
        if not isinstance(self.jac, str) and self.jac is not None:
            return False
        return self.jac != "3-point" or self.rel_step is None

    def refine(self, x, f):
        """The next rung of finite differences, and the gradient at ``x`` by it
        (``f``, the value at ``x``, is not evaluated again): float64, shape (n,).

        Forward differences err by about h times the second derivative; near a
        minimum that can exceed the gradient itself, and no step along it then
        decreases f.  So the first rung is central differences with SciPy's
        steps (``eps**(1/3) max(1, |x|)``), which err by about h**2 times the
        third derivative.  Where a variable is much smaller than 1 and f
        curves fast along it, those steps are still too long (Osborne 1's
        fourth variable, 0.013: a gradient component of the wrong sign); the
        second rung takes steps relative to ``|x|`` (``eps**(1/3) |x|``,
        SciPy's rule for a given ``finite_diff_rel_step``, which falls back to
        the default where the step would vanish).
        """
        if self.jac == "3-point":
            self.rel_step = np.finfo(x.dtype).eps ** (1 / 3)
        else:
            self.jac, self.rel_step = "3-point", None
        self.njev += 1
        return self._finite_differences(x, f)

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
            grad = self._finite_differences(x, f)
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
        return differences.gradient(self.value, x, f0, self.jac, self.eps, self.rel_step,
                                    self.bounds)


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
