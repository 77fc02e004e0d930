"""Benchmark: ``gdcore.sklearn``'s MLP estimators against scikit-learn's, side by side.

``gdcore.sklearn.MLPClassifier`` / ``MLPRegressor`` are drop-in replacements
of ``sklearn.neural_network``'s (same parameters, start, objective); this
bench fits both with the SAME hyperparameters in the same process (issue 13).

* **data** (float64): ``load_digits``, ``load_breast_cancer``, ``load_wine``
  (classification), ``load_diabetes`` (regression, ``y`` as published) and
  ``make_classification(n_samples=50_000, n_features=20, n_informative=10,
  n_classes=3, random_state=0)`` ("50k"); ``train_test_split(test_size=0.25,
  random_state=0)``, stratified for the classifiers.  ``X`` is pre-scaled:
  a ``StandardScaler`` fitted on the training part transforms both parts,
  once, outside the timed ``fit`` (the grid search below scales inside its
  pipeline instead).
* **solvers**: ``adam``, ``sgd``, ``lbfgs``, each with scikit-learn's defaults
  otherwise (``hidden_layer_sizes=(100,)``, ``max_iter=200``, ``tol=1e-4``,
  ...); diabetes with ``learning_rate_init=0.01, max_iter=500`` for both
  implementations as the issue asks.  With ``y`` unscaled (25-346), ``sgd``
  (momentum 0.9) at 0.01 diverges in both on every seed: scikit-learn raises
  ``ValueError`` (non-finite weights), gdcore stops with a
  ``ConvergenceWarning`` ("training stopped: ...", its documented
  difference).  Such fits count as failed: they are left out of the score
  statistics, their count is shown, and a context row (``sgd`` with
  ``learning_rate_init=1e-4``, no target) shows the solver training.
* **seeds**: ``random_state=0..4``, 0..2 on the 50k set (``--quick``: 0..1).  Per (data set,
  solver): mean and sample standard deviation (ddof=1) over the seeds of the
  test accuracy (R^2 for diabetes) of each implementation, mean ``n_iter_``,
  and the median over the seeds of the wall time of ``fit`` (warnings
  silenced).  Implementations alternate per seed (gdcore, scikit-learn,
  gdcore, ...; :func:`_harness.time_whole_runs`, one round per seed: a settle
  pause and a garbage collection before each fit, the collector paused
  during it), so background load hits both.  Each (data set, solver) first
  runs one untimed 3-iteration fit of each implementation (warm-up: kernels
  loaded, caches filled); the process's very first gdcore fit is reported
  apart.  ratio = scikit-learn's time / gdcore's.  Each fit is tagged with
  the load other processes put on the machine meanwhile; cases where more
  than half the fits were disturbed are marked CONTENDED.
* **quality verdict** per (data set, solver): "equal within seed spread or
  better" when ``mean_gd >= mean_sk - 2 * max(std_gd, std_sk, 0.005)`` (and
  gdcore fails on no more seeds than scikit-learn); N/A when both fail on
  every seed.
* **floor** ("products alone"), for digits and 50k with ``adam``: the BLAS
  products of one epoch of the 100-unit network -- per batch of 200 rows
  (the last one shorter): forward ``X @ W1``, ``H @ W2``; backward ``H.T @ D``,
  ``D @ W2.T``, ``X.T @ D1`` -- through ``np.dot`` into preallocated float64
  outputs, times the mean number of epochs gdcore ran.  Timed with NumPy's
  BLAS threads as set and with one thread (threadpoolctl; gdcore's
  ``threads="auto"`` runs products this small on one thread); the faster of
  the two is the floor.  No activation, loss, update or data movement is in
  it: the time a fit cannot go under with per-batch BLAS calls.
* **GridSearchCV** on digits' training part: ``make_pipeline(StandardScaler(),
  MLPClassifier(hidden_layer_sizes=(64,), random_state=0))``, grid
  ``alpha`` in [1e-4, 1e-2] x ``learning_rate_init`` in [1e-3, 1e-2] x
  ``hidden_layer_sizes`` in [(32,), (64,)] (8 settings), ``cv=3``, with
  ``n_jobs=2`` and ``n_jobs=1`` (``--quick``: 2 only): end-to-end wall time of
  ``GridSearchCV.fit`` (refit included), each implementation twice,
  alternating (gdcore, scikit-learn, gdcore, scikit-learn); median (= mean of
  the two) and min, both values, and each ``best_score_``.  With
  ``n_jobs=2`` joblib's worker processes are started and warmed (both
  libraries imported, one small gdcore fit) before the first timed run, so
  neither implementation pays their start; warnings are silenced in the
  workers too (``PYTHONWARNINGS=ignore``).

Targets (issue 13), PASS/MISS with the measured ratio: ``adam`` and ``sgd``
fits >= 10x faster than scikit-learn's on digits and on 50k; ``lbfgs`` >= 3x
on the same; GridSearchCV >= 5x (ratio of the medians, per ``n_jobs``).

Run ``make bench`` (or ``.venv/bin/python bench/bench_sklearn.py``); the 50k
set runs 3 seeds (scikit-learn takes 29-38 s per fit there, gdcore 15-18 s):
about 11 minutes on a quiet 2-core AMD EPYC; ``--quick`` about five minutes.  Results also go to
``bench/results/sklearn.json``.
"""

