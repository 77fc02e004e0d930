"""Optimizer steps over the flat parameter array: one compiled pass per step.

:func:`apply_update` reads the gradient once, updates the optimizer's state
rows in place and writes the new parameters to ``out`` or, in place, back to
``params``, all in the params dtype.  Scalars that depend only on the step
count (bias corrections, NAdam's momentum schedule) are computed once per step
in float64 and cast, as PyTorch does with its Python-float scalars.

One function per optimizer holds its rule (``_sgd_rule``, ``_adam_rule``,
...); :func:`rule_step` picks it by code.  A code that is a constant of the
compiled kernel (:func:`update_kernel`, :func:`.epoch.epoch_runner`) compiles
that optimizer's loops alone: a first ``gd.minimize`` with Adam took 4.4 s
instead of 11.4 s when every optimizer's loop was compiled into it
(``bench/bench_startup.py``, AMD EPYC Zen 3; with the changes to the step's
dispatch levels).  A code
known only at run time (:func:`apply_update` called with a variable code)
compiles all of them behind a dispatch.

Each rule follows ``torch.optim``'s single-tensor implementation operation
for operation (including ``lerp`` for the first-moment averages), so float64
runs agree with PyTorch to rounding.  Lion, which ``torch.optim`` lacks,
follows its paper (Chen et al., 2023) with decoupled weight decay.

State rows (``slots``, shape ``(n_slots, n_params)``, zero-initialised), in
this order, a row in brackets only when the setting after ``if`` holds;
:data:`gdcore.optim.SLOT_ROWS` is the same table as data (a test holds the
two together):

=========  ==========================================================
sgd        [momentum_buffer if momentum]
adam       m, v, [v_max if amsgrad]
adamw      m, v, [v_max if amsgrad]
rmsprop    square_avg, [grad_avg if centered], [momentum_buffer if
           momentum]
adagrad    sum_of_squares
adamax     m, u (the exponentially weighted infinity norm)
nadam      m, v
lion       m
=========  ==========================================================

``scalars`` (float64): the step count and NAdam's momentum product; see
:mod:`gdcore.codes`.  Gradient clipping (by value, then by global norm)
happens before weight decay, as with ``torch.nn.utils`` before a step.

Speed: an optimizer step is memory-bound, so every loop must vectorise.
Hence (measured on 10M float32 Adam parameters: 97 ms scalar, 17 ms
vectorised)

* options are folded into coefficients instead of branches where the result
  is bitwise the same (``p * 1``, ``g + 0 * p``); the rest get their own loop;
* finiteness is tracked with a boolean OR, which vectorises without
  reassociation, unlike a float sum;
* the loops compile with ``jit(exact=True)``, without fastmath flags: each
  element is then the same sequence of correctly rounded operations in the
  vectorised body and in the scalar remainder, in the in-place and the
  out-of-place version and in every threaded span, on every CPU.  With
  ``contract``/``afn``/``arcp`` the compiler may fuse multiply-adds and
  divide by a hoisted reciprocal, with nothing making the versions alike
  (compiled for Sapphire Rapids, the old amsgrad loop did both), and on
  AVX-512 ``update`` and ``update_inplace`` differed in the last bit in
  about 1% of elements;
* every loop ends with ``if inplace: p[i] = new else: out[i] = new``.  The
  test never changes within a loop, so the compiler splits the loop into one
  vectorised copy per case.  Passing ``out=p`` instead would fail the
  compiler's runtime check that ``out`` and ``p`` do not overlap, and run
  scalar code.  The test is written out in each loop: moved into a helper
  that takes the arrays, it cost 40x (reference counting per element).
"""

import math

import numba
import numpy as np
from numba.core import types
from numba.extending import overload

from .. import codes
from ._jit import jit, options, per_code
from .borrow import borrowed

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

# Threaded steps split the array into spans of whole blocks of this many elements.
BLOCK = 2048
# Running sums of the clip-norm reduction (see gradient_scale).
SUM_LANES = 8


# Compiled on its own, not inlined: gradient_scale calls it nine times, and
# nine inlined copies were most of that kernel's compile time (LLVM still
# inlines the compiled function into the loop).
@jit(exact=True)
def clipped_square(gi, clip_value):
    """``min(max(g, -clip_value), clip_value) ** 2`` in float64."""
    g = min(max(np.float64(gi), -clip_value), clip_value)
    return g * g


