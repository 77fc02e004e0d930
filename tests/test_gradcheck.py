"""gd.check_grad: verdicts, kink skipping and the report's fields."""

import numpy as np
import pytest

import gdcore as gd
import gdcore.gradcheck
import reference as ref


def random_batch(model, n=6, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = gd.init(model, seed=seed) + rng.normal(0, 0.1, model.n_params)
    X = rng.normal(size=(n, model.n_inputs))
    k = model.n_outputs
    if model.loss == "cross_entropy":
        y = rng.integers(0, k, n)
    elif model.loss == "binary_cross_entropy":
        y = rng.integers(0, 2, (n, k)).astype(float)
    else:
        y = rng.normal(size=(n, k))
    return params.astype(dtype), X, y


def assert_report_consistent(report, model, params, X, y, **kwargs):
    _, grad = gd.value_and_grad(model, params, X, y, **kwargs)
    assert report.dtype == grad.dtype
    assert report.rtol == (1e-6 if grad.dtype == np.float64 else 1e-5)
    assert report.grad.shape == report.numerical.shape == (model.n_params,)
    np.testing.assert_array_equal(report.grad, grad.astype(np.float64))
    skipped = np.isnan(report.numerical)
    assert report.n_skipped == skipped.sum()
    assert report.n_checked == model.n_params - report.n_skipped
    keep = ~skipped
    diff = np.abs(report.grad[keep] - report.numerical[keep])
    assert report.max_abs_error == pytest.approx(diff.max() if keep.any() else 0.0)
    assert report.rel_error == pytest.approx(
        ref.norm_rel_error(report.grad[keep], report.numerical[keep]), rel=1e-9, abs=1e-300)
    expected_keys = [f"layer {l} {blk}" for l in range(len(model.layers)) for blk in "Wb"]
    assert list(report.per_layer) == expected_keys
    assert all(np.isfinite(v) and v >= 0 for v in report.per_layer.values())
    assert report.ok == (report.n_checked > 0 and (report.rel_error <= report.rtol
                                                   or report.max_abs_error <= report.atol))
    text = str(report)
    assert ("OK" if report.ok else "FAILED") in text
    assert str(report.n_checked) in text and str(report.n_skipped) in text


@pytest.mark.parametrize("sizes, activation, loss", [
    ([3, 5, 4, 3], "tanh", "cross_entropy"),
    ([4, 6, 2], "gelu", "binary_cross_entropy"),
    ([2, 7, 1], "softplus", "mse"),
    ([5, 3, 3, 2], "silu", "huber"),
    ([3, 4, 2], "sigmoid", "mae"),
    ([3, 4, 4, 2], "leaky_relu", "mse"),
])
def test_check_grad_passes_on_correct_models(dtype, sizes, activation, loss):
    model = gd.mlp(sizes, activation, loss=loss)
    params, X, y = random_batch(model, dtype=dtype)
    kwargs = dict(l2=0.05, sample_weight=np.linspace(0.5, 2.0, X.shape[0]))
    report = gd.check_grad(model, params, X, y, **kwargs)
    assert report.ok, str(report)
    assert report.n_checked > 0
    assert_report_consistent(report, model, params, X, y, **kwargs)


def test_check_grad_numbers_agree_with_reference_differences():
    model = gd.mlp([3, 5, 2], "tanh", loss="mse")
    params, X, y = random_batch(model)
    report = gd.check_grad(model, params, X, y)
    numerical, n_skipped = ref.numerical_grad(model, params, X, y)
    assert n_skipped == 0 and report.n_skipped == 0
    np.testing.assert_allclose(report.numerical, numerical, rtol=1e-7, atol=1e-10)


def test_check_grad_explicit_rtol_and_step():
    model = gd.mlp([3, 4, 2], "tanh", loss="mse")
    params, X, y = random_batch(model)
    strict = gd.check_grad(model, params, X, y, rtol=0.0, atol=0.0)
    assert strict.rtol == 0.0 and strict.atol == 0.0
    assert not strict.ok  # round-off alone exceeds 0
    abs_only = gd.check_grad(model, params, X, y, rtol=0.0, atol=1.0)
    assert abs_only.ok and abs_only.max_abs_error <= 1.0
    loose = gd.check_grad(model, params, X, y, step=1e-3, rtol=1e-4)
    assert loose.ok and loose.rtol == 1e-4


def relu_net_with_a_unit_at_its_kink():
    """Hidden unit 0 has pre-activation exactly 0 for the only sample; the others do not.

    z_0 = 1 * 1.0 + 2 * (-0.5) + 0 = 0 depends on W1[0, 0], W1[1, 0] and b1[0]:
    exactly those 3 coordinates straddle the kink.
    """
    model = gd.mlp([2, 3, 2], "relu", loss="mse")
    W1 = np.array([[1.0, 0.5, 0.25], [-0.5, 0.75, 0.5]])
    b1 = np.array([0.0, 0.1, -0.2])
    W2 = np.array([[0.3, -0.4], [0.8, 0.2], [-0.6, 0.9]])
    b2 = np.array([0.05, -0.05])
    params = model.pack([(W1, b1), (W2, b2)])
    X = np.array([[1.0, 2.0]])
    y = np.array([[0.5, -1.0]])
    kink_coords = [0, 3, 6]  # W1[0, 0], W1[1, 0] (row-major) and b1[0]
    return model, params, X, y, kink_coords


def test_check_grad_skips_coordinates_at_a_relu_kink(dtype):
    model, params, X, y, kink_coords = relu_net_with_a_unit_at_its_kink()
    params = params.astype(dtype)
    report = gd.check_grad(model, params, X, y)
    assert report.n_skipped == 3
    assert report.n_checked == model.n_params - 3
    assert list(np.flatnonzero(np.isnan(report.numerical))) == kink_coords
    assert report.ok, str(report)
    # Derivative 0 at the kink (PyTorch's convention): the dead-at-0 unit passes nothing back.
    np.testing.assert_array_equal(report.grad[kink_coords], 0.0)
    assert_report_consistent(report, model, params, X, y)
    # The reference's own kink detection agrees.
    numerical, n_skipped = ref.numerical_grad(model, params.astype(np.float64), X, y)
    assert n_skipped == 3
    assert list(np.flatnonzero(np.isnan(numerical))) == kink_coords


@pytest.mark.parametrize("loss, y", [("mae", [[1.0, 5.0]]), ("huber", [[0.0, 5.0]])])
def test_check_grad_skips_coordinates_at_a_loss_kink(loss, y):
    """Output 0's residual sits exactly at mae's kink (0) or huber's break point (+1)."""
    model = gd.Model([gd.Dense(2, 2)], loss=loss)
    params = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])  # W = I, b = 0: output = X
    X = np.array([[1.0, 2.0]])
    report = gd.check_grad(model, params, X, np.array(y))
    assert report.n_skipped == 3  # W[0, 0], W[1, 0], b[0] move output 0
    assert list(np.flatnonzero(np.isnan(report.numerical))) == [0, 2, 4]
    assert report.ok, str(report)


