"""Benchmark: time to the first result, gdcore cold and warm against JAX and PyTorch.

A new user's first call of a gdcore entry point compiles its Numba kernels;
later processes load them from Numba's on-disk cache.  Every figure here is
taken in a fresh interpreter (:func:`_harness.first_call_in_subprocess`):
in the benchmark process everything would already be loaded.

gdcore rows, each in its own process:

* **cold**: an empty ``NUMBA_CACHE_DIR`` (a new temporary directory per
  process), as on a fresh machine or after a reinstall;
* **warm**: a second process on the cache the cold one has just filled.

Entry points, each timed as "import" (``import numpy`` + ``import gdcore``)
and "first call" (everything after the import up to the first result: model,
``gd.init``, the call; loading the data from disk is not counted):

* the digits network of ``make demo`` (64-128-10, ReLU hidden,
  cross_entropy, float32), on digits' training set (1347 x 64, 10 classes:
  scikit-learn's ``load_digits`` split 75/25 as in ``bench_training``, or
  random data of that shape without scikit-learn): first ``gd.fit`` (one
  shuffled epoch, ``gd.adam(1e-3)``, batch 32), first ``gd.value_and_grad``,
  ``gd.predict`` and ``gd.loss`` on the whole set;
* ``gd.minimize(rosen, x0, jac=True, method="lbfgs")`` and ``method=gd.adam(1e-2)``
  (500 iterations at most) on Rosenbrock's function in n = 10 written in NumPy,
  float64 (the dtype of a NumPy objective);
* every one of these six in the other dtype too, and one process calling all
  twelve in turn ("sequence": what a user trying the API once in each dtype
  waits for).

Peers in the same run, each row in a fresh process, at the machine's default
thread counts (printed):

* JAX (+ optax): import of ``jax`` and ``optax``; first jitted training epoch
  (trace + compile + run: ``jax.lax.scan`` over the epoch's 42 full shuffled
  batches of 32 -- gdcore's fit also does the last partial batch of 3 --,
  ``optax.adam(1e-3)``, softmax cross-entropy, float32); first jitted
  ``jax.value_and_grad`` and first jitted predict (softmax) on the whole set;
  ``optax.lbfgs`` and ``optax.adam`` on the same Rosenbrock in ``jax.numpy``
  (float64 through ``jax_enable_x64``), the whole run jitted in one
  ``lax.while_loop`` as optax's documentation writes it (gradient norm
  <= 1e-5 or the same iteration cap).  JAX keeps no compilation cache on
  disk unless ``JAX_COMPILATION_CACHE_DIR`` is set, so each of its processes
  compiles: it has no warm column.
* PyTorch (eager, no compile step): ``nn.Sequential`` of the same network,
  ``torch.optim.Adam``, ``CrossEntropyLoss``: first epoch (the first step's
  time is stored in the JSON), forward + backward, forward + softmax;
  ``torch.optim.LBFGS`` (strong Wolfe) and ``torch.optim.Adam`` on the
  Rosenbrock function.
* SciPy: ``scipy.optimize.minimize(method="L-BFGS-B")`` on the NumPy
  Rosenbrock, for context (nothing to compile).

Targets (from the issue), printed as PASS / MISS lines with their figures;
a MISS is a finding, not an error (the exit status is non-zero only when a
measurement itself failed):

* cold ``import gdcore`` + first call <= JAX's import + first jitted call,
  for fit (JAX's first epoch), value_and_grad, predict and
  ``minimize(method="lbfgs")`` (against ``optax.lbfgs`` jitted whole: JAX's
  idiomatic L-BFGS, traced and compiled like gdcore's kernels);
* every entry point in both dtypes within 15 s cold: as one process doing
  them all in sequence (import included), and, stricter, as one import plus
  the sum of the twelve first calls each made in its own cold process;
* warm: the first ``fit`` in a process with a populated cache within 0.3 s.

Repetition: rounds of all rows, rows taking turns (order rotated each
round); figures are medians over the rounds in which other processes used at
most ``MAX_BACKGROUND`` cores (over all rounds, flagged CONTENDED, if none
was that quiet).  Before each round it waits up to ``QUIET_WAIT_SECONDS`` for
busy neighbours.  One untimed process first imports every library, so the
first timed import does not read them from disk.

Run ``.venv/bin/python bench/bench_startup.py`` (``make bench`` runs it
too).  By default it makes 3 rounds, but starts none that would end after
``--budget-minutes`` (15) and shortens the later ones to the rows compared
with peers when a whole round would not fit: while cold gdcore processes
take 10-35 s each, the first round took 7.4 minutes on a 2-core AMD EPYC
(the twelve cold processes and the 142 s sequence, most of it) and two
short rounds of 2.8 minutes followed, 13.5 minutes in all; with faster cold
starts all three rounds are whole.  ``--quick`` (one round, the float32
network and float64 minimize rows with their peers, no sequence) takes
about 3 minutes; ``--entry NAME`` runs one entry point's rows and peers.
Results also go to ``bench/results/startup.json``.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as harness  # noqa: E402  (bench/ is a folder of scripts, not a package)

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "startup.json"

# Targets (from the issue).
TOTAL_COLD_TARGET_S = 15.0  # every entry point in both dtypes, cold
WARM_FIT_TARGET_S = 0.3  # first fit in a process with a populated cache
JAX_COMPARED = ("fit", "value_and_grad", "predict", "lbfgs")  # gdcore <= JAX, import included

# Problems.
SIZES = (64, 128, 10)
BATCH = 32
LR = 1e-3
ROSEN_N = 10
ADAM_MINIMIZE_LR = 1e-2
ADAM_MINIMIZE_ITERS = 500
LBFGS_MAXITER = 1000
GTOL = 1e-5

# Repetition and machine policy.
REPEATS = 3
BUDGET_MINUTES = 15.0
MAX_BACKGROUND = 0.3  # cores used by other processes above which a measurement is disturbed
QUIET_WAIT_SECONDS = 10.0  # before each round
COLD_TIMEOUT_S = 900
WARM_TIMEOUT_S = 300

ENTRIES = ("fit", "value_and_grad", "predict", "loss", "lbfgs", "adam")
NETWORK_ENTRIES = ("fit", "value_and_grad", "predict", "loss")
DTYPES = ("float32", "float64")
# The dtype a user meets first: the digits network in float32, a NumPy objective in float64.
HEADLINE_DTYPE = {e: ("float32" if e in NETWORK_ENTRIES else "float64") for e in ENTRIES}
PEERS = {  # entry -> peers measured beside it (in the entry's headline dtype)
    "fit": ("jax", "torch"),
    "value_and_grad": ("jax", "torch"),
    "predict": ("jax", "torch"),
    "loss": (),
    "lbfgs": ("jax", "torch", "scipy"),
    "adam": ("jax", "torch"),
}
PEER_MODULES = {"jax": ("jax", "optax"), "torch": ("torch",), "scipy": ("scipy",)}
PEER_LABEL = {
    "jax": {"fit": "JAX jit epoch (lax.scan, optax.adam)",
            "value_and_grad": "JAX jit(value_and_grad)",
            "predict": "JAX jit(predict)",
            "lbfgs": "JAX optax.lbfgs, jit(while_loop)",
            "adam": "JAX optax.adam, jit(while_loop)"},
    "torch": {"fit": "PyTorch eager epoch (Adam)",
              "value_and_grad": "PyTorch forward + backward",
              "predict": "PyTorch forward + softmax",
              "lbfgs": "PyTorch optim.LBFGS (strong Wolfe)",
              "adam": "PyTorch optim.Adam"},
    "scipy": {"lbfgs": "SciPy L-BFGS-B (context)"},
}
ENTRY_LABEL = {"fit": "fit (1 epoch, Adam)", "value_and_grad": "value_and_grad",
               "predict": "predict", "loss": "loss", "lbfgs": 'minimize(method="lbfgs")',
               "adam": "minimize(method=gd.adam())", "sequence": "all 12 in one process"}


# The child processes ----------------------------------------------------------------------
# Each child is a script run by `python -c`: it times its imports from its first line,
# then its calls, and prints one JSON object as its last line.  Data come from an .npz
# the parent wrote, loaded outside the timed regions.

CHILD_HEAD = """
import json, sys, time
T0 = time.perf_counter()
"""

ROSEN_NUMPY = """
def rosen(x):
    d = x[1:] - x[:-1] ** 2
    e = 1 - x[:-1]
    g = np.zeros_like(x)
    g[:-1] = -400 * x[:-1] * d - 2 * e
    g[1:] += 200 * d
    return 100 * np.dot(d, d) + np.dot(e, e), g
