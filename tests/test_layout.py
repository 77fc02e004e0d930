"""The flat parameter layout: the offset table, unpack and pack."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gdcore as gd
import reference as ref

W_START, B_START, N_IN, N_OUT, ACT, UNIT_START = range(6)


@st.composite
def models(draw):
    sizes = draw(st.lists(st.integers(1, 9), min_size=2, max_size=6), label="sizes")
    acts = draw(st.lists(st.sampled_from(ref.HIDDEN_ACTIVATIONS),
                         min_size=len(sizes) - 1, max_size=len(sizes) - 1), label="activations")
    layers = [gd.Dense(sizes[i], sizes[i + 1], a) for i, a in enumerate(acts)]
    return gd.Model(layers, loss="mse")


@settings(max_examples=60)
@given(model=models())
def test_offset_table_invariants(model):
    table = model.offsets
    assert isinstance(table, np.ndarray)
    assert table.dtype == np.int64
    assert table.shape == (len(model.layers), 6)
    assert not table.flags.writeable
    with pytest.raises(ValueError):
        table[0, 0] = 1

    expected_rows, n_params = ref.layout(model)
    assert model.n_params == n_params == sum(l.n_params for l in model.layers)
    assert model.n_inputs == model.layers[0].n_in
    assert model.n_outputs == model.layers[-1].n_out

    blocks = []
    units = 0
    for row, layer, (w0, b0, n_in, n_out, _) in zip(table, model.layers, expected_rows):
        assert (row[N_IN], row[N_OUT]) == (layer.n_in, layer.n_out)
        assert row[W_START] == w0 and row[B_START] == b0
        assert row[B_START] - row[W_START] == layer.n_in * layer.n_out
        assert row[UNIT_START] == units  # units in earlier layers
        units += layer.n_out
        blocks.append((int(row[W_START]), int(row[B_START])))
        blocks.append((int(row[B_START]), int(row[B_START] + row[N_OUT])))
    # Contiguous, non-overlapping, in order, covering [0, n_params) exactly.
    assert blocks[0][0] == 0
    for (_, end), (start, _) in zip(blocks, blocks[1:]):
        assert start == end
    assert blocks[-1][1] == model.n_params
    assert sum(end - start for start, end in blocks) == model.n_params
    covered = np.zeros(model.n_params, dtype=int)
    for start, end in blocks:
        covered[start:end] += 1
    assert np.all(covered == 1)

    # Layers with the same activation carry the same code, different ones differ.
    by_name = {}
    for row, layer in zip(table, model.layers):
        by_name.setdefault(layer.activation, set()).add(int(row[ACT]))
    assert all(len(c) == 1 for c in by_name.values())
    assert len({c for cs in by_name.values() for c in cs}) == len(by_name)


@settings(max_examples=40)
@given(model=models(), dtype=st.sampled_from([np.float32, np.float64]))
def test_unpack_views_and_pack_roundtrip(model, dtype):
    params = np.arange(model.n_params, dtype=dtype)
    pairs = model.unpack(params)
    assert len(pairs) == len(model.layers)
    for (W, b), layer, row in zip(pairs, model.layers, model.offsets):
        assert W.shape == (layer.n_in, layer.n_out) and b.shape == (layer.n_out,)
        assert W.dtype == dtype and b.dtype == dtype
        assert np.shares_memory(W, params) and np.shares_memory(b, params)
        w0, b0 = int(row[W_START]), int(row[B_START])
        # Row-major (n_in, n_out): W[i, j] is params[w0 + i * n_out + j].
        np.testing.assert_array_equal(
            W, params[w0:b0].reshape(layer.n_in, layer.n_out))
        np.testing.assert_array_equal(b, np.arange(b0, b0 + layer.n_out, dtype=dtype))
    packed = model.pack(pairs, dtype=dtype)
    assert packed.dtype == dtype
    np.testing.assert_array_equal(packed, params)
    assert not np.shares_memory(packed, params)

    # Writing through the views writes into params.
    for l, (W, b) in enumerate(pairs):
        W[...] = -(l + 1)
        b[...] = 100 + l
    for l, (W, b) in enumerate(model.unpack(params)):
        assert np.all(W == -(l + 1)) and np.all(b == 100 + l)


def test_pack_accepts_lists_and_default_dtype():
    model = gd.mlp([2, 3, 1], "tanh")
    pairs = [([[1, 2, 3], [4, 5, 6]], [7, 8, 9]), ([[10], [11], [12]], [13])]
    flat = model.pack(pairs)
    assert flat.dtype == np.float64
    np.testing.assert_array_equal(flat, np.arange(1, 14))
    np.testing.assert_array_equal(model.pack(model.unpack(flat)), flat)


def test_layer_computes_x_at_w_plus_b():
    """The documented layout: layer l computes X @ W + b with W row-major (n_in, n_out)."""
    model = gd.Model([gd.Dense(2, 3)], loss="mse")
    W = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    b = np.array([0.5, -0.5, 1.0])
    params = np.concatenate([W.ravel(), b])
    X = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, -1.0]])
    np.testing.assert_array_equal(gd.predict(model, params, X), X @ W + b)


@pytest.mark.parametrize("bad", [
    pytest.param(lambda m: [(np.zeros((2, 3)), np.zeros(3))], id="too-few-pairs"),
    pytest.param(lambda m: [(np.zeros((3, 2)), np.zeros(3)), (np.zeros((3, 1)), np.zeros(1))],
                 id="transposed-W"),
    pytest.param(lambda m: [(np.zeros((2, 3)), np.zeros(2)), (np.zeros((3, 1)), np.zeros(1))],
                 id="short-b"),
])
def test_pack_rejects_wrong_shapes(bad):
    model = gd.mlp([2, 3, 1])
    with pytest.raises(ValueError, match="W|b|pairs"):
        model.pack(bad(model))


def test_unpack_rejects_what_cannot_be_viewed():
    model = gd.mlp([2, 3, 1])
    params = gd.init(model)
    with pytest.raises(TypeError, match="params"):
        model.unpack(list(params))
    with pytest.raises(ValueError, match="params"):
        model.unpack(params[:-1])
    with pytest.raises(ValueError, match="params"):
        model.unpack(np.repeat(params, 2)[::2])  # strided: a view is impossible
    with pytest.raises((TypeError, ValueError), match="params"):
        model.unpack(params.astype(np.int64))
