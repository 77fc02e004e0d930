"""The training driver: epochs, validation, early stopping, callbacks, progress.

:func:`fit` validates everything once, allocates every buffer once, and then
runs each epoch as ONE compiled call (:func:`gdcore.kernels.epoch.run_epoch`);
Python only runs between epochs (validation loss, history, callbacks,
progress bar, schedules).

Nothing is lost.  Whatever happens, :func:`fit` returns a :class:`FitResult`
whose ``status`` says how training ended:

``"completed"``         every epoch ran;
``"early_stopped"``     no improvement for ``early_stopping`` epochs: the best
                        epoch's parameters are returned;
``"callback_stopped"``  a callback raised ``StopIteration``;
``"interrupted"``       ``KeyboardInterrupt`` (Ctrl-C, or from a callback): the
                        parameters of the last completed epoch;
``"diverged"``          a loss, gradient or step turned NaN/Inf: the last
                        finite parameters, and a message naming the epoch,
                        step and learning rate.

The initial ``params`` are never modified, and the same seed, data and
settings give bitwise identical results.
"""

import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import _validate, codes
from .functional import prepare_batch
from .kernels import checks
from .kernels.epoch import LOSS_NOT_FINITE, OK, evaluate, run_epoch
from .kernels.gather import chunk_rows
from .model import require_model
from .optim import Optimizer, adam
from .schedules import as_schedule

# Validation sets are evaluated this many rows at a time, which bounds the
# workspace of the forward pass.
_EVAL_CHUNK = 4096


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    params : ndarray of shape (n_params,)
        The trained parameters (see ``status`` for which ones).
    history : dict of str -> list of float
        Per-epoch ``loss`` (mean training loss of the epoch's batches,
        including the L2 term, measured before each step), ``lr`` (rate of
        the epoch's last step) and, with validation data, ``val_loss`` (mean
        loss without the L2 term) and ``val_accuracy`` (classification
        losses only).
    n_epochs : int
        Epochs completed.
    best_epoch : int or None
        Epoch (from 0) with the lowest monitored loss: ``val_loss`` with
        validation data, else ``loss``.
    status : str
        ``completed``, ``early_stopped``, ``callback_stopped``,
        ``interrupted`` or ``diverged``.
    message : str
    opt_state : OptState or None
        The optimizer state that goes with ``params``; None when training
        diverged in the optimizer step itself (that step had already changed
        the state).
    """

    params: np.ndarray
    history: dict
    n_epochs: int
    best_epoch: object
    status: str
    message: str
    opt_state: object = field(repr=False)


@dataclass(frozen=True)
class ReduceOnPlateau:
    """Multiply the learning rate by ``factor`` when the monitored loss stalls.

    After ``patience`` epochs without the monitored loss (``val_loss`` with
    validation data, else ``loss``) improving on its best by more than
    ``threshold`` (relative), the rate is scaled by ``factor``, down to
    ``min_scale`` times the schedule's rate.  PyTorch's ReduceLROnPlateau in
    its default ``rel`` mode, without cooldown.
    """

    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    min_scale: float = 0.0

    def __post_init__(self):
        _validate.real_in(self.factor, "factor", 0.0, 1.0, low_open=True, high_open=True)
        _validate.nonnegative_int(self.patience, "patience")
        _validate.nonnegative_float(self.threshold, "threshold")
        _validate.real_in(self.min_scale, "min_scale", 0.0, 1.0)


def reduce_on_plateau(factor=0.1, patience=10, threshold=1e-4, min_scale=0.0):
    """A :class:`ReduceOnPlateau` for ``fit(..., lr_plateau=...)``."""
    return ReduceOnPlateau(factor, patience, threshold, min_scale)


class _Data:
    """A validated data set in kernel form (params dtype, C-contiguous)."""

    def __init__(self, model, params, X, y, sample_weight, what):
        try:
            _, self.X, self.Y, self.labels, self.weights = prepare_batch(
                model, params, X, y, sample_weight)
            # The whole data set is scanned once here, not per batch.
            status, index = checks.scan_inputs(params[:0], self.X, self.Y, self.labels,
                                               self.weights, model.loss_code, model.n_outputs)
            _validate.raise_for_status(status, index, model, self.X, self.Y, self.labels,
                                       self.weights)
        except (TypeError, ValueError) as exc:
            if not what:
                raise
            raise type(exc)(f"{what}: {exc}") from None

    @property
    def n(self):
        return self.X.shape[0]

    def subset(self, rows):
        new = object.__new__(_Data)
        new.X = np.ascontiguousarray(self.X[rows])
        new.Y = np.ascontiguousarray(self.Y[rows]) if self.Y.shape[0] else self.Y
        new.labels = np.ascontiguousarray(self.labels[rows]) if self.labels.shape[0] \
            else self.labels
        new.weights = np.ascontiguousarray(self.weights[rows]) if self.weights.shape[0] \
            else self.weights
        return new


def _split(model, params, train, validation_data, validation_fraction, seed):
    """Training and validation sets (validation may be None)."""
    if validation_data is not None and validation_fraction:
        raise ValueError("give validation_data or validation_fraction, not both")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise TypeError("validation_data must be a tuple (X_val, y_val) or "
                            "(X_val, y_val, sample_weight_val)")
        Xv, yv, *wv = validation_data
        return train, _Data(model, params, Xv, yv, wv[0] if wv else None, "validation_data")
    if not validation_fraction:
        return train, None
    n_val = int(round(validation_fraction * train.n))
    if n_val < 1 or n_val >= train.n:
        raise ValueError(f"validation_fraction={validation_fraction} leaves {n_val} of "
                         f"{train.n} samples for validation; need at least 1 and at most "
                         f"{train.n - 1}")
    # A seeded split, independent of the per-epoch shuffles.
    rows = np.random.default_rng([seed, 1]).permutation(train.n)
    return train.subset(np.sort(rows[n_val:])), train.subset(np.sort(rows[:n_val]))


def _progress_bar(progress, epochs):
    """A tqdm bar over epochs, or None (see :func:`fit`'s ``progress``)."""
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if progress:
            raise ImportError("progress=True needs tqdm: pip install tqdm "
                              "(or gdcore[progress])") from None
        return None
    if progress is None and not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return None
    return tqdm(total=epochs, unit="epoch", leave=True)


def _check_options(epochs, batch_size, n, shuffle, seed, early_stopping, callbacks,
                   progress, lr_plateau, optimizer):
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a gdcore optimizer such as gd.adam(), "
                        f"got {optimizer!r}")
    epochs = _validate.positive_int(epochs, "epochs")
    batch_size = n if batch_size is None else min(
        _validate.positive_int(batch_size, "batch_size"), n)
    shuffle = _validate.flag(shuffle, "shuffle")
    seed = _validate.nonnegative_int(seed, "seed")
    if early_stopping is not None:
        early_stopping = _validate.positive_int(early_stopping, "early_stopping")
    if callable(callbacks):
        callbacks = (callbacks,)
    try:
        callbacks = tuple(callbacks)
    except TypeError:
        raise TypeError(f"callbacks must be a callable or a sequence of callables, "
                        f"got {callbacks!r}") from None
    for i, cb in enumerate(callbacks):
        if not callable(cb):
            raise TypeError(f"callbacks[{i}] must be callable as cb(epoch, logs), got {cb!r}")
    if progress is not None:
        progress = _validate.flag(progress, "progress")
    if lr_plateau is not None and not isinstance(lr_plateau, ReduceOnPlateau):
        raise TypeError(f"lr_plateau must be gd.reduce_on_plateau(...), got {lr_plateau!r}")
    return epochs, batch_size, shuffle, seed, early_stopping, callbacks, progress


