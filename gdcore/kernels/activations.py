"""Element-wise activations and their derivatives over (n_samples, n_units) blocks.

The activation is chosen by its integer code (:mod:`gdcore.codes`) once per
block, outside the element loop, so that each loop body is branch-free except
where the formula itself branches for stability.  A code that is a constant
of the compiled kernel (the kernels compiled for one model, see
:mod:`.entry`) compiles that activation's loop alone; a code read at run
time compiles all of them behind a dispatch.  Constants are made in the
array's own dtype so float32 kernels never compute in float64.

NaN propagates through every activation (``relu(nan)`` is ``nan``), so a
diverging model shows up in its loss instead of being masked.
"""

import math

from numba.core import types
from numba.extending import overload

from .. import codes
from ._jit import jit, options
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


# One forward and one backward implementation per activation code, as the
# implementations of ``activate_as`` and ``backprop_as`` (below).  Forward ones
# take ``(code, Z, A)`` and write ``A = f(Z)`` (``A`` may be ``Z``); backward
# ones take ``(code, Z, A, G)`` and multiply ``G`` in place by ``f'(Z)``.
# Element-wise ones run over the flat C-contiguous block: one long loop
# vectorises far better than n_samples short ones when n_units is small.

def _identity(code, Z, A):
    zf = flat_view(Z)
    af = flat_view(A)
    for t in range(zf.shape[0]):
        af[t] = zf[t]


def _relu(code, Z, A):
    zf = flat_view(Z)
    af = flat_view(A)
    zero = Z.dtype.type(0)
    for t in range(zf.shape[0]):
        z = zf[t]
        af[t] = zero if z <= zero else z


def _leaky_relu(code, Z, A):
    zf = flat_view(Z)
    af = flat_view(A)
    zero = Z.dtype.type(0)
    slope = Z.dtype.type(LEAKY_SLOPE)
    for t in range(zf.shape[0]):
        z = zf[t]
        af[t] = slope * z if z <= zero else z


def _elu(code, Z, A):
    zf = flat_view(Z)
    af = flat_view(A)
    zero = Z.dtype.type(0)
    alpha = Z.dtype.type(ELU_ALPHA)
    for t in range(zf.shape[0]):
        z = zf[t]
        af[t] = alpha * math.expm1(z) if z <= zero else z


def _sigmoid(code, Z, A):
    zf = flat_view(Z)
    af = flat_view(A)
    one = Z.dtype.type(1)
    for t in range(zf.shape[0]):
        af[t] = sigmoid(zf[t], one)


def _tanh(code, Z, A):
    zf = flat_view(Z)
    af = flat_view(A)
    for t in range(zf.shape[0]):
        af[t] = math.tanh(zf[t])


def _softplus_block(code, Z, A):
    zf = flat_view(Z)
    af = flat_view(A)
    zero = Z.dtype.type(0)
    for t in range(zf.shape[0]):
        af[t] = _softplus(zf[t], zero)


def _gelu(code, Z, A):
    zf = flat_view(Z)
    af = flat_view(A)
    one = Z.dtype.type(1)
    half = Z.dtype.type(0.5)
    rsqrt2 = Z.dtype.type(1.0 / math.sqrt(2.0))
    for t in range(zf.shape[0]):
        z = zf[t]
        af[t] = half * z * (one + math.erf(z * rsqrt2))


def _silu(code, Z, A):
    zf = flat_view(Z)
    af = flat_view(A)
    one = Z.dtype.type(1)
    for t in range(zf.shape[0]):
        z = zf[t]
        af[t] = z * sigmoid(z, one)


def _softmax(code, Z, A):
    n, k = Z.shape
    zero = Z.dtype.type(0)
    one = Z.dtype.type(1)
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


def _unchanged(code, Z, A, G):
    """Identity, and softmax: ``Model`` only allows it as the output of a logit
    loss, whose gradient the loss kernel forms directly."""
    return


def _relu_grad(code, Z, A, G):
    # Derivative 0 at the kink, as PyTorch.  A select, not a conditional
    # store: the loop then vectorises (0.81 -> 0.17 us on 32x32 float32).
    zf = flat_view(Z)
    gf = flat_view(G)
    zero = Z.dtype.type(0)
    for t in range(zf.shape[0]):
        gf[t] = gf[t] if zf[t] > zero else zero


def _leaky_relu_grad(code, Z, A, G):
    zf = flat_view(Z)
    gf = flat_view(G)
    zero = Z.dtype.type(0)
    one = Z.dtype.type(1)
    slope = Z.dtype.type(LEAKY_SLOPE)
    for t in range(zf.shape[0]):
        gf[t] *= one if zf[t] > zero else slope


