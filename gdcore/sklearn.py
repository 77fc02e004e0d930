"""scikit-learn estimators: :class:`MLPClassifier` and :class:`MLPRegressor`.

Drop-in replacements for ``sklearn.neural_network``'s estimators of the same
names (scikit-learn 1.9's contract): the same constructor parameters,
defaults and meanings, the same methods and fitted attributes, the same
training semantics, trained by gdcore's compiled kernels::

    from gdcore.sklearn import MLPClassifier      # instead of sklearn.neural_network
    clf = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,)))

Sparse ``X`` (CSR or CSC) is read as CSR rows: the first layer's products
run over the stored values (:mod:`gdcore.kernels.sparse`), nothing is
densified.  Those kernels are compiled by Numba on first use (the
extensions built ahead of time take dense ``X``), then cached on disk.

This module only translates: scikit-learn's objective and options into
:func:`gdcore.fit` (``sgd``, ``adam``) and :func:`gdcore.minimize`
(``lbfgs``) calls, labels into gdcore's targets, and results into
scikit-learn's attributes.  It holds no kernel code.

How scikit-learn's objective maps onto gdcore's
-------------------------------------------------
scikit-learn minimises, per batch, ``c * L + 0.5 * alpha * ||W||^2 / s``
where ``L`` is gdcore's mean loss of the batch and ``s`` the batch's total
sample weight (its size without weights), with

* ``c = 1`` for multiclass (softmax cross-entropy) and binary problems;
* ``c = n_outputs`` for multi-label problems (scikit-learn sums the binary
  log-losses over the labels; gdcore averages them);
* ``c = n_outputs / 2`` for regression (scikit-learn's half squared error,
  summed over the outputs; gdcore's mean squared error averages them).

That is ``c`` times gdcore's objective with ``l2 = alpha / c`` per unit of
weight (``fit(..., l2_per_sample=True)``), so the estimators train gdcore's
objective with the step sizes scaled to take scikit-learn's steps: SGD's
learning rate times ``c``, Adam's ``epsilon`` divided by ``c``, L-BFGS's
``gtol`` (``tol``) divided by ``c``; ``tol`` on the training loss becomes
``min_delta = tol / c``.  Reported losses (``loss_``, ``loss_curve_``,
``best_loss_``) are scikit-learn's, ``c`` times gdcore's, except that for
regression scikit-learn reports the half squared error averaged over the
outputs while its gradient (and ``c``) is of their sum: the reported loss
(and ``tol``'s test) is then half gdcore's, which is scikit-learn's exactly
for one output and, with several, exact in the data term and ``n_outputs``
times too small in the (usually tiny) L2 term.

Where gdcore differs, knowingly
-------------------------------
* Adam is PyTorch's (``eps`` added to the bias-corrected root); scikit-learn
  adds ``epsilon`` before the bias correction of the step size.  The two
  differ only while ``sqrt(v)`` is comparable to ``epsilon``.
* SGD momentum is PyTorch's form (the buffer holds gradients, not steps):
  the same steps under a constant learning rate; with ``invscaling`` or
  ``adaptive`` rates, scikit-learn's velocity keeps the earlier rates.
* Shuffles are drawn by NumPy's ``Generator`` seeded from ``random_state``,
  not by ``RandomState`` itself; the initial weights and the early-stopping
  split are drawn exactly as scikit-learn draws them, so they are the same.
* ``partial_fit`` continues the shuffles from call to call (scikit-learn
  reuses the first call's order); a ``warm_start`` fit starts its
  no-improvement count afresh.
* Early stopping on a multi-label problem scores the mean per-label
  accuracy; scikit-learn scores the subset accuracy (all labels right).
* An epoch improves on the best when better by more than ``tol``;
  scikit-learn also counts a tie at exactly ``tol`` (which matters with
  ``tol=0`` and validation accuracies that repeat).
* ``partial_fit`` with ``learning_rate="adaptive"`` does not carry the
  plateau's count or reduced rate from call to call; a ``warm_start`` fit
  with ``early_stopping`` compares against and restores the best epoch of
  that fit only; Ctrl-C (with ``early_stopping``) keeps the last good
  weights, not the best ones.
* The epoch loss (``loss_curve_``) weighs each batch's mean loss by the
  batch's total sample weight; scikit-learn weighs it by the batch's size
  (the same without ``sample_weight``).
* ``loss='poisson'`` of ``MLPRegressor`` is not available.
* A fit whose loss turns NaN or Inf keeps the last finite parameters and
  warns (``ConvergenceWarning``) instead of raising ``ValueError``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
import warnings

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from . import codes
from ._typing import Features, FloatArray
from .fit import fit as _fit_gd
from .fit import reduce_on_plateau
from .functional import predict as _predict_gd
from .functional import value_and_grad
from .minimize import minimize
from .model import mlp
from .optim import adam, sgd
from .schedules import Schedule

__all__ = ["MLPClassifier", "MLPRegressor"]

# scikit-learn's activation names, then gdcore's own (softmax is output only).
_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_ACTIVATIONS.update({name: name for name in codes.ACTIVATIONS if name != "softmax"})
_SOLVERS = ("lbfgs", "sgd", "adam")
_LEARNING_RATES = ("constant", "invscaling", "adaptive")
# scikit-learn's 'adaptive' rate stops when a reduction falls due at or below this.
_ADAPTIVE_STOP_LR = 1e-6
_ADAPTIVE_FACTOR = 0.2


class _EpochInverseScaling(Schedule):
    """scikit-learn's ``invscaling``: ``lr / (t + 1) ** power_t``, constant in an epoch.

    ``t`` is the estimator's ``t_`` when the epoch starts: ``seen`` samples
    before this call plus ``n_samples`` per epoch of it.  Steps count from
    ``first_step`` (the optimizer state's step when the call starts).  A fresh
    optimizer (``fresh``) runs its first epoch at ``lr``, as scikit-learn's
    new optimizer does whatever ``t_`` is.
    """

    def __init__(self, learning_rate, power_t, n_batches, n_samples, first_step, seen, fresh):
        self.learning_rate, self.power_t = learning_rate, power_t
        self.n_batches, self.n_samples = n_batches, n_samples
        self.first_step, self.seen, self.fresh = first_step, seen, fresh

    def _rate(self, t):
        epoch = np.floor((t - self.first_step) / self.n_batches)
        samples = self.seen + epoch * self.n_samples
        if self.fresh:
            samples = np.where(epoch == 0, 0.0, samples)
        return self.learning_rate / (samples + 1.0) ** self.power_t


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _require(ok, name, expected, value):
    if not ok:
        raise ValueError(f"The '{name}' parameter of {expected}; got {value!r} instead.")


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: parameters, training, attributes."""

    def __init__(self, hidden_layer_sizes: Sequence[int] | int = (100,), activation: str = "relu", *,
                 solver: str = "adam", alpha: float = 0.0001, batch_size: int | str = "auto",
                 learning_rate: str = "constant", learning_rate_init: float = 0.001,
                 power_t: float = 0.5, max_iter: int = 200, shuffle: bool = True,
                 random_state: int | np.random.RandomState | None = None, tol: float = 1e-4,
                 verbose: bool = False, warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: int = 10,
                 max_fun: int = 15000) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun

    # Parameters ---------------------------------------------------------------------
    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if not all(_is_int(s) for s in sizes):
            raise ValueError(f"The 'hidden_layer_sizes' parameter of {type(self).__name__} "
                             f"must be an int or a sequence of ints; got "
                             f"{self.hidden_layer_sizes!r} instead.")
        if any(s <= 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        return [int(s) for s in sizes]

    def _check_params(self):
        """Raise a ValueError naming the first parameter out of its range."""
        name = type(self).__name__

        def need(param, ok, what):
            _require(ok, param, f"{name} must be {what}", getattr(self, param))

        need("activation", isinstance(self.activation, str)
             and self.activation in _ACTIVATIONS, f"one of {sorted(_ACTIVATIONS)}")
        need("solver", self.solver in _SOLVERS, f"one of {list(_SOLVERS)}")
        need("alpha", _is_real(self.alpha) and self.alpha >= 0, "a float >= 0")
        need("batch_size", (isinstance(self.batch_size, str) and self.batch_size == "auto")
             or (_is_int(self.batch_size) and self.batch_size >= 1), "'auto' or an int >= 1")
        need("learning_rate", self.learning_rate in _LEARNING_RATES,
             f"one of {list(_LEARNING_RATES)}")
        need("learning_rate_init", _is_real(self.learning_rate_init)
             and self.learning_rate_init > 0, "a float > 0")
        need("power_t", _is_real(self.power_t) and self.power_t >= 0, "a float >= 0")
        need("max_iter", _is_int(self.max_iter) and self.max_iter >= 1, "an int >= 1")
        for flag in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
            need(flag, isinstance(getattr(self, flag), (bool, np.bool_)), "a bool")
        need("tol", _is_real(self.tol) and self.tol >= 0, "a float >= 0")
        need("verbose", isinstance(self.verbose, (bool, np.bool_, numbers.Integral)),
             "a bool or an int")
        need("momentum", _is_real(self.momentum) and 0 <= self.momentum <= 1,
             "a float in [0, 1]")
        need("validation_fraction", _is_real(self.validation_fraction)
             and 0 <= self.validation_fraction < 1, "a float in [0, 1)")
        need("beta_1", _is_real(self.beta_1) and 0 <= self.beta_1 < 1, "a float in [0, 1)")
        need("beta_2", _is_real(self.beta_2) and 0 <= self.beta_2 < 1, "a float in [0, 1)")
        need("epsilon", _is_real(self.epsilon) and self.epsilon > 0, "a float > 0")
        need("n_iter_no_change", (_is_int(self.n_iter_no_change) and self.n_iter_no_change >= 1)
             or self.n_iter_no_change == np.inf, "an int >= 1 or numpy.inf")
        need("max_fun", _is_int(self.max_fun) and self.max_fun >= 1, "an int >= 1")

    # Attributes that are views of the flat parameters ----------------------------------
    @property
    def coefs_(self):
        """list of ndarray of shape (n_in, n_out): the weights, views of ``params_``."""
        if "params_" not in self.__dict__:
            raise AttributeError("coefs_ exists once the estimator is fitted")
        return [W for W, _ in self.model_.unpack(self.params_)]

    @property
    def intercepts_(self):
        """list of ndarray of shape (n_out,): the biases, views of ``params_``."""
        if "params_" not in self.__dict__:
            raise AttributeError("intercepts_ exists once the estimator is fitted")
        return [b for _, b in self.model_.unpack(self.params_)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # Training ---------------------------------------------------------------------------
    def fit(self, X: Features, y: ArrayLike,
            sample_weight: ArrayLike | None = None) -> _BaseMLP:
        """Fit the network to ``X`` and ``y``, from scratch unless ``warm_start``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Sparse matrices are read row by row in CSR form, never densified.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels of any type or a multi-label indicator matrix
            (classifier); targets (regressor).
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight, incremental):
        self._check_params()
        hidden = self._hidden_sizes()
        first_pass = "params_" not in self.__dict__ or (not self.warm_start and not incremental)
        if self.early_stopping and incremental and self.solver != "lbfgs":
            raise ValueError("partial_fit does not support early_stopping=True")
        X, Y, labels = self._validate_input(X, y, incremental, reset=first_pass)
        n_samples = X.shape[0]
        sample_weight = _sample_weight(sample_weight, n_samples, X.dtype)
        n_outputs = self._n_outputs(Y, labels)
        rs = check_random_state(self.random_state)
        if first_pass:
            self._initialize(X.shape[1], hidden, n_outputs, X.dtype, rs)
        elif self.params_.dtype != X.dtype:
            # Training continues in the dtype it started in, as the fitted
            # coefficients are: X is converted (as gdcore converts inputs).
            X = X.astype(self.params_.dtype)
        if n_outputs != self.n_outputs_:
            raise ValueError(f"y has {n_outputs} outputs but the fitted network has "
                             f"{self.n_outputs_}; fit it again without warm_start")
        target = labels if labels is not None else Y
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, target, sample_weight)
        else:
            self._fit_stochastic(X, target, sample_weight, incremental, rs)
        return self

    def _initialize(self, n_features, hidden, n_outputs, dtype, rs):
        """The network and scikit-learn's Glorot-uniform start, drawn as scikit-learn draws it."""
        sizes = [n_features, *hidden, n_outputs]
        loss, output = self._loss_and_output(n_outputs)
        self.model_ = mlp(sizes, activation=_ACTIVATIONS[self.activation], output=output,
                          loss=loss)
        params = np.empty(self.model_.n_params, dtype=dtype)
        factor = 2.0 if self.activation == "logistic" else 6.0
        for (W, b), (fan_in, fan_out) in zip(self.model_.unpack(params),
                                             zip(sizes[:-1], sizes[1:])):
            bound = np.sqrt(factor / (fan_in + fan_out))
            W[...] = rs.uniform(-bound, bound, (fan_in, fan_out))
            b[...] = rs.uniform(-bound, bound, fan_out)
        self.params_ = params
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(sizes)
        self.out_activation_ = {"sigmoid": "logistic"}.get(output, output)
        self._opt_state = None
        for name in ("loss_curve_", "validation_scores_", "best_validation_score_",
                     "best_loss_", "loss_"):
            self.__dict__.pop(name, None)
        if self.solver != "lbfgs":
            self.loss_curve_ = []
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _scale(self):
        """``c``: scikit-learn's objective is ``c`` times gdcore's (module docstring)."""
        if is_classifier(self):
            return 1.0 if self.out_activation_ == "softmax" else float(self.n_outputs_)
        return self.n_outputs_ / 2.0

    def _report_scale(self):
        """What turns gdcore's losses into the ones scikit-learn reports (and tests ``tol`` on).

        ``c``, except for regression: scikit-learn reports half the squared
        error averaged over the outputs (its gradient is of the sum), so the
        data term is half gdcore's mean squared error (module docstring).
        """
        return self._scale() if is_classifier(self) else 0.5

    def _fit_lbfgs(self, X, target, sample_weight):
        c = self._scale()
        total_weight = X.shape[0] if sample_weight is None else float(sample_weight.sum())
        l2 = self.alpha / (c * total_weight)
        model, dtype = self.model_, self.params_.dtype

        def fun(p):
            loss, grad = value_and_grad(model, p.astype(dtype, copy=False), X, target, l2=l2,
                                        sample_weight=sample_weight)
            return loss, grad

        res = minimize(fun, self.params_, jac=True, method="lbfgs",
                       options={"maxiter": self.max_iter, "maxfun": self.max_fun,
                                "gtol": self.tol / c})
        if res.status != codes.SUCCESS:
            warnings.warn(f"lbfgs failed to converge after {res.nit} iteration(s) "
                          f"(status={res.status}): {res.message}\n\nIncrease the number of "
                          f"iterations to improve the convergence (max_iter={self.max_iter}).",
                          ConvergenceWarning, stacklevel=3)
        self.params_ = np.asarray(res.x, dtype=dtype)
        self.n_iter_ = min(int(res.nit), self.max_iter)
        self.loss_ = self._report_scale() * float(res.fun)

    def _fit_stochastic(self, X, target, sample_weight, incremental, rs):
        c = self._scale()
        validation = None
        X_train, y_train, w_train = X, target, sample_weight
        if self.early_stopping:
            # scikit-learn's split, from the same RandomState after the start was
            # drawn: stratified for single-output classification only.
            stratify = target if is_classifier(self) and self.n_outputs_ == 1 else None
            arrays = [X, target] + ([] if sample_weight is None else [sample_weight])
            parts = train_test_split(*arrays, random_state=rs,
                                     test_size=self.validation_fraction, stratify=stratify)
            X_train, X_val, y_train, y_val = parts[:4]
            w_train, w_val = (parts[4], parts[5]) if sample_weight is not None else (None, None)
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            validation = (X_val, y_val) if w_val is None else (X_val, y_val, w_val)
        n_train = X_train.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n_train)
        else:
            if self.batch_size > n_train:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It "
                              "is going to be clipped", stacklevel=3)
            batch_size = min(self.batch_size, n_train)
        n_batches = -(-n_train // batch_size)
        stalls = None if self.n_iter_no_change == np.inf else int(self.n_iter_no_change)
        if self.early_stopping:
            monitor = "val_accuracy" if is_classifier(self) else "val_r2"
            min_delta = self.tol
        else:
            monitor, min_delta = "loss", self.tol / self._report_scale()
        plateau = None
        opt_state = self._opt_state if incremental else None
        optimizer = self._optimizer(c, n_batches, n_train, opt_state)
        if opt_state is not None and (
                opt_state.scalars[codes.S_OPTIMIZER] != optimizer.code
                or opt_state.slots.shape != (optimizer.n_slots, self.params_.shape[0])):
            # set_params changed the solver or its momentum between partial fits:
            # the new optimizer starts afresh (scikit-learn keeps its old one).
            opt_state = None
            optimizer = self._optimizer(c, n_batches, n_train, opt_state)
        adaptive = self.solver == "sgd" and self.learning_rate == "adaptive"
        if adaptive and stalls is not None:
            plateau = reduce_on_plateau(_ADAPTIVE_FACTOR, stalls, min_delta,
                                        threshold_mode="abs", stop_lr=_ADAPTIVE_STOP_LR * c)
        early_stopping = None if (adaptive or stalls is None or incremental) else stalls + 1
        res = _fit_gd(self.model_, self.params_, X_train, y_train, optimizer=optimizer,
                      epochs=1 if incremental else self.max_iter, batch_size=batch_size,
                      shuffle=self.shuffle, seed=int(rs.randint(np.iinfo(np.int32).max)),
                      l2=self.alpha / c, l2_per_sample=True, sample_weight=w_train,
                      validation_data=validation, early_stopping=early_stopping,
                      callbacks=self._verbose_callback(monitor), progress=False,
                      lr_plateau=plateau, opt_state=opt_state, monitor=monitor,
                      min_delta=min_delta, restore_best=bool(self.early_stopping))
        self.params_ = res.params
        self._opt_state = res.opt_state
        self.n_iter_ = res.n_epochs
        self.t_ += n_train * res.n_epochs
        losses = [self._report_scale() * v for v in res.history["loss"]]
        self.loss_curve_.extend(losses)
        if losses:
            self.loss_ = losses[-1]
        if self.early_stopping:
            self.validation_scores_.extend(res.history[monitor])
            if self.validation_scores_:
                self.best_validation_score_ = max(
                    [self.best_validation_score_] + [v for v in self.validation_scores_
                                                     if np.isfinite(v)])
        elif losses:
            self.best_loss_ = min([self.best_loss_] + [v for v in losses if np.isfinite(v)])
        if res.status == "diverged":
            warnings.warn(f"training stopped: {res.message}. The input data may contain "
                          f"large values and need to be preprocessed, or the learning rate "
                          f"may be too large.", ConvergenceWarning, stacklevel=3)
        elif res.status == "interrupted":
            warnings.warn("Training interrupted by user.", stacklevel=3)
        elif res.status == "completed" and not incremental and res.n_epochs == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                          f"reached and the optimization hasn't converged yet.",
                          ConvergenceWarning, stacklevel=3)

    def _optimizer(self, c, n_batches, n_train, opt_state):
        if self.solver == "adam":
            return adam(self.learning_rate_init, b1=self.beta_1, b2=self.beta_2,
                        eps=self.epsilon / c)
        lr = self.learning_rate_init * c
        if self.learning_rate == "invscaling":
            lr = _EpochInverseScaling(lr, self.power_t, n_batches, n_train,
                                      0 if opt_state is None else opt_state.step, self.t_,
                                      fresh=opt_state is None)
        return sgd(lr, momentum=self.momentum,
                   nesterov=bool(self.nesterovs_momentum and self.momentum > 0))

    def _verbose_callback(self, monitor):
        if not self.verbose:
            return ()
        scale = self._report_scale()

        def report(epoch, logs):  # numbered from 1 in each call, as scikit-learn's n_iter_
            print(f"Iteration {epoch + 1}, loss = {scale * logs['loss']:.8f}")
            if monitor in logs and monitor != "loss":
                print(f"Validation score: {logs[monitor]:f}")

        return (report,)

    # Prediction ------------------------------------------------------------------------
    def _forward(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False,
                          dtype=(np.float64, np.float32))
        return _predict_gd(self.model_, self.params_, X)


def _stochastic(estimator):
    """``partial_fit`` exists for the stochastic solvers only (as scikit-learn's)."""
    if estimator.solver not in ("sgd", "adam"):
        raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                             f"{estimator.solver} is not stochastic.")
    return True


