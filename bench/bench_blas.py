"""Benchmark: the BLAS libraries gdcore's products can bind, on this machine's CPU.

Why ``GDCORE_BLAS=auto`` binds MKL where it is installed: every library that
:mod:`gdcore.kernels.blas_libraries` finds (NumPy's OpenBLAS; MKL from the
``gdcore[mkl]`` extra) is timed on the same operands, through the same
``cblas_?gemm`` entry gdcore's kernels call (by address, through ctypes: the
same few microseconds of call overhead for each library), on one thread and
on every core, in float32 and float64:

* square products n x n x n, n = 128, 256, 512 (GFLOP/s);
* the 8 products of one MNIST-sized training step (784-256-128-10, batch
  128: forward ``A @ W``, backward ``A.T @ G`` and ``G @ W.T``), total time.

While one library is timed, the other's thread count is held at one, and
each timed block starts after a pause and an untimed call, so that no pool
still spins beside it.  BLIS (the ``blis`` package, which the bench
extra installs) is timed too, on one thread (its Python ``gemm`` is not
steered by a thread count).  Results go to ``bench/results/blas.json``; run
``.venv/bin/python bench/bench_blas.py``.
"""

import ctypes
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as harness  # noqa: E402  (bench/ is a folder of scripts, not a package)

from gdcore.kernels import blas_libraries  # noqa: E402

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "blas.json"
SQUARE = (128, 256, 512)
MNIST = [784, 256, 128, 10]
MNIST_BATCH = 128
REPEATS = 7
SETTLE_SECONDS = 0.05
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112

try:
    import blis.py as blis_py
except ImportError:
    blis_py = None


def cblas(address, dtype):
    """A ctypes function for ``cblas_?gemm`` with 64-bit integers at ``address``."""
    scalar = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    i32, i64, ptr = ctypes.c_int, ctypes.c_int64, ctypes.c_void_p
    proto = ctypes.CFUNCTYPE(None, i32, i32, i32, i64, i64, i64, scalar, ptr, i64, ptr, i64,
                             scalar, ptr, i64)
    return proto(address)


def products(shapes, dtype, seed=0):
    """Operands of each ``(m, n, k, trans_a, trans_b)``: (A, B, C) C-contiguous, A and B
    stored transposed where the flag says so."""
    rng = np.random.default_rng(seed)
    out = []
    for m, n, k, ta, tb in shapes:
        A = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
        B = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
        out.append((A, B, np.empty((m, n), dtype), ta, tb))
    return out


def mnist_shapes():
    """(m, n, k, trans_a, trans_b) of the 8 products of one MNIST-sized step."""
    shapes = []
    for l in range(len(MNIST) - 1):
        n_in, n_out = MNIST[l], MNIST[l + 1]
        shapes.append((MNIST_BATCH, n_out, n_in, False, False))  # forward A @ W
        shapes.append((n_in, n_out, MNIST_BATCH, True, False))  # weight gradient A.T @ G
        if l > 0:
            shapes.append((MNIST_BATCH, n_in, n_out, False, True))  # G @ W.T
    return shapes


def cblas_call(function, ops):
    """A callable doing every product of ``ops`` through ``function`` (cblas_?gemm)."""
    args = []
    for A, B, C, ta, tb in ops:
        m, n = C.shape
        k = A.shape[0] if ta else A.shape[1]
        args.append((ROW_MAJOR, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS, m, n, k,
                     1.0, A.ctypes.data, A.shape[1], B.ctypes.data, B.shape[1], 0.0,
                     C.ctypes.data, n))

    def call():
        for a in args:
            function(*a)
    return call


def blis_call(ops):
    def call():
        for A, B, C, ta, tb in ops:
            blis_py.gemm(A, B, trans1=ta, trans2=tb, out=C)
    return call


