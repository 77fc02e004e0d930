"""gdcore.sklearn's estimators against scikit-learn's own MLP and its estimator checks.

The strongest reference is scikit-learn's MLP itself: the estimators draw the
initial weights as it does, so with SGD in storage order (``shuffle=False``,
constant learning rate) both take the same steps from the same start, and
their coefficients and loss curves must agree to float64 rounding.  That
pins the objective mapping (loss scale, ``alpha`` per batch weight, the
learning rate) for every kind of target.  Adam (where the two place
``epsilon`` differently) and the other solvers are compared on held-out
scores over seeds.
"""

import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn import neural_network as sk_nn  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_iris, load_wine, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import gdcore as gd  # noqa: E402
from gdcore.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

# The settings scikit-learn's own suite gives its MLPs for the estimator checks
# (sklearn.utils._test_common.instance_generator): max_iter=100, and for the
# sample-weight equivalence check a deterministic solver or a loose tol.
_CHECK_PARAMS = {
    ("MLPClassifier", "check_sample_weight_equivalence_on_dense_data"): dict(solver="lbfgs"),
    ("MLPRegressor", "check_sample_weight_equivalence_on_dense_data"):
        dict(solver="sgd", tol=1e-2, random_state=42),
}


@parametrize_with_checks([MLPClassifier(max_iter=100), MLPRegressor(max_iter=100)])
def test_scikit_learn_estimator_checks(estimator, check):
    name = getattr(check, "func", check).__name__
    params = _CHECK_PARAMS.get((type(estimator).__name__, name))
    if params:
        estimator = clone(estimator).set_params(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# Step for step against scikit-learn's MLP --------------------------------------------

_rng = np.random.default_rng(7)
X = _rng.normal(size=(90, 5))
_Z = X @ _rng.normal(size=(5, 3))
W = _rng.uniform(0.2, 2.0, size=90)
TARGETS = {
    "binary": np.where(_Z[:, 0] > 0, "yes", "no"),
    "multiclass": np.argmax(_Z, axis=1),
    "multilabel": (_Z > 0).astype(int),
    "regression": _Z[:, 0] + 0.1 * np.sin(_Z[:, 1]),
    "multioutput": _Z[:, :2],
}
SGD = dict(solver="sgd", hidden_layer_sizes=(7, 4), activation="tanh", alpha=1e-2,
           batch_size=32, learning_rate_init=0.05, momentum=0.9, shuffle=False,
           max_iter=6, tol=0.0, n_iter_no_change=10_000, random_state=3)


def _pair(kind, **params):
    ours, theirs = ((MLPRegressor, sk_nn.MLPRegressor) if kind in ("regression", "multioutput")
                    else (MLPClassifier, sk_nn.MLPClassifier))
    return ours(**params), theirs(**params)


@pytest.mark.parametrize("kind", list(TARGETS))
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("nesterov", [False, True], ids=["momentum", "nesterov"])
def test_sgd_takes_scikit_learns_steps(kind, weighted, nesterov):
    ours, theirs = _pair(kind, nesterovs_momentum=nesterov, **SGD)
    y, w = TARGETS[kind], (W if weighted else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y, sample_weight=w)
        theirs.fit(X, y, sample_weight=w)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # scikit-learn reports the loss of several outputs divided by n_outputs, and
    # weighs each batch's loss by its size, not its weight (gdcore.sklearn).
    if kind != "multioutput" and not weighted:
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == theirs.t_
    assert ours.out_activation_ == theirs.out_activation_
    assert ours.n_layers_ == theirs.n_layers_ and ours.n_outputs_ == theirs.n_outputs_


@pytest.mark.parametrize("kind", ["binary", "multioutput"])
def test_warm_start_and_partial_fit_continue_as_scikit_learns(kind):
    """A warm start (fresh optimizer, same weights) and partial_fit epochs (one
    optimizer throughout) take scikit-learn's steps, with its attributes."""
    y = TARGETS[kind]
    ours, theirs = _pair(kind, warm_start=True, **dict(SGD, max_iter=3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for est in (ours, theirs):
            est.fit(X, y)
            est.fit(X[:60], y[:60])
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert (ours.n_iter_, ours.t_, len(ours.loss_curve_)) == \
        (theirs.n_iter_, theirs.t_, len(theirs.loss_curve_)) == (3, 450, 6)
    ours, theirs = _pair(kind, **SGD)
    for est in (ours, theirs):
        for start in (0, 30, 60):
            if kind == "binary" and start == 0:
                est.partial_fit(X[:30], y[:30], classes=np.unique(y))
            else:
                est.partial_fit(X[start:start + 30], y[start:start + 30])
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert (ours.n_iter_, ours.t_, len(ours.loss_curve_)) == \
        (theirs.n_iter_, theirs.t_, len(theirs.loss_curve_)) == (1, 90, 3)
    assert [c.shape for c in ours.coefs_] == [c.shape for c in theirs.coefs_]
    assert [b.shape for b in ours.intercepts_] == [b.shape for b in theirs.intercepts_]


def test_invscaling_continues_over_warm_starts_and_partial_fits_as_scikit_learns():
    """The rate follows t_, the samples seen over all calls (momentum 0: with
    momentum, scikit-learn's velocity keeps earlier rates, see gdcore.sklearn)."""
    params = dict(SGD, momentum=0.0, learning_rate="invscaling", power_t=0.4,
                  learning_rate_init=0.3, max_iter=3)
    y = TARGETS["regression"]
    for warm in (True, False):
        ours, theirs = _pair("regression", warm_start=warm, **params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for est in (ours, theirs):
                if warm:
                    est.fit(X, y)
                    est.fit(X[:50], y[:50])
                else:
                    for start in (0, 40, 0):
                        est.partial_fit(X[start:start + 40], y[start:start + 40])
        for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_adaptive_rate_follows_scikit_learns_plateau_rule():
    """learning_rate='adaptive': divide by 5 after n_iter_no_change epochs
    without a tol improvement (any better loss becoming the best), stop when
    a division falls due at a rate <= 1e-6."""
    params = dict(SGD, momentum=0.0, learning_rate="adaptive", learning_rate_init=0.002,
                  tol=0.05, n_iter_no_change=2, max_iter=60)
    ours, theirs = _pair("regression", **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, TARGETS["regression"])
        theirs.fit(X, TARGETS["regression"])
    assert ours.n_iter_ == theirs.n_iter_ < 60
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    for a, b in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_multi_output_regression_reports_scikit_learns_loss_without_l2():
    """scikit-learn reports half the squared error averaged over the outputs
    (its steps follow the sum); with alpha=0 the reported curves are equal."""
    ours, theirs = _pair("multioutput", **dict(SGD, alpha=0.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, TARGETS["multioutput"])
        theirs.fit(X, TARGETS["multioutput"])
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=1e-9)


def test_partial_fit_after_set_params_starts_a_fresh_optimizer():
    clf = MLPClassifier(solver="sgd", **FAST)
    clf.partial_fit(IRIS_X, IRIS_Y, classes=[0, 1, 2])
    clf.set_params(momentum=0.0).partial_fit(IRIS_X, IRIS_Y)  # one slot row fewer
    clf.set_params(solver="adam").partial_fit(IRIS_X, IRIS_Y)
    assert clf.n_iter_ == 1 and clf.t_ == 450


@pytest.mark.parametrize("kind", ["multiclass", "regression"])
def test_invscaling_rate_and_early_stopping_split_are_scikit_learns(kind):
    """Per-epoch invscaling, the validation split drawn from the same RandomState,
    and the validation scores of each epoch."""
    params = dict(SGD, momentum=0.0, learning_rate="invscaling", power_t=0.3,
                  learning_rate_init=0.2, early_stopping=True, validation_fraction=0.25)
    ours, theirs = _pair(kind, **params)
    y = TARGETS[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y)
        theirs.fit(X, y)
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_,
                               rtol=1e-9, atol=1e-12)
    assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_,
                                                        rel=1e-9)
    for a, b in zip(ours.coefs_, theirs.coefs_):  # both restore the best epoch's
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)


def test_adam_follows_scikit_learn_closely():
    """Adam places epsilon differently (see gdcore.sklearn): close, not equal."""
    params = dict(SGD, solver="adam", learning_rate_init=0.01, max_iter=20)
    ours, theirs = _pair("multiclass", **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, TARGETS["multiclass"])
        theirs.fit(X, TARGETS["multiclass"])
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-4)
    for a, b in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("kind", ["binary", "multilabel", "regression"])
