"""The training driver: epochs, validation, early stopping, callbacks, progress.

:func:`fit` validates everything once, allocates every buffer once, and then
runs each epoch in compiled calls (:func:`gdcore.kernels.epoch.run_epoch`, compiled
for the optimizer at hand by :func:`~gdcore.kernels.epoch.epoch_runner`):
one call per epoch when an epoch takes less than ``_SLICE_SECONDS``, else
slices of it sized from the measured step time (ending on gather-chunk
boundaries where they can), so that Ctrl-C takes effect within about that
time.  Python only runs between these
calls (validation loss, history, callbacks, progress bar, schedules).

Nothing is lost.  Whatever happens, :func:`fit` returns a :class:`FitResult`
whose ``status`` says how training ended:

``"completed"``         every epoch ran;
``"early_stopped"``     no improvement for ``early_stopping`` epochs: the best
                        epoch's parameters and optimizer state (the last
                        epoch's when no monitored loss was finite);
``"callback_stopped"``  a callback raised ``StopIteration``;
``"interrupted"``       Ctrl-C: the parameters and optimizer state after
                        the last completed step; a ``KeyboardInterrupt``
                        (from a callback, say): after the last completed
                        epoch (see :func:`fit`);
``"diverged"``          a loss, gradient or step turned NaN/Inf: the state at
                        the end of the last completed epoch whose parameters
                        then took a finite step, and a message naming the
                        epoch, step and learning rate of the failure.

A callback raising any other exception ends training too: the exception
propagates with the result so far (status ``"callback_failed"``) attached as
its ``fit_result`` attribute.

The initial ``params`` are never modified, and the same int seed, data and
settings give bitwise identical results.
"""

from __future__ import annotations

import numbers
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from . import _blas_threads, _validate, codes, optim
from ._interrupt import NEVER, CtrlC
from ._sparse import SparseRows, kernel
from ._sparse import rows as sample_rows
from ._typing import Callback, Features, Seed, Threads
from .functional import prepare_batch
from .kernels import checks
from .kernels.entry import predict_kernel
from .kernels.epoch import (GRADIENT_READY, LOSS_NOT_FINITE, OK, STEP_NOT_FINITE, epoch_runner,
                            evaluate_kernel)
from .kernels.gather import chunk_rows
from .kernels.shuffle import shuffle_kernel
from .kernels.updates import apply_update_threaded, update_kernel
from .model import Model, require_model
from .optim import Optimizer, OptState, adam
from .schedules import as_schedule

# Validation sets are evaluated this many rows at a time, which bounds the
# workspace of the forward pass.
_EVAL_CHUNK = 4096

# A compiled call of the epoch kernel lasts about this long at most (unless
# one step takes longer): Ctrl-C waits for the call to return.
# Epochs shorter than this run in one call; math.inf runs every epoch in one
# call.
_SLICE_SECONDS = 0.25
_GUESSED_FLOPS = 1e9  # per second, before the first call has been timed
# Training sets of at least this many rows draw each epoch's order while the epoch
# before it trains (_Trainer.draw_ahead): below it, starting and joining the thread
# costs more than the draw.
_AHEAD_ROWS = 32768


