"""gdcore's scikit-learn estimators as a drop-in: change one import, keep the pipeline.

A scikit-learn workflow as users write it: a ``Pipeline`` of ``StandardScaler``
and an MLP, class labels that are strings, and a ``GridSearchCV`` over the
MLP's ``alpha`` and learning rate on scikit-learn's digits data (1797 images
of 8 x 8 pixels).  It runs twice, once with ``sklearn.neural_network``'s
``MLPClassifier`` and once with ``gdcore.sklearn``'s, the only difference
being the import, and prints the chosen settings, the held-out accuracy and
the wall time of each.

Both estimators draw the same initial weights and the same early-stopping
splits from ``random_state``, so their scores agree closely; gdcore trains
with compiled kernels.  The grid search runs its 3 folds x 4 settings in two
processes (``n_jobs=2``).

Run with ``python examples/sklearn_dropin.py [--quick]``.
"""

import argparse
import time
import warnings

import numpy as np
from sklearn import neural_network
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gdcore import sklearn as gdcore_sklearn

NAMES = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                  "nine"])


def search(MLPClassifier, X_train, y_train, max_iter):
    """The user's code: a pipeline and a grid search (only the class differs)."""
    pipe = make_pipeline(StandardScaler(),
                         MLPClassifier(hidden_layer_sizes=(64,), max_iter=max_iter,
                                       random_state=0))
    grid = {"mlpclassifier__alpha": [1e-4, 1e-2],
            "mlpclassifier__learning_rate_init": [1e-3, 1e-2]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GridSearchCV(pipe, grid, cv=3, n_jobs=2).fit(X_train, y_train)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 epochs at most (a smoke run)")
    args = parser.parse_args(argv)
    X, digits = load_digits(return_X_y=True)
    y = NAMES[digits]  # string labels, as scikit-learn users have them
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0,
                                                        stratify=y)
    max_iter = 30 if args.quick else 200
    results = {}
    for name, module in (("scikit-learn", neural_network), ("gdcore", gdcore_sklearn)):
        t0 = time.perf_counter()
        found = search(module.MLPClassifier, X_train, y_train, max_iter)
        seconds = time.perf_counter() - t0
        accuracy = found.score(X_test, y_test)
        results[name] = {"seconds": seconds, "accuracy": accuracy,
                         "best_params": found.best_params_,
                         "predictions": found.predict(X_test[:5])}
        print(f"{name:>12}: {seconds:6.2f} s, best {found.best_params_}, "
              f"test accuracy {accuracy:.4f}")
    ratio = results["scikit-learn"]["seconds"] / results["gdcore"]["seconds"]
    print(f"gdcore's grid search took {1 / ratio:.2f}x scikit-learn's time ({ratio:.1f}x "
          f"faster), first call included")
    return results


if __name__ == "__main__":
    main()
