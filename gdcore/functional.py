"""The functional API: loss, gradient and predictions of a model.

Each function validates its arguments (:mod:`gdcore._validate`), allocates
the workspace, and makes ONE compiled call (:mod:`gdcore.kernels.entry`),
which scans the data for NaN/Inf and invalid targets before computing.  The
params dtype is the compute dtype: ``X``, ``y`` and ``sample_weight`` are
converted to it once, here, and never inside the kernels.  Inputs are never
modified.
"""

from __future__ import annotations

import threading

import numpy as np
from numpy.typing import ArrayLike

from . import _blas_threads, _validate
from ._sparse import kernel
from ._typing import Features, FloatArray, Threads
from .kernels import entry
from .model import Model, require_model


# Workspaces up to this size are kept per thread and reused by the next call:
# allocating (and first touching) them each call costs more than a small
# network's whole gradient.  Larger ones are allocated per call, so a single
# huge predict() does not pin its memory for the life of the process.
_REUSE_BYTES = 8 << 20
_scratch = threading.local()


def workspace(n_samples, units, dtype):
    """Scratch buffer of at least ``n_samples * units`` elements of ``dtype``.

    ``units`` is ``model.workspace_units`` for gradients and
    ``model.forward_units`` for forward-only kernels, which only use the
    front of the buffer (:func:`gdcore.kernels.network.split_workspace`), so
    a reused buffer is returned whole rather than sliced.

    Reused across calls in the same thread when small (see ``_REUSE_BYTES``);
    its contents are undefined.  Each thread has its own, so concurrent calls
    from different threads never share one.
    """
    size = n_samples * units
    if size * dtype.itemsize > _REUSE_BYTES:
        return np.empty(size, dtype=dtype)
    buffers = getattr(_scratch, "buffers", None)
    if buffers is None:
        buffers = _scratch.buffers = {}
    buf = buffers.get(dtype)
    if buf is None or buf.shape[0] < size:
        buf = buffers[dtype] = np.empty(max(size, 1024), dtype=dtype)
    return buf


def prepare_batch(model, params, X, y, sample_weight=None):
    """Check the arguments' types and shapes and convert them for the kernels.

    ``y`` is required (``None`` is refused: every loss reads one target per
    sample); :func:`prepare_features` serves the calls that need no targets.

    The data scan (NaN/Inf, label range, target range) is not done here: the
    compiled entry points of :mod:`gdcore.kernels.entry` do it.

    Returns
    -------
    params : ndarray of shape (n_params,)
    X : ndarray of shape (n_samples, n_inputs)
    Y : ndarray of shape (n_samples, n_outputs) or (0, n_outputs)
        Empty when ``labels`` holds the targets.
    labels : ndarray of shape (n_samples,) or (0,), int64
    weights : ndarray of shape (n_samples,) or (0,)
        All C-contiguous and writeable, in the params dtype (labels int64);
        each is the caller's own array when it already qualifies.
    """
    require_model(model)  # prepare_features inlined: this runs on every small call
    params = _validate.params_array(model, params)
    X = _validate.features(model, X, params.dtype)
    n = X.shape[0]
    Y, labels = _validate.targets(model, y, n, params.dtype)
    weights = _validate.sample_weights(sample_weight, n, params.dtype)
    return params, X, Y, labels, weights


def prepare_features(model, params, X):
    """:func:`prepare_batch` without targets or weights: returns ``(params, X)``."""
    require_model(model)
    params = _validate.params_array(model, params)
    return params, _validate.features(model, X, params.dtype)


