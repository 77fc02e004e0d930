"""gdcore's core, before any training: a network for scikit-learn's digits data.

It shows what training is built on: the model summary and its offset table,
one loss/gradient evaluation (timed, float64 and float32), the predictions of
the untrained network, and the gradient check against SciPy finite
differences.  ``make demo`` trains (``examples/digits.py``); this runs with
``.venv/bin/python examples/demo.py``.
"""

import time

import numpy as np
from sklearn.datasets import load_digits

import gdcore as gd


def load_data():
    """Digits scaled to [0, 1]: X (1797, 64) float64, y (1797,) int labels 0-9."""
    digits = load_digits()
    return digits.data / 16.0, digits.target


def timed(func, *args, repeat=200, **kwargs):
    """Result of ``func`` and its median wall time per call in microseconds."""
    result = func(*args, **kwargs)  # first call compiles (or loads the cache)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func(*args, **kwargs)
        times.append(time.perf_counter() - t0)
    return result, 1e6 * float(np.median(times))


def main():
    X, y = load_data()
    model = gd.mlp([64, 32, 32, 10], activation="relu", loss="cross_entropy")
    print(model)
    print("\noffset table [w_start, b_start, n_in, n_out, activation, unit_start]:")
    print(model.offsets)

    params = gd.init(model, seed=0)
    t0 = time.perf_counter()
    gd.value_and_grad(model, params, X, y, l2=1e-4)
    first_call = time.perf_counter() - t0
    print(f"\nfirst value_and_grad call (compile or cache load): {first_call:.2f} s")

    for dtype in (np.float64, np.float32):
        p = params.astype(dtype)
        (loss, grad), us = timed(gd.value_and_grad, model, p, X, y, l2=1e-4)
        print(f"{np.dtype(dtype).name}: loss {loss:.6f}, |grad| {np.linalg.norm(grad):.6f}, "
              f"{us:.0f} us per call on all {len(X)} samples")

    proba = gd.predict(model, params, X)
    accuracy = np.mean(proba.argmax(axis=1) == y)
    print(f"untrained accuracy: {accuracy:.3f} (chance is about 0.1)")

    rng = np.random.default_rng(0)
    batch = rng.choice(len(X), size=64, replace=False)
    for dtype in (np.float64, np.float32):
        report = gd.check_grad(model, params.astype(dtype), X[batch], y[batch], l2=1e-4)
        print()
        print(report)
    if not report.ok:
        raise SystemExit("gradient check failed")


if __name__ == "__main__":
    main()
