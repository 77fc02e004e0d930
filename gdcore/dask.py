"""Training on data in row-chunked Dask arrays: objective, fit and predict.

Optional extra: ``pip install 'gdcore[dask]'``.  Works with a
``distributed`` client (a ``LocalCluster`` on one machine, or
``Client("tcp://scheduler:8786")`` on a cluster) and with Dask's local
schedulers (threads, or ``dask.config.set(scheduler="sync")``).

``X`` must be chunked by rows only (all its columns in one chunk); ``y`` and
``sample_weight`` are Dask arrays chunked by rows as ``X`` is, or arrays that
are cut to match.  Each chunk is converted and scanned once (NaN/Inf, labels,
weights: the errors of :func:`gdcore.value_and_grad`, naming the row in the
whole data set) and stays where Dask holds it; only parameters and per-chunk
sums travel.

What is deterministic
---------------------
For a given chunking (``X.chunks``), seed and data, :func:`objective` and
:func:`fit` give bitwise the same results with any number of workers,
threads or processes, and under the synchronous scheduler, on machines of one
CPU type: each chunk's part is computed by the same compiled kernel on one
BLAS thread, and the parts are added in a fixed tree order of the chunk
indices (:mod:`gdcore._tree`), whichever worker computed them.  Another
chunking adds in another order (equal to rounding); workers of different CPU
types may round differently.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from typing import Any, Callable

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _validate, optim
from ._chunked import ChunkedData, check_rows_only
from ._tree import Partial
from ._typing import Callback, FloatArray, Seed
from .fit import FitResult, _check_options, _EarlyStopping, _progress_bar, run_callbacks
from .fit import fit as _fit_in_memory
from .functional import predict as _predict_in_memory
from .functional import loss as _loss_in_memory
from .functional import value_and_grad
from .model import Model, require_model

try:
    import dask.array as da
except ImportError:  # pragma: no cover - the dask extra is not installed
    raise ImportError("gdcore.dask needs Dask: pip install 'gdcore[dask]'") from None

__all__ = ["Objective", "objective", "fit", "predict"]


def _weight_mask(model, dtype):
    """1 on the weight matrices' entries of the flat parameters, 0 on the biases."""
    mask = np.zeros(model.n_params, dtype)
    for W, _ in model.unpack(mask):
        W[...] = 1
    return mask


def _loss_grad_sums(chunk, index, model, params):
    """The chunk's summed (weighted) loss and gradient, in float64."""
    if chunk.total == 0:  # all its weights are 0: it adds nothing
        return Partial((0.0, np.zeros(params.shape[0])))
    loss, grad = value_and_grad(model, params, chunk.X, chunk.target,
                                sample_weight=chunk.weights, threads=1)
    # The kernel gives the weighted mean; times the chunk's weight, its sum.
    return Partial((loss * chunk.total, grad.astype(np.float64) * chunk.total))