@jit(exact=True)
def gradient_scale(grad, clip_value, clip_norm):
    """Factor that brings the (value-clipped) gradient's L2 norm down to ``clip_norm``.

    1 when norm clipping is off or the norm is already within bounds.  The
    squares are summed in float64 in one fixed order (:data:`SUM_LANES`
    running sums over interleaved elements, then combined pairwise), not in
    whatever order the compiler's vectorised reduction picks: the serial and
    threaded steps, and every CPU, get the same factor.
    """
    if not clip_norm > 0:
        return 1.0
    if not clip_value > 0:
        clip_value = np.inf  # value clipping off
    n = grad.shape[0]
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    whole = n - n % SUM_LANES
    for i in range(0, whole, SUM_LANES):
        s0 += clipped_square(grad[i], clip_value)
        s1 += clipped_square(grad[i + 1], clip_value)
        s2 += clipped_square(grad[i + 2], clip_value)
        s3 += clipped_square(grad[i + 3], clip_value)
        s4 += clipped_square(grad[i + 4], clip_value)
        s5 += clipped_square(grad[i + 5], clip_value)
        s6 += clipped_square(grad[i + 6], clip_value)
        s7 += clipped_square(grad[i + 7], clip_value)
    for i in range(whole, n):
        s0 += clipped_square(grad[i], clip_value)
    norm = math.sqrt(((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)))
    return clip_norm / norm if norm > clip_norm else 1.0


@jit(inline=True)
def lerp_base(w):
    """PyTorch's lerp is ``a + w*(b - a)`` for w < 0.5, else ``b - (b - a)*(1 - w)``.

    Both are ``base + c * (b - a)``; returns (use ``a`` as base, ``c``).
    """
    if w < 0.5:
        return True, w
    return False, -(1.0 - w)


# One loop per rule.  Arguments: ``p`` (params in), ``g`` (gradient), state
# rows, ``out`` and ``inplace`` (the new params go to ``p`` itself when
# ``inplace``, else to ``out``), the rule's coefficients in the params dtype,
# and ``clip = (wd, cv, scale)`` (:func:`clip_and_decay`): the coupled weight
# decay, the clip value (inf when off) and the norm-clipping factor.  A moving
# average's two coefficients travel as one pair: ``mean = (from_prev, c)`` for
# :func:`moving_mean`, ``square = (rho, w)`` for :func:`moving_square`.  The
# pairs are tuples of scalars, unpacked in the loops' compiled bodies: the same
# machine code as separate arguments (an Adam step of 385 and of 10M
# parameters took the same time, AMD EPYC Zen 4).  Each returns True when the gradient, the new
# parameters and any squared-gradient accumulator are finite.  The element
# helpers below are compiled into the loops (``jit(exact=True, inline=True)``),
# so each loop is one vectorised pass and one compiled function.

@jit(exact=True, inline=True)
def not_finite(x, zero):
    """NaN/Inf test that vectorises: ``x * 0`` is 0 exactly for finite ``x``."""
    return x * zero != zero


@jit(exact=True, inline=True)
def clipped(gi, clip):
    """A gradient entry clipped to ``[-cv, cv]``, then scaled by the norm clip."""
    wd, cv, scale = clip
    return min(max(gi, -cv), cv) * scale


@jit(exact=True, inline=True)
def with_decay(gi, pi, clip):
    """The clipped gradient entry plus coupled weight decay ``wd * p``."""
    return clipped(gi, clip) + clip[0] * pi


@jit(exact=True, inline=True)
def moving_mean(prev, gi, mean):
    """PyTorch's ``lerp(prev, gi, w)`` in the form given by :func:`lerp_base`:
    ``mean = (from_prev, c)``."""
    from_prev, c = mean
    return (prev if from_prev else gi) + c * (gi - prev)


@jit(exact=True, inline=True)
def moving_square(prev, gi, square):
    """``rho * prev + (1 - rho) * gi**2``, rounded as torch's ``mul_().addcmul_()``:
    ``square = (rho, w)`` with ``w = 1 - rho``."""
    rho, w = square
    return prev * rho + w * gi * gi