@pytest.mark.parametrize("layer, block", [(0, "W"), (1, "b")])
def test_check_grad_detects_a_wrong_gradient(monkeypatch, dtype, layer, block):
    model = gd.mlp([3, 4, 2], "tanh", loss="mse")
    params, X, y = random_batch(model, dtype=dtype)
    row = model.offsets[layer]
    index = int(row[0] if block == "W" else row[1])
    real = gdcore.gradcheck.value_and_grad

    def wrong(*args, **kwargs):
        value, grad = real(*args, **kwargs)
        grad = grad.copy()
        grad[index] += 1e-2 * (1 + abs(grad[index]))
        return value, grad

    monkeypatch.setattr(gdcore.gradcheck, "value_and_grad", wrong)
    report = gd.check_grad(model, params, X, y)
    assert not report.ok
    assert "FAILED" in str(report)
    worst = max(report.per_layer, key=report.per_layer.get)
    assert worst == f"layer {layer} {block}"
    assert report.max_abs_error == pytest.approx(
        np.abs(report.grad - report.numerical)[index])


def test_check_grad_float32_is_compared_with_float64_differences():
    model = gd.mlp([4, 8, 3], "elu", loss="cross_entropy")
    params, X, y = random_batch(model, seed=3, dtype=np.float32)
    report = gd.check_grad(model, params, X, y)
    assert report.ok and report.dtype == np.float32 and report.rtol == 1e-5
    assert report.grad.dtype == np.float64
    # float32 round-off is visible, but far below the float32 tolerance.
    assert 1e-9 < report.rel_error < 1e-5
    # The reference is taken at the point the float32 gradient saw: X rounded to float32.
    X_seen = np.asarray(X, dtype=np.float32).astype(np.float64)
    report64 = gd.check_grad(model, params.astype(np.float64), X_seen, y)
    assert report64.rel_error < 1e-8
    np.testing.assert_allclose(report.numerical, report64.numerical, rtol=1e-12, atol=1e-14)


