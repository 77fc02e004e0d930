"""Checks of the NumPy reference itself, so that the property tests rest on firm ground.

Hand-computed values for every activation and loss; and, when PyTorch is
installed (the bench extra), gdcore and the reference against torch's own
losses and autograd on the same network.
"""

import math

import numpy as np
import pytest

import gdcore as gd
import reference as ref


@pytest.mark.parametrize("name, z, expected", [
    ("identity", -1.5, -1.5),
    ("relu", -1.5, 0.0), ("relu", 2.0, 2.0),
    ("leaky_relu", -2.0, -0.02), ("leaky_relu", 3.0, 3.0),
    ("elu", -1.0, math.exp(-1.0) - 1.0), ("elu", 2.0, 2.0),
    ("sigmoid", 0.0, 0.5), ("sigmoid", 2.0, 1 / (1 + math.exp(-2.0))),
    ("sigmoid", -800.0, 0.0),
    ("tanh", 0.5, math.tanh(0.5)),
    ("softplus", 0.0, math.log(2.0)), ("softplus", -3.0, math.log1p(math.exp(-3.0))),
    ("softplus", 800.0, 800.0),
    ("gelu", 1.0, 0.8413447460685429), ("gelu", -1.0, -0.15865525393145707),
    ("silu", 1.0, 0.7310585786300049), ("silu", -2.0, -2.0 / (1 + math.exp(2.0))),
])
def test_reference_activations(name, z, expected):
    assert ref.ACTIVATIONS[name](np.array(z)) == pytest.approx(expected, rel=1e-15, abs=1e-300)


def one_layer(k, loss, output="identity"):
    """Identity map on k inputs: the output (or logits) equal X."""
    model = gd.Model([gd.Dense(k, k, output)], loss=loss)
    return model, np.concatenate([np.eye(k).ravel(), np.zeros(k)])


@pytest.mark.parametrize("loss, out, y, expected", [
    ("mse", [[1.0, 2.0]], [[0.0, 0.0]], 2.5),
    ("mae", [[1.0, -2.0]], [[0.0, 0.0]], 1.5),
    ("huber", [[0.5, -2.0]], [[0.0, 0.0]], (0.125 + 1.5) / 2),
    ("binary_cross_entropy", [[0.0, 0.0]], [[1.0, 0.0]], math.log(2.0)),
    ("binary_cross_entropy", [[2.0, -1.0]], [[1.0, 0.25]],
     (math.log1p(math.exp(-2.0)) + 0.25 * math.log1p(math.exp(1.0))
      + 0.75 * math.log1p(math.exp(-1.0))) / 2),
    ("cross_entropy", [[0.0, 0.0]], np.array([1]), math.log(2.0)),
    ("cross_entropy", [[1.0, 3.0]], np.array([0]), math.log(1 + math.exp(2.0))),
    ("cross_entropy", [[1.0, 3.0]], [[0.25, 0.75]],
     0.25 * math.log(1 + math.exp(2.0)) + 0.75 * math.log(1 + math.exp(-2.0))),
])
def test_reference_losses(loss, out, y, expected):
    model, params = one_layer(2, loss)
    X = np.array(out)
    assert ref.loss(model, params, X, y) == pytest.approx(expected, rel=1e-15)
    # gdcore agrees on these hand-computed values too.
    assert gd.loss(model, params, X, y) == pytest.approx(expected, rel=1e-14)


def test_reference_weights_and_l2():
    model, params = one_layer(2, "mse")
    X = np.array([[1.0, 1.0], [3.0, 3.0]])
    y = np.zeros((2, 2))
    assert ref.loss(model, params, X, y) == pytest.approx(5.0)
    assert ref.loss(model, params, X, y, sample_weight=[3.0, 1.0]) == pytest.approx(3.0)
    # 0.5 * l2 * sum(W**2): the identity W has squared norm 2; the zero biases add nothing.
    assert ref.loss(model, params, X, y, l2=0.5) == pytest.approx(5.0 + 0.5)


