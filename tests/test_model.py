"""The model API: specs, init, predict, input forms."""

import dataclasses

import numpy as np
import pytest

import gdcore as gd
import reference as ref

HE = ("relu", "leaky_relu", "elu", "gelu", "silu")
GLOROT = ("identity", "sigmoid", "tanh", "softplus")


# Specs: immutable, hashable, comparable, printable -------------------------------------
def test_models_and_layers_are_frozen():
    model = gd.mlp([2, 3, 1], "tanh")
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.loss = "mae"
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.layers = ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.offsets = None
    with pytest.raises(dataclasses.FrozenInstanceError):
        del model.loss
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.layers[0].n_out = 5
    with pytest.raises(TypeError):
        model.layers[0] = gd.Dense(2, 3)  # layers are stored as a tuple
    assert isinstance(model.layers, tuple)


def test_equality_and_hash():
    a = gd.mlp([4, 8, 3], "relu", loss="cross_entropy")
    b = gd.Model([gd.Dense(4, 8, "relu"), gd.Dense(8, 3, "softmax")], loss="cross_entropy")
    c = gd.Model((gd.Dense(4, 8, "ReLU"), gd.Dense(8, 3, "SOFTMAX")), loss="Cross_Entropy")
    assert a == b == c
    assert hash(a) == hash(b) == hash(c)
    assert len({a, b, c}) == 1
    cache = {a: "compiled"}
    assert cache[c] == "compiled"

    assert a != gd.mlp([4, 8, 3], "tanh", loss="cross_entropy")
    assert a != gd.mlp([4, 8, 3], "relu", output="identity", loss="cross_entropy")
    assert a != gd.mlp([4, 9, 3], "relu", loss="cross_entropy")
    assert gd.mlp([2, 1], loss="log_loss") == gd.mlp([2, 1], loss="binary_cross_entropy")
    assert gd.mlp([2, 1], loss="log_loss").loss == "binary_cross_entropy"
    assert gd.Dense(np.int64(3), np.int32(2)) == gd.Dense(3, 2)
    assert hash(gd.Dense(3, 2, "Tanh")) == hash(gd.Dense(3, 2, "tanh"))


def test_offsets_do_not_affect_equality():
    a, b = gd.mlp([3, 4, 1]), gd.mlp([3, 4, 1])
    _ = a.offsets  # cached on a only
    assert a == b and hash(a) == hash(b)


def test_str_summary():
    model = gd.mlp([784, 1000, 10], "relu", loss="cross_entropy")
    text = str(model)
    assert "cross_entropy" in text
    assert "relu" in text and "softmax" in text
    assert "785,000" in text  # (784 + 1) * 1000
    assert "10,010" in text  # (1000 + 1) * 10
    assert f"{model.n_params:,}" in text and model.n_params == 795_010
    assert "784" in text and "1000" in text
    assert len(text.splitlines()) >= 4


def test_layer_and_model_sizes():
    model = gd.mlp([5, 7, 3, 2], "tanh")
    assert [l.n_params for l in model.layers] == [42, 24, 8]
    assert model.n_params == 74
    assert (model.n_inputs, model.n_outputs) == (5, 2)


# mlp defaults -------------------------------------------------------------------------
@pytest.mark.parametrize("loss, output", [
    ("mse", "identity"), ("mae", "identity"), ("huber", "identity"),
    ("binary_cross_entropy", "sigmoid"), ("log_loss", "sigmoid"),
    ("cross_entropy", "softmax"),
])
def test_mlp_default_output(loss, output):
    k = 3 if loss == "cross_entropy" else 1
    model = gd.mlp([4, 6, 5, k], loss=loss)
    assert model.layers[-1].activation == output
    assert [l.activation for l in model.layers[:-1]] == ["relu", "relu"]  # default hidden


