"""The types of gdcore's public signatures, named once (``numpy.typing``).

Annotations only: nothing here is checked at run time (the API validates its
arguments itself, with errors that name them).
"""

from typing import TYPE_CHECKING, Any, Callable, Literal, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .schedules import Schedule

if TYPE_CHECKING:
    import scipy.sparse

# A float32 or float64 array (parameters, gradients, predictions).
FloatArray = NDArray[np.floating[Any]]
# The BLAS threads of a call: "auto", a count, or None (leave the BLAS as it is).
Threads = Union[Literal["auto"], int, None]
# What np.random.default_rng takes.
Seed = Union[int, np.random.SeedSequence, np.random.BitGenerator, np.random.Generator, None]
# A learning rate: a float or a schedule of the step count.
LearningRate = Union[float, Schedule]
# fit's callbacks: cb(epoch, logs).
Callback = Callable[[int, dict], Any]
# Samples: an array, or a SciPy sparse matrix (read as CSR rows, never densified).
Features = Union[ArrayLike, "scipy.sparse.sparray", "scipy.sparse.spmatrix"]