def fit(model, params, X, y, optimizer=adam(), epochs=10, batch_size=32, shuffle=True, seed=0,
        l2=0.0, sample_weight=None, validation_data=None, validation_fraction=0.0,
        early_stopping=None, callbacks=(), progress=None, lr_plateau=None):
    """Train ``model`` by (mini-batch, stochastic or full-batch) gradient descent.

    Parameters
    ----------
    model : Model
    params : array-like of shape (n_params,)
        Initial parameters (float32 or float64: the compute dtype); never modified.
    X : array-like of shape (n_samples, n_inputs)
    y : array-like
        Targets as for :func:`gdcore.value_and_grad`.
    optimizer : Optimizer, default ``gd.adam()``
    epochs : int, default 10
    batch_size : int or None, default 32
        ``None`` (or >= n_samples) is full-batch gradient descent, ``1``
        stochastic gradient descent; the last partial batch is used.
    shuffle : bool, default True
        Visit the samples in a new random order each epoch
        (``np.random.default_rng(seed)``); full batches are never shuffled.
    seed : int, default 0
    l2 : float, default 0
        ``0.5 * l2 * sum(W**2)`` added to every batch loss.
    sample_weight : array-like of shape (n_samples,), optional
        Each batch loss is the weighted mean over its samples; a batch
        whose weights are all zero is skipped.
    validation_data : tuple, optional
        ``(X_val, y_val)`` or ``(X_val, y_val, sample_weight_val)``.
    validation_fraction : float, default 0
        Hold out this fraction of the training samples (a seeded random
        split) as validation data instead.
    early_stopping : int, optional
        Stop after this many epochs without improvement of the monitored
        loss (``val_loss`` with validation data, else the training loss)
        and return the best epoch's parameters.
    callbacks : callable or sequence of callables
        Called as ``cb(epoch, logs)`` after every epoch (epoch from 0; logs
        holds that epoch's history entries, ``epoch_time`` in seconds and
        ``params``, a copy).  ``StopIteration`` stops training after that
        epoch; ``KeyboardInterrupt`` too, as an interruption.
    progress : bool or None
        A tqdm progress bar per epoch (loss, val_loss, samples/s); ``None``
        shows it only when stderr is a terminal and tqdm is installed.
    lr_plateau : ReduceOnPlateau, optional
        Scale the learning rate down when the monitored loss stalls.

    Returns
    -------
    FitResult
    """
    require_model(model)
    params = _validate.params_array(model, params)
    train = _Data(model, params, X, y, sample_weight, "")
    message = _validate.nonfinite_params_message(params)
    if message:
        raise ValueError(message)
    l2 = _validate.nonnegative_float(l2, "l2")
    validation_fraction = _validate.real_in(validation_fraction, "validation_fraction",
                                            0.0, 1.0, high_open=True)
    epochs, batch_size, shuffle, seed, early_stopping, callbacks, progress = _check_options(
        epochs, batch_size, train.n, shuffle, seed, early_stopping, callbacks, progress,
        lr_plateau, optimizer)
    train, val = _split(model, params, train, validation_data, validation_fraction, seed)
    for data, what in ((train, "the training samples"), (val, "the validation samples")):
        if data is not None and data.weights.shape[0] and not data.weights.any():
            raise ValueError(f"sample_weight is zero for all of {what}"
                             + (" left by validation_fraction" if validation_fraction else ""))
    batch_size = min(batch_size, train.n)
    trainer = _Trainer(model, params, train, val, optimizer, batch_size, shuffle, seed, l2)
    return trainer.run(epochs, early_stopping, callbacks, _progress_bar(progress, epochs),
                       lr_plateau)