def test_mlp_defaults_and_explicit_output():
    model = gd.mlp([3, 2])
    assert model.loss == "mse" and len(model.layers) == 1
    assert model.layers[0].activation == "identity"
    assert gd.mlp([3, 4, 1], "elu", output="sigmoid").layers[-1].activation == "sigmoid"
    assert gd.mlp([3, 4, 2], loss="cross_entropy", output="identity").layers[-1].activation \
        == "identity"
    assert gd.mlp([3, 4, 1], loss="binary_cross_entropy", output="identity").layers[-1] \
        .activation == "identity"
    assert gd.mlp((3, 4, 1)) == gd.mlp(np.array([3, 4, 1]))


# init --------------------------------------------------------------------------------
def big_model():
    layers = []
    n = 240
    for act in HE + GLOROT:
        layers.append(gd.Dense(n, 160, act))
        n = 160
    layers.append(gd.Dense(160, 120, "softmax"))
    return gd.Model(layers, loss="cross_entropy")


def test_init_scales():
    model = big_model()
    params = gd.init(model, seed=3)
    assert params.shape == (model.n_params,) and params.dtype == np.float64
    assert params.flags.c_contiguous
    for (W, b), layer in zip(model.unpack(params), model.layers):
        assert np.all(b == 0), "biases start at zero"
        if layer.activation in HE:  # normal(0, sqrt(2 / n_in))
            std = np.sqrt(2.0 / layer.n_in)
            assert abs(W.mean()) < 0.02 * std
            assert W.std() == pytest.approx(std, rel=0.03)
            assert np.mean(np.abs(W) < std) == pytest.approx(0.6827, abs=0.015)
            assert np.abs(W).max() > 3.5 * std  # tails: not a bounded uniform
        else:  # uniform(-a, a), a = sqrt(6 / (n_in + n_out))
            a = np.sqrt(6.0 / (layer.n_in + layer.n_out))
            assert np.abs(W).max() <= a
            assert W.min() < -0.99 * a and W.max() > 0.99 * a
            assert abs(W.mean()) < 0.02 * a
            assert W.std() == pytest.approx(a / np.sqrt(3.0), rel=0.03)
            assert np.mean(np.abs(W) > 0.9 * a) == pytest.approx(0.1, abs=0.015)


def test_init_is_reproducible_and_dtype_consistent():
    model = gd.mlp([6, 10, 10, 3], "gelu", loss="cross_entropy")
    a = gd.init(model, seed=7)
    b = gd.init(model, seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, gd.init(model, seed=8))
    np.testing.assert_array_equal(a, gd.init(model, seed=np.random.default_rng(7)))
    a32 = gd.init(model, seed=7, dtype=np.float32)
    assert a32.dtype == np.float32
    np.testing.assert_array_equal(a32, a.astype(np.float32))
    np.testing.assert_array_equal(gd.init(model, seed=7, dtype="float32"), a32)
    # The default seed is fixed, not fresh entropy.
    np.testing.assert_array_equal(gd.init(model), gd.init(model, seed=0))


# predict -----------------------------------------------------------------------------
@pytest.mark.parametrize("output", list(ref.HIDDEN_ACTIVATIONS) + ["softmax"])
def test_predict_matches_reference(dtype, output):
    loss = "cross_entropy" if output == "softmax" else "mse"
    model = gd.mlp([4, 7, 5, 3], "silu", output=output, loss=loss)
    rng = np.random.default_rng(5)
    params = ref.f32_exact(gd.init(model, seed=2) + rng.normal(0, 0.3, model.n_params))
    X = ref.f32_exact(rng.normal(size=(9, 4)))
    out = gd.predict(model, params.astype(dtype), X)
    assert out.shape == (9, 3) and out.dtype == dtype and out.flags.c_contiguous
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out, ref.predict(model, params, X), **tol)
    if output == "softmax":
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6 if dtype == np.float32
                                   else 1e-14)
        assert np.all(out >= 0)
    if output == "sigmoid":
        assert np.all((out > 0) & (out < 1))


