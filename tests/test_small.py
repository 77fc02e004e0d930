"""The fused small-network gradient (``gdcore.kernels.small``) against the general path.

Both kernels are called directly on the same random problems: every hidden
activation and every loss, float32 and float64, with and without sample
weights and L2, batches that span several of the fused kernel's row blocks.
They must agree to rounding (never bitwise: they sum in different orders),
and the loss must match the plain-NumPy reference of ``tests/reference.py``
(whose finite-difference gradients ``tests/test_properties.py`` checks on
small networks, which now take the fused path).  Then: the dispatch in
``network.value_and_grad`` follows ``small.is_small``, and degenerate
batches and NaN inputs behave as on the general path.
"""

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

import gdcore as gd
import reference as ref
from gdcore import codes
from gdcore.functional import prepare_batch
from gdcore.kernels import network, small

ACTS = codes.ANY_ACTS  # the codes are read at run time, as in the suite's generic kernels
WIDEST = 40  # widths drawn up to this: the kernel takes any shape, the rule picks some


def output_activations(loss):
    if loss == "cross_entropy":
        return ["softmax", "identity"]
    if loss == "binary_cross_entropy":
        return ["sigmoid", "identity"]
    return list(ref.HIDDEN_ACTIVATIONS)


@st.composite
def problems(draw, activation, loss):
    """(model, params float64, X, y, l2, sample_weight) of a small random network."""
    n_hidden = draw(st.integers(1, 3), label="n_hidden")
    n_in = draw(st.integers(1, WIDEST), label="n_in")
    hidden = [draw(st.integers(1, WIDEST), label="width") for _ in range(n_hidden)]
    n_out = draw(st.integers(2 if loss == "cross_entropy" else 1, 12), label="n_out")
    output = draw(st.sampled_from(output_activations(loss)), label="output")
    sizes = [n_in, *hidden, n_out]
    layers = [gd.Dense(sizes[i], sizes[i + 1], activation) for i in range(n_hidden)]
    layers.append(gd.Dense(sizes[-2], n_out, output))
    model = gd.Model(layers, loss=loss)
    n = draw(st.sampled_from([1, 2, 5, small.ROWS - 1, small.ROWS, small.ROWS + 3,
                              2 * small.ROWS + 7]), label="n_samples")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    l2 = draw(st.sampled_from([0.0, 0.3]), label="l2")
    weighted = draw(st.booleans(), label="sample_weight")
    rng = np.random.default_rng(seed)
    params = gd.init(model, seed=rng) + rng.normal(0.0, 0.1, model.n_params)
    X = rng.normal(0.0, 1.0, (n, n_in))
    if loss == "cross_entropy":
        y = rng.integers(0, n_out, n) if draw(st.booleans(), label="labels") else \
            rng.dirichlet(np.ones(n_out), size=n)
    elif loss == "binary_cross_entropy":
        y = rng.uniform(0.0, 1.0, (n, n_out))
    else:
        y = rng.normal(0.0, 1.0, (n, n_out))
    weights = rng.uniform(0.05, 2.0, n) if weighted else None
    note(f"{model} n={n} l2={l2} weighted={weighted}")
    return model, params, X, y, l2, weights


def both_paths(model, params, X, y, l2, weights, dtype):
    """(loss, grad) of the fused kernel and of the general path, in ``dtype``."""
    p, Xc, Y, labels, w = prepare_batch(model, params.astype(dtype), X, y, weights)
    out = []
    for kernel in (small.dense_value_and_grad, network.general_value_and_grad):
        work = np.full(max(Xc.shape[0], 1) * model.workspace_units, np.nan, dtype)
        grad = np.full(model.n_params, np.nan, dtype)
        loss = kernel(p, model.offsets, (Xc, Y, labels, w), model.loss_code, l2, work, grad, ACTS)
        out.append((loss, grad))
    return out