@dataclass(repr=False)
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
        loss without the L2 term), ``val_accuracy`` (classification losses
        only) and, with ``monitor="val_r2"``, ``val_r2``.
    n_epochs : int
        Epochs completed (and kept: see ``diverged`` in :func:`fit`).
    best_epoch : int or None
        Epoch (from 0) with the best monitored value (see :func:`fit`'s
        ``monitor``: by default the lowest ``val_loss`` with validation
        data, else ``loss``); None when no epoch completed or no monitored
        value was finite.
    status : str
        ``completed``, ``early_stopped``, ``callback_stopped``,
        ``interrupted``, ``diverged`` or, on the result attached to a
        callback's exception, ``callback_failed``.
    message : str
    opt_state : OptState
        The optimizer state that goes with ``params``.
    """

    params: np.ndarray
    history: dict
    n_epochs: int
    best_epoch: object
    status: str
    message: str
    opt_state: object = field(repr=False)

    def __repr__(self):
        p = self.params
        params = (f"<ndarray shape={p.shape} dtype={p.dtype}>" if isinstance(p, np.ndarray)
                  else repr(p))
        last = {key: float(f"{values[-1]:.6g}") for key, values in self.history.items()
                if values}
        return (f"FitResult(status={self.status!r}, n_epochs={self.n_epochs}, "
                f"best_epoch={self.best_epoch}, params={params}, last={last}, "
                f"message={self.message!r})")


@dataclass(frozen=True)
class ReduceOnPlateau:
    """Multiply the learning rate by ``factor`` when the monitored quantity stalls.

    After more than ``patience`` epochs without the monitored quantity (see
    :func:`fit`'s ``monitor``) improving on its best by more than
    ``threshold``, the rate is scaled by ``factor``, down to ``min_scale``
    times the schedule's rate.  With ``threshold_mode="rel"`` (PyTorch's
    ReduceLROnPlateau without cooldown) the threshold is relative to the best
    and the best moves only on such an improvement; with ``"abs"``
    (scikit-learn's rule) the threshold is absolute and any better value
    becomes the best, as in :func:`fit`'s early stopping.  With ``stop_lr > 0``, a reduction that falls due while
    the rate is at or below ``stop_lr`` ends training instead (status
    ``"early_stopped"``): scikit-learn's ``learning_rate="adaptive"`` is
    ``reduce_on_plateau(0.2, n_iter_no_change, tol, threshold_mode="abs",
    stop_lr=1e-6)``.

    Parameters
    ----------
    factor : float in (0, 1), default 0.1
        What each reduction multiplies the rate by.
    patience : int >= 0, default 10
        Epochs without improvement a reduction waits for (it comes after
        more than ``patience``).
    threshold : float >= 0, default 1e-4
        How much better than the best a value must be to count as an
        improvement.
    min_scale : float in [0, 1], default 0.0
        The smallest scale of the schedule's rate.
    threshold_mode : {"rel", "abs"}, default "rel"
        Whether ``threshold`` is relative to the best value or absolute.
    stop_lr : float >= 0, default 0.0
        A reduction due at or below this rate stops the fit instead.
    """

    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    min_scale: float = 0.0
    threshold_mode: str = "rel"
    stop_lr: float = 0.0

    def __post_init__(self):
        _validate.real_in(self.factor, "factor", 0.0, 1.0, low_open=True, high_open=True)
        _validate.nonnegative_int(self.patience, "patience")
        _validate.nonnegative_float(self.threshold, "threshold")
        _validate.real_in(self.min_scale, "min_scale", 0.0, 1.0)
        if self.threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got "
                             f"{self.threshold_mode!r}")
        _validate.nonnegative_float(self.stop_lr, "stop_lr")


def reduce_on_plateau(factor: float = 0.1, patience: int = 10, threshold: float = 1e-4,
                      min_scale: float = 0.0, threshold_mode: str = "rel",
                      stop_lr: float = 0.0) -> ReduceOnPlateau:
    """A :class:`ReduceOnPlateau` for ``fit(..., lr_plateau=...)``.

    Parameters
    ----------
    factor : float in (0, 1), default 0.1
    patience : int >= 0, default 10
    threshold : float >= 0, default 1e-4
    min_scale : float in [0, 1], default 0.0
    threshold_mode : {"rel", "abs"}, default "rel"
    stop_lr : float >= 0, default 0.0
        Each as :class:`ReduceOnPlateau` describes it.

    Returns
    -------
    ReduceOnPlateau
    """
    return ReduceOnPlateau(factor, patience, threshold, min_scale, threshold_mode, stop_lr)


# What fit can monitor, whether larger is better, and what it needs.
MONITORS = {"loss": False, "val_loss": False, "val_accuracy": True, "val_r2": True}


def _check_monitor(monitor, model, has_validation):
    """The monitored history key (``None``: ``val_loss`` with validation, else ``loss``)."""
    if monitor is None:
        return "val_loss" if has_validation else "loss"
    if monitor not in MONITORS:
        raise ValueError(f"monitor must be one of {', '.join(map(repr, MONITORS))}, "
                         f"got {monitor!r}")
    if monitor != "loss" and not has_validation:
        raise ValueError(f"monitor={monitor!r} needs validation data: pass validation_data "
                         f"or validation_fraction")
    classifier = model.loss_code in codes.LOGIT_LOSSES
    if monitor == "val_accuracy" and not classifier:
        raise ValueError("monitor='val_accuracy' needs a classification loss "
                         "(cross_entropy or binary_cross_entropy)")
    if monitor == "val_r2" and classifier:
        raise ValueError("monitor='val_r2' needs a regression loss (mse, mae or huber)")
    return monitor


class _Tracker:
    """The best value of a monitored quantity and the epochs since it last improved.

    An epoch improves when its value beats the best so far by more than
    ``delta`` (absolute, or relative to the best with ``relative``); NaN and
    Inf never do.  With ``best_moves_alone`` (early stopping, as
    scikit-learn's ``tol``), any better value becomes the best, improving or
    not; otherwise (the plateau, as PyTorch) only improving values do.
    """

    def __init__(self, maximize, delta, relative=False, best_moves_alone=True):
        self.sign = -1.0 if maximize else 1.0  # values are compared as sign * value
        self.delta, self.relative, self.best_moves_alone = delta, relative, best_moves_alone
        self.best = np.inf
        self.waited = 0

    def update(self, value):
        """Count one epoch of ``value``; True when it is the new best."""
        v = self.sign * value
        if not np.isfinite(v):
            improved = False
        elif self.best == np.inf:  # the first finite value
            improved = True
        else:
            improved = v < self.best - (self.delta * abs(self.best) if self.relative
                                        else self.delta)
        self.waited = 0 if improved else self.waited + 1
        if improved or (self.best_moves_alone and v < self.best):
            self.best = v
            return True
        return False

    def best_epoch(self, values):
        """Index of the first best finite value of ``values``, or None."""
        return _best_epoch([self.sign * v for v in values])


class _EarlyStopping:
    """fit's early stopping: the best epoch of the monitored value, and when to stop.

    ``patience`` epochs without an improvement by more than ``min_delta``
    stop the run (None: never); the best epoch's ``(epochs completed,
    parameters, optimizer state)`` is kept for ``restore_best``.
    """

    def __init__(self, maximize, min_delta, patience):
        self.tracker = _Tracker(maximize, min_delta)
        self.patience = patience
        self.best_epoch = None  # index of the best epoch so far, or None
        self.best = None  # what fit keeps of it, or None

    def update(self, value, epoch, kept):
        """Count epoch ``epoch`` with its ``value`` and what fit keeps of it (``kept``)."""
        if self.tracker.update(value):
            self.best_epoch, self.best = epoch, kept

    @property
    def stalled(self):
        """Whether ``patience`` epochs have passed without an improvement."""
        return self.patience is not None and self.tracker.waited >= self.patience

    def recount(self, values):
        """The best epoch among ``values`` (a history cut short by a divergence)."""
        self.best_epoch = self.tracker.best_epoch(values)


class _PlateauSchedule:
    """The learning-rate scale of a :class:`ReduceOnPlateau` schedule (1 without one).

    The monitored value stalls when it does not beat its best by more than the
    threshold (relative, or absolute with ``threshold_mode="abs"``) for more
    than ``patience`` epochs; the scale is then multiplied by ``factor``, down
    to ``min_scale``, and the wait starts again.
    """

    def __init__(self, plateau, maximize):
        self.plateau = plateau
        self.scale = 1.0
        if plateau is not None:
            absolute = plateau.threshold_mode == "abs"
            self.stall = _Tracker(maximize, plateau.threshold, not absolute,
                                  best_moves_alone=absolute)

    def update(self, value, lr):
        """Count one epoch of ``value``, trained at rate ``lr``; True: stop (``stop_lr``).

        A reduction that falls due while ``lr`` is at or below ``stop_lr``
        asks to stop; the scale is reduced either way.
        """
        if self.plateau is None:
            return False
        self.stall.update(value)
        if self.stall.waited <= self.plateau.patience:
            return False
        self.scale = max(self.scale * self.plateau.factor, self.plateau.min_scale)
        self.stall.waited = 0
        return lr <= self.plateau.stop_lr


def _r2_score(Y, P, weights):
    """scikit-learn's ``r2_score`` (uniform average over outputs) of predictions ``P``."""
    w = weights[:, None] if weights.shape[0] else np.ones((Y.shape[0], 1))
    mean = (w * Y).sum(axis=0) / w.sum()
    residual = (w * (Y - P) ** 2).sum(axis=0)
    total = (w * (Y - mean) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(total > 0, 1 - residual / np.where(total > 0, total, 1),
                          np.where(residual == 0, 1.0, 0.0))
    return float(scores.mean())


class _Data:
    """A validated data set in kernel form (params dtype, C-contiguous).

    ``first_row``: the data are rows of a larger set from that row on (a
    chunk of a Dask array, see :mod:`gdcore.dask`); errors name its rows.
    """

    def __init__(self, model, params, X, y, sample_weight, what, first_row=0):
        try:
            _, self.X, self.Y, self.labels, self.weights = prepare_batch(
                model, params, X, y, sample_weight)
            # The whole data set is scanned once here, not per batch.
            status, index = kernel(checks.scan_inputs_kernel, 0, self.X)(
                params[:0], self.arrays, model.loss_code, model.n_outputs)
            _validate.raise_for_status(status, index, model, *self.arrays, first_row)
        except (TypeError, ValueError) as exc:
            if not what:
                raise
            raise type(exc)(f"{what}: {exc}") from None

    @property
    def n(self):
        return self.X.shape[0]

    @property
    def arrays(self):
        """``(X, Y, labels, weights)``, as the kernels take a data set."""
        return self.X, self.Y, self.labels, self.weights

    def subset(self, rows):
        new = object.__new__(_Data)
        new.X = sample_rows(self.X, rows)
        new.Y = np.ascontiguousarray(self.Y[rows]) if self.Y.shape[0] else self.Y
        new.labels = np.ascontiguousarray(self.labels[rows]) if self.labels.shape[0] \
            else self.labels
        new.weights = np.ascontiguousarray(self.weights[rows]) if self.weights.shape[0] \
            else self.weights
        return new


def _split(model, params, train, validation_data, validation_fraction, split_rng):
    """Training and validation sets (validation may be None); ``split_rng()`` makes the generator."""
    if validation_data is not None and validation_fraction:
        raise ValueError("give validation_data or validation_fraction, not both")
    if validation_data is not None:
        Xv, yv, wv = _validate.validation_split(validation_data)
        return train, _Data(model, params, Xv, yv, wv, "validation_data")
    if not validation_fraction:
        return train, None
    n_val = int(round(validation_fraction * train.n))
    if n_val < 1 or n_val >= train.n:
        raise ValueError(f"validation_fraction={validation_fraction} leaves {n_val} of "
                         f"{train.n} samples for validation; need at least 1 and at most "
                         f"{train.n - 1}")
    rows = split_rng().permutation(train.n)
    return train.subset(np.sort(rows[n_val:])), train.subset(np.sort(rows[:n_val]))


def _random_sources(seed):
    """Makers of the generators of the validation split and of the per-epoch shuffles.

    An int or SeedSequence seeds two independent streams, so the split does
    not depend on the shuffles: an int ``s`` gives ``default_rng([s, 1])``
    and ``default_rng(s)``, and ``SeedSequence(s)`` the same.  A Generator,
    BitGenerator or None gives one generator, used (and so advanced) for the
    split first, then for the shuffles.  The makers are called only for what
    a fit uses.
    """
    if seed is None or isinstance(seed, (np.random.Generator, np.random.BitGenerator)):
        rng = np.random.default_rng(seed)
        return (lambda: rng), (lambda: rng)
    if isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_)):
        seed = _validate.nonnegative_int(seed, "seed")
        return (lambda: np.random.default_rng([seed, 1])), lambda: np.random.default_rng(seed)
    if not isinstance(seed, np.random.SeedSequence):
        try:  # a non-empty sequence of ints >= 0, as np.random.default_rng takes
            if isinstance(seed, (str, bytes, dict)):
                raise TypeError
            values = list(seed)
            if not values or not all(isinstance(v, numbers.Integral)
                                     and not isinstance(v, (bool, np.bool_)) for v in values):
                raise TypeError
            seed = np.random.SeedSequence([_validate.nonnegative_int(v, "seed")
                                           for v in values])
        except (TypeError, ValueError, OverflowError):
            raise TypeError(f"seed must be None, an integer >= 0, a sequence of them, a "
                            f"numpy SeedSequence, Generator or BitGenerator, got "
                            f"{seed!r}") from None

    def split():
        entropy = seed.entropy
        entropy = list(entropy) if isinstance(entropy, (list, tuple, np.ndarray)) else [entropy]
        return np.random.default_rng(np.random.SeedSequence(
            entropy + [1], spawn_key=seed.spawn_key, pool_size=seed.pool_size))

    return split, (lambda: np.random.default_rng(seed))


