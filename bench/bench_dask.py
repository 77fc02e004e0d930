"""Benchmark: ``gdcore.dask`` on a ``distributed`` LocalCluster, against dask-ml (issue 14).

Everything runs on ``LocalCluster(n_workers=2, threads_per_worker=1)`` (worker
processes), peers in the same run.  The data are a fixed synthetic logistic
model, float64, 20 features: row block ``i`` is made by :func:`synthetic_block`
from ``np.random.default_rng([SEED, i])`` (standard-normal features, labels
drawn from the sigmoid of a fixed linear model), on the workers (one task per
block, so the client never holds a Dask data set) and, for scikit-learn, in
this process from the same function (bitwise the same blocks; checked).

1. **Logistic regression fit**, 200,000 x 20 (4 chunks of 50,000 rows) and
   2,000,000 x 20 (40 chunks of 50,000 rows): ``gd.mlp([20, 1],
   loss="binary_cross_entropy")`` with ``gdd.objective(model, X, y, l2=1/(C n))``
   and ``gd.minimize(obj, 0, jac=True, method="lbfgs")`` against
   ``dask_ml.linear_model.LogisticRegression(C=1, solver="lbfgs")`` on the same
   persisted arrays; scikit-learn's ``LogisticRegression(C=1)`` on one BLAS
   thread on the NumPy data is the reference optimum (``tol=1e-10``).  Time:
   from the persisted arrays to the fitted coefficients (gdcore's objective
   construction included, its ``release`` not), median over rounds in which
   the peers take turns (settle pause, garbage collected, collector paused);
   one untimed run of each first (the workers load their kernels).
   *Same problem.* scikit-learn minimises ``C sum(logloss_i) + ||w||^2 / 2``
   (intercept not penalised); gdcore the mean loss ``+ l2 ||w||^2 / 2`` (weights,
   not biases), so ``l2 = 1 / (C n)``.  dask-ml's ``LogisticRegression`` hands
   dask_glm's ``lbfgs`` ``lamduh = 1 / C`` and ``regularizer="l2"``, which
   minimises ``sum(logloss_i) + lamduh ||beta||^2 / 2`` over ``beta`` = weights
   AND intercept (dask-ml appends a column of ones), after standardising the
   columns of ``X`` (dask_glm's ``@normalize``: the penalty then falls on the
   standardised coefficients).  So dask-ml gets ``solver_kwargs={"normalize":
   False, "regularizer": L2Weights()}``: no standardisation, and a dask_glm
   ``Regularizer`` written here that leaves the last coefficient (the
   intercept) out; ``lamduh = 1/C`` then gives ``(1/C) x`` scikit-learn's
   objective, the same minimiser.  *Same stopping rules.* dask_glm calls
   ``scipy.optimize.fmin_l_bfgs_b(pgtol=tol)`` on that sum-scale objective
   (``factr`` left at 1e7: stop when f falls by less than 2.2e-9 relatively);
   gdcore's gradient is ``1/n`` of it, so gdcore gets ``gtol = GTOL`` and dask-ml
   ``tol = GTOL * n``, and gdcore ``ftol = 2.22e-9`` (factr 1e7's).  dask-ml's
   iterations are read off ``fmin_l_bfgs_b``'s info (wrapped here).  Printed:
   max |coef - scikit-learn's| and |intercept - scikit-learn's| of each.
2. **Overhead per objective evaluation** vs chunks (1, 2, ..., 64) of a 6,400 x 20
   logistic regression: median time of one ``obj(params)`` call; beside it the
   floor of the cluster -- median round trip of a trivial
   ``client.submit(f).result()``, of two trivial tasks (one on each worker)
   gathered, and of a trivial call of a Dask actor (what gdcore's chunk
   servers use) -- in the same run.
3. **Time per evaluation vs rows**: 1e5, 1e6, 1e7 rows x 20 (chunks of
   250,000 rows; 1e7 x 20 float64 is 1.6 GB, generated block by block on the
   workers): median ms per ``obj(params)`` and ns per row; beside them the work
   of one chunk without Dask, in this process on one thread: ``gd.value_and_grad``
   on 250,000 rows, and NumPy's ``X @ w`` and ``X.T @ r`` (its memory-bound floor).
4. **Larger than the workers' memory**: 2.5 GB (15,000,000 x 20 float64, plus
   labels) written block by block to a ``.npy`` in a temporary directory
   (``np.lib.format.open_memmap``), read lazily in chunks of 250,000 rows
   (:class:`NpyRows`: each task opens the file with ``mmap_mode="r"`` and
   copies its rows -- ``da.from_array`` on the memmap itself would pickle
   the whole array into the graph), on a fresh ``LocalCluster(n_workers=2,
   threads_per_worker=1, memory_limit="800MB")``: ``gdd.objective`` and
   ``gd.minimize(lbfgs, maxiter=5)``.  Runs in a child process (this script
   with ``--spill-child``) under a time limit, so a hung or killed cluster is
   reported, not waited for (after 240 s; 90 s with ``--quick``); reports the
   times, the workers' spill (``Worker.data``'s spilled bytes and disk
   metrics, RSS, the cluster's memory warnings, counted) or exactly what
   failed, and what Dask's ``sizeof`` makes of a gdcore chunk.  The files are
   removed at the end.  (The workers import this script -- multiprocessing
   spawns them -- so scikit-learn and dask-ml are imported only where used:
   a worker with gdcore loaded holds ~175 MB before any data; Dask's
   spill target is 60% of ``memory_limit`` for the data on top of that, so a
   400 MB limit leaves the workers no room and gets them restarted.)

Timings are tagged with the CPU load of processes outside this benchmark
(the worker processes are its children and count as its own); figures taken
while other processes used more than 0.3 cores are flagged CONTENDED.

Targets (issue 14), PASS/MISS: gdcore's fit at least 5x faster than dask-ml's
(each size); both within 1e-4 of scikit-learn's coefficients and intercept;
under 20 ms per evaluation at 16 chunks; the larger-than-memory run completes.

Run ``.venv/bin/python bench/bench_dask.py`` (about 8 minutes on a 2-core
machine, up to 4 of them in the larger-than-memory run when it hangs),
``--quick`` for a check in about 2 minutes (no 2M fit, no 1e7 rows, fewer
repeats, a 2.0 GB file for the larger-than-memory run), ``--skip-spill`` to
leave that run out.  Results also go
to ``bench/results/dask.json``.
"""

