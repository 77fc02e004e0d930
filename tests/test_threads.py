"""Threads: kernels release the GIL, an optimizer state refuses a second thread.

The kernels take arrays and scalars only and compile with ``nogil=True``, so
Python threads run them in parallel; an optimizer state belongs to one thread
at a time, and a second thread that steps it at the same moment gets a
RuntimeError instead of torn parameters.
"""

import importlib
import inspect
import pkgutil
import threading

import numba
import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

import gdcore as gd
from gdcore import kernels
from gdcore.optim import _exclusive


def _kernel_dispatchers():
    for info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"{kernels.__name__}.{info.name}")
        for attr, value in vars(module).items():
            if isinstance(value, CPUDispatcher) and inspect.getmodule(value.py_func) is module:
                yield f"{info.name}.{attr}", value


DISPATCHERS = sorted(_kernel_dispatchers())


def test_there_are_kernels_to_check():
    assert len(DISPATCHERS) > 30


@pytest.mark.parametrize("name, dispatcher", DISPATCHERS, ids=[d[0] for d in DISPATCHERS])
def test_every_kernel_releases_the_gil(name, dispatcher):
    assert dispatcher.targetoptions.get("nogil") is True, name


def test_a_held_state_refuses_a_second_step(rng):
    opt = gd.adam(1e-3)
    p = rng.normal(size=50)
    state = opt.init(p)
    before = p.copy(), state.slots.copy(), state.scalars.copy()
    with _exclusive(state):  # as while another thread is inside the kernel
        with pytest.raises(RuntimeError, match="another thread"):
            opt.update_inplace(np.ones_like(p), state, p)
        with pytest.raises(RuntimeError, match="another thread"):
            opt.update(np.ones_like(p), state, p)
    for a, b in zip(before, (p, state.slots, state.scalars)):
        np.testing.assert_array_equal(a, b)
    # Released again: the next step goes through, also after a refusal.
    assert opt.update_inplace(np.ones_like(p), state, p) is True
    assert state.step == 1


