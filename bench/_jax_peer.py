"""JAX as a benchmark peer: gdcore's network and loss in ``jax.numpy``, shared by the benches.

``bench_training`` (``JaxTrainer``: a ``lax.scan`` epoch of optax steps) and
``bench_value_and_grad`` (``JaxMLP``: one jitted ``jax.value_and_grad``) build
the same function here: gdcore's network (ReLU hidden layers, ``x @ W + b``
with gdcore's ``(n_in, n_out)`` weight blocks, so no transposes) from gdcore's
flat parameters through ``model.unpack``, and the losses of PyTorch and gdcore
(mean over the batch: MSE, or softmax cross-entropy from the logits).

JAX runs on its CPU backend whatever is installed.  A missing ``jax`` or
``optax`` leaves ``jax`` None and the reason in ``JAX_MISSING``: the benches
skip the peer with a note, never fake it.
"""

import os
from pathlib import Path

import numpy as np

try:
    import jax
    import jax.numpy as jnp
    import optax
    jax.config.update("jax_platforms", "cpu")  # a CPU benchmark: never an accelerator
    JAX_MISSING = None
except ImportError as exc:  # a missing peer is skipped, never faked
    jax = jnp = optax = None
    JAX_MISSING = str(exc)

JAX_OUTPUTS = {"mse": "identity", "cross_entropy": "softmax"}  # the losses this peer knows


def jax_loss(model):
    """``loss(p, xb, yb)``: ``model``'s mean loss; ``p`` a list of ``(W, b)`` (:func:`jax_params`).

    ``yb`` comes from :func:`jax_targets`.  Raises NotImplementedError for
    networks other than ReLU hidden layers with mse (identity output) or
    cross_entropy (softmax output, integer labels).
    """
    hidden = {layer.activation for layer in model.layers[:-1]}
    if hidden - {"relu"} or model.layers[-1].activation != JAX_OUTPUTS.get(model.loss):
        raise NotImplementedError(f"the JAX peer knows ReLU networks with mse or "
                                  f"cross_entropy, not {model!r}")
    mse = model.loss == "mse"

    def loss(p, xb, yb):
        a = xb
        for W, b in p[:-1]:
            a = jax.nn.relu(a @ W + b)
        W, b = p[-1]
        out = a @ W + b
        if mse:
            return jnp.mean((out - yb) ** 2)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out, yb))

    return loss


def jax_params(model, params):
    """gdcore's flat ``params`` as the list of ``(W, b)`` JAX arrays :func:`jax_loss` takes."""
    return [(jnp.asarray(W), jnp.asarray(b)) for W, b in model.unpack(params)]


def jax_targets(model, y):
    """``y`` as :func:`jax_loss` takes it: an ``(n, 1)`` column for mse, int32 labels otherwise.

    A NumPy array (callers slice and stack it before handing it to JAX).
    """
    return y.reshape(-1, 1) if model.loss == "mse" else y.astype(np.int32)


def gdcore_flat(model, tree, dtype):
    """A list of ``(W, b)`` JAX arrays (parameters or a gradient) in gdcore's flat layout."""
    flat = np.empty(model.n_params, dtype=dtype)
    for (W, b), (Wj, bj) in zip(model.unpack(flat), tree):
        W[...] = np.asarray(Wj)
        b[...] = np.asarray(bj)
    return flat


def xla_pool_threads():
    """Threads of XLA's CPU intra-op pool (named ``tf_XLAEigen``), or None if unknown."""
    x = jnp.ones((256, 256), jnp.float32)
    (x @ x).block_until_ready()  # the backend and its pool exist after a first computation
    try:
        tasks = Path("/proc/self/task").iterdir()
        return sum("XLAEigen" in (t / "comm").read_text() for t in tasks)
    except OSError:
        return None


def jax_threads_note(gdcore_threads):
    """Print what JAX's CPU backend runs on, next to gdcore's BLAS thread count."""
    pool = xla_pool_threads()
    flags = os.environ.get("XLA_FLAGS")
    line = (f"JAX {jax.__version__} (jaxlib {jaxlib_version()}, optax {optax.__version__}): "
            f"{jax.devices()[0].platform} backend, float32; XLA's CPU intra-op pool "
            f"{pool if pool is not None else 'unknown'} threads (its default: one per usable "
            f"core), XLA_FLAGS={flags or 'not set'}")
    if pool == gdcore_threads:
        line += f"; gdcore's BLAS {gdcore_threads} threads: the same, left as is"
    else:
        line += (f"; NOTE gdcore's BLAS uses {gdcore_threads}: not matched (XLA_FLAGS="
                 "'--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=N' "
                 "before the run would)")
    print(line)
    return {"jax": jax.__version__, "jaxlib": jaxlib_version(), "optax": optax.__version__,
            "xla_pool_threads": pool, "XLA_FLAGS": flags}


def jaxlib_version():
    import jaxlib
    return jaxlib.__version__