def test_lbfgs_minimises_scikit_learns_objective(kind):
    """Without hidden layers the objective is convex (regularised logistic or
    least-squares regression): both L-BFGS runs must reach its one minimum."""
    params = dict(solver="lbfgs", hidden_layer_sizes=(), alpha=0.1, max_iter=500, tol=1e-9,
                  random_state=0)
    ours, theirs = _pair(kind, **params)
    y = TARGETS[kind]
    ours.fit(X, y, sample_weight=W)
    theirs.fit(X, y, sample_weight=W)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-8)
    # The minimum is flat: a relative loss reduction of 2.2e-9 (both runs' ftol)
    # leaves the coefficients accurate to about its square root.
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def _scores(kind, X, y, seeds, **params):
    Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0, stratify=y)
    out = {}
    for name, cls in zip(("gdcore", "sklearn"), _pair(kind)):
        scores = []
        for seed in seeds:
            est = make_pipeline(StandardScaler(), clone(cls).set_params(random_state=seed,
                                                                        **params))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                scores.append(est.fit(Xtr, ytr).score(Xte, yte))
        out[name] = np.array(scores)
    return out


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_held_out_accuracy_matches_scikit_learn_over_seeds(solver):
    X_, y_ = load_wine(return_X_y=True)
    s = _scores("multiclass", X_, y_, range(4), solver=solver, hidden_layer_sizes=(16,),
                max_iter=150)
    spread = max(s["sklearn"].std(), s["gdcore"].std(), 0.02)
    assert s["gdcore"].mean() >= s["sklearn"].mean() - 2 * spread, s


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_held_out_r2_matches_scikit_learn_over_seeds(solver):
    X_, y_ = make_regression(300, 6, noise=10.0, random_state=0)
    y_ = y_ / y_.std()
    Xtr, Xte, ytr, yte = train_test_split(X_, y_, random_state=0)
    scores = {}
    for name, cls in zip(("gdcore", "sklearn"), _pair("regression")):
        scores[name] = np.array([
            cls.set_params(random_state=seed, solver=solver, hidden_layer_sizes=(16,),
                           learning_rate_init=0.01, max_iter=300).fit(Xtr, ytr).score(Xte, yte)
            for seed in range(3)])
    spread = max(scores["sklearn"].std(), scores["gdcore"].std(), 0.01)
    assert scores["gdcore"].mean() >= scores["sklearn"].mean() - 2 * spread, scores


