"""The training driver :func:`gdcore.fit` against an independent plain-Python reference.

The reference (:func:`reference_fit`) is the loop a user would write with the
functional API: mini-batches in storage order (or one
``np.random.default_rng(seed).permutation(n)`` per epoch, drawn in sequence,
when shuffling and ``batch_size < n``), ``gd.value_and_grad`` on each batch
and ``opt.update`` for the step.  fit runs whole epochs inside one compiled
call, so the two need not agree bitwise; they must agree to ~1e-12 relative
in float64.

Everything else (statuses, callbacks, validation, plateaus, errors, progress
bars) is checked against runs of fit itself with fewer epochs, against
``gd.loss``/``gd.predict``, or against hand-derived values.

Compile cost: Numba specialises on array types, not on architectures, so
the models below are free; the file uses float64 throughout and float32 in a
few tests only.
"""

import copy
import math
import os
import re
import signal
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gdcore as gd

REL = 1e-12  # float64 agreement of fit with the reference loop
FIT = sys.modules["gdcore.fit"]

# Models (architectures cost no compilation) -------------------------------------------
REG = gd.mlp([3, 5, 1], activation="tanh")  # mse
LIN = gd.mlp([3, 1])  # linear least squares
CE = gd.mlp([3, 6, 3], activation="tanh", loss="cross_entropy")
BCE = gd.mlp([2, 1], loss="binary_cross_entropy")

# Data ---------------------------------------------------------------------------------
N = 50  # batch_size 13 leaves a partial last batch of 11
_rng = np.random.default_rng(2024)
X = _rng.normal(size=(N, 3))
Y = np.sin(X @ np.array([1.0, -0.5, 0.25])) + 0.1 * _rng.normal(size=N)
SW = _rng.uniform(0.2, 2.0, size=N)
XV = _rng.normal(size=(20, 3))
YV = np.sin(XV @ np.array([1.0, -0.5, 0.25]))
WV = _rng.uniform(0.2, 2.0, size=20)
P_REG = gd.init(REG, seed=1)
P_LIN = gd.init(LIN, seed=1)

LABELS = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)  # 3 classes
LABELS_V = (XV[:, 0] > 0).astype(np.int64) + (XV[:, 1] > 0.5)
P_CE = gd.init(CE, seed=3)

OPTIMIZERS = {
    "sgd_momentum": gd.sgd(0.05, momentum=0.9),
    "adam": gd.adam(0.01),
    "rmsprop": gd.rmsprop(0.005),
    "sgd_step_decay": gd.sgd(gd.step_decay(0.1, step_size=3, gamma=0.7)),
}


# The independent reference ------------------------------------------------------------
def reference_fit(model, params, X, y, opt, epochs, batch_size, shuffle=True, seed=0, l2=0.0,
                  sample_weight=None, max_steps=None, l2_per_sample=False):
    """Plain-Python mini-batch training with the functional API.

    Stops before step ``max_steps`` (counted over all epochs) or before the
    first step whose loss or new parameters are not finite.

    Returns
    -------
    params, state, losses (per completed epoch: batch-weight-weighted mean of
    the batch losses), lrs (the learning rate of each epoch's last step),
    stop (None, or (epoch, step) of the step it stopped before)
    """
    n = len(X)
    bs = n if batch_size is None else min(batch_size, n)
    rng = np.random.default_rng(seed)
    p = np.array(params, copy=True)
    state = opt.init(p)
    losses, lrs, taken = [], [], 0
    for epoch in range(epochs):
        order = rng.permutation(n) if (shuffle and bs < n) else np.arange(n)
        loss_sum = weight_sum = 0.0
        for s, start in enumerate(range(0, n, bs)):
            if max_steps is not None and taken == max_steps:
                return p, state, losses, lrs, (epoch, s)
            idx = order[start:start + bs]
            w = None if sample_weight is None else sample_weight[idx]
            bw = len(idx) if w is None else float(np.sum(w))
            loss, g = gd.value_and_grad(model, p, X[idx], y[idx],
                                        l2=l2 / bw if l2_per_sample else l2, sample_weight=w)
            lr = opt.learning_rate_at(state.step)
            if not np.isfinite(loss):
                return p, state, losses, lrs, (epoch, s)
            new_p, new_state = opt.update(g, state, p)
            if not np.all(np.isfinite(new_p)):
                return p, state, losses, lrs, (epoch, s)
            p, state = new_p, new_state
            taken += 1
            loss_sum += loss * bw
            weight_sum += bw
        losses.append(loss_sum / weight_sum)
        lrs.append(lr)
    return p, state, losses, lrs, None


def assert_rel_close(actual, expected, rel=REL):
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    if actual.size == 0:
        return
    scale = max(np.max(np.abs(expected)), 1e-300)
    err = np.max(np.abs(actual - expected)) / scale
    assert err <= rel, f"relative error {err:.3g} > {rel:.1g}"


def assert_same_run(a, b):
    """Bitwise identical results of two fit calls."""
    assert a.params.dtype == b.params.dtype
    np.testing.assert_array_equal(a.params, b.params)
    assert a.history.keys() == b.history.keys()
    for key in a.history:
        np.testing.assert_array_equal(a.history[key], b.history[key])
    np.testing.assert_array_equal(a.opt_state.slots, b.opt_state.slots)
    assert a.opt_state.step == b.opt_state.step
    assert (a.n_epochs, a.best_epoch, a.status) == (b.n_epochs, b.best_epoch, b.status)


def assert_history_lengths(result):
    assert result.history, "history is empty"
    for key, values in result.history.items():
        assert len(values) == result.n_epochs, key


def fit_reg(**kwargs):
    """fit on the small regression problem, with overridable defaults."""
    args = dict(optimizer=gd.adam(0.01), epochs=4, batch_size=13, seed=0)
    args.update(kwargs)
    return gd.fit(REG, P_REG, X, Y, **args)


