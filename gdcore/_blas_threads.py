"""How many threads the BLAS behind gdcore's matrix products may use, call by call.

:func:`gdcore.fit`, :func:`gdcore.value_and_grad`, :func:`gdcore.loss` and
:func:`gdcore.predict` take ``threads``:

* ``"auto"`` (the default): one BLAS thread when the largest product of a
  step is small (:data:`AUTO_SINGLE_BELOW` multiply-adds), else the BLAS's
  own setting.  The choice depends on the problem's shapes only, never on
  the machine's load, so the same call gives the same bits every time.
* an int ``k >= 1``: ``k`` BLAS threads for the duration of the call;
* ``None``: leave the BLAS alone (its own setting, e.g. from threadpoolctl or
  ``OPENBLAS_NUM_THREADS``).

Why: a multithreaded product is as slow as its slowest thread.  When another
process keeps a core busy, OpenBLAS's second thread waits for a time slice
on every product, and a full-batch digits fit (products of 1347 x 64 x 128)
took 8.06 s with two BLAS threads against 0.164 s with one; on a quiet
machine two threads gained nothing at that size.  OpenBLAS itself runs
products of at most 262,144 multiply-adds on one thread, so the small steps
of small networks never reach this module's switch.

With NumPy's OpenBLAS the count is process-wide: while a call holds a
count, concurrent gdcore calls in other threads run with it too (they do not
change it under each other's feet), and so does any other NumPy product.
With MKL a call holds its own thread's count (``MKL_Set_Num_Threads_Local``),
which also overrides a per-thread count that threadpoolctl set.
The count is that of the BLAS the products are bound to
(:mod:`gdcore.kernels.blas`: MKL or NumPy's OpenBLAS).  Under the fallback
binding (``GDCORE_BLAS=scipy``, or a NumPy without scipy-openblas and no
MKL) gdcore cannot steer SciPy's BLAS and ``threads`` has no effect.

:func:`update_spans` decides whether :func:`gdcore.fit` runs its optimizer
step on Numba's threads too: only where no BLAS thread spins against them.
"""

import threading
from contextlib import nullcontext

import numba
import numpy as np

from .kernels import blas
from .kernels.updates import BLOCK

# Products below this many multiply-adds (m * n * k) run on one BLAS thread under
# threads="auto".  Set from bench/bench_training.py's busy-machine case and the
# two-thread GEMM speed-ups measured beside it (see the README).
AUTO_SINGLE_BELOW = 1 << 24

# OpenBLAS runs products of at most this many multiply-adds on one thread by itself
# (SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD in its interface/gemm.c).
OPENBLAS_SINGLE_UP_TO = 65536 * 4

_lock = threading.Lock()
_holders = 0  # calls inside blas_threads() with a count set
_restore = None  # the count to restore when the last one leaves


def check_threads(threads):
    """Validate a ``threads`` argument.

    Returns
    -------
    "auto", None or int

    Raises
    ------
    ValueError
        Naming ``threads``, unless it is "auto", None or an int >= 1.
    """
    if threads is None or (isinstance(threads, str) and threads == "auto"):
        return threads
    if (isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer))
            or threads < 1):
        raise ValueError(f"threads must be 'auto', None or an int >= 1 (BLAS threads of "
                         f"the matrix products), got {threads!r}")
    return int(threads)


def count_for_call(threads, model, rows):
    """:func:`count_for` of ``model``'s products over ``rows`` rows, ``threads`` checked.

    Small calls return at the first test: ``rows * n_params`` bounds every
    product's size, so the layer sizes are only looked at for larger ones.
    """
    if threads == "auto" and rows * model.n_params <= OPENBLAS_SINGLE_UP_TO:
        return None
    return count_for(check_threads(threads), largest_product(model, rows))


def count_for(threads, largest_product):
    """The BLAS thread count a call should hold, or None for "leave it".

    Parameters
    ----------
    threads : "auto", None or int
        As validated by :func:`check_threads`.
    largest_product : int
        m * n * k of the call's largest matrix product.
    """
    if threads == "auto":
        if largest_product <= OPENBLAS_SINGLE_UP_TO or largest_product >= AUTO_SINGLE_BELOW:
            return None  # one thread anyway, or large enough for the BLAS's own choice
        return 1
    return threads


def largest_product(model, rows):
    """m * n * k of the largest product of a forward or backward pass over ``rows`` rows."""
    return rows * max(layer.n_in * layer.n_out for layer in model.layers)