class _Trainer:
    """The state of one :func:`fit` call: buffers, history and bookkeeping."""

    def __init__(self, model, params, train, val, optimizer, batch_size, shuffle, seed, l2):
        dtype = params.dtype
        self.model, self.train, self.val = model, train, val
        self.optimizer, self.batch_size, self.l2 = optimizer, batch_size, l2
        self.schedule = as_schedule(optimizer.learning_rate)
        # Full batches see every sample each step: their order changes nothing.
        self.shuffle = shuffle and batch_size < train.n
        self.rng = np.random.default_rng(seed)
        self.no_order = np.zeros(0, dtype=np.int64)
        self.params = params.copy()  # the caller's array is never touched
        self.spare = np.empty_like(self.params)
        self.state = optimizer.init(self.params)
        self.grad = np.empty_like(self.params)
        self.work = np.empty(batch_size * model.workspace_units, dtype=dtype)
        # A shuffled epoch gathers its rows a chunk of whole batches at a time.
        used = [a for a in (train.X, train.Y, train.labels, train.weights) if a.shape[0]]
        row_bytes = sum(a.itemsize * (a.shape[1] if a.ndim == 2 else 1) for a in used)
        rows = chunk_rows(batch_size, row_bytes, train.n) if self.shuffle else 0

        def buffer(a, shape):
            return np.empty(shape, dtype=a.dtype) if a.shape[0] and rows else a

        self.Xb = buffer(train.X, (rows, model.n_inputs))
        self.Yb = buffer(train.Y, (rows, train.Y.shape[1]))
        self.Lb = buffer(train.labels, (rows,))
        self.Wb = buffer(train.weights, (rows,))
        self.n_batches = -(-train.n // batch_size)
        if val is not None:
            chunk = min(val.n, _EVAL_CHUNK)
            self.eval_chunk = chunk
            self.eval_work = np.empty(chunk * model.forward_units, dtype=dtype)
        self.history = {"loss": [], "lr": []}
        if val is not None:
            self.history["val_loss"] = []
            if model.loss_code in codes.LOGIT_LOSSES:
                self.history["val_accuracy"] = []

    # One epoch -------------------------------------------------------------------------
    def epoch(self, lr_scale):
        """Run one epoch.

        Returns
        -------
        status, batch : int
            Kernel status and, on failure, the failing batch.
        lrs : ndarray
            Rates of the steps taken (and, on failure, of the failing step last).
        loss : float
            Mean loss of the epoch's batches.
        """
        order = self.rng.permutation(self.train.n) if self.shuffle else self.no_order
        step0 = self.state.step
        lrs = np.ascontiguousarray(
            self.schedule(np.arange(step0, step0 + self.n_batches)) * lr_scale, dtype=np.float64)
        opt, t, m = self.optimizer, self.train, self.model
        status, batch, updates, loss_sum, weight_sum, in_spare = run_epoch(
            self.params, self.spare, m.offsets, t.X, t.Y, t.labels, t.weights, m.loss_code,
            self.l2, order, self.batch_size, opt.code, opt.hyper, lrs, self.state.slots,
            self.state.scalars, self.work, self.grad, self.Xb, self.Yb,
            self.Lb, self.Wb)
        if in_spare:
            self.params, self.spare = self.spare, self.params
        mean = loss_sum / weight_sum if weight_sum > 0 else float("nan")
        return status, batch, lrs[:updates + (status != OK)], mean

    def validate(self):
        v, m = self.val, self.model
        return evaluate(self.params, m.offsets, v.X, v.Y, v.labels, v.weights, m.loss_code,
                        self.eval_chunk, self.eval_work)

    # The loop --------------------------------------------------------------------------
    def run(self, epochs, early_stopping, callbacks, bar, plateau):
        monitor = "val_loss" if self.val is not None else "loss"
        completed = self.params.copy()  # parameters of the last completed epoch
        completed_state = self.state.copy()
        best, best_epoch, best_params, waited = np.inf, None, None, 0
        plateau_best, plateau_wait, lr_scale = np.inf, 0, 1.0
        status, message, n_done = "completed", "", 0
        try:
            for epoch in range(epochs):
                t0 = time.perf_counter()
                code, batch, lrs, loss = self.epoch(lr_scale)
                if code != OK:
                    what = "loss" if code == LOSS_NOT_FINITE else "gradient or update"
                    status = "diverged"
                    message = (f"the {what} became NaN or Inf in epoch {epoch}, step {batch} "
                               f"(batch {batch + 1} of {self.n_batches}, learning rate "
                               f"{lrs[-1]:.6g}); returning the last finite parameters")
                    # A step that failed in the update has already moved the optimizer
                    # state, which then matches no finite parameters: none is returned.
                    completed = self.params.copy()
                    completed_state = self.state.copy() if code == LOSS_NOT_FINITE else None
                    break
                logs = {"loss": loss, "lr": float(lrs[-1])}
                if self.val is not None:
                    val_loss, val_acc = self.validate()
                    logs["val_loss"] = val_loss
                    if "val_accuracy" in self.history:
                        logs["val_accuracy"] = val_acc
                for key in self.history:
                    self.history[key].append(logs[key])
                n_done = epoch + 1
                completed, completed_state = self.params.copy(), self.state.copy()
                current = logs[monitor]
                if current < best:
                    best, best_epoch, waited = current, epoch, 0
                    if early_stopping is not None:
                        best_params = completed
                else:
                    waited += 1
                if plateau is not None:
                    if current < plateau_best * (1 - plateau.threshold):
                        plateau_best, plateau_wait = current, 0
                    else:
                        plateau_wait += 1
                        if plateau_wait > plateau.patience:
                            lr_scale = max(lr_scale * plateau.factor, plateau.min_scale)
                            plateau_wait = 0
                seconds = time.perf_counter() - t0
                if bar is not None:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k != "lr"}
                                    | {"samples/s": f"{self.train.n / seconds:.3g}"})
                    bar.update(1)
                if callbacks:
                    cb_logs = dict(logs, epoch_time=seconds, params=completed.copy())
                    try:
                        for cb in callbacks:
                            cb(epoch, cb_logs)
                    except StopIteration:
                        status = "callback_stopped"
                        message = f"a callback raised StopIteration after epoch {epoch}"
                        break
                if early_stopping is not None and waited >= early_stopping:
                    status = "early_stopped"
                    message = (f"{monitor} did not improve for {early_stopping} epochs; "
                               f"returning the parameters of epoch {best_epoch}")
                    completed = best_params
                    break
        except KeyboardInterrupt:
            status = "interrupted"
            message = (f"interrupted after {n_done} completed epochs; returning the "
                       f"parameters of the last completed epoch")
        finally:
            if bar is not None:
                bar.close()
        if status == "completed":
            message = f"completed {n_done} epochs"
        return FitResult(completed, self.history, n_done, best_epoch, status, message,
                         completed_state)