# Reference equivalence -----------------------------------------------------------------
@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
@pytest.mark.parametrize("batch_size", [None, 1, 13], ids=["full", "sgd", "partial"])
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_matches_reference_loop(opt_name, batch_size, shuffle):
    opt = OPTIMIZERS[opt_name]
    epochs = 3
    result = gd.fit(REG, P_REG, X, Y, optimizer=opt, epochs=epochs, batch_size=batch_size,
                    shuffle=shuffle, seed=7, l2=0.01, progress=False)
    p, state, losses, lrs, stop = reference_fit(REG, P_REG, X, Y, opt, epochs, batch_size,
                                                shuffle, seed=7, l2=0.01)
    assert stop is None
    assert result.status == "completed"
    assert result.n_epochs == epochs
    assert_rel_close(result.params, p)
    assert_rel_close(result.history["loss"], losses)
    np.testing.assert_allclose(result.history["lr"], lrs, rtol=1e-15)
    assert result.opt_state.step == state.step == epochs * -(-N // (batch_size or N))
    assert_rel_close(result.opt_state.slots, state.slots)
    assert result.best_epoch == int(np.argmin(losses))
    assert set(result.history) == {"loss", "lr"}


@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
@pytest.mark.parametrize("batch_size", [None, 13], ids=["full", "partial"])
def test_matches_reference_loop_with_sample_weight(batch_size, shuffle):
    opt = gd.adam(0.02)
    result = gd.fit(REG, P_REG, X, Y, optimizer=opt, epochs=3, batch_size=batch_size,
                    shuffle=shuffle, seed=3, sample_weight=SW)
    p, state, losses, _, _ = reference_fit(REG, P_REG, X, Y, opt, 3, batch_size, shuffle,
                                           seed=3, sample_weight=SW)
    assert_rel_close(result.params, p)
    # Sample-weight-weighted mean of the batch losses.
    assert_rel_close(result.history["loss"], losses)


def test_matches_reference_loop_float32():
    opt = gd.sgd(0.05, momentum=0.9)
    p32 = P_REG.astype(np.float32)
    result = gd.fit(REG, p32, X, Y, optimizer=opt, epochs=3, batch_size=13, seed=1)
    p, state, losses, _, _ = reference_fit(REG, p32, X.astype(np.float32),
                                           Y.astype(np.float32), opt, 3, 13, seed=1)
    assert result.params.dtype == np.float32
    assert result.opt_state.slots.dtype == np.float32
    assert p.dtype == np.float32
    np.testing.assert_allclose(result.params, p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.history["loss"], losses, rtol=1e-5)


@settings(max_examples=30)
@given(n=st.integers(1, 24), batch_size=st.one_of(st.none(), st.integers(1, 30)),
       shuffle=st.booleans(), seed=st.integers(0, 2**32 - 1), epochs=st.integers(1, 3),
       opt_name=st.sampled_from(list(OPTIMIZERS)), weighted=st.booleans(),
       l2=st.sampled_from([0.0, 0.1]))
def test_matches_reference_loop_property(n, batch_size, shuffle, seed, epochs, opt_name,
                                         weighted, l2):
    rng = np.random.default_rng(seed)
    Xn, yn = rng.normal(size=(n, 3)), rng.normal(size=n)
    w = rng.uniform(0.1, 2.0, size=n) if weighted else None
    opt = OPTIMIZERS[opt_name]
    result = gd.fit(REG, P_REG, Xn, yn, optimizer=opt, epochs=epochs, batch_size=batch_size,
                    shuffle=shuffle, seed=seed, l2=l2, sample_weight=w)
    p, state, losses, _, _ = reference_fit(REG, P_REG, Xn, yn, opt, epochs, batch_size,
                                           shuffle, seed=seed, l2=l2, sample_weight=w)
    assert result.status == "completed"
    assert_rel_close(result.params, p)
    assert_rel_close(result.history["loss"], losses)
    assert result.opt_state.step == state.step


@pytest.mark.parametrize("batch_size", [1, 4, 13])
def test_shuffled_chunks_match_the_reference_loop(monkeypatch, batch_size):
    """A budget of a few rows makes chunks of 2 batches: chunk boundaries inside
    the epoch, and (batch sizes 4 and 13) a last chunk holding fewer rows."""
    row_bytes = X.itemsize * X.shape[1] + Y.itemsize + SW.itemsize
    monkeypatch.setattr(gd.kernels.gather, "CHUNK_BYTES", int(2.5 * batch_size * row_bytes))
    chunks = []

    def recorded(*args):
        chunks.append(gd.kernels.gather.chunk_rows(*args))
        return chunks[-1]

    monkeypatch.setattr(sys.modules["gdcore.fit"], "chunk_rows", recorded)
    opt = gd.adam(0.02)
    result = gd.fit(REG, P_REG, X, Y, optimizer=opt, epochs=2, batch_size=batch_size,
                    seed=5, sample_weight=SW)
    assert chunks == [2 * batch_size]
    p, state, losses, _, _ = reference_fit(REG, P_REG, X, Y, opt, 2, batch_size, True,
                                           seed=5, sample_weight=SW)
    assert_rel_close(result.params, p)
    assert_rel_close(result.history["loss"], losses)


def _fit_with_chunk_budget(monkeypatch, budget, *args, **kwargs):
    monkeypatch.setattr(gd.kernels.gather, "CHUNK_BYTES", budget)
    return gd.fit(*args, **kwargs)


@pytest.mark.bitwise
@pytest.mark.parametrize("batch_size", [1, 3, 7])
def test_chunked_epochs_equal_one_batch_per_chunk(monkeypatch, batch_size):
    """Bitwise the same as gathering batch by batch (a budget of 1 byte): with
    all-zero batches skipped mid-chunk, with labels, and through a divergence."""
    rng = np.random.default_rng(batch_size)
    weights = np.where(rng.random(N) < 0.6, 0.0, rng.uniform(0.5, 2.0, N))
    cases = [
        (REG, P_REG, X, Y, dict(optimizer=gd.adam(0.02), sample_weight=weights)),
        (CE, P_CE, X, LABELS, dict(optimizer=gd.sgd(0.1, momentum=0.9))),
        (REG, P_REG, X, Y, dict(optimizer=gd.sgd(1e6))),  # diverges
    ]
    for model, params, Xc, yc, kwargs in cases:
        runs = [_fit_with_chunk_budget(monkeypatch, budget, model, params, Xc, yc, epochs=3,
                                       batch_size=batch_size, seed=2, **kwargs)
                for budget in (1, 10_000)]
        assert runs[0].status == runs[1].status
        assert runs[0].message == runs[1].message
        np.testing.assert_array_equal(runs[0].params, runs[1].params)
        np.testing.assert_array_equal(runs[0].history["loss"], runs[1].history["loss"])
    assert runs[0].status == "diverged"


# Determinism and inputs ----------------------------------------------------------------
@pytest.mark.bitwise
def test_same_seed_is_bitwise_reproducible():
    kwargs = dict(epochs=3, batch_size=7, seed=11, validation_data=(XV, YV),
                  sample_weight=SW, l2=0.01)
    assert_same_run(fit_reg(**kwargs), fit_reg(**kwargs))


@pytest.mark.bitwise
def test_different_seed_shuffles_differently():
    a = fit_reg(epochs=2, seed=0)
    b = fit_reg(epochs=2, seed=1)
    assert not np.array_equal(a.params, b.params)
    # Without shuffling the seed is irrelevant.
    assert_same_run(fit_reg(epochs=2, seed=0, shuffle=False),
                    fit_reg(epochs=2, seed=1, shuffle=False))


def test_full_batch_is_never_shuffled():
    # batch_size >= n: one batch per epoch whatever the order, so no permutation
    # is drawn and the seed cannot matter (bitwise).
    a = fit_reg(batch_size=None, seed=0)
    b = fit_reg(batch_size=N + 5, seed=123, shuffle=True)
    c = fit_reg(batch_size=N, seed=5, shuffle=False)
    assert_same_run(a, b)
    assert_same_run(a, c)


def test_inputs_are_never_mutated():
    # float64 C-contiguous arrays take fit's no-copy fast path: the riskiest case.
    arrays = dict(params=P_REG.copy(), X=X.copy(), y=Y.copy(), sw=SW.copy(), Xv=XV.copy(),
                  yv=YV.copy(), wv=WV.copy())
    before = {k: v.copy() for k, v in arrays.items()}

    def run(a):
        return gd.fit(REG, a["params"], a["X"], a["y"], optimizer=gd.adam(0.05), epochs=3,
                      batch_size=8, sample_weight=a["sw"],
                      validation_data=(a["Xv"], a["yv"], a["wv"]))

    result = run(arrays)
    for key, value in arrays.items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    assert not np.shares_memory(result.params, arrays["params"])
    assert not np.array_equal(result.params, before["params"])  # it did train
    # Read-only inputs: any write attempt would raise; the results are the same.
    for value in arrays.values():
        value.flags.writeable = False
    assert_same_run(run(arrays), result)


def test_inputs_are_never_mutated_with_validation_fraction_and_float32():
    p32 = P_REG.astype(np.float32)
    copies = (p32.copy(), X.copy(), Y.copy(), SW.copy())
    result = gd.fit(REG, p32, X, Y, epochs=2, batch_size=16, sample_weight=SW,
                    validation_fraction=0.2)
    for value, copy in zip((p32, X, Y, SW), copies):
        np.testing.assert_array_equal(value, copy)
    assert result.params.dtype == np.float32


def test_lists_give_the_same_result_as_arrays():
    arrays = fit_reg(epochs=2, sample_weight=SW, validation_data=(XV, YV))
    lists = gd.fit(REG, P_REG.tolist(), X.tolist(), Y.tolist(), optimizer=gd.adam(0.01),
                   epochs=2, batch_size=13, seed=0, sample_weight=SW.tolist(),
                   validation_data=(XV.tolist(), YV.tolist()))
    assert lists.params.dtype == np.float64
    assert_same_run(lists, arrays)


def test_float32_runs_in_float32_and_agrees_with_float64():
    kwargs = dict(optimizer=gd.sgd(0.05), epochs=3, batch_size=13, seed=2,
                  validation_data=(XV, YV))
    r64 = gd.fit(REG, P_REG, X, Y, **kwargs)
    r32 = gd.fit(REG, P_REG.astype(np.float32), X.astype(np.float32), Y.astype(np.float32),
                 **kwargs)
    assert r32.params.dtype == np.float32
    assert r32.opt_state.slots.dtype == np.float32
    assert r32.status == "completed"
    np.testing.assert_allclose(r32.params, r64.params, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r32.history["loss"], r64.history["loss"], rtol=1e-4)
    np.testing.assert_allclose(r32.history["val_loss"], r64.history["val_loss"], rtol=1e-4)


# Statuses ------------------------------------------------------------------------------
def test_completed():
    result = fit_reg(epochs=5)
    assert result.status == "completed"
    assert result.n_epochs == 5
    assert "completed" in result.message and "5" in result.message
    assert_history_lengths(result)
    assert result.best_epoch == int(np.argmin(result.history["loss"]))
    assert np.all(np.isfinite(result.params))


def _early_stopping_problem():
    """Training targets 2*X@w, validation targets X@w, starting from W = 0.

    Training moves W from 0 towards 2w, so the validation loss falls until
    W is near w and then rises: a clean overfitting curve.
    """
    rng = np.random.default_rng(1)
    Xs = rng.normal(size=(64, 3))
    w = np.array([1.0, -2.0, 0.5])
    return Xs, 2 * Xs @ w, (Xs, Xs @ w)


def test_early_stopping_returns_the_best_epoch():
    Xs, ys, val = _early_stopping_problem()
    kwargs = dict(optimizer=gd.sgd(0.01), batch_size=8, shuffle=True, seed=4,
                  validation_data=val)
    patience = 3
    result = gd.fit(LIN, np.zeros(4), Xs, ys, epochs=300, early_stopping=patience, **kwargs)
    assert result.status == "early_stopped"
    best = result.best_epoch
    assert best >= 1  # the curve fell for at least one epoch
    assert result.n_epochs == best + patience + 1
    assert_history_lengths(result)
    val_loss = result.history["val_loss"]
    assert best == int(np.argmin(val_loss))
    assert all(v >= val_loss[best] for v in val_loss[best + 1:])
    assert str(best) in result.message and "val_loss" in result.message
    # Exactly the parameters of the best epoch: a run of best + 1 epochs.
    short = gd.fit(LIN, np.zeros(4), Xs, ys, epochs=best + 1, **kwargs)
    np.testing.assert_array_equal(result.params, short.params)
    assert short.history["val_loss"][-1] == val_loss[best]
    np.testing.assert_allclose(gd.loss(LIN, result.params, *val), val_loss[best], rtol=REL)
    # ... with the optimizer state of that epoch.
    assert result.opt_state.step == short.opt_state.step
    np.testing.assert_array_equal(result.opt_state.slots, short.opt_state.slots)


def test_early_stopping_with_a_nonfinite_monitored_loss_returns_the_last_epoch():
    """Finite training, but the validation loss overflows to Inf every epoch: no
    epoch is best, and early stopping returns the last epoch's parameters."""
    model = gd.mlp([3, 1], activation="identity")
    kwargs = dict(model=model, params=P_LIN, X=X, y=Y, optimizer=gd.sgd(0.01), batch_size=8)
    result = gd.fit(validation_data=(X * 1e200, Y), early_stopping=2, epochs=10, **kwargs)
    assert result.status == "early_stopped"
    assert result.history["val_loss"] == [np.inf, np.inf]
    assert result.best_epoch is None
    assert result.n_epochs == 2
    assert "NaN or Inf" in result.message and "epoch 1" in result.message
    assert "None" not in result.message
    assert result.params is not None
    assert_same_as_shorter_run(result, validation_data=(X * 1e200, Y), **kwargs)


def test_early_stopping_not_triggered_completes():
    Xs, ys, val = _early_stopping_problem()
    result = gd.fit(LIN, np.zeros(4), Xs, ys, optimizer=gd.sgd(0.01), epochs=3, batch_size=8,
                    validation_data=(Xs, ys), early_stopping=2)
    assert result.status == "completed"
    assert result.n_epochs == 3
    assert result.best_epoch == 2  # the training targets themselves keep improving


def test_callback_stop_iteration():
    def stop_at_2(epoch, logs):
        if epoch == 2:
            raise StopIteration

    result = fit_reg(epochs=6, callbacks=stop_at_2)
    assert result.status == "callback_stopped"
    assert result.n_epochs == 3
    assert_history_lengths(result)
    assert "StopIteration" in result.message
    three = fit_reg(epochs=3)
    np.testing.assert_array_equal(result.params, three.params)
    assert result.opt_state.step == three.opt_state.step
    np.testing.assert_array_equal(result.history["loss"], three.history["loss"])


def test_keyboard_interrupt_from_callback():
    """A KeyboardInterrupt raised by a callback after epoch 2 has completed.

    Asserted: status "interrupted", n_epochs == 3 (epochs 0, 1, 2 completed),
    the parameters, optimizer state and history of a 3-epoch run, and no
    exception escaping fit.
    """
    calls = []

    def interrupt_at_2(epoch, logs):
        calls.append(epoch)
        if epoch == 2:
            raise KeyboardInterrupt

    result = fit_reg(epochs=6, callbacks=[interrupt_at_2], validation_data=(XV, YV))
    assert calls == [0, 1, 2]
    assert result.status == "interrupted"
    assert result.n_epochs == 3
    assert "interrupted" in result.message
    assert_history_lengths(result)
    three = fit_reg(epochs=3, validation_data=(XV, YV))
    np.testing.assert_array_equal(result.params, three.params)
    np.testing.assert_array_equal(result.opt_state.slots, three.opt_state.slots)
    assert result.opt_state.step == three.opt_state.step
    np.testing.assert_array_equal(result.history["val_loss"], three.history["val_loss"])


def test_callback_exception_propagates_with_the_result_attached():
    def fail_at_2(epoch, logs):
        if epoch == 2:
            raise RuntimeError("disk full")

    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(RuntimeError, match="disk full") as info:
        fit_reg(epochs=6, callbacks=[fail_at_2], validation_data=(XV, YV))
    assert signal.getsignal(signal.SIGINT) is previous
    result = info.value.fit_result
    assert result.status == "callback_failed"
    assert result.n_epochs == 3
    assert "RuntimeError" in result.message and "epoch 2" in result.message
    assert_history_lengths(result)
    three = fit_reg(epochs=3, validation_data=(XV, YV))
    np.testing.assert_array_equal(result.params, three.params)
    np.testing.assert_array_equal(result.opt_state.slots, three.opt_state.slots)
    assert result.opt_state.step == three.opt_state.step
    assert result.history == three.history
    if sys.version_info >= (3, 11):
        assert any("fit_result" in note for note in info.value.__notes__)


# Ctrl-C --------------------------------------------------------------------------------
@pytest.mark.bitwise
@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
def test_ctrl_c_between_two_calls_returns_the_last_completed_step(monkeypatch, shuffle):
    """A real SIGINT after the 6th compiled call (epoch 1, after 2 of its 4 batches,
    one batch per call): the parameters and optimizer state after step 6, the
    history of epoch 0, and the SIGINT handler restored."""
    monkeypatch.setattr(FIT, "_SLICE_SECONDS", 0.0)  # one chunk per call
    monkeypatch.setattr(gd.kernels.gather, "CHUNK_BYTES", 1)  # one batch per chunk
    calls = []
    resize = FIT._Trainer.resize

    def resize_and_interrupt(self, seconds, batches):
        calls.append(batches)
        if len(calls) == 6:
            os.kill(os.getpid(), signal.SIGINT)
        resize(self, seconds, batches)

    monkeypatch.setattr(FIT._Trainer, "resize", resize_and_interrupt)
    previous = signal.getsignal(signal.SIGINT)
    opt = gd.adam(0.01)
    result = fit_reg(epochs=5, batch_size=13, shuffle=shuffle, optimizer=opt, seed=3)
    assert signal.getsignal(signal.SIGINT) is previous
    assert calls == [1] * 6
    assert result.status == "interrupted"
    assert "in epoch 1 after 2 of 4 batches" in result.message, result.message
    assert result.n_epochs == 1
    assert_history_lengths(result)
    assert result.opt_state.step == 6
    p, state, losses, _, stop = reference_fit(REG, P_REG, X, Y, opt, 5, 13, shuffle, seed=3,
                                              max_steps=6)
    assert stop == (1, 2)
    assert_rel_close(result.params, p)
    assert_rel_close(result.opt_state.slots, state.slots)
    assert_rel_close(result.history["loss"], losses)


def test_ctrl_c_during_a_long_epoch_returns_the_steps_taken():
    """A SIGINT from another thread 1 s into an epoch of several seconds: fit
    stops inside the epoch (it returns within a call of about 0.25 s) with the
    steps taken so far, not the initial parameters."""
    rng = np.random.default_rng(0)
    model = gd.mlp([20, 512, 512, 1], activation="tanh")
    Xl, yl = rng.normal(size=(100_000, 20)), rng.normal(size=100_000)
    p0 = gd.init(model, seed=0)
    gd.fit(model, p0, Xl[:64], yl[:64], epochs=1)  # compiled before the timer starts
    previous = signal.getsignal(signal.SIGINT)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    t0 = time.perf_counter()
    timer.start()
    try:
        result = gd.fit(model, p0, Xl, yl, epochs=1, batch_size=32)
    finally:
        timer.cancel()
    elapsed = time.perf_counter() - t0
    assert signal.getsignal(signal.SIGINT) is previous
    assert result.status == "interrupted", result.message
    found = re.search(r"in epoch 0 after (\d+) of (\d+) batches", result.message)
    assert found, result.message
    done, total = int(found[1]), int(found[2])
    assert 0 < done < total, (done, total, elapsed)
    assert result.n_epochs == 0 and result.history["loss"] == []
    assert result.opt_state.step == done
    assert np.all(np.isfinite(result.params))
    assert not np.array_equal(result.params, p0)


def test_fit_in_another_thread_leaves_the_signal_handlers_alone(monkeypatch):
    monkeypatch.setattr(FIT, "_SLICE_SECONDS", 0.0)  # many calls: the handler would be armed
    previous = signal.getsignal(signal.SIGINT)
    results = []
    thread = threading.Thread(target=lambda: results.append(fit_reg(epochs=3)))
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGINT) is previous
    assert_same_run(results[0], fit_reg(epochs=3))


