"""SciPy sparse ``X``: every entry point against the same data made dense.

The sparse first layer (gdcore.kernels.sparse) sums each row's stored values
in storage order where BLAS sums a dense row in its own order, so the two
agree to rounding, not bitwise: 1e-12 relative in float64, float32's
rounding in float32.
"""

import numpy as np
import pytest
import scipy.sparse as sp

import gdcore as gd

_rng = np.random.default_rng(11)
N, D = 60, 25
DENSE = _rng.normal(size=(N, D)) * (_rng.random((N, D)) < 0.15)
DENSE[3] = 0.0  # a sample with no stored value
CSR = sp.csr_matrix(DENSE)
LABELS = _rng.integers(0, 3, N)
Y2 = _rng.normal(size=(N, 2))
SW = _rng.uniform(0.5, 2.0, N)
CE = gd.mlp([D, 9, 3], activation="tanh", loss="cross_entropy")
REG = gd.mlp([D, 6, 4, 2], activation="relu")
CASES = [(CE, LABELS), (REG, Y2)]
TOL = {np.float64: dict(rtol=1e-12, atol=1e-14), np.float32: dict(rtol=2e-5, atol=2e-6)}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("model, y", CASES, ids=["cross_entropy", "mse"])
def test_functional_api_on_sparse_equals_dense(model, y, dtype):
    params = gd.init(model, seed=2, dtype=dtype)
    D32 = DENSE.astype(np.float32)
    for X, dense in ((CSR, DENSE), (sp.csc_matrix(DENSE), DENSE), (sp.csr_array(DENSE), DENSE),
                     (sp.csr_matrix(D32), D32)):
        loss, grad = gd.value_and_grad(model, params, X, y, l2=0.1, sample_weight=SW)
        loss_d, grad_d = gd.value_and_grad(model, params, dense, y, l2=0.1, sample_weight=SW)
        assert loss == pytest.approx(loss_d, rel=TOL[dtype]["rtol"])
        np.testing.assert_allclose(grad, grad_d, **TOL[dtype])
        assert grad.dtype == dtype
        np.testing.assert_allclose(gd.predict(model, params, X),
                                   gd.predict(model, params, dense), **TOL[dtype])
        assert gd.loss(model, params, X, y) == pytest.approx(gd.loss(model, params, dense, y),
                                                             rel=TOL[dtype]["rtol"])


def test_sparse_gradient_matches_finite_differences():
    """Independent of the dense path: central differences of the sparse loss."""
    from scipy.optimize import approx_fprime

    params = gd.init(CE, seed=4)
    _, grad = gd.value_and_grad(CE, params, CSR, LABELS, l2=0.05)
    numeric = approx_fprime(params, lambda p: gd.loss(CE, p, CSR, LABELS, l2=0.05), 1e-7)
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("shuffle", [False, True])
def test_fit_on_sparse_equals_fit_on_dense(shuffle):
    params = gd.init(CE, seed=5)
    kw = dict(optimizer=gd.adam(0.02), epochs=4, batch_size=7, shuffle=shuffle, seed=3,
              sample_weight=SW, validation_fraction=0.25, l2=0.01)
    a = gd.fit(CE, params, CSR, LABELS, **kw)
    b = gd.fit(CE, params, DENSE, LABELS, **kw)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(a.history["val_loss"], b.history["val_loss"], rtol=1e-11)
    assert a.status == b.status == "completed"
    # validation data sparse while training data is dense, and the reverse
    c = gd.fit(CE, params, DENSE[:40], LABELS[:40], optimizer=gd.adam(0.02), epochs=2,
               validation_data=(CSR[40:], LABELS[40:]))
    d = gd.fit(CE, params, CSR[:40], LABELS[:40], optimizer=gd.adam(0.02), epochs=2,
               validation_data=(DENSE[40:], LABELS[40:]))
    np.testing.assert_allclose(c.history["val_loss"], d.history["val_loss"], rtol=1e-11)


def test_bad_sparse_input_is_refused_clearly():
    params = gd.init(CE, seed=0)
    bad = CSR.copy()
    bad.data[5] = np.nan
    row = int(np.searchsorted(bad.indptr, 5, side="right") - 1)
    with pytest.raises(ValueError, match=f"X contains NaN or Inf \\(in sample {row}\\)"):
        gd.value_and_grad(CE, params, bad, LABELS)
    with pytest.raises(ValueError, match="features"):
        gd.predict(CE, params, sp.csr_matrix(np.ones((3, D + 1))))
    broken = sp.csr_matrix((CSR.data, CSR.indices.copy(), CSR.indptr), shape=CSR.shape)
    broken.indices[0] = D + 7  # a column outside the model's inputs
    with pytest.raises(ValueError, match="column index"):
        gd.predict(CE, params, broken)
    with pytest.raises(ValueError, match="empty"):
        gd.predict(CE, params, sp.csr_matrix((0, D)))


def test_sparse_input_is_not_modified_or_densified():
    X = CSR.copy()
    before = (X.data.copy(), X.indices.copy(), X.indptr.copy())
    gd.fit(CE, gd.init(CE, seed=1), X, LABELS, epochs=1)
    for a, b in zip((X.data, X.indices, X.indptr), before):
        np.testing.assert_array_equal(a, b)
