"""The gradient of a small network in one pass over blocks of samples, without BLAS.

For a network as small as 10-32-1 on a batch of 32, the general path
(:mod:`.network`) spends most of its time around the arithmetic rather than
in it: a BLAS call costs about 0.5 us whatever its size, and every layer
writes and re-reads whole-batch blocks of the workspace.  This kernel
computes the same loss and gradient with loops alone:

* the batch runs in blocks of ``ROWS`` samples: each block goes forward
  through every layer, through the loss, and back, and adds its share to the
  gradient, so a block's activations and deltas stay in L1 whatever the
  batch size;
* the weights are read in place from ``params``; the products are SIMD row
  tiles (:mod:`.tiles`: vectors of two output rows held in registers over
  the summed index, the bias or the gradient so far as their first value),
  except one-output layers, whose forward product is a dot product per
  sample and whose back-propagation is an outer product; a layer of several
  outputs sends its delta down through dot products along its rows of W;
* activations and losses are :mod:`.activations`' and :mod:`.losses`'
  (:func:`.losses.loss_rows` for a block's share), dispatched once per layer
  and block on the model's codes, as in the general path, so a kernel
  compiled for one model's codes compiles only the loops it uses.

The workspace is that of :func:`.network.value_and_grad` for ``ROWS``
samples (:func:`.network.split_workspace`), which a workspace sized for the
batch covers when the batch has at least ``ROWS`` samples; smaller batches
run as one block of their own size.

When it is used
---------------
:func:`.network.value_and_grad` calls :func:`value_and_grad` for dense
inputs when :func:`is_small` holds, a rule on shapes alone (never on load or
timing): a batch of 1 to ``MAX_ROWS`` = 64 samples, every layer with one
output or a multiple of ``WHOLE_VECTORS`` = 8 outputs and at most
``MAX_LAYER`` = 4096 weights, and every layer after the first with several
outputs at most ``MAX_BACKPROP`` = 2048 multiply-adds per batch
(``n * n_in * n_out``).  ``bench/bench_small.py`` (AMD EPYC Zen 3 at 2 GHz,
2 cores, another process busy on one of them; median ratio fused / general
of paired runs, the codes read at run time as in the kernels compiled
ahead of time; the final kernels) gave:

* one hidden layer, 10 inputs, one output, widths 8-256: 0.68-0.97 at
  batches 8 and 32 in both dtypes (10-32-1, batch 32: float32 3.85 us
  against 5.43, 0.71; float64 5.98 against 8.60, 0.70), 0.91-1.07 at batch
  1; at batches 128 and 256 the fused kernel lost below width 32 (float32
  width 8: 1.27, 1.44) and won above (width 64: 0.83, 0.86): batches above
  64 keep the general path;
* inputs 2-100 into 32 units, batch 32: 0.71-0.83 in both dtypes; 784
  inputs (25088 weights) lost (1.15): MAX_LAYER;
* two and three hidden layers (hidden-to-hidden deltas go down through dot
  products): float32 won at width 8 up to batch 32 (0.82-0.94) and lost at
  width 16 and batch 32 (1.29, 1.43) and from width 48 at batch 1
  (1.14-1.16); float64 won more (width 16, batch 32: 0.80, 0.82):
  MAX_BACKPROP = 2048 takes width 8 at batch 32, width 16 at batch 8, width
  32 at batch 1 (float32 1.00, 1.03; float64 1.06, 1.11);
* output layers of 2 or 10 units (cross_entropy, batch 32), whose columns
  fill no SIMD vector, lost (1.47, 1.45), and 32 and 64 broke even (0.97,
  1.01): WHOLE_VECTORS, and MAX_BACKPROP for the 32 and 64.

Figures with the general path's time above 1 ms at small shapes are BLAS
threads meeting the busy core, not the general path's own cost.

Cost
----
In ``bench/bench_training.py --cases small`` the 10-32-1 gradient alone
went from 5.17 to 4.24 us per step (float32, batch 32; in one process,
paired: 5.48 us for :func:`.network.general_value_and_grad`, 4.09 us
through :func:`.network.value_and_grad`).  Every gradient kernel compiles
this path beside the general one: a cold first JIT ``fit`` of 10-32-1 took
30.4-31.8 s against 19.8-20.3 s (three fresh caches each, alternated), and
``python -m gdcore aot`` 134 s against 116 s.  The helpers below are
compiled once each (not inlined, no literal arguments), which took the
first ``fit`` from 41-51 s with everything inlined.
"""

