"""gdcore.dask against gdcore's in-memory functions, on Dask's schedulers and clusters.

The references are :func:`gdcore.value_and_grad`, :func:`gdcore.predict` and
:func:`gdcore.minimize` on the whole data in memory, and, for ``fit``, one
round of local SGD written out in NumPy from the documented rule.  The
determinism promise is checked bit for bit across the synchronous and
threaded local schedulers, in-process clusters of 1-3 workers and a cluster
of 3, 2 and 1 worker processes; a worker process killed during a
minimisation must change nothing.  Clusters are small and started once per
test that needs one kind.
"""

import logging
import os
import re
import signal
import threading
import time

import numpy as np
import pytest

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

import dask.array as da  # noqa: E402
import scipy.optimize  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import gdcore as gd  # noqa: E402
import gdcore.dask as gdd  # noqa: E402
from gdcore import _chunked  # noqa: E402
import reference as ref  # noqa: E402

N, D, ROWS = 2400, 6, 300  # 8 chunks


def cluster(n_workers, processes, threads=1):
    return LocalCluster(n_workers=n_workers, threads_per_worker=threads, processes=processes,
                        dashboard_address=":0", silence_logs=logging.CRITICAL)


def problem(loss="cross_entropy", n_outputs=3, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D))
    if loss == "cross_entropy":
        y = rng.integers(0, n_outputs, N)
    elif loss == "binary_cross_entropy":
        y = (rng.random((N, n_outputs)) < 0.4).astype(float)
    else:
        y = rng.standard_normal((N, n_outputs))
    model = gd.mlp([D, 8, n_outputs], activation="tanh", loss=loss)
    return model, gd.init(model, seed=seed, dtype=dtype), X, y


def chunked(X, y, w=None, rows=ROWS):
    out = [da.from_array(X, chunks=(rows, X.shape[1])),
           da.from_array(y, chunks=(rows,) + y.shape[1:])]
    return out + [None if w is None else da.from_array(w, chunks=rows)]


def on_sync(fn, *args, **kwargs):
    with dask.config.set(scheduler="sync"):
        return fn(*args, **kwargs)


# ------------------------------------------------------------------------ agreement

@pytest.mark.parametrize("loss, n_outputs", [("cross_entropy", 3), ("mse", 2),
                                             ("binary_cross_entropy", 1)])
@pytest.mark.parametrize("weighted", [False, True])
def test_objective_equals_value_and_grad_on_the_whole_data(loss, n_outputs, weighted):
    model, p, X, y = problem(loss, n_outputs)
    w = np.random.default_rng(5).uniform(0, 2, N) if weighted else None
    Xd, yd, wd = chunked(X, y, w)
    obj = on_sync(gdd.objective, model, Xd, yd, l2=1e-2, sample_weight=wd)
    got_f, got_g = obj(p)
    want_f, want_g = gd.value_and_grad(model, p, X, y, l2=1e-2, sample_weight=w)
    assert got_g.dtype == np.float64 and got_g.shape == p.shape
    np.testing.assert_allclose(got_f, want_f, rtol=1e-12)
    np.testing.assert_allclose(got_g, want_g, rtol=1e-12, atol=1e-12 * np.abs(want_g).max())
    assert obj.n_evaluations == 1 and obj.n_chunks == N // ROWS and obj.n_samples == N
    assert obj.total_weight == pytest.approx(N if w is None else w.sum(), rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.float64, np.float32]),
       loss=st.sampled_from(ref.LOSSES), activation=st.sampled_from(ref.HIDDEN_ACTIVATIONS))
