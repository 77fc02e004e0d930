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

import numbers
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import _blas_threads, _validate, codes, optim
from ._interrupt import NEVER, CtrlC
from .functional import prepare_batch
from .kernels import checks
from .kernels.epoch import LOSS_NOT_FINITE, OK, epoch_runner, evaluate_kernel
from .kernels.gather import chunk_rows
from .model import require_model
from .optim import Optimizer, adam
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
        loss without the L2 term) and ``val_accuracy`` (classification
        losses only).
    n_epochs : int
        Epochs completed (and kept: see ``diverged`` in :func:`fit`).
    best_epoch : int or None
        Epoch (from 0) with the lowest monitored loss: ``val_loss`` with
        validation data, else ``loss``; None when no epoch completed or no
        monitored loss was finite.
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
            status, index = checks.scan_inputs_kernel[0](
                params[:0], self.X, self.Y, self.labels, self.weights, model.loss_code,
                model.n_outputs)
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


def _split(model, params, train, validation_data, validation_fraction, split_rng):
    """Training and validation sets (validation may be None); ``split_rng()`` makes the generator."""
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


def _optimizer_named(name):
    """The optimizer ``gd.<name>()`` with its default hyperparameters."""
    def makes_optimizer(factory):
        try:
            return isinstance(factory(), Optimizer)
        except TypeError:  # a learning rate without default (sgd)
            return isinstance(factory(1.0), Optimizer)

    names = sorted(n for n, f in optim.METHODS.items() if makes_optimizer(f))
    if name.lower() not in names:
        raise ValueError(f"unknown optimizer {name!r}; expected one of: {', '.join(names)} "
                         f"(or an optimizer object such as gd.adam(1e-3))")
    factory = optim.METHODS[name.lower()]
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
                   lr_plateau, optimizer):
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


