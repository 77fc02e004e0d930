"""Forward and backward passes over the flat parameter array and its offset table.

Layer ``l`` of a model is row ``l`` of the int64 offset table (columns in
:mod:`gdcore.codes`): its weights are the row-major ``(n_in, n_out)`` block of
``params`` starting at ``COL_W_START`` (so a layer computes ``X @ W + b``), its
bias the ``(n_out,)`` block at ``COL_B_START``.  Reshaped views of those blocks
go to BLAS through :func:`.blas.gemm` (a transpose is a flag), except
degenerate products such as a one-output layer or a one-sample batch, which
:mod:`.linalg` computes with loops.

Workspace
---------
One flat buffer per call, split by :func:`split_workspace` into

* ``Zs`` and ``As``: pre-activations and activations of every layer, layer
  ``l`` as the ``(n, n_out)`` block starting at flat offset
  ``n * COL_UNIT_START``;
* ``D0`` and ``D1``: two ``(n, max_units)`` ping-pong buffers for the
  back-propagated deltas.

Its length is at least ``n_samples * Model.workspace_units``
(``Model.forward_units`` for the forward-only kernels, which need no deltas);
only its front is used.  The Python layer provides it and kernels never
allocate.
"""

import numpy as np

from .. import codes
from ._jit import jit
from .activations import activate_layer, backprop_layer
from .linalg import matmul, matmul_nt, matmul_tn
from .losses import loss_and_delta
from .small import fits as small_fits
from .small import value_and_grad as small_value_and_grad
from .sparse import first_product, first_product_tn, n_rows
from .views import bias, layer_block, matrix_view, weights

_W = codes.COL_W_START
_NIN = codes.COL_N_IN
_NOUT = codes.COL_N_OUT
_ACT = codes.COL_ACTIVATION
_LOGIT_LOSSES = codes.LOGIT_LOSSES


@jit(inline=True)
def split_workspace(work, offsets, n):
    """Views (Zs, As, D0, D1) of the flat workspace for a batch of ``n`` samples.

    A workspace of only ``n * Model.forward_units`` elements (enough for the
    forward-only kernels) yields empty ``D0`` and ``D1``.
    """
    total = 0
    widest = 0
    for l in range(offsets.shape[0]):
        total += offsets[l, _NOUT]
        widest = max(widest, offsets[l, _NOUT])
    a = n * total
    d = n * widest
    return work[:a], work[a:2 * a], work[2 * a:2 * a + d], work[2 * a + d:2 * a + 2 * d]


# Below this many units per row, row-wise loops are loops of a few iterations
# that cannot vectorise; column-wise loops run over n_samples instead.
_NARROW = 8


@jit(inline=True)
def add_bias(Z, b):
    """``Z += b`` row by row, for Z (n, k) and b (k,)."""
    n, k = Z.shape
    if k < _NARROW:
        for j in range(k):
            bj = b[j]
            for i in range(n):
                Z[i, j] += bj
    else:
        for i in range(n):
            for j in range(k):
                Z[i, j] += b[j]


@jit(inline=True)
def column_sums(D, out):
    """``out = D.sum(axis=0)`` for D (n, k), out (k,)."""
    n, k = D.shape
    if k < _NARROW:
        for j in range(k):
            s = D.dtype.type(0)
            for i in range(n):
                s += D[i, j]
            out[j] = s
    elif n > 0:
        for j in range(k):  # the first row assigns: no zeroing pass
            out[j] = D[0, j]
        for i in range(1, n):
            for j in range(k):
                out[j] += D[i, j]
    else:
        out[:] = 0


@jit(inline=True)
def forward(params, offsets, X, Zs, As, activate_output, acts):
    """Run the network on ``X``, filling every layer's Z and A blocks.

    Parameters
    ----------
    params : ndarray of shape (n_params,)
    offsets : ndarray of shape (n_layers, N_COLS), int64
    X : ndarray of shape (n_samples, n_inputs), C-contiguous, or SparseRows
        (:mod:`.sparse`: only the first layer reads it).
    Zs, As : ndarray of shape (n_samples * total_units,)
        Workspace for pre-activations and activations.
    activate_output : bool
        Apply the output layer's activation (False when a logit loss reads
        the output layer's Z directly).
    acts : int
        The model's activation spec (:func:`gdcore.codes.activation_spec`):
        a compile-time constant compiles only the activations it names;
        ``ANY_ACTS`` reads every layer's code from ``offsets``.
    """
    n = n_rows(X)
    n_layers = offsets.shape[0]
    prev = layer_block(As, offsets, 0, n)  # the input of layer l > 0
    for l in range(n_layers):
        Z = layer_block(Zs, offsets, l, n)
        if l == 0:
            first_product(X, weights(params, offsets, l), Z)
        else:
            matmul(prev, weights(params, offsets, l), Z)
        add_bias(Z, bias(params, offsets, l))
        A = layer_block(As, offsets, l, n)
        if l < n_layers - 1 or activate_output:
            activate_layer(acts, l == n_layers - 1, offsets[l, _ACT], Z, A)
        prev = A


@jit(inline=True)
def output_block(offsets, loss_code, Zs, As, n):
    """What the loss reads: the output layer's logits or its activations."""
    last = offsets.shape[0] - 1
    if loss_code in _LOGIT_LOSSES:
        return layer_block(Zs, offsets, last, n)
    return layer_block(As, offsets, last, n)


@jit(inline=True)
def l2_penalty(params, offsets):
    """0.5 * sum of squared weights (biases excluded), computed in float64."""
    total = 0.0
    for l in range(offsets.shape[0]):
        w0 = offsets[l, _W]
        for p in range(w0, w0 + offsets[l, _NIN] * offsets[l, _NOUT]):
            w = np.float64(params[p])
            total += w * w
    return 0.5 * total


