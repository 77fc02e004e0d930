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


def _compile_each_kernel_once():
    """Make processes that share Numba's cache compile each kernel once, in turn.

    `make test` runs pytest in several worker processes (pytest-xdist) that
    compile into one cache.  Numba saves an entry as: read the index, pick the
    first free data file number, write the index, write the data, with no
    lock: two processes saving two signatures of one kernel at once both take
    number N, one index entry is lost and the survivor may point at the other
    signature's machine code.  And two workers that need the same kernel at
    once would both compile it.  So a cached dispatcher compiles while holding
    an exclusive lock on a file beside its cache index (``flock``, POSIX): the
    second process waits, then Numba's own first step, a cache lookup, loads
    what the first one saved.  Loads need no lock: each file is written to a
    temporary name and renamed into place, and a load that finds its data
    file missing compiles instead.

    The lock is taken inside Numba's process-wide compiler lock, so one thread
    at a time holds any of them, and a compile nested in another one of the
    same index (a recursive signature, a literal-argument retry, sibling
    closures) reuses the lock it holds.  Nested compiles of other kernels take
    their own locks; kernels call each other without cycles, so two processes
    cannot each hold what the other waits for.
    """
    if os.name != "posix":
        return
    import fcntl

    from numba.core import caching, sigutils
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.dispatcher import Dispatcher

    compile_ = Dispatcher.compile
    held = {}  # lock path -> (open lock file, depth), for this process

    def compile_in_turn(self, sig):
        if (not isinstance(self._cache, caching.Cache)  # cache=False: nothing shared
                or tuple(sigutils.normalize_signature(sig)[0]) in self.overloads):
            return compile_(self, sig)
        with global_compiler_lock:
            path = self._cache._cache_file._index_path + ".lock"
            if path in held:
                lock, depth = held[path]
                held[path] = (lock, depth + 1)
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                lock = open(path, "a")
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                except BaseException:  # e.g. Ctrl-C while waiting
                    lock.close()
                    raise
                held[path] = (lock, 1)
            try:
                return compile_(self, sig)
            finally:
                lock, depth = held.pop(path)
                if depth > 1:
                    held[path] = (lock, depth - 1)
                else:
                    lock.close()  # releases the lock

    Dispatcher.compile = compile_in_turn


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
_compile_each_kernel_once()
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