"""

GDCORE_CHILD = """
import numpy as np
import gdcore as gd
OUT = {{"import_s": time.perf_counter() - T0, "first_call_s": {{}}, "info": {{}}}}

from numba.core import config, event

COMPILED = []


class Count(event.Listener):
    # Numba's compile events fire on cache misses only: a warm process should count none.
    def on_start(self, ev):
        func = getattr(ev.data.get("dispatcher"), "py_func", None)
        if func is not None and func.__module__.split(".")[0] == "gdcore":
            COMPILED.append(func.__module__ + "." + func.__qualname__)

    def on_end(self, ev):
        pass


event.register("numba:compile", Count())
""" + ROSEN_NUMPY + """

def network(dtype):
    model = gd.mlp({sizes!r}, activation="relu", loss="cross_entropy")
    return model, gd.init(model, seed=0, dtype=dtype)


def fit(X, y, x0, dtype):
    model, params = network(dtype)
    res = gd.fit(model, params, X, y, optimizer=gd.adam({lr!r}), epochs=1,
                 batch_size={batch!r}, seed=0, progress=False)
    assert res.status == "completed", res.message
    return float(res.history["loss"][-1])


def value_and_grad(X, y, x0, dtype):
    model, params = network(dtype)
    return float(gd.value_and_grad(model, params, X, y)[0])