_MASK64 = (1 << 64) - 1


def _permutation(rng, n):
    """``rng.permutation(n)``: the same order and the same generator state afterwards.

    A PCG64 generator (``default_rng``'s) is run by the compiled shuffle
    (:func:`gdcore.kernels.shuffle.pcg64_shuffle`, about 1.6x faster; compiled
    ahead of time where the kernels are); anything else by NumPy.  Either
    releases the GIL while it shuffles.
    """
    bits = rng.bit_generator
    if type(bits) is not np.random.PCG64 or n > 2 ** 32:
        return rng.permutation(n)
    order = np.arange(n, dtype=np.int64)
    with bits.lock:  # as NumPy's own draws take it
        st = bits.state
        pcg = st["state"]
        hi, lo, has_uint32, uinteger = shuffle_kernel[0](
            order, np.uint64(pcg["state"] >> 64), np.uint64(pcg["state"] & _MASK64),
            np.uint64(pcg["inc"] >> 64), np.uint64(pcg["inc"] & _MASK64),
            bool(st["has_uint32"]), np.uint64(st["uinteger"]))
        pcg["state"] = (int(hi) << 64) | int(lo)
        st["has_uint32"], st["uinteger"] = int(has_uint32), int(uinteger)
        bits.state = st
    return order


def _optimizer_named(name):
    """The optimizer ``gd.<name>()`` with its default hyperparameters."""
    factory = optim.RULES.get(name.lower())
    if factory is None:
        raise ValueError(f"unknown optimizer {name!r}; expected one of: "
                         f"{', '.join(sorted(optim.RULES))} (or an optimizer object such as "
                         f"gd.adam(1e-3))")
    try:
        return factory()
    except TypeError:
        raise ValueError(f"optimizer={name!r} has no default learning rate: pass "
                         f"gd.{name.lower()}(learning_rate) instead") from None


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


def _check_options(epochs, batch_size, n, shuffle, early_stopping, callbacks, progress,
                   lr_plateau, optimizer
                   ) -> tuple[Optimizer, int, int, bool, int | None, tuple, bool | None]:
    if isinstance(optimizer, str):
        optimizer = _optimizer_named(optimizer)
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a gdcore optimizer such as gd.adam() or its "
                        f"name, got {optimizer!r}")
    epochs = _validate.positive_int(epochs, "epochs")
    batch_size = n if batch_size is None else min(
        _validate.positive_int(batch_size, "batch_size"), n)
    shuffle = _validate.flag(shuffle, "shuffle")
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
    return optimizer, epochs, batch_size, shuffle, early_stopping, callbacks, progress


