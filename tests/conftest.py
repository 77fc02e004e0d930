"""Shared test configuration.

Hypothesis runs derandomised by default ("ci" profile) so that `make test` is
reproducible; `HYPOTHESIS_PROFILE=dev` (or `--hypothesis-profile=dev`) explores
fresh random examples.  Deadlines are off everywhere: the first example of a
test may include Numba compilation of a kernel.
"""

import hashlib
import os
import signal
from pathlib import Path

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



def _drop_stale_kernel_cache():
    """Delete Numba's on-disk cache when any kernel source changed since it was written.

    Numba checks only the timestamp of the file that defines a cached
    function, not of the kernels it calls from other modules: after editing
    ``kernels/losses.py``, a cached ``network.value_and_grad`` would still run
    the old loss.  A fresh install rewrites every file, so only working trees
    can go stale; this keeps `make test` honest in them.
    """
    kernels = Path(__file__).resolve().parent.parent / "gdcore" / "kernels"
    digest = hashlib.sha256()
    for source in sorted(kernels.glob("*.py")) + [kernels.parent / "codes.py"]:
        digest.update(source.read_bytes())
    cache = kernels / "__pycache__"
    folders = [cache]
    if os.environ.get("NUMBA_CACHE_DIR"):
        root = Path(os.environ["NUMBA_CACHE_DIR"])
        cache = root / str(kernels).lstrip(os.sep)  # where the stamp is kept
        # Numba 0.68 keeps a folder per source folder below NUMBA_CACHE_DIR, named
        # after it and a hash of its path (kernels_<hash>); older ones mirrored the path.
        folders = [cache] + sorted(root.glob("kernels_*"))
    stamp = cache / "sources.sha256"
    if stamp.exists() and stamp.read_text() == digest.hexdigest():
        return
    for folder in folders:
        for cached in list(folder.glob("*.nbi")) + list(folder.glob("*.nbc")):
            cached.unlink()
    cache.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest.hexdigest())


def _answer_ctrl_c():
    """Give the suite Python's own SIGINT handler when it started with SIGINT ignored.

    A non-interactive shell starts its background jobs with SIGINT ignored, and
    Python then installs no handler: `make test` runs its second pass that way,
    and the Ctrl-C tests (a real SIGINT to this process) need the handler a
    terminal's Python has.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


_drop_stale_kernel_cache()
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