def predict(X, y, x0, dtype):
    model, params = network(dtype)
    return float(gd.predict(model, params, X)[0, 0])


def loss(X, y, x0, dtype):
    model, params = network(dtype)
    return float(gd.loss(model, params, X, y))


def lbfgs(X, y, x0, dtype):
    res = gd.minimize(rosen, x0, jac=True, method="lbfgs",
                      options={{"maxiter": {lbfgs_maxiter!r}, "gtol": {gtol!r}}})
    return [float(res.fun), int(res.nit), int(res.status)]


def adam(X, y, x0, dtype):
    res = gd.minimize(rosen, x0, jac=True, method=gd.adam({adam_lr!r}),
                      options={{"maxiter": {adam_iters!r}}})
    return [float(res.fun), int(res.nit), int(res.status)]


DATA = np.load(sys.argv[1])
for entry, dtype in {calls!r}:
    X, y, x0 = DATA["X"].astype(dtype), DATA["y"], DATA["x0"].astype(dtype)
    t = time.perf_counter()
    OUT["info"][entry + " " + dtype] = globals()[entry](X, y, x0, dtype)
    OUT["first_call_s"][entry + " " + dtype] = time.perf_counter() - t
OUT["compiled"] = len(COMPILED)
OUT["compiled_functions"] = len(set(COMPILED))
OUT["threads"] = {{"numba": config.NUMBA_NUM_THREADS}}
print(json.dumps(OUT))
"""

JAX_CHILD = """
import numpy as np
import jax
import jax.numpy as jnp
import optax
import optax.tree_utils as otu
OUT = {{"import_s": time.perf_counter() - T0, "first_call_s": {{}}, "info": {{}}}}


def forward(p, X):
    (W0, b0), (W1, b1) = p
    return jax.nn.relu(X @ W0 + b0) @ W1 + b1


def batch_loss(p, X, y):
    return optax.softmax_cross_entropy_with_integer_labels(forward(p, X), y).mean()


def rosen(x):
    return 100 * jnp.sum((x[1:] - x[:-1] ** 2) ** 2) + jnp.sum((1 - x[:-1]) ** 2)


def fit(P, X, y, x0):
    params = jax.tree.map(jnp.asarray, P)
    opt = optax.adam({lr!r})

    @jax.jit
    def epoch(params, state, Xb, Yb):
        def step(carry, batch):
            params, state = carry
            value, grads = jax.value_and_grad(batch_loss)(params, *batch)
            updates, state = opt.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), value

        (params, state), values = jax.lax.scan(step, (params, state), (Xb, Yb))
        return params, state, values.mean()

    state = opt.init(params)
    nb = len(X) // {batch!r}
    order = np.random.default_rng(0).permutation(len(X))[:nb * {batch!r}]
    out = epoch(params, state, X[order].reshape(nb, {batch!r}, -1),
                y[order].reshape(nb, {batch!r}))
    return float(jax.block_until_ready(out)[2])


def value_and_grad(P, X, y, x0):
    out = jax.jit(jax.value_and_grad(batch_loss))(jax.tree.map(jnp.asarray, P), X, y)
    return float(jax.block_until_ready(out)[0])


def predict(P, X, y, x0):
    out = jax.jit(lambda p, X: jax.nn.softmax(forward(p, X)))(jax.tree.map(jnp.asarray, P), X)
    return float(jax.block_until_ready(out)[0, 0])


def minimize(opt, x0, maxiter, linesearch):
    # optax's documented pattern: the whole run in one jitted while_loop.
    value_and_grad_fun = (optax.value_and_grad_from_state(rosen) if linesearch
                          else jax.value_and_grad(rosen))

    @jax.jit
    def run(x):
        def step(carry):
            x, state = carry
            if linesearch:
                value, grad = value_and_grad_fun(x, state=state)
                updates, state = opt.update(grad, state, x, value=value, grad=grad,
                                            value_fn=rosen)
            else:
                value, grad = value_and_grad_fun(x)
                updates, state = opt.update(grad, state, x)
            return optax.apply_updates(x, updates), state

        def going_on(carry):
            x, state = carry
            count = otu.tree_get(state, "count")
            grad = otu.tree_get(state, "grad") if linesearch else jax.grad(rosen)(x)
            return (count == 0) | ((count < maxiter) & (otu.tree_norm(grad) >= {gtol!r}))

        return jax.lax.while_loop(going_on, step, (x, opt.init(x)))

    x, state = run(jnp.asarray(x0))
    return [float(jax.block_until_ready(rosen(x))), int(otu.tree_get(state, "count"))]


def lbfgs(P, X, y, x0):
    jax.config.update("jax_enable_x64", True)
    return minimize(optax.lbfgs(), x0, {lbfgs_maxiter!r}, True)


def adam(P, X, y, x0):
    jax.config.update("jax_enable_x64", True)
    return minimize(optax.adam({adam_lr!r}), x0, {adam_iters!r}, False)


