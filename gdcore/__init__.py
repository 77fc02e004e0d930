"""gdcore: Numba-compiled gradient descent and backpropagation on flat parameters."""

from . import _compile_notice

_compile_notice.install()  # before any kernel can compile: the first compile is announced

from .fit import FitResult, ReduceOnPlateau, fit, reduce_on_plateau
from .functional import loss, predict, value_and_grad
from .gradcheck import GradCheckReport, check_grad
from .model import Dense, Model, init, mlp
from .persist import load, save
from .minimize import gd, lbfgs, minimize
from .optim import (OptState, Optimizer, adagrad, adam, adamax, adamw, lion, nadam, rmsprop,
                    sgd)
from .schedules import (Schedule, constant, exponential_decay, inverse_scaling, step_decay,
                        warmup_cosine_decay)

__all__ = [
    "Dense",
    "FitResult",
    "GradCheckReport",
    "Model",
    "OptState",
    "Optimizer",
    "ReduceOnPlateau",
    "Schedule",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "check_grad",
    "constant",
    "exponential_decay",
    "fit",
    "gd",
    "init",
    "inverse_scaling",
    "lbfgs",
    "lion",
    "load",
    "loss",
    "minimize",
    "mlp",
    "nadam",
    "predict",
    "reduce_on_plateau",
    "rmsprop",
    "save",
    "sgd",
    "step_decay",
    "value_and_grad",
    "warmup_cosine_decay",
]

__version__ = "0.1.0"
