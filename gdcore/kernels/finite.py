"""The first NaN or Inf of an array, in one vectorised pass when there is none.

Below :mod:`.checks` (which reports it) and :mod:`.sparse` (which finds the
first such row of a dense batch with it).
"""

import numpy as np

from ._jit import jit


@jit
def first_nonfinite(flat):
    """Index of the first NaN/Inf in a 1-D array, or -1 when all are finite.

    The common all-finite case is one vectorised pass: ``x * 0`` is 0 for
    finite ``x`` and NaN for NaN/Inf (the jit policy keeps NaN semantics, so
    the product cannot be folded away).  Only a failure pays for the search.
    """
    zero = flat.dtype.type(0)
    acc = zero
    for i in range(flat.shape[0]):
        acc += flat[i] * zero
    if acc == zero:
        return -1
    # Also reached when reassociation folded the sum into (sum of x) * 0 and
    # that sum overflowed: the exact search then finds no culprit.
    for i in range(flat.shape[0]):
        if not np.isfinite(flat[i]):
            return i
    return -1
