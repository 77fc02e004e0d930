"""Property tests over random architectures: every hidden activation x every loss.

Each example is a random network (0-3 hidden layers of 1-8 units, 1-8 inputs
and outputs, 1-8 samples) with random data drawn from a seeded NumPy generator
(hypothesis draws the sizes, names, flags and the seed; NumPy draws the
numbers, which keeps example generation fast).  gdcore is compared with the
plain-NumPy reference of ``tests/reference.py``:

* the loss value to rtol 1e-10;
* the gradient with SciPy central differences of the *reference* loss, and
  with :func:`gdcore.check_grad`;
* float32 kernels with the float64 kernels at the same (float32-exact) point.

All data are float32-exact, so float32 and float64 runs see identical inputs.
"""

import os
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

import gdcore as gd
import reference as ref

GRAD_RTOL = 1e-6
# Norm floor of the gradient comparisons: below it the finite differences'
# round-off (about eps * loss / step per coordinate) dominates, so a relative
# measure would compare noise with noise.
FD_FLOOR = 1e-3
# float32 gradients of a confident classifier carry an absolute error of
# about eps32 per logit (softmax - onehot cancels), so they are compared
# relative to at least this norm.
F32_FLOOR = 1e-2
CHECK_GRAD_STEP = 1e-4  # gd.check_grad's default


def examples(n):
    """``n`` hypothesis examples, times $GDCORE_EXAMPLES_SCALE for longer soak runs."""
    return n * int(os.environ.get("GDCORE_EXAMPLES_SCALE", "1"))


@dataclass
class Case:
    model: gd.Model
    params: np.ndarray
    X: np.ndarray
    y: np.ndarray
    l2: float
    sample_weight: object

    def kwargs(self):
        return dict(l2=self.l2, sample_weight=self.sample_weight)


def output_activations(loss):
    if loss == "cross_entropy":
        return ["softmax", "identity"]
    if loss == "binary_cross_entropy":
        return ["sigmoid", "identity"]
    return list(ref.HIDDEN_ACTIVATIONS)  # any non-softmax activation


@st.composite
def cases(draw, activation, loss, *, mixed=False, noise=(0.1, 0.5)):
    """A random model of ``loss`` whose hidden layers use ``activation``.

    With ``mixed``, each hidden layer draws its own activation instead.
    ``noise``: the scales of the normal noise added to the initial parameters.
    """
    n_hidden = draw(st.integers(0, 3), label="n_hidden")
    n_in = draw(st.integers(1, 8), label="n_in")
    hidden = [draw(st.integers(1, 8)) for _ in range(n_hidden)]
    n_out = draw(st.integers(2 if loss == "cross_entropy" else 1, 8), label="n_out")
    output = draw(st.sampled_from(output_activations(loss)), label="output")
    if mixed:
        acts = [draw(st.sampled_from(ref.HIDDEN_ACTIVATIONS)) for _ in hidden]
    else:
        acts = [activation] * n_hidden
    sizes = [n_in, *hidden, n_out]
    layers = [gd.Dense(sizes[i], sizes[i + 1], a) for i, a in enumerate(acts)]
    layers.append(gd.Dense(sizes[-2], n_out, output))
    model = gd.Model(layers, loss=loss)

    n = draw(st.integers(1, 8), label="n_samples")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    param_noise = draw(st.sampled_from(noise), label="param_noise")
    l2 = draw(st.one_of(st.just(0.0), st.floats(1e-3, 1.0)), label="l2")
    weighted = draw(st.booleans(), label="sample_weight")
    soft = draw(st.booleans(), label="soft_targets")

    rng = np.random.default_rng(seed)
    # Glorot/He start, then noise so that biases are nonzero and units differ.
    params = gd.init(model, seed=rng) + rng.normal(0.0, param_noise, model.n_params)
    X = rng.normal(0.0, 1.0, (n, n_in))
    if loss == "cross_entropy":
        if soft:
            y = rng.dirichlet(np.ones(n_out), size=n)
        else:
            y = rng.integers(0, n_out, size=n)
    elif loss == "binary_cross_entropy":
        y = rng.uniform(0.0, 1.0, (n, n_out)) if soft else rng.integers(0, 2, (n, n_out))
    else:
        y = rng.normal(0.0, 1.0, (n, n_out))
        if n_out == 1 and soft:
            y = y[:, 0]  # the (n,) form of single-output targets
    if y.dtype.kind == "f":
        y = ref.f32_exact(y)
    sample_weight = None
    if weighted:
        sample_weight = ref.f32_exact(rng.uniform(0.0, 2.0, n) + 0.05)
        if n > 1:
            sample_weight[rng.integers(n)] = 0.0  # a zero weight is allowed
    return Case(model, ref.f32_exact(params), ref.f32_exact(X), y, l2, sample_weight)


