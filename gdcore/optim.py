"""Optimizers: small immutable descriptors over one compiled update kernel.

An optimizer is made by a factory (:func:`sgd`, :func:`adam`, :func:`adamw`,
:func:`rmsprop`, :func:`adagrad`, :func:`adamax`, :func:`nadam`,
:func:`lion`), validated there once, and used as optax's are::

    opt = gd.adam(learning_rate=1e-3)
    state = opt.init(params)
    params, state = opt.update(grad, state, params)    # new arrays, inputs untouched
    opt.update_inplace(grad, state, params)            # no allocation
    opt.update_inplace(grad, state, params, threads=2) # large arrays, idle cores (2+ threads)

Every step is one call of :func:`gdcore.kernels.updates.apply_update` over
the flat array, or of its threaded twin
(:func:`~gdcore.kernels.updates.apply_update_threaded`, bitwise the same
result) when a caller asks for ``threads > 1``: worth it on millions of
parameters when no multithreaded BLAS call precedes the step.  The rules are
those of ``torch.optim`` (SGD with dampening 0; Adam's ``weight_decay`` is
the coupled L2 term, AdamW's is decoupled; RMSprop's ``rho`` is torch's
``alpha``), Lion's is its paper's.  Every
optimizer also takes ``clip_norm`` (clip the gradient to that global L2
norm) and ``clip_value`` (clip each entry to ``[-clip_value, clip_value]``),
applied before weight decay, and a :mod:`gdcore.schedules` schedule in place
of a float ``learning_rate``.
"""

from __future__ import annotations

import copy
import inspect
import threading
from dataclasses import dataclass, field
from typing import NamedTuple

import numba
import numpy as np
from numpy.typing import ArrayLike

from . import _validate, codes
from ._typing import FloatArray, LearningRate
from .kernels.updates import BLOCK, apply_update_threaded, update_kernel
from .drivers import method_factory, refuse_hyperparameters, run_first_order
from .schedules import Schedule


# The rows of ``OptState.slots`` of each rule, in the order the update kernels
# read them (gdcore.kernels.updates: ``s0``, ``s1``, ``s2``): (name, setting), a
# row being there when the rule's setting of that name is true (``momentum``:
# above 0), or always when it is None.  The one place the rows are written down:
# ``Optimizer.slot_names`` and ``n_slots`` come from it, and the tests check the
# table of updates.py's docstring against it.
SLOT_ROWS = {
    "sgd": (("momentum_buffer", "momentum"),),
    "adam": (("m", None), ("v", None), ("v_max", "amsgrad")),
    "adamw": (("m", None), ("v", None), ("v_max", "amsgrad")),
    "rmsprop": (("square_avg", None), ("grad_avg", "centered"), ("momentum_buffer", "momentum")),
    "adagrad": (("sum_of_squares", None),),
    "adamax": (("m", None), ("u", None)),
    "nadam": (("m", None), ("v", None)),
    "lion": (("m", None),),
}


class OptState(NamedTuple):
    """The mutable state of an optimizer for one parameter array.

    Made by :meth:`Optimizer.init`; ``state["v"]`` is the slot row named v.

    Attributes
    ----------
    slots : ndarray of shape (n_slots, n_params)
        The per-parameter state rows (moments, buffers), in the params dtype.
    scalars : ndarray of shape (N_SCALARS,), float64
        The step count and scalar state, laid out as ``gdcore.codes.S_*``.
    shuffle : dict or None
        For :func:`gdcore.fit` only: the state of its shuffle generator after
        these steps, so that a fit resumed from this state draws the batch
        orders the uninterrupted fit would have drawn; the optimizers never
        read it.
    names : tuple of str
        The name of each row of ``slots`` (:data:`SLOT_ROWS`).
    """

    slots: np.ndarray  # (n_slots, n_params), params dtype
    scalars: np.ndarray  # (N_SCALARS,), float64
    shuffle: object = None  # NumPy bit-generator state dict of fit's shuffles, or None
    names: tuple = ()  # the name of each row of slots (Optimizer.slot_names)

    @property
    def step(self):
        """Number of updates taken."""
        return int(self.scalars[codes.S_STEP])

    def __getitem__(self, key):
        """``state["m"]``: the slot row of that name (a view); an int indexes the tuple."""
        if not isinstance(key, str):
            return tuple.__getitem__(self, key)
        if key not in self.names:
            raise KeyError(f"this state has no row {key!r}; its rows: "
                           f"{', '.join(self.names) or 'none'}")
        return self.slots[self.names.index(key)]

    def __repr__(self):
        rows = ", ".join(self.names) if self.names else f"{len(self.slots)} unnamed"
        name = codes.OPTIMIZER_NAMES.get(int(self.scalars[codes.S_OPTIMIZER]), "?") \
            if len(self.scalars) > codes.S_OPTIMIZER else "?"
        return (f"OptState({name}, step={self.step}, rows [{rows}] of "
                f"{self.slots.shape[-1]} {self.slots.dtype} parameters"
                f"{', with a shuffle state' if self.shuffle is not None else ''})")

    def copy(self):
        """A deep copy (the arrays and the shuffle state are copied)."""
        shuffle = None if self.shuffle is None else copy.deepcopy(self.shuffle)
        return OptState(self.slots.copy(), self.scalars.copy(), shuffle, self.names)


