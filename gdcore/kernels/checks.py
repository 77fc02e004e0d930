"""One compiled pass over the data that reports the first invalid value.

NumPy would need a temporary and a pass per condition; for the small batches
gdcore is built for, that costs more than the gradient itself.  The kernel
only reports (status, index); :mod:`gdcore._validate` turns it into a message.
"""

import numpy as np

from .. import codes
from ._jit import jit, single
from .finite import first_nonfinite
from .sparse import first_nonfinite_row
from .views import flat_view

OK = 0
PARAMS_NOT_FINITE = 1
X_NOT_FINITE = 2
Y_NOT_FINITE = 3
LABEL_OUT_OF_RANGE = 4
TARGET_OUT_OF_UNIT = 5
WEIGHT_INVALID = 6
WEIGHT_SUM_INVALID = 7

_LOGIT_LOSSES = codes.LOGIT_LOSSES


@jit
def scan_inputs(params, data, loss_code, n_outputs):
    """Find the first invalid input value.

    Parameters
    ----------
    params : ndarray of shape (n_params,)
    data : tuple (X, Y, labels, weights)
        ``X`` ndarray of shape (n_samples, n_features), C-contiguous, or
        SparseRows; ``Y`` ndarray of shape (n_samples, n_outputs) or (0,
        n_outputs), C-contiguous: dense targets (empty when ``labels`` is
        used); ``labels`` ndarray of shape (n_samples,) or (0,), int64;
        ``weights`` ndarray of shape (n_samples,) or (0,).
    loss_code, n_outputs : int

    Returns
    -------
    status : int
        One of the module constants; ``OK`` when everything is valid.
    index : int
        Parameter index or sample index of the first offending value.
    """
    X, Y, labels, weights = data
    i = first_nonfinite(params)
    if i >= 0:
        return PARAMS_NOT_FINITE, i
    i = first_nonfinite_row(X)
    if i >= 0:
        return X_NOT_FINITE, i
    i = first_nonfinite(flat_view(Y))
    if i >= 0:
        return Y_NOT_FINITE, i // Y.shape[1]
    for i in range(labels.shape[0]):
        if labels[i] < 0 or labels[i] >= n_outputs:
            return LABEL_OUT_OF_RANGE, i
    if loss_code in _LOGIT_LOSSES:  # their dense targets are probabilities
        for i in range(Y.shape[0]):
            for j in range(Y.shape[1]):
                if Y[i, j] < 0 or Y[i, j] > 1:
                    return TARGET_OUT_OF_UNIT, i
    total = 0.0
    for i in range(weights.shape[0]):
        w = weights[i]
        if not np.isfinite(w) or w < 0:
            return WEIGHT_INVALID, i
        total += w
    # The loss divides by this float64 sum: it must be positive and finite.
    if weights.shape[0] > 0 and not (0 < total < np.inf):
        return WEIGHT_SUM_INVALID, 0
    return OK, 0


# What Python calls (fit's scan of a whole data set and of its initial parameters):
# compiled ahead of time by default.
scan_inputs_kernel = single(scan_inputs, "scan_inputs")
first_nonfinite_kernel = single(first_nonfinite, "first_nonfinite")
