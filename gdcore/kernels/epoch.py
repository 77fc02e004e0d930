"""Training steps in one compiled call: batches, gradients, updates, loss.

:func:`run_epoch` walks a range of an epoch's mini-batches (in a given
shuffled order, gathered a chunk of batches at a time by :mod:`.gather`, or
in storage order), and for each batch computes the loss and gradient
(:func:`.network.value_and_grad`) and applies one optimizer step
(:func:`.updates.apply_update`).  The Python driver (:mod:`gdcore.fit`) calls
it for a whole epoch when the epoch is short, else for slices of it, with
every buffer preallocated, so no Python runs and nothing is allocated per
step.  The running step count and loss sums go in and come out, so an epoch
run in slices takes exactly the steps, in the same buffers, and sums exactly
the losses of one run in a single call.

Nothing is lost on divergence: the step writes the new parameters into a
second buffer, and the two buffers swap only when the step was finite.  When
a loss, gradient or new parameter is NaN or Inf, the call stops and the
buffer holding the last finite parameters is reported.
"""

import math

from .. import codes
from ._jit import jit, per_code
from .borrow import borrowed
from .entry import valid_model_spec
from .gather import gather_chunk
from .network import loss_value, output_block, split_workspace, value_and_grad
from .sparse import n_rows, rows_slice
from .updates import RULES, apply_update

_CE = codes.CROSS_ENTROPY
_BCE = codes.BINARY_CROSS_ENTROPY

OK = 0
LOSS_NOT_FINITE = 1  # the batch loss is NaN or Inf
STEP_NOT_FINITE = 2  # the gradient or the updated parameters are
GRADIENT_READY = 3  # apply_steps=False: a batch's gradient awaits the caller's step


@jit(inline=True)
def batch_views(data, start, stop):
    """Rows ``start:stop`` of ``data`` (X, Y, labels, weights) as views; empty arrays stay
    empty: slices clip."""
    X, Y, labels, weights_ = data
    return rows_slice(X, start, stop), Y[start:stop], labels[start:stop], weights_[start:stop]


@jit(inline=True)
def batch_weight(weights, m):
    """Total weight of a batch of ``m`` samples: ``m`` without sample weights."""
    if weights.shape[0] == 0:
        return float(m)
    total = 0.0
    for i in range(weights.shape[0]):
        total += weights[i]
    return total


