"""Benchmark: the fused small-network gradient against the general path, and where they cross.

``gdcore.kernels.network.value_and_grad`` sends small networks on dense inputs
to the fused kernel of :mod:`gdcore.kernels.small` (loops over blocks of
samples, no BLAS) and everything else to the general path (whole-batch
blocks, BLAS products; ``network.general_value_and_grad``).  This bench times
both kernels on the same problems, each called directly in a compiled loop
(so neither pays Python's call overhead), and prints, for every sweep, the
fused/general time ratio and the crossover: the largest hidden width at which
the fused kernel is still faster.  The rule in ``small.is_small`` and the
figures quoted in ``small.py``'s docstring come from this output.

Sweeps (mse loss, one output, ReLU hidden layers, identity output; the codes
are read at run time, as in the kernels compiled ahead of time that ``fit``
uses by default), in float32 and float64:

* ``width``: 10 inputs, 1-3 hidden layers of width 8..256, batch 1..256;
* ``inputs``: 1 hidden layer of width 32, 2..784 inputs, batch 32 and 128;
* ``outputs``: 10-32-k with cross_entropy (softmax) outputs, k = 2..64, batch 32.

Each figure is the median over ``REPEATS`` timed runs of a loop of about
``RUN_SECONDS``, per call, after a warm-up run; the two kernels alternate run
by run so a drift of the machine is shared.  Other processes' load is not
filtered out (run on a quiet machine).  Run:
``python bench/bench_small.py [--quick]`` (about two minutes plus the
compile of both kernels, twice per dtype).
"""

import argparse
import sys
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as harness  # noqa: E402

import gdcore as gd  # noqa: E402
from gdcore import codes  # noqa: E402
from gdcore.kernels import network, small  # noqa: E402

REPEATS = 15
RUN_SECONDS = 0.002
WIDTHS = (8, 16, 32, 48, 64, 96, 128, 256)
BATCHES = (1, 8, 32, 128, 256)
DEPTHS = (1, 2, 3)
INPUTS = (2, 10, 32, 100, 784)
OUTPUTS = (2, 10, 32, 64)


@numba.njit(nogil=True)
def _repeat(fused, reps, params, offsets, X, Y, labels, weights, loss_code, work, grad):
    """``reps`` gradients through one kernel; the codes are run-time values."""
    total = 0.0
    for _ in range(reps):
        if fused:
            total += small.dense_value_and_grad(params, offsets, (X, Y, labels, weights),
                                                loss_code, 0.0, work, grad, codes.ANY_ACTS)
        else:
            total += network.general_value_and_grad(params, offsets, (X, Y, labels, weights),
                                                    loss_code, 0.0, work, grad,
                                                    codes.ANY_ACTS)
    return total


def problem(sizes, n, dtype, loss="mse", seed=0):
    """(model, params, X, Y, labels) of an MLP ``sizes`` on ``n`` random samples."""
    output = "softmax" if loss == "cross_entropy" else "identity"
    model = gd.mlp(sizes, activation="relu", output=output, loss=loss)
    params = gd.init(model, seed, dtype)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    if loss == "cross_entropy":
        labels = rng.integers(0, sizes[-1], n).astype(np.int64)
        Y = np.zeros((0, sizes[-1]), dtype)
    else:
        labels = np.zeros(0, np.int64)
        Y = rng.standard_normal((n, sizes[-1])).astype(dtype)
    return model, params, X, Y, labels


def time_both(sizes, n, dtype, loss="mse"):
    """Median µs per gradient of (fused, general), the median ratio of paired runs
    (fused / general) and the fused path's rule for the shape."""
    model, params, X, Y, labels = problem(sizes, n, dtype, loss)
    work = np.zeros(max(n, 1) * model.workspace_units, dtype)
    grad = np.zeros(model.n_params, dtype)
    weights = np.zeros(0, dtype)
    args = (params, model.offsets, X, Y, labels, weights, model.loss_code, work, grad)
    reps = {}
    for fused in (True, False):
        _repeat(fused, 1, *args)
        t = time.perf_counter()
        _repeat(fused, 10, *args)
        per_call = (time.perf_counter() - t) / 10
        reps[fused] = max(1, int(RUN_SECONDS / per_call))
    runs = {True: [], False: []}
    for _ in range(REPEATS):
        for fused in (True, False):
            t = time.perf_counter()
            _repeat(fused, reps[fused], *args)
            runs[fused].append((time.perf_counter() - t) / reps[fused] * 1e6)
    # Adjacent runs share the machine's state: the median of their ratios is
    # steadier than the ratio of the medians when other processes come and go.
    ratio = np.median(np.array(runs[True]) / np.array(runs[False]))
    return (float(np.median(runs[True])), float(np.median(runs[False])), float(ratio),
            bool(small.is_small(model.offsets, n)))


def report(title, rows, key_name):
    """Print one sweep: a row per (key, batch) with both times, the ratio and the rule."""
    print(f"\n{title}")
    print(f"  {key_name:>14} {'batch':>5} {'fused us':>9} {'general us':>10} {'ratio':>6} rule  (ratio: median of paired runs, fused / general)")
    for key, n, fused_us, general_us, ratio, rule in rows:
        mark = "fused" if rule else "general"
        print(f"  {key!s:>14} {n:>5} {fused_us:9.2f} {general_us:10.2f} {ratio:6.2f} {mark}")


def crossovers(rows):
    """Per batch: the largest key at which fused is faster, before the first key it is not."""
    out = {}
    for key, n, fused_us, general_us, ratio, rule in rows:
        best = out.setdefault(n, [None, False])
        if best[1]:
            continue
        if ratio < 1:
            best[0] = key
        else:
            best[1] = True
    return {n: best[0] for n, best in out.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="float32 only, one and two hidden layers, fewer widths")
    args = parser.parse_args()
    harness.print_machine()
    print(f"numba {numba.__version__}, numpy {np.__version__}; "
          f"rule: small.MAX_LAYER = {small.MAX_LAYER}, small.ROWS = {small.ROWS}")
    dtypes = (np.float32,) if args.quick else (np.float32, np.float64)
    depths = DEPTHS[:2] if args.quick else DEPTHS
    widths = WIDTHS[::2] if args.quick else WIDTHS
    for dtype in dtypes:
        name = np.dtype(dtype).name
        t = time.perf_counter()
        time_both((10, 8, 1), 8, dtype)
        print(f"\n[{name}] compile of both kernels: {time.perf_counter() - t:.1f} s")
        for depth in depths:
            rows = []
            for width in widths:
                for n in BATCHES:
                    rows.append((width, n) + time_both((10,) + (width,) * depth + (1,), n, dtype))
            report(f"[{name}] width sweep: 10 inputs, {depth} hidden layer(s), 1 output", rows,
                   "hidden width")
            print(f"  crossover (largest width where fused wins) by batch: {crossovers(rows)}")
        rows = []
        for n_in in INPUTS:
            for n in (32, 128):
                rows.append((n_in, n) + time_both((n_in, 32, 1), n, dtype))
        report(f"[{name}] inputs sweep: n_in-32-1", rows, "inputs")
        rows = []
        for k in OUTPUTS:
            rows.append((k, 32) + time_both((10, 32, k), 32, dtype, "cross_entropy"))
        report(f"[{name}] outputs sweep: 10-32-k, cross_entropy", rows, "outputs")


if __name__ == "__main__":
    main()