def test_predict_of_a_binary_model_is_sigmoid_of_the_logits(dtype):
    model = gd.mlp([3, 4, 2], "tanh", loss="binary_cross_entropy")
    logit_model = gd.mlp([3, 4, 2], "tanh", output="identity", loss="binary_cross_entropy")
    params = gd.init(model, seed=4, dtype=dtype)
    X = np.random.default_rng(0).normal(size=(6, 3))
    probs = gd.predict(model, params, X)
    logits = gd.predict(logit_model, params, X).astype(np.float64)
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-logits)),
                               rtol=1e-6 if dtype == np.float32 else 1e-14)
    # The output activation does not change the logit losses.
    y = np.random.default_rng(1).integers(0, 2, (6, 2))
    v1, g1 = gd.value_and_grad(model, params, X, y)
    v2, g2 = gd.value_and_grad(logit_model, params, X, y)
    assert v1 == v2
    np.testing.assert_array_equal(g1, g2)


def test_predict_returns_fresh_arrays():
    model = gd.mlp([2, 3, 2], "relu")
    params = gd.init(model)
    X = np.ones((4, 2))
    a = gd.predict(model, params, X)
    b = gd.predict(model, params, X)
    assert not np.shares_memory(a, b)
    a[...] = 0
    assert np.any(gd.predict(model, params, X) != 0)


# Input forms -------------------------------------------------------------------------
@pytest.fixture
def batch():
    model = gd.mlp([3, 5, 2], "tanh", loss="mse")
    rng = np.random.default_rng(9)
    params = gd.init(model, seed=1) + rng.normal(0, 0.1, model.n_params)
    X = rng.normal(size=(6, 3))
    y = rng.normal(size=(6, 2))
    return model, params, X, y


def all_results(model, params, X, y):
    value, grad = gd.value_and_grad(model, params, X, y, l2=0.1)
    return value, grad, gd.loss(model, params, X, y, l2=0.1), gd.predict(model, params, X)


def assert_same_results(a, b):
    assert a[0] == b[0] and a[2] == b[2]
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[3], b[3])


def read_only(a):
    a = np.array(a)
    a.setflags(write=False)
    return a


@pytest.mark.parametrize("form", [
    "lists", "fortran", "strided", "read-only", "column-slice-and-reversed",
])
def test_other_array_forms_give_the_same_results(batch, form):
    model, params, X, y = batch
    expected = all_results(model, params, X, y)
    if form == "lists":
        args = (params.tolist(), X.tolist(), y.tolist())
    elif form == "fortran":
        args = (params, np.asfortranarray(X), np.asfortranarray(y))
    elif form == "strided":
        P2 = np.repeat(params, 2)
        X2 = np.repeat(np.repeat(X, 2, axis=0), 3, axis=1)
        Y2 = np.repeat(y, 2, axis=0)
        args = (P2[::2], X2[::2, ::3], Y2[::2])
        assert not args[1].flags.c_contiguous and not args[0].flags.c_contiguous
    elif form == "read-only":
        args = (read_only(params), read_only(X), read_only(y))
    else:
        wide = np.hstack([X, X + 1.0])
        args = (params[::-1].copy()[::-1], wide[:, :3], np.hstack([y, y])[:, :2])
        assert args[0].strides[0] < 0 and not args[1].flags.c_contiguous
    assert_same_results(all_results(model, *args), expected)


def test_integer_inputs_are_converted(batch):
    model, params, X, y = batch
    Xi = np.round(X * 3).astype(np.int32)
    yi = np.round(y * 3).astype(np.int64)
    assert_same_results(all_results(model, params, Xi, yi),
                        all_results(model, params, Xi.astype(float), yi.astype(float)))


def test_single_output_targets_accept_both_shapes():
    model = gd.mlp([3, 4, 1], "tanh", loss="huber")
    params = gd.init(model, seed=2)
    X = np.random.default_rng(0).normal(size=(5, 3))
    y = np.random.default_rng(1).normal(size=5) * 2
    a = gd.value_and_grad(model, params, X, y)
    b = gd.value_and_grad(model, params, X, y[:, None])
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])