import argparse
import gc
import os
import sys
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import sklearn
from sklearn import datasets
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as harness  # noqa: E402  (bench/ is a folder of scripts, not a package)

import gdcore  # noqa: E402
from gdcore.sklearn import MLPClassifier as GdMLPClassifier  # noqa: E402
from gdcore.sklearn import MLPRegressor as GdMLPRegressor  # noqa: E402

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # the one-thread floor is then skipped
    threadpool_limits = None

GD = "gdcore"
SK = "sklearn"
IMPLS = (GD, SK)  # the order of the turns: gdcore, sklearn, gdcore, ...
CLASSES = {GD: (GdMLPClassifier, GdMLPRegressor), SK: (SkMLPClassifier, SkMLPRegressor)}

SOLVERS = ("adam", "sgd", "lbfgs")
SEEDS = (0, 1, 2, 3, 4)
LARGE_SEEDS = 3  # seeds of the 50k set
QUICK_SEEDS = (0, 1)
HIDDEN = (100,)
BATCH = 200  # scikit-learn's batch_size="auto" for n >= 200
DIABETES_PARAMS = {"learning_rate_init": 0.01, "max_iter": 500}
# Context row: diabetes' y is unscaled (25-346) and SGD with momentum 0.9 at lr 0.01
# diverges in both implementations; the same row at 1e-4 trains.
DIABETES_SGD_CONTEXT = {"learning_rate_init": 1e-4}
N50K = dict(n_samples=50_000, n_features=20, n_informative=10, n_classes=3, random_state=0)

TARGETS = {"adam": 10.0, "sgd": 10.0, "lbfgs": 3.0}
TARGET_SETS = ("digits", "50k")
GRID_TARGET = 5.0
QUALITY_FLOOR = 0.005  # the least std the quality verdict allows for
GRID = {"mlpclassifier__alpha": [1e-4, 1e-2],
        "mlpclassifier__learning_rate_init": [1e-3, 1e-2],
        "mlpclassifier__hidden_layer_sizes": [(32,), (64,)]}

# Timing policy (see harness.time_whole_runs and wait_for_quiet).
SETTLE_SECONDS = 0.2
MAX_BACKGROUND = 0.3
QUIET_WAIT_SECONDS = 10.0  # per case, before its first fit
QUIET_WAIT_BUDGET = 60.0  # in all: a machine that stays busy is measured busy, and flagged
RESULTS_PATH = Path(__file__).resolve().parent / "results" / "sklearn.json"


# Data ------------------------------------------------------------------------------------
def load(name):
    """(X, y, is_classifier) of a data set, float64."""
    if name == "50k":
        X, y = datasets.make_classification(**N50K)
        return X.astype(np.float64), y, True
    loader = {"digits": datasets.load_digits, "breast_cancer": datasets.load_breast_cancer,
              "wine": datasets.load_wine, "diabetes": datasets.load_diabetes}[name]
    X, y = loader(return_X_y=True)
    return X.astype(np.float64), y, name != "diabetes"