@jit(exact=True)
def sgd_plain(p, g, out, inplace, lr, clip):
    zero = p.dtype.type(0)
    bad = False
    for i in range(p.shape[0]):
        gi = g[i]
        bad |= not_finite(gi, zero)
        pi = p[i]
        gi = with_decay(gi, pi, clip)
        pi = pi - lr * gi
        if inplace:
            p[i] = pi
        else:
            out[i] = pi
        bad |= not_finite(pi, zero)
    return not bad


@jit(exact=True)
def sgd_unclipped(p, g, out, inplace, lr, wd):
    """:func:`sgd_plain` without clipping (clip value off, norm-clip factor 1).

    Its steps are bitwise those of :func:`sgd_plain`, whose clip is then the
    identity (NaN included), and it checks only the new parameters: without
    clipping, a NaN or Inf gradient entry always makes its new parameter NaN
    or Inf (``lr`` is finite and >= 0).  On 385 float32 parameters the loop
    took 0.17 us instead of 0.27 us (AMD EPYC Zen 3, compiled loop of 2000
    steps); tiny networks are where SGD's step is not memory-bound.
    """
    zero = p.dtype.type(0)
    bad = False
    for i in range(p.shape[0]):
        pi = p[i]
        pi = pi - lr * (g[i] + wd * pi)
        if inplace:
            p[i] = pi
        else:
            out[i] = pi
        bad |= not_finite(pi, zero)
    return not bad


@jit(exact=True)
def sgd_momentum(p, g, buf, out, inplace, lr, clip, mu, g_coef, buf_coef):
    """Step ``g_coef * g + buf_coef * buf``: (1, mu) is Nesterov, (0, 1) plain momentum."""
    zero = p.dtype.type(0)
    bad = False
    for i in range(p.shape[0]):
        gi = g[i]
        bad |= not_finite(gi, zero)
        pi = p[i]
        gi = with_decay(gi, pi, clip)
        b = mu * buf[i] + gi  # dampening 0; equals torch's first-step clone
        buf[i] = b
        pi = pi - lr * (g_coef * gi + buf_coef * b)
        if inplace:
            p[i] = pi
        else:
            out[i] = pi
        bad |= not_finite(pi, zero)
    return not bad


@jit(exact=True)
def adam_loop(p, g, m, v, out, inplace, step_size, inv_bc2_sqrt, eps, decay, mean, square,
              clip):
    """Adam (``decay`` 1, coupled ``wd``) or AdamW (``decay`` 1 - lr*wd, ``wd`` 0).

    torch divides ``sqrt(v)`` by ``sqrt(1 - b2**t)``; multiplying by its
    reciprocal (one rounding apart) keeps one division per element, which
    the exact (fastmath-free) loop can no longer make of it by itself.
    """
    zero = p.dtype.type(0)
    bad = False
    for i in range(p.shape[0]):
        gi = g[i]
        bad |= not_finite(gi, zero)
        pi = p[i] * decay
        gi = with_decay(gi, pi, clip)
        mi = moving_mean(m[i], gi, mean)
        vi = moving_square(v[i], gi, square)
        m[i] = mi
        v[i] = vi
        bad |= not_finite(vi, zero)  # g * g can overflow while g is finite
        pi = pi - step_size * (mi / (math.sqrt(vi) * inv_bc2_sqrt + eps))
        if inplace:
            p[i] = pi
        else:
            out[i] = pi
        bad |= not_finite(pi, zero)
    return not bad


@jit(exact=True)
def adam_amsgrad_loop(p, g, m, v, vmax, out, inplace, step_size, inv_bc2_sqrt, eps, decay, mean,
                      square, clip):
    """:func:`adam_loop` with the running maximum of ``v`` in the denominator."""
    zero = p.dtype.type(0)
    bad = False
    for i in range(p.shape[0]):
        gi = g[i]
        bad |= not_finite(gi, zero)
        pi = p[i] * decay
        gi = with_decay(gi, pi, clip)
        mi = moving_mean(m[i], gi, mean)
        vi = moving_square(v[i], gi, square)
        m[i] = mi
        v[i] = vi
        bad |= not_finite(vi, zero)
        vi = max(vmax[i], vi)
        vmax[i] = vi
        pi = pi - step_size * (mi / (math.sqrt(vi) * inv_bc2_sqrt + eps))
        if inplace:
            p[i] = pi
        else:
            out[i] = pi
        bad |= not_finite(pi, zero)
    return not bad