def _sample_weight(sample_weight, n_samples, dtype):
    """``sample_weight`` as a float array of shape (n_samples,), or None."""
    if sample_weight is None:
        return None
    if _is_real(sample_weight):
        return np.full(n_samples, sample_weight, dtype=dtype)
    weights = np.asarray(sample_weight)
    if weights.ndim != 1 or weights.shape[0] != n_samples:
        raise ValueError(f"sample_weight.shape == {weights.shape}, expected "
                         f"({n_samples},)!")
    try:
        weights = weights.astype(dtype)
    except (TypeError, ValueError):
        raise ValueError(f"sample_weight must hold numbers, got dtype {weights.dtype}") \
            from None
    if weights.shape[0] and not weights.any():
        raise ValueError("Sample weights must contain at least one non-zero number: "
                         "sample_weight is zero for all samples.")
    return weights


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn's ``MLPClassifier``, trained by gdcore.

    Parameters, methods and fitted attributes are scikit-learn's (1.9); see
    :mod:`gdcore.sklearn` for how training maps onto gdcore and where it
    knowingly differs.  ``activation`` also takes gdcore's activations by
    their gdcore names (``"gelu"``, ``"silu"``, ...).  Each parameter is as
    scikit-learn defines it, with the same default.

<parameters>
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coefs_, intercepts_ : list of ndarray
        Views of ``params_``: ``coefs_[i]`` of shape (n_in, n_out).
    loss_, best_loss_, loss_curve_, validation_scores_, best_validation_score_ :
        As scikit-learn's (its loss scale).
    n_iter_, t_, n_layers_, n_outputs_, out_activation_, n_features_in_,
    feature_names_in_ :
        As scikit-learn's.
    model_ : gdcore.Model
        The network, for :func:`gdcore.predict`, :func:`gdcore.fit`, ...
    params_ : ndarray of shape (n_params,)
        Its flat parameters, in the dtype of the training data.
    """

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if "classes_" not in self.__dict__ or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(f"warm_start can only be used where `y` has the same "
                                     f"classes as in the previous call to fit. Previously "
                                     f"got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` "
                                 f"has {self.classes_}. 'y' has {classes}.")
        Y = self._label_binarizer.transform(y)
        if self._label_binarizer.y_type_ == "multiclass":
            return X, None, np.argmax(Y, axis=1).astype(np.int64)
        return X, Y.astype(X.dtype), None

    def _n_outputs(self, Y, labels):
        return len(self.classes_) if labels is not None else Y.shape[1]

    def _loss_and_output(self, n_outputs):
        if self._label_binarizer.y_type_ == "multiclass":
            return "cross_entropy", "softmax"
        return "binary_cross_entropy", "sigmoid"

    @available_if(_stochastic)
    def partial_fit(self, X: Features, y: ArrayLike, sample_weight: ArrayLike | None = None,
                    classes: ArrayLike | None = None) -> MLPClassifier:
        """One epoch over ``X``, continuing from the state of the previous call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        sample_weight : array-like of shape (n_samples,), optional
        classes : array-like of shape (n_classes,), optional
            Every class of all calls; required on the first call.

        Returns
        -------
        self
        """
        if "classes_" not in self.__dict__:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
            self.classes_ = self._label_binarizer.classes_
        elif classes is not None and not np.array_equal(
                self.classes_, unique_labels(np.asarray(classes))):
            raise ValueError(f"`classes={classes!r}` is not the same as on the first call "
                             f"to partial_fit, was: {self.classes_!r}")
        return self._fit(X, y, sample_weight, incremental=True)

    def predict_proba(self, X: Features) -> FloatArray:
        """Class probabilities, columns in the order of ``classes_``.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        P = self._forward(X)
        if self.n_outputs_ == 1:
            p = P.ravel()
            return np.vstack([1 - p, p]).T
        return P

    def predict_log_proba(self, X: Features) -> FloatArray:
        """``log(predict_proba(X))``.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        P = self.predict_proba(X)
        return np.log(P, out=P)

    def predict(self, X: Features) -> np.ndarray:
        """Predicted class labels (indicator rows for multi-label problems).

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_labels)
        """
        P = self._forward(X)
        if self.n_outputs_ == 1:
            P = P.ravel()
        return self._label_binarizer.inverse_transform(P)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn's ``MLPRegressor``, trained by gdcore.

    Parameters, methods and fitted attributes are scikit-learn's (1.9),
    with ``loss="squared_error"`` only; see :class:`MLPClassifier` and
    :mod:`gdcore.sklearn`.

<parameters>
    """

    def __init__(self, loss: str = "squared_error",
                 hidden_layer_sizes: Sequence[int] | int = (100,), activation: str = "relu", *,
                 solver: str = "adam", alpha: float = 0.0001, batch_size: int | str = "auto",
                 learning_rate: str = "constant", learning_rate_init: float = 0.001,
                 power_t: float = 0.5, max_iter: int = 200, shuffle: bool = True,
                 random_state: int | np.random.RandomState | None = None, tol: float = 1e-4,
                 verbose: bool = False, warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: int = 10,
                 max_fun: int = 15000) -> None:
        # The parameters are spelled out again: scikit-learn reads an estimator's
        # parameters from its own __init__ signature (get_params, clone), and this
        # one puts `loss` first, as scikit-learn's MLPRegressor does.
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
            max_fun=max_fun)
        self.loss = loss

    def _check_params(self):
        if self.loss == "poisson":
            raise ValueError("loss='poisson' is not available in gdcore's MLPRegressor; "
                             "use loss='squared_error'")
        _require(self.loss == "squared_error", "loss",
                 "MLPRegressor must be 'squared_error'", self.loss)
        super()._check_params()

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        return X, np.ascontiguousarray(Y, dtype=X.dtype), None

    def _n_outputs(self, Y, labels):
        return Y.shape[1]

    def _loss_and_output(self, n_outputs):
        return "mse", "identity"

    @available_if(_stochastic)
    def partial_fit(self, X: Features, y: ArrayLike,
                    sample_weight: ArrayLike | None = None) -> MLPRegressor:
        """One epoch over ``X``, continuing from the state of the previous call.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X: Features) -> FloatArray:
        """Predicted targets.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        P = self._forward(X)
        return P.ravel() if P.shape[1] == 1 else P