def fit(model: Model, params: ArrayLike, X: Features, y: ArrayLike,
        optimizer: Optimizer | str = adam(), epochs: int = 10, batch_size: int | None = 32,
        shuffle: bool = True, seed: Seed = 0, l2: float = 0.0,
        sample_weight: ArrayLike | None = None,
        validation_data: tuple[Features, ArrayLike] | None = None,
        validation_fraction: float = 0.0, early_stopping: int | None = None,
        callbacks: Callback | Sequence[Callback] = (), progress: bool | None = None,
        lr_plateau: ReduceOnPlateau | None = None, threads: Threads = "auto", *,
        opt_state: OptState | None = None, monitor: str | None = None,
        min_delta: float = 0.0, restore_best: bool | None = None,
        l2_per_sample: bool = False) -> FitResult:
    """Train ``model`` by (mini-batch, stochastic or full-batch) gradient descent.

    Parameters
    ----------
    model : Model
    params : array-like of shape (n_params,)
        Initial parameters (float32 or float64: the compute dtype); never modified.
    X : array-like or scipy sparse matrix of shape (n_samples, n_inputs)
        A sparse matrix is read as CSR rows (never densified; see
        :mod:`gdcore.kernels.sparse`).
    y : array-like
        Targets as for :func:`gdcore.value_and_grad`.
    optimizer : Optimizer or str, default ``gd.adam()``
        An optimizer object, or the name of one (``"adam"``, ``"rmsprop"``,
        ...) for its default hyperparameters; ``"sgd"`` has no default
        learning rate, so it needs ``gd.sgd(learning_rate)``.
    epochs : int, default 10
    batch_size : int or None, default 32
        ``None`` (or >= n_samples) is full-batch gradient descent, ``1``
        stochastic gradient descent; the last partial batch is used.
    shuffle : bool, default True
        Visit the samples in a new random order each epoch; full batches
        are never shuffled.
    seed : None, int, sequence of ints, SeedSequence, Generator or BitGenerator, default 0
        What ``np.random.default_rng`` accepts; it draws the shuffles and
        the ``validation_fraction`` split.  An int, a sequence of ints or a
        SeedSequence gives
        bitwise reproducible results.  A Generator (or BitGenerator) is drawn
        from in place, not copied: fit advances it, as :func:`gdcore.init`
        does, so results repeat only from the same generator state.  None
        draws fresh entropy.
    l2 : float, default 0
        ``0.5 * l2 * sum(W**2)`` added to every batch loss (divided by the
        batch's total sample weight with ``l2_per_sample``).
    sample_weight : array-like of shape (n_samples,), optional
        Each batch loss is the weighted mean over its samples; a batch
        whose weights are all zero is skipped.
    validation_data : tuple, optional
        ``(X_val, y_val)`` or ``(X_val, y_val, sample_weight_val)``.
    validation_fraction : float, default 0
        Hold out this fraction of the training samples (a seeded random
        split) as validation data instead.
    early_stopping : int, optional
        Stop after this many epochs in a row without improvement of the
        monitored quantity (see ``monitor`` and ``min_delta``) and return the
        best epoch's parameters and optimizer state (see ``restore_best``).
        A NaN or Inf monitored value is never an improvement; when no epoch
        had a finite one, the last epoch's parameters are returned.
    callbacks : callable or sequence of callables
        Called as ``cb(epoch, logs)`` after every epoch (epoch from 0; logs
        holds that epoch's history entries, ``epoch_time`` in seconds and
        ``params``, a copy).  ``StopIteration`` stops training after that
        epoch; ``KeyboardInterrupt`` too, as an interruption.  Any other
        exception propagates out of fit, with the result so far (status
        ``"callback_failed"``, the parameters of the epoch just completed)
        as its ``fit_result`` attribute, and a note saying so.
    progress : bool or None
        A tqdm progress bar per epoch (loss, val_loss, samples/s); ``None``
        shows it only when stderr is a terminal and tqdm is installed.
    lr_plateau : ReduceOnPlateau, optional
        Scale the learning rate down when the monitored loss stalls.
    threads : "auto", int or None, default "auto"
        BLAS threads of the matrix products while fit runs (see
        :mod:`gdcore._blas_threads`): ``"auto"`` runs products of fewer than
        2**24 multiply-adds (batch rows x the largest layer's weights) on one
        thread, the others as the BLAS is set; an int sets that many; None
        leaves the BLAS as it is.  Models of 2**17 parameters or more also
        run the optimizer step on Numba's threads where no BLAS thread spins
        beside them (the BLAS held at one thread, or MKL sharing Numba's
        OpenMP pool: :func:`gdcore._blas_threads.update_spans`); the step is
        bitwise that of one thread.  Results are bitwise reproducible for the
        same seed, data, BLAS and thread count.  With NumPy's OpenBLAS the
        count is process-wide: while another call holds one (a fit in another
        thread, or the fit whose callback makes this call), this call runs
        with that count; with MKL each thread holds its own.

    opt_state : OptState, optional
        Resume from this state (``FitResult.opt_state`` of an earlier fit,
        with that fit's ``params``): the optimizer's moments and step count
        (hence its schedule) continue, and so do the shuffles, from the
        generator state the state carries, so that ``fit`` for ``a`` epochs
        and then ``b`` more from its result is bitwise the fit of ``a + b``
        epochs (same data, seed and settings; early stopping's and
        ``lr_plateau``'s counters start afresh).  By default
        ``optimizer.init(params)``.  Never modified.
    monitor : str, optional
        What early stopping, ``lr_plateau``, ``best_epoch`` and
        ``restore_best`` follow: ``"loss"`` (the training loss),
        ``"val_loss"``, ``"val_accuracy"`` (classification losses) or
        ``"val_r2"`` (regression losses: scikit-learn's ``r2_score``, uniform
        over the outputs, added to ``history``); the last three need
        validation data, and larger is better for the last two.  By default
        ``"val_loss"`` with validation data, else ``"loss"``.
    min_delta : float, default 0
        An epoch improves when the monitored value beats the best so far by
        more than ``min_delta``; a better value becomes the best either way
        (scikit-learn's ``tol`` with ``n_iter_no_change``, which is
        ``early_stopping=n_iter_no_change + 1``).
    restore_best : bool, optional
        Which parameters an early stop returns: by default (None) and with
        True the best epoch's; with False the last epoch's.  True also
        returns the best epoch's when all epochs ran.
    l2_per_sample : bool, default False
        Divide ``l2`` by each batch's total sample weight (its number of
        samples without ``sample_weight``): scikit-learn's MLP scales its
        ``alpha`` so.

    Returns
    -------
    FitResult
        ``status`` says how training ended and which parameters
        ``params`` holds; ``opt_state`` always goes with them:

        - ``"completed"``: after the last epoch.
        - ``"early_stopped"``: of ``best_epoch``; ``n_epochs`` and
          ``history`` cover every epoch run.
        - ``"callback_stopped"``: after the epoch whose callback stopped.
        - ``"interrupted"``: Ctrl-C takes effect within about 0.25 s (at
          the next step boundary when one step takes longer), and returns
          the parameters after the last completed step, which may lie inside
          an unfinished epoch: ``n_epochs`` and ``history`` count completed
          epochs, and the message says how many batches of the next one
          ran.  This holds when fit runs in the main thread and SIGINT has
          Python's default handler (as in a terminal or Jupyter): while it
          trains, fit turns Ctrl-C into a request that it checks between
          calls (a validation pass is one call: a Ctrl-C during it takes
          effect when it ends, and keeps its epoch), and it restores the
          handler before it returns.  Otherwise, and while Numba compiles
          a kernel or a callback runs, Ctrl-C raises ``KeyboardInterrupt``
          as usual; fit catches it, as one raised by a callback, and
          returns the state after the last completed epoch.
        - ``"diverged"``: a NaN or Inf loss, gradient or new parameter
          stops training.  Returned is the state at the end of the last
          completed epoch whose parameters then took at least one finite
          step: the epoch before the failing one, or, when the failing
          epoch's first step failed, the epoch before that (its parameters
          are the ones that failed; with full batches, their loss is the
          NaN or Inf).  ``n_epochs`` and ``history`` end at that epoch, and
          the message names the failing epoch, step and learning rate.
          Good means finite here, not small: a loss that grows while it
          stays finite is not detected (see ``history``; ``early_stopping``
          keeps the best epoch).
    """
    require_model(model)
    params = _validate.params_array(model, params)
    train = _Data(model, params, X, y, sample_weight, "")
    message = _validate.nonfinite_params_message(params)
    if message:
        raise ValueError(message)
    l2 = _validate.nonnegative_float(l2, "l2")
    threads = _blas_threads.check_threads(threads)
    validation_fraction = _validate.real_in(validation_fraction, "validation_fraction",
                                            0.0, 1.0, high_open=True)
    optimizer, epochs, batch_size, shuffle, early_stopping, callbacks, progress = \
        _check_options(epochs, batch_size, train.n, shuffle, early_stopping, callbacks,
                       progress, lr_plateau, optimizer)
    min_delta = _validate.nonnegative_float(min_delta, "min_delta")
    l2_per_sample = _validate.flag(l2_per_sample, "l2_per_sample")
    if restore_best is not None:
        restore_best = _validate.flag(restore_best, "restore_best")
    monitor = _check_monitor(monitor, model,
                             validation_data is not None or bool(validation_fraction))
    if opt_state is None:
        opt_state = optimizer.init(params)
    else:
        optimizer._check(params, opt_state, params, needs_writeable=False)
        opt_state = opt_state.copy()
    split_rng, shuffle_rng = _random_sources(seed)
    train, val = _split(model, params, train, validation_data, validation_fraction, split_rng)
    for data, what in ((train, "the training samples"), (val, "the validation samples")):
        if data is not None and data.weights.shape[0] and not data.weights.any():
            raise ValueError(f"sample_weight is zero for all of {what}"
                             + (" left by validation_fraction" if validation_fraction else ""))
    batch_size = min(batch_size, train.n)
    # Full batches see every sample each step: their order changes nothing.
    shuffle = shuffle and batch_size < train.n
    rows = max(batch_size, min(val.n, _EVAL_CHUNK) if val is not None else 0)
    blas_count = _blas_threads.count_for_call(threads, model, rows)
    rng = None
    if shuffle:
        rng = shuffle_rng() if opt_state.shuffle is None else _resumed_rng(opt_state.shuffle)
    # Only a generator fit made itself draws an epoch's order ahead: a caller's
    # Generator or BitGenerator may also be drawn from by a callback, in between.
    own_rng = not isinstance(seed, (np.random.Generator, np.random.BitGenerator))
    trainer = _Trainer(model, params, train, val, optimizer, batch_size, shuffle, rng, l2,
                       l2_per_sample, opt_state, monitor, draw_ahead=own_rng,
                       update_spans=_blas_threads.update_spans(model.n_params, blas_count))
    with _blas_threads.blas_threads(blas_count):
        return trainer.run(epochs, early_stopping, min_delta, restore_best, callbacks,
                           _progress_bar(progress, epochs), lr_plateau)