# Where each hyperparameter of a factory goes in the kernel's vector.
_SLOT_OF = {
    "momentum": codes.H_MOMENTUM,
    "b1": codes.H_BETA1,
    "b2": codes.H_BETA2,
    "rho": codes.H_BETA2,
    "eps": codes.H_EPS,
    "weight_decay": codes.H_WEIGHT_DECAY,
    "nesterov": codes.H_NESTEROV,
    "amsgrad": codes.H_AMSGRAD,
    "centered": codes.H_CENTERED,
    "momentum_decay": codes.H_MOMENTUM_DECAY,
    "clip_norm": codes.H_CLIP_NORM,
    "clip_value": codes.H_CLIP_VALUE,
}

_CODES = {name: code for code, name in codes.OPTIMIZER_NAMES.items()}


@dataclass(frozen=True, repr=False, eq=True)
class Optimizer:
    """A gradient-descent rule with its hyperparameters (made by the factories).

    Attributes
    ----------
    name : str
        The factory's name (``"adam"``, ...).
    learning_rate : float or Schedule
    settings : tuple of (str, object)
        The other settings, ``(name, value)`` in the factory's order.
    hyperparameters : dict
        The same by name, as validated; also readable as attributes
        (``opt.b1``).
    slot_names : tuple of str
        The rows of its state (:data:`SLOT_ROWS`), ``n_slots`` of them.
    """

    name: str
    learning_rate: float | Schedule
    settings: tuple  # ((name, value), ...) in the factory's order
    code: int = field(init=False)
    hyper: np.ndarray = field(init=False, compare=False)
    slot_names: tuple = field(init=False, compare=False)  # rows of state (SLOT_ROWS)
    n_slots: int = field(init=False, compare=False)  # rows of per-parameter state

    def __post_init__(self):
        object.__setattr__(self, "code", _CODES[self.name])
        hyper = np.zeros(codes.N_HYPER, dtype=np.float64)
        for key, value in self.settings:
            hyper[_SLOT_OF[key]] = 0.0 if value is None else float(value)
        hyper.flags.writeable = False
        object.__setattr__(self, "hyper", hyper)
        object.__setattr__(self, "slot_names", tuple(
            row for row, setting in SLOT_ROWS[self.name]
            if setting is None or self.hyperparameters[setting]))
        object.__setattr__(self, "n_slots", len(self.slot_names))

    def __hash__(self):
        return hash((self.name, self.learning_rate, self.settings))

    @property
    def hyperparameters(self):
        return dict(self.settings)

    def __getattr__(self, key):
        # Only reached for names that are not regular attributes.
        for name, value in object.__getattribute__(self, "settings"):
            if name == key:
                return value
        raise AttributeError(f"{type(self).__name__} {self.name!r} has no attribute {key!r}")

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in (("learning_rate", self.learning_rate),)
                         + self.settings)
        return f"{self.name}({args})"

    # Slots ---------------------------------------------------------------------
    def __call__(self, fun, x0, args=(), jac=None, hess=None, hessp=None, bounds=None,
                 constraints=(), callback=None, **options):
        """Minimize ``fun`` from ``x0`` with this rule: a ``scipy.optimize.minimize`` method.

        See :mod:`gdcore.minimize` for the options and the result; options
        naming a hyperparameter (``learning_rate``, ``lr``, ...) raise
        ValueError, since this object's are fixed, except ``eps``: that is
        SciPy's finite-difference step (this rule's own is ``eps=`` of its
        factory).
        """
        refuse_hyperparameters(self, options)
        return run_first_order(self, fun, x0, args=args, jac=jac, bounds=bounds,
                               constraints=constraints, callback=callback, **options)

    def learning_rate_at(self, step: int) -> float:
        """The learning rate of update number ``step``.

        Parameters
        ----------
        step : int
            Updates taken before it (0 for the first).

        Returns
        -------
        float
            ``learning_rate``, or its schedule's value at ``step``.
        """
        lr = self.learning_rate
        return lr(step) if isinstance(lr, Schedule) else lr

    # The optax-style interface ---------------------------------------------------
    def init(self, params: ArrayLike) -> OptState:
        """Fresh state for ``params``.

        Parameters
        ----------
        params : ndarray of shape (n_params,)
            float32 or float64; the state takes its dtype.

        Returns
        -------
        OptState
        """
        params = _flat_params(params)
        scalars = np.zeros(codes.N_SCALARS, dtype=np.float64)
        scalars[codes.S_MU_PRODUCT] = 1.0
        scalars[codes.S_OPTIMIZER] = self.code
        n = params.shape[0]
        return OptState(np.zeros((self.n_slots, n), dtype=params.dtype), scalars,
                        names=self.slot_names)

    def update(self, grad: ArrayLike, state: OptState, params: ArrayLike,
               threads: int = 1) -> tuple[FloatArray, OptState]:
        """One step, returning new arrays; ``grad``, ``state`` and ``params`` are untouched.

        Parameters
        ----------
        grad : array-like of shape (n_params,)
        state : OptState
            From :meth:`init` or a previous update.
        params : ndarray of shape (n_params,)
        threads : int, default 1
            Split the step over this many of Numba's threads (see
            :meth:`update_inplace`).

        Returns
        -------
        params : ndarray of shape (n_params,)
            NaN/Inf when the gradient has them or the step overflows: check
            it, or let :func:`gdcore.fit` do so.
        state : OptState
        """
        params = _flat_params(params)
        grad = _validate._as_float_array(grad, "grad", params.dtype)
        self._check(grad, state, params, needs_writeable=False)
        chunks = _chunks(threads, params)
        with _exclusive(state):  # no torn copy of a state another thread is updating
            new_state = state.copy()
        out = np.empty_like(params)
        self._apply(grad, new_state, params, out, False, chunks)
        return out, new_state

    def update_inplace(self, grad: ArrayLike, state: OptState, params: FloatArray,
                       threads: int = 1) -> bool:
        """One step that overwrites ``params`` and ``state``; with ``threads=1``, allocates nothing.

        ``grad`` and ``params`` must be C-contiguous, writeable arrays of the
        same float dtype and length, ``state`` this optimizer's state for them.

        Parameters
        ----------
        grad, params : ndarray of shape (n_params,)
        state : OptState
        threads : int, default 1
            With ``threads > 1`` the step is split into up to that many spans
            of whole blocks (``BLOCK`` elements, so at most
            ``n_params / BLOCK`` spans), run by Numba's thread pool (at most
            ``numba.get_num_threads()`` of them at once); the result is
            bitwise that of one thread.  Numba's parallel region allocates a
            few bytes of bookkeeping per call.  It pays on large arrays when the cores are otherwise
            idle (10M float32 Adam parameters on 2 cores: 5.4 ms against
            9.7 ms).  Right after a multithreaded BLAS call (a large
            ``np.dot``, or :func:`gdcore.value_and_grad` of a wide network)
            the BLAS threads are still spinning, and two threads were slower
            than one (after a 512x512 GEMM the step took 15.1 ms against
            9.7 ms).  At most ``numba.config.NUMBA_NUM_THREADS``.

        Returns
        -------
        finite : bool
            False when the gradient or the new parameters hold NaN or Inf.

        Raises
        ------
        RuntimeError
            When another thread is updating the same ``state`` at that moment:
            a state belongs to one thread at a time (the kernels release the
            GIL, so two unsynchronised steps would tear the parameters).
        """
        if not isinstance(params, np.ndarray) or not isinstance(grad, np.ndarray):
            raise TypeError("update_inplace needs numpy arrays for grad and params")
        p_flags = params.flags
        if params.dtype not in _validate.FLOAT_DTYPES or params.ndim != 1:
            raise TypeError(f"params must be a 1-D float32 or float64 array, got "
                            f"{params.dtype} of shape {params.shape}")
        if not (p_flags.c_contiguous and p_flags.writeable):
            raise ValueError("params must be C-contiguous and writeable to be updated in place")
        if grad.dtype != params.dtype or not grad.flags.c_contiguous:
            raise TypeError(f"grad must be a C-contiguous {params.dtype} array like params, "
                            f"got {grad.dtype}")
        self._check(grad, state, params, needs_writeable=True)
        chunks = _chunks(threads, params)
        with _exclusive(state):
            return self._apply(grad, state, params, params, True, chunks)

    def _apply(self, grad, state, params, out, inplace, chunks):
        """One kernel call of the step; True when it stayed finite."""
        slots, scalars = state.slots, state.scalars
        step = scalars[codes.S_STEP]
        if not 0 <= step < 2 ** 53:  # NaN fails too
            raise ValueError(f"state.scalars holds the step count {step}, expected a count "
                             f">= 0; make the state with {self.name}.init(params)")
        lr = self.learning_rate_at(int(step))
        if chunks > 1:
            with _PARALLEL_REGION:
                return bool(apply_update_threaded(self.code, self.hyper, lr, params, grad,
                                                  slots, scalars, out, inplace, chunks))
        return bool(update_kernel[self.code](self.code, self.hyper, lr, params, grad, slots,
                                             scalars, out, inplace))

    def _check(self, grad, state, params, needs_writeable):
        """Raise unless ``grad`` and ``state`` fit ``params`` (one cheap test first).

        The kernels index ``slots`` and ``scalars`` without bounds checks, so
        everything they rely on is tested here: types, shapes, dtypes,
        contiguity and, for a step in place, writeability.
        """
        n = params.shape[0]
        if type(state) is OptState:
            slots, scalars = state.slots, state.scalars
            if (type(slots) is np.ndarray and type(scalars) is np.ndarray
                    and grad.shape == params.shape and slots.shape == (self.n_slots, n)
                    and slots.dtype == params.dtype and scalars.shape == _SCALARS_SHAPE
                    and scalars.dtype == _FLOAT64
                    and scalars[codes.S_OPTIMIZER] == self.code):
                # Each .flags builds an object: read once per array.
                slot_flags, scalar_flags = slots.flags, scalars.flags
                if (slot_flags.c_contiguous and scalar_flags.c_contiguous
                        and (not needs_writeable
                             or (slot_flags.writeable and scalar_flags.writeable))):
                    return
        self._explain_mismatch(grad, state, params, needs_writeable)

    def _explain_mismatch(self, grad, state, params, needs_writeable):
        n = params.shape[0]
        remedy = f"make it with {self.name}.init(params)"
        if grad.shape != (n,):
            raise ValueError(f"grad must have shape ({n},) like params, got {grad.shape}")
        if not isinstance(state, OptState):
            raise TypeError(f"state must be the OptState of {self.name}.init(params), "
                            f"got {type(state).__name__}")
        slots, scalars = state.slots, state.scalars
        for name, arr in (("slots", slots), ("scalars", scalars)):
            if type(arr) is not np.ndarray:  # subclasses too: the kernels take plain arrays
                raise TypeError(f"state.{name} must be a numpy.ndarray, got "
                                f"{type(arr).__name__}; {remedy}")
        if scalars.shape != (codes.N_SCALARS,) or scalars.dtype != np.float64:
            raise ValueError(f"state.scalars must be a float64 array of shape "
                             f"({codes.N_SCALARS},), got {scalars.dtype} of shape "
                             f"{scalars.shape}; {remedy}")
        if scalars[codes.S_OPTIMIZER] != self.code:
            made_by = codes.OPTIMIZER_NAMES.get(int(scalars[codes.S_OPTIMIZER]), "?")
            raise ValueError(f"state was made by {made_by}.init, not {self.name}.init")
        if slots.shape != (self.n_slots, n) or slots.dtype != params.dtype:
            raise ValueError(
                f"state does not belong to {self.name} on these params: expected slots of "
                f"shape ({self.n_slots}, {n}) and dtype {params.dtype}, got "
                f"{slots.shape} {slots.dtype}; {remedy}")
        for name, arr in (("slots", slots), ("scalars", scalars)):
            if not arr.flags.c_contiguous:
                raise ValueError(f"state.{name} must be C-contiguous; {remedy}, or use "
                                 f"np.ascontiguousarray")
            if needs_writeable and not arr.flags.writeable:
                raise ValueError(f"state.{name} is read-only, so update_inplace cannot "
                                 f"update it; pass a writeable copy (state.copy()) or use "
                                 f"update, which returns a new state")
        raise AssertionError("unreachable: _check refused a state _explain_mismatch accepts")


