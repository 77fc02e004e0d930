"""Losses and their gradients with respect to the network output.

Conventions follow PyTorch's ``reduction="mean"``: a sample's loss is the mean
over its outputs (for ``cross_entropy``, the sum over classes of one
distribution), and the batch loss is the mean over samples, or the weighted
mean ``sum(w_i * l_i) / sum(w_i)`` with sample weights.

Logit losses are computed in stable form straight from the logits:
binary cross-entropy as ``max(z, 0) - z*y + log1p(exp(-|z|))`` and softmax
cross-entropy through log-sum-exp; probabilities are never clipped.

The loss value is accumulated in float64 even for float32 models: it is one
scalar per batch, and summing thousands of float32 terms in float32 would
lose the digits users compare across epochs.

These kernels compile with ``jit(strict=True)`` (no reassociation): their
stable forms only stay stable if the compiler keeps the order of operations.
"""

import math

from numba.core import types
from numba.extending import overload

from .. import codes
from ._jit import jit, options
from .activations import sigmoid
from .views import flat_view

_MSE = codes.MSE
_MAE = codes.MAE
_HUBER = codes.HUBER
_CE = codes.CROSS_ENTROPY


@jit
def inverse_weight_sum(weights):
    """``1 / sum(weights)`` accumulated in float64 (0 for no weights).

    A float32 sum would overflow past 3.4e38 and lose digits over many
    samples; the input scan rejects sums that overflow float64.
    """
    total = 0.0
    for i in range(weights.shape[0]):
        total += weights[i]
    return 1.0 / total if weights.shape[0] > 0 else 0.0


@jit
def sample_scale(weights, i, n, inv_weight_sum):
    """Factor that turns sample ``i``'s loss into its share of the batch mean."""
    if weights.shape[0] == 0:
        return 1.0 / n
    return weights[i] * inv_weight_sum


def loss_rows(loss_code, out, Y, labels, weights, first, n, inv_weight_sum, delta,
              want_delta):
    """Share of the batch loss of samples ``first:first + m`` and, optionally, its gradient.

    The batch loss is the sum of these shares over row blocks that cover the
    batch: :func:`loss_and_delta` is one block of every row, and a kernel
    that runs a batch in blocks of rows (:mod:`.small`) calls this on each.

    Parameters
    ----------
    loss_code : int
        Loss code from :mod:`gdcore.codes`; a compile-time constant compiles
        that loss alone (``cross_entropy``, or the element-wise losses).
    out : ndarray of shape (m, n_outputs)
        Logits for the logit losses, the activated outputs otherwise, of
        samples ``first:first + m``.
    Y : ndarray of shape (n_samples, n_outputs) or (0, n_outputs)
        Dense targets of the whole batch; empty when ``labels`` is used.
    labels : ndarray of shape (n_samples,) or (0,), int64
        Class labels of the whole batch for ``cross_entropy``; empty otherwise.
    weights : ndarray of shape (n_samples,) or (0,)
        Sample weights of the whole batch; empty for the plain mean.
    first : int
        The batch index of ``out``'s first row.
    n : int
        Samples in the whole batch.
    inv_weight_sum : float
        :func:`inverse_weight_sum` of ``weights``.
    delta : ndarray of shape (m, n_outputs)
        Receives dL/d(out) of the batch loss when ``want_delta``; untouched otherwise.
    want_delta : bool

    Returns
    -------
    loss : float
        The rows' share of the (weighted) mean loss, in float64.
    """
    raise NotImplementedError("loss_rows is only callable from compiled code")


@jit(inline=True)
def loss_and_delta(loss_code, out, Y, labels, weights, delta, want_delta):
    """Mean loss of a batch and, optionally, its gradient w.r.t. ``out``.

    :func:`loss_rows` for one block of all ``n_samples`` rows (``out``,
    ``delta`` of shape (n_samples, n_outputs)); returns the loss in float64.
    """
    n = out.shape[0]
    # first = n - n, a run-time 0: a literal would compile the loss kernels
    # once more, apart from the fused kernel's (see .small), which passes a variable.
    return loss_rows(loss_code, out, Y, labels, weights, n - n, n, inverse_weight_sum(weights),
                     delta, want_delta)