def _elu_grad(code, Z, A, G):
    zf = flat_view(Z)
    af = flat_view(A)
    gf = flat_view(G)
    zero = Z.dtype.type(0)
    one = Z.dtype.type(1)
    alpha = Z.dtype.type(ELU_ALPHA)
    for t in range(zf.shape[0]):
        gf[t] *= one if zf[t] > zero else af[t] + alpha  # alpha * exp(z) below 0


def _sigmoid_grad(code, Z, A, G):
    af = flat_view(A)
    gf = flat_view(G)
    one = Z.dtype.type(1)
    for t in range(af.shape[0]):
        a = af[t]
        gf[t] *= a * (one - a)


def _tanh_grad(code, Z, A, G):
    af = flat_view(A)
    gf = flat_view(G)
    one = Z.dtype.type(1)
    for t in range(af.shape[0]):
        a = af[t]
        gf[t] *= one - a * a


def _softplus_grad(code, Z, A, G):
    zf = flat_view(Z)
    gf = flat_view(G)
    one = Z.dtype.type(1)
    for t in range(zf.shape[0]):
        gf[t] *= sigmoid(zf[t], one)


def _gelu_grad(code, Z, A, G):
    zf = flat_view(Z)
    gf = flat_view(G)
    one = Z.dtype.type(1)
    half = Z.dtype.type(0.5)
    rsqrt2 = Z.dtype.type(1.0 / math.sqrt(2.0))
    rsqrt2pi = Z.dtype.type(1.0 / math.sqrt(2.0 * math.pi))
    for t in range(zf.shape[0]):
        z = zf[t]
        cdf = half * (one + math.erf(z * rsqrt2))
        pdf = rsqrt2pi * math.exp(-half * z * z)
        gf[t] *= cdf + z * pdf


def _silu_grad(code, Z, A, G):
    zf = flat_view(Z)
    gf = flat_view(G)
    one = Z.dtype.type(1)
    for t in range(zf.shape[0]):
        z = zf[t]
        s = sigmoid(z, one)
        gf[t] *= s * (one + z * (one - s))


FORWARD = {_IDENTITY: _identity, _RELU: _relu, _LEAKY_RELU: _leaky_relu, _ELU: _elu,
           _SIGMOID: _sigmoid, _TANH: _tanh, _SOFTPLUS: _softplus_block, _GELU: _gelu,
           _SILU: _silu, _SOFTMAX: _softmax}
BACKWARD = {_IDENTITY: _unchanged, _RELU: _relu_grad, _LEAKY_RELU: _leaky_relu_grad,
            _ELU: _elu_grad, _SIGMOID: _sigmoid_grad, _TANH: _tanh_grad,
            _SOFTPLUS: _softplus_grad, _GELU: _gelu_grad, _SILU: _silu_grad,
            _SOFTMAX: _unchanged}
assert set(FORWARD) == set(BACKWARD) == set(codes.ACTIVATION_NAMES)


def activate_as(code, Z, A):
    """Write ``A = f(Z)`` for activation ``code``; ``A`` may be ``Z`` itself.

    Compiled code only (typed by :func:`_activate_as`).

    Parameters
    ----------
    code : int
        Activation code from :mod:`gdcore.codes`; a compile-time constant
        compiles that activation alone.
    Z : ndarray of shape (n_samples, n_units)
        Pre-activations.
    A : ndarray of shape (n_samples, n_units)
        Output, overwritten.
    """
    raise NotImplementedError("activate_as is only callable from compiled code")


def backprop_as(code, Z, A, G):
    """Multiply ``G`` in place by ``f'(Z)``: turns dL/dA into dL/dZ.

    Compiled code only (typed by :func:`_backprop_as`).

    Parameters
    ----------
    code : int
        Activation code; a compile-time constant compiles that derivative alone.
    Z, A : ndarray of shape (n_samples, n_units)
        Pre-activations and activations of the forward pass.
    G : ndarray of shape (n_samples, n_units)
        dL/dA on entry, dL/dZ on exit.

    Identity (and softmax, which ``Model`` only allows as the output of a
    logit loss, whose gradient the loss kernel forms directly) leave ``G``
    unchanged.
    """
    raise NotImplementedError("backprop_as is only callable from compiled code")


