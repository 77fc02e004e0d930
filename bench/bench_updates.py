"""Benchmark: one optimizer step of every rule, gdcore beside ``torch.optim`` and optax.

Each rule of :mod:`gdcore.optim` (and each RMSprop variant, whose loops differ)
takes one step on ``n`` float32 parameters with a fixed gradient, in place:

* ``gdcore``: ``Optimizer.update_inplace(grad, state, params)`` on one thread,
  and with ``threads=2`` for the large case;
* ``torch``: ``torch.optim.<Rule>.step()`` with torch's default implementation
  (``foreach`` on the CPU) and, where torch 2.13 has one on the CPU, ``fused=True``;
  torch runs on NumPy's BLAS thread count (2 here);
* ``optax``: Lion alone (``torch.optim`` has none): a jitted ``update`` plus
  ``apply_updates`` with the parameters and the state donated, on JAX arrays.

Two sizes: 385 parameters (a 10-32-1 network: the per-call overhead) and 10M
(memory-bound: every implementation waits on memory; the table gives the
bandwidth gdcore's step reached, its arrays' bytes read and written per
second).  Before timing, three steps of each peer are compared with gdcore's
from the same parameters (float32 rounding).  Figures are medians of blocks
(:func:`_harness.time_side_by_side`), peers in turn in one process; at 10M
five passes, as a step's median moves by 10-20% between passes on a VM; each
pass gives a ratio of the fastest peer over gdcore, and the table and verdict
take the median of those.

Targets: at 385 parameters every rule's step faster than its fastest peer's;
at 10M at least 0.9x its speed (both wait on the same memory traffic).  Run
``.venv/bin/python bench/bench_updates.py [--quick]`` (about eight minutes;
``--quick``: the 10M case only, two passes); it writes
``bench/results/updates.json``.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as harness  # noqa: E402

import gdcore as gd  # noqa: E402

from _jax_peer import JAX_MISSING, jax, optax  # noqa: E402

try:
    import torch
except ImportError:  # the bench extra installs it; a missing peer is skipped, never faked
    torch = None

SEED = 0
DTYPE = np.float32
SIZES = (385, 10_000_000)
CHECK_STEPS = 3
LR = 1e-3
GD, GD2 = "gdcore", "gdcore, threads=2"
LARGE = 100_000  # from this size on: gdcore's threaded step too, more passes, bandwidth
TARGET = {False: 1.0, True: 0.9}  # the least peer-best / gdcore-best ratio, by "large"

# name: (gdcore optimizer, torch class name and keyword arguments or None, the step's
# streams: arrays read plus arrays written, for the bandwidth reached).
RULES = {
    "sgd": (gd.sgd(LR), ("SGD", {}), 3),
    "sgd nesterov": (gd.sgd(LR, momentum=0.9, nesterov=True),
                     ("SGD", {"momentum": 0.9, "nesterov": True}), 5),
    "adam": (gd.adam(LR), ("Adam", {}), 7),
    "adam amsgrad": (gd.adam(LR, amsgrad=True), ("Adam", {"amsgrad": True}), 9),
    "adamw": (gd.adamw(LR), ("AdamW", {}), 7),
    "rmsprop": (gd.rmsprop(LR), ("RMSprop", {}), 5),
    "rmsprop centered": (gd.rmsprop(LR, centered=True), ("RMSprop", {"centered": True}), 7),
    "rmsprop momentum": (gd.rmsprop(LR, momentum=0.9), ("RMSprop", {"momentum": 0.9}), 7),
    "rmsprop centered momentum": (gd.rmsprop(LR, centered=True, momentum=0.9),
                                  ("RMSprop", {"centered": True, "momentum": 0.9}), 9),
    "adagrad": (gd.adagrad(LR), ("Adagrad", {}), 5),
    "adamax": (gd.adamax(LR), ("Adamax", {}), 7),
    "nadam": (gd.nadam(LR), ("NAdam", {}), 7),
    "lion": (gd.lion(LR), None, 5),
}


def problem(n):
    rng = np.random.default_rng(SEED)
    return rng.standard_normal(n, dtype=DTYPE), (1e-3 * rng.standard_normal(n, dtype=DTYPE))


def torch_step(spec, p0, g, fused):
    """A torch optimizer's ``step`` on a copy of ``p0`` with gradient ``g``, or None."""
    name, kwargs = spec
    tp = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    tp.grad = torch.from_numpy(g.copy())
    try:
        fused_kw = {"fused": True} if fused else {}  # not every rule takes the keyword
        opt = getattr(torch.optim, name)([tp], lr=LR, **fused_kw, **kwargs)
        opt.step()  # a rule without a fused CPU step raises here
    except (RuntimeError, TypeError, ValueError):
        return None
    with torch.no_grad():
        tp.copy_(torch.from_numpy(p0))
    opt.state.clear()
    return tp, opt