def split_scaled(name):
    """Train/test split (stratified for classifiers), X scaled by the training part."""
    X, y, is_clf = load(name)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0,
                                              stratify=y if is_clf else None)
    scaler = StandardScaler().fit(X_tr)
    return {"name": name, "is_clf": is_clf,
            "X_tr": np.ascontiguousarray(scaler.transform(X_tr)), "y_tr": y_tr,
            "X_te": np.ascontiguousarray(scaler.transform(X_te)), "y_te": y_te,
            "raw": (X_tr, y_tr), "n_train": X_tr.shape[0], "n_features": X.shape[1],
            "n_outputs": len(np.unique(y)) if is_clf else 1}


def params_of(name, solver, seed):
    params = {"hidden_layer_sizes": HIDDEN, "solver": solver, "max_iter": 200,
              "random_state": seed}
    if name == "diabetes":
        params.update(DIABETES_PARAMS)
    return params


def estimator(impl, is_clf, **params):
    clf, reg = CLASSES[impl]
    return (clf if is_clf else reg)(**params)


# Quiet-machine bookkeeping ---------------------------------------------------------------
class Quiet:
    """wait_for_quiet before each case, within an overall budget."""

    def __init__(self, budget):
        self.left = budget
        self.log = []

    def wait(self, label):
        quiet, waited, load = harness.wait_for_quiet(
            max_seconds=max(0.0, min(QUIET_WAIT_SECONDS, self.left)),
            max_background=MAX_BACKGROUND, probe_seconds=0.5)
        self.left -= waited
        self.log.append({"case": label, "quiet": quiet, "waited_s": waited, "load": load})
        if not quiet:
            print(f"  (machine busy before {label}: {harness.fmt_load(load)} after "
                  f"{waited:.0f} s of waiting; going on)", flush=True)
        return quiet


