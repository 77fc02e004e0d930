"""Element-by-element copies between arrays whose shapes the caller has matched.

``dst[:] = src`` in a kernel checks the shapes at run time, and for the error
it may raise compiles Numba's string formatting of both shapes: about 3 s of
a cold first ``predict`` or ``gd.lbfgs`` call, once per process (Numba's
passes timed per function, AMD EPYC Zen 3), for a check the callers have
already made.  These loops copy without it.
"""

from ._jit import jit


@jit(exact=True, inline=True)
def copy_vector(dst, src):
    """``dst[:] = src`` for two 1-D arrays of one length (not checked); exact kernels only."""
    for i in range(dst.shape[0]):
        dst[i] = src[i]


@jit(inline=True)
def copy_matrix(dst, src):
    """``dst[:, :] = src`` for two 2-D arrays of one shape (not checked)."""
    for i in range(dst.shape[0]):
        for j in range(dst.shape[1]):
            dst[i, j] = src[i, j]