@jit(exact=True)
def rmsprop_loop(p, g, sq, avg_g, buf, out, inplace, lr, eps, centered, momentum, mu, mean,
                 square, clip):
    """RMSprop; ``avg_g`` / ``buf`` are only touched when ``centered`` / ``momentum``.

    ``centered`` and ``momentum`` must be constants of the caller
    (:func:`_rmsprop_rule` passes ``True``/``False``): each pair compiles its
    own loop, without the other variants' branches.  With the branches
    compiled in, the loop did not vectorise: 10M float32 parameters took
    32 ms (plain) to 50 ms (centered with momentum) per step against 4.1-6.6
    ms (AMD EPYC Zen 4); with distinct unused rows, the masked stores of the
    if-converted loop to untouched (zero-page) rows took 700 ms.
    """
    numba.literally(centered)
    numba.literally(momentum)
    zero = p.dtype.type(0)
    bad = False
    for i in range(p.shape[0]):
        gi = g[i]
        bad |= not_finite(gi, zero)
        pi = p[i]
        gi = with_decay(gi, pi, clip)
        s = moving_square(sq[i], gi, square)
        sq[i] = s
        bad |= not_finite(s, zero)
        if centered:
            a = moving_mean(avg_g[i], gi, mean)
            avg_g[i] = a
            s = s - a * a
        denom = math.sqrt(s) + eps
        if momentum:
            b = buf[i] * mu + gi / denom
            buf[i] = b
            pi = pi - lr * b
        else:
            pi = pi - lr * (gi / denom)
        if inplace:
            p[i] = pi
        else:
            out[i] = pi
        bad |= not_finite(pi, zero)
    return not bad


@jit(exact=True)
def adagrad_loop(p, g, total, out, inplace, lr, eps, clip):
    zero = p.dtype.type(0)
    bad = False
    for i in range(p.shape[0]):
        gi = g[i]
        bad |= not_finite(gi, zero)
        pi = p[i]
        gi = with_decay(gi, pi, clip)
        s = total[i] + gi * gi
        total[i] = s
        bad |= not_finite(s, zero)
        pi = pi - lr * (gi / (math.sqrt(s) + eps))
        if inplace:
            p[i] = pi
        else:
            out[i] = pi
        bad |= not_finite(pi, zero)
    return not bad


@jit(exact=True)
def adamax_loop(p, g, m, u, out, inplace, clr, b2, eps, mean, clip):
    zero = p.dtype.type(0)
    bad = False
    for i in range(p.shape[0]):
        gi = g[i]
        bad |= not_finite(gi, zero)
        pi = p[i]
        gi = with_decay(gi, pi, clip)
        mi = moving_mean(m[i], gi, mean)
        ui = max(u[i] * b2, abs(gi) + eps)
        m[i] = mi
        u[i] = ui
        pi = pi - clr * (mi / ui)
        if inplace:
            p[i] = pi
        else:
            out[i] = pi
        bad |= not_finite(pi, zero)
    return not bad


@jit(exact=True)
def nadam_loop(p, g, m, v, out, inplace, c_grad, c_avg, inv_bc2, eps, mean, square, clip):
    zero = p.dtype.type(0)
    bad = False
    for i in range(p.shape[0]):
        gi = g[i]
        bad |= not_finite(gi, zero)
        pi = p[i]
        gi = with_decay(gi, pi, clip)
        mi = moving_mean(m[i], gi, mean)
        vi = moving_square(v[i], gi, square)
        m[i] = mi
        v[i] = vi
        bad |= not_finite(vi, zero)
        denom = math.sqrt(vi * inv_bc2) + eps
        pi = pi + c_grad * (gi / denom)  # two roundings, as torch's two addcdiv_
        pi = pi + c_avg * (mi / denom)
        if inplace:
            p[i] = pi
        else:
            out[i] = pi
        bad |= not_finite(pi, zero)
    return not bad


