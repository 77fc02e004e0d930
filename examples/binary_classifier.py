"""A binary classifier: two ReLU hidden layers, a sigmoid output, binary cross-entropy.

The textbook network 30-16-8-1 (``gd.mlp([30, 16, 8, 1], activation="relu",
loss="binary_cross_entropy")``) is trained with Adam and a little L2 weight
decay on scikit-learn's breast-cancer data (569 tumours, 30 features;
target 0 = malignant, 1 = benign).  The features are standardised with the training set's mean and
standard deviation only, so nothing about the test set leaks into training;
the 80/20 split is stratified, so both sets keep the classes' proportions.

The script prints the test accuracy and confusion matrix, then saves the model
with ``gd.save``, loads it back with ``gd.load`` and checks that the loaded
model predicts exactly the same probabilities.

Run with ``python examples/binary_classifier.py [--out DIR] [--epochs N]``.
"""

import argparse
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import train_test_split

import gdcore as gd

DEFAULT_OUT = Path(__file__).resolve().parent / "output"
CLASS_NAMES = ("malignant", "benign")  # target 0, target 1
# A little weight decay: 455 training samples for 641 parameters overfit
# (the training loss keeps falling long after the test loss stops).
L2 = 1e-2


def load_data(test_size=0.2, random_state=0):
    """The breast-cancer data, split (stratified) and standardised.

    Parameters
    ----------
    test_size : float
        Fraction of the samples held out for testing.
    random_state : int
        Seed of the split.

    Returns
    -------
    X_train : ndarray of shape (n_train, 30)
    X_test : ndarray of shape (n_test, 30)
        Standardised with the training set's mean and standard deviation.
    y_train : ndarray of shape (n_train,)
    y_test : ndarray of shape (n_test,)
        0 (malignant) or 1 (benign).
    """
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, stratify=y, random_state=random_state)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    return (X_train - mean) / std, (X_test - mean) / std, y_train, y_test


def predict_labels(model, params, X):
    """Class labels (0 or 1): the sigmoid output thresholded at 0.5.

    Returns
    -------
    ndarray of shape (n_samples,), int
    """
    return (gd.predict(model, params, X)[:, 0] >= 0.5).astype(int)


def main(argv=None):
    """Train, evaluate, save and reload the classifier.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    dict
        ``accuracy`` (test), ``confusion`` (2 x 2, rows true class, columns
        predicted), ``history`` (of :func:`gdcore.fit`), ``model_path`` and
        ``identical_after_load`` (bool).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="initialisation and shuffling")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    X_train, X_test, y_train, y_test = load_data()
    model = gd.mlp([30, 16, 8, 1], activation="relu", loss="binary_cross_entropy")
    print(model)
    print(f"train {len(y_train)} samples, test {len(y_test)} samples")

    params = gd.init(model, seed=args.seed)
    result = gd.fit(model, params, X_train, y_train, optimizer=gd.adam(learning_rate=1e-3),
                    epochs=args.epochs, batch_size=32, seed=args.seed, l2=L2,
                    validation_data=(X_test, y_test), progress=False)
    history = result.history
    print(f"{result.message}: train loss {history['loss'][-1]:.4f} (with the l2 term), "
          f"test loss {history['val_loss'][-1]:.4f}")

    predicted = predict_labels(model, result.params, X_test)
    accuracy = float(np.mean(predicted == y_test))
    confusion = confusion_matrix(y_test, predicted, labels=[0, 1])
    print(f"test accuracy: {accuracy:.4f}")
    print("confusion matrix (rows: true class, columns: predicted class):")
    width = max(map(len, CLASS_NAMES))
    print(" " * (width + 2) + "".join(f"{name:>{width + 2}}" for name in CLASS_NAMES))
    for name, row in zip(CLASS_NAMES, confusion):
        print(f"{name:>{width + 2}}" + "".join(f"{count:>{width + 2}}" for count in row))

    path = args.out / "breast_cancer_model.npz"
    gd.save(path, model, result.params)
    loaded_model, loaded_params = gd.load(path)
    identical = bool(loaded_model == model and np.array_equal(
        gd.predict(loaded_model, loaded_params, X_test), gd.predict(model, result.params, X_test)))
    print(f"saved {path}; reloaded model predicts identical probabilities: {identical}")
    return {"accuracy": accuracy, "confusion": confusion, "history": history,
            "model_path": path, "identical_after_load": identical}


if __name__ == "__main__":
    main()
