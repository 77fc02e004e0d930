"""``python -m gdcore warmup``: compile gdcore's kernels for this machine ahead of time.

Numba caches compiled kernels on disk, keyed by the CPU and by each source
file's modification time and size: the first call of each entry point on a
machine (or after a reinstall) compiles, for seconds to half a minute, and
later processes load the cache.  Running this once after installing, in a
Docker image build or on each node of a cluster, moves that wait out of the
first real run.

A model's kernels are compiled for its loss, its activations and its
optimizer (:func:`gdcore.kernels._jit.per_code`), so warming up means naming
them: by default a relu network with each of the cross-entropy and mse
losses, trained with SGD and with Adam; ``--activation``, ``--loss`` and
``--optimizer`` name others (``--optimizer all`` for every optimizer).

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

from . import codes
from ._compile_notice import compiled_name

DTYPES = ("float32", "float64")


def functional(dtype, spec):
    """predict, value_and_grad and loss on a small network of each named kind."""
    import gdcore as gd

    for model, params, X, y in _problems(dtype, spec):
        gd.predict(model, params, X)
        gd.value_and_grad(model, params, X, y)
        gd.loss(model, params, X, y)


def fit(dtype, spec):
    """fit for one epoch, with each named optimizer, on each named kind of network."""
    import gdcore as gd

    for model, params, X, y in _problems(dtype, spec):
        for name in spec.optimizer:
            optimizer = gd.sgd(1e-2) if name == "sgd" else name
            gd.fit(model, params, X, y, optimizer=optimizer, epochs=1, batch_size=8, seed=0,
                   progress=False)


def minimize(dtype, spec):
    """gd.minimize with L-BFGS and with each named optimizer on a NumPy objective."""
    import gdcore as gd

    x0 = np.ones(3, dtype=dtype)
    for name in ("lbfgs", *spec.optimizer):
        method = gd.sgd(1e-2) if name == "sgd" else name
        gd.minimize(_quadratic, x0, jac=True, method=method, options={"maxiter": 5})


GROUPS = {"functional": functional, "fit": fit, "minimize": minimize}


def _problems(dtype, spec):
    """A small (model, params, X, y) for each named activation and loss."""
    import gdcore as gd

    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 4)).astype(dtype)
    labels = rng.integers(0, 3, 16)
    targets = {"cross_entropy": labels, "binary_cross_entropy": np.eye(3)[labels]}
    for activation in spec.activation:
        for loss in spec.loss:
            model = gd.mlp([4, 8, 3], activation=activation, loss=loss)
            yield model, gd.init(model, seed=0, dtype=dtype), X, targets.get(loss, X[:, :3])


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


def run_group(name, dtype, spec):
    """Run one group for one dtype in this process: ``(name, dtype, seconds,
    number of gdcore functions compiled)``."""
    counter = _Counter()
    event.register("numba:compile", counter)
    start = time.perf_counter()
    try:
        GROUPS[name](dtype, spec)
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
    parser.add_argument("--activation", nargs="+", default=["relu"],
                        choices=sorted(set(codes.ACTIVATIONS) - {"softmax"}),
                        help="hidden activations of the networks to warm (default: relu)")
    parser.add_argument("--loss", nargs="+", default=["cross_entropy", "mse"],
                        choices=sorted(codes.LOSSES),
                        help="losses of the networks to warm (default: cross_entropy mse)")
    parser.add_argument("--optimizer", nargs="+", default=["sgd", "adam"],
                        choices=["all"] + sorted(codes.OPTIMIZER_NAMES.values()),
                        help="optimizers of fit and minimize (default: sgd adam)")
    opts = parser.parse_args(argv)
    if "all" in opts.optimizer:
        opts.optimizer = [codes.OPTIMIZER_NAMES[c] for c in sorted(codes.OPTIMIZER_NAMES)]
    spec = argparse.Namespace(activation=opts.activation, loss=opts.loss,
                              optimizer=opts.optimizer)
    if opts.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {opts.jobs}")
    tasks = [(g, d) for g in opts.group for d in opts.dtype]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=min(opts.jobs, len(tasks))) as pool:
        results = list(pool.map(run_group, *zip(*tasks), [spec] * len(tasks)))
    total = time.perf_counter() - start
    for name, dtype, seconds, compiled in results:
        print(f"{name:<11} {dtype:<8} {seconds:6.1f} s  {compiled:3d} gdcore kernels compiled")
    print(f"warmed {len(results)} (group, dtype) pairs in {total:.1f} s with "
          f"{min(opts.jobs, len(tasks))} processes; "
          f"{sum(r[3] for r in results)} kernels compiled (0: all were cached already)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