# Labels, inputs, attributes ---------------------------------------------------------

IRIS_X, IRIS_Y = load_iris(return_X_y=True)
IRIS_X = StandardScaler().fit_transform(IRIS_X)
FAST = dict(hidden_layer_sizes=(8,), max_iter=300, random_state=0, learning_rate_init=0.01)


@pytest.mark.parametrize("labels", [
    np.array(["setosa", "versicolor", "virginica"], dtype=object),
    np.array(["b", "a", "c"]),
    np.array([2.0, -1.0, 0.0]),
    np.array([10, 20, 30]),
], ids=["object", "str", "float", "int"])
def test_any_label_type_round_trips(labels):
    y = labels[IRIS_Y]
    ours, theirs = _pair("multiclass", **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(IRIS_X, y)
        theirs.fit(IRIS_X, y)
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    pred = ours.predict(IRIS_X)
    assert pred.dtype == theirs.predict(IRIS_X).dtype
    assert set(pred) <= set(labels)
    assert ours.score(IRIS_X, y) >= theirs.score(IRIS_X, y) - 0.05 > 0.8
    proba = ours.predict_proba(IRIS_X)
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(ours.classes_[np.argmax(proba, axis=1)], pred)
    np.testing.assert_allclose(ours.predict_log_proba(IRIS_X), np.log(proba))


def test_binary_bool_labels_and_probabilities():
    y = IRIS_Y == 0
    clf = MLPClassifier(**FAST).fit(IRIS_X, y)
    np.testing.assert_array_equal(clf.classes_, [False, True])
    assert clf.predict(IRIS_X).dtype == bool
    proba = clf.predict_proba(IRIS_X)
    assert proba.shape == (150, 2) and clf.n_outputs_ == 1
    assert clf.out_activation_ == "logistic"
    p = gd.predict(clf.model_, clf.params_, IRIS_X).ravel()
    np.testing.assert_allclose(proba[:, 1], p)
    np.testing.assert_array_equal(clf.predict(IRIS_X), p > 0.5)


def test_multilabel_indicator_targets():
    y = TARGETS["multilabel"]
    clf = MLPClassifier(**FAST).fit(X, y)
    assert clf.predict(X).shape == y.shape and clf.out_activation_ == "logistic"
    assert clf.predict_proba(X).shape == y.shape
    assert clf.model_.loss == "binary_cross_entropy"


def test_pandas_feature_names_are_kept_and_checked():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(IRIS_X, columns=["sl", "sw", "pl", "pw"])
    clf = MLPClassifier(**FAST).fit(df, pd.Series(IRIS_Y).map({0: "a", 1: "b", 2: "c"}))
    np.testing.assert_array_equal(clf.feature_names_in_, ["sl", "sw", "pl", "pw"])
    assert clf.n_features_in_ == 4
    np.testing.assert_array_equal(clf.predict(df), clf.predict(IRIS_X))
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(df.rename(columns={"sl": "sepal"}))
    reg = MLPRegressor(**FAST).fit(df.iloc[:, :3], df["pw"])
    assert reg.predict(df.iloc[:, :3]).shape == (150,)


def test_float32_trains_in_float32_and_coefs_are_views():
    X32 = IRIS_X.astype(np.float32)
    clf = MLPClassifier(**FAST).fit(X32, IRIS_Y)
    assert clf.params_.dtype == np.float32
    assert all(c.dtype == np.float32 for c in clf.coefs_ + clf.intercepts_)
    assert clf.predict_proba(X32).dtype == np.float32
    assert all(np.shares_memory(c, clf.params_) for c in clf.coefs_ + clf.intercepts_)
    assert [c.shape for c in clf.coefs_] == [(4, 8), (8, 3)]
    assert [b.shape for b in clf.intercepts_] == [(8,), (3,)]
    assert isinstance(clf.model_, gd.Model)
    np.testing.assert_allclose(clf.predict_proba(X32), gd.predict(clf.model_, clf.params_, X32))


def test_pickle_round_trip_predicts_identically():
    clf = MLPClassifier(**FAST).fit(IRIS_X, IRIS_Y.astype(str))
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(IRIS_X), clf.predict_proba(IRIS_X))
    np.testing.assert_array_equal(again.predict(IRIS_X), clf.predict(IRIS_X))
    again.partial_fit(IRIS_X, IRIS_Y.astype(str))  # and it trains on


