"""Bad inputs raise the documented exception, name the argument, and mutate nothing."""

import copy

import numpy as np
import pytest

import gdcore as gd

VALID_ACTIVATIONS = ("identity", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus",
                     "gelu", "silu", "softmax")
VALID_LOSSES = ("mse", "mae", "huber", "binary_cross_entropy", "log_loss", "cross_entropy")

N, N_IN = 4, 3
MODELS = {
    "mse1": gd.mlp([N_IN, 5, 1], "tanh", loss="mse"),
    "mse2": gd.mlp([N_IN, 5, 2], "tanh", loss="mse"),
    "bce": gd.mlp([N_IN, 5, 2], "tanh", loss="binary_cross_entropy"),
    "ce": gd.mlp([N_IN, 5, 3], "tanh", loss="cross_entropy"),
}


def valid_batch(kind):
    model = MODELS[kind]
    rng = np.random.default_rng(0)
    params = gd.init(model, seed=1)
    X = rng.normal(size=(N, N_IN))
    if kind == "ce":
        y = np.array([0, 2, 1, 2])
    elif kind == "bce":
        y = rng.integers(0, 2, (N, 2)).astype(float)
    else:
        y = rng.normal(size=(N, model.n_outputs))
        if model.n_outputs == 1:
            y = y[:, 0]
    return model, params, X, y


def snapshot(values):
    return [copy.deepcopy(v) for v in values]


def assert_unchanged(before, after):
    for b, a in zip(before, after):
        if isinstance(b, np.ndarray):
            assert isinstance(a, np.ndarray) and a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)  # NaN compares equal to NaN here
        else:
            assert type(a) is type(b)
            np.testing.assert_equal(a, b)


def raises_untouched(exc, match, fn, *args, **kwargs):
    before = snapshot(args) + snapshot(kwargs.values())
    with pytest.raises(exc, match=match):
        fn(*args, **kwargs)
    assert_unchanged(before, list(args) + list(kwargs.values()))


def with_value(a, index, value):
    a = np.array(a, dtype=float)
    a[index] = value
    return a


# (name, model kind, which argument is replaced -> builder, exception, message pattern)
DATA_CASES = [
    ("X-nan", "mse1", "X", lambda X, y, p: with_value(X, (1, 2), np.nan), ValueError,
     r"X contains NaN"),
    ("X-inf", "ce", "X", lambda X, y, p: with_value(X, (3, 0), -np.inf), ValueError,
     r"X contains NaN"),
    ("X-1d", "mse1", "X", lambda X, y, p: X[0], ValueError, r"X must be 2-D"),
    ("X-3d", "mse1", "X", lambda X, y, p: X[:, :, None], ValueError, r"X must be 2-D"),
    ("X-features", "mse2", "X", lambda X, y, p: np.hstack([X, X]), ValueError,
     r"X has 6 features but the model expects 3"),
    ("X-strings", "mse1", "X", lambda X, y, p: X.astype(str), TypeError, r"X"),
    ("X-objects", "mse1", "X", lambda X, y, p: [[1.0, None, 2.0]] * N, TypeError, r"X"),
    ("X-ragged", "mse1", "X", lambda X, y, p: [[1.0, 2.0, 3.0], [1.0]] * 2, TypeError, r"X"),
    ("X-complex", "mse1", "X", lambda X, y, p: X + 1j, TypeError, r"X"),
    ("params-nan", "mse1", "params", lambda X, y, p: with_value(p, 0, np.nan), ValueError,
     r"params contains NaN"),
    ("params-inf", "ce", "params", lambda X, y, p: with_value(p, -1, np.inf), ValueError,
     r"params contains NaN"),
    ("params-short", "mse1", "params", lambda X, y, p: p[:-1], ValueError,
     r"params has length"),
    ("params-long", "ce", "params", lambda X, y, p: np.append(p, 0.0), ValueError,
     r"params has length"),
    ("params-2d", "mse1", "params", lambda X, y, p: p[None, :], ValueError, r"params"),
    ("params-complex", "mse1", "params", lambda X, y, p: p.astype(complex), TypeError,
     r"params"),
    ("params-strings", "mse1", "params", lambda X, y, p: p.astype(str), TypeError, r"params"),
    ("params-objects", "mse1", "params", lambda X, y, p: p.astype(object), TypeError,
     r"params"),
    ("params-float16", "mse1", "params", lambda X, y, p: p.astype(np.float16), TypeError,
     r"params"),
]