class Objective:
    """The mean loss of a model over a row-chunked data set, and its gradient.

    Made by :func:`objective`.  Calling it with parameters returns
    ``(loss, grad)``, as SciPy's ``minimize(fun, x0, jac=True)`` expects.

    Attributes
    ----------
    model : Model
    dtype : numpy dtype
        The compute dtype.
    l2 : float
    n_samples : int
    n_chunks : int
    total_weight : float
        The data set's total sample weight (``n_samples`` without weights).
    n_evaluations : int
        Calls so far.
    """

    def __init__(self, model, data, dtype, l2):
        self.model, self.dtype, self.l2 = model, dtype, l2
        self._data = data
        self._mask = _weight_mask(model, np.float64) if l2 else None
        self.n_evaluations = 0

    @property
    def n_samples(self):
        return self._data.n_rows

    @property
    def n_chunks(self):
        return self._data.n_chunks

    @property
    def total_weight(self):
        return self._data.total_weight

    @property
    def client(self):
        """The ``distributed`` client holding the chunks, or None (local scheduler)."""
        return self._data.client

    def __call__(self, params):
        """Loss and gradient at ``params``.

        Parameters
        ----------
        params : array-like of shape (n_params,)
            Converted to the objective's dtype.

        Returns
        -------
        loss : float
            ``sum(w_i * l_i) / sum(w_i) + 0.5 * l2 * sum(W**2)``; inf or NaN
            when the finite inputs overflow.
        grad : ndarray of shape (n_params,)
            In the objective's dtype.
        """
        params = _validate.params_array(self.model, params)
        if params.dtype != self.dtype:
            params = params.astype(self.dtype)
        total = self._data.map_sum(_loss_grad_sums, self.model, params)
        self.n_evaluations += 1
        loss_sum, grad_sum = total.sums
        loss = loss_sum / self.total_weight
        grad = grad_sum / self.total_weight
        if self.l2:
            weights = params.astype(np.float64) * self._mask
            # np.sum (pairwise, one thread), not a dot product: BLAS splits those
            # by its thread count.
            loss += 0.5 * self.l2 * float(np.sum(weights * weights))
            grad += self.l2 * weights
        return float(loss), grad.astype(self.dtype)

    def release(self):
        """Let Dask free the data's chunks now (they are freed with this object anyway)."""
        self._data.release()

    def __repr__(self):
        where = "local scheduler" if self.client is None else repr(self.client)
        return (f"<gdcore.dask.Objective {self.n_samples} samples in {self.n_chunks} chunks, "
                f"{np.dtype(self.dtype).name}, l2={self.l2}, on {where}>")


def objective(model: Model, X: Any, y: Any, l2: float = 0.0, sample_weight: Any = None,
              client: Any = None,
              dtype: DTypeLike = np.float64) -> Callable[[ArrayLike], tuple[float, FloatArray]]:
    """The mean loss over a row-chunked Dask data set, as a SciPy-style ``fun(x) -> (f, g)``.

    The chunks are converted, scanned and kept in memory where Dask computes
    (persisted on the workers of a distributed client) once, here.  Each call
    then sends the parameters once to each worker holding chunks, runs the
    compiled kernel on each chunk (summed loss and gradient), adds the sums up
    in a fixed tree order of the chunk indices and divides by the total
    weight: bitwise the same result for any number of workers, threads or
    processes; equal to :func:`gdcore.value_and_grad` on the whole data to
    rounding.

    Parameters
    ----------
    model : Model
    X : dask Array of shape (n_samples, n_inputs)
        Chunked by rows only: ``len(X.chunks[1]) == 1``.
    y : dask Array or array-like
        Targets as for :func:`gdcore.value_and_grad`; a Dask array must be
        chunked by rows as ``X``.
    l2 : float, default 0
        ``0.5 * l2 * sum(W**2)`` over the weight matrices, added once.
    sample_weight : dask Array or array-like of shape (n_samples,), optional
        The loss becomes ``sum(w_i * l_i) / sum(w_i)``.
    client : distributed.Client, optional
        By default the current client, else Dask's default local scheduler.
    dtype : float32 or float64, default float64
        The compute dtype; the data are converted to it once, and parameters
        on each call.

    Returns
    -------
    Objective
        ``obj(params) -> (loss, grad)``; use it with ``gd.minimize(obj, x0,
        jac=True)`` or ``scipy.optimize.minimize(obj, x0, jac=True,
        method=gd.lbfgs())``.

    Raises
    ------
    TypeError, ValueError
        ``X`` not a Dask array, chunked by columns or of unknown chunk sizes;
        ``y`` or ``sample_weight`` of other rows or chunks; NaN/Inf or
        invalid targets in a chunk (the error of :func:`gdcore.value_and_grad`,
        naming the row in the whole data set).
    """
    require_model(model)
    dtype = _validate.float_dtype(dtype)
    l2 = _validate.nonnegative_float(l2, "l2")
    data = ChunkedData(model, dtype, X, y, sample_weight, client)
    return Objective(model, data, dtype, l2)