# One (data set, solver) case ------------------------------------------------------------
def fit_one(est, X, y, out):
    """``est.fit(X, y)`` with its warnings recorded (not shown) and its exception caught.

    A fit "failed" when it raised (scikit-learn raises ValueError when its weights
    turn non-finite) or diverged (gdcore then keeps the last finite parameters and
    warns "training stopped: ..."); ``out`` gets the reason.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            est.fit(X, y)
            out["error"] = None
        except Exception as exc:  # noqa: BLE001 -- recorded, reported
            out["error"] = f"{type(exc).__name__}: {exc}"
    messages = sorted({str(w.message).splitlines()[0][:120] for w in caught})
    out["warnings"] = messages
    if out["error"] is None:
        diverged = [m for m in messages if m.startswith("training stopped")]
        out["error"] = f"diverged ({diverged[0]})" if diverged else None


def run_case(data, solver, seeds, quiet, first_fit, overrides=None, context=None):
    name, is_clf = data["name"], data["is_clf"]
    X_tr, y_tr, X_te, y_te = data["X_tr"], data["y_tr"], data["X_te"], data["y_te"]
    overrides = overrides or {}
    label = f"{name} / {solver}" + (f" ({context})" if context else "")
    print(f"running {label} ({len(seeds)} seeds) ...", flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # warm-up: 3 iterations of each, untimed (the process's first gdcore fit is kept)
        for impl in IMPLS:
            params = {**params_of(name, solver, 0), **overrides, "max_iter": 3}
            t0 = time.perf_counter()
            fit_one(estimator(impl, is_clf, **params), X_tr, y_tr, {})
            if impl not in first_fit:
                first_fit[impl] = {"case": label, "seconds": time.perf_counter() - t0}
    quiet.wait(label)
    fits = {impl: [] for impl in IMPLS}
    for seed in seeds:
        params = {**params_of(name, solver, seed), **overrides}
        ests = {impl: estimator(impl, is_clf, **params) for impl in IMPLS}
        status = {impl: {} for impl in IMPLS}
        calls = {impl: (lambda e=ests[impl], o=status[impl]: fit_one(e, X_tr, y_tr, o))
                 for impl in IMPLS}
        timings, background = harness.time_whole_runs(
            calls, rounds=1, settle_seconds=SETTLE_SECONDS, min_round_seconds=0.0,
            max_background=MAX_BACKGROUND, warmup=False)
        for impl in IMPLS:
            est, st = ests[impl], status[impl]
            score = None
            if st["error"] is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    score = float(est.score(X_te, y_te))
                if not np.isfinite(score):
                    st["error"], score = f"non-finite score {score}", None
            fits[impl].append({"seed": seed, "seconds": timings[impl].median_us / 1e6,
                               "score": score, "failed": st["error"],
                               "warnings": st["warnings"],
                               "n_iter": int(getattr(est, "n_iter_", -1)),
                               "background": background[impl][0]})
    row = {"dataset": name, "solver": solver, "context": context, "params": overrides,
           "metric": "accuracy" if is_clf else "R^2", "n_train": data["n_train"],
           "seeds": list(seeds)}
    for impl in IMPLS:
        f = fits[impl]
        scores = np.array([r["score"] for r in f if r["failed"] is None])
        iters = [r["n_iter"] for r in f if r["n_iter"] >= 0]
        row[impl] = {
            "fits": f,
            "n_failed": sum(r["failed"] is not None for r in f),
            "score_mean": float(scores.mean()) if len(scores) else None,
            "score_std": float(scores.std(ddof=1)) if len(scores) > 1 else 0.0,
            "n_iter_mean": float(np.mean(iters)) if iters else None,
            "fit_s_median": float(np.median([r["seconds"] for r in f])),
            "disturbed": sum(r["background"] is not None and r["background"] > MAX_BACKGROUND
                             for r in f),
        }
    gd, sk = row[GD], row[SK]
    row["ratio"] = sk["fit_s_median"] / gd["fit_s_median"]
    allowance = 2 * max(gd["score_std"], sk["score_std"], QUALITY_FLOOR)
    row["quality_allowance"] = allowance
    if gd["score_mean"] is None or sk["score_mean"] is None:
        # all seeds of one failed: gdcore is no worse only if it fails no more often
        row["quality_ok"] = None if gd["n_failed"] == sk["n_failed"] else \
            bool(gd["n_failed"] < sk["n_failed"])
    else:
        row["quality_ok"] = bool(gd["n_failed"] <= sk["n_failed"]
                                 and gd["score_mean"] >= sk["score_mean"] - allowance)
    n_fits = 2 * len(seeds)
    row["contended"] = (gd["disturbed"] + sk["disturbed"]) * 2 > n_fits
    print(f"  {row['metric']}: gdcore {fmt_score(gd)}, sklearn {fmt_score(sk)}; n_iter "
          f"{fmt_iter(gd)} / {fmt_iter(sk)}; fit {fmt_ms(gd['fit_s_median'])} ms / "
          f"{fmt_ms(sk['fit_s_median'])} ms -> {row['ratio']:.1f}x"
          + ("  [CONTENDED]" if row["contended"] else ""), flush=True)
    for impl in IMPLS:
        errors = sorted({r["failed"] for r in fits[impl] if r["failed"]})
        if errors:
            print(f"    {impl} failed {row[impl]['n_failed']}/{len(seeds)}: "
                  f"{'; '.join(e[:150] for e in errors)}", flush=True)
    return row


def fmt_score(s):
    failed = f" ({s['n_failed']} failed)" if s["n_failed"] else ""
    if s["score_mean"] is None:
        return f"all failed ({s['n_failed']})"
    return f"{s['score_mean']:.4f} ± {s['score_std']:.4f}{failed}"


def fmt_iter(s):
    return "-" if s["n_iter_mean"] is None else f"{s['n_iter_mean']:.1f}"


# The floor: the BLAS products of one epoch ---------------------------------------------
class EpochProducts:
    """The five products of every batch of one epoch of an n_in-100-n_out network."""

    def __init__(self, X, n_out, hidden=HIDDEN[0], batch=BATCH, seed=0):
        rng = np.random.default_rng(seed)
        self.X = np.ascontiguousarray(X, dtype=np.float64)
        n, n_in = self.X.shape
        self.W1 = rng.standard_normal((n_in, hidden))
        self.W2 = rng.standard_normal((hidden, n_out))
        self.G1 = np.empty((n_in, hidden))
        self.G2 = np.empty((hidden, n_out))
        self.batches = []
        bufs = {}
        for start in range(0, n, batch):
            rows = min(batch, n - start)
            if rows not in bufs:
                bufs[rows] = (np.empty((rows, hidden)), np.empty((rows, n_out)),
                              rng.standard_normal((rows, n_out)), np.empty((rows, hidden)))
            self.batches.append((self.X[start:start + rows],) + bufs[rows])

    def __call__(self):
        W1, W2, G1, G2 = self.W1, self.W2, self.G1, self.G2
        for Xb, H, Z, D, D1 in self.batches:
            np.dot(Xb, W1, out=H)  # forward
            np.dot(H, W2, out=Z)
            np.dot(H.T, D, out=G2)  # backward
            np.dot(D, W2.T, out=D1)
            np.dot(Xb.T, D1, out=G1)


def floor_case(data):
    """Time of one epoch's products, with the BLAS's threads and with one thread.

    The one-thread figure is timed inside one ``threadpool_limits`` block: entering
    the block costs about a millisecond (threadpoolctl scans the loaded libraries),
    more than a digits epoch's products.
    """
    products = EpochProducts(data["X_tr"], data["n_outputs"])
    runs = [("default threads", None)]
    if threadpool_limits is not None:
        runs.append(("1 thread", 1))
    timings = {}
    for label, limit in runs:
        with threadpool_limits(limits=limit, user_api="blas") if limit else nullcontext():
            t, _ = harness.time_side_by_side({label: products}, passes=2, blocks_per_pass=4,
                                             max_background=MAX_BACKGROUND)
        timings.update(t)
    epoch_us = {k: t.median_us for k, t in timings.items()}
    return {"epoch_us": epoch_us, "epoch_us_floor": min(epoch_us.values()),
            "contended": any(t.contended for t in timings.values()),
            "timings": timings, "n_batches": len(products.batches)}


# GridSearchCV ---------------------------------------------------------------------------
def _worker_warmup(seconds):
    """Runs in a joblib worker: import both libraries, load gdcore's kernels, hold a while."""
    import warnings as _w

    from sklearn.datasets import load_iris

    from gdcore.sklearn import MLPClassifier
    X, y = load_iris(return_X_y=True)
    with _w.catch_warnings():
        _w.simplefilter("ignore")
        MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X, y)
    time.sleep(seconds)
    return os.getpid()