def run_callbacks(callbacks, epoch, logs, seconds, done, failed, ctrl_c=NEVER):
    """Call every callback as ``cb(epoch, logs)``; False when one raised StopIteration.

    ``done`` is ``(n_epochs, params, state)`` after ``epoch``.  Any other
    exception propagates with ``failed(params, n_epochs, state, message)``
    (a ``"callback_failed"`` FitResult, made of copies) as its ``fit_result``
    attribute, and a note saying so.
    """
    cb_logs = dict(logs, epoch_time=seconds, params=done[1].copy())
    cb = None
    try:
        with ctrl_c.user_code():
            for cb in callbacks:
                cb(epoch, cb_logs)
    except StopIteration:
        return False
    except Exception as exc:
        n_epochs, params, state = done
        result = failed(params.copy(), n_epochs, state.copy(),
                        f"callback {cb!r} raised {type(exc).__name__} after epoch {epoch}: "
                        f"{exc}; returning the parameters of that epoch")
        try:
            exc.fit_result = result
        except (AttributeError, TypeError):  # an exception class with __slots__
            pass
        if hasattr(exc, "add_note"):
            exc.add_note(f"gdcore stopped training after epoch {epoch}; the exception's "
                         f"fit_result attribute holds the {n_epochs} trained epochs")
        raise
    return True


def _resumed_rng(state):
    """A Generator over a new bit generator in ``state`` (a ``bit_generator.state`` dict)."""
    try:
        bit_generator = getattr(np.random, state["bit_generator"])()
        bit_generator.state = state
    except (AttributeError, KeyError, TypeError, ValueError):
        raise ValueError(f"opt_state.shuffle must be the state of a NumPy bit generator, as "
                         f"fit leaves it, got {state!r}") from None
    return np.random.Generator(bit_generator)


_INTERRUPTED = -1  # epoch(): Ctrl-C between two slices of the epoch


def _best_epoch(values):
    """Index of the first lowest finite value, or None."""
    finite = [(v, i) for i, v in enumerate(values) if np.isfinite(v)]
    return min(finite)[1] if finite else None


