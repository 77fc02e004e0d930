"""Processes that share Numba's cache compile each gdcore kernel once, in turn.

``python -m gdcore warmup`` compiles in one process per core, and so do a
test suite's workers, a Dask node's worker processes or scikit-learn's
``n_jobs`` processes on first use, all into one on-disk cache.  Numba saves an
entry as: read the index, pick the first free data-file number, write the
index, write the data, with no lock.  Two processes saving two signatures of
one kernel at once (float32 and float64) both take number N: one index entry
is lost, and the survivor may point at the other signature's machine code.
Two processes that need the same kernel at once would also both compile it.

So each gdcore dispatcher (:func:`guard`) compiles while holding an exclusive
lock on a file beside its cache index (``flock``, POSIX only): a second
process waits, and then Numba's first step, a cache lookup, loads what the
first one saved.  Loads need no lock: Numba writes each file under a
temporary name and renames it into place, and a load that finds a data file
missing compiles instead.

The lock is taken inside Numba's process-wide compiler lock, so one thread at
a time holds any of them; a compile nested in another one of the same index
(a literal-argument retry, sibling closures of one factory) reuses the lock
it holds.  Nested compiles of other kernels take their own locks; kernels call
each other without cycles, so two processes cannot each hold what the other
waits for.  Only gdcore's dispatchers are guarded: other libraries' Numba
functions are left as Numba makes them.
"""

import os
import types

from numba.core import caching, sigutils
from numba.core.compiler_lock import global_compiler_lock

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock, Numba's behaviour
    fcntl = None  # type: ignore[assignment]

_HELD: dict = {}  # lock path -> (open lock file, depth), for this process


def guard(dispatcher):
    """Make ``dispatcher`` (cached, CPU) compile under its cache index's lock; returns it."""
    if fcntl is not None:
        dispatcher.compile = types.MethodType(_compile_in_turn, dispatcher)
    return dispatcher


def _compile_in_turn(self, sig):
    compile_ = type(self).compile
    if (not isinstance(self._cache, caching.Cache)  # cache=False: nothing shared
            or tuple(sigutils.normalize_signature(sig)[0]) in self.overloads):
        return compile_(self, sig)
    with global_compiler_lock:
        path = self._cache._cache_file._index_path + ".lock"
        if path in _HELD:
            lock, depth = _HELD[path]
            _HELD[path] = (lock, depth + 1)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            lock = open(path, "a")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)
            except BaseException:  # e.g. Ctrl-C while waiting
                lock.close()
                raise
            _HELD[path] = (lock, 1)
        try:
            return compile_(self, sig)
        finally:
            lock, depth = _HELD.pop(path)
            if depth > 1:
                _HELD[path] = (lock, depth - 1)
            else:
                lock.close()  # releases the lock