def grid_search(data, impl, n_jobs):
    X_tr, y_tr = data["raw"]
    pipe = make_pipeline(StandardScaler(),
                         CLASSES[impl][0](hidden_layer_sizes=(64,), random_state=0))
    search = GridSearchCV(pipe, GRID, cv=3, n_jobs=n_jobs)
    gc.collect()
    time.sleep(SETTLE_SECONDS)
    probe = harness.FamilyLoad()  # the workers' CPU is this run's, not background
    probe.start()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X_tr, y_tr)
    seconds = time.perf_counter() - t0
    bg = probe.stop()
    return {"seconds": seconds, "best_score": float(search.best_score_),
            "best_params": {k.split("__", 1)[1]: v for k, v in search.best_params_.items()},
            "background": bg}


def run_grid(data, n_jobs_list, quiet):
    out = []
    for n_jobs in n_jobs_list:
        label = f"GridSearchCV n_jobs={n_jobs}"
        print(f"running {label} (digits, 8 settings x cv=3, each implementation twice) ...",
              flush=True)
        if n_jobs != 1:
            from joblib import Parallel, delayed
            os.environ["PYTHONWARNINGS"] = "ignore"  # inherited by the workers started now
            pids = Parallel(n_jobs=n_jobs)(delayed(_worker_warmup)(0.5) for _ in range(n_jobs))
            print(f"  joblib workers warmed: {sorted(set(pids))}", flush=True)
        quiet.wait(label)
        runs = {impl: [] for impl in IMPLS}
        for _ in range(2):
            for impl in IMPLS:
                runs[impl].append(grid_search(data, impl, n_jobs))
        row = {"n_jobs": n_jobs}
        for impl in IMPLS:
            secs = [r["seconds"] for r in runs[impl]]
            row[impl] = {"runs": runs[impl], "seconds": secs,
                         "median_s": float(np.median(secs)), "min_s": float(min(secs)),
                         "best_score": runs[impl][0]["best_score"],
                         "best_params": runs[impl][0]["best_params"]}
        row["ratio_median"] = row[SK]["median_s"] / row[GD]["median_s"]
        row["ratio_min"] = row[SK]["min_s"] / row[GD]["min_s"]
        bgs = [r["background"] for impl in IMPLS for r in runs[impl]
               if r["background"] is not None]
        row["contended"] = bool(bgs) and sum(b > MAX_BACKGROUND for b in bgs) * 2 > len(bgs)
        print(f"  gdcore {', '.join(f'{s:.2f}' for s in row[GD]['seconds'])} s, sklearn "
              f"{', '.join(f'{s:.2f}' for s in row[SK]['seconds'])} s -> "
              f"{row['ratio_median']:.1f}x (median), {row['ratio_min']:.1f}x (min); best_score_ "
              f"{row[GD]['best_score']:.4f} / {row[SK]['best_score']:.4f}", flush=True)
        out.append(row)
    return out