def median_seconds(calls, min_seconds=0.02):
    """Median seconds per call of each ``{name: (setup, call)}``, the calls taking turns
    (``setup`` sets the thread counts for its call), so that a change in the machine's
    load falls on all of them alike."""
    reps = {}
    for name, (setup, call) in calls.items():
        setup()
        call()
        t0 = time.perf_counter()
        call()
        reps[name] = max(1, int(min_seconds / max(time.perf_counter() - t0, 1e-7)))
    times = {name: [] for name in calls}
    for _ in range(REPEATS):
        for name, (setup, call) in calls.items():
            setup()
            # The library timed before may still have threads spinning (OpenBLAS's
            # spin for about 20 ms); this one's may be asleep: a pause, then one
            # untimed call.
            time.sleep(SETTLE_SECONDS)
            call()
            t0 = time.perf_counter()
            for _ in range(reps[name]):
                call()
            times[name].append((time.perf_counter() - t0) / reps[name])
    return {name: float(np.median(t)) for name, t in times.items()}


def flops(ops):
    return sum(2 * C.shape[0] * C.shape[1] * (A.shape[0] if ta else A.shape[1])
               for A, B, C, ta, tb in ops)


def main():
    print("BLAS libraries for gdcore's products (cblas_?gemm by address, medians)")
    harness.print_machine()
    background = harness.print_background(0.5)
    libraries = [lib for lib in (blas_libraries.numpy_openblas(), blas_libraries.mkl()) if lib]
    for lib in libraries:
        print(f"  {lib.name}: {lib.version}" + ("; threads on GNU OpenMP" if lib.threads_on_gomp
                                               else ""))
    if blis_py is None:
        print("  blis: not installed (pip install blis) -- skipped")
    cores = max(lib.get_threads() for lib in libraries)
    defaults = {lib.name: lib.get_threads() for lib in libraries}
    rows = []
    for dtype in (np.float32, np.float64):
        cases = [(f"{n}x{n}x{n}", products([(n, n, n, False, False)], dtype)) for n in SQUARE]
        cases.append(("MNIST step's 8 products", products(mnist_shapes(), dtype)))
        for label, ops in cases:
            for threads in sorted({1, cores}):
                row = {"dtype": np.dtype(dtype).name, "case": label, "threads": threads}

                def holding(lib, threads=threads):  # no other pool awake beside it
                    def setup():
                        for other in libraries:
                            other.set_threads(threads if other is lib else 1)
                    return setup

                calls = {lib.name: (holding(lib), cblas_call(
                    cblas(lib.gemm[np.dtype(dtype)], dtype), ops)) for lib in libraries}
                if blis_py is not None and threads == 1:
                    calls["blis"] = (holding(None), blis_call(ops))
                row.update(median_seconds(calls))
                row["gflop"] = flops(ops) / 1e9
                rows.append(row)
                cells = ", ".join(f"{k} {row[k] * 1e6:,.0f} us ({row['gflop'] / row[k]:.1f} "
                                  f"GFLOP/s)" for k in ("openblas", "mkl", "blis") if k in row)
                print(f"  {row['dtype']:<8} {label:<24} {threads} thread(s): {cells}", flush=True)
    for lib in libraries:
        lib.set_threads(defaults[lib.name])
    names = [k for k in ("openblas", "mkl", "blis") if any(k in r for r in rows)]
    print("\n| dtype | products | threads | " + " | ".join(names) + " |")
    print("|---|---|---:|" + "---:|" * len(names))
    for r in rows:
        cells = " | ".join(f"{r[k] * 1e6:,.0f} us, {r['gflop'] / r[k]:.1f} GFLOP/s"
                           if k in r else "-" for k in names)
        print(f"| {r['dtype']} | {r['case']} | {r['threads']} | {cells} |")
    out = {"environment": harness.environment(), "background": background,
           "libraries": {lib.name: lib.version for lib in libraries}, "rows": rows}
    path = harness.write_json(RESULTS_PATH, out)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