from numba.core import types
from numba.extending import overload

from .. import codes
from ._jit import jit, options
from .activations import activate_layer, backprop_layer
from .linalg import loop_matmul_nt
from .losses import inverse_weight_sum, loss_rows
from .tiles import (VECS, VECTOR_BYTES, pair_tile, sum_tile, sum_vector_tile, tile,
                    vector_tile)
from .views import bias, flat_view, layer_block, matrix_view, weights

_W = codes.COL_W_START
_NIN = codes.COL_N_IN
_NOUT = codes.COL_N_OUT
_ACT = codes.COL_ACTIVATION
_LOGIT_LOSSES = codes.LOGIT_LOSSES
_RELU = codes.RELU

# Samples per block (see the module docstring).
ROWS = 32
# The rule (see the module docstring): at most MAX_ROWS samples; layers of one
# output or of a multiple of WHOLE_VECTORS outputs (whole float32 vectors) of at
# most MAX_LAYER weights; a layer whose delta goes back to a layer below
# through dot products (one with several outputs) at most MAX_BACKPROP
# multiply-adds for the batch.
MAX_ROWS = 64
WHOLE_VECTORS = 8
MAX_LAYER = 64 * 64
MAX_BACKPROP = 2 * 1024


@jit
def is_small(offsets, n):
    """Whether the fused kernel computes the gradient of a batch of ``n`` samples.

    The rule of the module docstring, on shapes alone.

    Parameters
    ----------
    offsets : ndarray of shape (n_layers, N_COLS), int64
    n : int
        Samples in the batch.
    """
    if n < 1 or n > MAX_ROWS:
        return False
    for l in range(offsets.shape[0]):
        n_in = offsets[l, _NIN]
        n_out = offsets[l, _NOUT]
        if n_out > 1 and n_out % WHOLE_VECTORS != 0:
            return False
        if n_in * n_out > MAX_LAYER:
            return False
        if l > 0 and n_out > 1 and n * n_in * n_out > MAX_BACKPROP:
            return False
    return True


