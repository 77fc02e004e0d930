"""matrix_view and flat_view against NumPy's reshape: same values, same memory, kept alive."""

import gc

import numba
import numpy as np
import pytest

from gdcore.kernels.views import flat_view, matrix_view


@numba.njit(cache=False)
def block_as_matrix(vec, start, rows, cols):
    return matrix_view(vec[start:start + rows * cols], rows, cols)


@numba.njit(cache=False)
def as_flat(mat):
    return flat_view(mat)


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