TARGET_CASES = [
    ("y-nan", "mse1", lambda X, y, p: with_value(y, 2, np.nan), ValueError,
     r"y contains NaN"),
    ("y-inf", "mse2", lambda X, y, p: with_value(y, (0, 1), np.inf), ValueError,
     r"y contains NaN"),
    ("y-probabilities-nan", "ce", lambda X, y, p: with_value(np.full((N, 3), 1 / 3), (1, 1),
                                                             np.nan), ValueError,
     r"y contains NaN"),
    ("y-wide-for-1-output", "mse1", lambda X, y, p: np.zeros((N, 2)), ValueError,
     r"y must have shape"),
    ("y-1d-for-2-outputs", "mse2", lambda X, y, p: np.zeros(N), ValueError,
     r"y must have shape"),
    ("y-wrong-n", "mse2", lambda X, y, p: np.zeros((N + 1, 2)), ValueError,
     r"y must have shape"),
    ("y-transposed", "mse1", lambda X, y, p: np.zeros((1, N)), ValueError,
     r"y must have shape"),
    ("y-scalar", "mse1", lambda X, y, p: 0.5, ValueError, r"y must have shape"),
    ("y-strings", "mse1", lambda X, y, p: np.array(["a"] * N), TypeError, r"y"),
    ("label-too-big", "ce", lambda X, y, p: np.array([0, 1, 3, 2]), ValueError,
     r"y has label 3 .*3 outputs"),
    ("label-far-too-big", "ce", lambda X, y, p: np.array([0, 1, 2, 70]), ValueError,
     r"y has label 70"),
    ("label-negative", "ce", lambda X, y, p: np.array([0, -1, 1, 2]), ValueError,
     r"y has label -1"),
    ("labels-wrong-n", "ce", lambda X, y, p: np.array([0, 1, 2]), ValueError,
     r"y has 3 labels but X has 4 samples"),
    ("labels-as-floats", "ce", lambda X, y, p: np.array([0.0, 1.0, 2.0, 1.0]), TypeError,
     r"y for cross_entropy must be integer labels"),
    ("labels-column", "ce", lambda X, y, p: np.array([[0], [1], [2], [1]]), ValueError,
     r"y for cross_entropy"),
    ("probabilities-wrong-k", "ce", lambda X, y, p: np.full((N, 2), 0.5), ValueError,
     r"y for cross_entropy"),
    ("probabilities-above-1", "ce", lambda X, y, p: with_value(np.full((N, 3), 1 / 3), (2, 0),
                                                               1.5), ValueError,
     r"y has class probabilities outside \[0, 1\]"),
    ("probabilities-negative", "ce", lambda X, y, p: with_value(np.full((N, 3), 0.5), (0, 2),
                                                                -0.5), ValueError,
     r"y has class probabilities outside \[0, 1\]"),
    ("binary-target-2", "bce", lambda X, y, p: with_value(y, (1, 0), 2.0), ValueError,
     r"y has binary targets outside \[0, 1\]"),
    ("binary-target-negative", "bce", lambda X, y, p: with_value(y, (3, 1), -0.01),
     ValueError, r"y has binary targets outside \[0, 1\]"),
    ("binary-target-1d", "bce", lambda X, y, p: np.zeros(N), ValueError, r"y must have shape"),
    # Regression: y=None reached the kernels as a zero-length target array, which
    # they read n_samples rows of (garbage losses; a segfault for large batches).
    ("y-none-mse", "mse1", lambda X, y, p: None, TypeError, r"y must be the targets .*None"),
    ("y-none-2-outputs", "mse2", lambda X, y, p: None, TypeError, r"y must be .*None"),
    ("y-none-bce", "bce", lambda X, y, p: None, TypeError, r"y must be .*None"),
    ("y-none-ce", "ce", lambda X, y, p: None, TypeError, r"y must be .*None"),
    # Regression: rows of class probabilities that do not sum to 1 were accepted.
    ("probabilities-short-of-1", "ce",
     lambda X, y, p: with_value(np.full((N, 3), 1 / 3), (2, slice(None)), [0.9, 0.0, 0.0]),
     ValueError, r"rows must sum to 1, but row 2 sums to 0.9"),
    ("probabilities-all-zero", "ce",
     lambda X, y, p: with_value(np.eye(3)[[0, 1, 2, 0]], (3, slice(None)), 0.0),
     ValueError, r"rows must sum to 1, but row 3 sums to 0"),
    ("probabilities-above-1-in-sum", "ce",
     lambda X, y, p: np.full((N, 3), 0.4), ValueError, r"row 0 sums to 1.2"),
    # Regression: a classification user who forgot loss= was only told the shape.
    ("labels-on-regression-model", "mse2", lambda X, y, p: np.array([0, 1, 1, 0]), ValueError,
     r"y must have shape \(4, 2\).*loss=\"cross_entropy\""),
]