def test_labels_and_one_hot_probabilities_agree(dtype):
    model = gd.mlp([3, 4, 3], "tanh", loss="cross_entropy")
    params = gd.init(model, seed=2, dtype=dtype)
    X = np.random.default_rng(0).normal(size=(5, 3))
    labels = np.array([0, 2, 1, 1, 0])
    a = gd.value_and_grad(model, params, X, labels)
    b = gd.value_and_grad(model, params, X, np.eye(3)[labels])
    c = gd.value_and_grad(model, params, X, labels.astype(np.int32).tolist())
    assert a[0] == pytest.approx(b[0], rel=1e-6) and a[0] == c[0]
    np.testing.assert_allclose(a[1], b[1], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(a[1], c[1])


def test_float64_data_with_float32_params_computes_in_float32(batch):
    model, params, X, y = batch
    p32 = params.astype(np.float32)
    value, grad = gd.value_and_grad(model, p32, X, y)
    assert grad.dtype == np.float32
    v2, g2 = gd.value_and_grad(model, p32, X.astype(np.float32), y.astype(np.float32))
    assert value == v2
    np.testing.assert_array_equal(grad, g2)
    assert gd.predict(model, p32, X).dtype == np.float32


@pytest.mark.parametrize("kind", ["mse", "cross_entropy-labels", "cross_entropy-probs",
                                  "binary_cross_entropy"])
def test_no_input_is_mutated(dtype, kind):
    loss = kind.split("-")[0]
    k = 1 if loss == "binary_cross_entropy" else 3
    model = gd.mlp([4, 6, k], "relu", loss=loss)
    rng = np.random.default_rng(3)
    params = gd.init(model, seed=3, dtype=dtype)
    X = rng.normal(size=(7, 4)).astype(dtype)
    if kind == "cross_entropy-labels":
        y = rng.integers(0, 3, 7)
    elif kind == "cross_entropy-probs":
        y = rng.dirichlet(np.ones(3), 7).astype(dtype)
    elif loss == "binary_cross_entropy":
        y = rng.integers(0, 2, 7).astype(dtype)
    else:
        y = rng.normal(size=(7, 3)).astype(dtype)
    w = rng.uniform(0.5, 2, 7).astype(dtype)
    copies = [a.copy() for a in (params, X, y, w)]
    value, grad = gd.value_and_grad(model, params, X, y, l2=0.5, sample_weight=w)
    gd.loss(model, params, X, y, l2=0.5, sample_weight=w)
    gd.predict(model, params, X)
    gd.check_grad(model, params, X, y, l2=0.5, sample_weight=w)
    for before, after in zip(copies, (params, X, y, w)):
        assert after.dtype == before.dtype
        np.testing.assert_array_equal(after, before)
    assert not np.shares_memory(grad, params)
    # Deterministic: the same call gives bitwise the same answer.
    value2, grad2 = gd.value_and_grad(model, params, X, y, l2=0.5, sample_weight=w)
    assert value2 == value
    np.testing.assert_array_equal(grad2, grad)


# Pickling and copying (issue 10: an unpickled model's offsets were writeable) -------------
def _round_trips(model):
    import copy
    import pickle
    return {"pickle": pickle.loads(pickle.dumps(model)), "copy": copy.copy(model),
            "deepcopy": copy.deepcopy(model)}


def _assert_frozen_table(model):
    table = model.offsets
    assert not table.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        table[-1, 1] = 10**9
    with pytest.raises(ValueError):
        table.setflags(write=True)
    base = table.base
    while isinstance(base, np.ndarray):  # nor can any array it views
        with pytest.raises(ValueError):
            base.setflags(write=True)
        base = base.base
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.offsets = np.zeros_like(table)


@pytest.mark.parametrize("how", ["pickle", "copy", "deepcopy"])
def test_copies_are_read_only_equal_and_hashable(how):
    model = gd.mlp([3, 5, 2], "tanh", loss="cross_entropy")
    _ = model.offsets
    other = _round_trips(model)[how]
    assert other == model and hash(other) == hash(model)
    assert {model: 1}[other] == 1
    np.testing.assert_array_equal(other.offsets, model.offsets)
    assert (other.n_params, other.n_inputs, other.n_outputs) == (32, 3, 2)
    _assert_frozen_table(model)
    _assert_frozen_table(other)
    X = np.ones((4, 3))
    params = gd.init(model)
    np.testing.assert_array_equal(gd.predict(other, params, X), gd.predict(model, params, X))


def test_derived_attributes_cannot_be_assigned():
    model = gd.mlp([3, 1])
    for name in ("offsets", "n_params", "n_inputs", "n_outputs", "loss_code",
                 "workspace_units", "forward_units"):
        with pytest.raises(AttributeError):
            setattr(model, name, 10**9)
    assert model.offsets[0, 1] == 3 and model.n_params == 4


def test_layers_changed_behind_the_constructor_are_checked_again():
    layer = gd.Dense(3, 2)
    object.__setattr__(layer, "n_out", -7)
    with pytest.raises(ValueError, match=r"layers\[0\]: n_out must be > 0"):
        gd.Model((layer,))
    # A model's table comes from its validated layers only: swapping its layers
    # afterwards does not reach what the kernels index.
    model = gd.mlp([3, 2])
    object.__setattr__(model, "layers", (gd.Dense(3, 10**13),))
    assert model.offsets[0, 3] == 2 and model.n_params == 8
    assert len(model.unpack(np.zeros(8))) == 1
    X, y = np.ones((2, 3)), np.zeros((2, 2))
    assert gd.check_grad(model, np.full(8, 0.1), X, y).ok  # sized its buffers by the table
    np.testing.assert_array_equal(gd.predict(model, np.full(8, 0.1), X), np.full((2, 2), 0.4))


def _payload(cls, state):
    """A pickle that restores ``cls`` from instance state, bypassing __init__."""
    import pickle

    class Crafted:
        def __reduce__(self):
            return object.__new__, (cls,), state

    return pickle.dumps(Crafted())


def test_tampered_pickles_are_rebuilt_or_refused():
    import pickle

    model = gd.mlp([3, 4, 1])
    # A pickle in the form older versions wrote, carrying a doctored table: the
    # table is recomputed from the layers.
    table = np.array(model.offsets)
    table[1, 1] = 10**9
    state = {"layers": model.layers, "loss": "mse", "offsets": table, "n_params": 10**9}
    rebuilt = pickle.loads(_payload(gd.Model, state))
    assert rebuilt == model and rebuilt.n_params == model.n_params == 21
    np.testing.assert_array_equal(rebuilt.offsets, model.offsets)
    _assert_frozen_table(rebuilt)
    # Invalid specs in the payload are refused as the constructor refuses them.
    with pytest.raises(ValueError, match=r"layers\[1\].n_in is 5"):
        pickle.loads(_payload(gd.Model, {"layers": (gd.Dense(3, 4), gd.Dense(5, 1)),
                                         "loss": "mse"}))
    with pytest.raises(ValueError, match="n_in must be > 0"):
        pickle.loads(_payload(gd.Dense, {"n_in": -1, "n_out": 2, "activation": "tanh"}))
    with pytest.raises(ValueError, match="unknown loss"):
        pickle.loads(pickle.dumps(model).replace(b"\x8c\x03mse", b"\x8c\x03mxe"))
    with pytest.raises(TypeError, match="must carry"):
        pickle.loads(_payload(gd.Model, {"loss": "mse"}))
    # A payload without state skips __setstate__: the half-built model is refused.
    half = pickle.loads(_payload(gd.Model, None))
    with pytest.raises(TypeError, match="built by its constructor"):
        gd.loss(half, np.zeros(21), np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(TypeError, match="built by its constructor"):
        gd.init(half)
