"""Which side of each kink a batch sits on, for gradient checking.

ReLU-like activations and the mae/huber losses have kinks where a derivative
jumps (for elu, the second derivative).  A finite difference whose stencil
straddles a kink measures neither side's derivative to full accuracy, so
:mod:`gdcore.gradcheck` skips the coordinates whose kink pattern changes
within the stencil.
"""

from .. import codes
from ._jit import jit
from .network import forward, output_block, split_workspace
from .views import layer_block

_KINKED = codes.KINKED_ACTIVATIONS
_MAE = codes.MAE
_HUBER = codes.HUBER
_ACT = codes.COL_ACTIVATION
_ANY_ACTS = codes.ANY_ACTS


@jit
def kink_pattern(params, offsets, X, Y, loss_code, work, pattern):
    """Fill ``pattern`` with the side of every kink the batch sits on.

    Parameters
    ----------
    params : ndarray of shape (n_params,)
    offsets : ndarray of shape (n_layers, N_COLS), int64
    X : ndarray of shape (n_samples, n_inputs)
    Y : ndarray of shape (n_samples, n_outputs) or (0, n_outputs)
    loss_code : int
    work : ndarray, the network workspace (see kernels.network)
    pattern : ndarray of shape (n_samples * (total_units + n_outputs),), int8
        Overwritten: for each unit of a relu, leaky_relu or elu layer, 1 if ``z > 0``; for
        each output under mae, the sign of the residual; under huber, 1 if
        ``|residual| < 1``.  Other entries are 0.
    """
    n = X.shape[0]
    Zs, As, D0, D1 = split_workspace(work, offsets, n)
    forward(params, offsets, X, Zs, As, True, _ANY_ACTS)  # gradient checks only: generic
    pattern[:] = 0
    p = 0
    for l in range(offsets.shape[0]):
        Z = layer_block(Zs, offsets, l, n)
        kinked = offsets[l, _ACT] in _KINKED
        for i in range(n):
            for j in range(Z.shape[1]):
                if kinked and Z[i, j] > 0:
                    pattern[p] = 1
                p += 1
    if loss_code == _MAE or loss_code == _HUBER:
        out = output_block(offsets, loss_code, Zs, As, n)
        for i in range(n):
            for j in range(out.shape[1]):
                d = out[i, j] - Y[i, j]
                if loss_code == _MAE:
                    pattern[p] = 1 if d > 0 else (-1 if d < 0 else 0)
                else:
                    pattern[p] = 1 if abs(d) < 1 else 0
                p += 1