@pytest.mark.parametrize("func", ["value_and_grad", "loss", "check_grad"])
@pytest.mark.parametrize("name, kind, arg, build, exc, match", DATA_CASES,
                         ids=[c[0] for c in DATA_CASES])
def test_bad_X_or_params(func, name, kind, arg, build, exc, match):
    model, params, X, y = valid_batch(kind)
    bad = build(X, y, params)
    args = dict(params=params, X=X, y=y)
    args[arg] = bad
    raises_untouched(exc, match, getattr(gd, func), model, args["params"], args["X"], args["y"])
    # predict validates X and params the same way (it takes no y).
    raises_untouched(exc, match, gd.predict, model, args["params"], args["X"])


@pytest.mark.parametrize("func", ["value_and_grad", "loss", "check_grad"])
@pytest.mark.parametrize("name, kind, build, exc, match", TARGET_CASES,
                         ids=[c[0] for c in TARGET_CASES])
def test_bad_y(func, name, kind, build, exc, match):
    model, params, X, y = valid_batch(kind)
    raises_untouched(exc, match, getattr(gd, func), model, params, X, build(X, y, params))


@pytest.mark.parametrize("func", ["value_and_grad", "loss", "predict"])
@pytest.mark.parametrize("empty", [np.zeros((0, N_IN)), np.zeros((0, 5))],
                         ids=["right-width", "wrong-width"])
def test_empty_batch(func, empty):
    model, params, _, _ = valid_batch("mse1")
    args = (model, params, empty) if func == "predict" else (model, params, empty, np.zeros(0))
    raises_untouched(ValueError, r"X is an empty batch|X has", getattr(gd, func), *args)
    if empty.shape[1] == N_IN:
        raises_untouched(ValueError, r"X is an empty batch", getattr(gd, func), *args)


@pytest.mark.parametrize("func", ["value_and_grad", "loss", "check_grad"])
@pytest.mark.parametrize("weights, match", [
    (np.array([1.0, -1.0, 1.0, 1.0]), r"sample_weight must be finite and >= 0"),
    (np.array([1.0, np.nan, 1.0, 1.0]), r"sample_weight must be finite and >= 0"),
    (np.array([1.0, 1.0, np.inf, 1.0]), r"sample_weight must be finite and >= 0"),
    (np.zeros(N), r"sample_weight must have a positive, finite sum"),
    (np.ones(N - 1), r"sample_weight must have shape \(4,\)"),
    (np.ones((N, 1)), r"sample_weight must have shape \(4,\)"),
], ids=["negative", "nan", "inf", "zero-sum", "short", "column"])
def test_bad_sample_weight(func, weights, match):
    model, params, X, y = valid_batch("mse2")
    raises_untouched(ValueError, match, getattr(gd, func), model, params, X, y,
                     sample_weight=weights)