@pytest.mark.bitwise
@pytest.mark.parametrize("slicing", ["one batch", "three batches"])
def test_sliced_epochs_equal_one_call_epochs_bitwise(monkeypatch, slicing):
    """Epochs run in calls of one batch (every other call starts inside a chunk
    of 2 batches and gathers it again), or of up to 3 batches (cut back to a
    chunk boundary), give bitwise the results of one call per epoch: with
    all-zero batches skipped, labels, validation, and through a divergence."""
    calls = []

    class CountedRunners:  # fit looks its kernel up as epoch_runner[codes]
        def __getitem__(self, codes_):
            runner = gd.kernels.epoch.epoch_runner[codes_]

            def counted(*args):
                calls.append(args[6][2:])  # batches = (order, batch_size, first, last)
                return runner(*args)

            return counted

    monkeypatch.setattr(FIT, "epoch_runner", CountedRunners())
    row_bytes = X.itemsize * X.shape[1] + Y.itemsize + SW.itemsize
    monkeypatch.setattr(gd.kernels.gather, "CHUNK_BYTES", int(2.5 * 4 * row_bytes))
    if slicing == "three batches":
        def three(self, seconds, batches):
            if FIT._SLICE_SECONDS < math.inf:
                self.slice = 3
        monkeypatch.setattr(FIT._Trainer, "resize", three)
    rng = np.random.default_rng(4)
    weights = np.where(rng.random(N) < 0.5, 0.0, rng.uniform(0.5, 2.0, N))
    cases = [
        (REG, P_REG, X, Y, dict(optimizer=gd.adam(0.02), sample_weight=weights,
                                validation_data=(XV, YV))),
        (CE, P_CE, X, LABELS, dict(optimizer=gd.sgd(0.1, momentum=0.9), shuffle=False)),
        (REG, P_REG, X, Y, dict(optimizer=gd.sgd(1e6))),  # diverges
    ]
    for model, params, Xc, yc, kwargs in cases:
        runs = []
        for seconds in (math.inf, 0.0):
            monkeypatch.setattr(FIT, "_SLICE_SECONDS", seconds)
            calls.clear()
            runs.append(gd.fit(model, params, Xc, yc, epochs=3, batch_size=4, seed=2,
                               **kwargs))
            spans = {last - first for first, last in calls if last > first}
            # 13 batches an epoch: whole epochs, or at most 3 batches per call.
            assert spans == {13} if seconds == math.inf else max(spans) <= 3
        assert_same_run(runs[0], runs[1])
        assert runs[0].message == runs[1].message
    assert runs[0].status == "diverged"


