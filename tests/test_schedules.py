"""Tests of gdcore.schedules: values against formulas written here, the call and
construction contracts, their use by the optimizers, and torch's StepLR and
ExponentialLR when torch is installed."""

import math
import re

import numpy as np
import pytest

import gdcore as gd
from gdcore import schedules
from optim_reference import ReferenceOptimizer

STEPS = np.arange(0, 260)


# The formulas, written from their definitions ------------------------------------------
def step_decay_formula(t, init, step_size, gamma):
    return init * gamma ** (t // step_size)  # torch's StepLR


def exponential_formula(t, init, rate, transition_steps, staircase):
    exponent = t // transition_steps if staircase else t / transition_steps
    return init * rate ** exponent


def inverse_scaling_formula(t, init, power_t):
    return init / (t + 1) ** power_t


def warmup_cosine_formula(t, peak, decay_steps, warmup, init, end):
    """optax's warmup_cosine_decay_schedule: decay_steps includes the warmup."""
    if t < warmup:
        return init + (peak - init) * t / warmup
    frac = min(t - warmup, decay_steps - warmup) / (decay_steps - warmup)
    return end + (peak - end) * 0.5 * (1.0 + math.cos(math.pi * frac))


CASES = [
    ("constant", gd.constant(0.3), lambda t: 0.3),
    ("step_decay", gd.step_decay(0.1, 30), lambda t: step_decay_formula(t, 0.1, 30, 0.1)),
    ("step_decay-gamma", gd.step_decay(0.5, 7, 0.8),
     lambda t: step_decay_formula(t, 0.5, 7, 0.8)),
    ("step_decay-gamma1", gd.step_decay(0.5, 7, 1.0), lambda t: 0.5),
    ("exponential", gd.exponential_decay(0.2, 0.99),
     lambda t: exponential_formula(t, 0.2, 0.99, 1, False)),
    ("exponential-transition", gd.exponential_decay(0.2, 0.5, 25),
     lambda t: exponential_formula(t, 0.2, 0.5, 25, False)),
    ("exponential-staircase", gd.exponential_decay(0.2, 0.5, 25, staircase=True),
     lambda t: exponential_formula(t, 0.2, 0.5, 25, True)),
    ("exponential-growth", gd.exponential_decay(1e-3, 1.01, 3),
     lambda t: exponential_formula(t, 1e-3, 1.01, 3, False)),
    ("inverse_scaling", gd.inverse_scaling(0.1), lambda t: inverse_scaling_formula(t, 0.1, 0.5)),
    ("inverse_scaling-power", gd.inverse_scaling(0.1, 0.25),
     lambda t: inverse_scaling_formula(t, 0.1, 0.25)),
    ("inverse_scaling-power0", gd.inverse_scaling(0.1, 0.0), lambda t: 0.1),
    ("warmup_cosine", gd.warmup_cosine_decay(1.0, 200, 20, 0.1, 0.01),
     lambda t: warmup_cosine_formula(t, 1.0, 200, 20, 0.1, 0.01)),
    ("warmup_cosine-defaults", gd.warmup_cosine_decay(0.5, 100),
     lambda t: warmup_cosine_formula(t, 0.5, 100, 0, 0.0, 0.0)),
    ("warmup_cosine-from0", gd.warmup_cosine_decay(2.0, 150, 50),
     lambda t: warmup_cosine_formula(t, 2.0, 150, 50, 0.0, 0.0)),
]


@pytest.mark.bitwise
@pytest.mark.parametrize("schedule, formula", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_values_match_formula(schedule, formula):
    want = np.array([formula(int(t)) for t in STEPS])
    got = np.array([schedule(int(t)) for t in STEPS])
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)
    # vectorised over an array of steps, identical to the scalar calls
    np.testing.assert_array_equal(schedule(STEPS), got)


@pytest.mark.bitwise
@pytest.mark.parametrize("schedule", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_call_types_and_shapes(schedule):
    for t in (0, 5, np.int64(17), np.int32(3)):
        value = schedule(t)
        assert type(value) is float and value >= 0
    for steps in (np.arange(12), np.arange(12).reshape(3, 4), np.arange(5, dtype=np.int32),
                  [0, 1, 2]):
        out = schedule(steps)
        assert isinstance(out, np.ndarray) and out.dtype == np.float64
        assert out.shape == np.shape(steps)
        np.testing.assert_array_equal(out.ravel(), [schedule(int(t)) for t in np.ravel(steps)])


def test_warmup_cosine_landmarks():
    s = gd.warmup_cosine_decay(peak_value=1.0, decay_steps=100, warmup_steps=10,
                               init_value=0.2, end_value=0.05)
    assert s(0) == 0.2
    assert s(5) == pytest.approx(0.6, rel=1e-15)
    assert s(10) == 1.0  # peak at the end of the warmup
    assert s(55) == pytest.approx((1.0 + 0.05) / 2, rel=1e-14)  # cosine half-way
    assert s(100) == pytest.approx(0.05, rel=1e-15)  # decay_steps counts the warmup
    assert s(101) == s(1000) == s(10**9) == pytest.approx(0.05, rel=1e-15)
    values = s(np.arange(10, 101))
    assert np.all(np.diff(values) <= 0)  # monotone decay
    assert np.all(np.diff(s(np.arange(0, 11))) > 0)  # monotone warmup


def test_step_decay_is_piecewise_constant():
    s = gd.step_decay(1.0, 10, 0.5)
    assert s(0) == s(9) == 1.0
    assert s(10) == s(19) == 0.5
    assert s(20) == 0.25


def test_exponential_staircase():
    s = gd.exponential_decay(1.0, 0.5, 10, staircase=True)
    smooth = gd.exponential_decay(1.0, 0.5, 10)
    assert s(0) == s(9) == 1.0 and s(10) == s(19) == 0.5
    assert smooth(5) == pytest.approx(0.5 ** 0.5, rel=1e-15)
    assert smooth(10) == 0.5


def test_inverse_scaling_values():
    s = gd.inverse_scaling(0.1, 0.5)
    assert s(0) == 0.1
    assert s(3) == pytest.approx(0.05, rel=1e-15)
    assert s(99) == pytest.approx(0.01, rel=1e-15)


@pytest.mark.parametrize("schedule", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_negative_step(schedule):
    with pytest.raises(ValueError, match="step"):
        schedule(-1)
    with pytest.raises(ValueError, match="step"):
        schedule(np.array([0, 3, -2]))


INVALID = [
    (gd.constant, (0.0,), {}, ValueError, "value"),
    (gd.constant, (-0.1,), {}, ValueError, "value"),
    (gd.constant, (math.nan,), {}, ValueError, "value"),
    (gd.constant, (math.inf,), {}, ValueError, "value"),
    (gd.constant, ("0.1",), {}, TypeError, "value"),
    (gd.step_decay, (0.0, 10), {}, ValueError, "init_value"),
    (gd.step_decay, (0.1, 0), {}, ValueError, "step_size"),
    (gd.step_decay, (0.1, -3), {}, ValueError, "step_size"),
    (gd.step_decay, (0.1, 2.5), {}, TypeError, "step_size"),
    (gd.step_decay, (0.1, True), {}, TypeError, "step_size"),
    (gd.step_decay, (0.1, 10), {"gamma": 0.0}, ValueError, "gamma"),
    (gd.step_decay, (0.1, 10), {"gamma": -0.5}, ValueError, "gamma"),
    (gd.step_decay, (0.1, 10), {"gamma": 1.5}, ValueError, "gamma"),
    (gd.step_decay, (0.1, 10), {"gamma": math.nan}, ValueError, "gamma"),
    (gd.step_decay, (0.1, 10), {"gamma": "0.1"}, TypeError, "gamma"),
    (gd.exponential_decay, (-1.0, 0.9), {}, ValueError, "init_value"),
    (gd.exponential_decay, (0.1, 0.0), {}, ValueError, "decay_rate"),
    (gd.exponential_decay, (0.1, -0.9), {}, ValueError, "decay_rate"),
    (gd.exponential_decay, (0.1, math.inf), {}, ValueError, "decay_rate"),
    (gd.exponential_decay, (0.1, 0.9), {"transition_steps": 0}, ValueError,
     "transition_steps"),
    (gd.exponential_decay, (0.1, 0.9), {"transition_steps": 1.0}, TypeError,
     "transition_steps"),
    (gd.exponential_decay, (0.1, 0.9), {"staircase": 1}, TypeError, "staircase"),
    (gd.inverse_scaling, (0.0,), {}, ValueError, "init_value"),
    (gd.inverse_scaling, (0.1,), {"power_t": -0.5}, ValueError, "power_t"),
    (gd.inverse_scaling, (0.1,), {"power_t": math.nan}, ValueError, "power_t"),
    (gd.inverse_scaling, (0.1,), {"power_t": None}, TypeError, "power_t"),
    (gd.warmup_cosine_decay, (0.0, 100), {}, ValueError, "peak_value"),
    (gd.warmup_cosine_decay, (1.0, 0), {}, ValueError, "decay_steps"),
    (gd.warmup_cosine_decay, (1.0, 100.0), {}, TypeError, "decay_steps"),
    (gd.warmup_cosine_decay, (1.0, 100), {"warmup_steps": -1}, ValueError, "warmup_steps"),
    (gd.warmup_cosine_decay, (1.0, 100), {"warmup_steps": 101}, ValueError, "warmup_steps"),
    (gd.warmup_cosine_decay, (1.0, 100), {"warmup_steps": 1.5}, TypeError, "warmup_steps"),
    (gd.warmup_cosine_decay, (1.0, 100), {"init_value": -0.1}, ValueError, "init_value"),
    (gd.warmup_cosine_decay, (1.0, 100), {"end_value": -0.1}, ValueError, "end_value"),
    (gd.warmup_cosine_decay, (1.0, 100), {"end_value": math.inf}, ValueError, "end_value"),
]


@pytest.mark.parametrize("factory, args, kwargs, exc, name", INVALID,
                         ids=[f"{f.__name__}-{n}-{i}" for i, (f, _, _, _, n) in
                              enumerate(INVALID)])
def test_invalid_construction(factory, args, kwargs, exc, name):
    with pytest.raises(exc, match=re.escape(name)):
        factory(*args, **kwargs)


def test_schedules_are_immutable_values():
    s = gd.step_decay(0.1, 10, 0.5)
    with pytest.raises(AttributeError):
        s.gamma = 0.9
    assert s == gd.step_decay(0.1, 10, 0.5) and hash(s) == hash(gd.step_decay(0.1, 10, 0.5))
    assert s != gd.step_decay(0.1, 10, 0.25)
    assert isinstance(s, gd.Schedule)
    assert "step_size=10" in repr(s)


def test_as_schedule():
    assert schedules.as_schedule(0.1) == gd.constant(0.1)
    s = gd.inverse_scaling(0.1)
    assert schedules.as_schedule(s) is s
    with pytest.raises(ValueError, match="learning_rate"):
        schedules.as_schedule(-1.0)
    with pytest.raises(TypeError, match="learning_rate"):
        schedules.as_schedule("fast")


# Schedules in optimizers ---------------------------------------------------------------
def test_schedule_indexes_updates_from_zero():
    """Update number t (from 0) uses schedule(t), with update and with update_inplace."""
    opt = gd.sgd(gd.step_decay(1.0, 1, 0.5))
    g = np.array([1.0, -2.0])
    p, state = np.zeros(2), opt.init(np.zeros(2))
    q, qstate = np.zeros(2), opt.init(np.zeros(2))
    for t in range(6):
        before = p.copy()
        p, state = opt.update(g, state, p)
        opt.update_inplace(g, qstate, q)
        np.testing.assert_array_equal(before - p, 0.5 ** t * g)  # exact powers of two
    np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("schedule, formula", [c[1:] for c in CASES[1:]],
                         ids=[c[0] for c in CASES[1:]])
def test_sgd_with_schedule_matches_reference(schedule, formula, rng):
    """An sgd run with a schedule equals the NumPy reference fed the formula's rates."""
    n, steps = 9, 120
    p0 = rng.normal(size=n)
    noise = rng.normal(size=(steps, n))
    opt = gd.sgd(schedule, momentum=0.9, nesterov=True, weight_decay=1e-3)
    ref = ReferenceOptimizer("sgd", momentum=0.9, nesterov=True, weight_decay=1e-3)
    p, state = p0.copy(), opt.init(p0)
    q, rstate = p0.copy(), ref.init(n)
    for t in range(steps):
        p, state = opt.update(noise[t] + 0.1 * p, state, p)
        q = ref.step(q, noise[t] + 0.1 * q, rstate, formula(t))
    assert state.step == steps
    assert np.max(np.abs(p - q)) <= 1e-12 * np.max(np.abs(q))


# torch's schedulers ---------------------------------------------------------------------
def torch_rates(torch, make_scheduler, lr, steps):
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=lr)
    scheduler = make_scheduler(opt)
    rates = []
    for _ in range(steps):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return np.array(rates)


@pytest.mark.parametrize("lr, step_size, gamma", [(0.1, 7, 0.5), (0.3, 1, 0.9), (1.0, 10, 0.1)])
def test_step_decay_matches_torch_steplr(lr, step_size, gamma):
    torch = pytest.importorskip("torch")
    want = torch_rates(torch, lambda o: torch.optim.lr_scheduler.StepLR(
        o, step_size=step_size, gamma=gamma), lr, 60)
    got = gd.step_decay(lr, step_size, gamma)(np.arange(60))
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("lr, gamma", [(0.1, 0.9), (0.01, 0.99), (1.0, 0.5)])
def test_exponential_decay_matches_torch_exponentiallr(lr, gamma):
    torch = pytest.importorskip("torch")
    want = torch_rates(torch, lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=gamma),
                       lr, 60)
    got = gd.exponential_decay(lr, gamma)(np.arange(60))
    np.testing.assert_allclose(got, want, rtol=1e-12)


class _Recording(schedules.ExponentialDecay):
    """Records what ``_rate`` is given."""

    def _rate(self, t):
        _Recording.seen.append((type(t), t.dtype, t.ndim, t.size, t.flags.c_contiguous))
        return super()._rate(t)


@pytest.mark.bitwise
@pytest.mark.parametrize("step", [0, 7, np.int64(3), np.arange(1), np.arange(5), [2, 3],
                                  np.arange(12).reshape(3, 4)[:, ::2]])
def test_one_step_and_many_take_the_same_numpy_path(step):
    """NumPy computes ** and cos with SIMD routines (SVML on AVX-512) for contiguous
    arrays and with libm for scalars and single elements: every call evaluates a
    contiguous float64 array of at least two steps, so s(k) == s(array)[i] on any CPU."""
    _Recording.seen = []
    s = _Recording(0.2, 0.99)
    s(step)
    kind, dtype, ndim, size, contiguous = _Recording.seen[-1]
    assert (kind, dtype, ndim, contiguous) == (np.ndarray, np.float64, 1, True)
    assert size >= 2


@pytest.mark.parametrize("step, exc", [(None, TypeError), (True, TypeError), ("3", TypeError),
                                       (b"3", TypeError), ({}, TypeError), (1 + 2j, TypeError),
                                       ([[1, 2], [3]], TypeError), (-1, ValueError),
                                       (math.nan, ValueError), (math.inf, ValueError),
                                       (np.array([1, -2]), ValueError)])
def test_bad_steps_are_refused_by_name(step, exc):
    with pytest.raises(exc, match="step"):
        gd.exponential_decay(0.1, 0.9)(step)


def test_huge_integer_steps_are_evaluated():
    assert gd.exponential_decay(1.0, 0.5)(10**30) == 0.0
