"""Optimizer steps over the flat parameter array: one compiled pass per step.

:func:`apply_update` reads the gradient once, updates the optimizer's state
rows in place and writes the new parameters to ``out`` (which may be
``params`` itself), all in the params dtype.  Scalars that depend only on the
step count (bias corrections, NAdam's momentum schedule) are computed once per
step in float64 and cast, as PyTorch does with its Python-float scalars.

Each rule follows ``torch.optim``'s single-tensor implementation operation
for operation (including ``lerp`` for the first-moment averages), so float64
runs agree with PyTorch to rounding.  Lion, which ``torch.optim`` lacks,
follows its paper (Chen et al., 2023) with decoupled weight decay.

State rows (``slots``, shape ``(n_slots, n_params)``, zero-initialised):

=========  ==========================================================
sgd        momentum buffer (only when momentum > 0)
adam(w)    m, v, then max(v) with amsgrad
rmsprop    mean square, then mean gradient if centered, then momentum
           buffer if momentum > 0
adagrad    sum of squares
adamax     m, exponentially weighted infinity norm
nadam      m, v
lion       m
=========  ==========================================================

``scalars`` (float64): the step count and NAdam's momentum product; see
:mod:`gdcore.codes`.  Gradient clipping (by value, then by global norm)
happens before weight decay, as with ``torch.nn.utils`` before a step.
"""

import math

import numpy as np

from .. import codes
from ._jit import jit

_SGD = codes.SGD
_ADAM = codes.ADAM
_ADAMW = codes.ADAMW
_RMSPROP = codes.RMSPROP
_ADAGRAD = codes.ADAGRAD
_ADAMAX = codes.ADAMAX
_NADAM = codes.NADAM
_LION = codes.LION

_H_MOMENTUM = codes.H_MOMENTUM
_H_BETA1 = codes.H_BETA1
_H_BETA2 = codes.H_BETA2
_H_EPS = codes.H_EPS
_H_WD = codes.H_WEIGHT_DECAY
_H_NESTEROV = codes.H_NESTEROV
_H_AMSGRAD = codes.H_AMSGRAD
_H_CENTERED = codes.H_CENTERED
_H_MOMENTUM_DECAY = codes.H_MOMENTUM_DECAY
_H_CLIP_NORM = codes.H_CLIP_NORM
_H_CLIP_VALUE = codes.H_CLIP_VALUE
_S_STEP = codes.S_STEP
_S_MU_PRODUCT = codes.S_MU_PRODUCT


@jit
def clipped(g, clip_value):
    """``g`` clipped to ``[-clip_value, clip_value]``; unchanged when ``clip_value`` is 0."""
    if clip_value > 0:
        return min(max(g, -clip_value), clip_value)
    return g


@jit
def gradient_scale(grad, clip_value, clip_norm):
    """Factor that brings the (value-clipped) gradient's L2 norm down to ``clip_norm``.

    1 when norm clipping is off or the norm is already within bounds; the norm
    is accumulated in float64.
    """
    if not clip_norm > 0:
        return 1.0
    cv = grad.dtype.type(clip_value)
    total = 0.0
    for i in range(grad.shape[0]):
        g = np.float64(clipped(grad[i], cv))
        total += g * g
    norm = math.sqrt(total)
    return clip_norm / norm if norm > clip_norm else 1.0


@jit
def lerp(a, b, w, one):
    """``a + w * (b - a)`` with PyTorch's rounding (its two-branch CPU formula)."""
    if w < 0.5:
        return a + w * (b - a)
    return b - (b - a) * (one - w)