@jit(exact=True)
def lion_loop(p, g, m, out, inplace, lr, step_mix, momentum_mix, clip):
    """Lion: ``step_mix = (b1, 1 - b1)`` weighs the step's sign, ``momentum_mix =
    (b2, 1 - b2)`` the moment; the decay ``clip[0]`` is decoupled."""
    b1, w1 = step_mix
    b2, w2 = momentum_mix
    wd = clip[0]
    zero = p.dtype.type(0)
    one = p.dtype.type(1)
    bad = False
    for i in range(p.shape[0]):
        gi = g[i]
        bad |= not_finite(gi, zero)
        gi = clipped(gi, clip)
        mi = m[i]
        c = b1 * mi + w1 * gi
        sign = one if c > zero else (-one if c < zero else zero)
        pi = p[i]
        pi = pi - lr * (sign + wd * pi)
        m[i] = b2 * mi + w2 * gi
        if inplace:
            p[i] = pi
        else:
            out[i] = pi
        bad |= not_finite(pi, zero)
    return not bad


@jit(inline=True)
def row(slots, k, start, stop):
    """Columns ``start:stop`` of state row ``k``, as a contiguous 1-D view."""
    return slots[k][start:stop]


@jit(inline=True)
def clip_and_decay(hyper, p, scale):
    """``(wd, cv, sc)`` in ``p``'s dtype: coupled weight decay, clip value (inf when
    off) and the norm-clip factor, as the loops take them."""
    dt = p.dtype.type
    clip = hyper[_H_CLIP_VALUE]
    return dt(hyper[_H_WD]), dt(clip) if clip > 0 else dt(np.inf), dt(scale)


# One step rule per optimizer code, as the implementations of ``rule_step``.
# Every rule takes the same arguments: ``code``, ``hyper``, ``lr``, ``step`` and
# ``mu_product`` (from begin_step), the span's ``p``, ``g``, state rows ``s0``,
# ``s1``, ``s2`` (a row an optimizer does not have stands in as row 0, never
# touched), ``out``, ``inplace`` and the norm-clip ``scale``.

def _sgd_rule(code, hyper, lr, step, mu_product, p, g, s0, s1, s2, out, inplace, scale):
    dt = p.dtype.type
    clip = clip_and_decay(hyper, p, scale)
    mu = hyper[_H_MOMENTUM]
    if mu == 0:
        if not hyper[_H_CLIP_VALUE] > 0 and scale == 1.0:
            return sgd_unclipped(p, g, out, inplace, dt(lr), clip[0])
        return sgd_plain(p, g, out, inplace, dt(lr), clip)
    nesterov = hyper[_H_NESTEROV] != 0
    return sgd_momentum(p, g, s0, out, inplace, dt(lr), clip, dt(mu),
                        dt(1) if nesterov else dt(0), dt(mu) if nesterov else dt(1))


def _adam_rule(code, hyper, lr, step, mu_product, p, g, s0, s1, s2, out, inplace, scale):
    """Adam, and AdamW (``code == ADAMW``: decoupled weight decay)."""
    dt = p.dtype.type
    wd, cv, sc = clip_and_decay(hyper, p, scale)
    b1 = hyper[_H_BETA1]
    b2 = hyper[_H_BETA2]
    eps = dt(hyper[_H_EPS])
    from_m, c1 = lerp_base(1.0 - b1)
    mean, square = (from_m, dt(c1)), (dt(b2), dt(1.0 - b2))
    decoupled = code == _ADAMW
    decay = dt(1.0 - lr * hyper[_H_WD]) if decoupled else dt(1)
    clip = (dt(0) if decoupled else wd, cv, sc)
    step_size = dt(lr / (1.0 - b1 ** step))
    inv_bc2_sqrt = dt(1.0 / math.sqrt(1.0 - b2 ** step))
    if hyper[_H_AMSGRAD] != 0:
        return adam_amsgrad_loop(p, g, s0, s1, s2, out, inplace, step_size, inv_bc2_sqrt, eps,
                                 decay, mean, square, clip)
    return adam_loop(p, g, s0, s1, out, inplace, step_size, inv_bc2_sqrt, eps, decay, mean,
                     square, clip)


