"""Benchmark: gdcore on a busy machine and in two Python threads, beside its peers.

Two cases, float32, every peer measured in the same run and conditions:

1. **busy machine.** Full-batch digits training (scikit-learn ``load_digits``,
   X / 16, the 1,347-sample training split of bench_training's case 3):
   64-128-10 ReLU, softmax cross-entropy, Adam (lr 1e-3), 100 full-batch
   steps.  Products of 1347 x 64 x 128 are large enough for OpenBLAS to run
   them on all its threads.  Timed on a quiet machine and again with one
   background process spinning on one core (a neighbour's test run, a
   compile), for

   * gdcore ``fit(..., threads="auto")`` (the default: one BLAS thread for
     products of this size),
   * gdcore ``fit(..., threads=None)`` (the BLAS's own 2 threads: what
     gdcore did before ``threads`` existed),
   * PyTorch (a Python loop of 100 full-batch Adam steps, its default threads
     matched to NumPy's BLAS),
   * scikit-learn ``MLPClassifier(solver="adam", batch_size=n)`` (100 epochs of
     one batch, its BLAS at its default).

   Target: gdcore's default on the busy machine within 1.5x of its quiet
   time (the cliff was 50x: 8.06 s against 0.164 s).

2. **two fits in two threads.** Two independent digits fits (batch 32, 30
   shuffled epochs, Adam 1e-3; bench_training's case 3), in sequence and in
   two Python threads at once.  gdcore's kernels release the GIL.  Peers the
   same way: PyTorch (one intra-op thread per fit, so the two fits are the
   only parallelism) and scikit-learn's MLPClassifier.  Target: gdcore's two
   threads at least 1.7x faster than the sequence on 2 cores.  As context,
   two processes fitting at once against one alone: what the cores allow two
   fits that share no interpreter (two vCPUs of a VM need not give 2x).

Each figure is the median of ``ROUNDS`` runs, implementations taking turns.
Run ``make bench`` (or ``.venv/bin/python bench/bench_threads.py``); about a
minute.  Results also go to ``bench/results/threads.json``.
"""

import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as harness  # noqa: E402  (bench/ is a folder of scripts, not a package)
from bench_training import digits_problem  # noqa: E402  (bench_training's case 3 split)

import gdcore as gd  # noqa: E402
from gdcore.kernels.blas import BOUND_TO  # noqa: E402

try:
    import torch
except ImportError:  # a missing peer is skipped, never faked
    torch = None
try:
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
except ImportError:
    sklearn = None

DTYPE = np.float32
ROUNDS = 5
FULL_BATCH_STEPS = 100
MINIBATCH_EPOCHS, MINIBATCH = 30, 32
BUSY_TARGET = 1.5  # busy / quiet time of gdcore's default
THREADS_TARGET = 1.7  # sequence / two threads
RESULTS_PATH = Path(__file__).resolve().parent / "results" / "threads.json"


MODEL = gd.mlp([64, 128, 10], activation="relu", loss="cross_entropy")


# Implementations: each a function that trains once from scratch ---------------------------
def gd_full_batch(X, y, threads):
    def run():
        gd.fit(MODEL, gd.init(MODEL, seed=0, dtype=DTYPE), X, y, optimizer=gd.adam(1e-3),
               epochs=FULL_BATCH_STEPS, batch_size=None, progress=False, threads=threads)
    return run


def gd_minibatch(X, y, seed):
    def run():
        gd.fit(MODEL, gd.init(MODEL, seed=seed, dtype=DTYPE), X, y, optimizer=gd.adam(1e-3),
               epochs=MINIBATCH_EPOCHS, batch_size=MINIBATCH, seed=seed, progress=False)
    return run


def torch_training(X, y, batch, epochs, seed):
    """torch's usual loop: per batch zero_grad, forward, loss, backward, Adam step."""
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def run():
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(),
                                  torch.nn.Linear(128, 10))
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        lossf = torch.nn.CrossEntropyLoss()
        n = Xt.shape[0]
        for _ in range(epochs):
            order = torch.randperm(n, generator=gen) if batch < n else torch.arange(n)
            for start in range(0, n, batch):
                idx = order[start:start + batch]
                opt.zero_grad(set_to_none=True)
                lossf(net(Xt[idx]), yt[idx]).backward()
                opt.step()
    return run


