"""matrix_view, flat_view and byte_rows against NumPy's reshape and view: same values, same
memory, kept alive."""

import gc

import numba
import numpy as np
import pytest

import gdcore as gd
from gdcore.kernels.views import bias, byte_rows, flat_view, layer_block, matrix_view, weights


@numba.njit(cache=False)
def block_as_matrix(vec, start, rows, cols):
    return matrix_view(vec[start:start + rows * cols], rows, cols)


@numba.njit(cache=False)
def as_flat(mat):
    return flat_view(mat)


@numba.njit(cache=False)
def as_byte_rows(arr):
    return byte_rows(arr)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("start, rows, cols", [(0, 1, 1), (3, 4, 5), (7, 1, 9), (2, 6, 1),
                                               (0, 0, 4)])
def test_matrix_view_is_reshape_of_the_block(dtype, start, rows, cols):
    vec = np.arange(64).astype(dtype)
    got = block_as_matrix(vec, start, rows, cols)
    expected = vec[start:start + rows * cols].reshape(rows, cols)
    assert got.shape == expected.shape and got.strides == expected.strides
    assert got.flags.c_contiguous and got.dtype == dtype
    np.testing.assert_array_equal(got, expected)
    if got.size:
        assert np.shares_memory(got, vec)
        got[-1, -1] = 99  # a view: writes land in the flat array
        assert vec[start + rows * cols - 1] == 99


@pytest.mark.parametrize("shape", [(1, 1), (3, 4), (5, 1), (0, 3)])
def test_flat_view_is_reshape_minus_one(shape):
    mat = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    got = as_flat(mat)
    assert got.shape == (mat.size,) and got.strides == (8,)
    np.testing.assert_array_equal(got, mat.reshape(-1))
    if got.size:
        got[0] = -1
        assert mat.flat[0] == -1


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint8])
@pytest.mark.parametrize("shape", [(5,), (4, 3), (1, 7), (0, 3), (0,), (6, 1)])
def test_byte_rows_is_a_read_only_uint8_view_of_each_row(dtype, shape):
    arr = np.arange(int(np.prod(shape))).astype(dtype).reshape(shape)
    got = as_byte_rows(arr)
    row_bytes = arr.itemsize * (shape[1] if len(shape) == 2 else 1)
    expected = arr.view(np.uint8).reshape(shape[0], row_bytes)
    assert got.shape == expected.shape and got.strides == expected.strides
    assert got.dtype == np.uint8 and got.flags.c_contiguous and not got.flags.writeable
    np.testing.assert_array_equal(got, expected)
    if got.size:
        assert np.shares_memory(got, arr)


@numba.njit(cache=False)
def table_views(params, buf, offsets, l, n):
    return weights(params, offsets, l), bias(params, offsets, l), layer_block(buf, offsets, l, n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_table_views_are_the_blocks_the_offset_table_names(dtype):
    model = gd.Model([gd.Dense(3, 5, "tanh"), gd.Dense(5, 1), gd.Dense(1, 4, "relu")])
    params = np.arange(model.n_params).astype(dtype)
    n = 6
    buf = np.arange(n * sum(layer.n_out for layer in model.layers)).astype(dtype)
    units = 0
    for l, layer in enumerate(model.layers):
        W, b, block = table_views(params, buf, model.offsets, l, n)
        w0 = model.offsets[l, 0]
        expected = [params[w0:w0 + layer.n_in * layer.n_out].reshape(layer.n_in, layer.n_out),
                    params[model.offsets[l, 1]:model.offsets[l, 1] + layer.n_out],
                    buf[n * units:n * (units + layer.n_out)].reshape(n, layer.n_out)]
        for got, want in zip((W, b, block), expected):
            assert got.shape == want.shape and got.strides == want.strides
            assert got.dtype == dtype and got.flags.c_contiguous
            np.testing.assert_array_equal(got, want)
            assert np.shares_memory(got, want)
        units += layer.n_out
    W[0, 0] = -1  # views: writes land in the flat arrays
    assert params[model.offsets[-1, 0]] == -1


def test_views_keep_their_memory_alive():
    view = block_as_matrix(np.arange(12, dtype=np.float64), 2, 2, 5)  # the flat array dies here
    flat = as_flat(view)
    gc.collect()
    np.testing.assert_array_equal(view, np.arange(2, 12).reshape(2, 5))
    np.testing.assert_array_equal(flat, np.arange(2, 12))


def test_views_refuse_other_layouts():
    with pytest.raises(numba.TypingError):
        block_as_matrix(np.arange(12.0)[::2], 0, 2, 3)
    with pytest.raises(numba.TypingError):
        as_flat(np.zeros((3, 4), order="F"))
    with pytest.raises(numba.TypingError):
        as_byte_rows(np.zeros((3, 4))[:, ::2])
    with pytest.raises(numba.TypingError):
        as_byte_rows(np.zeros((2, 3, 4)))
    with pytest.raises(numba.TypingError):  # the table must be int64
        table_views(np.zeros(9), np.zeros(9), np.zeros((1, 6), np.int32), 0, 1)
