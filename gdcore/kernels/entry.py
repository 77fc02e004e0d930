"""Compiled entry points of the functional API: scan the inputs, then compute.

Each public call of :mod:`gdcore.functional` makes exactly one of these calls.
Folding the input scan (:func:`.checks.scan_inputs`) into the same compiled
call saves a Python-to-Numba dispatch, which is a measurable share of a small
network's gradient.  The computation only runs when the scan finds nothing;
the caller turns a non-OK status into the documented error.
"""

from .. import codes
from ._jit import jit
from .checks import OK, scan_inputs
from .network import loss_value, predict, value_and_grad

_NOUT = codes.COL_N_OUT


@jit
def checked_value_and_grad(params, offsets, X, Y, labels, weights_, loss_code, l2, work, grad):
    """Scan, then :func:`.network.value_and_grad`.

    Returns
    -------
    status, index : int
        Scan result (see :mod:`.checks`); ``loss`` is 0 unless status is OK.
    loss : float
    """
    status, index = scan_inputs(params, X, Y, labels, weights_, loss_code, offsets[-1, _NOUT])
    if status != OK:
        return status, index, 0.0
    return OK, 0, value_and_grad(params, offsets, X, Y, labels, weights_, loss_code, l2,
                                 work, grad)


@jit
def checked_loss(params, offsets, X, Y, labels, weights_, loss_code, l2, work):
    """Scan, then :func:`.network.loss_value`; returns (status, index, loss)."""
    status, index = scan_inputs(params, X, Y, labels, weights_, loss_code, offsets[-1, _NOUT])
    if status != OK:
        return status, index, 0.0
    return OK, 0, loss_value(params, offsets, X, Y, labels, weights_, loss_code, l2, work)


@jit
def checked_predict(params, offsets, X, Y, labels, weights_, loss_code, work, out):
    """Scan, then :func:`.network.predict` copied into ``out``; returns (status, index)."""
    status, index = scan_inputs(params, X, Y, labels, weights_, loss_code, offsets[-1, _NOUT])
    if status != OK:
        return status, index
    out[:, :] = predict(params, offsets, X, work)
    return OK, 0