def sklearn_training(X, y, batch, epochs, seed):
    def run():
        clf = MLPClassifier(hidden_layer_sizes=(128,), activation="relu", solver="adam",
                            alpha=0.0, batch_size=batch, learning_rate_init=1e-3,
                            max_iter=epochs, shuffle=batch < len(X), random_state=seed,
                            tol=0.0, n_iter_no_change=10 ** 9)
        clf.fit(X, y)  # ConvergenceWarning silenced in main(): all epochs are wanted
    return run


# Timing ------------------------------------------------------------------------------------
def time_rounds(fns, rounds=ROUNDS):
    """Median wall time of each function over ``rounds`` turns (one untimed warm-up each)."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for r in range(rounds):
        names = list(fns) if r % 2 == 0 else list(fns)[::-1]
        for name in names:
            time.sleep(0.05)  # let the previous library's pool go idle
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t)) for name, t in times.items()}, times


class Spinner:
    """One background process that keeps one core busy (a busy neighbour)."""

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.3)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def in_two_threads(a, b):
    def run():
        workers = [threading.Thread(target=f) for f in (a, b)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    return run


def in_sequence(a, b):
    def run():
        a()
        b()
    return run


# Cases -------------------------------------------------------------------------------------
def busy_case(X, y):
    fns = {"gdcore threads='auto' (default)": gd_full_batch(X, y, "auto"),
           "gdcore threads=None (BLAS default)": gd_full_batch(X, y, None)}
    if torch is not None:
        fns["torch"] = torch_training(X, y, len(X), FULL_BATCH_STEPS, 0)
    if sklearn is not None:
        fns["scikit-learn"] = sklearn_training(X, y, len(X), FULL_BATCH_STEPS, 0)
    harness.wait_for_quiet()
    quiet, _ = time_rounds(fns)
    with Spinner():
        busy, _ = time_rounds(fns)
    return {"quiet_s": quiet, "busy_s": busy}


def two_threads_case(X, y):
    pairs = {"gdcore": (gd_minibatch(X, y, 0), gd_minibatch(X, y, 1))}
    if torch is not None:
        pairs["torch (1 intra-op thread per fit)"] = (
            torch_training(X, y, MINIBATCH, MINIBATCH_EPOCHS, 0),
            torch_training(X, y, MINIBATCH, MINIBATCH_EPOCHS, 1))
    if sklearn is not None:
        pairs["scikit-learn"] = (sklearn_training(X, y, MINIBATCH, MINIBATCH_EPOCHS, 0),
                                 sklearn_training(X, y, MINIBATCH, MINIBATCH_EPOCHS, 1))
    out = {}
    torch_threads = torch.get_num_threads() if torch is not None else None
    for name, (a, b) in pairs.items():
        if name.startswith("torch"):
            torch.set_num_threads(1)
        harness.wait_for_quiet()
        med, _ = time_rounds({"sequence": in_sequence(a, b), "two threads": in_two_threads(a, b)})
        if name.startswith("torch"):
            torch.set_num_threads(torch_threads)
        out[name] = {"sequence_s": med["sequence"], "two_threads_s": med["two threads"],
                     "speedup": med["sequence"] / med["two threads"]}
    return out


# One process timing 15 digits fits (batch 32, 30 epochs); prints the median in seconds.
_FITS_IN_A_PROCESS = """
import sys, time, numpy as np
sys.path.insert(0, {bench!r})
import bench_threads as b
X, y = b.digits_problem()[:2]
fit = b.gd_minibatch(X, y, 0)
fit()
times = []
for _ in range(15):
    t0 = time.perf_counter(); fit(); times.append(time.perf_counter() - t0)
