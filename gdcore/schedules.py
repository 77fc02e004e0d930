"""Learning-rate schedules: the learning rate as a function of the step count.

A schedule is a small immutable object; ``schedule(t)`` gives the learning
rate of update number ``t`` (counted from 0), for an int or, vectorised, for
an integer array.  Every optimizer accepts one wherever it accepts a float
``learning_rate``; :func:`gdcore.fit` evaluates it for a whole epoch at once
and hands the per-step values to the compiled epoch.  Steps count optimizer
updates (mini-batches), not epochs.

The formulas follow the libraries users know: ``step_decay`` is PyTorch's
``StepLR``, ``exponential_decay`` and ``warmup_cosine_decay`` are optax's,
``inverse_scaling`` is scikit-learn's ``invscaling``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import overload

import numpy as np

from . import _validate


# Every evaluation covers at least this many steps (see Schedule.__call__).
_MIN_EVAL = 2


class Schedule:
    """Base class: subclasses define ``_rate(t)`` for a float64 array of steps."""

    @overload
    def __call__(self, step: int) -> float: ...

    @overload
    def __call__(self, step: np.ndarray) -> np.ndarray: ...

    def __call__(self, step: int | np.ndarray) -> float | np.ndarray:
        """Learning rate at ``step`` (int -> float, int array -> float64 array).

        A single step and an array of steps go through the same code path, so
        ``s(np.arange(n))[k] == s(k)`` bitwise on every CPU: the optimizers
        evaluate one step at a time while :func:`gdcore.fit` evaluates a whole
        epoch at once, and both must take the same steps.  On AVX-512, NumPy
        computes ``**`` and ``cos`` of contiguous arrays with SVML's routines
        and a single value through other code (scalar math on libm; a
        one-element array may be iterated with stride 0), and the two differ
        in the last bit; hence every call evaluates a contiguous array of at
        least two steps.
        """
        t = _steps(step)
        flat = np.zeros(max(t.size, _MIN_EVAL), dtype=np.float64)
        flat[:t.size] = t.reshape(-1)
        rate = np.asarray(self._rate(flat), dtype=np.float64)
        if rate.shape != flat.shape:
            # The compiled loops read one rate per step: a shorter table would be
            # read past its end.  A single rate stands for every step.
            if rate.size != 1:
                raise ValueError(f"{type(self).__name__}._rate gave {rate.size} rates for "
                                 f"{flat.size} steps; a schedule gives one rate per step")
            rate = np.full(flat.shape, rate.reshape(()))
        rate = rate[:t.size].reshape(t.shape)
        return float(rate[()]) if rate.ndim == 0 else rate

    def _rate(self, t):  # pragma: no cover - abstract
        raise NotImplementedError


def _steps(step):
    """``step`` as a float64 array; TypeError/ValueError naming it unless real, finite, >= 0."""
    if type(step) is np.ndarray and step.dtype.kind in "iu":  # fit's epochs: one check
        if step.size and step.min() < 0:
            raise ValueError(f"step must be >= 0, got {_described(step)}")
        return step.astype(np.float64)
    if step is None or isinstance(step, (bool, np.bool_, str, bytes)):
        raise TypeError(f"step must be an int or an array of ints (update counts), got "
                        f"{_described(step)}")
    try:
        arr = np.asarray(step)
        if arr.dtype.kind == "O":  # Python ints beyond int64, or objects
            arr = arr.astype(np.float64)
    except (TypeError, ValueError, OverflowError):
        raise TypeError(f"step must be an int or an array of ints (update counts), got "
                        f"{_described(step)}") from None
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"step must be an int or an array of ints (update counts), got "
                        f"{_described(step)}")
    t = arr.astype(np.float64)
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError(f"step must be finite and >= 0, got {_described(step)}")
    return t


def _described(step):
    """``step`` for an error message (arrays by dtype, not by value)."""
    if isinstance(step, np.ndarray):
        return f"an array of dtype {step.dtype}"
    return type(step).__name__ if isinstance(step, (list, tuple, dict)) else repr(step)


def _positive(value, name):
    return _validate.real_in(value, name, 0, np.inf, low_open=True, high_open=True)


@dataclass(frozen=True)
class Constant(Schedule):
    """``value`` at every step."""

    value: float

    def __post_init__(self):
        object.__setattr__(self, "value", _positive(self.value, "value"))

    def _rate(self, t):
        return np.full_like(t, self.value)


@dataclass(frozen=True)
class StepDecay(Schedule):
    """``init_value * gamma ** (t // step_size)`` (PyTorch's StepLR)."""

    init_value: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self):
        object.__setattr__(self, "init_value", _positive(self.init_value, "init_value"))
        object.__setattr__(self, "step_size", _validate.positive_int(self.step_size, "step_size"))
        object.__setattr__(self, "gamma",
                           _validate.real_in(self.gamma, "gamma", 0, 1, low_open=True))

    def _rate(self, t):
        return self.init_value * self.gamma ** np.floor(t / self.step_size)


