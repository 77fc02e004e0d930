"""gdcore: Numba-compiled gradient descent and backpropagation on flat parameters."""

from .functional import loss, predict, value_and_grad
from .gradcheck import GradCheckReport, check_grad
from .model import Dense, Model, init, mlp

__all__ = [
    "Dense",
    "GradCheckReport",
    "Model",
    "check_grad",
    "init",
    "loss",
    "mlp",
    "predict",
    "value_and_grad",
]

__version__ = "0.1.0"