@jit(inline=True)
def forward_loss(params, offsets, data, loss_code, l2, Zs, As, D0, want_delta, acts):
    """Forward pass, then the mean loss plus L2 penalty.

    With ``want_delta``, dL/d(out) of the data term goes to the front of
    ``D0`` as an (n, n_outputs) block, which is returned with the loss.
    """
    X, Y, labels, weights_ = data
    n = n_rows(X)
    forward(params, offsets, X, Zs, As, loss_code not in _LOGIT_LOSSES, acts)
    out = output_block(offsets, loss_code, Zs, As, n)
    k = out.shape[1]
    # Without gradient D0 may be empty: ``out`` then fills the unused slot.
    delta = matrix_view(D0[:n * k], n, k) if want_delta else out
    loss = loss_and_delta(loss_code, out, Y, labels, weights_, delta, want_delta)
    if l2 > 0:
        loss += l2 * l2_penalty(params, offsets)
    return loss, delta


@jit
def loss_value(params, offsets, data, loss_code, l2, work, acts):
    """Mean loss (plus L2 penalty) of a batch without any gradient work.

    Parameters are those of :func:`value_and_grad`, minus ``grad``; ``work``
    needs only ``n_samples * Model.forward_units`` elements.
    """
    Zs, As, D0, D1 = split_workspace(work, offsets, n_rows(data[0]))
    return forward_loss(params, offsets, data, loss_code, l2, Zs, As, D0, False, acts)[0]


@jit
def value_and_grad(params, offsets, data, loss_code, l2, work, grad, acts):
    """Mean loss of a batch and its gradient with respect to ``params``.

    Small networks on dense inputs (:func:`.small.is_small`) go to the fused
    kernel of :mod:`.small`, everything else to :func:`general_value_and_grad`;
    both compute the same thing to rounding.

    Parameters
    ----------
    params : ndarray of shape (n_params,)
    offsets : ndarray of shape (n_layers, N_COLS), int64
    data : tuple (X, Y, labels, weights_)
        The batch, passed as one (every kernel from the entry points down
        takes it so): ``X`` ndarray of shape (n_samples, n_inputs),
        C-contiguous, or SparseRows; ``Y`` ndarray of shape (n_samples,
        n_outputs) or (0, n_outputs); ``labels`` ndarray of shape
        (n_samples,) or (0,), int64; ``weights_`` ndarray of shape
        (n_samples,) or (0,).
    loss_code : int
        A compile-time constant compiles that loss alone.
    l2 : float
        Adds ``0.5 * l2 * sum(W**2)`` over weight matrices.
    work : ndarray of shape (>= n_samples * Model.workspace_units,)
        Scratch space, overwritten.
    grad : ndarray of shape (n_params,)
        Receives the gradient.
    acts : int
        Activation spec, as for :func:`forward`.

    Returns
    -------
    loss : float
    """
    if small_fits(data[0], offsets):
        return small_value_and_grad(params, offsets, data, loss_code, l2, work, grad, acts)
    return backprop(params, offsets, data, loss_code, l2, work, grad, acts)


@jit
def general_value_and_grad(params, offsets, data, loss_code, l2, work, grad, acts):
    """:func:`value_and_grad` through whole-batch blocks and BLAS products, for any
    model and batch (benchmarks and tests compare the two paths through it)."""
    return backprop(params, offsets, data, loss_code, l2, work, grad, acts)


@jit(inline=True)
def backprop(params, offsets, data, loss_code, l2, work, grad, acts):
    """The general path of :func:`value_and_grad`: forward over the whole batch,
    then back-propagation layer by layer (the workspace of the module docstring)."""
    X = data[0]
    n = n_rows(X)
    last = offsets.shape[0] - 1
    Zs, As, D0, D1 = split_workspace(work, offsets, n)
    loss, delta = forward_loss(params, offsets, data, loss_code, l2, Zs, As, D0, True, acts)
    if loss_code not in _LOGIT_LOSSES:
        # The loss read the activated output: chain through the output activation.
        backprop_layer(acts, True, offsets[last, _ACT], layer_block(Zs, offsets, last, n),
                       layer_block(As, offsets, last, n), delta)
    current, spare = D0, D1  # delta lives in `current`; the layer below goes to `spare`
    for l in range(last, -1, -1):
        W = weights(params, offsets, l)
        gW = weights(grad, offsets, l)
        if l == 0:
            first_product_tn(X, delta, gW)
        else:
            matmul_tn(layer_block(As, offsets, l - 1, n), delta, gW)
        column_sums(delta, bias(grad, offsets, l))
        if l2 > 0:
            reg = params.dtype.type(l2)
            for a in range(W.shape[0]):
                for b in range(W.shape[1]):
                    gW[a, b] += reg * W[a, b]
        if l > 0:
            nin = offsets[l, _NIN]
            below = matrix_view(spare[:n * nin], n, nin)
            matmul_nt(delta, W, below)
            backprop_layer(acts, False, offsets[l - 1, _ACT], layer_block(Zs, offsets, l - 1, n),
                           layer_block(As, offsets, l - 1, n), below)
            current, spare = spare, current
            delta = below
    return loss


@jit
def predict(params, offsets, X, work, acts):
    """Network outputs (after the output activation) for ``X``.

    Returns
    -------
    out : ndarray of shape (n_samples, n_outputs)
        A view into ``work``; the caller copies it out.
    """
    n = n_rows(X)
    Zs, As, D0, D1 = split_workspace(work, offsets, n)
    forward(params, offsets, X, Zs, As, True, acts)
    return layer_block(As, offsets, offsets.shape[0] - 1, n)