# scikit-learn and dask-ml are imported where used: the Dask workers import this script
# (multiprocessing's spawn runs it as __mp_main__), and the larger-than-memory run needs
# them light.
import argparse
import functools
import gc
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as harness  # noqa: E402  (bench/ is a folder of scripts, not a package)

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout: this tree's gdcore, here and in the workers
    sys.path.insert(0, str(REPO))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

import dask  # noqa: E402
import dask.array as da  # noqa: E402
import distributed  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

import gdcore as gd  # noqa: E402
import gdcore.dask as gdd  # noqa: E402

D = 20  # features
SEED = 14
C = 1.0
FIT_CHUNK = 50_000
FIT_SIZES = (200_000, 2_000_000)
GTOL = 1e-7  # gdcore's gtol on the mean-scale gradient; dask-ml gets GTOL * n
FTOL = 2.220446049250313e-09  # fmin_l_bfgs_b's factr=1e7 (dask_glm leaves it), as gdcore's ftol
MAX_ITER = 1000
SK_TOL = 1e-10
COEF_TOLERANCE = 1e-4
SPEED_TARGET = 5.0

OVERHEAD_ROWS = 6_400
CHUNK_COUNTS = (1, 2, 4, 8, 16, 32, 64)
OVERHEAD_TARGET_MS = 20.0
OVERHEAD_TARGET_CHUNKS = 16

SCALING_CHUNK = 250_000
SCALING_ROWS = (100_000, 1_000_000, 10_000_000)

SPILL_ROWS = 15_000_000  # x 21 float64 = 2.5 GB
SPILL_ROWS_QUICK = 12_000_000  # 2.0 GB: still more than the 2 x 800 MB given to the workers
SPILL_CHUNK = 250_000
SPILL_MEMORY_LIMIT = "800MB"
SPILL_MAXITER = 5
SPILL_TIMEOUT = 300  # s (--quick: 150); the child reports a hang at 60 s less
SPILL_TIMEOUT_QUICK = 150

SETTLE_SECONDS = 0.2
MAX_BACKGROUND = 0.3
RESULTS_PATH = Path(__file__).resolve().parent / "results" / "dask.json"
W_TRUE = np.random.default_rng([SEED, 999]).standard_normal(D) * 0.5
B_TRUE = 0.3


# Data ---------------------------------------------------------------------------------
def synthetic_block(i, rows):
    """Row block ``i`` of the synthetic logistic data: ``(X (rows, D), y (rows,))``, float64."""
    rng = np.random.default_rng([SEED, i])
    X = rng.standard_normal((rows, D))
    p = 1.0 / (1.0 + np.exp(-(X @ W_TRUE + B_TRUE)))
    y = (rng.random(rows) < p).astype(np.float64)
    return X, y


def block_sizes(n, chunk):
    return [min(chunk, n - lo) for lo in range(0, n, chunk)]


def dask_data(n, chunk):
    """Lazy ``(X, y)`` of ``n`` rows, one generating task per block (run on the workers)."""
    make = dask.delayed(synthetic_block, pure=True, nout=2)
    xs, ys = [], []
    for i, rows in enumerate(block_sizes(n, chunk)):
        Xb, yb = make(i, rows)
        xs.append(da.from_delayed(Xb, shape=(rows, D), dtype=np.float64))
        ys.append(da.from_delayed(yb, shape=(rows,), dtype=np.float64))
    return da.concatenate(xs), da.concatenate(ys)


def numpy_data(n, chunk):
    """The same rows as :func:`dask_data`, in this process."""
    blocks = [synthetic_block(i, rows) for i, rows in enumerate(block_sizes(n, chunk))]
    return np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks])


# Load of other processes ----------------------------------------------------------------
def contended(loads):
    """More than half of the tagged measurements had a busy neighbour."""
    known = [x for x in loads if x is not None]
    return bool(known) and sum(x > MAX_BACKGROUND for x in known) > len(known) / 2


def timed_calls(fn, calls, warmup=3):
    """Per-call seconds of ``calls`` calls of ``fn`` after ``warmup`` untimed ones, and the load."""
    for _ in range(warmup):
        fn()
    gc.collect()
    gc.disable()
    probe = harness.FamilyLoad()
    probe.start()
    try:
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return np.array(times), probe.stop()


def summary_ms(times, load):
    return {"median_ms": float(np.median(times) * 1e3),
            "p25_ms": float(np.percentile(times, 25) * 1e3),
            "p75_ms": float(np.percentile(times, 75) * 1e3),
            "calls": int(len(times)), "background": load,
            "contended": load is not None and load > MAX_BACKGROUND}


