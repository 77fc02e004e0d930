"""Shuffled epochs: the compiled PCG64 permutation against NumPy's, and orders drawn ahead.

fit's sample orders are defined as ``default_rng``'s ``permutation(n)``;
the compiled shuffle must give the same orders and leave the generator in
the same state, and drawing the next epoch's order while an epoch trains
must change nothing but the timing.
"""

import importlib

import numpy as np
import pytest

import gdcore as gd
fit_module = importlib.import_module("gdcore.fit")  # gdcore.fit is also the function


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**63 + 5])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 64, 1000, 65_537])
def test_permutation_is_numpys_order_and_state(seed, n):
    got, expected = np.random.default_rng(seed), np.random.default_rng(seed)
    for draw in range(3):  # odd and even numbers of 32-bit draws before: a buffered half
        np.testing.assert_array_equal(fit_module._permutation(got, n), expected.permutation(n))
        assert got.bit_generator.state == expected.bit_generator.state
    expected_next = expected.integers(0, 2**62, 4)
    np.testing.assert_array_equal(got.integers(0, 2**62, 4), expected_next)


def test_permutation_after_a_buffered_32_bit_half():
    got, expected = np.random.default_rng(9), np.random.default_rng(9)
    got.integers(0, 10, dtype=np.uint32)  # leaves has_uint32 set
    expected.integers(0, 10, dtype=np.uint32)
    assert got.bit_generator.state["has_uint32"] == 1
    np.testing.assert_array_equal(fit_module._permutation(got, 5000),
                                  expected.permutation(5000))
    assert got.bit_generator.state == expected.bit_generator.state


@pytest.mark.parametrize("bits", [np.random.MT19937, np.random.Philox, np.random.PCG64DXSM])
def test_other_bit_generators_are_numpys(bits):
    got, expected = np.random.Generator(bits(3)), np.random.Generator(bits(3))
    np.testing.assert_array_equal(fit_module._permutation(got, 300), expected.permutation(300))
    np.testing.assert_array_equal(got.integers(0, 2**62, 4), expected.integers(0, 2**62, 4))


def _problem(n):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5])).astype(np.float32)
    model = gd.mlp((3, 4, 1), activation="relu", output="identity", loss="mse")
    return model, gd.init(model, 0, np.float32), X, y


def test_orders_drawn_ahead_change_nothing():
    """seed=5 draws ahead (fit's own generator); a caller's Generator never does."""
    n = fit_module._AHEAD_ROWS  # just enough rows to draw ahead
    model, params, X, y = _problem(n)
    kwargs = dict(optimizer=gd.sgd(0.01), epochs=3, batch_size=n // 4, progress=False)
    ahead = gd.fit(model, params, X, y, seed=5, **kwargs)
    caller_rng = np.random.default_rng(5)
    plain = gd.fit(model, params, X, y, seed=caller_rng, **kwargs)
    np.testing.assert_array_equal(ahead.params, plain.params)
    assert ahead.history == plain.history
    reference = np.random.default_rng(5)
    for _ in range(3):
        reference.permutation(n)
    # Resuming draws the fourth order; the caller's generator moved by three orders.
    assert ahead.opt_state.shuffle == reference.bit_generator.state
    assert plain.opt_state.shuffle == reference.bit_generator.state
    assert caller_rng.bit_generator.state == reference.bit_generator.state


def test_an_order_drawn_ahead_and_not_used_is_undrawn():
    """Early stopping after epoch 0: the order drawn for epoch 1 is never used."""
    n = fit_module._AHEAD_ROWS
    model, params, X, y = _problem(n)
    stops = []

    def stop(epoch, logs):
        stops.append(epoch)
        raise StopIteration

    res = gd.fit(model, params, X, y, optimizer=gd.sgd(0.01), epochs=4, batch_size=n // 2,
                 seed=11, callbacks=[stop], progress=False)
    assert res.status == "callback_stopped" and stops == [0]
    reference = np.random.default_rng(11)
    reference.permutation(n)
    assert res.opt_state.shuffle == reference.bit_generator.state
    # Resuming continues with the second order, as without drawing ahead.
    resumed = gd.fit(model, res.params, X, y, optimizer=gd.sgd(0.01), epochs=1,
                     batch_size=n // 2, seed=11, opt_state=res.opt_state, progress=False)
    whole = gd.fit(model, params, X, y, optimizer=gd.sgd(0.01), epochs=2, batch_size=n // 2,
                   seed=11, progress=False)
    np.testing.assert_array_equal(resumed.params, whole.params)
