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
* the weights are read in place from ``params``, and the products are loops
  whose innermost index runs over a contiguous dimension of length > 1
  (a one-output layer is a dot product, its back-propagation an outer
  product); the bias is the accumulator's first value;
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
inputs when :func:`is_small` holds, a rule on shapes alone:

    (to be filled in from bench/bench_small.py)
"""

from numba.core import types
from numba.extending import overload

from .. import codes
from ._jit import jit, options
from .activations import activate_layer, backprop_layer
from .losses import inverse_weight_sum, loss_rows
from .tiles import VECS, VECTOR_BYTES, pair_tile, tile, vector_tile
from .views import bias, flat_view, layer_block, matrix_view, weights

_W = codes.COL_W_START
_NIN = codes.COL_N_IN
_NOUT = codes.COL_N_OUT
_ACT = codes.COL_ACTIVATION
_LOGIT_LOSSES = codes.LOGIT_LOSSES

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
MAX_BACKPROP = 8 * 1024


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


@jit(inline=True)
def row_products(out, o, o_row, init, i, i_row, S, s, s_row, s_step, M, m, m_step, count,
                 width, rows):
    """For each row ``t < rows``, columns ``c < width``:
    ``out[o + t*o_row + c] = init[i + t*i_row + c]
    + sum_q S[s + t*s_row + q*s_step] * M[m + q*m_step + c]`` (flat C-contiguous arrays).

    Pairs of rows go through :data:`.tiles.pair_tile` (each vector of ``M``
    loaded once for both), then single rows through :data:`.tiles.tile` and
    :data:`.tiles.vector_tile`; a scalar loop covers the last columns.
    """
    n_lanes = VECTOR_BYTES // out.itemsize
    wide = VECS * n_lanes
    t = 0
    while t + 2 <= rows:
        c = 0
        while c + wide <= width:
            pair_tile(out, o + t * o_row + c, o_row, init, i + t * i_row + c, i_row, S,
                      s + t * s_row, s_row, s_step, M, m + c, m_step, count)
            c += wide
        t += 2
    while t < rows:  # the last row
        c = 0
        while c + wide <= width:
            tile(out, o + t * o_row + c, o_row, init, i + t * i_row + c, i_row, S,
                 s + t * s_row, s_row, s_step, M, m + c, m_step, count)
            c += wide
        t += 1
    c0 = width - width % wide
    for t in range(rows):
        c = c0
        while c + n_lanes <= width:
            vector_tile(out, o + t * o_row + c, o_row, init, i + t * i_row + c, i_row, S,
                        s + t * s_row, s_row, s_step, M, m + c, m_step, count)
            c += n_lanes
    # The last columns, one at a time: rows in the inner loop are independent
    # sums (a loop over q inside would be one dependent chain of count adds).
    for c in range(c0 + (width - c0) // n_lanes * n_lanes, width):
        for t in range(rows):
            out[o + t * o_row + c] = init[i + t * i_row + c]
        for q in range(count):
            mv = M[m + q * m_step + c]
            for t in range(rows):
                out[o + t * o_row + c] += S[s + t * s_row + q * s_step] * mv


@jit(inline=True)
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
        row_products(zf, 0, k, b, 0, 0, af, 0, n_in, 1, wf, 0, k, n_in, k, m)


@jit(inline=True)
def add_weight_grad(A, D, gW, gb):
    """``gW += A.T @ D`` and ``gb += D.sum(axis=0)`` for A (m, n_in), D (m, k)."""
    m, n_in = A.shape
    k = D.shape[1]
    for r in range(m):
        for j in range(k):
            gb[j] += D[r, j]
    af, df, gf = flat_view(A), flat_view(D), flat_view(gW)
    if k == 1:
        # gW's one column (contiguous): itself plus the rows of A weighted by D.
        row_products(gf, 0, 0, gf, 0, 0, df, 0, 0, 1, af, 0, n_in, m, n_in, 1)
    else:
        # Row p of gW: itself plus the rows of D weighted by column p of A.
        row_products(gf, 0, k, gf, 0, k, af, 0, 1, n_in, df, 0, k, m, k, n_in)


@jit(inline=True)
def delta_below(D, W, G):
    """``G = D @ W.T`` for D (m, k), W (n_in, k), G (m, n_in): dL/dA of the layer below."""
    m, k = D.shape
    n_in = W.shape[0]
    if k == 1:
        w = flat_view(W)
        for r in range(m):
            d = D[r, 0]
            for p in range(n_in):
                G[r, p] = d * w[p]
    else:
        for r in range(m):
            for p in range(n_in):
                s = D.dtype.type(0)
                for j in range(k):
                    s += D[r, j] * W[p, j]
                G[r, p] = s


@jit
def dense_value_and_grad(params, offsets, X, Y, labels, weights_, loss_code, l2, work, grad,
                         acts):
    """:func:`.network.value_and_grad` for a dense ``X`` (see :func:`value_and_grad`)."""
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
                delta_below(delta, weights(params, offsets, l), below)
                backprop_layer(acts, False, offsets[l - 1, _ACT],
                               layer_block(Zs, offsets, l - 1, m),
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


def value_and_grad(params, offsets, X, Y, labels, weights_, loss_code, l2, work, grad, acts):
    """:func:`.network.value_and_grad` (same arguments, workspace and results) for a
    batch where :func:`fits` holds."""


@overload(fits, jit_options=options())
def _fits(X, offsets):
    if isinstance(X, types.Array):
        return lambda X, offsets: is_small(offsets, X.shape[0])
    return lambda X, offsets: False  # SparseRows stay on the general path


@overload(value_and_grad, prefer_literal=True, jit_options=options())
def _value_and_grad(params, offsets, X, Y, labels, weights_, loss_code, l2, work, grad, acts):
    # prefer_literal: the model's codes reach the kernel as constants.
    if isinstance(X, types.Array):
        def dense(params, offsets, X, Y, labels, weights_, loss_code, l2, work, grad, acts):
            return dense_value_and_grad(params, offsets, X, Y, labels, weights_, loss_code, l2,
                                        work, grad, acts)
        return dense

    def never(params, offsets, X, Y, labels, weights_, loss_code, l2, work, grad, acts):
        return 0.0  # not called: fits() is False for sparse rows
    return never