def predict(model: Model, params: ArrayLike, X: Any) -> Any:
    """Network outputs for a row-chunked Dask array, lazily.

    Parameters
    ----------
    model : Model
    params : array-like of shape (n_params,)
        Its dtype is the compute dtype, as for :func:`gdcore.predict`.
    X : dask Array of shape (n_samples, n_inputs)
        Chunked by rows only (row chunks of unknown size are fine).

    Returns
    -------
    dask Array of shape (n_samples, n_outputs)
        Chunked as ``X``'s rows; nothing is computed until it is.  A chunk
        with NaN/Inf raises the error of :func:`gdcore.predict` when computed.
    """
    require_model(model)
    p = _validate.params_array(model, params).copy()  # the graph's own: computed later
    check_rows_only(X, known_rows=False)
    _validate.feature_count(model, X.shape[1])
    return X.map_blocks(_predict_block, model, p, dtype=p.dtype,
                        chunks=(X.chunks[0], (model.n_outputs,)),
                        meta=np.empty((0, 0), p.dtype))


def _predict_block(block, model, params):
    return _predict_in_memory(model, params, block, threads=1)


# ----------------------------------------------------------------------------- fit

class _RoundPlan:
    """Which rows of a chunk a round's local steps visit.

    Chunk ``c`` walks through its rows in passes; pass ``p`` visits them in
    the order ``default_rng([seed, c, p]).permutation(n_rows)``.  Round ``r``
    takes the ``steps * batch_size`` positions from ``r * steps *
    batch_size`` on of that endless walk.  Nothing depends on the worker that
    runs it, so any placement of the chunks draws the same rows.
    """

    def __init__(self, seed, steps, batch_size):
        self.seed, self.steps, self.batch_size = seed, steps, batch_size

    def rows(self, chunk_index, n_rows, round_):
        """Row indices (within the chunk) of round ``round_``'s local steps, in order."""
        count = self.steps * self.batch_size
        start = round_ * count
        out = np.empty(count, dtype=np.int64)
        done = 0
        while done < count:
            pass_, pos = divmod(start + done, n_rows)
            take = min(count - done, n_rows - pos)
            out[done:done + take] = self._order(chunk_index, pass_, n_rows)[pos:pos + take]
            done += take
        return out

    def _order(self, chunk_index, pass_, n_rows):
        # A pass lasts many rounds: its order is drawn once per process and kept.
        key = (self.seed, chunk_index, pass_, n_rows)
        with _orders_lock:  # a worker's threads run chunks side by side
            order = _orders.get(key)
        if order is None:
            order = np.random.default_rng([self.seed, chunk_index, pass_]).permutation(n_rows)
            if n_rows <= np.iinfo(np.int32).max:
                order = order.astype(np.int32)
            with _orders_lock:
                _orders[key] = order
                while sum(o.nbytes for o in _orders.values()) > _ORDERS_BYTES and \
                        len(_orders) > 1:
                    del _orders[next(iter(_orders))]
        return order


# The orders of the passes drawn last in this process (a worker's), oldest first,
# up to this many bytes: a round needs its chunks' current passes only.
_orders: dict = {}
_orders_lock = threading.Lock()
_ORDERS_BYTES = 64 << 20


def _local_steps(chunk, index, model, params, state, optimizer, plan, round_, l2):
    """A round on one chunk: ``plan.steps`` steps from ``(params, state)``.

    Returns the chunk's weighted loss and its weighted CHANGES of the
    parameters and optimizer moments (a chunk that takes no step adds exact
    zeros), and, as ``firsts``, the optimizer scalars after a full round of
    steps (else after fewer: batches of zero weight take no step) and a
    divergence message.
    """
    rows = plan.rows(index, chunk.n_rows, round_)
    weights = None if chunk.weights is None else chunk.weights[rows]
    w = chunk.total
    if w == 0 or (weights is not None and not weights.any()):
        return Partial((0.0, 0.0, 0.0, 0.0, w, 0.0), (None, None, None))
    res = _fit_in_memory(model, params, chunk.X[rows], chunk.target[rows],
                         optimizer=optimizer, epochs=1, batch_size=plan.batch_size,
                         shuffle=False, l2=l2, sample_weight=weights, opt_state=state,
                         threads=1, progress=False)
    if res.status == "interrupted":  # Ctrl-C reached the fit in this thread
        raise KeyboardInterrupt
    if res.status != "completed":
        return Partial((0.0, 0.0, 0.0, 0.0, 0.0, 1.0),
                       (None, None, f"chunk {index}: {res.message}"))
    new = res.opt_state
    full = new.step - state.step == plan.steps
    change = (res.params.astype(np.float64) - params) * w
    slots_change = (new.slots.astype(np.float64) - state.slots) * w
    return Partial((res.history["loss"][0] * w, w, change, slots_change, w, 0.0),
                   (new.scalars if full else None, new.scalars, None))


