"""What bounds one gradient pass: gdcore's kernel against its own matrix products.

Two questions, each answered with the alternatives measured in the same run:

1. MNIST-sized network (784-256-128-10, batch 128, float32): how long does
   ``kernels.network.value_and_grad`` take, against the same 8 matrix products
   alone through ``kernels.blas.gemm`` (what the kernel calls), Numba's
   ``np.dot`` (SciPy's BLAS) and ``np.matmul`` (NumPy's BLAS)?  The
   difference between the kernel and its products is everything else it does
   (bias, activations, loss).
2. Small products (``kernels.linalg``): the loops gdcore uses below
   ``SMALL_PRODUCT`` multiply-adds against BLAS on the same shapes, called
   through ``kernels.blas.gemm`` and through Numba's ``np.dot``.

Every timing is a loop of calls inside one compiled function (no Python
dispatch), repeated; the table shows the fastest and the median repeat.
Run with ``.venv/bin/python bench/bench_gemm_floor.py`` after ``make bench``.
"""

import time

import numba
import numpy as np

import gdcore as gd
from gdcore.kernels import blas, linalg, network

from _harness import blas_report, matmul_peak

REPEATS = 15
SEED = 0
DTYPE = np.float32


@numba.njit
def _repeat_kernel(params, offsets, X, Y, labels, weights, loss_code, work, grad, calls, acts):
    for _ in range(calls):
        network.value_and_grad(params, offsets, (X, Y, labels, weights), loss_code, 0.0, work,
                               grad, acts)


@numba.njit
def _repeat_products(A, B, C, kinds, direct, calls):
    """The listed products: kind 0 is a @ b, 1 is a.T @ b, 2 is a @ b.T, through
    ``blas.gemm`` if ``direct`` else np.dot."""
    for _ in range(calls):
        for i in range(len(kinds)):
            if direct:
                blas.gemm(A[i], B[i], C[i], kinds[i] == 1, kinds[i] == 2)
            elif kinds[i] == 0:
                np.dot(A[i], B[i], C[i])
            elif kinds[i] == 1:
                np.dot(A[i].T, B[i], C[i])
            else:
                np.dot(A[i], B[i].T, C[i])


@numba.njit
def _repeat_linalg(which, A, B, C, calls):
    for _ in range(calls):
        if which == 0:
            linalg.matmul(A, B, C)
        elif which == 1:
            linalg.matmul_tn(A, B, C)
        elif which == 2:
            np.dot(A, B, C)
        elif which == 3:
            np.dot(A.T, B, C)
        elif which == 4:
            blas.gemm(A, B, C, False, False)
        else:
            blas.gemm(A, B, C, True, False)