@jit(strict=True)
def apply_update(code, hyper, lr, params, grad, slots, scalars, out):
    """One optimizer step: ``out = step(params, grad)``, state updated in place.

    Parameters
    ----------
    code : int
        Optimizer code from :mod:`gdcore.codes`.
    hyper : ndarray of shape (N_HYPER,), float64
        Hyperparameters, laid out as the ``H_*`` constants of :mod:`gdcore.codes`.
    lr : float
        Learning rate of this step (schedules are evaluated by the caller).
    params, grad : ndarray of shape (n_params,)
        Not modified (unless ``out`` is ``params``).
    slots : ndarray of shape (n_slots, n_params)
        Optimizer state rows (see the module docstring), updated in place.
    scalars : ndarray of shape (N_SCALARS,), float64
        Step count and scalar state, updated in place.
    out : ndarray of shape (n_params,)
        Receives the new parameters; may be ``params`` itself.

    Returns
    -------
    finite : bool
        False if the gradient or the new parameters contain NaN or Inf.
    """
    dt = params.dtype.type
    step = scalars[_S_STEP] + 1.0
    scalars[_S_STEP] = step
    clip_value = hyper[_H_CLIP_VALUE]
    scale = dt(gradient_scale(grad, clip_value, hyper[_H_CLIP_NORM]))
    cv = dt(clip_value)
    wd = dt(hyper[_H_WD])
    zero = dt(0)
    one = dt(1)
    acc = zero  # x * 0 is NaN exactly when x is NaN or Inf
    n = params.shape[0]
    if code == _SGD:
        mu = dt(hyper[_H_MOMENTUM])
        lr_ = dt(lr)
        nesterov = hyper[_H_NESTEROV] != 0
        for i in range(n):
            p = params[i]
            g = clipped(grad[i], cv) * scale + wd * p
            acc += g * zero
            if mu != 0:
                buf = mu * slots[0, i] + g  # dampening 0; equals torch's first-step clone
                slots[0, i] = buf
                g = g + mu * buf if nesterov else buf
            p = p - lr_ * g
            out[i] = p
            acc += p * zero
    elif code == _ADAM or code == _ADAMW:
        b1 = dt(hyper[_H_BETA1])
        b2 = dt(hyper[_H_BETA2])
        eps = dt(hyper[_H_EPS])
        w1 = dt(1.0 - hyper[_H_BETA1])
        w2 = dt(1.0 - hyper[_H_BETA2])
        step_size = dt(lr / (1.0 - hyper[_H_BETA1] ** step))
        bc2_sqrt = dt(math.sqrt(1.0 - hyper[_H_BETA2] ** step))
        decay = dt(1.0 - lr * hyper[_H_WD])
        decoupled = code == _ADAMW
        amsgrad = hyper[_H_AMSGRAD] != 0
        for i in range(n):
            p = params[i]
            g = clipped(grad[i], cv) * scale
            acc += g * zero
            if decoupled:
                p = p * decay
            else:
                g = g + wd * p
            m = lerp(slots[0, i], g, w1, one)
            v = slots[1, i] * b2 + w2 * g * g
            slots[0, i] = m
            slots[1, i] = v
            if amsgrad:
                v = max(slots[2, i], v)
                slots[2, i] = v
            p = p - step_size * (m / (math.sqrt(v) / bc2_sqrt + eps))
            out[i] = p
            acc += p * zero
    elif code == _RMSPROP:
        rho = dt(hyper[_H_BETA2])
        w = dt(1.0 - hyper[_H_BETA2])
        eps = dt(hyper[_H_EPS])
        mu = dt(hyper[_H_MOMENTUM])
        lr_ = dt(lr)
        centered = hyper[_H_CENTERED] != 0
        row = 1
        avg_row = row if centered else 0
        row += 1 if centered else 0
        buf_row = row
        for i in range(n):
            p = params[i]
            g = clipped(grad[i], cv) * scale + wd * p
            acc += g * zero
            sq = slots[0, i] * rho + w * g * g
            slots[0, i] = sq
            if centered:
                ga = lerp(slots[avg_row, i], g, w, one)
                slots[avg_row, i] = ga
                sq = sq - ga * ga
            avg = math.sqrt(sq) + eps
            if mu > 0:
                buf = slots[buf_row, i] * mu + g / avg
                slots[buf_row, i] = buf
                p = p - lr_ * buf
            else:
                p = p - lr_ * (g / avg)
            out[i] = p
            acc += p * zero
    elif code == _ADAGRAD:
        eps = dt(hyper[_H_EPS])
        lr_ = dt(lr)
        for i in range(n):
            p = params[i]
            g = clipped(grad[i], cv) * scale + wd * p
            acc += g * zero
            s = slots[0, i] + g * g
            slots[0, i] = s
            p = p - lr_ * (g / (math.sqrt(s) + eps))
            out[i] = p
            acc += p * zero
    elif code == _ADAMAX:
        b2 = dt(hyper[_H_BETA2])
        eps = dt(hyper[_H_EPS])
        w1 = dt(1.0 - hyper[_H_BETA1])
        clr = dt(lr / (1.0 - hyper[_H_BETA1] ** step))
        for i in range(n):
            p = params[i]
            g = clipped(grad[i], cv) * scale + wd * p
            acc += g * zero
            m = lerp(slots[0, i], g, w1, one)
            u = max(slots[1, i] * b2, abs(g) + eps)
            slots[0, i] = m
            slots[1, i] = u
            p = p - clr * (m / u)
            out[i] = p
            acc += p * zero
    elif code == _NADAM:
        beta1 = hyper[_H_BETA1]
        psi = hyper[_H_MOMENTUM_DECAY]
        mu_t = beta1 * (1.0 - 0.5 * 0.96 ** (step * psi))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1.0) * psi))
        mu_product = scalars[_S_MU_PRODUCT] * mu_t  # starts at 1
        scalars[_S_MU_PRODUCT] = mu_product
        c_grad = dt(-lr * (1.0 - mu_t) / (1.0 - mu_product))
        c_avg = dt(-lr * mu_next / (1.0 - mu_product * mu_next))
        b2 = dt(hyper[_H_BETA2])
        w1 = dt(1.0 - beta1)
        w2 = dt(1.0 - hyper[_H_BETA2])
        bc2 = dt(1.0 - hyper[_H_BETA2] ** step)
        eps = dt(hyper[_H_EPS])
        for i in range(n):
            p = params[i]
            g = clipped(grad[i], cv) * scale + wd * p
            acc += g * zero
            m = lerp(slots[0, i], g, w1, one)
            v = slots[1, i] * b2 + w2 * g * g
            slots[0, i] = m
            slots[1, i] = v
            denom = math.sqrt(v / bc2) + eps
            p = p + c_grad * (g / denom)
            p = p + c_avg * (m / denom)
            out[i] = p
            acc += p * zero
    elif code == _LION:
        b1 = dt(hyper[_H_BETA1])
        b2 = dt(hyper[_H_BETA2])
        w1 = dt(1.0 - hyper[_H_BETA1])
        w2 = dt(1.0 - hyper[_H_BETA2])
        lr_ = dt(lr)
        for i in range(n):
            p = params[i]
            g = clipped(grad[i], cv) * scale
            acc += g * zero
            m = slots[0, i]
            c = b1 * m + w1 * g
            sign = one if c > zero else (-one if c < zero else zero)
            p = p - lr_ * (sign + wd * p)
            slots[0, i] = b2 * m + w2 * g
            out[i] = p
            acc += p * zero
    return acc == zero
