"""Logit losses and output links at extreme logits (|z| ~ 1000), float32 and float64.

A single identity layer with X = [[1]], W = z and b = 0 produces exactly the
logits z, so the loss and its gradient (dL/dW = dL/db = dL/dz) have exact
expected values: naive formulas would give inf, NaN or clipped values here.
"""

import numpy as np
import pytest

import gdcore as gd

BIG = 1000.0
X1 = np.array([[1.0]])


def logit_model(k, loss, output):
    return gd.Model([gd.Dense(1, k, output)], loss=loss)


def params_for(logits, dtype):
    logits = np.asarray(logits, dtype=np.float64)
    return np.concatenate([logits, np.zeros_like(logits)]).astype(dtype)  # W = z, b = 0


def expected_grad(dz, dtype):
    dz = np.asarray(dz, dtype=np.float64)
    return np.concatenate([dz, dz]).astype(dtype)  # dL/dW = x * dL/dz with x = 1


@pytest.mark.parametrize("output", ["sigmoid", "identity"])
@pytest.mark.parametrize("z, y, loss, dz", [
    (BIG, 0.0, BIG, 1.0),
    (BIG, 1.0, 0.0, 0.0),
    (-BIG, 0.0, 0.0, 0.0),
    (-BIG, 1.0, BIG, -1.0),
    (BIG, 0.5, BIG / 2, 0.5),
    (-BIG, 0.25, BIG / 4, -0.25),
])
def test_binary_cross_entropy_at_extreme_logits(dtype, output, z, y, loss, dz):
    model = logit_model(1, "binary_cross_entropy", output)
    params = params_for([z], dtype)
    value, grad = gd.value_and_grad(model, params, X1, [y])
    assert value == loss
    assert grad.dtype == dtype
    np.testing.assert_array_equal(grad, expected_grad([dz], dtype))
    assert gd.loss(model, params, X1, [y]) == loss


def test_binary_cross_entropy_batch_of_extreme_logits(dtype):
    """Several outputs and samples: the mean over all n * k elements stays exact."""
    model = gd.Model([gd.Dense(2, 2)], loss="binary_cross_entropy")
    params = np.array([BIG, -BIG, -BIG, BIG, 0.0, 0.0], dtype=dtype)  # W = [[B, -B], [-B, B]]
    X = np.array([[1.0, 0.0], [0.0, 1.0]])  # logits [[B, -B], [-B, B]]
    y = np.array([[0.0, 0.0], [1.0, 1.0]])  # elementwise losses [[B, 0], [B, 0]]
    value, grad = gd.value_and_grad(model, params, X, y)
    assert value == 2 * BIG / 4
    # dL/dz = (sigmoid(z) - y) / 4 = [[1, 0], [-1, 0]] / 4
    dZ = np.array([[0.25, 0.0], [-0.25, 0.0]])
    expected = np.concatenate([(X.T @ dZ).ravel(), dZ.sum(0)]).astype(dtype)
    np.testing.assert_array_equal(grad, expected)


@pytest.mark.parametrize("output", ["softmax", "identity"])
@pytest.mark.parametrize("label, loss, dz", [
    (0, 0.0, [0.0, 0.0, 0.0]),
    (1, 2 * BIG, [1.0, -1.0, 0.0]),
    (2, BIG, [1.0, 0.0, -1.0]),
])
def test_cross_entropy_labels_at_extreme_logits(dtype, output, label, loss, dz):
    model = logit_model(3, "cross_entropy", output)
    params = params_for([BIG, -BIG, 0.0], dtype)
    value, grad = gd.value_and_grad(model, params, X1, np.array([label]))
    assert value == loss
    assert grad.dtype == dtype
    np.testing.assert_array_equal(grad, expected_grad(dz, dtype))