@pytest.mark.parametrize("func", ["value_and_grad", "loss"])
@pytest.mark.parametrize("l2, exc", [(-0.1, ValueError), (np.nan, ValueError),
                                     (np.inf, ValueError), ("0.1", TypeError),
                                     (None, TypeError)])
def test_bad_l2(func, l2, exc):
    model, params, X, y = valid_batch("ce")
    raises_untouched(exc, r"l2", getattr(gd, func), model, params, X, y, l2=l2)


@pytest.mark.parametrize("func", ["value_and_grad", "loss", "predict", "check_grad", "init"])
def test_model_must_be_a_model(func):
    _, params, X, y = valid_batch("mse1")
    args = {"predict": (params, X), "init": ()}.get(func, (params, X, y))
    with pytest.raises(TypeError, match="model"):
        getattr(gd, func)("not a model", *args)


@pytest.mark.parametrize("step", [0.0, -1e-4, np.nan])
def test_check_grad_bad_step(step):
    model, params, X, y = valid_batch("mse1")
    raises_untouched(ValueError, r"step", gd.check_grad, model, params, X, y, step=step)


# Model construction --------------------------------------------------------------------
def assert_lists_all(message, names):
    for name in names:
        assert name in message, f"{name!r} missing from {message!r}"


def test_unknown_activation_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown activation 'swish'") as info:
        gd.Dense(2, 3, "swish")
    assert_lists_all(str(info.value), VALID_ACTIVATIONS)
    with pytest.raises(ValueError, match=r"activation 'swish'") as info:
        gd.mlp([2, 3, 1], activation="swish")
    assert_lists_all(str(info.value), VALID_ACTIVATIONS)
    with pytest.raises(ValueError, match=r"output activation 'swish'") as info:
        gd.mlp([2, 3, 1], output="swish")
    assert_lists_all(str(info.value), VALID_ACTIVATIONS)
    with pytest.raises(TypeError, match="activation"):
        gd.Dense(2, 3, None)


def test_unknown_loss_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'") as info:
        gd.mlp([2, 3, 1], loss="hinge")
    assert_lists_all(str(info.value), VALID_LOSSES)
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'") as info:
        gd.Model([gd.Dense(2, 1)], loss="hinge")
    assert_lists_all(str(info.value), VALID_LOSSES)
    with pytest.raises(TypeError, match="loss"):
        gd.Model([gd.Dense(2, 1)], loss=None)


@pytest.mark.parametrize("build", [
    lambda: gd.Model([gd.Dense(2, 3, "softmax"), gd.Dense(3, 2, "softmax")], "cross_entropy"),
    lambda: gd.Model([gd.Dense(2, 3, "softmax"), gd.Dense(3, 1)], "mse"),
    lambda: gd.mlp([2, 3, 2], activation="softmax", loss="cross_entropy"),
    lambda: gd.mlp([2, 3, 4, 2], activation="softmax", output="softmax", loss="cross_entropy"),
], ids=["model-ce", "model-mse", "mlp", "mlp-deep"])
def test_softmax_on_a_hidden_layer(build):
    with pytest.raises(ValueError, match="softmax"):
        build()


@pytest.mark.parametrize("loss", ["mse", "mae", "huber", "binary_cross_entropy"])
def test_softmax_output_needs_cross_entropy(loss):
    with pytest.raises(ValueError, match="softmax|output activation"):
        gd.mlp([2, 3, 2], "relu", output="softmax", loss=loss)