# The estimators' parameters (scikit-learn's), written once and placed in both
# docstrings at ``<parameters>`` (numpydoc: every parameter documented).
_PARAMETERS = """\
    Parameters
    ----------
<loss>    hidden_layer_sizes : tuple of int, default (100,)
        The units of each hidden layer.
    activation : str, default "relu"
        The hidden layers' activation: scikit-learn's ``"identity"``,
        ``"logistic"``, ``"tanh"``, ``"relu"``, or a gdcore activation name.
    solver : {"lbfgs", "sgd", "adam"}, default "adam"
        ``sgd`` and ``adam`` train in :func:`gdcore.fit`, ``lbfgs`` in
        gdcore's L-BFGS.
    alpha : float, default 1e-4
        L2 penalty, scaled as scikit-learn scales it.
    batch_size : int or "auto", default "auto"
        Mini-batch size of sgd and adam; "auto" is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
        sgd's schedule.
    learning_rate_init : float, default 0.001
    power_t : float, default 0.5
        The exponent of "invscaling".
    max_iter : int, default 200
        Epochs of sgd and adam, iterations of lbfgs.
    shuffle : bool, default True
        Shuffle the samples every epoch (sgd, adam).
    random_state : int, RandomState instance or None, default None
        Draws the initial weights, the shuffles and the validation split.
    tol : float, default 1e-4
        The improvement that counts, for stopping.
    verbose : bool, default False
    warm_start : bool, default False
        Start ``fit`` from the last fit's parameters.
    momentum : float, default 0.9
        sgd's momentum.
    nesterovs_momentum : bool, default True
    early_stopping : bool, default False
        Stop on a validation score held out of the training data.
    validation_fraction : float, default 0.1
        The share held out for ``early_stopping``.
    beta_1, beta_2 : float, defaults 0.9 and 0.999
        Adam's moment decays.
    epsilon : float, default 1e-8
        Adam's epsilon.
    n_iter_no_change : int, default 10
        Epochs without an improvement by ``tol`` before stopping.
    max_fun : int, default 15000
        The most evaluations of lbfgs.
"""
_REGRESSION_LOSS = """\
    loss : {"squared_error"}, default "squared_error"
        The only loss (scikit-learn's "poisson" is not supported).
"""


def _with_parameters(cls, loss=""):
    cls.__doc__ = cls.__doc__.replace("<parameters>", _PARAMETERS.replace("<loss>", loss))


_with_parameters(MLPClassifier)
_with_parameters(MLPRegressor, _REGRESSION_LOSS)