def _rmsprop_rule(code, hyper, lr, step, mu_product, p, g, s0, s1, s2, out, inplace, scale):
    dt = p.dtype.type
    clip = clip_and_decay(hyper, p, scale)
    b2 = hyper[_H_BETA2]
    mu = hyper[_H_MOMENTUM]
    from_avg, c = lerp_base(1.0 - b2)
    lr_, eps, mean, square = dt(lr), dt(hyper[_H_EPS]), (from_avg, dt(c)), (dt(b2), dt(1.0 - b2))
    # The variant as constants (see rmsprop_loop); a row a variant does not have
    # stands in as row 0, never touched.
    if hyper[_H_CENTERED] != 0:
        if mu > 0:
            return rmsprop_loop(p, g, s0, s1, s2, out, inplace, lr_, eps, True, True, dt(mu),
                                mean, square, clip)
        return rmsprop_loop(p, g, s0, s1, s0, out, inplace, lr_, eps, True, False, dt(mu), mean,
                            square, clip)
    if mu > 0:
        return rmsprop_loop(p, g, s0, s0, s1, out, inplace, lr_, eps, False, True, dt(mu), mean,
                            square, clip)
    return rmsprop_loop(p, g, s0, s0, s0, out, inplace, lr_, eps, False, False, dt(mu), mean,
                        square, clip)


def _adagrad_rule(code, hyper, lr, step, mu_product, p, g, s0, s1, s2, out, inplace, scale):
    dt = p.dtype.type
    return adagrad_loop(p, g, s0, out, inplace, dt(lr), dt(hyper[_H_EPS]),
                        clip_and_decay(hyper, p, scale))


def _adamax_rule(code, hyper, lr, step, mu_product, p, g, s0, s1, s2, out, inplace, scale):
    dt = p.dtype.type
    b1 = hyper[_H_BETA1]
    from_m, c1 = lerp_base(1.0 - b1)
    return adamax_loop(p, g, s0, s1, out, inplace, dt(lr / (1.0 - b1 ** step)),
                       dt(hyper[_H_BETA2]), dt(hyper[_H_EPS]), (from_m, dt(c1)),
                       clip_and_decay(hyper, p, scale))


def _nadam_rule(code, hyper, lr, step, mu_product, p, g, s0, s1, s2, out, inplace, scale):
    dt = p.dtype.type
    b1 = hyper[_H_BETA1]
    b2 = hyper[_H_BETA2]
    psi = hyper[_H_MOMENTUM_DECAY]
    mu_t = b1 * (1.0 - 0.5 * 0.96 ** (step * psi))
    mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((step + 1.0) * psi))
    c_grad = -lr * (1.0 - mu_t) / (1.0 - mu_product)
    c_avg = -lr * mu_next / (1.0 - mu_product * mu_next)
    from_m, c1 = lerp_base(1.0 - b1)
    return nadam_loop(p, g, s0, s1, out, inplace, dt(c_grad), dt(c_avg),
                      dt(1.0 / (1.0 - b2 ** step)), dt(hyper[_H_EPS]), (from_m, dt(c1)),
                      (dt(b2), dt(1.0 - b2)), clip_and_decay(hyper, p, scale))


def _lion_rule(code, hyper, lr, step, mu_product, p, g, s0, s1, s2, out, inplace, scale):
    dt = p.dtype.type
    b1 = hyper[_H_BETA1]
    b2 = hyper[_H_BETA2]
    return lion_loop(p, g, s0, out, inplace, dt(lr), (dt(b1), dt(1.0 - b1)),
                     (dt(b2), dt(1.0 - b2)), clip_and_decay(hyper, p, scale))


RULES = {_SGD: _sgd_rule, _ADAM: _adam_rule, _ADAMW: _adam_rule, _RMSPROP: _rmsprop_rule,
         _ADAGRAD: _adagrad_rule, _ADAMAX: _adamax_rule, _NADAM: _nadam_rule,
         _LION: _lion_rule}
assert set(RULES) == set(codes.OPTIMIZER_NAMES)


