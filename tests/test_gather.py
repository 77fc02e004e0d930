"""kernels.gather: chunk sizes and the row gather against NumPy's fancy indexing."""

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gdcore.kernels import copies, gather


@given(batch_size=st.integers(1, 300), row_bytes=st.integers(1, 10_000),
       n_samples=st.integers(1, 100_000))
def test_a_chunk_is_whole_batches_within_the_budget(batch_size, row_bytes, n_samples):
    rows = gather.chunk_rows(batch_size, row_bytes, n_samples)
    n_batches = -(-n_samples // batch_size)
    assert rows % batch_size == 0
    assert batch_size <= rows <= n_batches * batch_size
    if rows > batch_size:  # more than the one batch every chunk holds
        assert rows * row_bytes <= gather.CHUNK_BYTES
    if rows < n_batches * batch_size:  # one more batch would not fit
        assert (rows + batch_size) * row_bytes > gather.CHUNK_BYTES


@pytest.mark.parametrize("shape, dtype", [
    ((40,), np.int64), ((40,), np.float32), ((40, 1), np.float64), ((40, 3), np.float32),
    ((40, 10), np.float64), ((40, 784), np.float32)])
def test_gather_rows_matches_fancy_indexing(shape, dtype):
    rng = np.random.default_rng(shape[-1])
    src = (rng.normal(size=shape) * 100).astype(dtype)
    src0 = src.copy()
    order = rng.permutation(shape[0])
    for start, stop in [(0, 40), (7, 19), (39, 40), (5, 5)]:
        dst = np.full((stop - start + 3,) + shape[1:], -7, dtype=dtype)
        copies.gather_rows(src, order, start, stop, dst)
        np.testing.assert_array_equal(dst[:stop - start], src[order[start:stop]])
        np.testing.assert_array_equal(dst[stop - start:], -7)  # nothing past the rows
    np.testing.assert_array_equal(src, src0)


@pytest.mark.parametrize("width", list(range(1, 70)) + [127, 128, 129, 1000])
def test_gather_rows_of_every_narrow_width(width):
    """Every byte width around the inline copies' size classes (copy_bytes)."""
    rng = np.random.default_rng(width)
    src = rng.integers(0, 256, size=(50, width), dtype=np.uint8)
    order = rng.permutation(50)
    dst = np.full((50 + 2, width), 7, dtype=np.uint8)
    copies.gather_rows(src, order, 3, 45, dst)
    np.testing.assert_array_equal(dst[:42], src[order[3:45]])
    np.testing.assert_array_equal(dst[42:], 7)


def test_gather_rows_leaves_an_empty_source_alone():
    dst = np.full(4, 3.0)
    copies.gather_rows(np.zeros(0), np.arange(4), 0, 4, dst)
    np.testing.assert_array_equal(dst, 3.0)


def test_copy_row_refuses_mismatched_arrays():
    @numba.njit
    def copy(dst, src):
        copies.copy_row(dst, 0, src, 0)

    with pytest.raises(numba.TypingError):
        copy(np.zeros((2, 3)), np.zeros((2, 3), np.float32))
    with pytest.raises(numba.TypingError):
        copy(np.zeros(3), np.zeros((2, 3)))


def test_a_strict_kernel_cannot_be_inlined():
    from gdcore.kernels._jit import jit
    with pytest.raises(ValueError, match="strict"):
        jit(strict=True, inline=True)(lambda x: x)