def _state_name(n_epochs):
    if n_epochs == 0:
        return "the initial parameters and optimizer state"
    return f"the parameters and optimizer state at the end of epoch {n_epochs - 1}"


class _FasterOf:
    """Which of two ways of doing the same work runs faster now, by timing both.

    For choices whose results are bitwise the same (the optimizer step in
    one span or several), so the choice may follow the machine's load: on an
    idle machine two threads halve a large step, but with another process on
    the second core a threaded step waits for its time slice (1M float32
    Adam parameters: 2.6 ms on one thread, 7.7 ms on two).  Each way keeps
    the smoothed time of its runs; the slower one is tried again every
    :data:`PROBE_EVERY` steps.
    """

    PROBE_EVERY = 32
    SMOOTHING = 0.25  # weight of the newest time

    __slots__ = ("ways", "seconds", "calls")

    def __init__(self, first, second):
        self.ways = (first, second)
        self.seconds = [None, None]
        self.calls = 0

    def choose(self):
        self.calls += 1
        for i in (0, 1):
            if self.seconds[i] is None:
                return self.ways[i]
        faster = 0 if self.seconds[0] <= self.seconds[1] else 1
        return self.ways[1 - faster if self.calls % self.PROBE_EVERY == 0 else faster]

    def record(self, way, seconds):
        i = self.ways.index(way)
        old = self.seconds[i]
        self.seconds[i] = seconds if old is None else old + self.SMOOTHING * (seconds - old)