# Run-time codes: each branch passes its code as a constant, so that the overload
# compiles that activation (why the chains are written out: updates._any_rule).
def _any_forward(code, Z, A):
    if code == _IDENTITY:
        activate_as(_IDENTITY, Z, A)
    elif code == _RELU:
        activate_as(_RELU, Z, A)
    elif code == _LEAKY_RELU:
        activate_as(_LEAKY_RELU, Z, A)
    elif code == _ELU:
        activate_as(_ELU, Z, A)
    elif code == _SIGMOID:
        activate_as(_SIGMOID, Z, A)
    elif code == _TANH:
        activate_as(_TANH, Z, A)
    elif code == _SOFTPLUS:
        activate_as(_SOFTPLUS, Z, A)
    elif code == _GELU:
        activate_as(_GELU, Z, A)
    elif code == _SILU:
        activate_as(_SILU, Z, A)
    elif code == _SOFTMAX:
        activate_as(_SOFTMAX, Z, A)


def _any_backward(code, Z, A, G):
    if code == _RELU:
        backprop_as(_RELU, Z, A, G)
    elif code == _LEAKY_RELU:
        backprop_as(_LEAKY_RELU, Z, A, G)
    elif code == _ELU:
        backprop_as(_ELU, Z, A, G)
    elif code == _SIGMOID:
        backprop_as(_SIGMOID, Z, A, G)
    elif code == _TANH:
        backprop_as(_TANH, Z, A, G)
    elif code == _SOFTPLUS:
        backprop_as(_SOFTPLUS, Z, A, G)
    elif code == _GELU:
        backprop_as(_GELU, Z, A, G)
    elif code == _SILU:
        backprop_as(_SILU, Z, A, G)


@overload(activate_as, prefer_literal=True, jit_options=options())
def _activate_as(code, Z, A):
    """A code known when compiling compiles its activation alone; one known only
    at run time compiles all of them behind a dispatch (as :func:`.updates.rule_step`)."""
    if isinstance(code, types.IntegerLiteral):
        return FORWARD.get(code.literal_value)
    return _any_forward


@overload(backprop_as, prefer_literal=True, jit_options=options())
def _backprop_as(code, Z, A, G):
    if isinstance(code, types.IntegerLiteral):
        return BACKWARD.get(code.literal_value)
    return _any_backward


def activate_layer(acts, is_output, code, Z, A):
    """:func:`activate_as` for a layer of a model with activation spec ``acts``
    (compiled code only)."""
    raise NotImplementedError("activate_layer is only callable from compiled code")


def backprop_layer(acts, is_output, code, Z, A, G):
    """:func:`backprop_as` for a layer of a model with activation spec ``acts``
    (compiled code only)."""
    raise NotImplementedError("backprop_layer is only callable from compiled code")


def _layer_codes(acts):
    """``(hidden, output)`` codes of a literal activation spec, else None."""
    if isinstance(acts, types.IntegerLiteral) and acts.literal_value >= 0:
        return divmod(acts.literal_value, codes.ACTS_BASE)
    return None


@overload(activate_layer, prefer_literal=True, jit_options=options())
def _activate_layer(acts, is_output, code, Z, A):
    """With a spec known when compiling (:func:`gdcore.codes.activation_spec`), the
    output layer and the hidden layers get their own activation as a constant:
    a relu network compiles relu and its output's activation, nothing else.
    Hidden layers of several activations (``MIXED``), or a spec known only at
    run time, read each layer's ``code``."""
    layer_codes = _layer_codes(acts)
    if layer_codes is None:
        def any_layer(acts, is_output, code, Z, A):
            activate_as(code, Z, A)
        return any_layer
    hidden, output = layer_codes
    if hidden == codes.MIXED:
        def mixed_layer(acts, is_output, code, Z, A):
            if is_output:
                activate_as(output, Z, A)
            else:
                activate_as(code, Z, A)
        return mixed_layer

    def fixed_layer(acts, is_output, code, Z, A):
        if is_output:
            activate_as(output, Z, A)
        else:
            activate_as(hidden, Z, A)
    return fixed_layer


@overload(backprop_layer, prefer_literal=True, jit_options=options())
def _backprop_layer(acts, is_output, code, Z, A, G):
    layer_codes = _layer_codes(acts)
    if layer_codes is None:
        def any_layer(acts, is_output, code, Z, A, G):
            backprop_as(code, Z, A, G)
        return any_layer
    hidden, output = layer_codes
    if hidden == codes.MIXED:
        def mixed_layer(acts, is_output, code, Z, A, G):
            if is_output:
                backprop_as(output, Z, A, G)
            else:
                backprop_as(code, Z, A, G)
        return mixed_layer

    def fixed_layer(acts, is_output, code, Z, A, G):
        if is_output:
            backprop_as(output, Z, A, G)
        else:
            backprop_as(hidden, Z, A, G)
    return fixed_layer