@pytest.mark.parametrize("output", ["softmax", "identity"])
@pytest.mark.parametrize("probs, loss, dz", [
    ([1.0, 0.0, 0.0], 0.0, [0.0, 0.0, 0.0]),
    ([0.0, 0.0, 1.0], BIG, [1.0, 0.0, -1.0]),
    ([0.5, 0.5, 0.0], BIG, [0.5, -0.5, 0.0]),
    ([0.0, 0.75, 0.25], 1.75 * BIG, [1.0, -0.75, -0.25]),
])
def test_cross_entropy_probabilities_at_extreme_logits(dtype, output, probs, loss, dz):
    model = logit_model(3, "cross_entropy", output)
    params = params_for([BIG, -BIG, 0.0], dtype)
    value, grad = gd.value_and_grad(model, params, X1, np.array([probs]))
    assert value == loss
    np.testing.assert_array_equal(grad, expected_grad(dz, dtype))


@pytest.mark.parametrize("target", ["label", "probabilities"])
def test_cross_entropy_tied_extreme_logits_keep_full_precision(dtype, target):
    """Two tied logits at 1000: loss log 2 and gradient +-1/2 to the dtype's precision.

    PyTorch (float32) gives 0.69314718 and exactly [0.5, -0.5] here: the
    log-softmax is formed as (z - max) - log(sum), so the magnitude of the
    logits never enters the rounding.

    Regression: forming lse = m + log(se) first (written so, or produced by
    reassociation) rounds log 2 to a multiple of ulp(1000) = 2**-14; float32
    then gave loss 0.69317627 (rel. error 4e-5) and gradient
    [0.499985, -0.500015], an error that grows linearly with |z|.
    """
    model = logit_model(2, "cross_entropy", "softmax")
    params = params_for([BIG, BIG], dtype)
    y = np.array([1]) if target == "label" else np.array([[0.0, 1.0]])
    value, grad = gd.value_and_grad(model, params, X1, y)
    eps = float(np.finfo(dtype).eps)
    assert value == pytest.approx(np.log(2.0), rel=8 * eps)
    np.testing.assert_allclose(grad, expected_grad([0.5, -0.5], dtype), rtol=8 * eps)
    np.testing.assert_array_equal(gd.predict(model, params, X1), [[0.5, 0.5]])


@pytest.mark.parametrize("z, prob", [(BIG, 1.0), (-BIG, 0.0), (0.0, 0.5)])
def test_predict_sigmoid_is_exact_at_extreme_logits(dtype, z, prob):
    model = logit_model(1, "binary_cross_entropy", "sigmoid")
    out = gd.predict(model, params_for([z], dtype), X1)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, [[prob]])


def test_predict_softmax_is_exact_at_extreme_logits(dtype):
    model = logit_model(3, "cross_entropy", "softmax")
    out = gd.predict(model, params_for([BIG, -BIG, 0.0], dtype), X1)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, [[1.0, 0.0, 0.0]])
    out = gd.predict(model, params_for([-BIG, -BIG, -BIG + 1], dtype), X1)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out.sum(), 1.0, rtol=1e-6)


def test_predict_identity_output_returns_raw_logits(dtype):
    for loss, k in (("binary_cross_entropy", 1), ("cross_entropy", 3)):
        model = logit_model(k, loss, "identity")
        logits = [BIG, -BIG, 0.0][:k]
        np.testing.assert_array_equal(gd.predict(model, params_for(logits, dtype), X1), [logits])


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "softplus", "elu", "gelu", "silu"])
def test_saturating_hidden_activations_stay_finite(dtype, activation):
    """Pre-activations of +-1000 through every smooth activation: finite loss and gradient."""
    model = gd.mlp([1, 2, 1], activation, loss="mse")
    W1, b1 = np.array([[BIG, -BIG]]), np.zeros(2)
    W2, b2 = np.array([[1.0], [1.0]]), np.zeros(1)
    params = model.pack([(W1, b1), (W2, b2)], dtype=dtype)
    value, grad = gd.value_and_grad(model, params, X1, [0.5])
    assert np.isfinite(value) and np.all(np.isfinite(grad))
