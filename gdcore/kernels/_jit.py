"""The one jit policy shared by every gdcore kernel.

* ``cache=True``: compiled machine code is stored beside the sources, so only
  the first run after an install pays for compilation.
* ``error_model="numpy"``: division by zero gives inf/nan like NumPy instead of
  raising, and lets loops vectorise without exception checks.
* ``fastmath`` is restricted to flags that keep NaN and Inf semantics, because
  divergence detection relies on NaN surviving the arithmetic.
"""

import numba

FASTMATH_FLAGS = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})


def jit(func):
    """Compile ``func`` with gdcore's policy (lazy, cached, NaN-preserving fastmath)."""
    return numba.njit(cache=True, error_model="numpy", fastmath=set(FASTMATH_FLAGS))(func)