def check(model, params, X, y, l2, weights):
    (f64, g64), (general64, gg64) = both_paths(model, params, X, y, l2, weights, np.float64)
    scale = max(np.abs(gg64).max(), 1e-3)
    assert f64 == pytest.approx(general64, rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(g64, gg64, rtol=1e-9, atol=1e-11 * scale)
    expected = ref.loss(model, params, X, y, l2=l2, sample_weight=weights)
    assert f64 == pytest.approx(expected, rel=1e-10, abs=1e-12)

    (f32, g32), (general32, gg32) = both_paths(model, params, X, y, l2, weights, np.float32)
    assert g32.dtype == np.float32
    assert f32 == pytest.approx(general32, rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(g32, gg32, rtol=1e-3, atol=1e-5 * scale)
    # The float32 gradient as a whole is as close to float64's as the general path's.
    err32 = ref.norm_rel_error(g32.astype(np.float64), g64, 1e-2)
    err_general = ref.norm_rel_error(gg32.astype(np.float64), gg64, 1e-2)
    assert err32 <= max(1e-5, 4 * err_general), (err32, err_general)


@pytest.mark.parametrize("loss", ref.LOSSES)
@pytest.mark.parametrize("activation", ref.HIDDEN_ACTIVATIONS)
@settings(max_examples=4)
@given(data=st.data())
def test_fused_matches_general_path_and_reference(activation, loss, data):
    check(*data.draw(problems(activation, loss)))


@settings(max_examples=6)
@given(data=st.data())
def test_fused_gradient_matches_finite_differences(data):
    loss = data.draw(st.sampled_from(ref.LOSSES), label="loss")
    activation = data.draw(st.sampled_from(["tanh", "gelu", "softplus"]), label="activation")
    model, params, X, y, l2, weights = data.draw(problems(activation, loss))
    X, y = X[:6], y[:6]  # a short batch: finite differences cost a loss per parameter
    weights = None if weights is None else weights[:6]
    (value, grad), _ = both_paths(model, params, X, y, l2, weights, np.float64)
    numerical, _ = ref.numerical_grad(model, params, X, y, l2=l2, sample_weight=weights)
    keep = ~np.isnan(numerical)
    assert ref.norm_rel_error(grad[keep], numerical[keep], 1e-3) <= 1e-6


def rule(offsets, n):
    """The rule small.py's docstring states, written out again."""
    n_in, n_out = offsets[:, codes.COL_N_IN], offsets[:, codes.COL_N_OUT]
    whole = (n_out == 1) | (n_out % small.WHOLE_VECTORS == 0)
    backprop = (n_out[1:] == 1) | (n * n_in[1:] * n_out[1:] <= small.MAX_BACKPROP)
    return bool(1 <= n <= small.MAX_ROWS and whole.all()
                and (n_in * n_out).max() <= small.MAX_LAYER and backprop.all())


@pytest.mark.parametrize("sizes", [(10, 32, 1), (10, 64, 64, 1), (784, 32, 10), (3, 200, 2),
                                   (10, 16, 16, 1), (5, 8, 3), (10, 32, 32), (1, 1)])
@pytest.mark.parametrize("n", [0, 1, 31, small.MAX_ROWS, small.MAX_ROWS + 1])
def test_value_and_grad_takes_the_fused_path_exactly_by_the_rule(sizes, n):
    model = gd.mlp(sizes, activation="relu", output="identity", loss="mse")
    assert small.is_small(model.offsets, n) == rule(model.offsets, n)
    if n <= small.ROWS:
        return
    # The fused kernel works in blocks of ROWS samples, so with more
    # samples it leaves the end of the workspace untouched, which the
    # general path fills with the whole batch's activations.
    p = gd.init(model, 0, np.float64)
    X = np.random.default_rng(0).normal(size=(n, sizes[0]))
    p, X, Y, labels, w = prepare_batch(model, p, X, np.zeros((n, sizes[-1])))
    work = np.full(n * model.workspace_units, np.nan)
    grad = np.empty(model.n_params)
    network.value_and_grad(p, model.offsets, (X, Y, labels, w), model.loss_code, 0.0, work,
                           grad, ACTS)
    untouched = np.isnan(work[small.ROWS * model.workspace_units:]).all()
    assert untouched == rule(model.offsets, n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_sample_and_no_samples(dtype):
    model = gd.mlp((4, 6, 3), activation="tanh", loss="cross_entropy")
    p = gd.init(model, 0, dtype)
    X = np.random.default_rng(1).normal(size=(1, 4))
    (fused, g), (general, gg) = both_paths(model, p.astype(np.float64), X, np.array([2]), 0.1,
                                           None, dtype)
    assert fused == pytest.approx(general, rel=1e-5)
    np.testing.assert_allclose(g, gg, rtol=1e-4, atol=1e-6)
    # No samples: not a fused batch; value_and_grad computes what the general path does.
    assert not small.is_small(model.offsets, 0)
    X0 = np.zeros((0, 4), dtype)
    Y0 = np.zeros((0, 3), dtype)
    labels0 = np.zeros(0, np.int64)
    out = []
    for kernel in (network.value_and_grad, network.general_value_and_grad):
        grad = np.empty(model.n_params, dtype)
        loss = kernel(p, model.offsets, (X0, Y0, labels0, np.zeros(0, dtype)), model.loss_code,
                      0.0, np.zeros(0, dtype), grad, ACTS)
        out.append((loss, grad))
    np.testing.assert_array_equal(np.isnan(out[0][0]), np.isnan(out[1][0]))
    np.testing.assert_allclose(out[0][1], out[1][1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("where", ["X", "params"])
def test_nan_propagates_to_the_loss(dtype, where):
    model = gd.mlp((5, 16, 1), activation="relu", loss="mse")
    p = gd.init(model, 0, dtype)
    n = small.ROWS + 2
    X = np.random.default_rng(2).normal(size=(n, 5))
    p, X, Y, labels, w = prepare_batch(model, p, X, np.zeros(n))
    if where == "X":
        X[n - 1, 3] = np.nan  # in the last block
    else:
        p[model.offsets[0, codes.COL_W_START]] = np.nan
    grad = np.empty(model.n_params, dtype)
    work = np.empty(n * model.workspace_units, dtype)
    loss = small.dense_value_and_grad(p, model.offsets, (X, Y, labels, w), model.loss_code,
                                      0.0, work, grad, ACTS)
    assert np.isnan(loss)