@jit(strict=True)
def cross_entropy_loss(out, Y, labels, weights, first, n, inv_weight_sum, delta, want_delta):
    """:func:`loss_rows` for ``cross_entropy`` (softmax of the logits ``out``)."""
    m, k = out.shape
    zero = out.dtype.type(0)
    one = out.dtype.type(1)
    total = 0.0
    for i in range(m):
        s_i = sample_scale(weights, first + i, n, inv_weight_sum)
        m = out[i, 0]
        for j in range(1, k):
            m = max(m, out[i, j])
        se = zero
        for j in range(k):
            e = math.exp(out[i, j] - m)
            se += e
            if want_delta:
                delta[i, j] = e  # kept for the gradient: exp is the costly part (scalar libm)
        # Work with the shifted logits z - m throughout: forming m + log(se)
        # first would round away digits in proportion to |m|.
        log_se = math.log(se)
        inv_se = one / se
        if labels.shape[0] > 0:
            c = labels[first + i]
            total += s_i * (log_se - (out[i, c] - m))
            if want_delta:
                scale = out.dtype.type(s_i)
                for j in range(k):
                    delta[i, j] = scale * (delta[i, j] * inv_se)
                delta[i, c] -= scale
        else:
            # Soft targets: l = sum_j p_j (lse - z_j); dl/dz_j = sum(p) softmax_j - p_j.
            l_i = 0.0
            psum = zero
            for j in range(k):
                p = Y[first + i, j]
                if p != zero:  # skip 0 * (lse - z): exact, and safe for huge logits
                    l_i += p * (log_se - (out[i, j] - m))
                psum += p
            total += s_i * l_i
            if want_delta:
                scale = out.dtype.type(s_i)
                for j in range(k):
                    softmax = delta[i, j] * inv_se
                    delta[i, j] = scale * (psum * softmax - Y[first + i, j])
    return total


@jit(strict=True)
def pointwise_loss(loss_code, out, Y, weights, first, n, inv_weight_sum, delta, want_delta):
    """:func:`loss_rows` for the element-wise losses (regression and binary
    cross-entropy), through :func:`_pointwise`."""
    m, k = out.shape
    zero = out.dtype.type(0)
    one = out.dtype.type(1)
    half = out.dtype.type(0.5)
    total = 0.0
    if weights.shape[0] == 0:
        # Plain mean: one flat loop over the C-contiguous block (a loop per
        # sample would be a loop of length 1 for single-output models).
        of = flat_view(out)
        yf = flat_view(Y[first:first + m])
        df = flat_view(delta)
        scale = out.dtype.type(1.0 / (n * k))
        for t in range(of.shape[0]):
            l_t, g_t = _pointwise(loss_code, of[t], yf[t], zero, one, half)
            total += l_t
            if want_delta:
                df[t] = scale * g_t
        return total / (n * k)
    for i in range(m):
        s_i = sample_scale(weights, first + i, n, inv_weight_sum) / k
        scale = out.dtype.type(s_i)
        l_i = 0.0
        for j in range(k):
            l_ij, g_ij = _pointwise(loss_code, out[i, j], Y[first + i, j], zero, one, half)
            l_i += l_ij
            if want_delta:
                delta[i, j] = scale * g_ij
        total += s_i * l_i
    return total


def _cross_entropy_impl(loss_code, out, Y, labels, weights, first, n, inv_weight_sum, delta,
                        want_delta):
    return cross_entropy_loss(out, Y, labels, weights, first, n, inv_weight_sum, delta,
                              want_delta)


def _pointwise_impl(loss_code, out, Y, labels, weights, first, n, inv_weight_sum, delta,
                    want_delta):
    return pointwise_loss(loss_code, out, Y, weights, first, n, inv_weight_sum, delta,
                          want_delta)


def _any_impl(loss_code, out, Y, labels, weights, first, n, inv_weight_sum, delta, want_delta):
    if loss_code == _CE:
        return cross_entropy_loss(out, Y, labels, weights, first, n, inv_weight_sum, delta,
                                  want_delta)
    return pointwise_loss(loss_code, out, Y, weights, first, n, inv_weight_sum, delta,
                          want_delta)


@overload(loss_rows, prefer_literal=True, jit_options=options(strict=True))
def _loss_rows(loss_code, out, Y, labels, weights, first, n, inv_weight_sum, delta,
               want_delta):
    """A loss code known when compiling compiles its kernel alone (as
    :func:`.updates.rule_step`); one known at run time compiles both."""
    if isinstance(loss_code, types.IntegerLiteral):
        return _cross_entropy_impl if loss_code.literal_value == _CE else _pointwise_impl
    return _any_impl


@jit(strict=True)
def _pointwise(loss_code, o, y, zero, one, half):
    """Loss of one output and its derivative w.r.t. ``o`` (regression losses and BCE).

    ``o`` is the activated output (regression) or the logit (BCE), ``y`` its
    target; ``zero, one, half`` are constants in the dtype of ``o``.  Returns
    ``(loss, dloss/do)`` in that dtype.
    """
    if loss_code == _MSE:
        d = o - y
        return d * d, d + d
    if loss_code == _MAE:
        d = o - y
        return abs(d), (one if d > zero else (-one if d < zero else zero))
    if loss_code == _HUBER:
        d = o - y
        ad = abs(d)
        if ad < one:  # delta = 1, PyTorch's default
            return half * d * d, d
        return ad - half, (one if d > zero else -one)
    # Binary cross-entropy from the logit, stable on both signs.
    loss = max(o, zero) - o * y + math.log1p(math.exp(-abs(o)))
    return loss, sigmoid(o, one) - y
