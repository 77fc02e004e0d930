"""Compiled entry points of the functional API: scan the inputs, then compute.

Each public call of :mod:`gdcore.functional` makes exactly one of these calls.
Folding the input scan (:func:`.checks.scan_inputs`) into the same compiled
call saves a Python-to-Numba dispatch, which is a measurable share of a small
network's gradient.  The computation only runs when the scan finds nothing;
the caller turns a non-OK status into the documented error.

A model's kernels come from the factories at the bottom, one per model spec
(its loss code and activation spec, :func:`gdcore.codes.activation_spec`):
they compile with the spec's codes as constants, so a relu / cross-entropy
network compiles relu, its output activation and cross-entropy, not every
activation and loss gdcore has.  The generic kernels above them read the
codes at run time (``GDCORE_KERNELS=generic``, see :mod:`._jit`); compiled
ahead of time (:mod:`._aot`), they serve every model by default.
"""

from .. import codes
from ._jit import jit, per_code
from .checks import OK, scan_inputs
from .copies import copy_matrix
from .network import loss_value, predict, value_and_grad

_NOUT = codes.COL_N_OUT
ANY_ACTS = codes.ANY_ACTS


def valid_model_spec(loss_code, acts):
    """Whether ``(loss_code, acts)`` names a loss and an activation spec."""
    hidden, output = divmod(acts, codes.ACTS_BASE) if acts >= 0 else (0, 0)
    return (loss_code in codes.LOSSES.values() and acts >= 0
            and (hidden in codes.ACTIVATION_NAMES or hidden == codes.MIXED)
            and output in codes.ACTIVATION_NAMES)


@jit(inline=True)
def checked_value_and_grad(params, offsets, data, loss_code, l2, work, grad, acts):
    """Scan, then :func:`.network.value_and_grad`.

    ``data`` is the batch ``(X, Y, labels, weights_)``, as every kernel from
    here down takes it.

    Returns
    -------
    status, index : int
        Scan result (see :mod:`.checks`); ``loss`` is 0 unless status is OK.
    loss : float
    """
    status, index = scan_inputs(params, data, loss_code, offsets[-1, _NOUT])
    if status != OK:
        return status, index, 0.0
    return OK, 0, value_and_grad(params, offsets, data, loss_code, l2, work, grad, acts)


@jit(inline=True)
def checked_loss(params, offsets, data, loss_code, l2, work, acts):
    """Scan, then :func:`.network.loss_value`; returns (status, index, loss)."""
    status, index = scan_inputs(params, data, loss_code, offsets[-1, _NOUT])
    if status != OK:
        return status, index, 0.0
    return OK, 0, loss_value(params, offsets, data, loss_code, l2, work, acts)


@jit(inline=True)
def checked_predict(params, offsets, data, loss_code, work, out, acts):
    """Scan, then :func:`.network.predict` copied into ``out``; returns (status, index).

    ``data``'s targets and weights are empty: the scan checks ``params`` and ``X``.
    """
    status, index = scan_inputs(params, data, loss_code, offsets[-1, _NOUT])
    if status != OK:
        return status, index
    copy_matrix(out, predict(params, offsets, data[0], work, acts))
    return OK, 0


# The kernels called from Python take no activation spec: the generic ones
# (GDCORE_KERNELS=generic) read every layer's code from the offset table
# (``ANY_ACTS``), the specialised ones have their model's spec as a constant.
# One argument fewer to type per call of a small network.

@jit
def any_value_and_grad(params, offsets, data, loss_code, l2, work, grad):
    """:func:`checked_value_and_grad` for any model (codes read at run time)."""
    return checked_value_and_grad(params, offsets, data, loss_code, l2, work, grad, ANY_ACTS)


@jit
def any_loss(params, offsets, data, loss_code, l2, work):
    """:func:`checked_loss` for any model (codes read at run time)."""
    return checked_loss(params, offsets, data, loss_code, l2, work, ANY_ACTS)


@jit
def any_predict(params, offsets, data, loss_code, work, out):
    """:func:`checked_predict` for any model (codes read at run time)."""
    return checked_predict(params, offsets, data, loss_code, work, out, ANY_ACTS)


# One factory per entry point, each closure with its own explicit arguments: one
# shared factory would take them as star-arguments, which hides every kernel's
# signature from its reader and from the AOT exports it must match.
@per_code(any_value_and_grad, valid_model_spec, "loss code and activation spec",
          aot="any_value_and_grad")
def value_and_grad_kernel(loss_code, acts):
    """:func:`checked_value_and_grad` compiled for one model spec (a ``Model.kernel_key``).

    The kernel takes :func:`any_value_and_grad`'s arguments; the spec's loss
    code replaces the run-time one.
    """
    @jit
    def checked_value_and_grad_of(params, offsets, data, loss_code_, l2, work, grad):
        return checked_value_and_grad(params, offsets, data, loss_code, l2, work, grad, acts)

    return checked_value_and_grad_of


@per_code(any_loss, valid_model_spec, "loss code and activation spec", aot="any_loss")
def loss_kernel(loss_code, acts):
    """:func:`checked_loss` compiled for one model spec (as :func:`value_and_grad_kernel`)."""
    @jit
    def checked_loss_of(params, offsets, data, loss_code_, l2, work):
        return checked_loss(params, offsets, data, loss_code, l2, work, acts)

    return checked_loss_of


@per_code(any_predict, valid_model_spec, "loss code and activation spec", aot="any_predict")
def predict_kernel(loss_code, acts):
    """:func:`checked_predict` compiled for one model spec (as :func:`value_and_grad_kernel`)."""
    @jit
    def checked_predict_of(params, offsets, data, loss_code_, work, out):
        return checked_predict(params, offsets, data, loss_code, work, out, acts)

    return checked_predict_of