@jit
def row_products(out, o_row, init, i_row, S, s_row, s_step, M, m_step, count, width, rows):
    """For each row ``t < rows``, columns ``c < width``:
    ``out[t*o_row + c] = init[t*i_row + c] + sum_q S[t*s_row + q*s_step] * M[q*m_step + c]``
    (flat C-contiguous arrays).

    Pairs of rows go through :data:`.tiles.pair_tile` (each vector of ``M``
    loaded once for both), a last single row through :data:`.tiles.tile`,
    the columns left over through :data:`.tiles.vector_tile`, and the last
    few, which fill no vector, through a scalar loop.  Callers pass no
    literal constants: Numba would compile this once more for each.
    """
    n_lanes = VECTOR_BYTES // out.itemsize
    wide = VECS * n_lanes
    t = 0
    while t < rows:
        pair = t + 2 <= rows  # else the last row, alone
        c = 0
        while c + wide <= width:
            o, i, s = t * o_row + c, t * i_row + c, t * s_row
            if pair:
                pair_tile(out, o, o_row, init, i, i_row, S, s, s_row, s_step, M, c, m_step,
                          count)
            else:
                tile(out, o, o_row, init, i, i_row, S, s, s_row, s_step, M, c, m_step, count)
            c += wide
        t += 2 if pair else 1
    c0 = width - width % wide
    for t in range(rows):
        c = c0
        while c + n_lanes <= width:
            vector_tile(out, t * o_row + c, o_row, init, t * i_row + c, i_row, S, t * s_row,
                        s_row, s_step, M, c, m_step, count)
            c += n_lanes
    # The last columns, one at a time: rows in the inner loop are independent
    # sums (a loop over q inside would be one dependent chain of count adds).
    for c in range(c0 + (width - c0) // n_lanes * n_lanes, width):
        for t in range(rows):
            out[t * o_row + c] = init[t * i_row + c]
        for q in range(count):
            mv = M[q * m_step + c]
            for t in range(rows):
                out[t * o_row + c] += S[t * s_row + q * s_step] * mv


@jit
def add_column_sums(df, m, k, out):
    """``out += D.sum(axis=0)`` for D (m, k) given flat (``df``), through
    :data:`.tiles.sum_tile` (one pass over D, ``out`` in registers)."""
    n_lanes = VECTOR_BYTES // out.itemsize
    c = 0
    zero = k - k  # not literals: each would be a signature of the tiles to type
    while c + VECS * n_lanes <= k:
        sum_tile(out, c, zero, out, c, zero, df, zero, zero, zero, df, c, k, m)
        c += VECS * n_lanes
    while c + n_lanes <= k:
        sum_vector_tile(out, c, zero, out, c, zero, df, zero, zero, zero, df, c, k, m)
        c += n_lanes
    for c in range(c, k):
        acc = out[c]
        for r in range(m):
            acc += df[r * k + c]
        out[c] = acc


@jit
def affine(A, W, b, Z):
    """``Z = A @ W + b`` for A (m, n_in), W (n_in, k), b (k,), Z (m, k)."""
    m, n_in = A.shape
    k = W.shape[1]
    if k == 1:
        # A dot product per sample along A's row and W's one (contiguous) column.
        w = flat_view(W)
        for r in range(m):
            s = b[0]
            for p in range(n_in):
                s += A[r, p] * w[p]
            Z[r, 0] = s
    else:
        # Row r of Z: b plus the rows of W weighted by row r of A.
        af, wf, zf = flat_view(A), flat_view(W), flat_view(Z)
        zero = k - k  # run-time 0 and 1: see row_products
        row_products(zf, k, b, zero, af, n_in, zero + 1, wf, k, n_in, k, m)


@jit
def add_weight_grad(A, D, gW, gb):
    """``gW += A.T @ D`` and ``gb += D.sum(axis=0)`` for A (m, n_in), D (m, k)."""
    m, n_in = A.shape
    k = D.shape[1]
    af, df, gf = flat_view(A), flat_view(D), flat_view(gW)
    add_column_sums(df, m, k, gb)
    zero = k - k  # run-time 0 and 1: see row_products
    if k == 1:
        # gW's one column (contiguous): itself plus the rows of A weighted by D.
        row_products(gf, zero, gf, zero, df, zero, k, af, n_in, m, n_in, k)
    else:
        # Row p of gW: itself plus the rows of D weighted by column p of A.
        row_products(gf, k, gf, k, af, zero + 1, n_in, df, k, m, k, n_in)


@jit
def relu_outer(D, W, Z, G):
    """``G = (D @ W.T) * (Z > 0)`` for D (m, 1), W (n_in, 1): the delta of a ReLU
    layer below a one-output layer, its derivative applied as it is written."""
    m, n_in = G.shape
    w = flat_view(W)
    zero = G.dtype.type(0)
    for r in range(m):
        d = D[r, 0]
        for p in range(n_in):
            # The product first, then the select: written inside the condition,
            # w[p] became a masked load (vmaskmovps), and the 10-32-1 epoch kernel
            # took 3.54 us per step instead of 3.12 (AVX2, AMD EPYC Zen 3, AOT).
            g = d * w[p]
            G[r, p] = g if Z[r, p] > zero else zero


@jit
def dense_value_and_grad(params, offsets, data, loss_code, l2, work, grad, acts):
    """:func:`.network.value_and_grad` for a dense ``X`` (see :func:`value_and_grad`)."""
    X, Y, labels, weights_ = data
    n = X.shape[0]
    last = offsets.shape[0] - 1
    logit = loss_code in _LOGIT_LOSSES
    widest = 0
    total_units = 0
    for l in range(last + 1):
        widest = max(widest, offsets[l, _NOUT])
        total_units += offsets[l, _NOUT]
    grad[:] = 0
    inv_weight_sum = inverse_weight_sum(weights_)
    loss = 0.0
    for start in range(0, n, ROWS):
        m = min(ROWS, n - start)
        # network.split_workspace for m samples.
        a = m * total_units
        d = m * widest
        Zs, As = work[:a], work[a:2 * a]
        D0, D1 = work[2 * a:2 * a + d], work[2 * a + d:2 * a + 2 * d]
        Xb = X[start:start + m]
        for l in range(last + 1):
            Z = layer_block(Zs, offsets, l, m)
            if l == 0:
                affine(Xb, weights(params, offsets, 0), bias(params, offsets, 0), Z)
            else:
                affine(layer_block(As, offsets, l - 1, m), weights(params, offsets, l),
                       bias(params, offsets, l), Z)
            if l < last or not logit:
                activate_layer(acts, l == last, offsets[l, _ACT], Z,
                               layer_block(As, offsets, l, m))
        k = offsets[last, _NOUT]
        out = layer_block(Zs if logit else As, offsets, last, m)
        delta = matrix_view(D0[:m * k], m, k)
        loss += loss_rows(loss_code, out, Y, labels, weights_, start, n, inv_weight_sum, delta,
                          True)
        if not logit:
            backprop_layer(acts, True, offsets[last, _ACT], layer_block(Zs, offsets, last, m),
                           layer_block(As, offsets, last, m), delta)
        current, spare = D0, D1  # delta lives in `current`; the layer below goes to `spare`
        for l in range(last, -1, -1):
            if l == 0:
                add_weight_grad(Xb, delta, weights(grad, offsets, 0), bias(grad, offsets, 0))
            else:
                add_weight_grad(layer_block(As, offsets, l - 1, m), delta,
                                weights(grad, offsets, l), bias(grad, offsets, l))
                nin = offsets[l, _NIN]
                below = matrix_view(spare[:m * nin], m, nin)
                Z_below = layer_block(Zs, offsets, l - 1, m)
                if offsets[l, _NOUT] == 1 and offsets[l - 1, _ACT] == _RELU:
                    relu_outer(delta, weights(params, offsets, l), Z_below, below)
                else:
                    loop_matmul_nt(delta, weights(params, offsets, l), below)
                    backprop_layer(acts, False, offsets[l - 1, _ACT], Z_below,
                                   layer_block(As, offsets, l - 1, m), below)
                current, spare = spare, current
                delta = below
    if l2 > 0:
        reg = params.dtype.type(l2)
        penalty = 0.0
        for l in range(last + 1):
            w0 = offsets[l, _W]
            for q in range(w0, w0 + offsets[l, _NIN] * offsets[l, _NOUT]):
                w = params[q]
                grad[q] += reg * w
                penalty += float(w) * float(w)
        loss += l2 * (0.5 * penalty)
    return loss


# Python stubs: the compiled code is the overload of each.
def fits(X, offsets):
    """Whether :func:`value_and_grad` serves this batch: a dense ``X`` and :func:`is_small`."""


def value_and_grad(params, offsets, data, loss_code, l2, work, grad, acts):
    """:func:`.network.value_and_grad` (same arguments, workspace and results) for a
    batch where :func:`fits` holds."""


# Both compiled into their caller (inline="always"): a function of its own
# would cost a compile of its own.
@overload(fits, jit_options=options(), inline="always")
def _fits(X, offsets):
    if isinstance(X, types.Array):
        return lambda X, offsets: is_small(offsets, X.shape[0])
    return lambda X, offsets: False  # SparseRows stay on the general path


@overload(value_and_grad, prefer_literal=True, jit_options=options(), inline="always")
def _value_and_grad(params, offsets, data, loss_code, l2, work, grad, acts):
    # prefer_literal: the model's codes reach the kernel as constants.
    if isinstance(data[0], types.Array):
        def dense(params, offsets, data, loss_code, l2, work, grad, acts):
            return dense_value_and_grad(params, offsets, data, loss_code, l2, work, grad, acts)
        return dense

    def never(params, offsets, data, loss_code, l2, work, grad, acts):
        return 0.0  # not called: fits() is False for sparse rows
    return never
