"""Batch, mini-batch and stochastic gradient descent on the same problem.

A small MLP (64-32-10, ReLU, softmax cross-entropy) is trained on
scikit-learn's digits (1797 images of 8 x 8 pixels, scaled to [0, 1]) three
times, from the same initial parameters, with the same optimizer
(``gd.sgd(learning_rate=0.1)``) and the same number of epochs; only
``batch_size`` changes:

=============  ==============  =====================================
variant        ``batch_size``  steps per epoch
=============  ==============  =====================================
batch          ``None``        1 (the gradient of the whole data set)
mini-batch     32              57
stochastic     1               1797 (one sample per step)
=============  ==============  =====================================

After every epoch a callback evaluates the loss on the whole training set
(``history["loss"]`` would instead average the batch losses seen during the
epoch, which lags for small batches) and records the epoch's wall time
(``logs["epoch_time"]``, which leaves the callback's own work out).  The
script prints a table and saves a PNG with the loss against epochs and
against wall time.

An epoch of the three variants does the same arithmetic, in 1, 57 or 1797
steps; more steps per epoch buy more progress per epoch at a higher cost per
epoch.  The wall times depend on the machine: on a busy machine a
multithreaded BLAS can stall on the large full-batch products (try
``OPENBLAS_NUM_THREADS=1``).

Run with ``python examples/gd_variants.py [--out DIR] [--epochs N]``.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the script only writes files
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import gdcore as gd  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "output"
VARIANTS = {"batch": None, "mini-batch": 32, "stochastic": 1}  # name -> batch_size
LEARNING_RATE = 0.1


def train(model, params, X, y, batch_size, epochs):
    """Train with ``gd.sgd`` and record the full training loss and time per epoch.

    Parameters
    ----------
    model : gdcore.Model
    params : ndarray of shape (n_params,)
        Initial parameters (not modified).
    X : ndarray of shape (n_samples, n_inputs)
    y : ndarray of shape (n_samples,)
    batch_size : int or None
    epochs : int

    Returns
    -------
    dict
        ``epoch``, ``loss`` and ``time`` (seconds of training so far), each a
        list of ``epochs + 1`` values, starting with the initial parameters
        at epoch 0, time 0; and ``steps_per_epoch``.
    """
    history = {"epoch": [0], "loss": [gd.loss(model, params, X, y)], "time": [0.0]}

    def record(epoch, logs):
        history["epoch"].append(epoch + 1)
        history["loss"].append(gd.loss(model, logs["params"], X, y))
        history["time"].append(history["time"][-1] + logs["epoch_time"])

    result = gd.fit(model, params, X, y, optimizer=gd.sgd(learning_rate=LEARNING_RATE),
                    epochs=epochs, batch_size=batch_size, seed=0, callbacks=record,
                    progress=False)
    if result.status != "completed":
        raise RuntimeError(f"batch_size={batch_size}: {result.message}")
    history["steps_per_epoch"] = -(-len(X) // (batch_size or len(X)))
    return history


def plot(histories, path):
    """Two panels: loss against epochs and loss against wall time (log y)."""
    fig, (by_epoch, by_time) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for name, h in histories.items():
        label = f"{name} (batch_size={VARIANTS[name]})"
        by_epoch.semilogy(h["epoch"], h["loss"], marker=".", label=label)
        by_time.semilogy(h["time"], h["loss"], marker=".", label=label)
    by_epoch.set(xlabel="epoch", ylabel="training loss (whole data set)",
                 title="loss against epochs")
    by_time.set(xlabel="wall time of training (s)", title="loss against wall time")
    by_epoch.legend()
    fig.suptitle(f"digits, MLP 64-32-10, gd.sgd(learning_rate={LEARNING_RATE})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    """Train the three variants, print the table, save the figure.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    dict
        ``histories`` (variant name -> the dict of :func:`train`) and ``png``
        (path of the figure).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    digits = load_digits()
    X, y = digits.data / 16.0, digits.target
    model = gd.mlp([64, 32, 10], activation="relu", loss="cross_entropy")
    params = gd.init(model, seed=0)
    # Compile (or load from Numba's cache) outside the timed runs.
    gd.fit(model, params, X[:2], y[:2], optimizer=gd.sgd(LEARNING_RATE), epochs=1,
           batch_size=1, progress=False)

    histories = {name: train(model, params, X, y, batch_size, args.epochs)
                 for name, batch_size in VARIANTS.items()}

    print(f"{args.epochs} epochs on {len(X)} samples, gd.sgd(learning_rate={LEARNING_RATE})")
    print(f"{'variant':<12}{'batch_size':>11}{'steps/epoch':>13}{'final loss':>12}"
          f"{'total time (s)':>16}{'us/step':>9}")
    for name, h in histories.items():
        steps = h["steps_per_epoch"] * args.epochs
        print(f"{name:<12}{str(VARIANTS[name]):>11}{h['steps_per_epoch']:>13}"
              f"{h['loss'][-1]:>12.4f}{h['time'][-1]:>16.3f}{1e6 * h['time'][-1] / steps:>9.1f}")

    png = args.out / "gd_variants.png"
    plot(histories, png)
    print(f"saved {png}")
    return {"histories": histories, "png": png}


if __name__ == "__main__":
    main()