def _diverging_regression():
    rng = np.random.default_rng(5)
    Xd = 3 * rng.normal(size=(40, 3))
    return Xd, 10 * rng.normal(size=40)


def assert_same_as_shorter_run(result, **kwargs):
    """``result`` holds exactly the state of a completed fit of ``result.n_epochs`` epochs."""
    shorter = gd.fit(epochs=max(result.n_epochs, 1), **kwargs)
    if result.n_epochs == 0:
        np.testing.assert_array_equal(result.params, kwargs["params"])
        assert result.opt_state.step == 0
        np.testing.assert_array_equal(result.opt_state.slots, 0)
        assert all(values == [] for values in result.history.values())
        return
    assert shorter.status == "completed"
    np.testing.assert_array_equal(result.params, shorter.params)
    np.testing.assert_array_equal(result.opt_state.slots, shorter.opt_state.slots)
    np.testing.assert_array_equal(result.opt_state.scalars, shorter.opt_state.scalars)
    assert result.history == shorter.history


def test_diverged_full_batch_goes_back_to_parameters_that_took_a_finite_step():
    """With full batches, a failing epoch fails at its only step, from the
    parameters of the epoch before: those are already bad, so fit returns the
    state one epoch further back."""
    Xd, yd = _diverging_regression()
    opt = gd.sgd(1e3)
    result = gd.fit(LIN, P_LIN, Xd, yd, optimizer=opt, epochs=200, batch_size=None)
    assert result.status == "diverged"
    e = result.n_epochs
    assert 0 < e < 200
    assert_history_lengths(result)
    failed = e + 1  # the failing epoch
    assert re.search(rf"\bepoch {failed}\b", result.message), result.message
    assert re.search(r"\bstep 0\b", result.message), result.message
    assert f"end of epoch {e - 1}" in result.message
    assert "learning rate 1000" in result.message
    assert np.all(np.isfinite(result.params))
    assert np.isfinite(gd.loss(LIN, result.params, Xd, yd))
    assert result.opt_state.step == e
    assert_same_as_shorter_run(result, model=LIN, params=P_LIN, X=Xd, y=yd, optimizer=opt,
                               batch_size=None)
    # ... and the independent loop fails at the same step.
    _, _, _, _, stop = reference_fit(LIN, P_LIN, Xd, yd, opt, 200, None)
    assert stop == (failed, 0)


def test_diverged_after_a_finite_blow_up_returns_parameters_with_a_finite_loss():
    """The learning rate grows 1e8-fold per step: the parameters stay finite
    while the loss overflows.  The parameters of the last completed epoch are
    the ones whose loss is Inf; fit returns those before them, whose loss is
    finite, with the matching n_epochs, history and optimizer state."""
    opt = gd.sgd(gd.exponential_decay(1e-3, 1e8))
    result = gd.fit(LIN, P_LIN, X, Y, optimizer=opt, epochs=30, batch_size=None)
    assert result.status == "diverged"
    assert "loss became NaN or Inf" in result.message
    assert np.isfinite(gd.loss(LIN, result.params, X, Y))
    assert_history_lengths(result)
    assert result.opt_state.step == result.n_epochs
    assert_same_as_shorter_run(result, model=LIN, params=P_LIN, X=X, y=Y, optimizer=opt,
                               batch_size=None)