@pytest.mark.bitwise
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_same_random_state_gives_bitwise_identical_coefs(solver):
    fits = [MLPClassifier(solver=solver, early_stopping=solver != "lbfgs",
                          **FAST).fit(IRIS_X, IRIS_Y) for _ in range(2)]
    for a, b in zip(fits[0].coefs_ + fits[0].intercepts_, fits[1].coefs_ + fits[1].intercepts_):
        np.testing.assert_array_equal(a, b)
    other = MLPClassifier(solver=solver, **dict(FAST, random_state=1)).fit(IRIS_X, IRIS_Y)
    assert not np.array_equal(other.params_, fits[0].params_)


def test_early_stopping_restores_the_best_validation_epoch():
    clf = MLPClassifier(early_stopping=True, validation_fraction=0.2, n_iter_no_change=5,
                        **dict(FAST, learning_rate_init=0.05)).fit(IRIS_X, IRIS_Y)
    scores = clf.validation_scores_
    assert len(scores) == clf.n_iter_ == len(clf.loss_curve_)
    assert clf.best_validation_score_ == max(scores)
    assert clf.best_loss_ is None
    reg = MLPRegressor(early_stopping=True, **FAST).fit(*make_regression(200, 4, random_state=0))
    assert reg.best_validation_score_ == max(reg.validation_scores_)
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(IRIS_X, IRIS_Y, classes=[0, 1, 2])


