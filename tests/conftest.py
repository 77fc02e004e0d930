"""Shared test configuration.

Hypothesis runs derandomised by default ("ci" profile) so that `make test` is
reproducible; `HYPOTHESIS_PROFILE=dev` (or `--hypothesis-profile=dev`) explores
fresh random examples.  Deadlines are off everywhere: the first example of a
test may include Numba compilation of a kernel.
"""

import os
import signal

# Generic kernels (codes read at run time) unless a run asks otherwise: the
# suite builds models of every activation, loss and optimizer, and the kernels
# specialised for each would compile once per combination.  The specialised
# kernels, which users get, run the same per-code implementations; they are
# tested against the generic ones in tests/test_specialised.py.  Set before
# gdcore is imported: the choice is read at import.
os.environ.setdefault("GDCORE_KERNELS", "generic")

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from gdcore.kernels import _stale_cache


def _answer_ctrl_c():
    """Give the suite Python's own SIGINT handler when it started with SIGINT ignored.

    A non-interactive shell starts its background jobs with SIGINT ignored, and
    Python then installs no handler: `make test` runs its second pass that way,
    and the Ctrl-C tests (a real SIGINT to this process) need the handler a
    terminal's Python has.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


_stale_cache.drop_if_stale()  # as every make target does first
_answer_ctrl_c()

settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

DTYPES = (np.float32, np.float64)


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    """Both first-class compute dtypes."""
    return np.dtype(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)