@pytest.mark.parametrize("batch_size, shuffle", [(16, False), (16, True), (8, True)])
def test_diverged_mini_batch_returns_the_end_of_an_epoch(batch_size, shuffle):
    """A failure inside an epoch returns the state at the end of the epoch before
    (two before when the failing epoch's first step failed: (16, False) fails at
    step 0), matching n_epochs, history and opt_state, not the last finite step."""
    Xd, yd = _diverging_regression()
    opt = gd.sgd(1e3)
    result = gd.fit(LIN, P_LIN, Xd, yd, optimizer=opt, epochs=200, batch_size=batch_size,
                    shuffle=shuffle, seed=9)
    assert result.status == "diverged"
    _, _, _, _, stop = reference_fit(LIN, P_LIN, Xd, yd, opt, 200, batch_size, shuffle,
                                     seed=9)
    assert stop is not None
    epoch, step = stop
    assert result.n_epochs == (epoch if step > 0 else epoch - 1)
    assert_history_lengths(result)
    assert re.search(rf"\bepoch {epoch}\b", result.message), result.message
    assert re.search(rf"\bstep {step}\b", result.message), result.message
    assert f"end of epoch {result.n_epochs - 1}" in result.message
    assert "learning rate 1000" in result.message
    assert np.all(np.isfinite(result.params))
    assert_same_as_shorter_run(result, model=LIN, params=P_LIN, X=Xd, y=yd, optimizer=opt,
                               batch_size=batch_size, shuffle=shuffle, seed=9)


def test_diverged_in_the_update_returns_the_state_before_the_epoch():
    # Sample 0 has zero residual at W = b = 0 (a finite no-op step); sample 1's
    # gradient is -2e200 on W, so the step W += 1e200 * 2e200 overflows while
    # the loss (1.0) is finite: the failure is detected in the update, in
    # epoch 0, so fit returns the initial parameters and optimizer state.
    X1 = np.array([[1.0], [1e200], [1.0]])
    y1 = np.array([0.0, 1.0, 0.0])
    model = gd.mlp([1, 1])
    opt = gd.sgd(1e200, momentum=0.5)
    result = gd.fit(model, np.zeros(2), X1, y1, optimizer=opt, epochs=2, batch_size=1,
                    shuffle=False)
    assert result.status == "diverged"
    assert "step 1" in result.message and "gradient or update" in result.message
    assert "initial parameters" in result.message
    _, _, _, _, stop = reference_fit(model, np.zeros(2), X1, y1, opt, 2, 1, False)
    assert stop == (0, 1)
    assert result.n_epochs == 0
    np.testing.assert_array_equal(result.params, np.zeros(2))
    assert result.opt_state.step == 0
    np.testing.assert_array_equal(result.opt_state.slots, 0)