# The cluster ----------------------------------------------------------------------------
def start_cluster(memory_limit="auto", silence=logging.ERROR):
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           memory_limit=memory_limit, dashboard_address=None,
                           silence_logs=silence)
    return cluster, Client(cluster)


def _worker_gdcore():
    import gdcore
    return gdcore.__file__


def check_workers(client):
    """The workers must import this tree's gdcore: say which file they load."""
    files = set(client.run(_worker_gdcore).values())
    mine = {gd.__file__}
    print(f"workers import gdcore from {', '.join(sorted(files))}"
          + ("" if files == mine else f"  (WARNING: this process uses {gd.__file__})"))
    return sorted(files)


# 1. Logistic regression fits ----------------------------------------------------------------
@functools.cache
def _l2_weights_class():
    """dask_glm's L2 without the last coefficient (dask-ml's appended intercept column)."""
    from dask_glm.regularizers import Regularizer

    class L2Weights(Regularizer):
        name = "l2_weights"

        def f(self, beta):
            return (beta[:-1] ** 2).sum() / 2

        def gradient(self, beta):
            mask = np.ones(beta.shape[0])
            mask[-1] = 0.0
            return beta * mask

    return L2Weights



class _LbfgsInfo:
    """Records the info of dask_glm's ``fmin_l_bfgs_b`` calls (iterations, evaluations)."""

    def __init__(self):
        import dask_glm.algorithms as algorithms
        self.last = None
        self._module = algorithms
        original = algorithms.fmin_l_bfgs_b

        def recording(*args, **kwargs):
            x, f, info = original(*args, **kwargs)
            self.last = {"nit": int(info["nit"]), "nfev": int(info["funcalls"]),
                         "warnflag": int(info["warnflag"]), "task": str(info["task"])}
            return x, f, info

        algorithms.fmin_l_bfgs_b = recording