@jit(inline=True)
def run_epoch(params, spare, offsets, data, loss_code, penalty, batches, opt_code, rule, work,
              grad, chunk, progress, acts, apply_steps=True):
    """Train on batches ``first`` to ``last - 1`` of one pass over the data in mini-batches.

    What travels together is passed together: the data four, the batch
    range, the optimizer's rule and state, the chunk buffers and the running
    sums are tuples, unpacked on entry (compiled away: the 10-32-1 epoch
    took the same time as with 30 flat arguments, AMD EPYC Zen 4).  The three codes stay
    separate arguments: :func:`epoch_runner` replaces them with constants of
    its compiled body, which a tuple's member could not be.

    Parameters
    ----------
    params, spare : ndarray of shape (n_params,)
        The current parameters and a second buffer of the same size; the
        steps alternate between them (see the return values).
    offsets : ndarray of shape (n_layers, N_COLS), int64
    data : tuple (X, Y, labels, weights_)
        The training set, as for :func:`.network.value_and_grad`.
    loss_code : int
    penalty : tuple (l2, l2_per_weight) of (float, bool)
        L2 coefficient of each batch loss, and whether to divide it by the
        batch's total sample weight (its size without sample weights), as
        scikit-learn's MLP scales ``alpha``.
    batches : tuple (order, batch_size, first, last)
        ``order``, ndarray of shape (n_samples,) or (0,), int64: the sample
        order of this epoch; empty for storage order (then the batches are
        views of ``X`` and nothing is gathered).  ``batch_size``: the last
        batch of the epoch holds the remainder, if any.  ``first``, ``last``:
        the batches to run, ``0 <= first <= last <= n_batches``.  A first
        batch inside a chunk gathers that whole chunk again, so any range
        gives the same steps; ranges of whole chunks gather nothing twice.
    opt_code : int
        Optimizer code (:func:`.updates.apply_update`).
    rule : tuple (hyper, lrs, slots, scalars)
        The optimizer's hyperparameters and state (:func:`.updates.apply_update`)
        and ``lrs``, ndarray of shape (n_batches,), float64: the learning
        rate of each optimizer step of this epoch, in order.
    work : ndarray of shape (>= batch_size * Model.workspace_units,)
    grad : ndarray of shape (n_params,)
    chunk : tuple (Xb, Yb, Lb, Wb) of ndarray
        Chunk buffers shaped like X, Y, labels and weights, with a multiple
        of ``batch_size`` rows (:func:`.gather.chunk_rows`); a shuffled
        epoch gathers that many rows at a time.  The data arrays themselves
        where the data is empty, and all four when ``order`` is empty (the
        batches are then views of the data: one code path serves both).
        Nothing is checked: the caller guarantees the row counts, widths and
        batch range.
    progress : tuple (updates, loss_sum, weight_sum) of (int, float, float)
        As returned by the call for the epoch's earlier ranges; ``(0, 0.0,
        0.0)`` for the first.  ``updates`` is the count of optimizer steps
        already taken in this epoch: the next step uses ``lrs[updates]``.
    acts : int
        The model's activation spec (see :func:`.network.forward`).
    apply_steps : bool, default True
        False leaves the optimizer step to the caller (:mod:`gdcore.fit`'s
        threaded update): the call returns ``GRADIENT_READY`` at the first
        batch with a gradient, the gradient in ``grad`` and the batch's loss
        and weight already in the sums; the caller steps from ``params``
        and calls again from ``batch + 1``.

    Returns
    -------
    status : int
        ``OK``, ``LOSS_NOT_FINITE``, ``STEP_NOT_FINITE`` or ``GRADIENT_READY``.
    batch : int
        ``last``; on failure, the index of the failing batch; with
        ``GRADIENT_READY``, that of the batch whose gradient is ready.
    progress : tuple (updates, loss_sum, weight_sum)
        Optimizer steps of the epoch completed so far (batches whose weights
        are all zero are skipped without a step; step ``k`` used ``lrs[k]``);
        the sum of batch losses times batch weights, and of the batch
        weights, over the epoch's completed steps (the epoch's mean loss is
        their ratio), accumulated in step order.
    in_spare : bool
        True when the current (last finite) parameters are in ``spare``.
    """
    X, Y, labels, weights_ = data
    l2, l2_per_weight = penalty
    order, batch_size, first, last = batches
    hyper, lrs, slots, scalars = rule
    Xb, Yb, Lb, Wb = chunk
    updates, loss_sum, weight_sum = progress
    # Every array the steps touch, borrowed: no step, view or callee then counts
    # references (see .borrow); the caller's arrays outlive this call.
    params, spare, offsets = borrowed(params), borrowed(spare), borrowed(offsets)
    data = borrowed(X), borrowed(Y), borrowed(labels), borrowed(weights_)
    order, hyper, lrs, slots, scalars, work, grad = (
        borrowed(order), borrowed(hyper), borrowed(lrs), borrowed(slots), borrowed(scalars),
        borrowed(work), borrowed(grad))
    chunk = borrowed(Xb), borrowed(Yb), borrowed(Lb), borrowed(Wb)
    n = n_rows(X)
    shuffled = order.shape[0] > 0
    cur, nxt = params, spare
    in_spare = False
    chunk_rows = n_rows(Xb)
    for s in range(first, last):
        start = s * batch_size
        stop = min(start + batch_size, n)
        at = start  # the batch's first row in the chunk buffers
        if shuffled:
            at = start % chunk_rows
            if at == 0 or s == first:
                gather_chunk(data, order, start - at, batch_size, chunk)
        batch = batch_views(chunk, at, at + stop - start)
        bw = batch_weight(batch[3], stop - start)
        if bw == 0:
            continue  # all weights zero: the batch carries no gradient
        batch_l2 = l2 / bw if l2_per_weight else l2
        loss = value_and_grad(cur, offsets, batch, loss_code, batch_l2, work, grad, acts)
        if not math.isfinite(loss):
            return LOSS_NOT_FINITE, s, (updates, loss_sum, weight_sum), in_spare
        if not apply_steps:
            return (GRADIENT_READY, s, (updates, loss_sum + loss * bw, weight_sum + bw),
                    in_spare)
        if not apply_update(opt_code, hyper, lrs[updates], cur, grad, slots, scalars, nxt,
                            False):
            return STEP_NOT_FINITE, s, (updates, loss_sum, weight_sum), in_spare
        cur, nxt = nxt, cur
        in_spare = not in_spare
        updates += 1
        loss_sum += loss * bw
        weight_sum += bw
    return OK, last, (updates, loss_sum, weight_sum), in_spare