# Former false alarms ------------------------------------------------------------------
def test_zero_gradient_is_not_a_failure():
    """A correct, exactly-zero gradient must pass the check.

    The only output unit is a ReLU that is dead on the whole batch, so the
    gradient is exactly 0; central differences give round-off of ~4e-14.

    Regression: a verdict on the norm-relative error alone gives rel_error
    1.0 here and failed; check_grad now also passes when max_abs_error is
    within atol.  The same case arises whenever the checked coordinates of a
    correct gradient are all zero (dead units, or the only non-zero
    coordinates skipped at a kink).
    """
    model = gd.mlp([2, 1], output="relu", loss="mse")
    params = np.array([1.0, 1.0, -3.0])  # z = x0 + x1 - 3 < 0 on the batch
    X = np.array([[1.0, 0.5], [0.2, 0.3]])
    y = np.array([0.3, -0.2])
    _, grad = gd.value_and_grad(model, params, X, y)
    np.testing.assert_array_equal(grad, 0.0)  # the analytic gradient is right
    report = gd.check_grad(model, params, X, y)
    assert report.max_abs_error < 1e-12
    assert report.ok, str(report)


def test_elu_unit_at_zero_is_not_a_failure():
    """A correct gradient of an ELU net whose pre-activations sit at 0 must pass.

    This is the everyday situation of gd.init (zero biases) and a batch with
    an all-zero input row: every first-layer pre-activation of that sample is
    exactly 0.  ELU (alpha = 1) has a continuous first derivative but its
    second derivative jumps at 0, so a fourth-order stencil straddling 0 is
    only first-order accurate: the error is O(step).

    Regression: while ELU was not counted as kinked, its straddling
    coordinates were not skipped and check_grad reported FAILED (rel_error
    5.9e-6 > 1e-6, all in "layer 0 b") for a gradient that agrees with the
    reference differences to ~1e-11.
    """
    model = gd.mlp([3, 5, 2], "elu", loss="mse")
    params = gd.init(model, seed=0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2, 3))
    X[1] = 0.0
    y = rng.normal(size=(2, 2))
    _, grad = gd.value_and_grad(model, params, X, y)
    numerical, _ = ref.numerical_grad(model, params, X, y)  # skips ELU kinks
    keep = ~np.isnan(numerical)
    assert ref.norm_rel_error(grad[keep], numerical[keep]) < 1e-9
    report = gd.check_grad(model, params, X, y)
    assert report.ok, str(report)


# SciPy-style objectives ------------------------------------------------------------------
def _quartic(x, a):
    """f = sum(a * x**4) / 4 + x[0] * x[-1], with its exact gradient."""
    f = float(np.sum(a * x ** 4) / 4 + x[0] * x[-1])
    g = a * x ** 3
    g[0] += x[-1]
    g[-1] += x[0]
    return f, g


def test_check_grad_of_an_objective_accepts_its_exact_gradient():
    a = np.array([1.0, 2.0, 3.0])
    x0 = np.array([0.3, -1.2, 0.7])
    for jac, fun in ((None, _quartic), (True, _quartic),
                     (lambda x, a: _quartic(x, a)[1], lambda x, a: _quartic(x, a)[0])):
        report = gd.check_grad(fun, x0, jac=jac, args=(a,))
        assert report.ok, str(report)
        assert report.rel_error < 1e-9
        assert report.n_checked == 3 and report.n_skipped == 0 and report.per_layer == {}
        np.testing.assert_allclose(report.numerical, _quartic(x0, a)[1], rtol=1e-8)


def test_check_grad_of_an_objective_flags_a_wrong_gradient():
    a = np.array([1.0, 2.0, 3.0])
    x0 = np.array([0.3, -1.2, 0.7])

    def off_by_a_bit(x, a):
        f, g = _quartic(x, a)
        return f, g * (1 + 1e-4)

    report = gd.check_grad(off_by_a_bit, x0, args=(a,))
    assert not report.ok
    assert report.rel_error == pytest.approx(1e-4 / (1 + 1e-4), rel=1e-3)
    assert "FAILED" in str(report)


def test_check_grad_of_an_objective_in_float32():
    # The gradient under test is computed in float32 at x0; the differences of
    # the value are taken in float64 (the probes are float64 points).
    a = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    x0 = np.array([0.3, -1.2, 0.7], dtype=np.float32)
    assert _quartic(x0, a)[1].dtype == np.float32
    report = gd.check_grad(_quartic, x0, args=(a,))
    assert report.dtype == np.float32 and report.rtol == 1e-5
    assert report.ok, str(report)
    assert 1e-9 < report.rel_error < 1e-5  # float32 round-off is measured, not hidden


def test_check_grad_of_an_objective_rejects_bad_input():
    with pytest.raises(ValueError, match="x0"):
        gd.check_grad(_quartic, np.zeros((2, 2)), args=(np.ones(2),))
    with pytest.raises(ValueError, match="gradient has shape"):
        gd.check_grad(lambda x: (0.0, np.zeros(5)), np.zeros(3))
    with pytest.raises(ValueError, match="jac"):
        gd.check_grad(_quartic, np.zeros(3), jac="2-point", args=(np.ones(3),))