@pytest.mark.parametrize("loss, output", [
    ("binary_cross_entropy", "relu"), ("binary_cross_entropy", "tanh"),
    ("log_loss", "softmax"), ("cross_entropy", "sigmoid"), ("cross_entropy", "relu"),
])
def test_logit_loss_output_activation(loss, output):
    with pytest.raises(ValueError, match="output activation"):
        gd.mlp([2, 3, 2], "relu", output=output, loss=loss)


def test_cross_entropy_needs_two_outputs():
    with pytest.raises(ValueError, match="at least 2 outputs"):
        gd.mlp([2, 3, 1], loss="cross_entropy")


@pytest.mark.parametrize("build, exc, match", [
    (lambda: gd.Model([]), ValueError, "layers"),
    (lambda: gd.Model(()), ValueError, "layers"),
    (lambda: gd.Model(gd.Dense(2, 1)), TypeError, "layers"),
    (lambda: gd.Model([gd.Dense(2, 3), "dense"]), TypeError, r"layers\[1\]"),
    (lambda: gd.Model([gd.Dense(2, 3), gd.Dense(4, 1)]), ValueError, r"layers\[1\].n_in"),
    (lambda: gd.mlp([3]), ValueError, "sizes"),
    (lambda: gd.mlp([]), ValueError, "sizes"),
    (lambda: gd.mlp(3), TypeError, "sizes"),
    (lambda: gd.mlp([3, 0, 1]), ValueError, r"sizes\[1\] must be > 0"),
    (lambda: gd.mlp([3, 4, -2]), ValueError, r"sizes\[2\] must be > 0"),
    (lambda: gd.mlp([3, 2.5, 1]), TypeError, r"sizes\[1\]"),
    (lambda: gd.Dense(0, 3), ValueError, "n_in must be > 0"),
    (lambda: gd.Dense(3, -1), ValueError, "n_out must be > 0"),
    (lambda: gd.Dense(3.0, 1), TypeError, "n_in"),
    (lambda: gd.Dense(True, 1), TypeError, "n_in"),
], ids=["empty-list", "empty-tuple", "bare-dense", "not-dense", "width-mismatch",
        "one-size", "no-sizes", "sizes-int", "zero-width", "negative-width", "float-width",
        "dense-zero", "dense-negative", "dense-float", "dense-bool"])
def test_bad_model_specs(build, exc, match):
    with pytest.raises(exc, match=match):
        build()


@pytest.mark.parametrize("dtype", [np.float16, np.int32, complex, "float128x"])
def test_init_rejects_non_float_dtype(dtype):
    with pytest.raises(TypeError, match="dtype"):
        gd.init(MODELS["mse1"], dtype=dtype)


def test_non_numeric_labels_raise_type_error():
    """String class labels are the wrong kind of object: TypeError naming y.

    Regression: such an array once fell through to the shape check and raised
    ValueError "... must be integer labels of shape (4,) ... got shape (4,)",
    the wrong type with a self-contradicting message.
    """
    model, params, X, _ = valid_batch("ce")
    raises_untouched(TypeError, r"y", gd.value_and_grad, model, params, X,
                     np.array(["a", "b", "c", "a"]))


# Review findings: each case once failed silently or with a message that named nothing.
def test_sample_weight_sum_overflowing_float64_is_rejected():
    model, params, X, y = valid_batch("mse1")
    raises_untouched(ValueError, r"sample_weight must have a positive, finite sum",
                     gd.value_and_grad, model, params, X, y, sample_weight=np.full(N, 1e308))


def test_large_float32_sample_weights_give_the_weighted_mean():
    """Weights summing past float32's range: the sum is taken in float64, not lost to inf."""
    model, params, X, y = valid_batch("mse1")
    p32 = params.astype(np.float32)
    plain, g_plain = gd.value_and_grad(model, p32, X, y)
    big, g_big = gd.value_and_grad(model, p32, X, y, sample_weight=np.full(N, 1e38))
    assert big == pytest.approx(plain, rel=1e-6)
    np.testing.assert_allclose(g_big, g_plain, rtol=1e-5, atol=1e-7)


