"""``python -m gdcore warmup``: compile gdcore's kernels for this machine ahead of time.

Numba caches compiled kernels on disk, keyed by the CPU and by each source
file's modification time and size: the first call of each entry point on a
machine (or after a reinstall) compiles, for seconds to half a minute, and
later processes load the cache.  Running this once after installing, in a
Docker image build or on each node of a cluster, moves that wait out of the
first real run.

The entry points are exercised in groups (:data:`GROUPS`), each for each
dtype, one process per (group, dtype), as many at a time as there are cores:
compilation is single-threaded, so separate processes use them all.  Each
process counts the gdcore kernels it compiled (Numba's compile events fire
only on cache misses), so a second run reports zero.
"""

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from numba.core import event

from ._compile_notice import compiled_name

DTYPES = ("float32", "float64")


def functional(dtype):
    """predict, value_and_grad and loss on a small relu / cross-entropy network."""
    import gdcore as gd

    model, params, X, y = _problem(dtype)
    gd.predict(model, params, X)
    gd.value_and_grad(model, params, X, y)
    gd.loss(model, params, X, y)


def fit(dtype):
    """fit for one epoch with SGD and with Adam."""
    import gdcore as gd

    model, params, X, y = _problem(dtype)
    for optimizer in (gd.sgd(1e-2), gd.adam(1e-3)):
        gd.fit(model, params, X, y, optimizer=optimizer, epochs=1, batch_size=8, seed=0)


def minimize(dtype):
    """gd.minimize with L-BFGS and with Adam on a NumPy objective."""
    import gdcore as gd

    x0 = np.ones(3, dtype=dtype)
    for method in ("lbfgs", "adam"):
        gd.minimize(_quadratic, x0, jac=True, method=method, options={"maxiter": 5})


GROUPS = {"functional": functional, "fit": fit, "minimize": minimize}


def _problem(dtype):
    import gdcore as gd

    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 4)).astype(dtype)
    y = rng.integers(0, 3, 16)
    model = gd.mlp([4, 8, 3], activation="relu", loss="cross_entropy")
    return model, gd.init(model, seed=0, dtype=dtype), X, y


def _quadratic(x):
    return float(x @ x), 2 * x


class _Counter(event.Listener):
    """Counts the compilations of gdcore functions."""

    def __init__(self):
        self.names = set()

    def on_start(self, ev):
        name = compiled_name(ev.data.get("dispatcher"))
        if name is not None and name.startswith("gdcore."):
            self.names.add(name)

    def on_end(self, ev):
        pass


def run_group(name, dtype):
    """Run one group for one dtype in this process: ``(name, dtype, seconds,
    number of gdcore functions compiled)``."""
    counter = _Counter()
    event.register("numba:compile", counter)
    start = time.perf_counter()
    try:
        GROUPS[name](dtype)
    finally:
        event.unregister("numba:compile", counter)
    return name, dtype, time.perf_counter() - start, len(counter.names)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gdcore warmup",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="processes at a time (default: the number of cores)")
    parser.add_argument("--dtype", nargs="+", choices=DTYPES, default=list(DTYPES))
    parser.add_argument("--group", nargs="+", choices=sorted(GROUPS), default=list(GROUPS))
    opts = parser.parse_args(argv)
    if opts.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {opts.jobs}")
    tasks = [(g, d) for g in opts.group for d in opts.dtype]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=min(opts.jobs, len(tasks))) as pool:
        results = list(pool.map(run_group, *zip(*tasks)))
    total = time.perf_counter() - start
    for name, dtype, seconds, compiled in results:
        print(f"{name:<11} {dtype:<8} {seconds:6.1f} s  {compiled:3d} gdcore kernels compiled")
    print(f"warmed {len(results)} (group, dtype) pairs in {total:.1f} s with "
          f"{min(opts.jobs, len(tasks))} processes; "
          f"{sum(r[3] for r in results)} kernels compiled (0: all were cached already)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