def test_random_models_and_chunkings_agree_with_value_and_grad(data, dtype, loss, activation):
    hidden = data.draw(st.lists(st.integers(1, 6), max_size=2), label="hidden")
    n_in, n_out = data.draw(st.integers(1, 5)), data.draw(st.integers(2, 4))
    model = gd.mlp([n_in, *hidden, n_out], activation=activation, loss=loss)
    chunks = tuple(data.draw(st.lists(st.integers(1, 20), min_size=1, max_size=6),
                             label="chunks"))
    n = sum(chunks)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    X = rng.standard_normal((n, n_in))
    y = (rng.integers(0, n_out, n) if loss == "cross_entropy"
         else rng.integers(0, 2, (n, n_out)).astype(float) if loss == "binary_cross_entropy"
         else rng.standard_normal((n, n_out)))
    w = rng.uniform(0.1, 2, n) if data.draw(st.booleans(), label="weighted") else None
    l2 = data.draw(st.sampled_from([0.0, 0.1]), label="l2")
    p = gd.init(model, seed=rng, dtype=dtype)
    Xd = da.from_array(X, chunks=(chunks, (n_in,)))
    f, g = on_sync(gdd.objective, model, Xd, y, l2=l2, sample_weight=w, dtype=dtype)(p)
    want_f, want_g = gd.value_and_grad(model, p, X, y, l2=l2, sample_weight=w)
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    assert g.dtype == dtype
    np.testing.assert_allclose(f, want_f, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(g, want_g, rtol=0, atol=10 * rtol * max(np.abs(want_g).max(), 1))


def test_float32_objective_agrees_with_float32_value_and_grad():
    model, p, X, y = problem(dtype=np.float32)
    Xd, yd, _ = chunked(X, y)
    obj = on_sync(gdd.objective, model, Xd, yd, l2=1e-3, dtype=np.float32)
    f, g = obj(p)
    want_f, want_g = gd.value_and_grad(model, p, X, y, l2=1e-3)
    assert g.dtype == np.float32
    np.testing.assert_allclose(f, want_f, rtol=1e-5)
    np.testing.assert_allclose(g, want_g, rtol=1e-4, atol=1e-5 * np.abs(want_g).max())


def test_numpy_targets_and_weights_are_cut_to_match_and_chunks_may_differ_in_size():
    model, p, X, y = problem()
    w = np.random.default_rng(1).uniform(0, 1, N)
    Xd = da.from_array(X, chunks=((1000, 7, 393, 1000), (D,)))
    obj = on_sync(gdd.objective, model, Xd, y, sample_weight=w)
    np.testing.assert_allclose(obj(p)[1], gd.value_and_grad(model, p, X, y, sample_weight=w)[1],
                               rtol=1e-12, atol=1e-14)


def test_a_chunk_without_weight_adds_nothing():
    model, p, X, y = problem()
    w = np.ones(N)
    w[ROWS:2 * ROWS] = 0  # the whole second chunk
    Xd, yd, wd = chunked(X, y, w)
    f, g = on_sync(gdd.objective, model, Xd, yd, sample_weight=wd)(p)
    want_f, want_g = gd.value_and_grad(model, p, X, y, sample_weight=w)
    np.testing.assert_allclose(f, want_f, rtol=1e-12)
    np.testing.assert_allclose(g, want_g, rtol=1e-12, atol=1e-14)


def test_predict_is_lazy_and_agrees_with_predict():
    model, p, X, _ = problem()
    Xd = da.from_array(X, chunks=(ROWS, D))
    P = gdd.predict(model, p, Xd)
    assert isinstance(P, da.Array) and P.chunks == (Xd.chunks[0], (3,)) and P.dtype == p.dtype
    np.testing.assert_allclose(on_sync(P.compute), gd.predict(model, p, X), rtol=1e-12,
                               atol=1e-15)


# ------------------------------------------------------------------------ minimisation

def test_lbfgs_reaches_the_in_memory_optimum_through_gd_and_scipy():
    model, p, X, y = problem("binary_cross_entropy", 1)
    model = gd.mlp([D, 1], loss="binary_cross_entropy")  # convex with l2: one optimum
    p = gd.init(model, seed=0)
    Xd, yd, _ = chunked(X, y)
    obj = on_sync(gdd.objective, model, Xd, yd, l2=1e-2)
    options = dict(gtol=1e-10, maxiter=500)
    want = gd.minimize(lambda q: gd.value_and_grad(model, q, X, y, l2=1e-2), p, jac=True,
                       method="lbfgs", options=options)
    got = on_sync(gd.minimize, obj, p, jac=True, method="lbfgs", options=options)
    via_scipy = on_sync(scipy.optimize.minimize, obj, p, jac=True, method=gd.lbfgs(),
                        options=options)
    assert want.success and got.success and via_scipy.success
    np.testing.assert_allclose(got.x, want.x, atol=1e-7)
    np.testing.assert_allclose(via_scipy.x, want.x, atol=1e-7)


# ------------------------------------------------------------------------ determinism

def results(model, p, Xd, yd, wd=None, client=None):
    obj = gdd.objective(model, Xd, yd, l2=1e-3, sample_weight=wd, client=client)
    f, g = obj(p)
    fitted = gdd.fit(model, p, Xd, yd, optimizer=gd.adam(1e-2), epochs=2, batch_size=16,
                     local_steps=4, sample_weight=wd, client=client, progress=False)
    obj.release()
    return f, g, fitted.params, fitted.history["loss"]


def assert_same_bits(a, b):
    assert a[0] == b[0]
    for x, y in zip(a[1:], b[1:]):
        assert np.array_equal(x, y)


@pytest.mark.bitwise
def test_bitwise_the_same_on_local_schedulers_and_in_process_clusters():
    model, p, X, y = problem()
    w = np.random.default_rng(2).uniform(0, 2, N)
    Xd, yd, wd = chunked(X, y, w)
    reference = on_sync(results, model, p, Xd, yd, wd)
    with dask.config.set(scheduler="threads"):
        assert_same_bits(results(model, p, Xd, yd, wd), reference)
    for n_workers, threads in ((1, 1), (2, 2), (3, 1)):
        with cluster(n_workers, processes=False, threads=threads) as c, Client(c) as client:
            assert_same_bits(results(model, p, Xd, yd, wd, client), reference)
            assert_same_bits(results(model, p, Xd, yd, wd), reference)  # the current client


@pytest.mark.bitwise
def test_bitwise_the_same_on_3_2_and_1_worker_processes():
    model, p, X, y = problem()
    Xd, yd, _ = chunked(X, y)
    reference_obj = on_sync(gdd.objective, model, Xd, yd, l2=1e-3)
    want = reference_obj(p)
    want_fit = on_sync(results, model, p, Xd, yd)
    with cluster(3, processes=True) as c, Client(c) as client:
        assert_same_bits(results(model, p, Xd, yd, client=client), want_fit)
        obj = gdd.objective(model, Xd, yd, l2=1e-3, client=client)
        obj(p)
        assert obj._data._servers is not None  # calls go straight to the workers
        tasks = []
        task_sums = obj._data._task_sums
        obj._data._task_sums = lambda *args: tasks.append(1) or task_sums(*args)
        for n_workers in (3, 2, 1):
            workers = sorted(client.scheduler_info()["workers"])
            assert len(workers) == n_workers
            got = obj(p)
            assert got[0] == want[0] and np.array_equal(got[1], want[1])
            if n_workers > 1:  # retired gracefully: its chunks move to the others
                c.scale(n_workers - 1)
                deadline = time.monotonic() + 60
                while len(client.scheduler_info()["workers"]) >= n_workers:
                    assert time.monotonic() < deadline, "the cluster did not scale down"
                    time.sleep(0.05)
        assert obj.n_evaluations == 4
        assert len(tasks) <= 2  # only after a worker retired (its chunks moved)


def test_a_worker_killed_during_lbfgs_changes_nothing():
    model, p, X, y = problem()
    Xd, yd, _ = chunked(X, y)
    options = dict(maxiter=15)
    want = on_sync(gd.minimize, on_sync(gdd.objective, model, Xd, yd, l2=1e-3), p, jac=True,
                   method="lbfgs", options=options)
    with cluster(2, processes=True) as c, Client(c) as client:
        obj = gdd.objective(model, Xd, yd, l2=1e-3, client=client)
        calls = []

        def fun(x):
            calls.append(1)
            if len(calls) == 4:  # SIGKILL: no goodbye; its chunks are lost
                pids = client.run(os.getpid)
                os.kill(pids[sorted(pids)[0]], signal.SIGKILL)
            return obj(x)

        got = gd.minimize(fun, p, jac=True, method="lbfgs", options=options)
    assert len(calls) > 4
    assert got.nit == want.nit and got.fun == want.fun and np.array_equal(got.x, want.x)


def test_a_worker_killed_while_fit_runs_changes_nothing(monkeypatch):
    model, p, X, y = problem()
    Xd, yd, _ = chunked(X, y)
    settings = dict(optimizer=gd.adam(1e-2), epochs=30, batch_size=16, local_steps=4)
    want = on_sync(gdd.fit, model, p, Xd, yd, progress=False, **settings)
    killed = []

    class KillerBar:  # stands for the progress bar: after epoch 2, a kill 20 ms later,
        def __init__(self, victim):  # most likely inside a call to the chunk servers
            self.victim, self.epochs = victim, 0

        def update(self, n):
            self.epochs += n
            if self.epochs == 2:
                threading.Timer(0.02, lambda: (os.kill(self.victim, signal.SIGKILL),
                                               killed.append(time.monotonic()))).start()

        def set_postfix(self, **kwargs):
            pass

        def close(self):
            pass

    with cluster(2, processes=True) as c, Client(c) as client:
        pid = client.run(os.getpid)
        monkeypatch.setattr(gdd, "_progress_bar",
                            lambda progress, epochs: KillerBar(pid[sorted(pid)[0]]))
        got = gdd.fit(model, p, Xd, yd, client=client, **settings)
        ended = time.monotonic()
    assert killed and killed[0] < ended, "the fit ended before the worker was killed"
    assert got.status == "completed" and got.history == want.history
    assert np.array_equal(got.params, want.params)


# ------------------------------------------------------------------------ fit

def test_one_round_of_plain_sgd_is_a_step_on_the_chunks_weighted_mean_gradient():
    model, p, X, y = problem()
    w = np.random.default_rng(3).uniform(0.5, 2, N)
    rows = (1000, 800, 600)  # unequal chunks: weights per chunk matter
    Xd = da.from_array(X, chunks=(rows, (D,)))
    lr = 0.1
    # One local step of 1000 rows: one round per epoch.  The chunk of 800 rows
    # takes its first pass and 200 rows of its second, the one of 600 all of
    # its first and 400 of its second.
    one = on_sync(gdd.fit, model, p, Xd, y, optimizer=gd.sgd(lr), epochs=1,
                  batch_size=1000, local_steps=1, seed=7, sample_weight=w, progress=False)
    assert one.n_epochs == 1 and one.opt_state.step == 1
    start, step, total = 0, np.zeros_like(p), 0.0
    for c, n_c in enumerate(rows):
        passes = [np.random.default_rng([7, c, k]).permutation(n_c) for k in (0, 1)]
        chosen = start + np.concatenate(passes)[:1000]
        W_c = w[start:start + n_c].sum()
        _, g = gd.value_and_grad(model, p, X[chosen], y[chosen], sample_weight=w[chosen])
        step += W_c * g
        total += W_c
        start += n_c
    np.testing.assert_allclose(one.params, p - lr * step / total, rtol=1e-12, atol=1e-14)


def test_fit_trains_and_keeps_the_callers_params():
    model, p, X, y = problem()
    before = p.copy()
    Xd, yd, _ = chunked(X, y)
    res = on_sync(gdd.fit, model, p, Xd, yd, optimizer=gd.adam(1e-2), epochs=4, batch_size=32,
                  local_steps=8, progress=False)
    assert res.status == "completed" and res.n_epochs == 4 and len(res.history["loss"]) == 4
    assert res.history["loss"][-1] < res.history["loss"][0]
    assert res.opt_state.step == 4 * 2 * 8  # ceil(300 / (8 * 32)) = 2 rounds per epoch
    assert np.array_equal(p, before)
    start = gd.loss(model, p, X, y)
    assert gd.loss(model, res.params, X, y) < start


@pytest.mark.bitwise
def test_a_last_chunk_of_zero_weight_changes_no_bit_of_fit_or_objective():
    model, p, X, y = problem()
    w = np.ones(N)
    w[-ROWS:] = 0
    settings = dict(optimizer=gd.adam(1e-2), epochs=2, batch_size=16, local_steps=4,
                    progress=False)
    with_zeros = chunked(X, y, w)
    without = chunked(X[:-ROWS], y[:-ROWS], w[:-ROWS])
    a = on_sync(gdd.fit, model, p, *with_zeros[:2], sample_weight=with_zeros[2], **settings)
    b = on_sync(gdd.fit, model, p, *without[:2], sample_weight=without[2], **settings)
    assert np.array_equal(a.params, b.params) and a.history == b.history
    f_a, g_a = on_sync(gdd.objective, model, *with_zeros[:2], sample_weight=with_zeros[2])(p)
    f_b, g_b = on_sync(gdd.objective, model, *without[:2], sample_weight=without[2])(p)
    assert f_a == f_b and np.array_equal(g_a, g_b)


def test_fit_validation_early_stopping_and_callbacks():
    model, p, X, y = problem()
    Xd, yd, _ = chunked(X[:1800], y[:1800])
    Xv, yv, _ = chunked(X[1800:], y[1800:], rows=250)
    seen = []
    settings = dict(optimizer=gd.adam(0.05), batch_size=32, local_steps=8, progress=False)
    res = on_sync(gdd.fit, model, p, Xd, yd, epochs=40, validation_data=(Xv, yv),
                  early_stopping=2, callbacks=lambda e, logs: seen.append((e, logs)), **settings)
    val = res.history["val_loss"]
    assert res.status == "early_stopped" and res.n_epochs == len(val) == len(seen) < 40
    best = int(np.argmin(val))
    assert res.best_epoch == best and res.n_epochs == best + 3  # two epochs without a lower one
    np.testing.assert_allclose(val[best], gd.loss(model, res.params, X[1800:], y[1800:]),
                               rtol=1e-12)  # the best epoch's parameters, its val_loss
    assert seen[0][0] == 0 and set(seen[0][1]) == {"loss", "val_loss", "epoch_time", "params"}
    assert np.array_equal(seen[best][1]["params"], res.params)
    # Patience running out on the last epoch is an early stop too (as in gd.fit).
    last = on_sync(gdd.fit, model, p, Xd, yd, epochs=res.n_epochs, validation_data=(Xv, yv),
                   early_stopping=2, **settings)
    assert last.status == "early_stopped" and np.array_equal(last.params, res.params)

    def stop_after_1(epoch, logs):
        if epoch == 1:
            raise StopIteration

    stopped = on_sync(gdd.fit, model, p, Xd, yd, epochs=5, callbacks=stop_after_1, **settings)
    assert stopped.status == "callback_stopped" and stopped.n_epochs == 2

    def fails(epoch, logs):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom") as raised:
        on_sync(gdd.fit, model, p, Xd, yd, epochs=5, callbacks=fails, **settings)
    assert raised.value.fit_result.status == "callback_failed"
    assert raised.value.fit_result.n_epochs == 1
    with pytest.raises(ValueError, match="validation_data: y must be chunked by rows"):
        gdd.fit(model, p, Xd, yd, validation_data=(Xv, da.from_array(y[1800:], chunks=7)))


def test_fit_float32():
    model, p, X, y = problem(dtype=np.float32)
    Xd, yd, _ = chunked(X, y)
    res = on_sync(gdd.fit, model, p, Xd, yd, epochs=2, local_steps=4, progress=False)
    assert res.params.dtype == np.float32 and res.opt_state.slots.dtype == np.float32
    assert res.history["loss"][-1] < res.history["loss"][0]


def test_fit_divergence_returns_the_last_finite_state():
    model, p, X, y = problem("mse", 1)
    Xd, yd, _ = chunked(X, y)
    settings = dict(optimizer=gd.sgd(1e12), batch_size=32, local_steps=10, progress=False)
    res = on_sync(gdd.fit, model, p, Xd, yd, epochs=10, **settings)  # one round per epoch
    assert res.status == "diverged"
    failed = re.match(r"diverged in epoch (\d+), round (\d+): chunk \d+: the loss became NaN",
                      res.message)
    assert failed and failed[1] == failed[2], res.message
    assert res.n_epochs == len(res.history["loss"]) == int(failed[1])
    before = (on_sync(gdd.fit, model, p, Xd, yd, epochs=res.n_epochs, **settings).params
              if res.n_epochs else p)
    assert np.isfinite(res.params).all() and np.array_equal(res.params, before)


def test_fit_interrupted_returns_the_rounds_done(monkeypatch):
    model, p, X, y = problem()
    Xd, yd, _ = chunked(X, y)
    settings = dict(optimizer=gd.adam(1e-2), batch_size=32, local_steps=10, progress=False)
    two = on_sync(gdd.fit, model, p, Xd, yd, epochs=2, **settings)  # one round per epoch
    steps = gdd._local_steps

    def ctrl_c_in_round_2(chunk, index, *args):
        if args[5] == 2 and index == 3:
            raise KeyboardInterrupt
        return steps(chunk, index, *args)

    monkeypatch.setattr(gdd, "_local_steps", ctrl_c_in_round_2)
    res = on_sync(gdd.fit, model, p, Xd, yd, epochs=5, **settings)
    assert res.status == "interrupted" and res.n_epochs == 2
    assert np.array_equal(res.params, two.params)
    assert res.history["loss"] == two.history["loss"]


# ------------------------------------------------------------------------ refusals

def test_bad_chunking_and_shapes_are_refused_clearly():
    model, p, X, y = problem()
    with pytest.raises(TypeError, match="X must be a dask array"):
        gdd.objective(model, X, y)
    with pytest.raises(ValueError, match=r"chunked by rows only .* rechunk it with"):
        gdd.objective(model, da.from_array(X, chunks=(ROWS, 3)), y)
    with pytest.raises(ValueError, match=r"y must be chunked by rows as X is"):
        gdd.objective(model, da.from_array(X, chunks=(ROWS, D)), da.from_array(y, chunks=500))
    with pytest.raises(ValueError, match=r"sample_weight must have 2400 rows"):
        gdd.objective(model, da.from_array(X, chunks=(ROWS, D)), y, sample_weight=np.ones(5))
    with pytest.raises(ValueError, match="X has 6 features but the model expects 4"):
        gdd.objective(gd.mlp([4, 3], loss="cross_entropy"), da.from_array(X, chunks=(ROWS, D)),
                      y)
    unknown = da.from_array(X, chunks=(ROWS, D))[da.from_array(X[:, 0] > 0, chunks=ROWS)]
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        gdd.objective(model, unknown, y)
    with pytest.raises(ValueError, match="chunked by rows only"):
        gdd.predict(model, p, da.from_array(X, chunks=(ROWS, 2)))
    with pytest.raises(ValueError, match="local_steps must be"):
        gdd.fit(model, p, da.from_array(X, chunks=(ROWS, D)), y, local_steps=0)


@pytest.mark.parametrize("spoil, pattern", [
    (lambda X, y, w: X.__setitem__((1234, 2), np.nan), "X contains NaN or Inf"),
    (lambda X, y, w: y.__setitem__(2001, 7), "y has label 7"),
    (lambda X, y, w: w.__setitem__(1999, -1.0), "sample_weight must be finite and >= 0"),
])
def test_bad_data_in_a_chunk_gives_value_and_grads_error_naming_the_row(spoil, pattern):
    model, p, X, y = problem()
    w = np.ones(N)
    spoil(X, y, w)
    with pytest.raises(ValueError, match=pattern) as expected:
        gd.value_and_grad(model, p, X, y, sample_weight=w)
    Xd, yd, wd = chunked(X, y, w)
    with pytest.raises(ValueError) as got:
        on_sync(gdd.objective, model, Xd, yd, sample_weight=wd)
    assert str(got.value) == str(expected.value)  # the same words, the same (global) row


def test_bad_data_on_a_cluster_too():
    model, p, X, y = problem()
    X[2222, 0] = np.inf
    Xd, yd, _ = chunked(X, y)
    with cluster(1, processes=False) as c, Client(c) as client:
        with pytest.raises(ValueError, match=r"X contains NaN or Inf \(in sample 2222\)"):
            gdd.objective(model, Xd, yd, client=client)


def test_all_weights_zero_is_refused():
    model, p, X, y = problem()
    Xd, yd, wd = chunked(X, y, np.zeros(N))
    with pytest.raises(ValueError, match="positive, finite sum"):
        on_sync(gdd.objective, model, Xd, yd, sample_weight=wd)


def test_a_client_that_is_not_one_is_refused():
    model, p, X, y = problem()
    Xd, yd, _ = chunked(X, y)
    with pytest.raises(TypeError, match="client must be a distributed.Client or None"):
        gdd.objective(model, Xd, yd, client="tcp://127.0.0.1:8786")


def test_ctrl_c_during_a_fit_on_the_sync_scheduler_is_an_interruption():
    # On the sync scheduler the chunks' steps run in the main thread, where the
    # in-memory fit takes Ctrl-C as a request: it must end gdd.fit as one.
    model, p, X, y = problem()
    Xd, yd, _ = chunked(X, y)
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT))
    with dask.config.set(scheduler="sync"):
        _chunked.ChunkedData(model, p.dtype, Xd, yd, None, None)  # compiled, before the clock
        timer.start()
        try:
            res = gdd.fit(model, p, Xd, yd, epochs=10**6, local_steps=1, progress=False)
        finally:
            timer.cancel()
    assert res.status == "interrupted", res.message
    assert np.isfinite(res.params).all() and res.n_epochs == len(res.history["loss"])