def rule_step(code, hyper, lr, step, mu_product, p, g, s0, s1, s2, out, inplace, scale):
    """Optimizer ``code``'s step on one span; compiled code only (see :func:`_rule_step`)."""
    raise NotImplementedError("rule_step is only callable from compiled code")


def _any_rule(code, hyper, lr, step, mu_product, p, g, s0, s1, s2, out, inplace, scale):
    """The step of whichever optimizer ``code`` names, decided per call.

    Written out branch by branch, on purpose: each branch passes its code as a
    constant, which is what makes :func:`_rule_step` compile that rule.  A loop
    over a tuple of the codes gives Numba one non-constant type for all of them
    (``literal_unroll`` over the codes does not type), so it cannot replace the
    chain; :mod:`.activations` dispatches its codes the same way.
    """
    if code == _SGD:
        return rule_step(_SGD, hyper, lr, step, mu_product, p, g, s0, s1, s2, out, inplace,
                         scale)
    if code == _ADAM:
        return rule_step(_ADAM, hyper, lr, step, mu_product, p, g, s0, s1, s2, out, inplace,
                         scale)
    if code == _ADAMW:
        return rule_step(_ADAMW, hyper, lr, step, mu_product, p, g, s0, s1, s2, out, inplace,
                         scale)
    if code == _RMSPROP:
        return rule_step(_RMSPROP, hyper, lr, step, mu_product, p, g, s0, s1, s2, out, inplace,
                         scale)
    if code == _ADAGRAD:
        return rule_step(_ADAGRAD, hyper, lr, step, mu_product, p, g, s0, s1, s2, out, inplace,
                         scale)
    if code == _ADAMAX:
        return rule_step(_ADAMAX, hyper, lr, step, mu_product, p, g, s0, s1, s2, out, inplace,
                         scale)
    if code == _NADAM:
        return rule_step(_NADAM, hyper, lr, step, mu_product, p, g, s0, s1, s2, out, inplace,
                         scale)
    return rule_step(_LION, hyper, lr, step, mu_product, p, g, s0, s1, s2, out, inplace, scale)


@overload(rule_step, prefer_literal=True, jit_options=options())
def _rule_step(code, hyper, lr, step, mu_product, p, g, s0, s1, s2, out, inplace, scale):
    """Type ``rule_step``: a code known when compiling compiles that optimizer's rule
    alone; a code known only at run time compiles all of them behind a dispatch.

    Kernels compiled for one optimizer (:func:`.epoch.epoch_runner`,
    :func:`update_kernel`) pass its code as a constant, so a first ``fit``
    with Adam compiles no other optimizer's loop.
    """
    if isinstance(code, types.IntegerLiteral):
        return RULES.get(code.literal_value)
    return _any_rule


@jit(inline=True)
def step_rows(code, hyper, lr, step, mu_product, p, g, slots, start, stop, out, inplace,
              scale):
    """Run ``code``'s loop on ``p``, ``g``, ``out`` and state columns ``start:stop``."""
    # State rows; rows an optimizer does not have stand in as row 0 (never touched).
    n_rows = slots.shape[0]
    s0 = row(slots, 0, start, stop) if n_rows > 0 else p
    s1 = row(slots, 1, start, stop) if n_rows > 1 else s0
    s2 = row(slots, 2, start, stop) if n_rows > 2 else s0
    return rule_step(code, hyper, lr, step, mu_product, p, g, s0, s1, s2, out, inplace, scale)


@jit(inline=True)
def begin_step(code, hyper, grad, scalars):
    """Advance the step count (and NAdam's momentum product); the norm-clip factor.

    Returns
    -------
    step, mu_product, scale : float
        The new step count, NAdam's momentum product and the factor of
        :func:`gradient_scale`.
    """
    step = scalars[_S_STEP] + 1.0
    scalars[_S_STEP] = step
    mu_product = scalars[_S_MU_PRODUCT]
    if code == _NADAM:
        b1 = hyper[_H_BETA1]
        mu_product *= b1 * (1.0 - 0.5 * 0.96 ** (step * hyper[_H_MOMENTUM_DECAY]))
        scalars[_S_MU_PRODUCT] = mu_product  # starts at 1
    return step, mu_product, gradient_scale(grad, hyper[_H_CLIP_VALUE], hyper[_H_CLIP_NORM])


