"""Training on a row-chunked Dask array with gdcore.dask, on a local cluster.

The data never sit in the client: a 200,000 x 20 logistic-regression data set
is generated chunk by chunk on the workers of a ``LocalCluster`` (2 worker
processes), as data loaded from zarr, parquet or .npy files would be.  Then:

1. ``gdd.objective`` + ``gd.minimize(method="lbfgs")``: full-batch L-BFGS
   over the chunks (each evaluation runs the compiled kernel on every chunk
   where it lies, and adds the per-chunk sums in a fixed order);
2. ``gdd.fit``: a 20-16-1 network trained by local SGD with model averaging
   over the chunks;
3. ``gdd.predict``: lazy predictions, reduced to an accuracy by Dask.

On a real cluster, replace the ``LocalCluster`` with
``Client("tcp://scheduler:8786")``; nothing else changes.

Run with ``python examples/dask_cluster.py [--rows N]``.
"""

import argparse
import time

import dask.array as da
import numpy as np
from distributed import Client, LocalCluster

import gdcore as gd
import gdcore.dask as gdd

N_FEATURES = 20
TRUE_WEIGHTS = np.linspace(-1.5, 1.5, N_FEATURES)


def make_block(block, block_id=None):
    """Features and 0/1 labels of one block of rows, seeded by the block's index."""
    rng = np.random.default_rng([7, block_id[0]])
    X = rng.standard_normal((block.shape[0], N_FEATURES))
    logits = X @ TRUE_WEIGHTS + 0.3
    y = (rng.random(block.shape[0]) < 1 / (1 + np.exp(-logits))).astype(float)
    return np.column_stack([X, y])


def synthetic(rows, chunk_rows):
    """``(X, y)`` as Dask arrays made on the workers, chunked by rows only."""
    template = da.zeros((rows, N_FEATURES + 1), chunks=(chunk_rows, -1))
    data = template.map_blocks(make_block, dtype=np.float64)
    return data[:, :N_FEATURES], data[:, N_FEATURES]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    args = parser.parse_args(argv)

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        X, y = synthetic(args.rows, args.chunk_rows)
        X, y = client.persist([X, y])  # the chunks stay on the workers
        print(f"{args.rows} rows x {N_FEATURES} features in {X.numblocks[0]} chunks on "
              f"{len(client.scheduler_info()['workers'])} workers")

        # 1. L-BFGS on the whole data set.
        logistic = gd.mlp([N_FEATURES, 1], loss="binary_cross_entropy")
        start = time.perf_counter()
        objective = gdd.objective(logistic, X, y, l2=1e-5)
        res = gd.minimize(objective, gd.init(logistic, seed=0), jac=True, method="lbfgs",
                          options=dict(gtol=1e-6))
        lbfgs_seconds = time.perf_counter() - start
        weights = logistic.unpack(res.x)[0][0].ravel()
        print(f"L-BFGS: {res.nit} iterations, {objective.n_evaluations} evaluations, "
              f"{lbfgs_seconds:.2f} s; loss {res.fun:.5f}; largest weight error "
              f"{np.abs(weights - TRUE_WEIGHTS).max():.3f}")

        # 2. A small network by local SGD.
        net = gd.mlp([N_FEATURES, 16, 1], activation="tanh", loss="binary_cross_entropy")
        start = time.perf_counter()
        fitted = gdd.fit(net, gd.init(net, seed=0), X, y, optimizer=gd.adam(1e-2), epochs=3,
                         batch_size=64, local_steps=32, seed=0, progress=False)
        fit_seconds = time.perf_counter() - start
        print(f"local SGD: {fitted.status}, loss by epoch "
              f"{[round(v, 4) for v in fitted.history['loss']]}, {fit_seconds:.2f} s")

        # 3. Lazy predictions, reduced on the workers.
        predicted = gdd.predict(net, fitted.params, X)[:, 0] > 0.5
        accuracy = float((predicted == (y > 0.5)).mean().compute())
        print(f"accuracy of the network: {accuracy:.4f}")
        objective.release()
    return {"lbfgs": res, "weights": weights, "fit": fitted, "accuracy": accuracy}


if __name__ == "__main__":
    main()
