"""Kernels compiled ahead of time (gdcore.kernels._aot, gdcore.aot_build).

The suite runs with GDCORE_KERNELS=generic, so these tests switch the kernel
tables to the extensions for a block (``served("auto")``) and compare with the
generic JIT kernels, which run the same code.  Agreement is checked to a tight
tolerance, not bitwise: the extension is compiled by pycc and the JIT kernels
by Numba's dispatchers, and on another instruction set (AVX-512) the two may
vectorise a reduction differently.

Without a fresh extension (a working tree whose kernels changed since the
last ``python -m gdcore aot``) the agreement tests are skipped; the fallback
and build tests always run.
"""

import contextlib
import logging
import subprocess
import sys

import numba
import numpy as np
import pytest

import gdcore as gd
from gdcore import _compile_notice, aot_build
from gdcore.kernels import _aot, _jit, checks, entry, epoch, lbfgs, shuffle, updates

TABLES = (entry.value_and_grad_kernel, entry.loss_kernel, entry.predict_kernel,
          epoch.epoch_runner, epoch.evaluate_kernel, updates.update_kernel,
          checks.scan_inputs_kernel, checks.first_nonfinite_kernel, lbfgs.lbfgs_step_kernel,
          lbfgs.restart_kernel, shuffle.shuffle_kernel)


@contextlib.contextmanager
def served(mode):
    """Run a block with every table filled anew under GDCORE_KERNELS=``mode``."""
    saved = [dict(t) for t in TABLES]
    old = _jit.MODE
    _jit.MODE = mode
    for t in TABLES:
        t.clear()
    try:
        yield
    finally:
        _jit.MODE = old
        for t, kept in zip(TABLES, saved):
            t.clear()
            t.update(kept)


@contextlib.contextmanager
def loader_state():
    """Forget (and afterwards restore) what the loader found and what the notice says."""
    loaded, reason = _aot._loaded, _compile_notice.NOTICE.reason
    _aot._loaded = None
    try:
        yield
    finally:
        _aot._loaded, _compile_notice.NOTICE.reason = loaded, reason


@pytest.fixture(scope="module")
def aot():
    if not _aot.exports():
        pytest.skip("no fresh AOT extension in this tree (run 'python -m gdcore aot')")


def problem(loss, activation, dtype, n=45, sizes=(5, 7, 3), seed=0):
    rng = np.random.default_rng(seed)
    if loss in ("mse", "l1", "huber"):
        sizes = sizes[:-1] + (2,)
        y = rng.standard_normal((n, 2))
    elif loss == "binary_cross_entropy":
        sizes = sizes[:-1] + (1,)
        y = rng.integers(0, 2, n).astype(float)
    else:
        y = rng.integers(0, sizes[-1], n)
    model = gd.mlp(list(sizes), activation=activation, loss=loss)
    params = gd.init(model, seed=seed, dtype=dtype)
    X = rng.standard_normal((n, sizes[0]))
    return model, params, X, y


RTOL = {np.float32: 2e-5, np.float64: 1e-11}


def close(got, expected, dtype):
    np.testing.assert_allclose(got, expected, rtol=RTOL[dtype], atol=RTOL[dtype] * 1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss, activation", [("cross_entropy", "relu"), ("mse", "tanh"),
                                              ("binary_cross_entropy", "sigmoid"),
                                              ("huber", "leaky_relu")])
def test_functional_calls_agree_with_the_jit_kernels(aot, dtype, loss, activation):
    model, params, X, y = problem(loss, activation, dtype)
    w = np.linspace(0.5, 2.0, X.shape[0])
    results = {}
    for mode in ("generic", "auto"):
        with served(mode):
            results[mode] = (gd.value_and_grad(model, params, X, y, l2=0.01, sample_weight=w),
                             gd.loss(model, params, X, y),
                             gd.predict(model, params, X))
            if mode == "auto":
                assert entry.value_and_grad_kernel[model.kernel_key].__name__.startswith("aot_")
    (vg_j, loss_j, pred_j), (vg_a, loss_a, pred_a) = results["generic"], results["auto"]
    close(vg_a[0], vg_j[0], dtype)
    close(vg_a[1], vg_j[1], dtype)
    assert vg_a[1].dtype == dtype and pred_a.dtype == dtype
    close(loss_a, loss_j, dtype)
    close(pred_a, pred_j, dtype)