def test_non_native_byte_order_params_are_accepted():
    model, params, X, y = valid_batch("ce")
    swapped = params.astype(params.dtype.newbyteorder())
    before = swapped.copy()
    assert gd.loss(model, swapped, X, y) == gd.loss(model, params, X, y)
    np.testing.assert_array_equal(gd.predict(model, swapped, X), gd.predict(model, params, X))
    np.testing.assert_array_equal(swapped, before)


def test_ragged_cross_entropy_targets_name_y():
    model, params, X, _ = valid_batch("ce")
    ragged = [[0.5, 0.5, 0.0], [1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    raises_untouched(TypeError, r"^y must be array-like", gd.loss, model, params, X, ragged)


def test_huge_unsigned_label_is_quoted_as_given():
    model, params, X, _ = valid_batch("ce")
    y = np.array([0, 2**63, 1, 2], dtype=np.uint64)
    raises_untouched(ValueError, r"y has label 9223372036854775808 \(sample 1\)",
                     gd.value_and_grad, model, params, X, y)


def test_boolean_class_labels_are_rejected():
    model, params, X, _ = valid_batch("ce")
    y = np.array([True, False, True, False])
    raises_untouched(TypeError, r"y for cross_entropy must hold integer class labels",
                     gd.loss, model, params, X, y)


def test_boolean_params_are_rejected():
    model, _, X, y = valid_batch("ce")
    raises_untouched(TypeError, r"params must be a float32 or float64 array",
                     gd.loss, model, np.zeros(model.n_params, dtype=bool), X, y)


@pytest.mark.parametrize("seed", [-1, 1.5, "zero"])
def test_init_bad_seed_names_seed(seed):
    with pytest.raises(TypeError, match=r"^seed must be"):
        gd.init(MODELS["ce"], seed=seed)


def test_pack_non_numeric_names_the_layer():
    model = gd.mlp([2, 1])
    with pytest.raises(TypeError, match=r"arrays\[0\] must hold real numbers"):
        model.pack([(np.array([["a"], ["b"]]), np.zeros(1))])


def test_unaddressable_model_is_rejected():
    with pytest.raises(ValueError, match="parameters, more than can be addressed"):
        gd.Model([gd.Dense(10**10, 10**10)])


def test_unpack_read_only_params_says_so():
    model, params, _, _ = valid_batch("ce")
    params.setflags(write=False)
    with pytest.raises(ValueError, match="writeable False"):
        model.unpack(params)


# Required targets, probability rows, label hints (issue 10) -------------------------------
def test_fit_refuses_y_none():
    """Regression: fit(X, None) trained on targets read past an empty array."""
    model, params, X, y = valid_batch("mse1")
    raises_untouched(TypeError, r"^y must be the targets of the 4 samples, got None",
                     gd.fit, model, params, X, None, epochs=1)
    raises_untouched(TypeError, r"^validation_data: y must be the targets of the 4 samples",
                     gd.fit, model, params, X, y, epochs=1, validation_data=(X, None))


def test_predict_needs_no_targets():
    model, params, X, _ = valid_batch("ce")
    out = gd.predict(model, params, X)
    assert out.shape == (N, 3) and np.allclose(out.sum(axis=1), 1.0)


@pytest.mark.parametrize("y_dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_probabilities_rounded_to_either_dtype_are_accepted(dtype, y_dtype):
    """Rows that sum to 1 up to the rounding of y's or the model's dtype pass."""
    model, _, X, _ = valid_batch("ce")
    params = gd.init(model, seed=1, dtype=dtype)
    rng = np.random.default_rng(3)
    y = rng.dirichlet(np.full(3, 0.3), N).astype(y_dtype)  # sums off by a few ulps
    y[0] = [0.1, 0.2, 0.7]  # 0.1 + 0.2 + 0.7 != 1 in binary floating point
    loss, grad = gd.value_and_grad(model, params, X, y)
    assert np.isfinite(loss) and grad.dtype == dtype
    # Made in float32 (another framework's softmax), stored in float64.
    wide = gd.mlp([N_IN, 50], loss="cross_entropy")
    z = np.random.default_rng(4).normal(size=(N, 50)).astype(np.float32) * 3
    soft = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert gd.loss(wide, gd.init(wide, dtype=dtype), X, soft.astype(np.float64)) > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_probability_rows_are_checked_in_fit_too(dtype):
    model, _, X, _ = valid_batch("ce")
    params = gd.init(model, seed=1, dtype=dtype)
    y = np.full((N, 3), 1 / 3)
    y[1] = [0.5, 0.49, 0.0]
    raises_untouched(ValueError, r"row 1 sums to 0.99", gd.fit, model, params, X, y, epochs=1)
    raises_untouched(ValueError, r"^validation_data: .*row 1 sums to 0.99", gd.fit, model,
                     params, X, np.full((N, 3), 1 / 3), epochs=1, validation_data=(X, y))


def test_label_hint_only_for_integer_targets():
    model, params, X, _ = valid_batch("mse2")
    with pytest.raises(ValueError) as info:
        gd.loss(model, params, X, np.zeros(N))
    assert "cross_entropy" not in str(info.value)
    raises_untouched(ValueError, r"loss='binary_cross_entropy'.*|cross_entropy", gd.loss,
                     MODELS["bce"], gd.init(MODELS["bce"]), X, np.array([0, 1, 1, 0]))


@pytest.mark.parametrize("method", ["lbfgs", "adam"])
@pytest.mark.parametrize("bad, exc, match", [
    (lambda x: (x + 0j), TypeError, r"gradient \(jac\) must hold real numbers"),
    (lambda x: [x[0], [1.0, 2.0]], TypeError, r"gradient \(jac\) must be an array"),
    (lambda x: np.array([None] * x.shape[0]), TypeError, r"gradient \(jac\) must hold real"),
], ids=["complex", "ragged", "objects"])
def test_minimize_refuses_a_gradient_that_is_not_real(method, bad, exc, match):
    """Regression: a complex jac lost its imaginary part with only a ComplexWarning."""
    with pytest.raises(exc, match=match):
        gd.minimize(lambda x: float(x @ x), np.ones(2), method=method, jac=bad,
                    options={"maxiter": 3})


@pytest.mark.parametrize("jac", [np.zeros(2), np.zeros((3, 0))], ids=["array", "empty"])
def test_minimize_refuses_an_array_as_jac(jac):
    """Regression: an array jac hit `jac in FD_METHODS` (NumPy's ambiguous truth value)."""
    with pytest.raises(ValueError, match=r"jac must be True, a callable"):
        gd.minimize(lambda x: float(x @ x), np.ones(2), jac=jac)


def test_minimize_explains_f_g_without_jac_true():
    with pytest.raises(TypeError, match=r"fun must return a real scalar.*jac=True"):
        gd.minimize(lambda x: (float(x @ x), 2 * x), np.ones(2), jac=None)


@pytest.mark.parametrize("x0", [[], np.zeros(0)])
def test_check_grad_refuses_an_empty_x0(x0):
    """Regression: an empty x0 reached np.max of an empty array."""
    with pytest.raises(ValueError, match=r"x0 must be a non-empty 1-D array"):
        gd.check_grad(lambda x: (float(x @ x), 2 * x), x0)


@pytest.mark.parametrize("build, match", [
    (lambda: gd.mlp(np.array(3)), r"sizes must be a sequence"),
    (lambda: gd.Model(np.array(3)), r"layers must be a sequence"),
    (lambda: gd.mlp([3, 2**31, 2**31, 1]), r"sizes \[3, .*\] give \d+ parameters"),
], ids=["mlp-0d", "Model-0d", "mlp-too-large"])
def test_model_specs_name_the_argument(build, match):
    with pytest.raises((TypeError, ValueError), match=match):
        build()
