"""Gradient validation against SciPy finite differences.

:func:`check_grad` compares the analytic gradient of :func:`gdcore.value_and_grad`
with fourth-order central differences of the loss computed by
:func:`scipy.differentiate.derivative`, always in float64.  A float32 model's
gradient (computed by the float32 kernels) is compared with the float64
differences at the same point, so the check also measures float32 round-off.

Coordinates whose finite-difference stencil crosses a kink (a ReLU-like unit
changing sign, an mae/huber residual crossing its break point) are skipped and
counted in the report, never silently averaged in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from scipy.differentiate import derivative

from . import _validate, codes
from .functional import prepare_batch, value_and_grad
from .kernels import kinks, network
from .model import Model

# Default tolerances by the dtype of the gradient: on the norm-relative error,
# and on the max absolute error (which decides when the gradient is ~0 and a
# relative error means nothing: finite differences of a loss of order 1 carry
# about 1e-12 of round-off).
DEFAULT_RTOL = {np.dtype(np.float64): 1e-6, np.dtype(np.float32): 1e-5}
DEFAULT_ATOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-9}


@dataclass(frozen=True)
class GradCheckReport:
    """Outcome of :func:`check_grad`.

    Attributes
    ----------
    ok : bool
        At least one coordinate was checked, and ``rel_error <= rtol`` or
        ``max_abs_error <= atol``.
    rel_error : float
        ``||g - g_fd|| / max(||g||, ||g_fd||)`` over the checked coordinates
        (0 when both norms are 0).
    max_abs_error : float
        ``max |g - g_fd|`` over the checked coordinates.
    rtol, atol : float
        The tolerances ``ok`` was judged with.
    per_layer : dict of str to float
        Norm-relative error of each block, keyed ``"layer 0 W"``, ``"layer 0 b"``, ...
    n_checked, n_skipped : int
        Coordinates compared, and coordinates skipped because their stencil
        crosses a kink.
    grad, numerical : ndarray of shape (n_params,)
        The analytic gradient and the finite-difference estimate (float64;
        NaN where skipped).
    dtype : numpy.dtype
        The dtype of the analytic gradient.
    """

    ok: bool
    rel_error: float
    max_abs_error: float
    rtol: float
    atol: float
    per_layer: dict
    n_checked: int
    n_skipped: int
    grad: np.ndarray = field(repr=False)
    numerical: np.ndarray = field(repr=False)
    dtype: np.dtype = np.dtype(np.float64)

    def __str__(self):
        verdict = "OK" if self.ok else "FAILED"
        lines = [
            f"gradient check {verdict} ({self.dtype}): relative error {self.rel_error:.2e} "
            f"(tolerance {self.rtol:.0e}), max abs error {self.max_abs_error:.2e} "
            f"(tolerance {self.atol:.0e})",
            f"  {self.n_checked} coordinates checked, {self.n_skipped} skipped at kinks",
        ]
        lines += [f"  {name:<12} {err:.2e}" for name, err in self.per_layer.items()]
        return "\n".join(lines)


def _relative_error(a, b):
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return 0.0 if scale == 0 else float(np.linalg.norm(a - b) / scale)


def check_grad(model: Model | Callable[..., Any], *args: Any,
               **kwargs: Any) -> GradCheckReport:
    """Check a gradient against SciPy central differences: a model's, or a SciPy objective's.

    ``check_grad(model, params, X, y, l2=0.0, sample_weight=None)`` checks
    :func:`gdcore.value_and_grad` (:func:`check_model_grad`);
    ``check_grad(fun, x0, jac=None, args=())`` checks a SciPy-style objective
    (:func:`check_objective_grad`).  Unlike ``scipy.optimize.check_grad``,
    which returns one absolute norm, both return a :class:`GradCheckReport`
    with the norm-relative error and a verdict.

    Parameters
    ----------
    model : Model or callable
        The model whose :func:`gdcore.value_and_grad` is checked, or a
        SciPy-style objective ``fun``.
    *args, **kwargs
        The rest of :func:`check_model_grad`'s arguments (``params, X, y,
        l2=0.0, sample_weight=None``, ``step``, ``rtol``, ``atol``) or of
        :func:`check_objective_grad`'s (``x0, jac=None, args=()``, ...).

    Returns
    -------
    GradCheckReport
    """
    if callable(model) and not isinstance(model, Model):
        return check_objective_grad(model, *args, **kwargs)
    return check_model_grad(model, *args, **kwargs)


def check_objective_grad(fun, x0, jac=None, args=(), *, step=1e-4, rtol=None, atol=None):
    """Compare a SciPy-style objective's gradient with central differences of its value.

    Parameters
    ----------
    fun : callable
        ``fun(x, *args)`` returning ``(f, g)`` when ``jac`` is None or True,
        else ``f``.
    x0 : array-like of shape (n,)
        The point; float32 or float64 (the dtype of the gradient under test).
    jac : None, True or callable
        ``jac(x, *args) -> g`` when callable.
    args : tuple
    step, rtol, atol
        As for :func:`check_model_grad`.

    Returns
    -------
    GradCheckReport
        ``per_layer`` is empty and ``n_skipped`` 0 (nothing is known about kinks).
    """
    try:
        x = np.asarray(x0)
    except (TypeError, ValueError) as exc:  # ragged lists and the like
        raise TypeError(f"x0 must be a 1-D array of real numbers: {exc}") from None
    if x.ndim != 1 or x.dtype.kind not in "biuf" or x.shape[0] == 0:
        raise ValueError(f"x0 must be a non-empty 1-D array of real numbers, got shape "
                         f"{x.shape} and dtype {x.dtype}")
    dtype = x.dtype if x.dtype in _validate.FLOAT_DTYPES else np.dtype(np.float64)
    x = x.astype(dtype)
    if not isinstance(args, tuple):
        args = (args,)
    if jac is None or jac is True:
        value, grad = fun(x, *args)

        def f(point):
            return fun(point, *args)[0]
    elif callable(jac):
        value, grad = fun(x, *args), jac(x, *args)

        def f(point):
            return fun(point, *args)
    else:
        raise ValueError(f"jac must be None, True or a callable, got {jac!r}")
    grad = np.asarray(grad, dtype=np.float64)
    if grad.shape != x.shape:
        raise ValueError(f"the gradient has shape {grad.shape}, expected {x.shape} like x0")
    step, rtol, atol = _tolerances(step, rtol, atol, dtype)
    x64 = x.astype(np.float64)
    probe = x64.copy()

    def coordinatewise(values):
        out = np.empty(values.shape)
        for j in range(values.shape[0]):
            for idx in np.ndindex(values.shape[1:]):
                probe[j] = values[(j,) + idx]
                out[(j,) + idx] = float(f(probe))
            probe[j] = x64[j]
        return out

    numerical = derivative(coordinatewise, x64, order=4, maxiter=1, initial_step=step).df
    rel = _relative_error(grad, numerical)
    max_abs = float(np.max(np.abs(grad - numerical)))
    return GradCheckReport(
        ok=bool(np.isfinite(value) and (rel <= rtol or max_abs <= atol)),
        rel_error=rel, max_abs_error=max_abs, rtol=rtol, atol=atol, per_layer={},
        n_checked=x.shape[0], n_skipped=0, grad=grad, numerical=numerical, dtype=dtype)


def _tolerances(step, rtol, atol, dtype):
    step = _validate.nonnegative_float(step, "step")
    if step == 0:
        raise ValueError("step must be > 0, got 0.0")
    rtol = DEFAULT_RTOL[dtype] if rtol is None else _validate.nonnegative_float(rtol, "rtol")
    atol = DEFAULT_ATOL[dtype] if atol is None else _validate.nonnegative_float(atol, "atol")
    return step, rtol, atol


def check_model_grad(model, params, X, y, l2=0.0, sample_weight=None, *, step=1e-4,
                     rtol=None, atol=None):
    """Compare :func:`gdcore.value_and_grad` with SciPy central differences.

    Parameters
    ----------
    model : Model
    params : array-like of shape (n_params,)
        float32 or float64: the dtype of the gradient under test.
    X, y, l2, sample_weight
        As for :func:`gdcore.value_and_grad`.
    step : float, default 1e-4
        Largest finite-difference step (the fourth-order stencil uses
        ``±step`` and ``±step/2``) in float64.
    rtol : float, optional
        Tolerance on the norm-relative error; 1e-6 for float64 and 1e-5 for
        float32 by default.
    atol : float, optional
        Tolerance on the max absolute error, which passes a gradient that is
        zero up to round-off; 1e-10 for float64 and 1e-9 for float32 by default.

    Returns
    -------
    GradCheckReport
    """
    loss_value, grad = value_and_grad(model, params, X, y, l2=l2, sample_weight=sample_weight)
    dtype = grad.dtype
    step, rtol, atol = _tolerances(step, rtol, atol, dtype)
    l2 = float(l2)

    # The reference is always computed in float64, at exactly the point the
    # gradient under test saw: the inputs as converted to the params dtype.
    converted = prepare_batch(model, params, X, y, sample_weight)
    p64, X64, Y64, w64 = (np.array(a, dtype=np.float64) for a in converted[:3] + converted[4:])
    labels = converted[3]
    offsets = model.offsets
    n = X64.shape[0]
    work = np.empty(n * model.forward_units, dtype=np.float64)  # loss and kinks only
    # Sized from the offset table the kernel walks (not from model.layers, which
    # object.__setattr__ could have swapped): kink_pattern writes n * units of it.
    units = int(offsets[:, codes.COL_N_OUT].sum())
    n_pattern = n * (units + model.n_outputs)

    def pattern_at(point):
        pat = np.empty(n_pattern, dtype=np.int8)
        kinks.kink_pattern(point, offsets, X64, Y64, model.loss_code, work, pat)
        return pat

    base_pattern = pattern_at(p64)
    crosses_kink = np.zeros(model.n_params, dtype=bool)
    probe = p64.copy()

    def coordinatewise_loss(values):
        # derivative() calls this with values[j, ...] = candidate values of params[j].
        out = np.empty(values.shape)
        for j in range(values.shape[0]):
            for idx in np.ndindex(values.shape[1:]):
                probe[j] = values[(j,) + idx]
                out[(j,) + idx] = network.loss_value(probe, offsets, (X64, Y64, labels, w64),
                                                     model.loss_code, l2, work, model.acts)
                if not crosses_kink[j] and not np.array_equal(pattern_at(probe), base_pattern):
                    crosses_kink[j] = True
            probe[j] = p64[j]
        return out

    res = derivative(coordinatewise_loss, p64, order=4, maxiter=1, initial_step=step)
    numerical = np.where(crosses_kink, np.nan, res.df)
    keep = ~crosses_kink
    g64 = grad.astype(np.float64)
    per_layer = {}
    blocks = zip(model.unpack(g64), model.unpack(numerical), model.unpack(keep.astype(np.float64)))
    for l, ((gW, gb), (nW, nb), (kW, kb)) in enumerate(blocks):
        per_layer[f"layer {l} W"] = _relative_error(gW[kW > 0], nW[kW > 0])
        per_layer[f"layer {l} b"] = _relative_error(gb[kb > 0], nb[kb > 0])
    checked = int(keep.sum())
    diff = np.abs(g64[keep] - numerical[keep])
    rel = _relative_error(g64[keep], numerical[keep])
    max_abs = float(diff.max()) if checked else 0.0
    return GradCheckReport(
        ok=bool(checked > 0 and np.isfinite(loss_value) and (rel <= rtol or max_abs <= atol)),
        rel_error=rel,
        max_abs_error=max_abs,
        rtol=rtol,
        atol=atol,
        per_layer=per_layer,
        n_checked=checked,
        n_skipped=int(crosses_kink.sum()),
        grad=g64,
        numerical=numerical,
        dtype=dtype,
    )