def fit(model: Model, params: ArrayLike, X: Any, y: Any,
        optimizer: optim.Optimizer = optim.adam(), epochs: int = 10, batch_size: int = 32,
        seed: Seed = 0, l2: float = 0.0, sample_weight: Any = None, local_steps: int = 16,
        client: Any = None, progress: bool | None = None, validation_data: Any = None,
        early_stopping: int | None = None,
        callbacks: Callback | Sequence[Callback] = ()) -> FitResult:
    """Data-parallel training by local SGD with model averaging.

    The algorithm is synchronous local SGD (Stich, 2019; Lin et al., 2020),
    with each CHUNK of ``X`` as a replica, so that results depend on the
    chunking but not on the workers.  A round:

    1. every chunk starts from the same parameters and optimizer state and
       takes ``local_steps`` steps of ``optimizer`` on mini-batches of its own
       rows (its own shuffled passes, see below);
    2. the new parameters and optimizer moments are averaged over the chunks,
       weighted by each chunk's total sample weight (its rows without
       weights), in the fixed tree order of the chunk indices (as the
       start plus the average of the chunks' changes, so that a chunk that
       took no step adds exact zeros).

    With one local step and plain SGD, a round is one step on the average of
    the chunks' mini-batch gradients.  The step count (and so the learning
    rate schedule) advances by ``local_steps`` per round (less when every
    chunk met batches whose weights are all zero: those take no step, as in
    :func:`gdcore.fit`; the count is then the lowest chunk's).

    An epoch is ``ceil(max rows of a chunk / (local_steps * batch_size))``
    rounds: each chunk sees its rows about once (a smaller chunk cycles more
    often).  Chunk ``c`` visits its rows in passes, pass ``p`` in the order
    ``np.random.default_rng([seed, c, p]).permutation(rows)``.

    Parameters
    ----------
    model : Model
    params : array-like of shape (n_params,)
        Initial parameters (their dtype is the compute dtype); never modified.
    X : dask Array of shape (n_samples, n_inputs)
        Chunked by rows only; ``y`` and ``sample_weight`` as for
        :func:`objective`.
    y : dask Array or array-like
    optimizer : Optimizer or str, default ``gd.adam()``
    epochs : int, default 10
    batch_size : int, default 32
        Rows per local step, at most the largest chunk's rows; a chunk with
        fewer rows continues its batch into its next pass.
    seed : int, default 0
    l2 : float, default 0
        As in :func:`gdcore.fit`: added to every batch loss.
    sample_weight : dask Array or array-like of shape (n_samples,), optional
    local_steps : int, default 16
        Steps each chunk takes between two averages.
    client : distributed.Client, optional
        By default the current client, else Dask's default local scheduler.
    progress : bool or None
        A tqdm bar over epochs, as for :func:`gdcore.fit`.
    validation_data : tuple, optional
        ``(X_val, y_val)`` or ``(X_val, y_val, sample_weight_val)``, chunked
        by rows as for :func:`objective` (chunked apart from ``X``): its mean
        loss (without the L2 term) after every epoch is ``val_loss`` in
        ``history``, summed over its chunks as :func:`objective` sums.
    early_stopping : int, optional
        Stop after this many epochs in a row without a lower ``val_loss``
        (``loss`` without validation data) and return the best epoch's
        parameters and optimizer state.
    callbacks : callable or sequence of callables
        Called as ``cb(epoch, logs)`` after every epoch, as by
        :func:`gdcore.fit` (``logs``: that epoch's history entries,
        ``epoch_time`` and a copy of ``params``); ``StopIteration`` stops
        training after that epoch, ``KeyboardInterrupt`` too (as an
        interruption); any other exception propagates with the result so far
        as its ``fit_result`` attribute.

    Returns
    -------
    FitResult
        ``history["loss"]``: per epoch, the mean of the chunks' local batch
        losses (weighted by chunk), and ``val_loss`` with validation data.
        ``status``:

        - ``"completed"``: after the last epoch;
        - ``"early_stopped"``: of ``best_epoch``;
        - ``"callback_stopped"``: after the epoch whose callback stopped;
        - ``"diverged"``: a chunk's step turned NaN/Inf; the parameters and
          state at the start of the failing round (the message names the
          epoch, round and chunk);
        - ``"interrupted"``: Ctrl-C (``KeyboardInterrupt``): the parameters
          and state after the last completed round (which may lie inside an
          unfinished epoch; ``n_epochs`` and ``history`` count completed
          epochs).  The round under way is abandoned (its tasks cancelled;
          calls to the chunk servers finish on the workers, unused).

        Bitwise the same for any number of workers for a given chunking and
        seed.

    Notes
    -----
    Unlike :func:`gdcore.fit`, the history has no ``lr`` and there is no
    ``monitor``, ``min_delta``, ``restore_best``, ``lr_plateau`` or
    ``opt_state`` resume.
    """
    require_model(model)
    params = _validate.params_array(model, params)
    message = _validate.nonfinite_params_message(params)
    if message:
        raise ValueError(message)
    l2 = _validate.nonnegative_float(l2, "l2")
    local_steps = _validate.positive_int(local_steps, "local_steps")
    seed = _validate.nonnegative_int(seed, "seed")
    check_rows_only(X)
    max_rows = max(int(c) for c in X.chunks[0]) if X.shape[0] else 1
    optimizer, epochs, batch_size, _, early_stopping, callbacks, progress = _check_options(
        epochs, batch_size, max_rows, True, early_stopping, callbacks, progress, None,
        optimizer)
    if validation_data is not None:
        Xv, yv, wv = _validate.validation_split(validation_data)
    data = ChunkedData(model, params.dtype, X, y, sample_weight, client)
    val = None
    try:
        if validation_data is not None:
            try:
                val = ChunkedData(model, params.dtype, Xv, yv, wv, data.client)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"validation_data: {exc}") from None
        rounds = _Rounds(model, data, val, optimizer, batch_size, seed, l2, local_steps,
                         max_rows)
        return rounds.run(params, epochs, early_stopping, callbacks,
                          _progress_bar(progress, epochs))
    finally:
        data.release()
        if val is not None:
            val.release()