@jit(inline=True)
def argmax_row(A, i):
    best = 0
    for j in range(1, A.shape[1]):
        if A[i, j] > A[i, best]:
            best = j
    return best


@jit
def correct_weight(loss_code, logits, Y, labels, weights_):
    """Weighted count of correctly classified samples of a batch.

    ``cross_entropy``: the arg-max logit against the label (or the arg-max
    of the class probabilities).  ``binary_cross_entropy``: ``logit > 0``
    against ``y >= 0.5``, averaged over the outputs of a multi-label model.
    """
    n, k = logits.shape
    total = 0.0
    for i in range(n):
        if loss_code == _CE:
            truth = labels[i] if labels.shape[0] > 0 else argmax_row(Y, i)
            hit = 1.0 if argmax_row(logits, i) == truth else 0.0
        else:
            hit = 0.0
            for j in range(k):
                if (logits[i, j] > 0) == (Y[i, j] >= 0.5):
                    hit += 1.0
            hit /= k
        total += hit * (weights_[i] if weights_.shape[0] > 0 else 1.0)
    return total


@jit(inline=True)
def evaluate(params, offsets, data, loss_code, chunk, work, acts):
    """Mean loss (without L2 penalty) and accuracy of a data set, ``chunk`` rows at a time.

    Parameters
    ----------
    params, offsets : ndarray
        As for :func:`.network.loss_value`.
    data : tuple (X, Y, labels, weights_)
        As for :func:`.network.loss_value`.
    loss_code : int
    chunk : int
        Rows per forward pass; bounds the workspace.
    work : ndarray of shape (>= chunk * Model.forward_units,)
    acts : int
        The model's activation spec (see :func:`.network.forward`).

    Returns
    -------
    loss : float
        The (weighted) mean loss over all samples.
    accuracy : float
        Fraction (weighted) classified correctly, for ``cross_entropy`` and
        ``binary_cross_entropy``; -1 for the regression losses.
    """
    n = n_rows(data[0])
    loss_sum = 0.0
    weight_sum = 0.0
    correct = 0.0
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        m = stop - start
        batch = batch_views(data, start, stop)
        xb, yb, lb, wb = batch
        bw = batch_weight(wb, m)
        if bw == 0:
            continue
        loss_sum += bw * loss_value(params, offsets, batch, loss_code, 0.0, work, acts)
        weight_sum += bw
        if loss_code == _CE or loss_code == _BCE:
            Zs, As, D0, D1 = split_workspace(work, offsets, m)
            correct += correct_weight(loss_code, output_block(offsets, loss_code, Zs, As, m),
                                      yb, lb, wb)
    accuracy = correct / weight_sum if (loss_code == _CE or loss_code == _BCE) else -1.0
    return loss_sum / weight_sum, accuracy


def valid_spec(opt_code, loss_code, acts):
    """Whether :func:`epoch_runner` can compile for these codes."""
    return opt_code in RULES and valid_model_spec(loss_code, acts)


@per_code(run_epoch, valid_spec, "optimizer code, loss code and activation spec",
          aot="run_epoch")
def epoch_runner(opt_code, loss_code, acts):
    """:func:`run_epoch` compiled for one optimizer, loss and activation spec.

    The kernel takes :func:`run_epoch`'s arguments; the factory's codes are
    constants of its compiled body in place of the run-time ones, so a first
    ``fit`` compiles that optimizer's step, that loss and those activations,
    and no others.
    """
    @jit
    def run_epoch_of(params, spare, offsets, data, loss_code_, penalty, batches, opt_code_, rule,
                     work, grad, chunk, progress, acts_, apply_steps):
        return run_epoch(params, spare, offsets, data, loss_code, penalty, batches, opt_code,
                         rule, work, grad, chunk, progress, acts, apply_steps)

    return run_epoch_of


@per_code(evaluate, valid_model_spec, "loss code and activation spec", aot="evaluate")
def evaluate_kernel(loss_code, acts):
    """:func:`evaluate` compiled for one loss and activation spec (as :func:`epoch_runner`)."""
    @jit
    def evaluate_of(params, offsets, data, loss_code_, chunk, work, acts_):
        return evaluate(params, offsets, data, loss_code, chunk, work, acts)

    return evaluate_of