# One threaded step at a time in the process: Numba's workqueue threading layer (used
# where neither OpenMP nor TBB is available) aborts on concurrent parallel regions, and
# on any layer two of them at once only oversubscribe the cores.
_PARALLEL_REGION = threading.Lock()

_SCALARS_SHAPE = (codes.N_SCALARS,)
_FLOAT64 = np.dtype(np.float64)

# States being stepped right now, by id(state.scalars): dict.setdefault is one atomic
# operation under the GIL, so of two threads that step one state at once, one sees
# the other's token.
_IN_USE: dict = {}


class _exclusive:
    """Hold ``state`` for one step (``with _exclusive(state):``); RuntimeError if another
    thread holds it.  A class, not a contextlib generator: that cost 3.2 us per step."""

    __slots__ = ("key",)

    def __init__(self, state):
        self.key = id(state.scalars)

    def __enter__(self):
        try:
            mine = _IN_USE.setdefault(self.key, self) is self
        except BaseException:  # a KeyboardInterrupt right after setdefault: let go
            self.__exit__()
            raise
        if not mine:
            raise RuntimeError(
                "this optimizer state is being updated by another thread: a state belongs "
                "to one thread at a time (give each thread its own opt.init(params), or "
                "serialise the steps with a lock)")

    def __exit__(self, *exc):
        if _IN_USE.get(self.key) is self:  # only the holder lets go
            del _IN_USE[self.key]
        return False