def fit(model, params, X, y, optimizer=adam(), epochs=10, batch_size=32, shuffle=True, seed=0,
        l2=0.0, sample_weight=None, validation_data=None, validation_fraction=0.0,
        early_stopping=None, callbacks=(), progress=None, lr_plateau=None, threads="auto"):
    """Train ``model`` by (mini-batch, stochastic or full-batch) gradient descent.

    Parameters
    ----------
    model : Model
    params : array-like of shape (n_params,)
        Initial parameters (float32 or float64: the compute dtype); never modified.
    X : array-like of shape (n_samples, n_inputs)
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
        and return the best epoch's parameters and optimizer state.  A NaN
        or Inf monitored loss is never an improvement; when no epoch had a
        finite one, the last epoch's parameters are returned.
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
        leaves the BLAS as it is.  Results are bitwise reproducible for the
        same seed, data and thread count.  The count is process-wide: while
        another call holds one (a fit in another thread, or the fit whose
        callback makes this call), this call runs with that count.

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
    trainer = _Trainer(model, params, train, val, optimizer, batch_size, shuffle,
                       shuffle_rng() if shuffle else None, l2)
    with _blas_threads.blas_threads(blas_count):
        return trainer.run(epochs, early_stopping, callbacks, _progress_bar(progress, epochs),
                           lr_plateau)


_INTERRUPTED = -1  # epoch(): Ctrl-C between two slices of the epoch


def _best_epoch(values):
    """Index of the first lowest finite value, or None."""
    finite = [(v, i) for i, v in enumerate(values) if np.isfinite(v)]
    return min(finite)[1] if finite else None


def _state_name(n_epochs):
    if n_epochs == 0:
        return "the initial parameters and optimizer state"
    return f"the parameters and optimizer state at the end of epoch {n_epochs - 1}"


class _Trainer:
    """The state of one :func:`fit` call: buffers, history and bookkeeping."""

    def __init__(self, model, params, train, val, optimizer, batch_size, shuffle, rng, l2):
        dtype = params.dtype
        self.model, self.train, self.val = model, train, val
        self.optimizer, self.batch_size, self.l2 = optimizer, batch_size, l2
        self.schedule = as_schedule(optimizer.learning_rate)
        self.shuffle = shuffle and batch_size < train.n
        self.rng = rng  # the shuffles' Generator (None without shuffles)
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
        self.history = {"loss": [], "lr": []}
        if val is not None:
            self.history["val_loss"] = []
            if model.loss_code in codes.LOGIT_LOSSES:
                self.history["val_accuracy"] = []

    # Compiled calls --------------------------------------------------------------------
    def validate(self, ctrl_c=NEVER):
        v, m = self.val, self.model
        return ctrl_c.compiled(evaluate_kernel(m.loss_code, m.acts), self.params, m.offsets,
                               v.X, v.Y, v.labels, v.weights, m.loss_code, self.eval_chunk,
                               self.eval_work, m.acts)

    def warm_up(self):
        """Compile (or load from the cache) the validation kernel, on no rows.

        This happens before Ctrl-C becomes a flag: compiling can take
        seconds, and a Ctrl-C then raises KeyboardInterrupt at once.
        """
        if self.val is not None:
            v, m = self.val, self.model
            evaluate_kernel(m.loss_code, m.acts)(
                self.params, m.offsets, v.X[:0], v.Y[:0], v.labels[:0], v.weights[:0],
                m.loss_code, self.eval_chunk, self.eval_work, m.acts)

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

    # One epoch -------------------------------------------------------------------------
    def epoch(self, lr_scale, ctrl_c=NEVER):
        """Run one epoch, in calls of ``self.slice`` batches, until done, failed or Ctrl-C.

        Parameters
        ----------
        lr_scale : float
        ctrl_c : gdcore._interrupt.CtrlC, optional
            Checked between calls; by default none is.

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
        order = self.rng.permutation(self.train.n) if self.shuffle else self.no_order
        step0 = self.state.step
        lrs = np.ascontiguousarray(
            self.schedule(np.arange(step0, step0 + self.n_batches)) * lr_scale, dtype=np.float64)
        opt, t, m, n_batches = self.optimizer, self.train, self.model, self.n_batches
        first, updates, loss_sum, weight_sum = 0, 0, 0.0, 0.0
        while True:
            last = first + self.slice
            if last >= n_batches:
                last = n_batches
            elif last % self.chunk_batches < last - first:
                # The call spans a chunk boundary: it ends there, and the next
                # call starts on a chunk it does not have to gather again.
                last -= last % self.chunk_batches
            t0 = time.perf_counter()
            status, batch, updates, loss_sum, weight_sum, in_spare = ctrl_c.compiled(
                epoch_runner(opt.code, m.loss_code, m.acts),
                self.params, self.spare, m.offsets, t.X, t.Y, t.labels, t.weights, m.loss_code,
                self.l2, order, self.batch_size, first, last, opt.code, opt.hyper, lrs,
                updates, self.state.slots, self.state.scalars, self.work, self.grad, self.Xb,
                self.Yb, self.Lb, self.Wb, loss_sum, weight_sum, m.acts)
            seconds = time.perf_counter() - t0
            if in_spare:
                self.params, self.spare = self.spare, self.params
            if self.slice < n_batches or seconds > _SLICE_SECONDS:
                self.resize(seconds, last - first)
            if status != OK or last == n_batches:
                break
            first = last
            if ctrl_c.pending:
                status = _INTERRUPTED
                break
        mean = loss_sum / weight_sum if weight_sum > 0 else float("nan")
        failed = status != OK and status != _INTERRUPTED
        return status, batch, lrs[:updates + failed], mean

    # The loop --------------------------------------------------------------------------
    def run(self, epochs, early_stopping, callbacks, bar, plateau):
        monitor = "val_loss" if self.val is not None else "loss"
        # (epochs completed, parameters, optimizer state) at the end of the last
        # completed epoch, of the one before (where a divergence may go back to)
        # and of the best one; `keep` is what the result returns instead of
        # `done` (with the n_epochs to report).  Each is one tuple, replaced in
        # one assignment, so a KeyboardInterrupt never finds one half updated.
        done = before = (0, self.params.copy(), self.state.copy())
        keep = best = None  # what the result returns, when not `done`
        best_loss, best_epoch, waited = np.inf, None, 0
        plateau_best, plateau_wait, lr_scale = np.inf, 0, 1.0
        status, message = "completed", ""
        try:
            self.warm_up()
            with CtrlC() as ctrl_c:
                for epoch in range(epochs):
                    if ctrl_c.pending:
                        break
                    t0 = time.perf_counter()
                    code, batch, lrs, loss = self.epoch(lr_scale, ctrl_c)
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
                        best_epoch = _best_epoch(self.history[monitor])
                        break
                    logs = {"loss": loss, "lr": float(lrs[-1])}
                    if self.val is not None:
                        val_loss, val_acc = self.validate(ctrl_c)
                        logs["val_loss"] = val_loss
                        if "val_accuracy" in self.history:
                            logs["val_accuracy"] = val_acc
                    for key in self.history:
                        self.history[key].append(logs[key])
                    before, done = done, (epoch + 1, self.params.copy(), self.state.copy())
                    current = logs[monitor]
                    if current < best_loss:  # never NaN or Inf
                        best_loss, best_epoch, best, waited = current, epoch, done, 0
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
                    if callbacks and not self.call_back(callbacks, epoch, logs, seconds, done,
                                                        best_epoch, ctrl_c):
                        status = "callback_stopped"
                        message = f"a callback raised StopIteration after epoch {epoch}"
                        break
                    if early_stopping is not None and waited >= early_stopping:
                        status = "early_stopped"
                        if best is None:
                            message = (f"{monitor} was NaN or Inf in each of the "
                                       f"{epoch + 1} epochs; returning the parameters of "
                                       f"the last one, epoch {epoch}")
                        else:
                            message = (f"{monitor} did not improve for {early_stopping} "
                                       f"epochs; returning the parameters of epoch "
                                       f"{best_epoch}")
                            keep = (epoch + 1, best[1], best[2])
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
            if bar is not None:
                bar.close()
        if status == "completed":
            message = f"completed {done[0]} epochs"
        n_epochs, params, state = keep or done
        return FitResult(params, self.history, n_epochs, best_epoch, status, message, state)

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
            result = FitResult(params.copy(), {k: list(v) for k, v in self.history.items()},
                               n_epochs, best_epoch, "callback_failed",
                               f"callback {cb!r} raised {type(exc).__name__} after epoch "
                               f"{epoch}: {exc}; returning the parameters of that epoch",
                               state.copy())
            try:
                exc.fit_result = result
            except (AttributeError, TypeError):  # an exception class with __slots__
                pass
            if hasattr(exc, "add_note"):
                exc.add_note(f"gdcore.fit stopped after epoch {epoch}; the exception's "
                             f"fit_result attribute holds the {n_epochs} trained epochs")
            raise
        return True
