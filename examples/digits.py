"""gdcore's demo: an MLP that reads handwritten digits (``make demo``).

A 64-128-10 network (ReLU hidden layer, softmax output, cross-entropy loss)
is trained on scikit-learn's digits data: 1797 images of 8 x 8 pixels with
values 0-16, scaled to [0, 1].  A stratified split holds out 25% of the images
(450) as the test set.  Training runs 30 epochs of Adam
(``learning_rate=1e-3``) on mini-batches of 32, one compiled call per epoch.

The test split is also passed as ``validation_data``, so the history holds
the test loss of every epoch for the loss curves.  It is only watched: no
early stopping or other choice depends on it, so the final test accuracy is
still an honest estimate.

The script prints the time of the first call (loading the kernels built
ahead of time by ``make``, or, without them, Numba compiling the kernels or
loading them from its on-disk cache) separately from the training time,
then the test accuracy, and saves the loss curves as a PNG.  A progress bar
is shown when stderr is a terminal (``progress=None``).

Run with ``make demo`` or ``python examples/digits.py [--out DIR] [--epochs N]``.
"""

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the script only writes files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import gdcore as gd  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "output"


def load_data(test_size=0.25, random_state=0):
    """The digits, scaled to [0, 1] and split with the classes' proportions kept.

    Parameters
    ----------
    test_size : float
    random_state : int
        Seed of the split.

    Returns
    -------
    X_train : ndarray of shape (n_train, 64)
    X_test : ndarray of shape (n_test, 64)
    y_train : ndarray of shape (n_train,)
    y_test : ndarray of shape (n_test,)
        Labels 0-9.
    """
    digits = load_digits()
    return train_test_split(digits.data / 16.0, digits.target, test_size=test_size,
                            stratify=digits.target, random_state=random_state)


def plot_losses(history, path):
    """Training and test loss against epoch."""
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, ax = plt.subplots(figsize=(6, 4))
    # fit's training loss is the mean of the batch losses during the epoch.
    ax.plot(epochs, history["loss"], marker=".", label="train (mean over the epoch's batches)")
    ax.plot(epochs, history["val_loss"], marker=".", label="test (after the epoch)")
    ax.set_yscale("log")
    ax.set(xlabel="epoch", ylabel="cross-entropy loss",
           title="digits, MLP 64-128-10, adam(1e-3), batch 32")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    """Train the network, report times and accuracy, save the loss curves.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    dict
        ``accuracy`` (test), ``first_call_time`` and ``fit_time`` (seconds),
        ``history`` (of :func:`gdcore.fit`) and ``png`` (path of the figure).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0, help="initialisation and shuffling")
    parser.add_argument("--split-seed", type=int, default=0, help="train/test split")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    X_train, X_test, y_train, y_test = load_data(random_state=args.split_seed)
    model = gd.mlp([64, 128, 10], activation="relu", loss="cross_entropy")
    print(model)
    print(f"train {len(y_train)} images, test {len(y_test)} images")
    params = gd.init(model, seed=args.seed)
    optimizer = gd.adam(learning_rate=1e-3)

    # The first call compiles the kernels (or loads them from Numba's cache):
    # one epoch on a few samples, with validation, touches every kernel fit uses.
    t0 = time.perf_counter()
    gd.fit(model, params, X_train[:64], y_train[:64], optimizer=optimizer, epochs=1,
           validation_data=(X_test[:64], y_test[:64]), progress=False)
    first_call_time = time.perf_counter() - t0
    print(f"first call (kernels built ahead of time, or Numba's compile or cache): "
          f"{first_call_time:.2f} s")

    t0 = time.perf_counter()
    result = gd.fit(model, params, X_train, y_train, optimizer=optimizer, epochs=args.epochs,
                    batch_size=32, seed=args.seed, validation_data=(X_test, y_test),
                    progress=None)
    fit_time = time.perf_counter() - t0
    history = result.history
    print(f"training: {result.message} in {fit_time:.2f} s "
          f"({fit_time / result.n_epochs * 1e3:.1f} ms per epoch)")
    print(f"final train loss {history['loss'][-1]:.4f}, test loss {history['val_loss'][-1]:.4f}")

    predicted = gd.predict(model, result.params, X_test).argmax(axis=1)
    accuracy = float(np.mean(predicted == y_test))
    print(f"test accuracy: {accuracy:.4f} ({int(np.sum(predicted == y_test))} of {len(y_test)})")

    png = args.out / "digits_loss.png"
    plot_losses(history, png)
    print(f"saved {png}")
    return {"accuracy": accuracy, "first_call_time": first_call_time, "fit_time": fit_time,
            "history": history, "png": png}


if __name__ == "__main__":
    main()