@jit(inline=True)
def step_span(code, hyper, lr, step, mu_product, params, grad, slots, lo, hi, out, inplace,
              scale):
    """The step on elements ``lo:hi`` (``out`` is not touched when ``inplace``)."""
    dst = params[lo:hi] if inplace else out[lo:hi]
    return step_rows(code, hyper, lr, step, mu_product, params[lo:hi], grad[lo:hi], slots,
                     lo, hi, dst, inplace, scale)


@jit(inline=True)
def apply_update(code, hyper, lr, params, grad, slots, scalars, out, inplace):
    """One optimizer step, state updated in place.

    Parameters
    ----------
    code : int
        Optimizer code from :mod:`gdcore.codes`.
    hyper : ndarray of shape (N_HYPER,), float64
        Hyperparameters, laid out as the ``H_*`` constants of :mod:`gdcore.codes`.
    lr : float
        Learning rate of this step (schedules are evaluated by the caller).
    params, grad : ndarray of shape (n_params,)
        ``grad`` is never modified; ``params`` only when ``inplace``.
    slots : ndarray of shape (n_slots, n_params)
        Optimizer state rows (see the module docstring), updated in place.
    scalars : ndarray of shape (N_SCALARS,), float64
        Step count and scalar state, updated in place.
    out : ndarray of shape (n_params,)
        Receives the new parameters unless ``inplace``; must not overlap
        ``params`` (pass any array when ``inplace``).
    inplace : bool
        Write the new parameters back into ``params``.

    Returns
    -------
    finite : bool
        False if the gradient, the new parameters or a squared-gradient
        accumulator contain NaN or Inf (a finite gradient of 1e200 squares to
        inf, after which Adam-like rules silently stop moving).  The state
        has then taken the step anyway.
    """
    # Borrowed (uncounted) arrays: the calls and views of a step then do no atomic
    # reference counting, a third of the 385-parameter SGD step (see .borrow).
    hyper, grad, slots, scalars = borrowed(hyper), borrowed(grad), borrowed(slots), \
        borrowed(scalars)
    step, mu_product, scale = begin_step(code, hyper, grad, scalars)
    return step_span(code, hyper, lr, step, mu_product, borrowed(params), grad, slots, 0,
                     params.shape[0], borrowed(out), inplace, scale)


@per_code(apply_update, RULES.__contains__, "optimizer code", aot="apply_update")
def update_kernel(code):
    """:func:`apply_update` compiled for optimizer ``code`` alone.

    The kernel takes :func:`apply_update`'s arguments; its ``code`` argument
    is ignored, the factory's is a constant of the compiled body, so only
    that optimizer's loops are compiled (``rule_step``).
    """
    @jit
    def apply_update_of(code_, hyper, lr, params, grad, slots, scalars, out, inplace):
        return apply_update(code, hyper, lr, params, grad, slots, scalars, out, inplace)

    return apply_update_of


@jit(parallel=True)
def apply_update_threaded(code, hyper, lr, params, grad, slots, scalars, out, inplace, n_chunks):
    """:func:`apply_update` in up to ``n_chunks`` spans of whole blocks, on Numba's threads.

    Every element's arithmetic is that of :func:`apply_update`, so the result
    is bitwise the same for any ``n_chunks``.  The norm-clip sum stays serial
    (one float64 order, hence deterministic).

    Worth it only for large arrays with the cores otherwise idle: a parallel
    region costs microseconds, and after a multithreaded BLAS call the BLAS
    threads keep spinning on the cores these spans need.
    """
    step, mu_product, scale = begin_step(code, hyper, grad, scalars)
    n = params.shape[0]
    span = (n + n_chunks - 1) // n_chunks
    span = (span + BLOCK - 1) // BLOCK * BLOCK  # whole blocks
    failed = 0  # spans that were not finite
    for k in numba.prange(n_chunks):
        lo = min(k * span, n)
        hi = min(lo + span, n)
        ok = step_span(code, hyper, lr, step, mu_product, params, grad, slots, lo, hi, out,
                       inplace, scale)
        failed += 0 if ok else 1
    return failed == 0