class _Trainer:
    """The state of one :func:`fit` call: buffers, history and bookkeeping."""

    def __init__(self, model, params, train, val, optimizer, batch_size, shuffle, rng, l2,
                 l2_per_sample, state, monitor, draw_ahead=False, update_spans=1):
        dtype = params.dtype
        # > 1: each step's update runs in up to that many spans on Numba's threads,
        # between compiled calls that return a batch's gradient
        # (_blas_threads.update_spans), as many as run faster (_FasterOf).
        self.update_spans = update_spans
        self.spans_chooser = _FasterOf(1, update_spans)
        self.model, self.train, self.val = model, train, val
        self.optimizer, self.batch_size, self.l2 = optimizer, batch_size, l2
        self.l2_per_sample, self.monitor = l2_per_sample, monitor
        self.schedule = as_schedule(optimizer.learning_rate)
        self.shuffle = shuffle and batch_size < train.n
        self.rng = rng  # the shuffles' Generator (None without shuffles)
        # The generator's state after the order of the last epoch run (see take_order).
        self.rng_state = rng.bit_generator.state if rng is not None else None
        self.ahead = None  # the thread drawing the next epoch's order, and its result
        # Whether epochs may draw the next one's order while they train (draw_ahead).
        self.may_draw_ahead = draw_ahead and self.shuffle and train.n >= _AHEAD_ROWS
        self.no_order = np.zeros(0, dtype=np.int64)
        self.params = params.copy()  # the caller's array is never touched
        self.spare = np.empty_like(self.params)
        self.state = state  # a copy: fit's caller never sees it change
        self.grad = np.empty_like(self.params)
        self.work = np.empty(batch_size * model.workspace_units, dtype=dtype)
        # A shuffled epoch gathers its rows a chunk of whole batches at a time.
        sparse = type(train.X) is SparseRows
        # A sparse X gathers its sample list (the stored rows), not its values.
        X_rows = train.X.rows if sparse else train.X
        used = [a for a in (X_rows, train.Y, train.labels, train.weights) if a.shape[0]]
        row_bytes = sum(a.itemsize * (a.shape[1] if a.ndim == 2 else 1) for a in used)
        rows = chunk_rows(batch_size, row_bytes, train.n) if self.shuffle else 0
        if rows and update_spans > 1:
            rows = batch_size  # one call per batch: a chunk of batches would be gathered again

        def buffer(a, shape):
            return np.empty(shape, dtype=a.dtype) if a.shape[0] and rows else a

        # The chunk buffers (Xb, Yb, Lb, Wb), as run_epoch takes them.
        self.chunk = (
            train.X._replace(rows=buffer(X_rows, (rows,))) if sparse
            else buffer(train.X, (rows, model.n_inputs)),
            buffer(train.Y, (rows, train.Y.shape[1])), buffer(train.labels, (rows,)),
            buffer(train.weights, (rows,)))
        self.n_batches = -(-train.n // batch_size)
        # Batches per compiled call (see resize; calls end on chunk boundaries
        # where they can).  Until a call has been timed: a guess from the
        # step's arithmetic (about 6 flops per parameter and sample) at a
        # rate of a slow, busy machine, which puts the epochs of small
        # networks in one call from the start.
        self.chunk_batches = rows // batch_size if rows else 1
        guess = _SLICE_SECONDS * _GUESSED_FLOPS / (6 * model.n_params * batch_size)
        self.slice = int(max(1, min(guess, self.n_batches)))
        if val is not None:
            chunk = min(val.n, _EVAL_CHUNK)
            self.eval_chunk = chunk
            self.eval_work = np.empty(chunk * model.forward_units, dtype=dtype)
            if monitor == "val_r2":
                self.val_out = np.empty((val.n, model.n_outputs), dtype=dtype)
        self.history = {"loss": [], "lr": []}
        if val is not None:
            self.history["val_loss"] = []
            if model.loss_code in codes.LOGIT_LOSSES:
                self.history["val_accuracy"] = []
            if monitor == "val_r2":
                self.history["val_r2"] = []

    # Compiled calls --------------------------------------------------------------------
    def validate(self, ctrl_c=NEVER):
        v, m = self.val, self.model
        return ctrl_c.compiled(kernel(evaluate_kernel, (m.loss_code, m.acts), v.X),
                               self.params, m.offsets, v.arrays, m.loss_code, self.eval_chunk,
                               self.eval_work, m.acts)

    def r2(self):
        """scikit-learn's R^2 of the current parameters on the validation set."""
        v, m = self.val, self.model
        predict = kernel(predict_kernel, m.kernel_key, v.X)
        dtype = self.params.dtype
        no_targets, no_weights = _validate.no_targets(m, dtype), _validate.no_weights(dtype)
        for start in range(0, v.n, self.eval_chunk):
            stop = min(start + self.eval_chunk, v.n)
            rows = (sample_rows(v.X, slice(start, stop)), no_targets, _validate.NO_LABELS,
                    no_weights)
            predict(self.params, m.offsets, rows, m.loss_code, self.eval_work,
                    self.val_out[start:stop])
        return _r2_score(v.Y, self.val_out, v.weights)

    def warm_up(self):
        """Compile (or load from the cache) the validation kernel, on no rows.

        This happens before Ctrl-C becomes a flag: compiling can take
        seconds, and a Ctrl-C then raises KeyboardInterrupt at once.
        """
        if self.val is not None:
            v, m = self.val, self.model
            kernel(evaluate_kernel, (m.loss_code, m.acts), v.X)(
                self.params, m.offsets, v.subset(slice(0, 0)).arrays, m.loss_code,
                self.eval_chunk, self.eval_work, m.acts)
        if self.update_spans > 1:  # a step on no parameters, on a copy of the step count
            opt, none = self.optimizer, self.params[:0]
            apply_update_threaded(opt.code, opt.hyper, 0.0, none, none, self.state.slots[:, :0],
                                  self.state.scalars.copy(), none, False, 1)

    def resize(self, seconds, batches):
        """Batches of the next call, from the time ``batches`` took in the last one.

        As many as last about ``_SLICE_SECONDS``, at least one and at most
        the epoch; growing at most 10-fold per call, so that one fast
        measurement cannot make a call long.
        """
        if _SLICE_SECONDS == np.inf:
            return
        want = _SLICE_SECONDS * batches / seconds if seconds > 0 else np.inf
        self.slice = max(1, int(min(want, 10 * self.slice, self.n_batches)))

    # Shuffles --------------------------------------------------------------------------
    # An epoch's order is drawn while the epoch before it trains: on a thread (the
    # draw, the compiled shuffle or NumPy's, and the epoch kernel release the GIL),
    # started when an epoch begins and another will follow.  The same orders come
    # from the same generator in the same sequence; only their timing changes.
    def take_order(self):
        """The order of the epoch about to run: the one drawn ahead, else drawn now."""
        if self.ahead is None:
            order = _permutation(self.rng, self.train.n)
        else:
            thread, box = self.ahead
            thread.join()
            self.ahead = None
            if isinstance(box[0], BaseException):
                raise box[0]
            order = box[0]
        self.rng_state = self.rng.bit_generator.state  # where a resumed fit draws next
        return order

    def draw_ahead(self):
        """Start drawing the next epoch's order (if allowed: ``may_draw_ahead``)."""
        if not self.may_draw_ahead:
            return
        box = [None]

        def draw():
            try:
                box[0] = _permutation(self.rng, self.train.n)
            except BaseException as exc:  # noqa: BLE001 - raised by take_order
                box[0] = exc

        thread = threading.Thread(target=draw, name="gdcore-shuffle", daemon=True)
        thread.start()
        self.ahead = (thread, box)

    def drop_ahead(self):
        """Wait for an order drawn ahead that no epoch will use, and undraw it.

        The generator (the caller's own, with ``seed=Generator``) ends where
        it would have without drawing ahead.
        """
        if self.ahead is not None:
            self.ahead[0].join()
            self.ahead = None
            self.rng.bit_generator.state = self.rng_state

    # One epoch -------------------------------------------------------------------------
    def epoch(self, lr_scale, ctrl_c=NEVER, more=False):
        """Run one epoch, in calls of ``self.slice`` batches, until done, failed or Ctrl-C.

        Parameters
        ----------
        lr_scale : float
        ctrl_c : gdcore._interrupt.CtrlC, optional
            Checked between calls; by default none is.
        more : bool, default False
            Another epoch follows: its order is drawn while this one trains
            (:meth:`draw_ahead`).

        Returns
        -------
        status : int
            Kernel status, or ``_INTERRUPTED`` when Ctrl-C stopped the epoch
            between two calls.
        batch : int
            Batches visited; on failure, the failing batch.
        lrs : ndarray
            Rates of the steps taken (and, on failure, of the failing step
            last): one per step taken, plus the failing one.
        loss : float
            Mean loss of the epoch's batches.
        """
        order = self.no_order
        if self.shuffle:
            order = self.take_order()
            if more:
                self.draw_ahead()
        step0 = self.state.step
        lrs = np.ascontiguousarray(
            self.schedule(np.arange(step0, step0 + self.n_batches)) * lr_scale, dtype=np.float64)
        opt, t, m, n_batches = self.optimizer, self.train, self.model, self.n_batches
        first, progress = 0, (0, 0.0, 0.0)  # (updates, loss_sum, weight_sum)
        penalty = (self.l2, self.l2_per_sample)
        rule = (opt.hyper, lrs, self.state.slots, self.state.scalars)
        while True:
            last = first + self.slice
            if last >= n_batches:
                last = n_batches
            elif last % self.chunk_batches < last - first:
                # The call spans a chunk boundary: it ends there, and the next
                # call starts on a chunk it does not have to gather again.
                last -= last % self.chunk_batches
            t0 = time.perf_counter()
            before = progress
            status, batch, progress, in_spare = ctrl_c.compiled(
                kernel(epoch_runner, (opt.code, m.loss_code, m.acts), t.X),
                self.params, self.spare, m.offsets, t.arrays, m.loss_code, penalty,
                (order, self.batch_size, first, last), opt.code, rule, self.work, self.grad,
                self.chunk, progress, m.acts, self.update_spans == 1)
            if in_spare:
                self.params, self.spare = self.spare, self.params
            if status == GRADIENT_READY:
                if self.threaded_step(lrs[progress[0]], ctrl_c):
                    progress = (progress[0] + 1,) + progress[1:]
                    status, batch = OK, batch + 1  # as the kernel returns: batches visited
                    last = batch
                else:
                    # The failed step's batch is not the epoch's: the progress before
                    # the call (a call without steps counts no update).
                    status, progress = STEP_NOT_FINITE, before
            seconds = time.perf_counter() - t0
            if self.slice < n_batches or seconds > _SLICE_SECONDS:
                self.resize(seconds, last - first)
            if status != OK or last == n_batches:
                break
            first = last
            if ctrl_c.pending:
                status = _INTERRUPTED
                break
        updates, loss_sum, weight_sum = progress
        mean = loss_sum / weight_sum if weight_sum > 0 else float("nan")
        failed = status != OK and status != _INTERRUPTED
        return status, batch, lrs[:updates + failed], mean

    def threaded_step(self, lr, ctrl_c):
        """The optimizer step of the gradient in ``self.grad`` on Numba's threads.

        Writes the new parameters to ``self.spare`` and swaps the two when
        the step is finite, as the compiled epoch does; returns whether it was.
        """
        opt = self.optimizer
        spans = self.spans_chooser.choose()
        args = (opt.code, opt.hyper, lr, self.params, self.grad, self.state.slots,
                self.state.scalars, self.spare, False)
        t0 = time.perf_counter()
        if spans == 1:  # the serial kernel (bitwise the same): no thread team to wake
            finite = ctrl_c.compiled(update_kernel[opt.code], *args)
        else:
            with optim._PARALLEL_REGION:
                finite = ctrl_c.compiled(apply_update_threaded, *args, spans)
        self.spans_chooser.record(spans, time.perf_counter() - t0)
        if finite:
            self.params, self.spare = self.spare, self.params
        return finite

    # The loop --------------------------------------------------------------------------
    def run(self, epochs, early_stopping, min_delta, restore_best, callbacks, bar, plateau):
        monitor = self.monitor
        maximize = MONITORS[monitor]
        # (epochs completed, parameters, optimizer state) at the end of the last
        # completed epoch, of the one before (where a divergence may go back to)
        # and of the best one; `keep` is what the result returns instead of
        # `done` (with the n_epochs to report).  Each is one tuple, replaced in
        # one assignment, so a KeyboardInterrupt never finds one half updated.
        done = before = (0, self.params.copy(), self.state.copy())
        keep = None  # what the result returns, when not `done`
        stopping = _EarlyStopping(maximize, min_delta, early_stopping)
        schedule = _PlateauSchedule(plateau, maximize)
        status, message = "completed", ""
        try:
            self.warm_up()
            with CtrlC() as ctrl_c:
                for epoch in range(epochs):
                    if ctrl_c.pending:
                        break
                    t0 = time.perf_counter()
                    code, batch, lrs, loss = self.epoch(schedule.scale, ctrl_c,
                                                        epoch + 1 < epochs)
                    if self.rng is not None:  # where a resumed fit draws its next order
                        self.state = self.state._replace(shuffle=self.rng_state)
                    if code == _INTERRUPTED:
                        status = "interrupted"
                        message = (f"interrupted in epoch {epoch} after {batch} of "
                                   f"{self.n_batches} batches ({len(lrs)} steps); returning "
                                   f"the parameters and optimizer state after that step "
                                   f"({epoch} epochs completed)")
                        keep = (epoch, self.params.copy(), self.state.copy())
                        break
                    if code != OK:
                        status = "diverged"
                        keep, message = self.diverged(code, epoch, batch, lrs, done, before)
                        self.truncate(keep[0])
                        stopping.recount(self.history[monitor])
                        break
                    logs = {"loss": loss, "lr": float(lrs[-1])}
                    if self.val is not None:
                        val_loss, val_acc = self.validate(ctrl_c)
                        logs["val_loss"] = val_loss
                        if "val_accuracy" in self.history:
                            logs["val_accuracy"] = val_acc
                        if "val_r2" in self.history:
                            logs["val_r2"] = self.r2()
                    for key in self.history:
                        self.history[key].append(logs[key])
                    before, done = done, (epoch + 1, self.params.copy(), self.state.copy())
                    stopping.update(logs[monitor], epoch, done)
                    stop_lr = schedule.update(logs[monitor], logs["lr"])
                    seconds = time.perf_counter() - t0
                    if bar is not None:
                        bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k != "lr"}
                                        | {"samples/s": f"{self.train.n / seconds:.3g}"})
                        bar.update(1)
                    if callbacks and not self.call_back(callbacks, epoch, logs, seconds, done,
                                                        stopping.best_epoch, ctrl_c):
                        status = "callback_stopped"
                        message = f"a callback raised StopIteration after epoch {epoch}"
                        break
                    stalled = stopping.stalled
                    if stalled or stop_lr:
                        status = "early_stopped"
                        by = f" by more than {min_delta:g}" if min_delta else ""
                        why = (f"{monitor} did not improve{by} for {early_stopping} epochs"
                               if stalled else
                               f"{monitor} stalled with the learning rate at "
                               f"{logs['lr']:.6g} <= stop_lr={plateau.stop_lr:g}")
                        if restore_best is False:
                            message = (f"{why}; returning the parameters of the last epoch, "
                                       f"{epoch}")
                        elif stopping.best is None:
                            message = (f"{monitor} was NaN or Inf in each of the "
                                       f"{epoch + 1} epochs; returning the parameters of "
                                       f"the last one, epoch {epoch}")
                        else:
                            message = (f"{why}; returning the parameters of epoch "
                                       f"{stopping.best_epoch}")
                            keep = (epoch + 1, stopping.best[1], stopping.best[2])
                        break
                if ctrl_c.pending and status == "completed":
                    status = "interrupted"
                    message = (f"interrupted after {done[0]} completed epochs; returning "
                               f"the parameters and optimizer state of the last one")
        except KeyboardInterrupt:
            status = "interrupted"
            message = (f"interrupted after {done[0]} completed epochs; returning the "
                       f"parameters of the last completed epoch")
            keep = None
            self.truncate(done[0])
        finally:
            if self.rng is not None:
                self.drop_ahead()
            if bar is not None:
                bar.close()
        best = stopping.best
        if status == "completed":
            message = f"completed {done[0]} epochs"
            if restore_best and best is not None and best is not done:
                keep = (done[0], best[1], best[2])
                message += (f"; returning the parameters of the best one, epoch "
                            f"{stopping.best_epoch}")
        n_epochs, params, state = keep or done
        return FitResult(params, self.history, n_epochs, stopping.best_epoch, status, message,
                         state)

    def truncate(self, n_epochs):
        for values in self.history.values():
            del values[n_epochs:]

    def diverged(self, code, epoch, batch, lrs, done, before):
        """The state a divergence returns, and its message (see :func:`fit`).

        ``lrs`` holds the rates of the epoch's finite steps and of the failing one.
        """
        what = "loss" if code == LOSS_NOT_FINITE else "gradient or update"
        message = (f"the {what} became NaN or Inf in epoch {epoch}, step {batch} (batch "
                   f"{batch + 1} of {self.n_batches}, learning rate {lrs[-1]:.6g}); ")
        if len(lrs) > 1 or epoch == 0:  # a finite step was taken in this epoch
            return done, message + "returning " + _state_name(done[0])
        return before, message + (f"that was the first step from the parameters of epoch "
                                  f"{epoch - 1}, so returning {_state_name(before[0])} "
                                  f"(n_epochs and history end there)")

    def call_back(self, callbacks, epoch, logs, seconds, done, best_epoch, ctrl_c):
        """Call every callback after ``epoch``; False when one raised StopIteration.

        Ctrl-C raises KeyboardInterrupt inside a callback, as outside fit.  Any
        other exception propagates with the result so far attached.
        """
        def failed(params, n_epochs, state, message):
            return FitResult(params, {k: list(v) for k, v in self.history.items()}, n_epochs,
                             best_epoch, "callback_failed", message, state)

        return run_callbacks(callbacks, epoch, logs, seconds, done, failed, ctrl_c)
