"""The kernels compiled for one model compile only its codes, and compute what the generic ones do.

Users get kernels specialised for their model's loss, activations and
optimizer (``gdcore.kernels._jit.per_code``): the codes are constants of the
compiled body, and only the branches they select are compiled.  The rest of
the suite runs the generic kernels (``GDCORE_KERNELS=generic``, set by
conftest), which read the codes at run time and dispatch to the same per-code
implementations.  Here a fresh process with an empty Numba cache runs a
relu / cross-entropy network and an Adam fit through the specialised kernels,
reports which gdcore functions it compiled, and returns its results, which
must match the generic kernels' in this process.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gdcore as gd
from gdcore import codes
from gdcore.kernels import _jit, activations, entry, epoch, updates

SIZES = [6, 9, 7, 4]


def _problem():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((23, SIZES[0]))
    y = rng.integers(0, SIZES[-1], 23)
    model = gd.mlp(SIZES, activation="relu", loss="cross_entropy")
    return model, gd.init(model, seed=1), X, y


def _results(model, params, X, y):
    loss, grad = gd.value_and_grad(model, params, X, y, l2=0.01)
    fitted = gd.fit(model, params, X, y, optimizer=gd.adam(0.01), epochs=2, batch_size=5,
                    validation_data=(X, y), progress=False)
    return {"loss": loss, "grad": grad.tolist(), "plain_loss": gd.loss(model, params, X, y),
            "predict": gd.predict(model, params, X).tolist(),
            "fit_params": fitted.params.tolist(), "fit_history": fitted.history}


SCRIPT = textwrap.dedent("""
    import json, sys
    from numba.core import event
    compiled = set()

    class Listener(event.Listener):
        def on_start(self, ev):
            func = getattr(ev.data.get("dispatcher"), "py_func", None)
            if func is not None and func.__module__.startswith("gdcore."):
                compiled.add(func.__module__ + "." + func.__qualname__)

        def on_end(self, ev):
            pass

    event.register("numba:compile", Listener())
    sys.path.insert(0, {tests!r})
    import test_specialised as t
    out = t._results(*t._problem())
    out["compiled"] = sorted(compiled)
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def specialised_run(tmp_path_factory):
    env = dict(os.environ, GDCORE_KERNELS="specialised",
               NUMBA_CACHE_DIR=str(tmp_path_factory.mktemp("numba-cache")))
    script = SCRIPT.format(tests=os.path.dirname(__file__))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_suite_runs_the_generic_kernels():
    assert not _jit.SPECIALISE
    assert entry.value_and_grad_kernel(codes.CROSS_ENTROPY, 17) is entry.any_value_and_grad
    assert updates.update_kernel(codes.ADAM) is updates.apply_update


def test_only_the_models_codes_are_compiled(specialised_run):
    compiled = set(specialised_run["compiled"])
    names = {name.rsplit(".", 1)[-1] for name in compiled}
    # What a relu / cross-entropy network trained with Adam needs ...
    assert {"_relu", "_relu_grad", "_softmax", "cross_entropy_loss", "adam_loop"} <= names
    # ... and nothing it does not: other activations, the element-wise losses,
    # other optimizers, the run-time dispatches.
    others = {activations.FORWARD[c].__name__ for c in codes.ACTIVATION_NAMES
              if c not in (codes.RELU, codes.SOFTMAX)}
    others |= {"pointwise_loss", "_pointwise", "sgd_plain", "rmsprop_loop", "lion_loop",
               "nadam_loop", "adagrad_loop", "adamax_loop", "_any_forward", "_any_backward",
               "_any_rule", "_any_impl"}
    assert not names & others, sorted(names & others)
    assert any(name.endswith("checked_value_and_grad_of") for name in compiled)
    assert any(name.endswith("run_epoch_of") for name in compiled)


def test_specialised_kernels_compute_what_the_generic_ones_do(specialised_run):
    generic = _results(*_problem())
    for key in ("loss", "plain_loss"):
        np.testing.assert_allclose(specialised_run[key], generic[key], rtol=1e-13)
    for key in ("grad", "predict", "fit_params"):
        np.testing.assert_allclose(np.array(specialised_run[key]), np.array(generic[key]),
                                   rtol=1e-12, atol=1e-15)
    for name, values in generic["fit_history"].items():
        np.testing.assert_allclose(specialised_run["fit_history"][name], values, rtol=1e-12)


@pytest.mark.parametrize("layer_codes, spec", [
    ([codes.RELU, codes.RELU, codes.SOFTMAX], codes.RELU * codes.ACTS_BASE + codes.SOFTMAX),
    ([codes.TANH, codes.RELU, codes.IDENTITY], codes.MIXED * codes.ACTS_BASE + codes.IDENTITY),
    ([codes.SIGMOID], codes.SIGMOID * codes.ACTS_BASE + codes.SIGMOID),
])
def test_activation_spec(layer_codes, spec):
    assert codes.activation_spec(layer_codes) == spec


def test_a_model_carries_its_activation_spec():
    model = gd.Model([gd.Dense(3, 4, "tanh"), gd.Dense(4, 4, "gelu"), gd.Dense(4, 1)])
    assert model.acts == codes.MIXED * codes.ACTS_BASE + codes.IDENTITY


@pytest.mark.parametrize("factory, key", [
    (entry.value_and_grad_kernel, (99, 17)),
    (entry.predict_kernel, (codes.MSE, -1)),
    (entry.loss_kernel, (codes.MSE, 10 * codes.ACTS_BASE)),
    (epoch.epoch_runner, (42, codes.MSE, 0)),
    (updates.update_kernel, (8,)),
])
def test_an_unknown_code_is_refused(factory, key):
    with pytest.raises(ValueError, match="unknown"):
        factory(*key)