def optax_lion(p0, g):
    """Lion's step in optax: (step function, the parameters as NumPy after a call)."""
    tx = optax.lion(LR, b1=0.9, b2=0.99, weight_decay=0.0)  # gd.lion(LR)'s settings

    def apply(p, s, grad):
        updates, s = tx.update(grad, s, p)
        return optax.apply_updates(p, updates), s

    update = jax.jit(apply, donate_argnums=(0, 1))
    box = {"p": jax.numpy.asarray(p0.copy())}
    box["s"] = tx.init(box["p"])
    grad = jax.numpy.asarray(g)

    def step():
        box["p"], box["s"] = update(box["p"], box["s"], grad)
        box["p"].block_until_ready()

    return step, lambda: np.asarray(box["p"])


def agreement(name, got, expected, p0):
    """Largest difference of the new parameters over the largest change; raises when off.

    A change is allowed 0.1% of itself and of the largest change, plus 4 units
    in the last place of the parameter: a peer that fuses ``p - lr * g`` into
    one multiply-add rounds once where gdcore rounds twice, and a change of a
    few units of a parameter's last place shows that rounding whole.
    """
    change = np.abs(expected - p0)
    scale = float(np.max(change))
    diff = np.abs(got - expected)
    off = diff > 1e-3 * change + 1e-3 * scale + 4 * np.spacing(np.abs(expected))
    assert not off.any(), (f"{name}: {int(off.sum())} of {off.size} elements differ, the worst "
                           f"by {float(diff.max()) / scale:.2e} of the largest change")
    return float(diff.max()) / scale


def case(name, n, passes):
    """Check, then time one rule at size ``n``; returns its row of results."""
    optimizer, torch_spec, streams = RULES[name]
    p0, g = problem(n)
    p = p0.copy()
    state = optimizer.init(p)
    for _ in range(CHECK_STEPS):
        assert optimizer.update_inplace(g, state, p)
    checks = {}
    fns = {GD: lambda: optimizer.update_inplace(g, state, p)}
    if n >= LARGE:
        fns[GD2] = lambda: optimizer.update_inplace(g, state, p, threads=2)
    if torch is not None and torch_spec is not None:
        for fused in (False, True):
            made = torch_step(torch_spec, p0, g, fused)
            if made is None:
                continue
            tp, opt = made
            for _ in range(CHECK_STEPS):
                opt.step()
            label = f"torch {torch_spec[0]} ({'fused' if fused else 'default'})"
            checks[label] = agreement(f"{name}: {label}", tp.detach().numpy(), p, p0)
            fns[label] = opt.step
    if torch_spec is None and jax is not None:
        step, current = optax_lion(p0, g)
        for _ in range(CHECK_STEPS):
            step()
        checks["optax lion"] = agreement(f"{name}: optax", current(), p, p0)
        fns["optax lion (jit, donated)"] = step
    # One pass at a time, in a rotated order: the ratio of each pass compares
    # turns seconds apart, and the verdict takes the median of those ratios (a
    # VM's memory bandwidth drifts over minutes: one median per implementation
    # over the whole case moved a 10M ratio by 20-30% between runs).
    names, passes_run = list(fns), []
    for i in range(passes):
        order = names[i % len(names):] + names[:i % len(names)]
        timings, _ = harness.time_side_by_side({k: fns[k] for k in order}, passes=1)
        passes_run.append(timings)
    median_us = {k: float(np.median([t[k].median_us for t in passes_run])) for k in names}
    ratios = [pass_ratio(t) for t in passes_run] if len(names) > 1 + (GD2 in fns) else []
    return {"rule": name, "n_params": n, "bytes_per_step": streams * 4 * n,
            "median_us": median_us, "pass_ratios": ratios,
            "ratio": float(np.median(ratios)) if ratios else None,
            "contended": any(t[k].contended for t in passes_run for k in t),
            "passes": passes_run, "checks": checks}