def test_partial_fit_and_warm_start():
    clf = MLPClassifier(**FAST)
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(IRIS_X, IRIS_Y)
    clf.partial_fit(IRIS_X[IRIS_Y < 2], IRIS_Y[IRIS_Y < 2], classes=[0, 1, 2])
    assert clf.n_outputs_ == 3 and clf.n_iter_ == 1
    for _ in range(30):
        clf.partial_fit(IRIS_X, IRIS_Y)
    assert clf.t_ == 100 + 30 * 150 and len(clf.loss_curve_) == 31
    assert clf.score(IRIS_X, IRIS_Y) > 0.8
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(IRIS_X, IRIS_Y + 1)
    with pytest.raises(AttributeError, match="partial_fit"):
        MLPClassifier(solver="lbfgs").partial_fit(IRIS_X, IRIS_Y, classes=[0, 1, 2])

    warm = MLPClassifier(warm_start=True, **dict(FAST, max_iter=5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warm.fit(IRIS_X, IRIS_Y)
        first = warm.params_.copy()
        warm.fit(IRIS_X, IRIS_Y)
    assert len(warm.loss_curve_) == 10 and warm.n_iter_ == 5
    assert not np.array_equal(first, warm.params_)
    # warm_start continues from the fitted weights: its first loss is that of the
    # weights the first fit ended with, lower than the cold start's first loss.
    assert warm.loss_curve_[5] < warm.loss_curve_[0]
    with pytest.raises(ValueError, match="same classes"):
        warm.fit(IRIS_X[IRIS_Y < 2], IRIS_Y[IRIS_Y < 2])


def test_convergence_warning_and_clear_parameter_errors():
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        MLPClassifier(**dict(FAST, max_iter=2)).fit(IRIS_X, IRIS_Y)
    for params, name in [(dict(alpha=-1.0), "alpha"), (dict(activation="swish"), "activation"),
                         (dict(solver="newton"), "solver"), (dict(batch_size=0), "batch_size"),
                         (dict(hidden_layer_sizes=(4, 0)), "hidden_layer_sizes"),
                         (dict(momentum=1.5), "momentum"), (dict(max_iter=0), "max_iter")]:
        with pytest.raises(ValueError, match=name):
            MLPClassifier(**params).fit(IRIS_X, IRIS_Y)
    with pytest.raises(ValueError, match="poisson"):
        MLPRegressor(loss="poisson").fit(IRIS_X, IRIS_Y)
    # gdcore's own activations by their names
    clf = MLPClassifier(activation="gelu", **FAST).fit(IRIS_X, IRIS_Y)
    assert clf.model_.layers[0].activation == "gelu"


def test_grid_search_over_a_pipeline_in_two_processes():
    """The issue's example: a pipeline, string labels, a DataFrame, n_jobs=2."""
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(IRIS_X, columns=list("abcd"))
    y = np.array(["setosa", "versicolor", "virginica"])[IRIS_Y]
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,),
                                                         random_state=0, max_iter=300,
                                                         learning_rate_init=0.01))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-2]}, n_jobs=2, cv=3)
        search.fit(df, y)
    assert search.best_score_ > 0.85
    assert set(search.predict(df)) <= set(y)


def test_sparse_X_trains_as_dense_X():
    """CSR (and CSC) X: the first layer reads the stored values, results as dense."""
    sparse = pytest.importorskip("scipy.sparse")
    Xs = X * (np.abs(X) > 0.8)
    for kind in ("multiclass", "regression"):
        params = dict(SGD, shuffle=True, early_stopping=True)
        a = _pair(kind, **params)[0]
        b = clone(a)
        y = TARGETS[kind]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            a.fit(sparse.csr_matrix(Xs), y)
            b.fit(Xs, y)
        np.testing.assert_allclose(a.params_, b.params_, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(a.predict(sparse.csc_matrix(Xs)), b.predict(Xs),
                                   rtol=1e-10, atol=1e-12)
    lb = MLPClassifier(solver="lbfgs", **dict(FAST, max_iter=30))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense = clone(lb).fit(IRIS_X, IRIS_Y)
        lb.fit(sparse.csr_matrix(IRIS_X), IRIS_Y)
    np.testing.assert_allclose(lb.params_, dense.params_, rtol=1e-6, atol=1e-8)