@pytest.mark.parametrize("threads", [1, 2])
def test_shared_state_is_never_torn(threads):
    """Four threads step one shared state: each step is whole or refused."""
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("Numba's pool has one thread")
    opt = gd.sgd(1.0)
    p = np.zeros(400_000)
    state = opt.init(p)
    g = np.ones_like(p)
    done, refused = [], []

    def work():
        for _ in range(25):
            try:
                assert opt.update_inplace(g, state, p, threads=threads)
                done.append(1)
            except RuntimeError:
                refused.append(1)

    workers = [threading.Thread(target=work) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(done) + len(refused) == 100
    assert state.step == len(done)
    # Every step subtracted exactly 1 from every element: no step tore another.
    np.testing.assert_array_equal(p, np.full_like(p, -float(len(done))))


def test_independent_states_step_in_parallel_threads(rng):
    """Threaded steps from several Python threads at once (one parallel region at a
    time inside) give what one thread gives."""
    opt = gd.adam(1e-2)
    n = 3 * gd.kernels.updates.BLOCK + 5
    grads = rng.normal(size=(6, n))
    want = np.zeros(n)
    want_state = opt.init(want)
    for g in grads:
        opt.update_inplace(g, want_state, want)
    results = [np.zeros(n) for _ in range(4)]
    threads = min(2, numba.config.NUMBA_NUM_THREADS)

    def work(p):
        state = opt.init(p)
        for g in grads:
            opt.update_inplace(g, state, p, threads=threads)

    workers = [threading.Thread(target=work, args=(p,)) for p in results]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for got in results:
        np.testing.assert_array_equal(got, want)


def test_update_of_a_state_does_not_hold_it():
    opt = gd.adam(1e-3)
    p = np.ones(10)
    state = opt.init(p)
    opt.update(np.ones(10), state, p)
    assert id(state.scalars) not in gd.optim._IN_USE
    with pytest.raises(ValueError):
        opt.update_inplace(np.ones(11), state, p)
    assert id(state.scalars) not in gd.optim._IN_USE


# BLAS threads of a call ------------------------------------------------------------------
needs_thread_control = pytest.mark.skipif(
    gd.kernels.blas.set_blas_threads is None,
    reason="gdcore steers only MKL and NumPy's scipy-openblas (neither is bound)")


@needs_thread_control
@pytest.mark.parametrize("threads, rows, expected", [
    ("auto", 1347, 1),  # 1347 x 64 x 128: mid-sized, one thread (the busy-machine cliff)
    ("auto", 32, None),  # 32 x 64 x 128 = 262,144: OpenBLAS's own single-thread range
    ("auto", 4096, None),  # 4096 x 64 x 128 = 2**25: the BLAS's own setting
    (None, 1347, None), (1, 32, 1), (3, 1347, 3)])
def test_fit_holds_the_blas_threads_it_chose(threads, rows, expected):
    from gdcore.kernels.blas import get_blas_threads, set_blas_threads
    model = gd.mlp([64, 128, 10], loss="cross_entropy")
    rng = np.random.default_rng(0)
    X, y = rng.random((rows, 64)), rng.integers(0, 10, rows)
    before = get_blas_threads()
    set_blas_threads(2)  # a known setting to tell "left alone" from "set"
    try:
        seen = []
        gd.fit(model, gd.init(model), X, y, epochs=2, batch_size=None, threads=threads,
               progress=False, callbacks=lambda epoch, logs: seen.append(get_blas_threads()))
        assert seen == [2 if expected is None else expected] * 2
        assert get_blas_threads() == 2  # restored
    finally:
        set_blas_threads(before)


@pytest.mark.parametrize("threads", [0, -1, 1.5, "2", True, "all"])
def test_fit_refuses_bad_threads(threads):
    model = gd.mlp([3, 1])
    with pytest.raises(ValueError, match="threads"):
        gd.fit(model, gd.init(model), np.zeros((4, 3)), np.zeros(4), threads=threads)


@needs_thread_control
@pytest.mark.skipif(gd.kernels.blas.set_local_blas_threads is not None,
                    reason="the bound BLAS holds a count per thread")
def test_concurrent_holders_keep_the_first_count_until_the_last_leaves():
    from gdcore._blas_threads import blas_threads
    from gdcore.kernels.blas import get_blas_threads, set_blas_threads
    before = get_blas_threads()
    set_blas_threads(2)
    try:
        inside, release = threading.Event(), threading.Event()
        seen = []

        def holder():
            with blas_threads(1):
                inside.set()
                release.wait(10)
                seen.append(get_blas_threads())

        worker = threading.Thread(target=holder)
        worker.start()
        inside.wait(10)
        with blas_threads(3):  # joins the holder's count instead of changing it
            seen.append(get_blas_threads())
        assert get_blas_threads() == 1  # the worker still holds it
        release.set()
        worker.join()
        assert seen == [1, 1]
        assert get_blas_threads() == 2
    finally:
        set_blas_threads(before)


@pytest.mark.skipif(gd.kernels.blas.set_local_blas_threads is None,
                    reason="the bound BLAS's count is process-wide (see the test above)")
def test_concurrent_holders_each_hold_their_own_threads_count():
    from gdcore._blas_threads import blas_threads
    from gdcore.kernels.blas import get_blas_threads, set_blas_threads
    before = get_blas_threads()
    set_blas_threads(2)
    try:
        inside, release = threading.Event(), threading.Event()
        seen = {}

        def holder():
            with blas_threads(1):
                inside.set()
                release.wait(10)
                seen["worker"] = get_blas_threads()
            seen["worker after"] = get_blas_threads()

        worker = threading.Thread(target=holder)
        worker.start()
        inside.wait(10)
        with blas_threads(3):
            seen["main"] = get_blas_threads()
        seen["main after"] = get_blas_threads()
        release.set()
        worker.join()
        assert seen == {"worker": 1, "worker after": 2, "main": 3, "main after": 2}
    finally:
        set_blas_threads(before)


@needs_thread_control
@pytest.mark.parametrize("func, factory", [
    ("value_and_grad", "value_and_grad_kernel"), ("loss", "loss_kernel"),
    ("predict", "predict_kernel")])
@pytest.mark.parametrize("threads, rows, expected", [
    ("auto", 1347, 1), ("auto", 8, None), (None, 1347, None), (3, 8, 3)])
def test_functional_calls_hold_the_blas_threads_they_chose(func, factory, threads, rows,
                                                           expected, monkeypatch):
    from gdcore.kernels import entry
    from gdcore.kernels.blas import get_blas_threads, set_blas_threads
    model = gd.mlp([64, 128, 10], loss="cross_entropy")
    rng = np.random.default_rng(1)
    X, y = rng.random((rows, 64)), rng.integers(0, 10, rows)
    seen, real = [], getattr(entry, factory)[model.kernel_key]

    def recording(*args):
        seen.append(get_blas_threads())
        return real(*args)

    monkeypatch.setattr(entry, factory, {model.kernel_key: recording})
    before = get_blas_threads()
    set_blas_threads(2)
    try:
        args = (model, gd.init(model), X) + ((y,) if func != "predict" else ())
        want = getattr(gd, func)(*args, threads=None)
        got = getattr(gd, func)(*args, threads=threads)
        assert seen[-1] == (2 if expected is None else expected)
        assert get_blas_threads() == 2
        # Another thread count may round differently, never by more than that
        # (relative to each result's scale: an element near 0 has no digits to keep).
        for g, w in zip(_as_tuple(got), _as_tuple(want), strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14 * np.max(np.abs(w)))
    finally:
        set_blas_threads(before)


def _as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


@pytest.mark.parametrize("func", ["value_and_grad", "loss", "predict"])
def test_functional_calls_refuse_bad_threads(func):
    model = gd.mlp([3, 1])
    args = (model, gd.init(model), np.zeros((4, 3))) + ((np.zeros(4),) if func != "predict"
                                                        else ())
    with pytest.raises(ValueError, match="threads"):
        getattr(gd, func)(*args, threads=0)


# fit's optimizer step on Numba's threads (_blas_threads.update_spans) ------------------

FIT = importlib.import_module("gdcore.fit")
BLAS_THREADS = importlib.import_module("gdcore._blas_threads")


def test_update_spans_only_for_large_models_and_unspun_cores(monkeypatch):
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    large = BLAS_THREADS.THREADED_UPDATE_FROM
    assert BLAS_THREADS.update_spans(large - 1, 1) == 1
    assert BLAS_THREADS.update_spans(large, 1) == 2  # the BLAS held at one thread
    monkeypatch.setattr(BLAS_THREADS, "_blas_shares_numba_pool", lambda: False)
    assert BLAS_THREADS.update_spans(large, None) == 1  # BLAS threads would spin beside it
    assert BLAS_THREADS.update_spans(large, 2) == 1
    monkeypatch.setattr(BLAS_THREADS, "_blas_shares_numba_pool", lambda: True)
    assert BLAS_THREADS.update_spans(large, None) == 2  # one pool for both
    monkeypatch.setattr(numba, "get_num_threads", lambda: 1)
    assert BLAS_THREADS.update_spans(large, 1) == 1


def test_mkl_on_gnu_openmp_shares_numbas_pool_where_numba_runs_on_openmp():
    from gdcore.kernels import blas
    from numba.np.ufunc import parallel
    parallel._launch_threads()
    expected = (blas.LIBRARY is not None and blas.LIBRARY.threads_on_gomp
                and numba.threading_layer() == "omp")
    assert BLAS_THREADS._blas_shares_numba_pool() == expected


def _threaded_fit_problem(dtype, weights):
    rng = np.random.default_rng(3)
    model = gd.mlp([20, 200, 3], loss="cross_entropy")  # 4,803 parameters: two spans
    X = rng.normal(size=(150, 20)).astype(dtype)
    y = rng.integers(0, 3, 150)
    w = None
    if weights:
        w = rng.uniform(0.5, 2.0, 150)
        w[:40] = 0  # whole zero-weight batches take no step
    return model, gd.init(model, seed=1, dtype=dtype), X, y, w


@pytest.mark.bitwise
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer, weights, shuffle", [
    (gd.adam(1e-2), False, True), (gd.sgd(0.05, momentum=0.9), True, False),
    (gd.adamw(1e-2, weight_decay=0.1), True, True)])
