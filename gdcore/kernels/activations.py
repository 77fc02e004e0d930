"""Element-wise activations and their derivatives over (n_samples, n_units) blocks.

The activation is chosen by its integer code (:mod:`gdcore.codes`) once per
block, outside the element loop, so that each loop body is branch-free except
where the formula itself branches for stability.  Constants are made in the
array's own dtype so float32 kernels never compute in float64.

NaN propagates through every activation (``relu(nan)`` is ``nan``), so a
diverging model shows up in its loss instead of being masked.
"""

import math


from .. import codes
from ._jit import jit
from .views import flat_view

_IDENTITY = codes.IDENTITY
_RELU = codes.RELU
_LEAKY_RELU = codes.LEAKY_RELU
_ELU = codes.ELU
_SIGMOID = codes.SIGMOID
_TANH = codes.TANH
_SOFTPLUS = codes.SOFTPLUS
_GELU = codes.GELU
_SILU = codes.SILU
_SOFTMAX = codes.SOFTMAX

LEAKY_SLOPE = 0.01  # PyTorch's default negative_slope
ELU_ALPHA = 1.0


@jit
def sigmoid(z, one):
    """Logistic function without overflow: branches on the sign of ``z``."""
    if z >= 0:
        return one / (one + math.exp(-z))
    e = math.exp(z)
    return e / (one + e)


@jit
def _softplus(z, zero):
    """log(1 + exp(z)) as max(z, 0) + log1p(exp(-|z|)): no overflow, exact tails."""
    return max(z, zero) + math.log1p(math.exp(-abs(z)))


@jit
def activate(code, Z, A):
    """Write ``A = f(Z)`` for activation ``code``; ``A`` may be ``Z`` itself.

    Parameters
    ----------
    code : int
        Activation code from :mod:`gdcore.codes`.
    Z : ndarray of shape (n_samples, n_units)
        Pre-activations.
    A : ndarray of shape (n_samples, n_units)
        Output, overwritten.
    """
    # Element-wise activations run over the flat C-contiguous block: one long
    # loop vectorises far better than n_samples short ones when n_units is small.
    zf = flat_view(Z)
    af = flat_view(A)
    zero = Z.dtype.type(0)
    one = Z.dtype.type(1)
    half = Z.dtype.type(0.5)
    if code == _IDENTITY:
        for t in range(zf.shape[0]):
            af[t] = zf[t]
    elif code == _RELU:
        for t in range(zf.shape[0]):
            z = zf[t]
            af[t] = zero if z <= zero else z
    elif code == _LEAKY_RELU:
        slope = Z.dtype.type(LEAKY_SLOPE)
        for t in range(zf.shape[0]):
            z = zf[t]
            af[t] = slope * z if z <= zero else z
    elif code == _ELU:
        alpha = Z.dtype.type(ELU_ALPHA)
        for t in range(zf.shape[0]):
            z = zf[t]
            af[t] = alpha * math.expm1(z) if z <= zero else z
    elif code == _SIGMOID:
        for t in range(zf.shape[0]):
            af[t] = sigmoid(zf[t], one)
    elif code == _TANH:
        for t in range(zf.shape[0]):
            af[t] = math.tanh(zf[t])
    elif code == _SOFTPLUS:
        for t in range(zf.shape[0]):
            af[t] = _softplus(zf[t], zero)
    elif code == _GELU:
        rsqrt2 = Z.dtype.type(1.0 / math.sqrt(2.0))
        for t in range(zf.shape[0]):
            z = zf[t]
            af[t] = half * z * (one + math.erf(z * rsqrt2))
    elif code == _SILU:
        for t in range(zf.shape[0]):
            z = zf[t]
            af[t] = z * sigmoid(z, one)
    elif code == _SOFTMAX:
        n, k = Z.shape
        for i in range(n):
            m = Z[i, 0]
            for j in range(1, k):
                m = max(m, Z[i, j])
            s = zero
            for j in range(k):
                e = math.exp(Z[i, j] - m)
                A[i, j] = e
                s += e
            r = one / s
            for j in range(k):
                A[i, j] *= r


@jit
def backprop_activation(code, Z, A, G):
    """Multiply ``G`` in place by ``f'(Z)``: turns dL/dA into dL/dZ.

    Parameters
    ----------
    code : int
        Activation code (not softmax: softmax is only ever fused with its loss).
    Z, A : ndarray of shape (n_samples, n_units)
        Pre-activations and activations of the forward pass.
    G : ndarray of shape (n_samples, n_units)
        dL/dA on entry, dL/dZ on exit.

    Identity (and softmax, which ``Model`` only allows as the output of a
    logit loss, whose gradient the loss kernel forms directly) leave ``G``
    unchanged.
    """
    zf = flat_view(Z)  # flat views: see activate()
    af = flat_view(A)
    gf = flat_view(G)
    zero = Z.dtype.type(0)
    one = Z.dtype.type(1)
    half = Z.dtype.type(0.5)
    if code == _IDENTITY:
        return
    elif code == _RELU:
        # Derivative 0 at the kink, as PyTorch.  A select, not a conditional
        # store: the loop then vectorises (0.81 -> 0.17 us on 32x32 float32).
        for t in range(zf.shape[0]):
            gf[t] = gf[t] if zf[t] > zero else zero
    elif code == _LEAKY_RELU:
        slope = Z.dtype.type(LEAKY_SLOPE)
        for t in range(zf.shape[0]):
            gf[t] *= one if zf[t] > zero else slope
    elif code == _ELU:
        alpha = Z.dtype.type(ELU_ALPHA)
        for t in range(zf.shape[0]):
            gf[t] *= one if zf[t] > zero else af[t] + alpha  # alpha * exp(z) below 0
    elif code == _SIGMOID:
        for t in range(zf.shape[0]):
            a = af[t]
            gf[t] *= a * (one - a)
    elif code == _TANH:
        for t in range(zf.shape[0]):
            a = af[t]
            gf[t] *= one - a * a
    elif code == _SOFTPLUS:
        for t in range(zf.shape[0]):
            gf[t] *= sigmoid(zf[t], one)
    elif code == _GELU:
        rsqrt2 = Z.dtype.type(1.0 / math.sqrt(2.0))
        rsqrt2pi = Z.dtype.type(1.0 / math.sqrt(2.0 * math.pi))
        for t in range(zf.shape[0]):
            z = zf[t]
            cdf = half * (one + math.erf(z * rsqrt2))
            pdf = rsqrt2pi * math.exp(-half * z * z)
            gf[t] *= cdf + z * pdf
    elif code == _SILU:
        for t in range(zf.shape[0]):
            z = zf[t]
            s = sigmoid(z, one)
            gf[t] *= s * (one + z * (one - s))