def _chunks(threads, params):
    """How many spans a step with ``threads`` threads uses (<= 1: the serial kernel)."""
    limit = numba.config.NUMBA_NUM_THREADS
    if (isinstance(threads, bool) or not isinstance(threads, (int, np.integer))
            or not 1 <= threads <= limit):
        raise ValueError(f"threads must be an integer from 1 to {limit} (Numba's thread "
                         f"pool, numba.config.NUMBA_NUM_THREADS), got {threads!r}")
    return int(min(threads, params.shape[0] // BLOCK))  # spans of at least one block


def _flat_params(params) -> np.ndarray:
    arr = _validate._as_array(params, "params")
    if arr.dtype not in _validate.FLOAT_DTYPES:
        if arr.dtype.kind not in "biu":
            raise TypeError(f"params must be a float32 or float64 array, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
    if arr.ndim != 1:
        raise ValueError(f"params must be 1-D, got shape {arr.shape}")
    return _validate.kernel_ready(arr, arr.dtype)


# Validation helpers --------------------------------------------------------------------
def _beta(value, name):
    return _validate.real_in(value, name, 0.0, 1.0, high_open=True)


def _eps(value):
    return _validate.real_in(value, "eps", 0.0, np.inf, low_open=True, high_open=True)


def _nonnegative(value, name):
    return _validate.nonnegative_float(value, name)


def _clips(clip_norm, clip_value):
    out = []
    for name, value in (("clip_norm", clip_norm), ("clip_value", clip_value)):
        if value is not None:
            value = _validate.real_in(value, name, 0.0, np.inf, low_open=True, high_open=True)
        out.append((name, value))
    return tuple(out)


# The factories' parameters, documented once: each factory's docstring gets its
# Parameters and Returns sections from its signature (_documented).
_PARAMETERS = {
    "learning_rate": ("float or Schedule", "The step size, or a schedule of the step count "
                      "(:mod:`gdcore.schedules`)."),
    "momentum": ("float in [0, 1)", "Momentum factor; 0 keeps no momentum buffer."),
    "nesterov": ("bool", "Nesterov momentum (needs ``momentum > 0``)."),
    "b1": ("float in [0, 1)", "Decay of the first-moment (mean gradient) average."),
    "b2": ("float in [0, 1)", "Decay of the second-moment (squared gradient) average; "
           "Lion's momentum decay."),
    "rho": ("float in [0, 1)", "Decay of the mean square (torch's ``alpha``)."),
    "eps": ("float > 0", "Added to the denominator, outside the square root."),
    "weight_decay": ("float >= 0", "Coupled L2 term ``weight_decay * params`` added to the "
                     "gradient (decoupled ``params *= 1 - lr * weight_decay`` for AdamW "
                     "and Lion)."),
    "amsgrad": ("bool", "Divide by the running maximum of the second moment."),
    "centered": ("bool", "Divide by the variance (mean square minus squared mean gradient) "
                 "instead of the mean square."),
    "momentum_decay": ("float >= 0", "NAdam's psi, the decay of its momentum schedule."),
    "clip_norm": ("float > 0 or None", "Scale the gradient down to this global L2 norm "
                  "(after value clipping, before weight decay)."),
    "clip_value": ("float > 0 or None", "Clip each gradient entry to "
                   "``[-clip_value, clip_value]`` first."),
}


def _documented(factory):
    """Append Parameters and Returns sections to ``factory``'s docstring (numpydoc)."""
    lines = ["", "Parameters", "----------"]
    for name, parameter in inspect.signature(factory).parameters.items():
        kind, text = _PARAMETERS[name]
        default = "" if parameter.default is parameter.empty else f", default {parameter.default!r}"
        lines += [f"{name} : {kind}{default}", f"    {text}"]
    lines += ["", "Returns", "-------", "Optimizer",
              "    Immutable; :meth:`Optimizer.init` makes its state, and it is also a",
              "    ``scipy.optimize.minimize`` method."]
    factory.__doc__ = inspect.cleandoc(factory.__doc__) + "\n" + "\n".join(lines) + "\n"
    return factory


def _make(name, learning_rate, settings, clip_norm, clip_value):
    if not isinstance(learning_rate, Schedule):  # a float stays a float (constant rate)
        learning_rate = _validate.real_in(learning_rate, "learning_rate", 0.0, np.inf,
                                          low_open=True, high_open=True)
    return Optimizer(name, learning_rate, tuple(settings) + _clips(clip_norm, clip_value))


# Factories -----------------------------------------------------------------------------
@method_factory
@_documented
def sgd(learning_rate: LearningRate, momentum: float = 0.0, nesterov: bool = False,
        weight_decay: float = 0.0, *, clip_norm: float | None = None,
        clip_value: float | None = None) -> Optimizer:
    """Stochastic gradient descent with optional (Nesterov) momentum, as ``torch.optim.SGD``.

    ``buf = momentum * buf + g``; the step is ``buf`` (or ``g + momentum * buf``
    with Nesterov); ``weight_decay`` adds ``weight_decay * params`` to ``g``.
    """
    momentum = _validate.real_in(momentum, "momentum", 0.0, 1.0, high_open=True)
    nesterov = _validate.flag(nesterov, "nesterov")
    if nesterov and momentum == 0:
        raise ValueError("nesterov=True needs momentum > 0")
    return _make("sgd", learning_rate, (("momentum", momentum), ("nesterov", nesterov),
                 ("weight_decay", _nonnegative(weight_decay, "weight_decay"))),
                 clip_norm, clip_value)


@method_factory
@_documented
def adam(learning_rate: LearningRate = 1e-3, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
         clip_norm: float | None = None, clip_value: float | None = None) -> Optimizer:
    """Adam, as ``torch.optim.Adam`` (``weight_decay`` is the coupled L2 term)."""
    return _make("adam", learning_rate, _adam_settings(b1, b2, eps, weight_decay, amsgrad),
                 clip_norm, clip_value)


@method_factory
@_documented
def adamw(learning_rate: LearningRate = 1e-3, b1: float = 0.9, b2: float = 0.999,
          eps: float = 1e-8, weight_decay: float = 0.01, amsgrad: bool = False, *,
          clip_norm: float | None = None, clip_value: float | None = None) -> Optimizer:
    """AdamW, as ``torch.optim.AdamW``: decoupled ``params *= 1 - lr * weight_decay``."""
    return _make("adamw", learning_rate, _adam_settings(b1, b2, eps, weight_decay, amsgrad),
                 clip_norm, clip_value)


def _adam_settings(b1, b2, eps, weight_decay, amsgrad):
    return (("b1", _beta(b1, "b1")), ("b2", _beta(b2, "b2")), ("eps", _eps(eps)),
            ("weight_decay", _nonnegative(weight_decay, "weight_decay")),
            ("amsgrad", _validate.flag(amsgrad, "amsgrad")))


@method_factory
@_documented
def rmsprop(learning_rate: LearningRate = 1e-2, rho: float = 0.99, eps: float = 1e-8,
            momentum: float = 0.0, centered: bool = False, weight_decay: float = 0.0, *,
            clip_norm: float | None = None, clip_value: float | None = None) -> Optimizer:
    """RMSprop, as ``torch.optim.RMSprop`` (``rho`` is its ``alpha``)."""
    return _make("rmsprop", learning_rate, (
        ("rho", _beta(rho, "rho")), ("eps", _eps(eps)),
        ("momentum", _validate.real_in(momentum, "momentum", 0.0, 1.0, high_open=True)),
        ("centered", _validate.flag(centered, "centered")),
        ("weight_decay", _nonnegative(weight_decay, "weight_decay"))), clip_norm, clip_value)


@method_factory
@_documented
def adagrad(learning_rate: LearningRate = 1e-2, eps: float = 1e-10,
            weight_decay: float = 0.0, *, clip_norm: float | None = None,
            clip_value: float | None = None) -> Optimizer:
    """Adagrad, as ``torch.optim.Adagrad`` (no learning-rate decay, zero initial sum)."""
    return _make("adagrad", learning_rate, (
        ("eps", _eps(eps)), ("weight_decay", _nonnegative(weight_decay, "weight_decay"))),
        clip_norm, clip_value)


@method_factory
@_documented
def adamax(learning_rate: LearningRate = 2e-3, b1: float = 0.9, b2: float = 0.999,
           eps: float = 1e-8, weight_decay: float = 0.0, *, clip_norm: float | None = None,
           clip_value: float | None = None) -> Optimizer:
    """Adamax (Adam with the infinity norm), as ``torch.optim.Adamax``."""
    return _make("adamax", learning_rate, (
        ("b1", _beta(b1, "b1")), ("b2", _beta(b2, "b2")), ("eps", _eps(eps)),
        ("weight_decay", _nonnegative(weight_decay, "weight_decay"))), clip_norm, clip_value)


@method_factory
@_documented
def nadam(learning_rate: LearningRate = 2e-3, b1: float = 0.9, b2: float = 0.999,
          eps: float = 1e-8, weight_decay: float = 0.0, momentum_decay: float = 4e-3, *,
          clip_norm: float | None = None, clip_value: float | None = None) -> Optimizer:
    """NAdam (Adam with Nesterov momentum), as ``torch.optim.NAdam``."""
    return _make("nadam", learning_rate, (
        ("b1", _beta(b1, "b1")), ("b2", _beta(b2, "b2")), ("eps", _eps(eps)),
        ("weight_decay", _nonnegative(weight_decay, "weight_decay")),
        ("momentum_decay", _nonnegative(momentum_decay, "momentum_decay"))),
        clip_norm, clip_value)


@method_factory
@_documented
def lion(learning_rate: LearningRate = 1e-4, b1: float = 0.9, b2: float = 0.99,
         weight_decay: float = 0.0, *, clip_norm: float | None = None,
         clip_value: float | None = None) -> Optimizer:
    """Lion (Chen et al., 2023): the sign of an interpolated momentum, decoupled decay.

    ``c = b1 * m + (1 - b1) * g``; ``params -= lr * (sign(c) + weight_decay * params)``;
    ``m = b2 * m + (1 - b2) * g``.
    """
    return _make("lion", learning_rate, (
        ("b1", _beta(b1, "b1")), ("b2", _beta(b2, "b2")),
        ("weight_decay", _nonnegative(weight_decay, "weight_decay"))), clip_norm, clip_value)


# The rules by name (gd.fit's optimizer="adam", gd.minimize's method="adam").
RULES = {"sgd": sgd, "adam": adam, "adamw": adamw, "rmsprop": rmsprop, "adagrad": adagrad,
         "adamax": adamax, "nadam": nadam, "lion": lion}