# Reporting ------------------------------------------------------------------------------
def fmt_ms(seconds):
    return f"{seconds * 1e3:,.1f}"


def main_table(rows, floors):
    headers = ["data set", "solver", "metric", "scikit-learn mean ± std", "gdcore mean ± std",
               "n_iter sk", "n_iter gd", "fit sk (ms)", "fit gd (ms)", "ratio sk/gd",
               "products alone (ms)", "sk fit / products", "gd fit / products", "quality"]
    out = []
    for r in rows:
        gd, sk = r[GD], r[SK]
        floor = None if r["context"] else floors.get((r["dataset"], r["solver"]))
        floor_ms = floor["fit_floor_s"] * 1e3 if floor else None
        out.append([
            r["dataset"] + (f" ({r['context']})" if r["context"] else ""), r["solver"],
            r["metric"], fmt_score(sk), fmt_score(gd), fmt_iter(sk), fmt_iter(gd),
            fmt_ms(sk["fit_s_median"]), fmt_ms(gd["fit_s_median"]),
            f"{r['ratio']:.1f}x" + (" (CONTENDED)" if r["contended"] else ""),
            f"{floor_ms:,.1f}" + (" (CONTENDED)" if floor and floor["contended"] else "")
            if floor else "-",
            f"{sk['fit_s_median'] / floor['fit_floor_s']:.1f}x" if floor else "-",
            f"{gd['fit_s_median'] / floor['fit_floor_s']:.1f}x" if floor else "-",
            {True: "equal or better", False: "WORSE", None: "both failed"}[r["quality_ok"]],
        ])
    return harness.markdown_table(headers, out)


def grid_table(grid):
    headers = ["GridSearchCV (digits)", "scikit-learn runs (s)", "gdcore runs (s)",
               "sk median / min (s)", "gd median / min (s)", "ratio median", "ratio min",
               "best_score_ sk", "best_score_ gd"]
    out = []
    for g in grid:
        gd, sk = g[GD], g[SK]
        out.append([f"n_jobs={g['n_jobs']}",
                    ", ".join(f"{s:.2f}" for s in sk["seconds"]),
                    ", ".join(f"{s:.2f}" for s in gd["seconds"]),
                    f"{sk['median_s']:.2f} / {sk['min_s']:.2f}",
                    f"{gd['median_s']:.2f} / {gd['min_s']:.2f}",
                    f"{g['ratio_median']:.1f}x", f"{g['ratio_min']:.1f}x",
                    f"{sk['best_score']:.4f}", f"{gd['best_score']:.4f}"])
    return harness.markdown_table(headers, out)


