"""Univariate linear regression by batch gradient descent, by hand and with gdcore.

The data are ``y = 2 + 3 x + noise``.  The textbook hypothesis and update,
for a learning rate ``a`` and a fixed number of iterations, are::

    h(x) = w0 + w1 * x
    w0 += a * mean(y - h(x))
    w1 += a * mean((y - h(x)) * x)

The script runs this update written out in NumPy, then trains the same model
with gdcore: a 1-1 network ``gd.Model([gd.Dense(1, 1)], loss="mse")`` fitted by
full-batch gradient descent (``gd.fit(..., optimizer=gd.sgd(...),
batch_size=None)``), from the same starting point (0, 0).  It prints the largest
difference between the two trajectories (rounding only), checks that both end
at the closed-form least squares solution (``np.linalg.lstsq``), and saves a
PNG with the data, the fitted line and the distance to that solution per
iteration.

Run with ``python examples/linear_regression.py [--out DIR] [--iterations N]``.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the script only writes files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import gdcore as gd  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "output"

# Both implementations must end this close to the least squares solution
# (largest absolute difference of w0, w1).  With a = 0.1 the error shrinks by
# a factor of about 0.985 per iteration on this data (the smallest eigenvalue
# of the cost's Hessian is about 0.15), so 2000 iterations leave ~1e-13.
TOLERANCE = 1e-8


def make_data(n=100, seed=0):
    """Noisy points on the line ``y = 2 + 3 x``.

    Parameters
    ----------
    n : int
        Number of points.
    seed : int

    Returns
    -------
    x, y : ndarray of shape (n,)
        ``x`` uniform in [0, 2], ``y = 2 + 3 x + normal(0, 0.5)``.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 2.0, size=n)
    y = 2.0 + 3.0 * x + rng.normal(0.0, 0.5, size=n)
    return x, y


def classic_gd(x, y, alpha, iterations):
    """The textbook batch gradient descent update, written out.

    Parameters
    ----------
    x, y : ndarray of shape (n,)
    alpha : float
        The learning rate ``a``.
    iterations : int

    Returns
    -------
    trajectory : ndarray of shape (iterations + 1, 2)
        ``[w0, w1]`` before the first update and after each one.
    """
    w0, w1 = 0.0, 0.0
    trajectory = [(w0, w1)]
    for _ in range(iterations):
        residual = y - (w0 + w1 * x)  # y - h(x), with both weights of this iteration
        w0, w1 = w0 + alpha * np.mean(residual), w1 + alpha * np.mean(residual * x)
        trajectory.append((w0, w1))
    return np.array(trajectory)


def gdcore_gd(x, y, alpha, iterations):
    """The same descent with gdcore: a 1-1 linear network trained full-batch.

    gdcore's ``mse`` loss is ``mean((h - y)**2)`` (as PyTorch's MSELoss), whose
    gradient is ``2 * mean((h - y) * x)``: twice the step direction of the
    textbook rule, which descends ``mean((h - y)**2) / 2``.  So the textbook's
    ``a`` is ``gd.sgd(learning_rate=a / 2)``, and the two runs take the same
    steps.

    Parameters
    ----------
    x, y : ndarray of shape (n,)
    alpha : float
        The textbook learning rate ``a``.
    iterations : int
        Epochs; with ``batch_size=None`` each epoch is one full-batch step.

    Returns
    -------
    trajectory : ndarray of shape (iterations + 1, 2)
        ``[w0, w1]`` as in :func:`classic_gd`.
    result : gdcore.FitResult
    """
    model = gd.Model([gd.Dense(1, 1)], loss="mse")
    # The flat layout of Dense(1, 1) is [W (1 x 1), b]: params = [w1, w0].
    params = np.zeros(model.n_params)
    steps = [params.copy()]

    def record(epoch, logs):
        steps.append(logs["params"])

    # d/dw mean((h - y)**2) = 2 * mean((h - y) * x): the textbook step a is sgd's a / 2.
    optimizer = gd.sgd(learning_rate=alpha / 2)
    result = gd.fit(model, params, x.reshape(-1, 1), y, optimizer=optimizer, epochs=iterations,
                    batch_size=None, callbacks=record, progress=False)
    trajectory = np.array(steps)[:, ::-1]  # [w1, w0] -> [w0, w1]
    return trajectory, result


def least_squares(x, y):
    """The closed-form solution ``[w0, w1]`` from ``np.linalg.lstsq``."""
    A = np.column_stack([np.ones_like(x), x])
    return np.linalg.lstsq(A, y, rcond=None)[0]


def plot(x, y, classic, ours, exact, path):
    """Data with the fitted line, and each run's distance to ``exact`` per iteration."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.scatter(x, y, s=10, alpha=0.6, label="data")
    grid = np.linspace(x.min(), x.max(), 2)
    w0, w1 = ours[-1]
    left.plot(grid, w0 + w1 * grid, "C1", label=f"gdcore: y = {w0:.3f} + {w1:.3f} x")
    left.plot(grid, 2 + 3 * grid, "k--", lw=1, label="true: y = 2 + 3 x")
    left.set(xlabel="x", ylabel="y", title="data and fitted line")
    left.legend()
    iterations = np.arange(len(classic))
    right.semilogy(iterations, np.abs(classic - exact).max(axis=1), lw=3, alpha=0.5,
                   label="NumPy, textbook update")
    right.semilogy(iterations, np.abs(ours - exact).max(axis=1), "k:", label="gdcore, gd.sgd")
    right.set(xlabel="iteration", ylabel="max |w - w_lstsq|",
              title="distance to the least squares solution")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    """Run both descents, compare them, save the figure.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    dict
        ``classic``, ``gdcore`` and ``lstsq`` (final ``[w0, w1]``),
        ``max_trajectory_diff``, ``max_error`` (worst of the two runs against
        lstsq) and ``png`` (path of the figure).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--alpha", type=float, default=0.1, help="textbook learning rate a")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    x, y = make_data()
    classic = classic_gd(x, y, args.alpha, args.iterations)
    ours, result = gdcore_gd(x, y, args.alpha, args.iterations)
    exact = least_squares(x, y)

    trajectory_diff = float(np.abs(classic - ours).max())
    error = float(max(np.abs(classic[-1] - exact).max(), np.abs(ours[-1] - exact).max()))
    print(f"{args.iterations} iterations of batch gradient descent, a = {args.alpha}, "
          f"on {len(x)} points of y = 2 + 3x + noise")
    print(f"  textbook (NumPy): w0 = {classic[-1, 0]:.10f}, w1 = {classic[-1, 1]:.10f}")
    print(f"  gdcore (sgd a/2): w0 = {ours[-1, 0]:.10f}, w1 = {ours[-1, 1]:.10f}  "
          f"({result.status}, final mse {result.history['loss'][-1]:.6f})")
    print(f"  lstsq:            w0 = {exact[0]:.10f}, w1 = {exact[1]:.10f}")
    print(f"max |textbook - gdcore| over all {args.iterations + 1} iterates: "
          f"{trajectory_diff:.3g}")
    verdict = "OK" if error <= TOLERANCE else "NOT within"
    print(f"max |final - lstsq|: {error:.3g} ({verdict} tolerance {TOLERANCE:g})")

    png = args.out / "linear_regression.png"
    plot(x, y, classic, ours, exact, png)
    print(f"saved {png}")
    return {"classic": classic[-1], "gdcore": ours[-1], "lstsq": exact,
            "max_trajectory_diff": trajectory_diff, "max_error": error, "png": png}


if __name__ == "__main__":
    main()