def test_dask_counts_a_chunks_arrays():
    model, p, X, y = problem()
    chunk = _chunked._prepare_chunk(model, np.float64, X[:100], y[:100], np.ones(100), 0)
    assert dask.sizeof.sizeof(chunk) == X[:100].nbytes + 100 * 8 + 100 * 8


def test_an_overflowing_total_weight_is_refused():
    model, p, X, y = problem()
    w = np.ones(N)
    w[[0, ROWS]] = 1e308  # each chunk's total is finite, their sum is not
    Xd, yd, wd = chunked(X, y, w)
    with pytest.raises(ValueError, match="positive, finite sum, got inf"):
        on_sync(gdd.objective, model, Xd, yd, sample_weight=wd)


def test_predict_computes_nothing_until_asked_and_keeps_its_own_params():
    model, p, X, _ = problem()
    X[5, 0] = np.nan  # raises only when the first chunk is computed
    q = p.copy()
    P = gdd.predict(model, q, da.from_array(X, chunks=(ROWS, D)))
    q[:] = 0  # after the call: the graph has its own copy
    np.testing.assert_allclose(on_sync(P[ROWS:].compute), gd.predict(model, p, X[ROWS:]),
                               rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match=r"X contains NaN or Inf \(in sample 5\)"):
        on_sync(P.compute)