print(float(np.median(times)))
"""


def process_ceiling():
    """Speed-up of two processes fitting at once over one alone: what the cores allow
    two fits, with no interpreter shared (the ceiling for two threads)."""
    code = _FITS_IN_A_PROCESS.format(bench=str(Path(__file__).resolve().parent))

    def run(k):
        procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                  text=True) for _ in range(k)]
        return [float(p.communicate()[0].strip().splitlines()[-1]) for p in procs]

    alone = run(1)[0]
    together = max(run(2))
    return {"alone_s": alone, "together_s": together, "speedup": 2 * alone / together}


def main():
    if sklearn is not None:  # once, for every thread (catch_warnings is not thread-safe)
        warnings.simplefilter("ignore", ConvergenceWarning)
    print("gdcore threads benchmark (float32)")
    harness.print_machine()
    idle = harness.print_background(0.3, "rounds")
    blas = harness.blas_report()
    harness.print_blas(blas, f"gdcore's products call the '{BOUND_TO}' entry's BLAS")
    harness.match_torch_threads(blas, torch, "PyTorch peers skipped")
    if sklearn is None:
        print("scikit-learn is needed for the digits data: install the bench extra")
        return
    X, y = digits_problem()[:2]  # the training split
    print(f"\n1. Busy machine: digits {len(X)} x 64, 64-128-10, Adam, "
          f"{FULL_BATCH_STEPS} full-batch steps; median of {ROUNDS} runs")
    busy = busy_case(X, y)
    rows = []
    for name in busy["quiet_s"]:
        q, b = busy["quiet_s"][name], busy["busy_s"][name]
        rows.append([name, harness.fmt_time(q * 1e6), harness.fmt_time(b * 1e6), f"{b / q:.2f}x"])
    print(harness.markdown_table(["implementation", "quiet", "one core busy", "busy / quiet"],
                                 rows))
    default = "gdcore threads='auto' (default)"
    for name in busy["busy_s"]:
        if not name.startswith("gdcore"):
            print(f"  gdcore default / {name}: quiet {busy['quiet_s'][default] / busy['quiet_s'][name]:.3f}x, "
                  f"busy {busy['busy_s'][default] / busy['busy_s'][name]:.3f}x")

    print(f"\n2. Two independent digits fits (batch {MINIBATCH}, {MINIBATCH_EPOCHS} epochs): "
          f"in sequence and in two Python threads; median of {ROUNDS} runs")
    two = two_threads_case(X, y)
    harness.wait_for_quiet()
    ceiling = process_ceiling()
    print(f"context: two processes at once fit at {ceiling['together_s'] * 1e3:.1f} ms each "
          f"against {ceiling['alone_s'] * 1e3:.1f} ms alone: a {ceiling['speedup']:.2f}x "
          f"ceiling for two fits on this machine")
    print(harness.markdown_table(
        ["implementation", "in sequence", "two threads", "speed-up"],
        [[name, harness.fmt_time(r["sequence_s"] * 1e6), harness.fmt_time(r["two_threads_s"] * 1e6),
          f"{r['speedup']:.2f}x"] for name, r in two.items()]))

    ratio = busy["busy_s"][default] / busy["quiet_s"][default]
    verdicts = [
        harness.verdict(f"busy machine: gdcore's default within {BUSY_TARGET}x of its quiet time",
                        f"{ratio:.2f}x", ratio <= BUSY_TARGET, False),
        harness.verdict(f"two fits in two threads >= {THREADS_TARGET}x faster than in sequence",
                        f"{two['gdcore']['speedup']:.2f}x",
                        two["gdcore"]["speedup"] >= THREADS_TARGET, idle is not None and idle > 0.3),
    ]
    print("\nTargets:")
    for v in verdicts:
        print(f"  {v['status']:<5} {v['target']}: {v['value']}")
    path = harness.write_json(RESULTS_PATH, {"environment": harness.environment(), "blas": blas,
                                             "busy": busy, "two_threads": two,
                                             "process_ceiling": ceiling,
                                             "targets": verdicts})
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
