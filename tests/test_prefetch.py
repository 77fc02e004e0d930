"""The prefetch hint: emitted as an LLVM prefetch, harmless on every array a fit passes it."""

import hashlib

import numpy as np
import pytest

from gdcore.kernels import prefetch
from gdcore.kernels._jit import jit


def digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(a.tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("make", [
    lambda rng: rng.normal(size=(50, 10)).astype(np.float32),  # narrow rows: part of a line
    lambda rng: rng.normal(size=(7, 784)),  # wide rows: capped at MAX_LINES lines
    lambda rng: rng.integers(0, 9, size=50),  # labels
    lambda rng: rng.random(50).astype(np.float32),  # sample weights
    lambda rng: np.zeros((0, 3), np.float32),  # data a model does not use
    lambda rng: np.zeros(0, np.int64),
], ids=["narrow", "wide", "labels", "weights", "empty-2d", "empty-1d"])
def test_prefetch_rows_changes_nothing(make, rng):
    src = make(rng)
    order = rng.permutation(max(src.shape[0], 1)).astype(np.int64)
    stop = src.shape[0]
    before = digest(src, order)
    prefetch.prefetch_rows(src, order, 0, stop)
    prefetch.prefetch_rows(src, order, stop // 2, stop)  # a partial batch, last row included
    assert digest(src, order) == before


def test_prefetch_compiles_to_an_llvm_prefetch():
    """The hint must survive compilation: a silently dropped prefetch is a lost speed-up."""
    fresh = jit(cache=False)(prefetch.prefetch_rows.py_func)  # a cached kernel keeps no IR
    fresh(np.zeros((4, 10), np.float32), np.arange(4), 0, 4)
    llvm_ir = "\n".join(fresh.inspect_llvm().values())
    assert "@llvm.prefetch" in llvm_ir