def verdicts_of(rows, grid):
    out = []
    for r in rows:
        gd, sk = r[GD], r[SK]
        v = harness.verdict(
            f"{r['dataset']} / {r['solver']}"
            + (f" ({r['context']})" if r["context"] else "")
            + f": gdcore's {r['metric']} equal within seed spread or better "
            f"(mean_gd >= mean_sk - {r['quality_allowance']:.4f})",
            f"gdcore {fmt_score(gd)} vs scikit-learn {fmt_score(sk)}", bool(r["quality_ok"]),
            False)
        if r["quality_ok"] is None:
            v["status"] = "N/A (both failed on every seed)"
        out.append(v)
    for r in rows:
        if r["dataset"] in TARGET_SETS and not r["context"]:
            target = TARGETS[r["solver"]]
            out.append(harness.verdict(
                f"{r['dataset']} / {r['solver']}: fit >= {target:g}x faster than scikit-learn's",
                f"{r['ratio']:.1f}x (median fit {fmt_ms(r[SK]['fit_s_median'])} ms vs "
                f"{fmt_ms(r[GD]['fit_s_median'])} ms)", r["ratio"] >= target, r["contended"]))
    for g in grid:
        out.append(harness.verdict(
            f"GridSearchCV digits n_jobs={g['n_jobs']}: >= {GRID_TARGET:g}x faster end to end",
            f"{g['ratio_median']:.1f}x on the medians ({g[SK]['median_s']:.2f} s vs "
            f"{g[GD]['median_s']:.2f} s; {g['ratio_min']:.1f}x on the min)",
            g["ratio_median"] >= GRID_TARGET, g["contended"]))
    return out