DATA = np.load(sys.argv[1])
for entry, dtype in {calls!r}:
    X, y, x0 = DATA["X"].astype(dtype), DATA["y"].astype(np.int32), DATA["x0"].astype(dtype)
    P = [(DATA["W0"].astype(dtype), DATA["b0"].astype(dtype)),
         (DATA["W1"].astype(dtype), DATA["b1"].astype(dtype))]
    t = time.perf_counter()
    OUT["info"][entry + " " + dtype] = globals()[entry](P, X, y, x0)
    OUT["first_call_s"][entry + " " + dtype] = time.perf_counter() - t
OUT["threads"] = {{"xla_devices": [str(d) for d in jax.devices()],
                  "compilation_cache_dir": jax.config.jax_compilation_cache_dir}}
print(json.dumps(OUT))
"""

TORCH_CHILD = """
import numpy as np
import torch
OUT = {{"import_s": time.perf_counter() - T0, "first_call_s": {{}}, "info": {{}}}}


def network(P):
    net = torch.nn.Sequential(torch.nn.Linear({n_in}, {n_hidden}), torch.nn.ReLU(),
                              torch.nn.Linear({n_hidden}, {n_out}))
    with torch.no_grad():
        for lin, (W, b) in zip((net[0], net[2]), P):
            lin.weight.copy_(torch.from_numpy(W.T.copy()))
            lin.bias.copy_(torch.from_numpy(b))
    return net


def fit(P, X, y, x0):
    net = network(P)
    opt = torch.optim.Adam(net.parameters(), lr={lr!r})
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(X)))
    for start in range(0, len(X), {batch!r}):
        idx = order[start:start + {batch!r}]
        opt.zero_grad()
        value = loss_fn(net(Xt[idx]), yt[idx])
        value.backward()
        opt.step()
        if start == 0:
            OUT["first_step_s"] = time.perf_counter() - T_CALL
    return float(value)


def value_and_grad(P, X, y, x0):
    net = network(P)
    value = torch.nn.functional.cross_entropy(net(torch.from_numpy(X)), torch.from_numpy(y))
    value.backward()
    return float(value)


def predict(P, X, y, x0):
    net = network(P)
    with torch.no_grad():
        return float(torch.softmax(net(torch.from_numpy(X)), dim=1)[0, 0])


def rosen(x):
    return 100 * torch.sum((x[1:] - x[:-1] ** 2) ** 2) + torch.sum((1 - x[:-1]) ** 2)