def pass_ratio(timings):
    """The fastest peer's time over gdcore's fastest, in one pass."""
    ours = min(v.median_us for k, v in timings.items() if k.startswith("gdcore"))
    return min(v.median_us for k, v in timings.items() if not k.startswith("gdcore")) / ours


def row(result):
    """A table row: gdcore's times, the peers', the median of the passes' ratios, GB/s."""
    t = result["median_us"]
    ours = min(v for k, v in t.items() if k.startswith("gdcore"))
    peers = {k: v for k, v in t.items() if not k.startswith("gdcore")}
    ratio = result["ratio"]
    spread = (f" ({min(result['pass_ratios']):.2f}-{max(result['pass_ratios']):.2f})"
              if ratio is not None and len(result["pass_ratios"]) > 1 else "")
    return [result["rule"], f"{t[GD]:.2f}", f"{t[GD2]:.0f}" if GD2 in t else "-",
            "; ".join(f"{k}: {v:.2f}" for k, v in peers.items()) or "-",
            f"{ratio:.2f}x{spread}" if ratio is not None else "-",
            f"{result['bytes_per_step'] / ours / 1e3:.0f}" if result["n_params"] >= LARGE
            else "-"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10M only, two passes")
    args = parser.parse_args()
    t_start = time.perf_counter()
    harness.print_machine()
    blas = harness.blas_report()
    harness.print_blas(blas, "no matrix products here: the steps are gdcore's loops, torch's "
                             "kernels and XLA's")
    threads = harness.match_torch_threads(blas, torch)
    if jax is None:
        print(f"jax: not installed -- the optax Lion peer skipped ({JAX_MISSING})")
    bandwidth = harness.copy_bandwidth()
    print(f"NumPy copy bandwidth (one thread, read + write): {bandwidth:.1f} GB/s")
    sizes = SIZES[1:] if args.quick else SIZES
    results, tables, verdicts = [], {}, []
    headers = ["rule", "gdcore us", "gdcore 2 threads us", "peers us",
               "peer best / gdcore best, median of passes (range)", "gdcore GB/s"]
    for n in sizes:
        rows = []
        for name in RULES:
            print(f"timing {name}, {n:,} parameters ...", flush=True)
            result = case(name, n, 2 if args.quick else 5 if n >= LARGE else 3)
            results.append(result)
            rows.append(row(result))
        title = f"{n:,} float32 parameters"
        tables[title] = harness.markdown_table(headers, rows)
        print(f"\n{title} (µs per step: medians over the passes; the ratio: the median over "
              f"the passes of each pass's ratio; GB/s: the step's arrays read and written per "
              f"second)\n{tables[title]}\n")
        ratios = [res["ratio"] for res in results
                  if res["n_params"] == n and res["ratio"] is not None]
        contended = any(res["contended"] for res in results if res["n_params"] == n)
        target = TARGET[n >= LARGE]
        verdicts.append(harness.verdict(
            f"{title}: every rule's step at least {target}x its fastest peer's speed",
            f"worst peer-best / gdcore-best ratio {min(ratios):.2f}x", min(ratios) >= target,
            contended))
    harness.print_verdicts(verdicts)
    out = {"environment": harness.environment(), "blas": blas, "threads": threads,
           "copy_gbs": bandwidth, "tables": tables, "targets": verdicts, "results": results}
    harness.write_results(Path(__file__).resolve().parent / "results" / "updates.json", out,
                          t_start)


if __name__ == "__main__":
    main()