FIT_CASES = [
    # optimizer, loss, activation, options
    (gd.adam(1e-2), "cross_entropy", "relu", {}),
    (gd.sgd(0.05, momentum=0.9), "mse", "tanh", {"l2": 0.01, "shuffle": False}),
    (gd.rmsprop(1e-2), "binary_cross_entropy", "sigmoid", {"sample_weight": True}),
    (gd.adagrad(0.05), "cross_entropy", "tanh", {"validation_fraction": 0.3}),
    (gd.nadam(1e-2), "huber", "relu", {"shuffle": False, "sample_weight": True}),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", range(len(FIT_CASES)))
def test_fit_agrees_with_the_jit_kernels(aot, dtype, case):
    optimizer, loss, activation, options = FIT_CASES[case]
    model, params, X, y = problem(loss, activation, dtype, n=70)
    options = dict(options)
    if options.pop("sample_weight", False):
        options["sample_weight"] = np.linspace(0.2, 1.5, X.shape[0])
    # The user's inputs as they may come: read-only, Fortran-ordered.
    X = np.asfortranarray(X)
    X.flags.writeable = False
    params.flags.writeable = False
    results = {}
    for mode in ("generic", "auto"):
        with served(mode):
            results[mode] = gd.fit(model, params, X, y, optimizer=optimizer, epochs=3,
                                   batch_size=16, seed=1, progress=False, **options)
    jit_, aot_ = results["generic"], results["auto"]
    assert aot_.status == jit_.status == "completed"
    assert aot_.params.dtype == dtype
    close(aot_.params, jit_.params, dtype)
    for key in jit_.history:
        close(aot_.history[key], jit_.history[key], dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_optimizer_steps_agree_with_the_jit_kernels(aot, dtype):
    params = np.linspace(-1, 1, 385).astype(dtype)
    grad = np.cos(np.arange(385)).astype(dtype)
    out = {}
    for mode in ("generic", "auto"):
        with served(mode):
            opt = gd.adam(1e-2, weight_decay=0.01)
            state = opt.init(params)
            p, state = opt.update(grad, state, params)
            p2 = p.copy()
            opt.update_inplace(grad, state, p2)
            out[mode] = p, p2, state.slots.copy()
    for got, expected in zip(out["auto"], out["generic"]):
        close(got, expected, dtype)


def rosen(x):
    f = np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    g = np.zeros_like(x)
    g[:-1] = -400 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2 * (1 - x[:-1])
    g[1:] += 200 * (x[1:] - x[:-1] ** 2)
    return float(f), g


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bounds", [None, [(-2, 0.8)] * 6])
def test_lbfgs_agrees_with_the_jit_kernels(aot, dtype, bounds):
    x0 = np.linspace(-1.2, 1.0, 6).astype(dtype)
    results = {}
    for mode in ("generic", "auto"):
        with served(mode):
            results[mode] = gd.minimize(rosen, x0, jac=True, method="lbfgs", bounds=bounds)
            if mode == "auto":
                assert lbfgs.lbfgs_step_kernel[0].__name__ == "aot_lbfgs_step"
    jit_, aot_ = results["generic"], results["auto"]
    assert (aot_.nit, aot_.nfev, aot_.status) == (jit_.nit, jit_.nfev, jit_.status)
    np.testing.assert_allclose(aot_.x, jit_.x, rtol=1e-12)
    np.testing.assert_allclose(aot_.fun, jit_.fun, rtol=1e-12, atol=1e-300)


def test_invalid_inputs_are_reported_as_with_the_jit_kernels(aot):
    model, params, X, y = problem("cross_entropy", "relu", np.float64)
    X[3, 1] = np.nan
    bad_label = y.copy()
    bad_label[7] = 9
    with served("auto"):
        with pytest.raises(ValueError, match="X contains NaN"):
            gd.value_and_grad(model, params, X, y)
        with pytest.raises(ValueError, match="label 9"):
            gd.fit(model, params, X[5:], bad_label[5:], epochs=1, progress=False)
        nan_params = params.copy()
        nan_params[2] = np.inf
        with pytest.raises(ValueError, match="params contains"):
            gd.fit(model, nan_params, X[5:], y[5:], epochs=1, progress=False)


def _matches(value, expected):
    """Whether ``value`` is what the export of type ``expected`` receives safely."""
    if isinstance(expected, numba.types.BaseTuple):
        return (isinstance(value, tuple) and len(value) == len(expected)
                and all(map(_matches, value, expected)))
    got = numba.typeof(value)
    if isinstance(expected, numba.types.Array):
        # Read-only and writeable arrays have one layout in memory; the rest must match.
        return (isinstance(got, numba.types.Array) and got.dtype == expected.dtype
                and got.ndim == expected.ndim and got.layout == "C")
    if isinstance(expected, numba.types.Boolean):
        return isinstance(got, numba.types.Boolean)
    if isinstance(expected, numba.types.Integer):
        return isinstance(got, (numba.types.Integer, numba.types.Boolean))
    return isinstance(got, (numba.types.Float, numba.types.Integer))


def test_every_call_site_passes_the_exported_types(aot, monkeypatch):
    """The exports check nothing: every argument the public calls pass is recorded."""
    seen, wrong = set(), []

    def checking(name, dtype, function):
        signature = aot_build.export_signatures(dtype.name)[name][1]

        def check(*args):
            seen.add(name)
            if len(args) != len(signature.args):
                wrong.append((name, len(args)))
            for i, (value, expected) in enumerate(zip(args, signature.args)):
                if not _matches(value, expected):
                    wrong.append((name, i, numba.typeof(value), expected))
            return function(*args)
        return check

    picker = _aot.picker

    def checking_picker(name, like):
        call = picker(name, like)
        for dtype, function in list(call.exports.items()):
            call.exports[dtype] = checking(name, dtype, function)
        return call

    monkeypatch.setattr(_aot, "picker", checking_picker)
    with served("auto"):
        for dtype in (np.float32, np.float64):
            for loss, act in (("cross_entropy", "relu"), ("mse", "tanh"),
                              ("binary_cross_entropy", "sigmoid")):
                model, params, X, y = problem(loss, act, dtype)
                ro = X.copy()
                ro.flags.writeable = False
                gd.value_and_grad(model, params, np.asfortranarray(X), y, l2=0.1)
                gd.value_and_grad(model, params, X[::-1], y, sample_weight=np.ones(len(y)))
                gd.loss(model, params.astype(np.float64).astype(dtype), ro, y)
                gd.predict(model, params, X.astype(np.float16))
                opt = gd.adam(1e-2)
                state = opt.init(params)
                p, state = opt.update(np.ones_like(params), state, params)
                opt.update_inplace(np.ones_like(params), state, p)
                for options in ({}, {"shuffle": False}, {"validation_fraction": 0.3},
                                {"sample_weight": np.ones(len(y)), "l2": 0.5}):
                    gd.fit(model, params, ro, y, optimizer=opt, epochs=1, batch_size=8,
                           progress=False, **options)
            x0 = np.linspace(-1, 1, 4).astype(dtype)
            gd.minimize(rosen, x0, jac=True, method="lbfgs")
            gd.minimize(rosen, x0, jac=True, method="lbfgs", bounds=[(-1, 0.5)] * 4)
            gd.minimize(lambda x: rosen(x)[0], x0, method="lbfgs")
    assert not wrong, wrong
    # restart runs only when a line search fails on a refinable gradient; it takes
    # the arrays of the same LbfgsState as lbfgs_step (minimize.py).
    assert set(_aot.EXPORTS) - {"restart"} <= seen <= set(_aot.EXPORTS)


def test_a_missing_extension_falls_back_to_the_jit_with_the_notice(monkeypatch, caplog):
    monkeypatch.setattr(_aot, "module_name", lambda dtype: "gdcore._aot_kernels_none")
    with loader_state(), caplog.at_level(logging.INFO, logger="gdcore"):
        assert _aot.exports() == {}
        assert _aot.picker("any_loss", entry.any_loss) is None
        assert "gdcore._aot_kernels_none is not built" in caplog.text
        assert "python -m gdcore aot" in caplog.text
        assert "is not built" in _compile_notice.NOTICE.reason
        with served("auto"):
            model = gd.mlp([3, 2], loss="mse")
            kernel = entry.loss_kernel[model.kernel_key]
            assert isinstance(kernel, numba.core.dispatcher.Dispatcher)  # not compiled yet


def test_a_stale_extension_falls_back_to_the_jit(monkeypatch, caplog, aot):
    stamp = _aot.stamp
    monkeypatch.setattr(_aot, "stamp", lambda: stamp().replace("numba ", "numba x"))
    with loader_state(), caplog.at_level(logging.INFO, logger="gdcore"):
        assert _aot.exports() == {}
        assert "is stale (changed: numba)" in caplog.text
        assert len([r for r in caplog.records if "stale" in r.getMessage()]) == 1


def test_a_foreign_file_falls_back_to_the_jit(monkeypatch, caplog, tmp_path):
    import sysconfig

    (tmp_path / ("foreign_aot" + sysconfig.get_config_var("EXT_SUFFIX"))).write_bytes(b"\0" * 64)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(_aot, "module_name", lambda dtype: "foreign_aot")
    with loader_state(), caplog.at_level(logging.INFO, logger="gdcore"):
        assert _aot.exports() == {}
        assert "foreign_aot is unloadable" in caplog.text


def test_the_notice_names_the_reason_and_the_build(monkeypatch):
    notice = _compile_notice.Notice()
    notice.reason = "gdcore._aot_kernels_f64 is stale (changed: sources)"
    records = []
    monkeypatch.setattr(_compile_notice.LOGGER, "info", records.append)

    class Event:
        data = {"dispatcher": entry.any_loss}

    notice.on_start(Event())
    assert records and records[0].startswith("gdcore._aot_kernels_f64 is stale")
    assert "python -m gdcore aot" in records[0]


def test_the_build_reports_what_it_built(tmp_path):
    """``python -m gdcore aot`` (one small export, to keep the test short)."""
    run = subprocess.run(
        [sys.executable, "-m", "gdcore", "aot", "--dtype", "float64", "--only", "first_nonfinite",
         "--output-dir", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "built 1 of 1 extensions in" in run.stdout
    assert "float64" in run.stdout and "_aot_kernels_f64" in run.stdout
    built = list(tmp_path.glob("_aot_kernels_f64*"))
    assert len(built) == 1
    check = subprocess.run(
        [sys.executable, "-c",
         "import importlib.util as u, sys, numpy as np\n"
         "from gdcore.kernels import _aot\n"
         f"spec = u.spec_from_file_location('gdcore._aot_kernels_f64', {str(built[0])!r})\n"
         "m = u.module_from_spec(spec); spec.loader.exec_module(m)\n"
         "x = np.zeros(5); x[3] = np.nan\n"
         "print(m.stamp() == _aot.stamp(), m.first_nonfinite(x))\n"],
        capture_output=True, text=True, timeout=120)
    assert check.stdout.split() == ["True", "3"], check.stderr