def aot_state():
    """Where gdcore's kernels come from in this process: the AOT extensions or the JIT."""
    from gdcore.kernels import _aot
    modules = _aot.exports()
    if modules:
        return {"aot": True, "files": sorted(m.__file__ for m in modules.values())}
    from gdcore import _compile_notice
    return {"aot": False, "reason": getattr(_compile_notice.NOTICE, "reason", None)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 seeds, no 50k lbfgs, no n_jobs=1 grid search (a fast check)")
    opts = parser.parse_args()
    seeds = QUICK_SEEDS if opts.quick else SEEDS
    t_start = time.perf_counter()

    print(f"gdcore.sklearn vs scikit-learn {sklearn.__version__} MLP benchmark (float64)")
    harness.print_machine()
    blas = harness.blas_report()
    harness.print_blas(blas, "scikit-learn's MLP products go through NumPy's BLAS; gdcore's "
                       "kernels call the BLAS gdcore.kernels.blas.BOUND_TO names")
    from gdcore.kernels.blas import BOUND_TO
    aot = aot_state()
    print(f"gdcore {gdcore.__version__} from {gdcore.__file__}; products bound to {BOUND_TO}; "
          + (f"kernels compiled ahead of time: {', '.join(aot['files'])}" if aot["aot"] else
             f"kernels JIT-compiled by Numba ({aot['reason']})"))
    idle = harness.print_background(MAX_BACKGROUND, "fits")
    print("X pre-scaled: StandardScaler fitted on each training part, outside the timed fit "
          "(GridSearchCV: inside its pipeline)")
    quiet = Quiet(QUIET_WAIT_BUDGET)

    names = ["digits", "breast_cancer", "wine", "diabetes", "50k"]
    data = {name: split_scaled(name) for name in names}
    first_fit = {}
    rows = []
    for name in names:
        for solver in SOLVERS:
            if opts.quick and name == "50k" and solver == "lbfgs":
                continue
            # The 50k fits take 15-38 s each: three seeds keep the run near 10 minutes.
            case_seeds = seeds[:LARGE_SEEDS] if name == "50k" else seeds
            rows.append(run_case(data[name], solver, case_seeds, quiet, first_fit))
            if name == "diabetes" and solver == "sgd":
                rows.append(run_case(data[name], solver, seeds, quiet, first_fit,
                                     DIABETES_SGD_CONTEXT, "context: lr 1e-4"))

    floors = {}
    for name in TARGET_SETS:
        row = next(r for r in rows if r["dataset"] == name and r["solver"] == "adam"
                   and not r["context"])
        print(f"timing the products alone of one {name} epoch ...", flush=True)
        f = floor_case(data[name])
        f["n_epochs"] = row[GD]["n_iter_mean"]
        f["fit_floor_s"] = f["epoch_us_floor"] * 1e-6 * f["n_epochs"]
        f["gd_fit_over_floor"] = row[GD]["fit_s_median"] / f["fit_floor_s"]
        f["sk_fit_over_floor"] = row[SK]["fit_s_median"] / f["fit_floor_s"]
        print(f"  one epoch ({f['n_batches']} batches): "
              + ", ".join(f"{k} {v:,.1f} µs" for k, v in f["epoch_us"].items())
              + f"; x {f['n_epochs']:.1f} epochs = {f['fit_floor_s'] * 1e3:,.1f} ms; gdcore's "
              f"fit {f['gd_fit_over_floor']:.1f}x that, scikit-learn's "
              f"{f['sk_fit_over_floor']:.1f}x" + ("  [CONTENDED]" if f["contended"] else ""),
              flush=True)
        floors[(name, "adam")] = f

    grid = run_grid(data["digits"], (2,) if opts.quick else (2, 1), quiet)

    print(f"\nfirst fits in this process (3 iterations, untimed warm-ups): "
          + ", ".join(f"{impl} {v['seconds'] * 1e3:,.1f} ms ({v['case']})"
                      for impl, v in first_fit.items()))
    print()
    print(main_table(rows, floors))
    print()
    print(grid_table(grid))
    print(f"\nFit times: median over seeds {', '.join(map(str, seeds))} of one `fit` each, "
          f"X pre-scaled, implementations alternating per seed; mean ± std (ddof=1) over the "
          f"same seeds. 'products alone': the 5 BLAS products per batch of 200 of one epoch "
          f"(np.dot, float64, the faster of the BLAS's threads and one thread) x gdcore's mean "
          f"epochs. GridSearchCV: pipeline (StandardScaler, MLPClassifier(hidden_layer_sizes="
          f"(64,), random_state=0)) on digits' training part, end to end, each twice.")
    noisy = [f"{r['dataset']} / {r['solver']}" for r in rows if r["contended"]]
    if noisy:
        print(f"\n> Not for publication: other processes used more than {MAX_BACKGROUND} cores "
              f"during most fits of: {', '.join(noisy)}.")
    print()
    verdicts = verdicts_of(rows, grid)
    harness.print_verdicts(verdicts)

    out = {
        "environment": harness.environment(),
        "sklearn": sklearn.__version__,
        "blas": blas,
        "gdcore_file": gdcore.__file__,
        "gdcore_blas": BOUND_TO,
        "gdcore_kernels": aot,
        "background_before_cores": idle,
        "settings": {"quick": opts.quick, "seeds": list(seeds), "hidden_layer_sizes": HIDDEN,
                     "max_iter": 200, "diabetes": DIABETES_PARAMS, "make_classification": N50K,
                     "test_size": 0.25, "split_random_state": 0, "x_prescaled": True,
                     "quality_floor": QUALITY_FLOOR, "grid": {k: [list(v) if isinstance(v, tuple)
                                                                  else v for v in vals]
                                                              for k, vals in GRID.items()},
                     "targets": TARGETS, "grid_target": GRID_TARGET},
        "timing_policy": {"settle_seconds": SETTLE_SECONDS, "max_background_cores":
                          MAX_BACKGROUND, "quiet_wait_seconds": QUIET_WAIT_SECONDS,
                          "quiet_wait_budget": QUIET_WAIT_BUDGET},
        "quiet_waits": quiet.log,
        "first_fit": first_fit,
        "rows": rows,
        "floors": {f"{k[0]}/{k[1]}": v for k, v in floors.items()},
        "grid_search": grid,
        "table": main_table(rows, floors),
        "grid_table": grid_table(grid),
        "targets": verdicts,
    }
    harness.write_results(RESULTS_PATH, out, t_start)


if __name__ == "__main__":
    main()