def timed(run, calls):
    """(fastest, median) seconds per call over REPEATS repeats of ``run(calls)``."""
    run(max(1, calls // 10))  # compile and warm up
    per_call = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        run(calls)
        per_call.append((time.perf_counter() - t0) / calls)
    return min(per_call), float(np.median(per_call))


def mnist_products(model, n, rng):
    """Operands of the 8 products of one pass: (kind, a, b, out) per product."""
    widths = [model.n_inputs] + [layer.n_out for layer in model.layers]
    R = lambda *shape: rng.random(shape, dtype=DTYPE)  # noqa: E731
    products = []
    for l in range(len(model.layers)):
        n_in, n_out = widths[l], widths[l + 1]
        products.append((0, R(n, n_in), R(n_in, n_out), np.empty((n, n_out), DTYPE)))  # forward
        products.append((1, R(n, n_in), R(n, n_out), np.empty((n_in, n_out), DTYPE)))  # dL/dW
        if l > 0:  # dL/dA of the layer below
            products.append((2, R(n, n_out), R(n_in, n_out), np.empty((n, n_in), DTYPE)))
    return products


def bench_mnist(measure_peak):
    rng = np.random.default_rng(SEED)
    model = gd.mlp([784, 256, 128, 10], activation="relu", loss="cross_entropy")
    n = 128
    params = gd.init(model, seed=SEED, dtype=DTYPE)
    X = rng.random((n, 784), dtype=DTYPE)
    labels = rng.integers(0, 10, n).astype(np.int64)
    Y = np.zeros((0, 10), DTYPE)
    weights = np.zeros(0, DTYPE)
    work = np.empty(n * model.workspace_units, DTYPE)
    grad = np.empty_like(params)
    products = mnist_products(model, n, rng)
    flops = sum(2 * a.shape[0] * a.shape[1] * c.shape[1] for _, a, _, c in products)
    kinds = np.array([p[0] for p in products])
    A = numba.typed.List([p[1] for p in products])
    B = numba.typed.List([p[2] for p in products])
    C = numba.typed.List([p[3] for p in products])

    def matmul_products(calls):
        for _ in range(calls):
            for kind, a, b, c in products:
                if kind == 0:
                    np.matmul(a, b, out=c)
                elif kind == 1:
                    np.matmul(a.T, b, out=c)
                else:
                    np.matmul(a, b.T, out=c)

    rows = [
        ("gdcore kernel (value_and_grad)", timed(lambda c: _repeat_kernel(
            params, model.offsets, X, Y, labels, weights, model.loss_code, work, grad, c,
            model.acts), 200)),
        (f"its 8 products, gdcore gemm ({blas.BOUND_TO} BLAS)",
         timed(lambda c: _repeat_products(A, B, C, kinds, True, c), 200)),
        ("its 8 products, Numba np.dot (SciPy BLAS)",
         timed(lambda c: _repeat_products(A, B, C, kinds, False, c), 200)),
        ("its 8 products, np.matmul (NumPy BLAS)", timed(matmul_products, 200)),
    ]
    peak = measure_peak()
    print(f"\nMNIST-sized 784-256-128-10, batch {n}, float32: {flops / 1e6:.1f} MFLOP of "
          f"products per pass; NumPy float32 matmul peak {peak:.1f} GFLOP/s")
    print(f"| {'implementation':<42} | fastest µs | median µs | GFLOP/s (fastest) | % of peak |")
    print(f"|{'-' * 44}|-----------:|----------:|------------------:|----------:|")
    for name, (best, median) in rows:
        gflops = flops / best / 1e9
        print(f"| {name:<42} | {best * 1e6:10.1f} | {median * 1e6:9.1f} | {gflops:17.1f} | "
              f"{100 * gflops / peak:8.1f}% |")
    kernel, products = rows[0][1][0], rows[1][1][0]
    print(f"kernel minus its products (fastest runs): {(kernel - products) * 1e6:.0f} µs")


def bench_small_products():
    rng = np.random.default_rng(SEED)
    print(f"\nSmall products: gdcore's loops vs BLAS (SMALL_PRODUCT = {linalg.SMALL_PRODUCT}), "
          f"float32, fastest of the repeats; gemm = kernels.blas.gemm ({blas.BOUND_TO} BLAS), "
          "np.dot = Numba's (SciPy BLAS)")
    print("| shape m x k x n | A @ B loops µs | A @ B gemm µs | A @ B np.dot µs "
          "| A.T @ B loops µs | A.T @ B gemm µs | A.T @ B np.dot µs |")
    print("|-----------------|---------------:|--------------:|----------------:"
          "|-----------------:|----------------:|------------------:|")
    for m, k, n in [(32, 10, 32), (32, 32, 32), (64, 64, 128)]:
        A = rng.random((m, k), dtype=DTYPE)
        B = rng.random((k, n), dtype=DTYPE)
        C = np.empty((m, n), DTYPE)
        Bt = rng.random((m, n), dtype=DTYPE)  # A.T @ Bt has shape (k, n)
        Ct = np.empty((k, n), DTYPE)
        loops = timed(lambda c: _repeat_linalg_forced(0, A, B, C, c), 20000)[0]
        gemm = timed(lambda c: _repeat_linalg(4, A, B, C, c), 20000)[0]
        dot = timed(lambda c: _repeat_linalg(2, A, B, C, c), 20000)[0]
        loops_t = timed(lambda c: _repeat_linalg_forced(1, A, Bt, Ct, c), 20000)[0]
        gemm_t = timed(lambda c: _repeat_linalg(5, A, Bt, Ct, c), 20000)[0]
        dot_t = timed(lambda c: _repeat_linalg(3, A, Bt, Ct, c), 20000)[0]
        shape = f"{m} x {k} x {n}"
        print(f"| {shape:<15} | {loops * 1e6:14.2f} | {gemm * 1e6:13.2f} | {dot * 1e6:15.2f} "
              f"| {loops_t * 1e6:16.2f} | {gemm_t * 1e6:15.2f} | {dot_t * 1e6:17.2f} |")


@numba.njit
def _repeat_linalg_forced(which, A, B, C, calls):
    """The four-row loops of kernels.linalg, whatever the size (for comparison)."""
    for _ in range(calls):
        if which == 0:
            linalg.four_row_matmul(A, B, C)
        else:
            linalg.four_row_matmul_tn(A, B, C)


def main():
    # The peak is a capability: the better of a measurement before and after.
    start = matmul_peak(DTYPE)["peak_gflops"]
    bench_mnist(lambda: max(start, matmul_peak(DTYPE)["peak_gflops"]))
    bench_small_products()
    for row in blas_report() or ():  # after the runs: SciPy's BLAS loads on first use
        if row["user_api"] == "blas":
            print(f"{row['owner']} BLAS: {row['internal_api']} {row['version']}, "
                  f"{row['num_threads']} threads, {row['architecture']}")


if __name__ == "__main__":
    main()