# Callbacks -----------------------------------------------------------------------------
def test_callbacks_get_epoch_and_logs_in_order():
    seen = []

    def record(epoch, logs):
        seen.append(("a", epoch, dict(logs)))

    def second(epoch, logs):
        seen.append(("b", epoch, None))

    result = fit_reg(epochs=4, callbacks=[record, second], validation_data=(XV, YV))
    assert [(who, e) for who, e, _ in seen] == [
        ("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3), ("b", 3)]
    logs = [entry for who, _, entry in seen if who == "a"]
    for e, entry in enumerate(logs):
        assert {"loss", "val_loss", "lr"} <= set(entry)
        assert entry["loss"] == result.history["loss"][e]
        assert entry["val_loss"] == result.history["val_loss"][e]
        assert entry["epoch_time"] >= 0
        # The params of that epoch: the val_loss was measured on them, without l2.
        np.testing.assert_allclose(gd.loss(REG, entry["params"], XV, YV), entry["val_loss"],
                                   rtol=REL)
    np.testing.assert_array_equal(logs[-1]["params"], result.params)
    one = fit_reg(epochs=1)
    np.testing.assert_array_equal(logs[0]["params"], one.params)


def test_single_callable_and_logs_params_are_a_copy():
    seen = []

    def vandal(epoch, logs):
        seen.append(epoch)
        logs["params"][:] = np.nan  # must not reach the training state

    result = fit_reg(epochs=3, callbacks=vandal)
    assert seen == [0, 1, 2]
    assert result.status == "completed"
    np.testing.assert_array_equal(result.params, fit_reg(epochs=3).params)


def test_logs_without_validation_have_no_val_keys():
    keys = []
    fit_reg(epochs=1, callbacks=lambda e, logs: keys.append(set(logs)))
    assert "loss" in keys[0]
    assert not any(k.startswith("val_") for k in keys[0])


# Validation ----------------------------------------------------------------------------
def test_validation_fraction():
    result = fit_reg(epochs=3, validation_fraction=0.2)
    assert {"loss", "lr", "val_loss"} == set(result.history)
    assert_history_lengths(result)
    assert np.all(np.isfinite(result.history["val_loss"]))
    assert result.best_epoch == int(np.argmin(result.history["val_loss"]))
    assert_same_run(result, fit_reg(epochs=3, validation_fraction=0.2))
    # The held-out samples are not trained on: the training loss differs from a
    # run on all samples.
    assert result.history["loss"][0] != fit_reg(epochs=1).history["loss"][0]


def test_validation_data_and_fraction_together_raise():
    with pytest.raises(ValueError, match="validation_data.*validation_fraction|"
                                         "validation_fraction.*validation_data"):
        fit_reg(validation_data=(XV, YV), validation_fraction=0.2)


def test_val_loss_is_gd_loss_without_l2():
    result = fit_reg(epochs=3, l2=0.5, validation_data=(XV, YV))
    final = result.history["val_loss"][-1]
    np.testing.assert_allclose(final, gd.loss(REG, result.params, XV, YV), rtol=REL)
    assert abs(final - gd.loss(REG, result.params, XV, YV, l2=0.5)) > 1e-3
    assert "val_accuracy" not in result.history  # mse


def test_weighted_validation_data():
    result = fit_reg(epochs=2, validation_data=(XV, YV, WV))
    final = result.history["val_loss"][-1]
    np.testing.assert_allclose(final, gd.loss(REG, result.params, XV, YV, sample_weight=WV),
                               rtol=REL)
    assert abs(final - gd.loss(REG, result.params, XV, YV)) > 1e-6  # the weights count


@pytest.mark.parametrize("weighted", [False, True])
def test_val_accuracy_cross_entropy_equals_predict(weighted):
    val = (XV, LABELS_V, WV) if weighted else (XV, LABELS_V)
    result = gd.fit(CE, P_CE, X, LABELS, optimizer=gd.adam(0.02), epochs=5, batch_size=10,
                    validation_data=val)
    assert result.status == "completed"
    assert set(result.history) == {"loss", "lr", "val_loss", "val_accuracy"}
    assert_history_lengths(result)
    hits = gd.predict(CE, result.params, XV).argmax(axis=1) == LABELS_V
    w = WV if weighted else np.ones(len(XV))
    np.testing.assert_allclose(result.history["val_accuracy"][-1], np.sum(w * hits) / w.sum(),
                               rtol=1e-12)
    np.testing.assert_allclose(result.history["val_loss"][-1],
                               gd.loss(CE, result.params, *val[:2],
                                       sample_weight=val[2] if weighted else None), rtol=REL)


@pytest.mark.parametrize("n_out", [1, 2], ids=["binary", "multilabel"])
def test_val_accuracy_binary_cross_entropy_equals_predict(n_out):
    # Multi-label models: the fraction of correct (sample, output) pairs.
    model = BCE if n_out == 1 else gd.mlp([2, 4, 2], "tanh", loss="binary_cross_entropy")
    rng = np.random.default_rng(8)
    dirs = np.array([[1.0, -1.0], [0.5, 1.0]])[:n_out].T
    Xb = rng.normal(size=(60, 2))
    yb = (Xb @ dirs > 0).astype(float)
    Xbv = rng.normal(size=(30, 2))
    ybv = (Xbv @ dirs > 0).astype(float)
    ybv[:4] = 1 - ybv[:4]  # label noise: accuracy below 1
    result = gd.fit(model, gd.init(model, 0), Xb, yb, optimizer=gd.adam(0.05), epochs=4,
                    batch_size=16, validation_data=(Xbv, ybv))
    assert set(result.history) == {"loss", "lr", "val_loss", "val_accuracy"}
    hits = (gd.predict(model, result.params, Xbv) > 0.5) == (ybv > 0.5)
    assert 0 < hits.mean() < 1  # a non-trivial check
    np.testing.assert_allclose(result.history["val_accuracy"][-1], hits.mean(), rtol=1e-12)


# Learning rate on plateau --------------------------------------------------------------
def _at_least_squares_optimum():
    """LIN's parameters at the least-squares optimum of (X, Y): training cannot improve."""
    A = np.hstack([X, np.ones((N, 1))])
    coef = np.linalg.lstsq(A, Y, rcond=None)[0]
    params = coef.copy()  # layout: the (3, 1) weight block, then the bias
    _, g = gd.value_and_grad(LIN, params, X, Y)
    assert np.max(np.abs(g)) < 1e-12, "the layout assumption about LIN's params is wrong"
    return params


def test_reduce_on_plateau_halves_the_rate_after_stalls():
    params = _at_least_squares_optimum()
    result = gd.fit(LIN, params, X, Y, optimizer=gd.sgd(0.01), epochs=8, batch_size=None,
                    lr_plateau=gd.reduce_on_plateau(factor=0.5, patience=1))
    lr = result.history["lr"]
    assert all(b <= a for a, b in zip(lr, lr[1:]))  # never increases
    assert lr[-1] < lr[0]
    # PyTorch's ReduceLROnPlateau (rel mode, no cooldown): epoch 0 improves on
    # inf, then every second stalled epoch exceeds patience=1 and halves the rate
    # for the following epochs.
    np.testing.assert_allclose(lr, [0.01, 0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025, 0.00125],
                               rtol=1e-15)


def test_reduce_on_plateau_min_scale_and_no_reduction_while_improving():
    params = _at_least_squares_optimum()
    result = gd.fit(LIN, params, X, Y, optimizer=gd.sgd(0.01), epochs=6, batch_size=None,
                    lr_plateau=gd.reduce_on_plateau(factor=0.1, patience=0, min_scale=0.05))
    # patience=0: every stalled epoch (from epoch 1 on) scales the next epoch's rate by
    # 0.1, down to 0.05 times the base rate.
    np.testing.assert_allclose(result.history["lr"], [0.01, 0.01, 0.001, 0.0005, 0.0005,
                                                      0.0005], rtol=1e-12)
    # Still descending from the initial point: the rate is never reduced.
    improving = gd.fit(LIN, P_LIN, X, Y, optimizer=gd.sgd(0.01), epochs=5, batch_size=None,
                       lr_plateau=gd.reduce_on_plateau(factor=0.5, patience=0))
    assert np.all(np.diff(improving.history["loss"]) < 0)
    assert improving.history["lr"] == [0.01] * 5


@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(factor=0.0), ValueError, "factor"),
    (dict(factor=1.0), ValueError, "factor"),
    (dict(factor=-0.5), ValueError, "factor"),
    (dict(patience=-1), ValueError, "patience"),
    (dict(patience=1.5), TypeError, "patience"),
    (dict(threshold=-1e-4), ValueError, "threshold"),
    (dict(min_scale=1.5), ValueError, "min_scale"),
    (dict(factor="half"), TypeError, "factor"),
])
def test_reduce_on_plateau_bad_arguments(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        gd.reduce_on_plateau(**kwargs)


def test_lr_plateau_must_be_a_reduce_on_plateau():
    with pytest.raises(TypeError, match="lr_plateau"):
        fit_reg(lr_plateau={"factor": 0.5})


# Optimizer names, seeds, repr ----------------------------------------------------------
@pytest.mark.parametrize("name", ["adam", "RMSprop"])
def test_optimizer_by_name_is_the_factory_default(name):
    by_name = fit_reg(optimizer=name, epochs=2)
    by_object = fit_reg(optimizer=getattr(gd, name.lower())(), epochs=2)
    assert_same_run(by_name, by_object)


def test_seed_accepts_what_numpy_seeding_accepts():
    kwargs = dict(epochs=2, validation_fraction=0.2)
    # An int and the SeedSequence of that int: the same shuffles and split.
    assert_same_run(fit_reg(seed=np.random.SeedSequence(3), **kwargs),
                    fit_reg(seed=3, **kwargs))
    # A Generator is used, and advanced, in place (not copied).
    rng = np.random.default_rng(0)
    state = copy.deepcopy(rng.bit_generator.state)
    a = fit_reg(seed=rng, **kwargs)
    assert rng.bit_generator.state != state
    assert_same_run(a, fit_reg(seed=np.random.default_rng(0), **kwargs))
    assert_same_run(a, fit_reg(seed=np.random.PCG64(0), **kwargs))
    assert not np.array_equal(a.params, fit_reg(seed=rng, **kwargs).params)
    assert fit_reg(seed=None, **kwargs).status == "completed"


def test_repr_summarises_the_parameters():
    result = fit_reg(epochs=2, validation_data=(XV, YV))
    text = repr(result)
    assert "array(" not in text
    assert "shape=(26,)" in text and "float64" in text
    assert "status='completed'" in text and "n_epochs=2" in text
    assert repr(float(f"{result.history['val_loss'][-1]:.6g}")) in text
    assert len(text) < 300


# Bad inputs ----------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, exc, pattern", [
    (dict(epochs=0), ValueError, "epochs"),
    (dict(epochs=2.5), TypeError, "epochs"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(batch_size=-3), ValueError, "batch_size"),
    (dict(optimizer="adamm"), ValueError, "optimizer 'adamm'.*adam, adamax"),
    (dict(optimizer="lbfgs"), ValueError, "optimizer 'lbfgs'"),
    (dict(optimizer="sgd"), ValueError, r"optimizer='sgd'.*gd\.sgd\(learning_rate\)"),
    (dict(optimizer=3), TypeError, "optimizer"),
    (dict(optimizer=gd.adam), TypeError, "optimizer"),
    (dict(early_stopping=0), ValueError, "early_stopping"),
    (dict(callbacks=[print, 3]), TypeError, r"callbacks\[1\]"),
    (dict(callbacks=["not callable"]), TypeError, "callbacks"),
    (dict(validation_fraction=1.0), ValueError, "validation_fraction"),
    (dict(validation_fraction=-0.1), ValueError, "validation_fraction"),
    (dict(validation_fraction=0.001), ValueError, "validation_fraction"),  # 0 samples
    (dict(shuffle="yes"), TypeError, "shuffle"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed=True), TypeError, "seed"),
    (dict(seed=1.5), TypeError, "seed"),
    (dict(seed="0"), TypeError, "seed"),
    (dict(l2=-0.1), ValueError, "l2"),
    (dict(progress="yes"), TypeError, "progress"),
    (dict(validation_data=XV), TypeError, "validation_data"),
    (dict(validation_data=(XV,)), TypeError, "validation_data"),
    (dict(validation_data=(XV, YV[:5])), ValueError, "^validation_data.*y"),
    (dict(sample_weight=SW[:10]), ValueError, "sample_weight"),
    (dict(sample_weight=-SW), ValueError, "sample_weight"),
])
def test_bad_options_raise_naming_the_argument(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fit_reg(**kwargs)


def test_bad_data_raise_naming_the_argument():
    Xn = X.copy()
    Xn[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"\bX\b"):
        gd.fit(REG, P_REG, Xn, Y)
    with pytest.raises(ValueError, match=r"\by\b"):
        gd.fit(REG, P_REG, X, Y[:-1])
    with pytest.raises(ValueError, match=r"\by\b"):
        gd.fit(REG, P_REG, X, np.stack([Y, Y], axis=1))
    with pytest.raises(ValueError, match=r"^validation_data: .*\bX\b"):
        gd.fit(REG, P_REG, X, Y, validation_data=(Xn[:20], YV))
    pn = P_REG.copy()
    pn[3] = np.nan
    with pytest.raises(ValueError, match="params"):
        gd.fit(REG, pn, X, Y)
    with pytest.raises(ValueError, match="params"):
        gd.fit(REG, P_REG[:-1], X, Y)
    with pytest.raises(ValueError, match=r"\bX\b"):
        gd.fit(REG, P_REG, X[:, :2], Y)
    with pytest.raises(ValueError, match=r"\by\b.*label"):
        gd.fit(CE, P_CE, X, LABELS + 1)  # label 3 for 3 classes
    assert np.isnan(Xn[7, 1]) and np.isnan(pn[3])  # untouched


def test_non_iterable_callbacks_raise_naming_the_argument():
    with pytest.raises(TypeError, match="callbacks"):
        fit_reg(callbacks=5)


# Progress bar --------------------------------------------------------------------------
def test_progress_false_prints_nothing(capsys):
    fit_reg(epochs=2, progress=False)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_progress_true_writes_a_bar_to_stderr(capsys):
    pytest.importorskip("tqdm")
    fit_reg(epochs=3, progress=True, validation_data=(XV, YV))
    captured = capsys.readouterr()
    assert "epoch" in captured.err
    assert "3/3" in captured.err
    assert "val_loss" in captured.err
    assert captured.out == ""


def test_progress_none_is_silent_when_stderr_is_not_a_terminal(capsys):
    import sys
    assert not sys.stderr.isatty()
    fit_reg(epochs=2, progress=None)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


# Sample weights ------------------------------------------------------------------------
def test_first_epoch_loss_is_the_weighted_loss_full_batch():
    result = fit_reg(epochs=2, batch_size=None, sample_weight=SW, l2=0.1)
    np.testing.assert_allclose(result.history["loss"][0],
                               gd.loss(REG, P_REG, X, Y, l2=0.1, sample_weight=SW), rtol=REL)
    assert abs(result.history["loss"][0] - gd.loss(REG, P_REG, X, Y, l2=0.1)) > 1e-6


@pytest.mark.parametrize("opt_name", ["adam", "sgd_momentum"])
def test_zero_weight_samples_do_not_influence_full_batch_training(opt_name):
    opt = OPTIMIZERS[opt_name]
    keep = np.ones(N, dtype=bool)
    keep[::3] = False
    w = SW * keep
    weighted = gd.fit(REG, P_REG, X, Y, optimizer=opt, epochs=5, batch_size=None,
                      sample_weight=w, l2=0.01)
    dropped = gd.fit(REG, P_REG, X[keep], Y[keep], optimizer=opt, epochs=5, batch_size=None,
                     sample_weight=SW[keep], l2=0.01)
    np.testing.assert_allclose(weighted.params, dropped.params, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(weighted.history["loss"], dropped.history["loss"], rtol=1e-10)


def test_schedule_follows_the_step_count_when_a_batch_is_skipped():
    rng = np.random.default_rng(0)
    X8, y8 = rng.normal(size=(8, 3)), rng.normal(size=8)
    w = np.ones(8)
    w[:4] = 0  # the first batch of 4 has weight 0: skipped, no step
    opt = gd.sgd(gd.step_decay(0.1, step_size=1, gamma=0.5))
    result = gd.fit(LIN, P_LIN, X8, y8, optimizer=opt, epochs=3, batch_size=4, shuffle=False,
                    sample_weight=w)
    assert result.opt_state.step == 3
    # opt.update's convention: update number t uses schedule(t).
    p, state, _, lrs, _ = reference_fit(LIN, P_LIN, X8[4:], y8[4:], opt, 3, None)
    assert lrs == [0.1, 0.05, 0.025]
    np.testing.assert_allclose(result.history["lr"], lrs, rtol=1e-15)
    assert_rel_close(result.params, p)


def test_all_zero_training_weights_after_split_raise():
    w = np.zeros(20)
    w[0] = 1.0  # positive total, but seed 0's split puts sample 0 in the validation part
    X20, y20 = X[:20], Y[:20]
    with pytest.raises(ValueError, match="sample_weight|validation_fraction"):
        result = gd.fit(LIN, P_LIN, X20, y20, sample_weight=w, validation_fraction=0.5,
                        epochs=2, seed=0)
        assert not np.isnan(result.history["loss"]).any(), result.history


# Classification smoke tests ------------------------------------------------------------
def test_digits_mlp_reaches_90_percent():
    datasets = pytest.importorskip("sklearn.datasets")
    model_selection = pytest.importorskip("sklearn.model_selection")
    digits = datasets.load_digits()
    Xtr, Xte, ytr, yte = model_selection.train_test_split(
        digits.data / 16.0, digits.target, test_size=0.25, random_state=0,
        stratify=digits.target)
    model = gd.mlp([64, 32, 10], activation="relu", loss="cross_entropy")
    result = gd.fit(model, gd.init(model, seed=0), Xtr, ytr, optimizer=gd.adam(), epochs=20,
                    batch_size=32, seed=0, validation_data=(Xte, yte))
    assert result.status == "completed"
    accuracy = np.mean(gd.predict(model, result.params, Xte).argmax(axis=1) == yte)
    assert accuracy >= 0.9
    np.testing.assert_allclose(result.history["val_accuracy"][-1], accuracy, rtol=1e-12)
    assert result.history["loss"][-1] < result.history["loss"][0]


def test_binary_cross_entropy_separable_toy_set():
    rng = np.random.default_rng(3)
    Xb = rng.normal(size=(200, 2))
    margin = Xb @ np.array([2.0, -1.0]) + 0.3
    keep = np.abs(margin) > 0.2  # a clear gap between the classes
    Xb, yb = Xb[keep], (margin[keep] > 0).astype(float)
    result = gd.fit(BCE, gd.init(BCE, seed=0), Xb, yb, optimizer=gd.adam(0.05), epochs=30,
                    batch_size=16)
    assert result.status == "completed"
    accuracy = np.mean((gd.predict(BCE, result.params, Xb)[:, 0] > 0.5) == (yb > 0.5))
    assert accuracy >= 0.95


def test_ctrl_c_during_the_first_validation_keeps_the_epoch(monkeypatch):
    """A one-call epoch 0, then Ctrl-C while its validation pass runs: epoch 0 is
    kept (the flag handler is installed from the start, not from the second call)."""
    real = FIT._Trainer.validate

    def interrupted_validation(self, *args):
        os.kill(os.getpid(), signal.SIGINT)
        return real(self, *args)

    monkeypatch.setattr(FIT._Trainer, "validate", interrupted_validation)
    result = fit_reg(epochs=5, validation_data=(XV, YV))
    assert result.status == "interrupted"
    assert result.n_epochs == 1 and len(result.history["val_loss"]) == 1
    want = fit_reg(epochs=1, validation_data=(XV, YV))
    np.testing.assert_array_equal(result.params, want.params)
    np.testing.assert_array_equal(result.history["val_loss"], want.history["val_loss"])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("seed", [[1, 2], (1, 2), np.array([1, 2])])
def test_a_sequence_of_ints_seeds_like_its_seed_sequence(seed):
    """What np.random.default_rng takes: fit([1, 2]) was refused."""
    want = fit_reg(epochs=2, seed=np.random.SeedSequence([1, 2]))
    assert_same_run(fit_reg(epochs=2, seed=seed), want)


@pytest.mark.parametrize("seed", [[1.5, 2], [], [True], [[1], [2]], np.array([1.0, 2.0]), "12"])
def test_seeds_that_are_not_ints_are_refused(seed):
    with pytest.raises(TypeError, match="seed"):
        fit_reg(epochs=1, seed=seed)


# Resuming, monitors, restore_best, l2_per_sample, plateau stops ----------------------

@pytest.mark.bitwise
@pytest.mark.parametrize("opt", [gd.adam(0.01), gd.sgd(0.05, momentum=0.9, nesterov=True)],
                         ids=["adam", "sgd-nesterov"])
def test_resumed_fit_is_bitwise_one_longer_fit(opt):
    """fit for 3 epochs, then 4 more from its params and opt_state, is bitwise a
    7-epoch fit: moments, step count (the schedule) and shuffles continue."""
    sched = gd.exponential_decay(0.02, 0.9, transition_steps=2) if opt.name == "adam" else None
    if sched is not None:
        opt = gd.adam(sched)
    kw = dict(optimizer=opt, batch_size=13, seed=5, sample_weight=SW,
              validation_fraction=0.2)
    whole = gd.fit(CE, P_CE, X, LABELS, epochs=7, **kw)
    first = gd.fit(CE, P_CE, X, LABELS, epochs=3, **kw)
    state_before = first.opt_state.copy()
    rest = gd.fit(CE, first.params, X, LABELS, epochs=4, opt_state=first.opt_state, **kw)
    np.testing.assert_array_equal(rest.params, whole.params)
    np.testing.assert_array_equal(rest.opt_state.slots, whole.opt_state.slots)
    np.testing.assert_array_equal(rest.opt_state.scalars, whole.opt_state.scalars)
    assert rest.opt_state.shuffle == whole.opt_state.shuffle
    assert rest.history["loss"] == whole.history["loss"][3:]
    assert rest.history["val_loss"] == whole.history["val_loss"][3:]
    # The state handed in is not touched.
    np.testing.assert_array_equal(first.opt_state.slots, state_before.slots)
    assert first.opt_state.shuffle == state_before.shuffle


def test_resume_refuses_a_state_of_another_optimizer_or_size():
    res = gd.fit(REG, P_REG, X, Y, optimizer=gd.adam(0.01), epochs=1)
    with pytest.raises(ValueError, match="adam"):
        gd.fit(REG, res.params, X, Y, optimizer=gd.sgd(0.01), epochs=1,
               opt_state=res.opt_state)
    with pytest.raises((TypeError, ValueError), match="state"):
        gd.fit(REG, P_REG, X, Y, epochs=1, opt_state=(1, 2))
    bad = res.opt_state._replace(shuffle={"bit_generator": "NoSuchBitGenerator"})
    with pytest.raises(ValueError, match="opt_state.shuffle"):
        gd.fit(REG, res.params, X, Y, optimizer=gd.adam(0.01), epochs=1, opt_state=bad)


def test_l2_per_sample_matches_the_reference_loop():
    """Each batch's L2 coefficient is l2 / (its total sample weight)."""
    opt = gd.sgd(0.05, momentum=0.5)
    for sw in (None, SW):
        res = gd.fit(REG, P_REG, X, Y, optimizer=opt, epochs=3, batch_size=13, seed=1,
                     l2=0.3, l2_per_sample=True, sample_weight=sw)
        p, state, losses, _, _ = reference_fit(REG, P_REG, X, Y, opt, 3, 13, seed=1, l2=0.3,
                                               sample_weight=sw, l2_per_sample=True)
        assert_rel_close(res.params, p)
        assert_rel_close(res.history["loss"], losses)
    plain = gd.fit(REG, P_REG, X, Y, optimizer=opt, epochs=3, batch_size=13, seed=1, l2=0.3)
    assert not np.allclose(plain.params, res.params)


def _stop_epoch(values, maximize, min_delta, patience):
    """Where the early-stopping rule of fit's docstring stops, written out plainly."""
    best, waited = None, 0
    for epoch, v in enumerate(values):
        better = best is None or (v > best if maximize else v < best)
        improved = best is None or (v > best + min_delta if maximize else v < best - min_delta)
        waited = 0 if improved else waited + 1
        if better:
            best = v
        if waited >= patience:
            return epoch
    return None


@pytest.mark.parametrize("monitor, min_delta", [("val_accuracy", 0.0), ("val_accuracy", 0.05),
                                                ("val_loss", 0.01), ("loss", 1e-3)])
def test_early_stopping_follows_the_monitor_and_min_delta(monitor, min_delta):
    kw = dict(optimizer=gd.adam(0.05), batch_size=10, seed=3, validation_data=(XV, LABELS_V))
    res = gd.fit(CE, P_CE, X, LABELS, epochs=60, early_stopping=3, monitor=monitor,
                 min_delta=min_delta, **kw)
    values = res.history[monitor]
    maximize = monitor == "val_accuracy"
    stop = _stop_epoch(values, maximize, min_delta, 3)
    assert stop is not None and res.status == "early_stopped"
    assert stop == res.n_epochs - 1 == len(values) - 1
    best = int(np.argmax(values) if maximize else np.argmin(values))
    assert res.best_epoch == best
    # The best epoch's parameters: those of a fit that ran just that long.
    again = gd.fit(CE, P_CE, X, LABELS, epochs=best + 1, monitor=monitor, **kw)
    np.testing.assert_array_equal(res.params, again.params)
    last = gd.fit(CE, P_CE, X, LABELS, epochs=60, early_stopping=3, monitor=monitor,
                  min_delta=min_delta, restore_best=False, **kw)
    np.testing.assert_array_equal(
        last.params, gd.fit(CE, P_CE, X, LABELS, epochs=stop + 1, **kw).params)
    assert "last epoch" in last.message


def test_restore_best_true_returns_the_best_epoch_of_a_completed_fit():
    kw = dict(optimizer=gd.adam(0.2), batch_size=10, seed=3, validation_data=(XV, LABELS_V),
              monitor="val_loss")
    res = gd.fit(CE, P_CE, X, LABELS, epochs=15, restore_best=True, **kw)
    assert res.status == "completed" and res.n_epochs == 15
    best = int(np.argmin(res.history["val_loss"]))
    assert res.best_epoch == best
    np.testing.assert_array_equal(res.params,
                                  gd.fit(CE, P_CE, X, LABELS, epochs=best + 1, **kw).params)


def test_val_r2_is_scikit_learns_r2_score():
    metrics = pytest.importorskip("sklearn.metrics")
    y2 = np.column_stack([Y, 2 * Y ** 2])
    yv2 = np.column_stack([YV, 2 * YV ** 2])
    model = gd.mlp([3, 5, 2], activation="tanh")
    params = gd.init(model, seed=2)
    seen = []
    res = gd.fit(model, params, X, y2, optimizer=gd.adam(0.02), epochs=4, batch_size=16,
                 validation_data=(XV, yv2, WV), monitor="val_r2",
                 callbacks=lambda e, logs: seen.append(logs["params"]))
    for p, r2 in zip(seen, res.history["val_r2"]):
        expected = metrics.r2_score(yv2, gd.predict(model, p, XV), sample_weight=WV)
        assert r2 == pytest.approx(expected, rel=1e-12, abs=1e-12)
    with pytest.raises(ValueError, match="val_r2"):
        gd.fit(CE, P_CE, X, LABELS, epochs=1, validation_data=(XV, LABELS_V),
               monitor="val_r2")
    with pytest.raises(ValueError, match="validation"):
        gd.fit(REG, P_REG, X, Y, epochs=1, monitor="val_loss")
    with pytest.raises(ValueError, match="monitor"):
        gd.fit(REG, P_REG, X, Y, epochs=1, monitor="accuracy")


def test_plateau_in_absolute_mode_stops_at_stop_lr():
    """scikit-learn's 'adaptive' rate: divide by 5 after patience stalled epochs,
    stop when a reduction falls due at a rate <= stop_lr."""
    plateau = gd.reduce_on_plateau(0.2, patience=1, threshold=10.0, threshold_mode="abs",
                                   stop_lr=1e-3)
    res = gd.fit(REG, P_REG, X, Y, optimizer=gd.sgd(0.02), epochs=100, batch_size=10,
                 lr_plateau=plateau, restore_best=False)
    # threshold 10 is never beaten after the first epoch: a reduction falls due
    # after two more epochs each time (0.02, 0.004, 0.0008), and the one due at
    # 0.0008 stops.
    lrs = res.history["lr"]
    assert res.status == "early_stopped" and "stop_lr" in res.message
    np.testing.assert_allclose(lrs, [0.02] * 3 + [0.004] * 2 + [0.0008] * 2, rtol=1e-12)
    with pytest.raises(ValueError, match="threshold_mode"):
        gd.reduce_on_plateau(threshold_mode="relative")