def test_reference_layout_and_differences():
    model = gd.mlp([2, 3, 1], "tanh")
    rows, n = ref.layout(model)
    assert n == 13 and [r[:2] for r in rows] == [(0, 6), (9, 12)]
    # Differences of a quadratic are exact up to round-off, for every coordinate.
    lin = gd.Model([gd.Dense(2, 1)], loss="mse")
    p = np.array([0.5, -1.0, 0.25])
    X = np.array([[1.0, 2.0], [-1.0, 0.5]])
    y = np.array([0.3, 0.1])
    r = X @ p[:2] + p[2] - y
    exact = np.concatenate([X.T @ r, [r.sum()]])  # d/dp mean(r**2) = 2/n * J^T r, n = 2
    numerical, skipped = ref.numerical_grad(lin, p, X, y)
    assert skipped == 0
    np.testing.assert_allclose(numerical, exact, rtol=1e-10)


# PyTorch parity (optional peer) --------------------------------------------------------
TORCH_ACTIVATIONS = {
    "identity": lambda t, z: z, "relu": lambda t, z: t.relu(z),
    "leaky_relu": lambda t, z: t.nn.functional.leaky_relu(z, 0.01),
    "elu": lambda t, z: t.nn.functional.elu(z), "sigmoid": lambda t, z: t.sigmoid(z),
    "tanh": lambda t, z: t.tanh(z), "softplus": lambda t, z: t.nn.functional.softplus(z),
    "gelu": lambda t, z: t.nn.functional.gelu(z), "silu": lambda t, z: t.nn.functional.silu(z),
}


@pytest.mark.parametrize("loss", ["mse", "mae", "huber", "binary_cross_entropy",
                                  "cross_entropy-labels", "cross_entropy-probs"])
def test_torch_parity(loss):
    torch = pytest.importorskip("torch", reason="PyTorch (bench extra) not installed")
    F = torch.nn.functional
    loss_name = loss.split("-")[0]
    k = 3
    rng = np.random.default_rng(11)
    n = 7
    for act in ref.HIDDEN_ACTIVATIONS:
        model = gd.mlp([4, 5, 6, k], act, loss=loss_name,
                       output="identity" if loss_name in ref.LOGIT_LOSSES else "tanh")
        params = gd.init(model, seed=1) + rng.normal(0, 0.2, model.n_params)
        X = rng.normal(size=(n, 4))
        if loss == "cross_entropy-labels":
            y = rng.integers(0, k, n)
        elif loss_name in ref.LOGIT_LOSSES:
            y = rng.dirichlet(np.ones(k), n) if loss_name == "cross_entropy" \
                else rng.uniform(0, 1, (n, k))
        else:
            y = rng.normal(size=(n, k))
        w = rng.uniform(0.2, 2.0, n)
        l2 = 0.1

        tp = torch.tensor(params, dtype=torch.float64, requires_grad=True)
        h = torch.tensor(X)
        for l, (w0, b0, n_in, n_out, a) in enumerate(ref.layout(model)[0]):
            z = h @ tp[w0:b0].reshape(n_in, n_out) + tp[b0:b0 + n_out]
            last = l == len(model.layers) - 1
            h = z if last and loss_name in ref.LOGIT_LOSSES else TORCH_ACTIVATIONS[a](torch, z)
        ty = torch.tensor(y)
        if loss_name == "cross_entropy":
            li = F.cross_entropy(h, ty, reduction="none")
        else:
            fn = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.huber_loss,
                  "binary_cross_entropy": F.binary_cross_entropy_with_logits}[loss_name]
            assert fn(h, ty).item() == pytest.approx(
                fn(h, ty, reduction="none").mean().item(), rel=1e-14)
            li = fn(h, ty, reduction="none").mean(dim=1)
        tw = torch.tensor(w)
        total = (tw * li).sum() / tw.sum()
        for w0, b0, *_ in ref.layout(model)[0]:
            total = total + 0.5 * l2 * (tp[w0:b0] ** 2).sum()
        total.backward()

        value, grad = gd.value_and_grad(model, params, X, y, l2=l2, sample_weight=w)
        assert value == pytest.approx(total.item(), rel=1e-12), act
        assert ref.loss(model, params, X, y, l2, w) == pytest.approx(total.item(), rel=1e-12)
        np.testing.assert_allclose(grad, tp.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=act)