def test_l2_term_is_the_same_on_any_number_of_blas_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    model = gd.mlp([D, 150, 80, 3], loss="cross_entropy")  # over 10,000 weights
    p = gd.init(model, seed=0)
    _, _, X, y = problem()
    obj = on_sync(gdd.objective, model, *chunked(X, y)[:2], l2=1.0)
    with threadpoolctl.threadpool_limits(1):
        one = obj(p)
    with threadpoolctl.threadpool_limits(2):
        two = obj(p)
    assert one[0] == two[0] and np.array_equal(one[1], two[1])


def test_the_lowest_bad_chunks_error_is_raised_on_the_threaded_scheduler():
    model, p, X, y = problem()
    for row in (2399, 1500, 301):
        X[row, 1] = np.nan
    Xd, yd, _ = chunked(X, y)
    for _ in range(3):
        with dask.config.set(scheduler="threads"):
            with pytest.raises(ValueError, match=r"in sample 301\)"):
                gdd.objective(model, Xd, yd)


def test_a_released_objective_says_so():
    model, p, X, y = problem()
    obj = on_sync(gdd.objective, model, *chunked(X, y)[:2])
    obj.release()
    with pytest.raises(ValueError, match="released"):
        obj(p)


def test_sample_weight_must_be_one_dimensional():
    model, p, X, y = problem()
    with pytest.raises(ValueError, match=r"sample_weight must have 2400 rows .* \(2400, 1\)"):
        on_sync(gdd.objective, model, da.from_array(X, chunks=(ROWS, D)), y,
                sample_weight=np.ones((N, 1)))