class _Hold:
    """Context manager of :func:`blas_threads` for a count to set."""

    __slots__ = ("count",)

    def __init__(self, count):
        self.count = count

    def __enter__(self):
        global _holders, _restore
        with _lock:
            first = _holders == 0
            try:
                if first:
                    found = blas.get_blas_threads()
                    _restore = None
                    if found != self.count:
                        _restore = found
                        blas.set_blas_threads(self.count)
                _holders += 1
            except BaseException:  # e.g. Ctrl-C before the count was taken: undo
                if first and _holders == 0 and _restore is not None:
                    blas.set_blas_threads(_restore)
                    _restore = None
                raise

    def __exit__(self, *exc):
        global _holders, _restore
        with _lock:
            _holders -= 1
            if _holders == 0 and _restore is not None:
                blas.set_blas_threads(_restore)
                _restore = None


class _LocalHold:
    """Context manager of :func:`blas_threads` for a BLAS with per-thread counts (MKL):
    this thread's count for the block, whatever other threads hold."""

    __slots__ = ("count", "previous")

    def __init__(self, count):
        self.count = count
        self.previous = 0

    def __enter__(self):
        try:
            self.previous = blas.set_local_blas_threads(self.count)
        except BaseException:  # e.g. Ctrl-C right after the count was set: undo
            blas.set_local_blas_threads(self.previous)
            raise

    def __exit__(self, *exc):
        blas.set_local_blas_threads(self.previous)


_NO_HOLD = nullcontext()


def _hold(count):
    return _LocalHold(count) if blas.set_local_blas_threads is not None else _Hold(count)


def blas_threads(count):
    """A context manager holding the BLAS at ``count`` threads (None: no change).

    The first of concurrent holders sets the count and the last one restores
    the count found before; holders in between run with the count that is
    set (see the module docstring).  With ``count=None`` it is a shared
    no-op, cheap enough for every call of a small network.
    """
    if count is None or blas.set_blas_threads is None:
        return _NO_HOLD
    return _hold(count)


def call_holding(count, kernel, *args):
    """``kernel(*args)`` while holding ``count`` BLAS threads (None: a plain call).

    A plain call skips even a no-op ``with`` block (0.4 us, a tenth of a
    small network's gradient).
    """
    if count is None or blas.set_blas_threads is None:
        return kernel(*args)
    with _hold(count):
        return kernel(*args)


# fit's optimizer step runs on Numba's threads for models of at least this many
# parameters (where they can, see update_spans).  Such a step leaves the compiled
# epoch once per batch, a Python round trip of some microseconds; at this size a
# float32 Adam step takes about 200 us on one thread (392 us for the MNIST-sized
# model's 235,146 parameters, AMD EPYC Zen 3), of which a second core saves half.
THREADED_UPDATE_FROM = 1 << 17


def update_spans(n_params, blas_count):
    """Spans of :func:`gdcore.fit`'s optimizer step on Numba's threads; 1: serial.

    More than one only for models of at least :data:`THREADED_UPDATE_FROM`
    parameters, with Numba allowed two threads or more, and where no BLAS
    thread spins against the step's threads: either the call holds the BLAS
    at one thread (``blas_count == 1``), or the BLAS is MKL on GNU OpenMP and
    Numba runs on its ``omp`` layer, the same ``libgomp`` (one pool of
    threads: MKL's products and the step take turns on it).  After a
    multithreaded OpenBLAS product its threads keep spinning for a while,
    and a two-thread step right after one is slower than a one-thread step
    (``bench/bench_training.py``'s "right after a GEMM" rows).

    Parameters
    ----------
    n_params : int
    blas_count : int or None
        The BLAS thread count the call holds (:func:`count_for_call`).
    """
    if n_params < THREADED_UPDATE_FROM or blas.set_blas_threads is None:
        return 1  # (the fallback's BLAS, SciPy's, is not held: its threads may spin)
    threads = numba.get_num_threads()  # starts Numba's threading layer: not for small models
    if threads < 2 or (blas_count != 1 and not _blas_shares_numba_pool()):
        return 1
    return int(min(threads, n_params // BLOCK))


def _blas_shares_numba_pool():
    """Whether the bound BLAS and Numba's parallel regions run on one libgomp pool."""
    library = blas.LIBRARY
    if library is None or not library.threads_on_gomp:
        return False
    try:
        from numba.np.ufunc import parallel
        parallel._launch_threads()  # picks the layer (TBB, OpenMP or workqueue) once
        return numba.threading_layer() == "omp"
    except Exception:  # noqa: BLE001 -- no usable layer: keep the serial step
        return False