def describe(case):
    note(str(case.model))
    note(f"params={case.params!r}\nX={case.X!r}\ny={case.y!r}\n"
         f"l2={case.l2!r} sample_weight={case.sample_weight!r}")


def check_float64(case):
    model, p, X, y = case.model, case.params, case.X, case.y
    describe(case)
    p_before, X_before, y_before = p.copy(), X.copy(), np.copy(y)

    value, grad = gd.value_and_grad(model, p, X, y, **case.kwargs())
    assert isinstance(value, float)
    assert grad.dtype == np.float64 and grad.shape == (model.n_params,)

    # 1. The loss value, against the NumPy reference.
    expected = ref.loss(model, p, X, y, **case.kwargs())
    assert value == pytest.approx(expected, rel=1e-10, abs=1e-13)
    assert gd.loss(model, p, X, y, **case.kwargs()) == pytest.approx(value, rel=1e-14, abs=1e-15)
    np.testing.assert_allclose(gd.predict(model, p, X), ref.predict(model, p, X),
                               rtol=1e-10, atol=1e-13)

    # 2. The gradient, against SciPy central differences of the reference loss.
    numerical, n_skipped = ref.numerical_grad(model, p, X, y, **case.kwargs())
    keep = ~np.isnan(numerical)
    note(f"reference finite differences skipped {n_skipped} coordinates at kinks")
    err = ref.norm_rel_error(grad[keep], numerical[keep], FD_FLOOR)
    assert err <= GRAD_RTOL, f"gradient vs reference finite differences: {err:.3g}"

    # 3. The same gradient through gdcore's own check.
    report = gd.check_grad(model, p, X, y, **case.kwargs())
    note(str(report))
    assert report.n_checked + report.n_skipped == model.n_params
    np.testing.assert_array_equal(report.grad, grad)
    assert report.ok == (report.n_checked > 0 and (report.rel_error <= report.rtol
                                                   or report.max_abs_error <= report.atol))
    # Its verdict on a correct gradient must be "ok", including gradients that
    # are zero up to round-off and elu units sitting at their kink.
    assert report.ok, str(report)

    # Inputs untouched.
    np.testing.assert_array_equal(p, p_before)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)


# float32 round-off is amplified where units saturate (1 - tanh(z)**2 and
# s * (1 - s) lose digits as they approach 0), so the float32 comparison keeps
# to moderate weights, where 1e-5 is a fair bound.
F32_NOISE = (0.1,)