def test_fit_threaded_update_is_bitwise_the_serial_one(monkeypatch, dtype, optimizer, weights,
                                                      shuffle):
    model, params, X, y, w = _threaded_fit_problem(dtype, weights)
    runs = {}
    for spans in (1, 2):
        monkeypatch.setattr(BLAS_THREADS, "update_spans", lambda n, count, k=spans: k)
        runs[spans] = gd.fit(model, params, X, y, optimizer=optimizer, epochs=3, batch_size=20,
                             sample_weight=w, shuffle=shuffle, seed=5, progress=False)
    serial, threaded = runs[1], runs[2]
    assert threaded.status == serial.status == "completed"
    np.testing.assert_array_equal(threaded.params, serial.params)
    np.testing.assert_array_equal(threaded.opt_state.slots, serial.opt_state.slots)
    np.testing.assert_array_equal(threaded.opt_state.scalars, serial.opt_state.scalars)
    assert threaded.history["loss"] == serial.history["loss"]


def test_fit_threaded_update_diverges_as_the_serial_one(monkeypatch):
    model, params, X, y, _ = _threaded_fit_problem(np.float64, False)
    runs = {}
    for spans in (1, 2):
        monkeypatch.setattr(BLAS_THREADS, "update_spans", lambda n, count, k=spans: k)
        # A finite loss and gradient, then a step to infinity: the threaded step fails.
        runs[spans] = gd.fit(model, params, X * 100, y, optimizer=gd.sgd(1e308), epochs=3,
                             batch_size=20, seed=5, progress=False)
    serial, threaded = runs[1], runs[2]
    assert threaded.status == serial.status == "diverged"
    assert "gradient or update" in threaded.message
    assert threaded.message == serial.message
    np.testing.assert_array_equal(threaded.params, serial.params)


def test_faster_of_keeps_the_faster_way_and_probes_the_other():
    chooser = FIT._FasterOf(1, 2)
    assert [chooser.choose() for _ in range(2)] == [1, 1]  # untimed: the first way first
    chooser.record(1, 2.0)
    assert chooser.choose() == 2  # the second way, still untimed
    chooser.record(2, 1.0)
    picks = []
    for _ in range(3 * FIT._FasterOf.PROBE_EVERY):
        way = chooser.choose()
        picks.append(way)
        chooser.record(way, 1.0 if way == 2 else 2.0)
    assert picks.count(1) == 3 and picks.count(2) == len(picks) - 3  # one probe per period
    for _ in range(40):  # the second way slows down (another process on its core)
        chooser.record(2, 10.0)
    assert chooser.choose() == 1