@dataclass(frozen=True)
class ExponentialDecay(Schedule):
    """``init_value * decay_rate ** (t / transition_steps)``, floored with ``staircase``."""

    init_value: float
    decay_rate: float
    transition_steps: int = 1
    staircase: bool = False

    def __post_init__(self):
        object.__setattr__(self, "init_value", _positive(self.init_value, "init_value"))
        object.__setattr__(self, "decay_rate", _positive(self.decay_rate, "decay_rate"))
        object.__setattr__(self, "transition_steps",
                           _validate.positive_int(self.transition_steps, "transition_steps"))
        object.__setattr__(self, "staircase", _validate.flag(self.staircase, "staircase"))

    def _rate(self, t):
        p = t / self.transition_steps
        if self.staircase:
            p = np.floor(p)
        return self.init_value * self.decay_rate ** p


@dataclass(frozen=True)
class InverseScaling(Schedule):
    """``init_value / (t + 1) ** power_t`` (scikit-learn's ``invscaling``)."""

    init_value: float
    power_t: float = 0.5

    def __post_init__(self):
        object.__setattr__(self, "init_value", _positive(self.init_value, "init_value"))
        object.__setattr__(self, "power_t", _validate.nonnegative_float(self.power_t, "power_t"))

    def _rate(self, t):
        return self.init_value / (t + 1.0) ** self.power_t


@dataclass(frozen=True)
class WarmupCosineDecay(Schedule):
    """Linear warmup from ``init_value`` to ``peak_value``, then cosine decay to ``end_value``.

    ``decay_steps`` counts the whole schedule, warmup included (optax's
    ``warmup_cosine_decay_schedule``); after it the rate stays at ``end_value``.
    """

    peak_value: float
    decay_steps: int
    warmup_steps: int = 0
    init_value: float = 0.0
    end_value: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "peak_value", _positive(self.peak_value, "peak_value"))
        object.__setattr__(self, "decay_steps",
                           _validate.positive_int(self.decay_steps, "decay_steps"))
        warmup = _validate.nonnegative_int(self.warmup_steps, "warmup_steps")
        if warmup >= self.decay_steps:  # the cosine part needs at least one step
            raise ValueError(
                f"warmup_steps ({warmup}) must be less than decay_steps ({self.decay_steps})")
        object.__setattr__(self, "warmup_steps", warmup)
        object.__setattr__(self, "init_value",
                           _validate.nonnegative_float(self.init_value, "init_value"))
        object.__setattr__(self, "end_value",
                           _validate.nonnegative_float(self.end_value, "end_value"))

    def _rate(self, t):
        w = self.warmup_steps
        warm = self.init_value + (self.peak_value - self.init_value) * t / max(w, 1)
        span = self.decay_steps - w
        frac = np.clip((t - w) / span, 0.0, 1.0)
        cosine = self.end_value + (self.peak_value - self.end_value) * 0.5 * (
            1.0 + np.cos(math.pi * frac))
        return np.where(t < w, warm, cosine)


def constant(value: float) -> Schedule:
    """Constant learning rate (what a float ``learning_rate`` means).

    Parameters
    ----------
    value : float > 0

    Returns
    -------
    Schedule
    """
    return Constant(value)


def step_decay(init_value: float, step_size: int, gamma: float = 0.1) -> Schedule:
    """Multiply the rate by ``gamma`` every ``step_size`` steps (PyTorch's StepLR).

    Parameters
    ----------
    init_value : float > 0
        The rate of the first ``step_size`` steps.
    step_size : int > 0
    gamma : float in (0, 1], default 0.1

    Returns
    -------
    Schedule
    """
    return StepDecay(init_value, step_size, gamma)


def exponential_decay(init_value: float, decay_rate: float, transition_steps: int = 1,
                      staircase: bool = False) -> Schedule:
    """``init_value * decay_rate ** (t / transition_steps)`` (optax's exponential_decay).

    Parameters
    ----------
    init_value : float > 0
    decay_rate : float > 0
    transition_steps : int > 0, default 1
    staircase : bool, default False
        Decay in whole steps of ``transition_steps`` (an integer exponent).

    Returns
    -------
    Schedule
    """
    return ExponentialDecay(init_value, decay_rate, transition_steps, staircase)


def inverse_scaling(init_value: float, power_t: float = 0.5) -> Schedule:
    """``init_value / (t + 1) ** power_t`` (scikit-learn's invscaling).

    Parameters
    ----------
    init_value : float > 0
    power_t : float >= 0, default 0.5

    Returns
    -------
    Schedule
    """
    return InverseScaling(init_value, power_t)


def warmup_cosine_decay(peak_value: float, decay_steps: int, warmup_steps: int = 0,
                        init_value: float = 0.0, end_value: float = 0.0) -> Schedule:
    """Linear warmup, then cosine decay (optax's warmup_cosine_decay_schedule).

    Parameters
    ----------
    peak_value : float > 0
        The rate at the end of the warmup.
    decay_steps : int > 0
        Steps of the whole schedule, warmup included, as optax counts them.
    warmup_steps : int >= 0, default 0
        Steps of the linear rise from ``init_value`` to ``peak_value``.
    init_value : float >= 0, default 0.0
    end_value : float >= 0, default 0.0
        The rate after ``decay_steps``.

    Returns
    -------
    Schedule
    """
    return WarmupCosineDecay(peak_value, decay_steps, warmup_steps, init_value, end_value)


def as_schedule(learning_rate):
    """``learning_rate`` as a :class:`Schedule`; a float becomes :class:`Constant`.

    Raises
    ------
    TypeError, ValueError
        Naming ``learning_rate``, unless it is a Schedule or a finite float > 0.
    """
    if isinstance(learning_rate, Schedule):
        return learning_rate
    return Constant(_positive(learning_rate, "learning_rate"))