def check_float32(case):
    model, p64, X, y = case.model, case.params, case.X, case.y
    describe(case)
    p32 = p64.astype(np.float32)
    value64, grad64 = gd.value_and_grad(model, p64, X, y, **case.kwargs())
    value32, grad32 = gd.value_and_grad(model, p32, X, y, **case.kwargs())
    assert isinstance(value32, float)
    assert grad32.dtype == np.float32 and grad32.shape == p32.shape
    assert np.isfinite(value32) and np.all(np.isfinite(grad32))
    assert value32 == pytest.approx(value64, rel=1e-5, abs=1e-6)
    assert gd.predict(model, p32, X).dtype == np.float32
    np.testing.assert_allclose(gd.predict(model, p32, X), gd.predict(model, p64, X),
                               rtol=1e-5, atol=1e-5)
    # Where a ReLU unit or an mae residual sits within float32 round-off of
    # its kink, the two dtypes may legitimately pick different sides.
    margin = ref.kink_margin(model, p64, X, y)
    note(f"kink margin {margin:.3g}")
    if margin > 1e-4:
        err = ref.norm_rel_error(grad32.astype(np.float64), grad64, F32_FLOOR)
        assert err <= 1e-5, f"float32 vs float64 gradient: {err:.3g}"


@pytest.mark.parametrize("loss", ref.LOSSES)
@pytest.mark.parametrize("activation", ref.HIDDEN_ACTIVATIONS)
@settings(max_examples=examples(8))
@given(data=st.data())
def test_value_and_grad_float64_matches_reference(activation, loss, data):
    check_float64(data.draw(cases(activation, loss), label="case"))


@pytest.mark.parametrize("loss", ref.LOSSES)
@pytest.mark.parametrize("activation", ref.HIDDEN_ACTIVATIONS)
@settings(max_examples=examples(8))
@given(data=st.data())
def test_float32_matches_float64(activation, loss, data):
    check_float32(data.draw(cases(activation, loss, noise=F32_NOISE), label="case"))


@settings(max_examples=examples(40))
@given(data=st.data())
def test_mixed_activations_match_reference(data):
    loss = data.draw(st.sampled_from(ref.LOSSES), label="loss")
    case = data.draw(cases(None, loss, mixed=True, noise=F32_NOISE), label="case")
    check_float64(case)
    check_float32(case)


@settings(max_examples=examples(30))
@given(data=st.data())
def test_sample_weight_and_l2_definitions(data):
    """Integer weights repeat samples; l2 adds 0.5 * l2 * sum(W**2) and l2 * W to the gradient."""
    loss = data.draw(st.sampled_from(ref.LOSSES), label="loss")
    activation = data.draw(st.sampled_from(ref.HIDDEN_ACTIVATIONS), label="activation")
    case = data.draw(cases(activation, loss), label="case")
    model, p, X, y = case.model, case.params, case.X, case.y
    describe(case)
    n = X.shape[0]
    counts = np.random.default_rng(n).integers(1, 4, n)

    # Weights w_i equal repeating sample i w_i times (the weighted mean).
    v_w, g_w = gd.value_and_grad(model, p, X, y, sample_weight=counts.astype(float))
    rep = np.repeat(np.arange(n), counts)
    v_r, g_r = gd.value_and_grad(model, p, X[rep], np.asarray(y)[rep])
    assert v_w == pytest.approx(v_r, rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(g_w, g_r, rtol=1e-10, atol=1e-12)

    # Uniform weights are the plain mean; scaling all weights changes nothing.
    v0, g0 = gd.value_and_grad(model, p, X, y)
    v1, g1 = gd.value_and_grad(model, p, X, y, sample_weight=np.full(n, 3.5))
    assert v1 == pytest.approx(v0, rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(g1, g0, rtol=1e-10, atol=1e-12)

    # l2: the penalty on weights only, never on biases.
    l2 = 0.37
    v2, g2 = gd.value_and_grad(model, p, X, y, l2=l2)
    W_sq = sum(float((W ** 2).sum()) for W, _ in model.unpack(p.copy()))
    assert v2 == pytest.approx(v0 + 0.5 * l2 * W_sq, rel=1e-12, abs=1e-14)
    penalty_grad = np.zeros_like(p)
    for (W, _), (Wp, _) in zip(model.unpack(penalty_grad), model.unpack(p.copy())):
        W[...] = l2 * Wp
    np.testing.assert_allclose(g2, g0 + penalty_grad, rtol=1e-10, atol=1e-12)