def value_and_grad(model: Model, params: ArrayLike, X: Features, y: ArrayLike, l2: float = 0.0,
                   sample_weight: ArrayLike | None = None,
                   threads: Threads = "auto") -> tuple[float, FloatArray]:
    """Mean loss of a batch and its gradient with respect to the flat parameters.

    Parameters
    ----------
    model : Model
    params : array-like of shape (n_params,)
        float32 or float64; its dtype is the compute dtype.
    X : array-like or scipy sparse matrix of shape (n_samples, n_inputs)
        A sparse matrix is read as CSR rows (never densified; see
        :mod:`gdcore.kernels.sparse`).
    y : array-like
        Regression targets ``(n_samples,)`` (one output) or
        ``(n_samples, n_outputs)``; for ``binary_cross_entropy`` targets in
        [0, 1]; for ``cross_entropy`` integer labels ``(n_samples,)`` or class
        probabilities ``(n_samples, n_outputs)`` in [0, 1] whose rows sum to 1
        (within 3.5e-4, the square root of float32's epsilon, which passes
        probabilities made in float32; 0.031 for float16 targets).  Required:
        ``None`` raises TypeError.
    l2 : float, default 0
        Adds ``0.5 * l2 * sum(W**2)`` over the weight matrices (not biases).
    sample_weight : array-like of shape (n_samples,), optional
        The loss becomes ``sum(w_i * l_i) / sum(w_i)``.
    threads : "auto", int or None, default "auto"
        BLAS threads of the matrix products (see :func:`gdcore.fit`):
        ``"auto"`` runs products of fewer than 2**24 multiply-adds on one
        thread, an int sets the count for the call, None leaves the BLAS
        as it is.  While another call holds a count (a fit in another
        thread, or the fit whose callback makes this call), this call runs
        with that count.

    Returns
    -------
    loss : float
        inf or nan if the finite inputs overflow (never raised: optimizers
        and line searches need to see it).
    grad : ndarray of shape (n_params,)
        Same dtype as ``params``.
    """
    p, Xb, Y, labels, weights = prepare_batch(model, params, X, y, sample_weight)
    data = (Xb, Y, labels, weights)  # as the kernels take a batch
    l2 = _validate.nonnegative_float(l2, "l2")
    work = workspace(Xb.shape[0], model.workspace_units, p.dtype)
    grad = np.empty(p.shape, p.dtype)  # cheaper than empty_like
    if threads == "auto" and Xb.shape[0] * model.n_params <= _blas_threads.OPENBLAS_SINGLE_UP_TO:
        # Small products: no thread count to hold, and no call in between (0.3 us).
        table = entry.value_and_grad_kernel  # the helper's call costs 0.1 us on small calls
        status, index, loss_ = (table[model.kernel_key] if type(Xb) is np.ndarray
                                else kernel(table, model.kernel_key, Xb))(
            p, model.offsets, data, model.loss_code, l2, work, grad)
    else:
        status, index, loss_ = _blas_threads.call_holding(
            _blas_threads.count_for_call(threads, model, Xb.shape[0]),
            kernel(entry.value_and_grad_kernel, model.kernel_key, Xb),
            p, model.offsets, data, model.loss_code, l2, work, grad)
    if status:
        _validate.raise_for_status(status, index, model, *data)
    return loss_, grad


def loss(model: Model, params: ArrayLike, X: Features, y: ArrayLike, l2: float = 0.0,
         sample_weight: ArrayLike | None = None, threads: Threads = "auto") -> float:
    """Mean loss of a batch, without any gradient work.

    Parameters
    ----------
    model : Model
    params : array-like of shape (n_params,)
    X : array-like or scipy sparse matrix of shape (n_samples, n_inputs)
    y : array-like
    l2 : float, default 0
    sample_weight : array-like of shape (n_samples,), optional
    threads : "auto", int or None, default "auto"
        Each as for :func:`value_and_grad`.

    Returns
    -------
    loss : float
        inf or nan if the finite inputs overflow.
    """
    p, Xb, Y, labels, weights = prepare_batch(model, params, X, y, sample_weight)
    data = (Xb, Y, labels, weights)
    l2 = _validate.nonnegative_float(l2, "l2")
    # The call and the error, written out here and in predict: a helper shared by
    # the three calls cost 0.3 us of a 4.4 us loss and a 4.0 us predict (10-32-1,
    # batch 32, AMD EPYC Zen 4).
    work = workspace(Xb.shape[0], model.forward_units, p.dtype)
    status, index, loss_ = _blas_threads.call_holding(
        _blas_threads.count_for_call(threads, model, Xb.shape[0]),
        kernel(entry.loss_kernel, model.kernel_key, Xb),
        p, model.offsets, data, model.loss_code, l2, work)
    if status:
        _validate.raise_for_status(status, index, model, *data)
    return loss_


def predict(model: Model, params: ArrayLike, X: Features,
            threads: Threads = "auto") -> FloatArray:
    """Network outputs after the output activation.

    For ``cross_entropy`` models with softmax output these are class
    probabilities; with sigmoid output, probabilities of the positive class;
    with identity output, the raw outputs (logits for the logit losses).

    Parameters
    ----------
    model : Model
    params : array-like of shape (n_params,)
    X : array-like or scipy sparse matrix of shape (n_samples, n_inputs)
        A sparse matrix is read as CSR rows (never densified; see
        :mod:`gdcore.kernels.sparse`).
    threads : "auto", int or None, default "auto"
        BLAS threads of the products, as for :func:`value_and_grad`.

    Returns
    -------
    out : ndarray of shape (n_samples, n_outputs)
        In the params dtype.
    """
    p, Xb = prepare_features(model, params, X)
    dtype = p.dtype
    # Empty targets and weights: the scan then checks p and Xb only.
    data = (Xb, _validate.no_targets(model, dtype), _validate.NO_LABELS,
            _validate.no_weights(dtype))
    work = workspace(Xb.shape[0], model.forward_units, dtype)
    out = np.empty((Xb.shape[0], model.n_outputs), dtype=dtype)
    status, index = _blas_threads.call_holding(
        _blas_threads.count_for_call(threads, model, Xb.shape[0]),
        kernel(entry.predict_kernel, model.kernel_key, Xb),
        p, model.offsets, data, model.loss_code, work, out)
    if status:
        _validate.raise_for_status(status, index, model, *data)
    return out