def _loss_sums(chunk, index, model, params):
    """The chunk's summed (weighted) loss, without L2."""
    if chunk.total == 0:
        return Partial((0.0,))
    return Partial((_loss_in_memory(model, params, chunk.X, chunk.target,
                                    sample_weight=chunk.weights, threads=1) * chunk.total,))


class _Rounds:
    """:func:`fit`'s loop: rounds of local steps, epochs, validation, stopping."""

    def __init__(self, model, data, val, optimizer, batch_size, seed, l2, local_steps,
                 max_rows):
        self.model, self.data, self.val, self.optimizer, self.l2 = model, data, val, optimizer, l2
        self.plan = _RoundPlan(seed, local_steps, batch_size)
        self.rounds_per_epoch = math.ceil(max_rows / (local_steps * batch_size))
        self.history = {"loss": []} if val is None else {"loss": [], "val_loss": []}

    def round(self, params, state, round_):
        """One round from ``(params, state)``: ``(params, state, loss or None)``.

        Raises _Diverged when a chunk's step or the averaged parameters turn
        NaN/Inf.
        """
        total = self.data.map_sum(_local_steps, self.model, params, state, self.optimizer,
                                  self.plan, round_, self.l2)
        loss_w, loss_weight, change, slots_change, weight, failures = total.sums
        full_scalars, some_scalars, failure = total.firsts
        new_params = None if failures else (params + change / weight).astype(params.dtype)
        if failures or not np.isfinite(new_params).all():
            raise _Diverged(failure or "the averaged parameters are not finite")
        scalars = next(s for s in (full_scalars, some_scalars, state.scalars) if s is not None)
        state = optim.OptState((state.slots + slots_change / weight).astype(params.dtype),
                               np.array(scalars), names=state.names)
        # No loss when no chunk stepped (every batch of the round weighed 0).
        return new_params, state, (loss_w / loss_weight if loss_weight else None)

    def val_loss(self, params):
        return self.val.map_sum(_loss_sums, self.model, params).sums[0] / self.val.total_weight

    def run(self, params, epochs, early_stopping, callbacks, bar):
        history = self.history
        state = self.optimizer.init(params)
        params = params.copy()
        monitor = "loss" if self.val is None else "val_loss"
        stopping = _EarlyStopping(maximize=False, min_delta=0.0, patience=early_stopping)
        tracker = stopping.tracker
        status, message, n_epochs, round_ = "completed", f"{epochs} epochs completed", 0, 0
        try:
            for epoch in range(epochs):
                started = time.perf_counter()
                losses = []
                for _ in range(self.rounds_per_epoch):
                    try:
                        params, state, loss = self.round(params, state, round_)
                    except _Diverged as exc:
                        status = "diverged"
                        message = f"diverged in epoch {epoch}, round {round_}: {exc}"
                        return self._result(params, n_epochs, tracker, status, message, state)
                    if loss is not None:
                        losses.append(loss)
                    round_ += 1
                epoch_loss = sum(losses) / len(losses) if losses else np.nan
                val_loss = None if self.val is None else self.val_loss(params)
                # The history grows only by whole epochs (Ctrl-C may come in val_loss).
                history["loss"].append(epoch_loss)
                if val_loss is not None:
                    history["val_loss"].append(val_loss)
                n_epochs += 1
                stopping.update(history[monitor][-1], epoch, (n_epochs, params, state))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(**{k: f"{v[-1]:.4g}" for k, v in history.items()})
                logs = {k: v[-1] for k, v in history.items()}
                if callbacks and not self._call_back(callbacks, epoch, logs,
                                                     time.perf_counter() - started,
                                                     (n_epochs, params, state), tracker):
                    status, message = "callback_stopped", f"a callback stopped after epoch {epoch}"
                    break
                if stopping.stalled:
                    status = "early_stopped"
                    if stopping.best is not None:
                        _, params, state = stopping.best
                        message = (f"no lower {monitor} for {early_stopping} epochs; returning "
                                   f"epoch {tracker.best_epoch(history[monitor])}'s parameters")
                    else:
                        message = (f"{monitor} was NaN or Inf in each of the {n_epochs} "
                                   f"epochs; returning the parameters of the last one, "
                                   f"epoch {n_epochs - 1}")
                    break
        except KeyboardInterrupt:
            status = "interrupted"
            message = f"interrupted in epoch {n_epochs} after {round_} rounds in all"
        finally:
            if bar is not None:
                bar.close()
        return self._result(params, n_epochs, tracker, status, message, state)

    def _result(self, params, n_epochs, tracker, status, message, state):
        monitor = "loss" if self.val is None else "val_loss"
        history = {k: list(v) for k, v in self.history.items()}
        return FitResult(params, history, n_epochs, tracker.best_epoch(history[monitor]),
                         status, message, state)

    def _call_back(self, callbacks, epoch, logs, seconds, done, tracker):
        """Call every callback; False when one raised StopIteration (as :func:`gdcore.fit`)."""
        def failed(params, n_epochs, state, message):
            return self._result(params, n_epochs, tracker, "callback_failed", message, state)

        return run_callbacks(callbacks, epoch, logs, seconds, done, failed)


class _Diverged(Exception):
    """A round's step turned NaN/Inf (the message says where)."""