def sklearn_reference(Xn, yn):
    """scikit-learn's optimum on one BLAS thread: coef, intercept, n_iter, seconds."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):
        t0 = time.perf_counter()
        est = LogisticRegression(C=C, tol=SK_TOL, max_iter=MAX_ITER).fit(Xn, yn)
        seconds = time.perf_counter() - t0
    return {"coef": est.coef_.ravel().copy(), "intercept": float(est.intercept_[0]),
            "n_iter": int(est.n_iter_[0]), "seconds": seconds}


def fit_gdcore(model, X, y, n):
    """gdcore: objective construction + L-BFGS from zeros; the release is not timed."""
    t0 = time.perf_counter()
    obj = gdd.objective(model, X, y, l2=1.0 / (C * n))
    t_obj = time.perf_counter() - t0
    res = gd.minimize(obj, np.zeros(model.n_params), jac=True, method="lbfgs",
                      options={"gtol": GTOL, "ftol": FTOL, "maxiter": MAX_ITER})
    seconds = time.perf_counter() - t0
    obj.release()
    (W, b), = model.unpack(np.array(res.x))
    return {"seconds": seconds, "objective_s": t_obj, "coef": W.ravel().copy(),
            "intercept": float(b[0]), "nit": int(res.nit), "nfev": int(res.nfev),
            "message": str(res.message)}


def fit_dask_ml(X, y, n, info):
    from dask_ml.linear_model import LogisticRegression
    est = LogisticRegression(C=C, solver="lbfgs", tol=GTOL * n, max_iter=MAX_ITER,
                             solver_kwargs={"normalize": False,
                                            "regularizer": _l2_weights_class()()})
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # dask_glm's fuse_ave_width key
        warnings.simplefilter("ignore", DeprecationWarning)  # and its iprint for SciPy
        est.fit(X, y)
    seconds = time.perf_counter() - t0
    out = {"seconds": seconds, "coef": np.asarray(est.coef_).ravel().copy(),
           "intercept": float(est.intercept_)}
    out.update(info.last or {})
    return out


def fit_comparison(client, model, n, rounds, warmup, info):
    """Section 1 at one size: scikit-learn reference, then gdcore and dask-ml taking turns."""
    n_chunks = len(block_sizes(n, FIT_CHUNK))
    print(f"\n[fit] {n:,} x {D} rows in {n_chunks} chunks of {FIT_CHUNK:,}: generating ...",
          flush=True)
    Xn, yn = numpy_data(n, FIT_CHUNK)
    X, y = dask_data(n, FIT_CHUNK)
    X, y = dask.persist(X, y)
    distributed.wait([X, y])
    check = bool(np.array_equal(X[::997].compute(), Xn[::997])
                 and np.array_equal(y[::997].compute(), yn[::997]))
    ref = sklearn_reference(Xn, yn)
    print(f"  scikit-learn LogisticRegression(C={C}, tol={SK_TOL}) on one thread: "
          f"{ref['seconds']:.2f} s, {ref['n_iter']} iterations  (data check, every 997th row "
          f"of the workers' blocks equal to this process's: {check})", flush=True)
    del Xn, yn
    runs = {"gdcore": lambda: fit_gdcore(model, X, y, n),
            "dask-ml": lambda: fit_dask_ml(X, y, n, info)}
    first = {}
    if warmup:
        for name, fn in runs.items():
            first[name] = fn()["seconds"]
        print("  first runs (untimed warm-up): "
              + ", ".join(f"{k} {v:.2f} s" for k, v in first.items()), flush=True)
    results = {name: [] for name in runs}
    names = list(runs)
    for r in range(rounds):
        for name in names[r % 2:] + names[:r % 2]:
            gc.collect()
            time.sleep(SETTLE_SECONDS)
            probe = harness.FamilyLoad()
            probe.start()
            gc.disable()
            try:
                out = runs[name]()
            finally:
                gc.enable()
            out["background"] = probe.stop()
            results[name].append(out)
            print(f"  round {r}: {name} {out['seconds']:.2f} s, nit {out.get('nit')}"
                  + (f"  (background {harness.fmt_load(out['background'])})"
                     if out["background"] and out["background"] > MAX_BACKGROUND else ""),
                  flush=True)
    row = {"n": n, "chunks": n_chunks, "chunk_rows": FIT_CHUNK, "sklearn": {
        k: v for k, v in ref.items() if k != "coef"}, "data_check": check, "first_run_s": first}
    for name, outs in results.items():
        last = outs[-1]
        row[name] = {
            "seconds_median": float(np.median([o["seconds"] for o in outs])),
            "seconds": [o["seconds"] for o in outs],
            "nit": last.get("nit"), "nfev": last.get("nfev"),
            "stop": last.get("message") or last.get("task"),
            "coef_diff": float(np.abs(last["coef"] - ref["coef"]).max()),
            "intercept_diff": abs(last["intercept"] - ref["intercept"]),
            "contended": contended([o["background"] for o in outs]),
            "backgrounds": [o["background"] for o in outs],
        }
        if name == "gdcore":
            row[name]["objective_s_median"] = float(np.median([o["objective_s"] for o in outs]))
    row["ratio"] = row["dask-ml"]["seconds_median"] / row["gdcore"]["seconds_median"]
    client.cancel([X, y])
    return row


def fit_table(rows):
    headers = ["rows", "chunks", "impl", "fit time", "iterations", "evaluations",
               "max |coef - sk|", "|intercept - sk|", "dask-ml / gdcore"]
    out = []
    for r in rows:
        for name in ("gdcore", "dask-ml"):
            v = r[name]
            out.append([f"{r['n']:,}", r["chunks"], name,
                        f"{v['seconds_median']:.3f} s" + (" [CONTENDED]" if v["contended"] else ""),
                        v["nit"], v["nfev"], f"{v['coef_diff']:.2e}",
                        f"{v['intercept_diff']:.2e}",
                        f"{r['ratio']:.1f}x" if name == "gdcore" else ""])
        out.append([f"{r['n']:,}", r["chunks"], "scikit-learn (1 thread)",
                    f"{r['sklearn']['seconds']:.3f} s", r["sklearn"]["n_iter"], "", "reference",
                    "", ""])
    return harness.markdown_table(headers, out)


# 2. Overhead per evaluation vs chunks ------------------------------------------------------
def _nothing():
    return None


class _Echo:
    """A trivial Dask actor: the round trip of an actor call (gdcore's chunk servers)."""

    def ping(self):
        return None


def floor_round_trips(client, calls):
    """The cluster's floor: trivial task, two trivial tasks (one per worker), actor call."""
    workers = sorted(client.scheduler_info()["workers"])
    actor = client.submit(_Echo, actor=True, workers=[workers[0]], pure=False).result()

    def one_task():
        client.submit(_nothing, pure=False).result()

    def two_tasks():
        client.gather([client.submit(_nothing, pure=False, workers=[w]) for w in workers])

    def actor_call():
        actor.ping().result()

    out = {}
    for name, fn in (("submit(f).result()", one_task),
                     ("two tasks, one per worker, gathered", two_tasks),
                     ("actor call .result()", actor_call)):
        out[name] = summary_ms(*timed_calls(fn, calls, warmup=5))
    return out


def overhead_vs_chunks(client, model, counts, calls):
    """Section 2: median time of one ``obj(params)`` on OVERHEAD_ROWS rows in ``c`` chunks."""
    Xn, yn = numpy_data(OVERHEAD_ROWS, OVERHEAD_ROWS)
    params = gd.init(model, seed=0)
    rows = []
    for c in counts:
        rows_per_chunk = OVERHEAD_ROWS // c
        X = da.from_array(Xn, chunks=(rows_per_chunk, D))
        y = da.from_array(yn, chunks=(rows_per_chunk,))
        t0 = time.perf_counter()
        obj = gdd.objective(model, X, y, l2=1.0 / OVERHEAD_ROWS)
        construct = time.perf_counter() - t0
        row = {"chunks": c, "rows_per_chunk": rows_per_chunk, "objective_s": construct}
        row.update(summary_ms(*timed_calls(lambda: obj(params), calls)))
        obj.release()
        rows.append(row)
        print(f"  {c:>2} chunks: {row['median_ms']:.2f} ms per evaluation (objective built in "
              f"{construct * 1e3:.0f} ms)", flush=True)
    return rows


def overhead_table(rows, floor):
    out = [[r["chunks"], f"{r['rows_per_chunk']:,}", f"{r['median_ms']:.2f}",
            f"{r['p25_ms']:.2f} - {r['p75_ms']:.2f}", f"{r['objective_s'] * 1e3:.0f}",
            "CONTENDED" if r["contended"] else ""] for r in rows]
    for name, v in floor.items():
        out.append([f"floor: {name}", "", f"{v['median_ms']:.2f}",
                    f"{v['p25_ms']:.2f} - {v['p75_ms']:.2f}", "",
                    "CONTENDED" if v["contended"] else ""])
    return harness.markdown_table(
        ["chunks", "rows per chunk", "ms per evaluation (median)", "p25 - p75",
         "objective built (ms)", "note"], out)


# 3. Time per evaluation vs rows -----------------------------------------------------------------
def scaling_vs_rows(client, model, sizes, calls):
    """Section 3: ms per evaluation and ns per row at each size (data made on the workers)."""
    params = gd.init(model, seed=0)
    rows = []
    for n in sizes:
        X, y = dask_data(n, SCALING_CHUNK)  # never persisted apart: the objective holds the chunks
        t0 = time.perf_counter()
        obj = gdd.objective(model, X, y, l2=1.0 / n)
        construct = time.perf_counter() - t0
        row = {"rows": n, "chunks": obj.n_chunks, "objective_s": construct}
        row.update(summary_ms(*timed_calls(lambda: obj(params), calls, warmup=2)))
        row["ns_per_row"] = row["median_ms"] * 1e6 / n
        obj.release()
        del obj
        rows.append(row)
        print(f"  {n:>12,} rows ({row['chunks']} chunks): {row['median_ms']:.2f} ms per "
              f"evaluation, {row['ns_per_row']:.2f} ns per row (data generated and objective "
              f"built in {construct:.1f} s)", flush=True)
    return rows


def kernel_reference(model, calls):
    """The work of one chunk without Dask: ``value_and_grad`` on SCALING_CHUNK rows in this
    process, one BLAS thread (as on a worker), and NumPy's two products ``X @ w``,
    ``X.T @ r`` on the same rows (the memory-bound floor of that work)."""
    from threadpoolctl import threadpool_limits

    from gdcore.functional import value_and_grad
    X, y = synthetic_block(0, SCALING_CHUNK)
    params = gd.init(model, seed=0)
    w, r = params[:D].copy(), y - 0.5
    out = {}
    with threadpool_limits(1):
        for name, fn in (("gdcore value_and_grad, threads=1", lambda: value_and_grad(
                             model, params, X, y, threads=1)),
                         ("NumPy X @ w and X.T @ r, 1 thread", lambda: (X @ w, X.T @ r))):
            row = summary_ms(*timed_calls(fn, calls))
            row["ns_per_row"] = row["median_ms"] * 1e6 / SCALING_CHUNK
            out[name] = row
            print(f"  in this process, one chunk of {SCALING_CHUNK:,} rows: {name}: "
                  f"{row['median_ms']:.2f} ms, {row['ns_per_row']:.1f} ns per row", flush=True)
    return out


def scaling_table(rows, kernel):
    return harness.markdown_table(
        ["rows", "chunks", "ms per evaluation (median)", "p25 - p75", "ns per row",
         "generated + built (s)", "note"],
        [[f"{r['rows']:,}", r["chunks"], f"{r['median_ms']:.2f}",
          f"{r['p25_ms']:.2f} - {r['p75_ms']:.2f}", f"{r['ns_per_row']:.2f}",
          f"{r['objective_s']:.1f}", "CONTENDED" if r["contended"] else ""] for r in rows]
        + [[f"{SCALING_CHUNK:,} (one chunk, no Dask)", 1, f"{v['median_ms']:.2f}",
            f"{v['p25_ms']:.2f} - {v['p75_ms']:.2f}", f"{v['ns_per_row']:.2f}", "",
            name + (" CONTENDED" if v["contended"] else "")] for name, v in kernel.items()])


# 4. Larger than the workers' memory ------------------------------------------------------------
class NpyRows:
    """Rows of a ``.npy`` file, read on demand: what ``da.from_array`` slices.

    Pickles as its path; each ``[rows, cols]`` opens the file with
    ``mmap_mode="r"`` and copies only those rows.
    """

    def __init__(self, path):
        self.path = str(path)
        a = np.load(self.path, mmap_mode="r")
        self.shape, self.dtype, self.ndim = a.shape, a.dtype, a.ndim

    def __getitem__(self, key):
        return np.array(np.load(self.path, mmap_mode="r")[key])


def write_npy(directory, rows, chunk):
    """X and y of ``rows`` rows written block by block to ``X.npy`` and ``y.npy``."""
    X = np.lib.format.open_memmap(directory / "X.npy", mode="w+", dtype=np.float64,
                                  shape=(rows, D))
    y = np.lib.format.open_memmap(directory / "y.npy", mode="w+", dtype=np.float64,
                                  shape=(rows,))
    lo = 0
    for i, n in enumerate(block_sizes(rows, chunk)):
        X[lo:lo + n], y[lo:lo + n] = synthetic_block(i, n)
        lo += n
    X.flush()
    y.flush()
    del X, y
    return (directory / "X.npy").stat().st_size + (directory / "y.npy").stat().st_size


def _worker_memory(dask_worker):
    """A worker's memory and spill: RSS, managed bytes, spilled bytes, disk traffic."""
    import psutil
    data = dask_worker.data
    out = {"rss_mb": psutil.Process().memory_info().rss / 1e6,
           "memory_limit_mb": (dask_worker.memory_manager.memory_limit or 0) / 1e6,
           "keys": len(data), "status": str(dask_worker.status)}
    if hasattr(data, "spilled_total"):
        mem, disk = data.spilled_total
        out.update(keys_in_memory=len(data.fast), keys_spilled=len(data.slow),
                   spilled_sizeof_mb=mem / 1e6, spilled_disk_mb=disk / 1e6,
                   disk_metrics={f"{label} ({unit})": value for (label, unit), value
                                 in data.cumulative_metrics.items()})
    return out


def _spill_stages(tmp, rows, chunk, result, box):
    """The stages of the larger-than-memory run, recorded in ``result`` as they pass."""
    t0 = time.perf_counter()
    result["file_bytes"] = write_npy(tmp, rows, chunk)
    result["write_s"] = time.perf_counter() - t0
    result["stage"] = "starting the cluster"
    box["cluster"], box["client"] = start_cluster(memory_limit=SPILL_MEMORY_LIMIT,
                                                  silence=logging.WARNING)
    client = box["client"]
    client.run(_import_gdcore_dask)
    result["workers_before"] = _snapshot(client)  # gdcore imported, no data
    X = da.from_array(NpyRows(tmp / "X.npy"), chunks=(chunk, D))
    y = da.from_array(NpyRows(tmp / "y.npy"), chunks=(chunk,))
    model = gd.mlp([D, 1], loss="binary_cross_entropy")
    result["stage"] = "gdd.objective (loading and persisting the chunks)"
    t0 = time.perf_counter()
    obj = gdd.objective(model, X, y, l2=1.0 / rows)
    result["objective_s"] = time.perf_counter() - t0
    result["workers_after_objective"] = _snapshot(client)
    result["stage"] = f"gd.minimize(lbfgs, maxiter={SPILL_MAXITER})"
    t0 = time.perf_counter()
    res = gd.minimize(obj, np.zeros(model.n_params), jac=True, method="lbfgs",
                      options={"maxiter": SPILL_MAXITER})
    result["minimize_s"] = time.perf_counter() - t0
    result.update(nit=int(res.nit), nfev=int(res.nfev), fun=float(res.fun),
                  message=str(res.message))
    result["workers_after_minimize"] = _snapshot(client)
    obj.release()
    result["stage"] = "done"
    result["completed"] = True


def _snapshot(client):
    """:func:`_worker_memory` of every worker, or what went wrong asking (a worker dying)."""
    try:
        return client.run(_worker_memory)
    except Exception as exc:
        return f"could not ask the workers: {type(exc).__name__}: {exc}"


def _import_gdcore_dask():
    import gdcore.dask  # noqa: F401


def spill_child(tmp, rows, chunk, deadline):
    """The larger-than-memory run (in a child process); prints one JSON line last.

    The stages run in a thread; if they have not ended after ``deadline``
    seconds (a cluster whose workers all died leaves Dask waiting for ever),
    the stage reached is reported as hung.
    """
    import threading
    result = {"rows": rows, "chunk_rows": chunk, "memory_limit": SPILL_MEMORY_LIMIT,
              "maxiter": SPILL_MAXITER, "stage": "writing the .npy files", "completed": False}
    box = {}

    def run():
        try:
            _spill_stages(Path(tmp), rows, chunk, result, box)
        except BaseException as exc:  # report exactly what failed, wherever it failed
            result["error"] = f"{type(exc).__name__}: {exc}"
            result["traceback"] = traceback.format_exc()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(deadline)
    if thread.is_alive():
        result["error"] = (f"no result after {deadline:.0f} s: hung in stage "
                           f"'{result['stage']}'")
    client = box.get("client")
    if client is not None and not result["completed"]:
        try:
            result["workers_at_error"] = _snapshot(client)
        except Exception as exc:
            result["workers_at_error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(result, default=str), flush=True)
    for closer in (client, box.get("cluster")):
        try:
            if closer is not None:
                closer.close(timeout=20)
        except Exception:
            pass
    os._exit(0)  # a hung thread must not keep the process alive


LOG_PATTERNS = ("memory", "spill", "pause", "restart", "terminat", "killed", "exceeded")


def larger_than_memory(rows, chunk, timeout):
    """Section 4: :func:`spill_child` in a child process (its own process group), in a
    temporary directory removed here whatever happens."""
    gb = rows * (D + 1) * 8 / 1e9
    print(f"\n[larger than memory] {rows:,} x {D} float64 + labels = {gb:.2f} GB on 2 workers "
          f"with memory_limit={SPILL_MEMORY_LIMIT} each, chunks of {chunk:,} rows ...",
          flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="gdcore-bench-dask-"))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--spill-child", str(tmp), str(rows),
           str(chunk), str(timeout - 60)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the child and its cluster, nothing else
        stdout, stderr = proc.communicate()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    try:
        result = json.loads(stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        result = {"rows": rows, "completed": False,
                  "error": f"child exited with {proc.returncode} without a result",
                  "stderr_tail": stderr[-3000:]}
    result["temp_removed"] = not tmp.exists()
    result["wall_s"] = time.perf_counter() - t0
    result["log"] = _memory_log(stderr)
    result["sizeof_chunk"] = _sizeof_chunk(chunk)
    return result


def _sizeof_chunk(rows):
    """What Dask's ``sizeof`` (its memory accounting, spilling) makes of a gdcore chunk."""
    from dask.sizeof import sizeof

    from gdcore._chunked import Chunk
    X = np.zeros((rows, D))
    return {"array_bytes": X.nbytes, "dask_sizeof": int(sizeof(Chunk(X, np.zeros(rows), None,
                                                                     float(rows))))}


def _memory_log(stderr):
    """The cluster's log lines about memory (pausing, spilling, restarts, lost workers):
    the first of each kind, with how many times that kind occurred."""
    kinds = {}
    for line in stderr.splitlines():
        low = line.lower()
        if " - " in line and any(p in low for p in LOG_PATTERNS):
            message = line.split(" - ", 3)[-1]
            key = re.sub(r"tcp://[0-9.:]+|pid=\d+|[0-9.]+ ?[KMG]i?B|\d+(\.\d+)?%?|\{.*|"
                         r"'[^']*'|<.*", "#", message)
            if key not in kinds:
                kinds[key] = [message.strip()[:240], 0]
            kinds[key][1] += 1
    return [f"{n}x {first}" for first, n in kinds.values()][:20]


def print_spill(r):
    if r.get("file_bytes"):
        print(f"  wrote {r['file_bytes'] / 1e9:.2f} GB in {r['write_s']:.1f} s")
    if not r.get("completed"):
        print(f"  FAILED at stage '{r.get('stage', '?')}': {r.get('error')}")
        if r.get("traceback"):
            print("  " + "\n  ".join(r["traceback"].strip().splitlines()[-12:]))
        if r.get("stderr_tail"):
            print("  stderr: " + r["stderr_tail"])
    else:
        print(f"  completed: objective (load + persist) {r['objective_s']:.1f} s; minimize {r['minimize_s']:.1f}"
              f" s ({r['nit']} iterations, {r['nfev']} evaluations, "
              f"{r['minimize_s'] / max(r['nfev'], 1):.2f} s each, f = {r['fun']:.6f})")
    for stage in ("workers_before", "workers_after_objective", "workers_after_minimize",
                  "workers_at_error"):
        ws = r.get(stage)
        if isinstance(ws, dict):
            for addr, w in sorted(ws.items()):
                disk = {k: v for k, v in (w.get("disk_metrics") or {}).items()
                        if k.startswith(("disk-write", "disk-read"))}
                print(f"  {stage} {addr}: RSS {w['rss_mb']:.0f} MB of "
                      f"{w['memory_limit_mb']:.0f}, keys in memory {w.get('keys_in_memory')}, "
                      f"spilled {w.get('keys_spilled')} ({w.get('spilled_disk_mb', 0):.0f} MB "
                      f"on disk), status {w['status']}"
                      + (f", {', '.join(f'{k} {v:,.0f}' for k, v in disk.items())}"
                         if disk else ""))
        elif ws is not None:
            print(f"  {stage}: {ws}")
    for line in r.get("log", []):
        print(f"  log: {line}")
    sz = r.get("sizeof_chunk")
    if sz:
        print(f"  dask.sizeof of a gdcore chunk of {sz['array_bytes'] / 1e6:.0f} MB: "
              f"{sz['dask_sizeof']} bytes (what Dask's memory accounting sees)")
    print(f"  temp file removed: {r.get('temp_removed')}; {r.get('wall_s', 0):.0f} s in all")


# Verdicts and main --------------------------------------------------------------------
def verdicts_of(fits, overhead, spill):
    out = []
    for r in fits:
        v = r["gdcore"]
        out.append(harness.verdict(
            f"gdcore fit >= {SPEED_TARGET:g}x faster than dask-ml, {r['n']:,} rows",
            f"{r['ratio']:.1f}x ({v['seconds_median']:.2f} s vs "
            f"{r['dask-ml']['seconds_median']:.2f} s)", r["ratio"] >= SPEED_TARGET,
            v["contended"] or r["dask-ml"]["contended"]))
        for name in ("gdcore", "dask-ml"):
            d = max(r[name]["coef_diff"], r[name]["intercept_diff"])
            out.append(harness.verdict(
                f"{name} within {COEF_TOLERANCE:g} of scikit-learn's coefficients, "
                f"{r['n']:,} rows", f"{d:.2e}", d <= COEF_TOLERANCE, False))
    at = next((r for r in overhead if r["chunks"] == OVERHEAD_TARGET_CHUNKS), None)
    if at is not None:
        out.append(harness.verdict(
            f"evaluation under {OVERHEAD_TARGET_MS:g} ms at {OVERHEAD_TARGET_CHUNKS} chunks",
            f"{at['median_ms']:.2f} ms", at["median_ms"] < OVERHEAD_TARGET_MS, at["contended"]))
    if spill is not None:
        out.append(harness.verdict(
            "larger-than-memory objective + minimize completes",
            "completed" if spill.get("completed") else spill.get("error"),
            bool(spill.get("completed")), False))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="200k fit only, no 1e7 rows, fewer repeats, a 2.0 GB spill file")
    parser.add_argument("--skip-spill", action="store_true",
                        help="leave out the larger-than-memory run")
    parser.add_argument("--spill-child", nargs=4, metavar=("DIR", "ROWS", "CHUNK", "DEADLINE"),
                        help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.spill_child:
        tmp, rows, chunk, deadline = opts.spill_child
        spill_child(tmp, int(rows), int(chunk), float(deadline))
        return
    t_start = time.perf_counter()
    quick = opts.quick
    import dask_ml
    import sklearn

    print(f"gdcore.dask vs dask-ml {dask_ml.__version__} benchmark (float64; dask "
          f"{dask.__version__}, distributed {distributed.__version__}, scikit-learn "
          f"{sklearn.__version__})")
    harness.print_machine()
    blas = harness.blas_report()
    harness.print_blas(blas, "scikit-learn's reference fit runs on one thread; the workers "
                       "run one thread each (gdcore's kernels: threads=1)")
    print(f"gdcore {gd.__version__} from {gd.__file__}")
    idle = harness.print_background(MAX_BACKGROUND, "measurements")
    model = gd.mlp([D, 1], loss="binary_cross_entropy")
    info = _LbfgsInfo()

    cluster, client = start_cluster()
    try:
        worker_files = check_workers(client)
        print(f"cluster: LocalCluster(n_workers=2, threads_per_worker=1), worker processes")
        print(f"same problem: gdcore l2 = 1/(C n); dask-ml LogisticRegression(C={C}, "
              f"solver='lbfgs', tol={GTOL:g} * n, solver_kwargs={{'normalize': False, "
              f"'regularizer': L2Weights()}}) -- no standardisation, intercept not penalised "
              f"(dask_glm's default 'l2' penalises it and standardises X); gdcore "
              f"gtol={GTOL:g}, ftol={FTOL:.3g} (= fmin_l_bfgs_b's factr 1e7, which dask_glm "
              f"keeps)")
        fits = []
        for k, n in enumerate(FIT_SIZES[:1] if quick else FIT_SIZES):
            rounds = 2 if quick else (3 if n <= 200_000 else 2)
            fits.append(fit_comparison(client, model, n, rounds, warmup=k == 0, info=info))

        print(f"\n[overhead] {OVERHEAD_ROWS:,} x {D} rows, median over "
              f"{15 if quick else 40} calls per chunk count ...", flush=True)
        floor = floor_round_trips(client, 30 if quick else 100)
        for name, v in floor.items():
            print(f"  floor: {name}: {v['median_ms']:.2f} ms", flush=True)
        overhead = overhead_vs_chunks(client, model, CHUNK_COUNTS, 15 if quick else 40)

        sizes = SCALING_ROWS[:2] if quick else SCALING_ROWS
        print(f"\n[scaling] rows {', '.join(f'{n:,}' for n in sizes)} x {D}, chunks of "
              f"{SCALING_CHUNK:,} rows ...", flush=True)
        scaling = scaling_vs_rows(client, model, sizes, 8 if quick else 15)
        kernel = kernel_reference(model, 10 if quick else 30)
    finally:
        client.close()
        cluster.close()

    spill = None
    if not opts.skip_spill:
        spill = larger_than_memory(SPILL_ROWS_QUICK if quick else SPILL_ROWS, SPILL_CHUNK,
                                   SPILL_TIMEOUT_QUICK if quick else SPILL_TIMEOUT)
        print_spill(spill)

    print("\n" + fit_table(fits))
    print(f"\nFit time: persisted X, y -> coefficients, median of "
          f"{len(fits[0]['gdcore']['seconds'])}+ runs, peers taking turns; gdcore's includes "
          f"gdd.objective ("
          + ", ".join(f"{r['gdcore']['objective_s_median']:.2f} s" for r in fits)
          + "). dask-ml / gdcore: "
          + ", ".join(f"{r['n']:,} rows {r['ratio']:.1f}x" for r in fits))
    print("\n" + overhead_table(overhead, floor))
    print("\n" + scaling_table(scaling, kernel))
    noisy = [f"{r['n']:,}-row fit" for r in fits
             if r["gdcore"]["contended"] or r["dask-ml"]["contended"]]
    noisy += [f"overhead at {r['chunks']} chunks" for r in overhead if r["contended"]]
    noisy += [f"scaling at {r['rows']:,} rows" for r in scaling if r["contended"]]
    if noisy:
        print(f"\n> Not for publication: other processes used more than {MAX_BACKGROUND} cores "
              f"during: {', '.join(noisy)}.")
    print()
    verdicts = verdicts_of(fits, overhead, spill)
    harness.print_verdicts(verdicts)

    out = {
        "environment": harness.environment(),
        "versions": {"dask": dask.__version__, "distributed": distributed.__version__,
                     "dask_ml": dask_ml.__version__, "sklearn": sklearn.__version__},
        "blas": blas,
        "gdcore_file": gd.__file__,
        "worker_gdcore_files": worker_files,
        "background_before_cores": idle,
        "settings": {"quick": quick, "features": D, "seed": SEED, "C": C,
                     "fit_chunk_rows": FIT_CHUNK, "gtol": GTOL, "ftol": FTOL,
                     "dask_ml_tol": "gtol * n", "sklearn_tol": SK_TOL, "max_iter": MAX_ITER,
                     "overhead_rows": OVERHEAD_ROWS, "chunk_counts": CHUNK_COUNTS,
                     "scaling_chunk_rows": SCALING_CHUNK, "spill_chunk_rows": SPILL_CHUNK,
                     "spill_memory_limit": SPILL_MEMORY_LIMIT, "spill_maxiter": SPILL_MAXITER,
                     "cluster": "LocalCluster(n_workers=2, threads_per_worker=1)"},
        "timing_policy": {"settle_seconds": SETTLE_SECONDS,
                          "max_background_cores": MAX_BACKGROUND},
        "fits": fits,
        "floor": floor,
        "overhead": overhead,
        "scaling": scaling,
        "kernel_reference": kernel,
        "larger_than_memory": spill,
        "tables": {"fits": fit_table(fits), "overhead": overhead_table(overhead, floor),
                   "scaling": scaling_table(scaling, kernel)},
        "targets": verdicts,
    }
    harness.write_results(RESULTS_PATH, out, t_start)


if __name__ == "__main__":
    main()