def lbfgs(P, X, y, x0):
    x = torch.tensor(x0, requires_grad=True)
    opt = torch.optim.LBFGS([x], lr=1, max_iter={lbfgs_maxiter!r}, tolerance_grad={gtol!r},
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        value = rosen(x)
        value.backward()
        return value

    opt.step(closure)
    return [float(rosen(x)), opt.state[x]["n_iter"]]


def adam(P, X, y, x0):
    x = torch.tensor(x0, requires_grad=True)
    opt = torch.optim.Adam([x], lr={adam_lr!r})
    for _ in range({adam_iters!r}):
        opt.zero_grad()
        value = rosen(x)
        value.backward()
        opt.step()
    return [float(rosen(x)), {adam_iters!r}]


DATA = np.load(sys.argv[1])
for entry, dtype in {calls!r}:
    X, y, x0 = DATA["X"].astype(dtype), DATA["y"], DATA["x0"].astype(dtype)
    P = [(DATA["W0"].astype(dtype), DATA["b0"].astype(dtype)),
         (DATA["W1"].astype(dtype), DATA["b1"].astype(dtype))]
    T_CALL = time.perf_counter()
    OUT["info"][entry + " " + dtype] = globals()[entry](P, X, y, x0)
    OUT["first_call_s"][entry + " " + dtype] = time.perf_counter() - T_CALL
OUT["threads"] = {{"torch": torch.get_num_threads(),
                  "torch_interop": torch.get_num_interop_threads()}}
print(json.dumps(OUT))
"""

SCIPY_CHILD = """
import numpy as np
import scipy.optimize
OUT = {{"import_s": time.perf_counter() - T0, "first_call_s": {{}}, "info": {{}}}}
""" + ROSEN_NUMPY.replace("{", "{{").replace("}", "}}") + """

def lbfgs(x0):
    res = scipy.optimize.minimize(rosen, x0, jac=True, method="L-BFGS-B",
                                  options={{"maxiter": {lbfgs_maxiter!r}, "gtol": {gtol!r}}})
    return [float(res.fun), int(res.nit), int(res.status)]


DATA = np.load(sys.argv[1])
for entry, dtype in {calls!r}:
    x0 = DATA["x0"].astype(dtype)
    t = time.perf_counter()
    OUT["info"][entry + " " + dtype] = globals()[entry](x0)
    OUT["first_call_s"][entry + " " + dtype] = time.perf_counter() - t
print(json.dumps(OUT))
"""

# "gdcore": as installed (kernels compiled ahead of time when `python -m gdcore aot` built
# them, as make's install step does); "gdcore-jit": Numba compiles them (GDCORE_KERNELS=jit).
CHILDREN = {"gdcore": GDCORE_CHILD,
            "gdcore-jit": 'import os; os.environ["GDCORE_KERNELS"] = "jit"\n' + GDCORE_CHILD,
            "jax": JAX_CHILD, "torch": TORCH_CHILD, "scipy": SCIPY_CHILD}
PRIME = ("import numpy, scipy.optimize, numba, gdcore\n"
         "for name in {names!r}:\n"
         "    __import__(name)\n"
         "print('{{}}')\n")


def child_code(impl, calls, data_path):
    """The script a row's process runs: ``calls`` is a list of (entry, dtype)."""
    body = CHILDREN[impl].format(
        sizes=SIZES, n_in=SIZES[0], n_hidden=SIZES[1], n_out=SIZES[2], lr=LR, batch=BATCH,
        lbfgs_maxiter=LBFGS_MAXITER, gtol=GTOL, adam_lr=ADAM_MINIMIZE_LR,
        adam_iters=ADAM_MINIMIZE_ITERS, calls=[tuple(c) for c in calls])
    # first_call_in_subprocess runs `python -c code`: the data file reaches sys.argv[1]
    # through a one-line preamble rather than a command-line argument.
    return f"import sys; sys.argv[1:] = [{str(data_path)!r}]\n" + CHILD_HEAD + body


# Rows ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """One measured thing: an implementation's first calls of ``calls`` in a fresh process."""

    entry: str  # an ENTRIES name, or "sequence"
    impl: str  # "gdcore", "gdcore-jit" or a PEERS name
    dtype: str  # "float32", "float64" or "both"
    calls: tuple  # ((entry, dtype), ...)
    headline: bool  # gdcore's row compared with peers, or a peer's: kept in short rounds

    @property
    def key(self):
        return f"{self.entry} {self.impl} {self.dtype}"

    @property
    def label(self):
        if self.impl == "gdcore":
            return f"gdcore {self.dtype}" + ("" if self.entry == "sequence" else " (cold)")
        if self.impl == "gdcore-jit":
            return f"gdcore {self.dtype} (cold, Numba JIT)"
        return PEER_LABEL[self.impl][self.entry]


def plan_rows(entries, quick, available):
    """Rows in display order: per entry point gdcore's dtypes, then its peers."""
    rows = []
    for entry in ENTRIES:
        if entry not in entries:
            continue
        headline = HEADLINE_DTYPE[entry]
        for dtype in ((headline,) if quick else DTYPES):
            rows.append(Row(entry, "gdcore", dtype, ((entry, dtype),),
                            dtype == headline and bool(PEERS[entry])))
            rows.append(Row(entry, "gdcore-jit", dtype, ((entry, dtype),), False))
        for peer in PEERS[entry]:
            if available[peer]:
                rows.append(Row(entry, peer, headline, ((entry, headline),), True))
    if "sequence" in entries:
        calls = tuple((e, d) for d in DTYPES for e in ENTRIES)
        rows.append(Row("sequence", "gdcore", "both", calls, False))
    return rows


def measure_row(row, data_path):
    """One round of a row: {"cold": result, "warm": result or None}; raises on failure.

    gdcore: a cold process on a new empty cache, then a warm one on the cache it
    filled.  Peers: one process (they have no on-disk cache to warm).
    """
    code = child_code(row.impl, row.calls, data_path)
    if not row.impl.startswith("gdcore"):
        with tempfile.TemporaryDirectory(prefix="startup-peer-") as cache:
            return {"cold": harness.first_call_in_subprocess(code, cache, COLD_TIMEOUT_S),
                    "warm": None}
    with tempfile.TemporaryDirectory(prefix="gdcore-numba-cache-") as cache:
        cold = harness.first_call_in_subprocess(code, cache, COLD_TIMEOUT_S)
        warm = harness.first_call_in_subprocess(code, cache, WARM_TIMEOUT_S)
    return {"cold": cold, "warm": warm}


def summarise(samples):
    """Medians over the quiet samples (all of them, flagged, when none was quiet)."""
    if not samples:
        return None
    quiet = [s for s in samples if s["background"] is None or s["background"] <= MAX_BACKGROUND]
    kept = quiet or samples

    def med(values):
        return float(np.median(values))

    labels = list(kept[0]["first_call_s"])
    per_call = {k: med([s["first_call_s"][k] for s in kept]) for k in labels}
    first = med([sum(s["first_call_s"].values()) for s in kept])
    out = {
        "import_s": med([s["import_s"] for s in kept]),
        "first_s": first,
        "to_result_s": med([s["import_s"] + sum(s["first_call_s"].values()) for s in kept]),
        "process_s": med([s["process_s"] for s in kept]),
        "per_call_s": per_call,
        "background_max": max((s["background"] or 0.0) for s in samples),
        "n": len(samples), "n_quiet": len(quiet), "contended": not quiet,
    }
    if "compiled" in kept[0]:
        out["compiled"] = int(np.median([s["compiled"] for s in kept]))
        out["compiled_functions"] = int(np.median([s["compiled_functions"] for s in kept]))
    if "first_step_s" in kept[0]:
        out["first_step_s"] = med([s["first_step_s"] for s in kept])
    return out


# The run ---------------------------------------------------------------------------------
def write_data(path):
    """The digits training set (or random data of its shape), initial weights, Rosenbrock x0."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        X, y = load_digits(return_X_y=True)
        X, _, y, _ = train_test_split(X / 16.0, y, test_size=0.25, stratify=y, random_state=0)
        source = "scikit-learn load_digits, 75% training split"
    except ImportError:
        rng = np.random.default_rng(0)
        X, y = rng.random((1347, SIZES[0])), rng.integers(0, SIZES[-1], 1347)
        source = "random data of digits' shape (scikit-learn not installed)"
    rng = np.random.default_rng(1)
    weights = {}
    for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        bound = 1.0 / np.sqrt(n_in)  # torch.nn.Linear's default initialisation
        weights[f"W{i}"] = rng.uniform(-bound, bound, (n_in, n_out))
        weights[f"b{i}"] = rng.uniform(-bound, bound, n_out)
    x0 = np.ones(ROSEN_N)
    x0[::2] = -1.2
    np.savez(path, X=np.ascontiguousarray(X), y=np.asarray(y, dtype=np.int64), x0=x0, **weights)
    return source, X.shape


def prime(names, data_dir):
    """Import every library once, untimed, so that no timed import reads them from disk."""
    code = PRIME.format(names=list(names))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="startup-prime-", dir=data_dir) as cache:
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                       env=dict(os.environ, NUMBA_CACHE_DIR=cache), timeout=600)
    return time.perf_counter() - t0


def run_rounds(rows, data_path, repeats, budget_s, t_start):
    """Rounds of all rows taking turns; later rounds shrink (or stop) to fit the budget.

    Returns per-row samples, errors, and what each round ran.
    """
    samples = {r.key: {"cold": [], "warm": []} for r in rows}
    errors = {}
    seconds = {}  # a row's duration in its last round, for the budget
    rounds = []
    for rnd in range(repeats):
        todo = rows
        if rnd > 0 and budget_s:
            left = budget_s - (time.perf_counter() - t_start)
            head = [r for r in rows if r.headline]
            if 1.1 * sum(seconds.get(r.key, 0.0) for r in rows) > left:
                todo = head if 1.1 * sum(seconds.get(r.key, 0.0) for r in head) <= left else []
            if not todo:
                print(f"round {rnd + 1}: skipped, it would not end within the budget "
                      f"({budget_s / 60:.0f} min; --budget-minutes 0 lifts it)", flush=True)
                break
        todo = [r for r in todo if r.key not in errors]
        shift = rnd % max(1, len(todo))
        todo = todo[shift:] + todo[:shift]
        quiet, waited, load = harness.wait_for_quiet(QUIET_WAIT_SECONDS, MAX_BACKGROUND)
        what = "all rows" if len(todo) == len(rows) else f"{len(todo)} rows compared with peers"
        print(f"round {rnd + 1}/{repeats}: {what}; background {harness.fmt_load(load)}"
              + (f" after waiting {waited:.0f} s" if waited > 1.5 else "")
              + ("" if quiet else " (busy: figures will be flagged)"), flush=True)
        t_round = time.perf_counter()
        for row in todo:
            t_row = time.perf_counter()
            try:
                got = measure_row(row, data_path)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                errors[row.key] = str(exc)[-2000:]
                print(f"  {row.key}: FAILED\n{textwrap.indent(errors[row.key], '    ')}",
                      flush=True)
                continue
            seconds[row.key] = time.perf_counter() - t_row
            samples[row.key]["cold"].append(got["cold"])
            if got["warm"] is not None:
                samples[row.key]["warm"].append(got["warm"])
            c, w = got["cold"], got["warm"]
            print(f"  {row.key:<34} import {c['import_s']:5.2f} s  first "
                  f"{sum(c['first_call_s'].values()):6.2f} s"
                  + (f"  | warm import {w['import_s']:4.2f} s first "
                     f"{sum(w['first_call_s'].values()):5.2f} s" if w else "")
                  + f"  (background {harness.fmt_load(c['background'])})", flush=True)
        rounds.append({"rows": [r.key for r in todo], "seconds": time.perf_counter() - t_round,
                       "background_before": load, "waited_s": waited})
    return samples, errors, rounds


def fmt_s(value):
    return "-" if value is None else f"{value:.2f}"


def table(rows, summary):
    headers = ["entry point", "impl", "import s", "first call s", "import + first s",
               "process s", "warm: import s", "warm: first call s", "warm: process s",
               "kernels compiled cold / warm", "runs (quiet)", "max background (cores)"]
    body = []
    for row in rows:
        s = summary.get(row.key)
        if s is None or s["cold"] is None:
            continue
        c, w = s["cold"], s["warm"]
        flag = " CONTENDED" if c["contended"] else ""
        compiled = (f"{c['compiled']} / {w['compiled']}" if w and "compiled" in c else "-")
        body.append([ENTRY_LABEL[row.entry], row.label, fmt_s(c["import_s"]),
                     fmt_s(c["first_s"]), fmt_s(c["to_result_s"]), fmt_s(c["process_s"]),
                     fmt_s(w and w["import_s"]), fmt_s(w and w["first_s"]),
                     fmt_s(w and w["process_s"]), compiled, f"{c['n']} ({c['n_quiet']})",
                     f"{c['background_max']:.2f}{flag}"])
    return harness.markdown_table(headers, body)


def targets(rows, summary):
    """PASS / MISS lines of the issue's targets (SKIP where a row was not measured)."""
    cold = {k: v["cold"] for k, v in summary.items() if v["cold"] is not None}
    warm = {k: v["warm"] for k, v in summary.items() if v["warm"] is not None}
    out = []

    def skip(target, why):
        out.append({"target": target, "value": "n/a", "status": f"SKIP ({why})",
                    "contended": False})

    for entry in JAX_COMPARED:
        dtype = HEADLINE_DTYPE[entry]
        target = (f"cold import gdcore + first {ENTRY_LABEL[entry]} ({dtype}) <= JAX import + "
                  f"{PEER_LABEL['jax'][entry]}")
        mine, theirs = cold.get(f"{entry} gdcore {dtype}"), cold.get(f"{entry} jax {dtype}")
        if mine is None or theirs is None:
            skip(target, "gdcore or JAX row not measured")
            continue
        r = mine["to_result_s"] / theirs["to_result_s"]
        out.append(harness.verdict(
            target, f"{mine['to_result_s']:.2f} s vs {theirs['to_result_s']:.2f} s "
                    f"({r:.2f}x JAX's; first call {mine['first_s']:.2f} s vs "
                    f"{theirs['first_s']:.2f} s, import {mine['import_s']:.2f} s vs "
                    f"{theirs['import_s']:.2f} s)",
            r <= 1.0, mine["contended"] or theirs["contended"]))

    target = (f"every entry point in both dtypes, cold, one process in sequence (import "
              f"included) <= {TOTAL_COLD_TARGET_S:.0f} s")
    seq = cold.get("sequence gdcore both")
    if seq is None:
        skip(target, "sequence row not measured")
    else:
        out.append(harness.verdict(
            target, f"{seq['to_result_s']:.2f} s (import {seq['import_s']:.2f} s + first calls "
                    f"{seq['first_s']:.2f} s)",
            seq["to_result_s"] <= TOTAL_COLD_TARGET_S, seq["contended"]))

    target = (f"every entry point in both dtypes, cold, each in its own process: one import + "
              f"the sum of the 12 first calls <= {TOTAL_COLD_TARGET_S:.0f} s (stricter)")
    keys = [f"{e} gdcore {d}" for e in ENTRIES for d in DTYPES]
    if not all(k in cold for k in keys):
        skip(target, "not every entry point was measured in both dtypes")
    else:
        imp = float(np.median([cold[k]["import_s"] for k in keys]))
        firsts = sum(cold[k]["first_s"] for k in keys)
        worst = max(keys, key=lambda k: cold[k]["first_s"])
        out.append(harness.verdict(
            target, f"{imp + firsts:.2f} s (import {imp:.2f} s + {firsts:.2f} s; slowest "
                    f"{worst.replace(' gdcore', '')} {cold[worst]['first_s']:.2f} s)",
            imp + firsts <= TOTAL_COLD_TARGET_S, any(cold[k]["contended"] for k in keys)))

    target = f"warm: first fit (float32) in a new process <= {WARM_FIT_TARGET_S} s"
    w = warm.get("fit gdcore float32")
    if w is None:
        skip(target, "fit float32 not measured")
    else:
        out.append(harness.verdict(
            target, f"{w['first_s']:.3f} s (import {w['import_s']:.2f} s before it; "
                    f"{w.get('compiled', 0)} kernels compiled)",
            w["first_s"] <= WARM_FIT_TARGET_S, w["contended"]))
    return out


def versions():
    out = {}
    for dist in ("gdcore", "numba", "llvmlite", "numpy", "scipy", "jax", "jaxlib", "optax",
                 "torch", "scikit-learn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def threads_note(samples):
    """What thread counts the children ran with (machine defaults, never set here)."""
    seen = {}
    for s in samples.values():
        for sample in s["cold"][:1]:
            seen.update(sample.get("threads") or {})
    notes = []
    if "numba" in seen:
        notes.append(f"Numba {seen['numba']} threads")
    if "torch" in seen:
        notes.append(f"torch {seen['torch']} intra-op / {seen['torch_interop']} inter-op threads")
    if "xla_devices" in seen:
        notes.append(f"JAX {', '.join(seen['xla_devices'])} (XLA's CPU pool: all "
                     f"{os.cpu_count()} cores; compilation cache on disk: "
                     f"{seen['compilation_cache_dir'] or 'off'})")
    return "; ".join(notes) or "n/a"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one round; only the float32 network and float64 minimize rows "
                             "and their peers, no sequence")
    parser.add_argument("--entry", action="append", choices=ENTRIES + ("sequence",),
                        help="only this entry point's rows and peers (repeatable)")
    parser.add_argument("--repeats", type=int, default=None,
                        help=f"rounds (default {REPEATS}, 1 with --quick)")
    parser.add_argument("--budget-minutes", type=float, default=BUDGET_MINUTES,
                        help="start no round that would end later than this; 0: no limit")
    parser.add_argument("--no-peers", action="store_true", help="gdcore rows only")
    opts = parser.parse_args(argv)
    repeats = opts.repeats or (1 if opts.quick else REPEATS)
    entries = set(opts.entry or (ENTRIES if opts.quick else ENTRIES + ("sequence",)))

    t_start = time.perf_counter()
    print("gdcore start-up benchmark: first calls in fresh processes, cold (empty Numba "
          "cache) and warm, beside JAX and PyTorch")
    harness.print_machine()
    idle = harness.print_background(MAX_BACKGROUND, unit="runs")
    import scipy.linalg.cython_blas  # noqa: F401  (so threadpoolctl sees SciPy's BLAS too)
    blas = harness.blas_report()
    harness.print_blas(blas, "this process's view; each child loads its own, at the same "
                       "defaults: gdcore's products call NumPy's")
    vers = versions()
    print("versions: " + ", ".join(f"{k} {v}" for k, v in vers.items() if v))
    available = {p: not opts.no_peers and all(importlib.util.find_spec(m) is not None
                                              for m in mods)
                 for p, mods in PEER_MODULES.items()}
    for peer, ok in available.items():
        if not ok and not opts.no_peers:
            print(f"{peer}: not installed -- its rows skipped (make .venv/.stamp-bench)")
    rows = plan_rows(entries, opts.quick, available)

    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        data_path = Path(tmp) / "data.npz"
        source, shape = write_data(data_path)
        print(f"data: {source}, X {shape[0]} x {shape[1]}; Rosenbrock n={ROSEN_N} from "
              f"(-1.2, 1, ...)")
        names = [m for p, ok in available.items() if ok for m in PEER_MODULES[p]]
        print(f"priming the file cache (one untimed process importing gdcore, "
              f"{', '.join(names) or 'no peers'}): {prime(names, tmp):.1f} s", flush=True)
        samples, errors, rounds = run_rounds(
            rows, data_path, repeats, opts.budget_minutes * 60.0, t_start)

    summary = {k: {"cold": summarise(v["cold"]), "warm": summarise(v["warm"])}
               for k, v in samples.items()}
    print()
    print(table(rows, summary))
    print(f"\nSeconds, medians over the runs in which other processes used <= {MAX_BACKGROUND} "
          "cores (CONTENDED: none did, all kept).  'import' = import numpy + the library "
          "(jax + optax for JAX); 'first call' = from there to the first result (model, init, "
          "trace, compile, run); 'process' = the whole interpreter's wall time.  Cold: a new "
          "empty NUMBA_CACHE_DIR per process; warm: the next process on that cache.  "
          "Kernels compiled: Numba compile events of gdcore functions (cache misses; nested "
          "ones included).  gdcore (cold): as installed, its main kernels compiled ahead of "
          "time when 'python -m gdcore aot' built them (make's install step does); Numba "
          "JIT: GDCORE_KERNELS=jit, every kernel compiled on first use.")
    print(f"threads (machine defaults): {threads_note(samples)}")
    seq = summary.get("sequence gdcore both", {}).get("cold")
    if seq is not None:
        print("sequence, first call of each in one cold process: " + ", ".join(
            f"{k} {v:.2f} s" for k, v in seq["per_call_s"].items()))
    noisy = [k for k, v in summary.items() if v["cold"] is not None and v["cold"]["contended"]]
    if noisy:
        print(f"\n> Indicative only: other processes used more than {MAX_BACKGROUND} cores "
              f"during every run of: {'; '.join(noisy)}.")
    print()
    verdicts = targets(rows, summary)
    harness.print_verdicts(verdicts)
    for key, err in errors.items():
        print(f"[ERROR] {key}: the measurement failed (see above)")

    out = {
        "environment": harness.environment() | {"versions": vers},
        "blas": blas, "background_before_cores": idle,
        "policy": {"repeats": repeats, "budget_minutes": opts.budget_minutes,
                   "max_background_cores": MAX_BACKGROUND,
                   "quiet_wait_seconds": QUIET_WAIT_SECONDS, "quick": opts.quick,
                   "entries": sorted(entries)},
        "problem": {"sizes": SIZES, "batch": BATCH, "lr": LR, "data": source,
                    "rosen_n": ROSEN_N, "adam_minimize_lr": ADAM_MINIMIZE_LR,
                    "adam_minimize_iters": ADAM_MINIMIZE_ITERS, "gtol": GTOL},
        "rounds": rounds, "rows": [r.key for r in rows], "samples": samples,
        "summary": summary, "targets": verdicts, "errors": errors,
        "wall_seconds": time.perf_counter() - t_start,
    }
    path = harness.write_json(RESULTS_PATH, out)
    print(f"\nwrote {path} (whole run {out['wall_seconds']:.0f} s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
