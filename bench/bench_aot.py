"""Benchmark: kernels compiled ahead of time (``python -m gdcore aot``) against Numba's JIT.

Two parts, both on this machine's installed extensions (built beforehand):

* **cold first call**: each of ``gd.fit`` (one shuffled epoch, ``gd.adam(1e-3)``,
  batch 32), ``gd.value_and_grad``, ``gd.predict`` and ``gd.loss`` of the
  digits network (64-128-10, relu, cross_entropy, float32, 1347 random rows)
  in a fresh interpreter with an empty ``NUMBA_CACHE_DIR``, under
  ``GDCORE_KERNELS=auto`` (the extensions) and ``GDCORE_KERNELS=jit``
  (Numba compiles the kernels specialised for the model), taking turns;
  times are import (numpy + gdcore), first call, and the whole process.
  Also ``gd.minimize(rosen, x0, jac=True, method="lbfgs")`` on Rosenbrock in
  n = 10 written in NumPy (float64).
* **steady state**: small calls in one process, the table entry switched
  between the extension's kernel and Numba's specialised one (warm cache),
  alternating blocks of calls: ``value_and_grad`` and
  ``predict`` of a 10-32-1 network (mse, float64) on a batch of 32, and
  Adam's ``update_inplace`` on 385 float64 parameters.

usage: python bench/bench_aot.py [--rounds N] [--skip-cold]
"""

import argparse
import json
import os
import sys
import tempfile
import timeit

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness  # noqa: E402

CHILD = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
import gdcore as gd
t_import = time.perf_counter() - t0
rng = np.random.default_rng(0)
X = rng.standard_normal((1347, 64)).astype(np.float32)
y = rng.integers(0, 10, 1347)
t1 = time.perf_counter()
model = gd.mlp([64, 128, 10], activation="relu", loss="cross_entropy")
params = gd.init(model, seed=0, dtype=np.float32)
call = {call!r}
if call == "fit":
    out = gd.fit(model, params, X, y, optimizer=gd.adam(1e-3), epochs=1, batch_size=32,
                 seed=0, progress=False).history["loss"][-1]
elif call == "value_and_grad":
    out = gd.value_and_grad(model, params, X, y)[0]
elif call == "predict":
    out = float(gd.predict(model, params, X).sum())
elif call == "loss":
    out = gd.loss(model, params, X, y)
else:  # minimize_lbfgs: Rosenbrock in n = 10 written in NumPy, float64
    def rosen(x):
        f = np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
        g = np.zeros_like(x)
        g[:-1] = -400 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2 * (1 - x[:-1])
        g[1:] += 200 * (x[1:] - x[:-1] ** 2)
        return float(f), g
    out = gd.minimize(rosen, np.full(10, -1.0), jac=True, method="lbfgs").fun
first = time.perf_counter() - t1
print(json.dumps(dict(import_s=t_import, first_s=first, total_s=time.perf_counter() - t0,
                      value=float(out))))
"""

CALLS = ("fit", "value_and_grad", "predict", "loss", "minimize_lbfgs")
ROUNDS, CALLS_PER_BLOCK = 31, 2000


def cold(rounds, calls=CALLS):
    rows = {}
    for r in range(rounds):
        for call in calls:
            for mode in ("auto", "jit"):
                os.environ["GDCORE_KERNELS"] = mode
                with tempfile.TemporaryDirectory() as cache:
                    res = _harness.first_call_in_subprocess(CHILD.format(call=call), cache)
                rows.setdefault((call, mode), []).append(res)
                print(f"  round {r} {call:<15} {mode:<5} import {res['import_s']:.2f} s  first "
                      f"{res['first_s']:.2f} s  process {res['process_s']:.2f} s  (background "
                      f"{res['background'] or 0:.2f} cores)  value {res['value']!r}", flush=True)
    os.environ.pop("GDCORE_KERNELS")
    print("\ncold first call, medians (s): call, AOT first / process, JIT first / process")
    for call in calls:
        a, j = rows[(call, "auto")], rows[(call, "jit")]
        med = lambda rs, k: float(np.median([x[k] for x in rs]))  # noqa: E731
        print(f"  {call:<15} AOT {med(a, 'first_s'):6.3f} / {med(a, 'process_s'):6.2f}   "
              f"JIT {med(j, 'first_s'):6.2f} / {med(j, 'process_s'):6.2f}   same value: "
              f"{all(x['value'] == j[0]['value'] for x in a + j)}")
    return rows


def steady():
    import gdcore as gd
    from gdcore import functional
    from gdcore.kernels import _aot, entry, updates

    assert _aot.exports(), "no fresh extension: run python -m gdcore aot first"
    rng = np.random.default_rng(0)
    model = gd.mlp([10, 32, 1], activation="relu", loss="mse")
    params = gd.init(model, seed=0, dtype=np.float64)
    X, y = rng.standard_normal((32, 10)), rng.standard_normal(32)
    opt = gd.adam(1e-3)
    p385 = rng.standard_normal(385)
    g385 = rng.standard_normal(385) * 1e-3
    state = opt.init(p385)
    key = model.kernel_key
    variants = {}
    for name, table, k in (("value_and_grad", entry.value_and_grad_kernel, key),
                           ("predict", entry.predict_kernel, key),
                           ("adam update_inplace", updates.update_kernel, opt.code)):
        codes = k if isinstance(k, tuple) else (k,)
        variants[name] = (table, k, table[k], table.jit_kernel(*codes))
    calls = {"value_and_grad": lambda: functional.value_and_grad(model, params, X, y),
             "predict": lambda: functional.predict(model, params, X),
             "adam update_inplace": lambda: opt.update_inplace(g385, state, p385)}
    print(f"\nsteady state (us per call: median over {ROUNDS} alternating rounds of the mean "
          f"of {CALLS_PER_BLOCK} calls; ratio AOT / JIT):")
    for name, (table, k, aot_kernel, jit_kernel) in variants.items():
        assert aot_kernel.__name__.startswith("aot_")
        call = calls[name]
        times = {"aot": [], "jit": []}
        for _ in range(ROUNDS):
            for side, kernel in (("aot", aot_kernel), ("jit", jit_kernel)):
                table[k] = kernel
                call()
                times[side].append(timeit.timeit(call, number=CALLS_PER_BLOCK)
                                   / CALLS_PER_BLOCK)
        a, j = (float(np.median(times[s])) * 1e6 for s in ("aot", "jit"))
        ratios = [x / y for x, y in zip(times["aot"], times["jit"])]
        print(f"  {name:<20} AOT {a:7.3f}  JIT {j:7.3f}  ratio of medians {a / j:.3f}  "
              f"median of paired ratios {np.median(ratios):.3f}")
        table[k] = aot_kernel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--skip-cold", action="store_true")
    ap.add_argument("--calls", default=",".join(CALLS), help="cold calls, comma-separated")
    ap.add_argument("--skip-steady", action="store_true")
    a = ap.parse_args()
    print(f"machine: {_harness.cpu_model()}, {os.cpu_count()} cores; load average "
          f"{os.getloadavg()}")
    if not a.skip_cold:
        cold(a.rounds, a.calls.split(","))
    if not a.skip_steady:
        steady()


if __name__ == "__main__":
    main()
