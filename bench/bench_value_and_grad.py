"""Benchmark: one loss-and-gradient evaluation, gdcore against its peers.

Compares ``gdcore.value_and_grad(model, params, X, y)`` with

* a plain-NumPy forward/backward written below (same math, ``np.matmul``);
* PyTorch autograd (float32, as many intra-op threads as NumPy's BLAS uses),
  when torch is installed; otherwise it is skipped with a note;
* JAX (issue 15): ``jax.jit(jax.value_and_grad(loss))`` on the CPU backend,
  float32, the network and mean loss of ``_jax_peer`` (shared with
  ``bench_training``'s ``JaxTrainer``) from the same flat parameters; the
  batch and parameters are JAX arrays made beforehand (as torch's tensors),
  each call waits for its result (``block_until_ready``) and returns the
  gradient as JAX's list of ``(W, b)`` arrays.  Compiled ahead of time
  (``jit(...).lower(...).compile()``), that time printed apart from the
  steady state; XLA's intra-op pool threads printed beside gdcore's BLAS
  threads.  A missing JAX is skipped with a note.  Every case is float32, so
  ``jax_enable_x64`` stays off;
* gdcore's compiled kernel called directly on prepared arrays ("kernel only"),
  which isolates the cost of gdcore's Python layer (validation, allocation);
* the bare GEMMs of the pass through ``np.matmul`` ("GEMMs only"): the floor
  for any implementation that hands its matrix products to BLAS;

on two float32 networks: a small 10-32-1 ReLU regressor (mse, batch 32) and an
MNIST-sized 784-256-128-10 ReLU classifier (cross_entropy on integer labels,
batch 128).  Before anything is timed, gdcore's loss and gradient are checked
against NumPy's, torch's and JAX's computed from identical parameters.

Reported: µs per call (median of per-block means; implementations take turns,
see :func:`_harness.time_side_by_side`, and blocks disturbed by other
processes are dropped), time ratios, effective GFLOP/s of the GEMMs against
NumPy's own float32 matmul peak measured in this run, Numba cold-compile and
warm-cache first-call times (fresh subprocesses), and which BLAS produced the
figures.  Targets:

* small network: gdcore >= 30x faster than PyTorch per call;
* MNIST-sized network: gdcore >= 70% of the measured matmul peak.

Run ``make bench`` (or ``.venv/bin/python bench/bench_value_and_grad.py``);
about a minute on a quiet 2-core machine, under two on a busy one.  The
Markdown table is printed for the README; everything is also written to
``bench/results/value_and_grad-<blas>.json``, ``<blas>`` being the binding of
gdcore's products (``GDCORE_BLAS``; ``make bench`` runs once per installed
binding).  Figures measured while other
processes kept the machine busy are labelled CONTENDED: on 2 cores a single
busy neighbour slows 2-thread BLAS and torch by 10-50x.
"""

import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as harness  # noqa: E402  (bench/ is a folder of scripts, not a package)
from _jax_peer import (JAX_MISSING, gdcore_flat, jax, jax_loss, jax_params,  # noqa: E402
                       jax_targets, jax_threads_note, jnp)

import gdcore  # noqa: E402
from gdcore import functional  # noqa: E402
from gdcore.kernels import network  # noqa: E402
from gdcore.kernels.blas import BOUND_TO, gemm  # noqa: E402

try:
    import torch
except ImportError:  # a missing peer is skipped, never faked
    torch = None

DTYPE = np.float32
SEED = 0
SMALL_SPEEDUP_TARGET = 30.0  # gdcore at least this many times faster than torch
MNIST_PEAK_TARGET = 0.70  # fraction of NumPy's float32 matmul peak
RESULTS_PATH = Path(__file__).resolve().parent / "results" / "value_and_grad.json"

# Timing policy per network (see harness.time_side_by_side): every implementation
# gets PASSES turns of BLOCKS_PER_PASS quiet blocks of BLOCK_SECONDS; blocks during
# which other processes used more than MAX_BACKGROUND cores are dropped and
# replaced while the turn's MAX_TURN_SECONDS last.  About 15 s per network on a
# quiet machine, 30 s on a busy one.
PASSES = 3
BLOCKS_PER_PASS = 5
BLOCK_SECONDS = 0.1
SETTLE_SECONDS = 0.25
WARMUP_SECONDS = 0.2
MAX_TURN_SECONDS = 1.5
MAX_BACKGROUND = 0.3

GDCORE = "gdcore"
KERNEL = "gdcore kernel only"
NUMPY = "numpy"
GEMMS = "GEMMs only (np.matmul)"
TORCH = "torch"
JAX = "JAX jit value_and_grad"


@dataclass(frozen=True)
class Network:
    """One benchmarked configuration.

    Attributes
    ----------
    name : str
    sizes : tuple of int
        Layer widths, input first; hidden layers are ReLU.
    loss : str
        "mse" (identity output) or "cross_entropy" (integer labels).
    batch : int
    """

    name: str
    sizes: tuple
    loss: str
    batch: int


NETWORKS = (
    Network("small 10-32-1", (10, 32, 1), "mse", 32),
    Network("MNIST 784-256-128-10", (784, 256, 128, 10), "cross_entropy", 128),
)


# Problem set-up ------------------------------------------------------------------------
def make_problem(net, seed=SEED):
    """A model, float32 parameters and one batch for ``net``.

    Biases are set to small random values (``gdcore.init`` zeroes them) so the
    gradient check also exercises the bias terms.

    Returns
    -------
    model : gdcore.Model
    params : ndarray of shape (n_params,), float32
    X : ndarray of shape (batch, n_inputs), float32
    y : ndarray of shape (batch,)
        float32 targets for mse, int64 labels for cross_entropy.
    """
    output = "identity" if net.loss == "mse" else None
    model = gdcore.mlp(net.sizes, activation="relu", output=output, loss=net.loss)
    rng = np.random.default_rng(seed)
    params = gdcore.init(model, seed=rng, dtype=DTYPE)
    for _, b in model.unpack(params):
        b[:] = rng.normal(0.0, 0.1, size=b.shape)
    if net.loss == "mse":
        X = rng.standard_normal((net.batch, net.sizes[0])).astype(DTYPE)
        y = rng.standard_normal(net.batch).astype(DTYPE)
    else:
        X = rng.random((net.batch, net.sizes[0])).astype(DTYPE)  # pixel-like intensities
        y = rng.integers(0, net.sizes[-1], size=net.batch, dtype=np.int64)
    return model, params, X, y


def gemm_flops(model, n):
    """Floating-point operations of the GEMMs in one forward + backward pass.

    Forward ``2 n sum(n_in n_out)``, weight gradients the same again, input
    gradients ``2 n sum(n_in n_out)`` over every layer but the first (nobody
    needs dL/dX).  Element-wise work (bias, activations, loss) is not counted:
    the figure says how close the pass gets to pure GEMM throughput.
    """
    sizes = [layer.n_in * layer.n_out for layer in model.layers]
    return 2 * n * (2 * sum(sizes) + sum(sizes[1:]))


# Peers ------------------------------------------------------------------------------------
class NumpyMLP:
    """The same network in plain NumPy: ``np.matmul`` forward and backward.

    Idiomatic NumPy: temporaries are allocated per call, as a user would
    write it, while weight gradients go straight into a fresh flat gradient
    through ``out=`` (the same output contract as gdcore, without a
    concatenation).  Covers ReLU hidden layers with an identity output (mse)
    or logits (cross_entropy with integer labels) -- the two benchmarked cases.

    Parameters
    ----------
    model : gdcore.Model
    params : ndarray of shape (n_params,)
        Copied; its dtype is the compute dtype.
    """

    def __init__(self, model, params):
        for layer in model.layers[:-1]:
            assert layer.activation == "relu", "NumpyMLP implements ReLU hidden layers only"
        assert model.loss in ("mse", "cross_entropy")
        if model.loss == "mse":
            assert model.output == "identity"
        self.model = model
        self.params = params.copy()
        self.layers = model.unpack(self.params)
        # (start, end, shape) of every block, as scikit-learn's _unpack: slicing a
        # fresh gradient with it is cheaper than model.unpack's validation.
        self.blocks = [(int(r[0]), int(r[1]), (layer.n_in, layer.n_out))
                       for r, layer in zip(model.offsets, model.layers)]

    def value_and_grad(self, X, y):
        """Mean loss and flat gradient, like ``gdcore.value_and_grad``.

        Returns
        -------
        loss : float
        grad : ndarray of shape (n_params,)
        """
        n = X.shape[0]
        grad = np.empty_like(self.params)
        grads = [(grad[w0:b0].reshape(shape), grad[b0:b0 + shape[1]])
                 for w0, b0, shape in self.blocks]
        acts = [X]  # inputs of each layer; for ReLU, A > 0 is the same mask as Z > 0
        for l, (W, b) in enumerate(self.layers):
            Z = acts[-1] @ W
            Z += b
            if l < len(self.layers) - 1:
                np.maximum(Z, 0, out=Z)
            acts.append(Z)
        out = acts.pop()
        if self.model.loss == "mse":
            diff = out - y.reshape(out.shape)
            # The loss is accumulated in float64, like gdcore's kernels.
            loss = float(np.mean(np.square(diff), dtype=np.float64))
            delta = diff * (2.0 / diff.size)
        else:
            rows = np.arange(n)
            m = out.max(axis=1, keepdims=True)
            e = np.exp(out - m)
            s = e.sum(axis=1, keepdims=True)
            lse = m[:, 0] + np.log(s[:, 0])
            loss = float(np.mean(lse - out[rows, y], dtype=np.float64))
            delta = e / s
            delta[rows, y] -= 1
            delta *= 1.0 / n
        for l in range(len(self.layers) - 1, -1, -1):
            W, _ = self.layers[l]
            gW, gb = grads[l]
            np.matmul(acts[l].T, delta, out=gW)
            np.sum(delta, axis=0, out=gb)
            if l > 0:
                delta = delta @ W.T
                delta *= acts[l] > 0
        return loss, grad


class GemmsOnly:
    """Only the GEMMs of one forward + backward pass: the floor for BLAS-based code.

    The same matrix products as gdcore and :class:`NumpyMLP` (forward,
    weight gradients, input gradients of every layer but the first), with the
    same operand shapes and transposes, through ``np.matmul`` into
    preallocated outputs -- no bias, activation, loss or allocation.  Its
    GFLOP/s is what NumPy's BLAS reaches on these shapes, so the gap between
    it and the square-matmul peak is out of reach for any implementation that
    hands these GEMMs to BLAS one by one.  For tiny networks it mostly
    measures the cost of a Python-level ``np.matmul`` call.

    Parameters
    ----------
    model : gdcore.Model
    params : ndarray of shape (n_params,)
    X : ndarray of shape (n_samples, n_inputs)
    """

    def __init__(self, model, params, X, seed=SEED, through="numpy"):
        self.through = through  # "numpy" (np.matmul) or "gdcore" (kernels.blas.gemm)
        rng = np.random.default_rng(seed)
        n = X.shape[0]
        layers = model.unpack(params.copy())
        inputs, self.ops = [X], []
        for W, _ in layers:
            Z = np.empty((n, W.shape[1]), dtype=X.dtype)
            self.ops.append((inputs[-1], W, Z))
            inputs.append(Z)
        for l in range(len(layers) - 1, -1, -1):
            W, _ = layers[l]
            # Random deltas: uninitialised memory could hold denormals, which are slow.
            delta = rng.standard_normal((n, W.shape[1])).astype(X.dtype)
            self.ops.append((inputs[l].T, delta, np.empty_like(W)))
            if l > 0:
                self.ops.append((delta, W.T, np.empty((n, W.shape[0]), dtype=X.dtype)))

    @property
    def flops(self):
        """2 m k n summed over the products: must equal :func:`gemm_flops`."""
        return sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b, _ in self.ops)

    def __call__(self):
        if self.through == "gdcore":
            for a, b, out in self.ops:  # a transposed view is its C-contiguous base and a flag
                ta, tb = not a.flags.c_contiguous, not b.flags.c_contiguous
                _bound_gemm(a.T if ta else a, b.T if tb else b, out, ta, tb)
            return
        for a, b, out in self.ops:
            np.matmul(a, b, out=out)


@numba.njit(cache=False)
def _bound_gemm(A, B, C, trans_a, trans_b):
    """One product through the call gdcore's kernels make (``kernels.blas.gemm``)."""
    gemm(A, B, C, trans_a, trans_b)


def torch_net(model, params):
    """``nn.Sequential`` of Linear/ReLU holding a copy of gdcore's parameters, float32.

    ``torch.nn.Linear`` computes ``x @ weight.T + bias``, so gdcore's
    ``(n_in, n_out)`` weight block is copied in transposed.
    """
    layers = []
    for l, (W, b) in enumerate(model.unpack(params)):
        lin = torch.nn.Linear(W.shape[0], W.shape[1], dtype=torch.float32)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
            lin.bias.copy_(torch.from_numpy(b.copy()))
        layers.append(lin)
        if l < len(model.layers) - 1:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


class TorchMLP:
    """The same network as a ``torch.nn.Sequential`` with autograd, float32.

    ``torch.nn.Linear`` computes ``x @ weight.T + bias``, so gdcore's
    ``(n_in, n_out)`` weight block is copied in transposed.

    Parameters
    ----------
    model : gdcore.Model
    params : ndarray of shape (n_params,)
    X : ndarray of shape (n_samples, n_inputs)
    y : ndarray of shape (n_samples,)
    """

    def __init__(self, model, params, X, y):
        self.model = model
        self.net = torch_net(model, params)
        self.linears = [m for m in self.net if isinstance(m, torch.nn.Linear)]
        self.X = torch.from_numpy(X)
        if model.loss == "mse":
            self.y = torch.from_numpy(y.reshape(-1, model.n_outputs))
            self.loss_fn = torch.nn.functional.mse_loss
        else:
            self.y = torch.from_numpy(y)
            self.loss_fn = torch.nn.functional.cross_entropy

    def step(self):
        """One idiomatic training step's gradient work: zero, forward, loss, backward.

        Returns the loss tensor; ``.item()`` is left out, which if anything
        favours torch (gdcore hands back a Python float).
        """
        self.net.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.net(self.X), self.y)
        loss.backward()
        return loss

    def value_and_grad(self):
        """Loss and gradient in gdcore's flat layout, for the correctness check."""
        loss = self.step()
        grad = np.empty(self.model.n_params, dtype=DTYPE)
        for lin, (gW, gb) in zip(self.linears, self.model.unpack(grad)):
            gW[...] = lin.weight.grad.numpy().T
            gb[...] = lin.bias.grad.numpy()
        return float(loss.item()), grad


class JaxMLP:
    """The same network and loss in JAX: one jitted ``jax.value_and_grad`` per call, float32.

    The parameters and the batch are JAX arrays made once, here (torch's
    tensors are made once too); :meth:`call` waits for the result, since JAX
    dispatches asynchronously.  Compiled in the constructor, ahead of time,
    and timed apart (``trace_s``, ``compile_s``).  Parameters as :class:`TorchMLP`'s.
    """

    def __init__(self, model, params, X, y):
        self.model, self.dtype = model, params.dtype
        self.args = (jax_params(model, params), jnp.asarray(X), jnp.asarray(jax_targets(model, y)))
        t0 = time.perf_counter()
        lowered = jax.jit(jax.value_and_grad(jax_loss(model))).lower(*self.args)
        t1 = time.perf_counter()
        self._vg = lowered.compile()
        t2 = time.perf_counter()
        self.trace_s, self.compile_s = t1 - t0, t2 - t1

    def call(self):
        """The timed call: (loss, list of (dW, db)) as JAX arrays, computed."""
        return jax.block_until_ready(self._vg(*self.args))

    def value_and_grad(self):
        """Loss and gradient in gdcore's flat layout, for the correctness check."""
        loss, grad = self.call()
        return float(loss), gdcore_flat(self.model, grad, self.dtype)


# Correctness ---------------------------------------------------------------------------
def check_agreement(name, got, expected, rtol=1e-4, atol_scale=1e-5):
    """Assert that two (loss, grad) pairs agree to float32 accuracy.

    The gradient tolerance is ``rtol`` relative plus ``atol_scale`` times the
    largest gradient entry: entries that are sums with cancellation carry
    absolute, not relative, float32 error.

    Returns
    -------
    dict
        Loss difference and the largest gradient error relative to the
        largest gradient entry, for the report.
    """
    (loss_a, g_a), (loss_b, g_b) = got, expected
    scale = float(np.max(np.abs(g_b)))
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-5, err_msg=f"{name}: loss")
    np.testing.assert_allclose(g_a, g_b, rtol=rtol, atol=atol_scale * scale,
                               err_msg=f"{name}: gradient")
    return {"loss_abs_diff": abs(loss_a - loss_b),
            "grad_max_err_over_max_grad": float(np.max(np.abs(g_a - g_b)) / scale)}


def verify(model, params, X, y, jax_mlp=None):
    """Check gdcore (public API and bare kernel) against NumPy, torch and JAX on one batch.

    Also compares every float32 result with a float64 NumPy evaluation, to
    show how far each is from the exact answer.
    """
    gd = gdcore.value_and_grad(model, params, X, y)
    kernel_call, _ = prepared_kernel_call(model, params, X, y)
    report = {"gdcore vs kernel only": check_agreement("kernel only", kernel_call(), gd,
                                                       rtol=0, atol_scale=0)}
    report["gdcore vs numpy"] = check_agreement("gdcore vs numpy", gd,
                                                NumpyMLP(model, params).value_and_grad(X, y))
    if torch is not None:
        report["gdcore vs torch"] = check_agreement(
            "gdcore vs torch", gd, TorchMLP(model, params, X, y).value_and_grad())
    if jax_mlp is not None:
        report["gdcore vs JAX"] = check_agreement("gdcore vs JAX", gd, jax_mlp.value_and_grad())
    exact = NumpyMLP(model, params.astype(np.float64)).value_and_grad(X.astype(np.float64), y)
    report["gdcore vs numpy float64"] = check_agreement("gdcore vs float64", gd, exact)
    return report


# Timing ------------------------------------------------------------------------------------
def prepared_kernel_call(model, params, X, y):
    """A zero-argument call of the bare compiled kernel on validated, preallocated arrays.

    This is what ``gdcore.value_and_grad`` does after validation and
    allocation, so (public call - kernel only) is gdcore's Python overhead.

    Returns
    -------
    call : callable
        Returns ``(loss, grad)``; ``grad`` is the same buffer every call.
    prepare : callable
        Only the validation/conversion step (``functional.prepare_batch``).
    """
    p, Xk, Y, labels, weights = functional.prepare_batch(model, params, X, y)
    work = np.empty(Xk.shape[0] * model.workspace_units, dtype=p.dtype)
    grad = np.empty_like(p)
    offsets, loss_code, acts = model.offsets, model.loss_code, model.acts
    data = (Xk, Y, labels, weights)

    def call():
        loss = network.value_and_grad(p, offsets, data, loss_code, 0.0, work, grad, acts)
        return float(loss), grad

    def prepare():
        return functional.prepare_batch(model, params, X, y)

    return call, prepare


def time_network(net):
    """Verify, then time every implementation on ``net`` side by side.

    Returns
    -------
    dict
        Timings per implementation, the validation-only timing, flop count,
        the correctness report and JAX's compile times (None without JAX).
    """
    model, params, X, y = make_problem(net)
    jax_mlp = jax_compile = None
    if jax is not None:
        jax_mlp = JaxMLP(model, params, X, y)
        t0 = time.perf_counter()
        jax_mlp.call()
        jax_compile = {"trace_s": jax_mlp.trace_s, "compile_s": jax_mlp.compile_s,
                       "first_call_s": time.perf_counter() - t0}
    checks = verify(model, params, X, y, jax_mlp)
    kernel_call, prepare = prepared_kernel_call(model, params, X, y)
    numpy_mlp = NumpyMLP(model, params)
    gemms = GemmsOnly(model, params, X)
    flops = gemm_flops(model, net.batch)
    assert gemms.flops == flops, (gemms.flops, flops)  # the flop formula, counted another way
    fns = {
        GDCORE: lambda: gdcore.value_and_grad(model, params, X, y),
        KERNEL: kernel_call,
        "gdcore validation only": prepare,
        NUMPY: lambda: numpy_mlp.value_and_grad(X, y),
        GEMMS: gemms,
    }
    if torch is not None:
        fns[TORCH] = TorchMLP(model, params, X, y).step
    if jax_mlp is not None:
        fns[JAX] = jax_mlp.call
    timings, background = harness.time_side_by_side(
        fns, passes=PASSES, blocks_per_pass=BLOCKS_PER_PASS, block_seconds=BLOCK_SECONDS,
        settle_seconds=SETTLE_SECONDS, warmup_seconds=WARMUP_SECONDS,
        max_pass_seconds=MAX_TURN_SECONDS, max_background=MAX_BACKGROUND)
    return {"network": net, "n_params": model.n_params, "flops": flops,
            "timings": timings, "background": background, "checks": checks,
            "jax_compile": jax_compile}


def compile_times():
    """Numba cold-compile and warm-cache first-call times, in fresh subprocesses.

    Both subprocesses share one new ``NUMBA_CACHE_DIR``: the first finds it
    empty and compiles every kernel it calls; the second loads them from
    disk.  The first float32 call of each network is timed apart from the
    ``import gdcore`` time.  The networks share one kernel signature, so only
    the first call of a process should pay.
    """
    nets = [(n.name, n.sizes, n.loss, n.batch) for n in NETWORKS]
    code = textwrap.dedent(f"""
        import json, time
        t0 = time.perf_counter()
        import numpy as np
        import gdcore
        out = {{"import_s": time.perf_counter() - t0, "first_call_s": {{}}}}
        for name, sizes, loss, n in {nets!r}:
            model = gdcore.mlp(sizes, loss=loss)
            params = gdcore.init(model, 0, np.float32)
            rng = np.random.default_rng(0)
            X = rng.random((n, sizes[0]), dtype=np.float32)
            if loss == "mse":
                y = rng.random(n, dtype=np.float32)
            else:
                y = rng.integers(0, sizes[-1], size=n)
            t = time.perf_counter()
            gdcore.value_and_grad(model, params, X, y)
            out["first_call_s"][name] = time.perf_counter() - t
        print(json.dumps(out))
    """)
    with tempfile.TemporaryDirectory(prefix="gdcore-numba-cache-") as cache:
        cold = harness.first_call_in_subprocess(code, cache)
        warm = harness.first_call_in_subprocess(code, cache)
    return {"cold": cold, "warm": warm}


# Reporting --------------------------------------------------------------------------------


def fmt_us(us):
    return f"{us:,.2f}" if us < 100 else f"{us:,.1f}"


def table_rows(result, peak):
    """Rows of the results table for one network (gdcore first, then its peers)."""
    t = result["timings"]
    base = t[GDCORE].median_us
    rows = []
    for impl in (GDCORE, KERNEL, NUMPY, TORCH, JAX, GEMMS):
        if impl not in t:
            continue
        us = t[impl].median_us
        gflops = result["flops"] / (us * 1e-6) / 1e9
        rows.append({
            "network": result["network"].name,
            "impl": impl,
            "us_per_call": us,
            "gdcore_over_impl": base / us,
            "impl_over_gdcore": us / base,
            "gflops": gflops,
            "pct_of_peak": 100.0 * gflops / peak,
            "contended": t[impl].contended,
        })
    return rows


def markdown(rows, peak):
    headers = ["network", "impl", "µs/call", "time ratio gdcore/impl",
               "gdcore speedup (impl/gdcore)", "GFLOP/s", f"% of peak ({peak:.0f} GFLOP/s)"]
    body = [[r["network"], r["impl"], fmt_us(r["us_per_call"]), f"{r['gdcore_over_impl']:.3f}",
             f"{r['impl_over_gdcore']:.2f}x", f"{r['gflops']:.2f}", f"{r['pct_of_peak']:.1f}%"]
            for r in rows]
    return harness.markdown_table(headers, body)


def contended(result):
    """Whether ``result``'s statistics include rounds disturbed by other processes."""
    return any(t.contended for t in result["timings"].values())


def targets(results, peak):
    """PASS/MISS lines for the two performance targets.

    A verdict drawn from a contended measurement is still printed, but
    labelled as such: it says more about the neighbours than about gdcore.
    """
    small, mnist = results
    lines = []
    t = small["timings"]
    if TORCH in t:
        speedup = t[TORCH].median_us / t[GDCORE].median_us
        lines.append(harness.verdict(
            f"{small['network'].name}: gdcore >= {SMALL_SPEEDUP_TARGET:.0f}x faster than torch "
            "per call", f"{speedup:.1f}x", speedup >= SMALL_SPEEDUP_TARGET, contended(small)))
    else:
        lines.append({"target": f"{small['network'].name}: gdcore >= "
                                f"{SMALL_SPEEDUP_TARGET:.0f}x faster than torch",
                      "value": "n/a", "status": "SKIP (torch not installed)",
                      "contended": contended(small)})
    gflops = mnist["flops"] / (mnist["timings"][GDCORE].median_us * 1e-6) / 1e9
    frac = gflops / peak
    lines.append(harness.verdict(
        f"{mnist['network'].name}: gdcore >= {MNIST_PEAK_TARGET:.0%} of NumPy float32 matmul "
        "peak", f"{frac:.1%} ({gflops:.1f} of {peak:.1f} GFLOP/s)", frac >= MNIST_PEAK_TARGET,
        contended(mnist)))
    return lines


def print_breakdown(result):
    """Where a public call's time goes: validation, kernel, the rest."""
    t = result["timings"]
    full, kernel = t[GDCORE].median_us, t[KERNEL].median_us
    valid = t["gdcore validation only"].median_us
    rest = full - kernel - valid
    print(f"  {result['network'].name}: public call {fmt_us(full)} µs = kernel {fmt_us(kernel)} "
          f"+ validation {fmt_us(valid)} + rest {fmt_us(rest)} µs (allocation, dispatch; by "
          f"difference of medians, so noisy); Python layer {100 * (full - kernel) / full:.0f}% "
          "of the call")


def measure_peak(blas, when):
    """One matmul-peak measurement of ``blas`` ("numpy" or "scipy"), printed."""
    peak = harness.matmul_peak(DTYPE, blas=blas, settle_seconds=SETTLE_SECONDS)
    sizes = ", ".join(f"{n}: {g:.1f}" for n, g in peak["per_size"].items())
    label = "NumPy np.matmul" if blas == "numpy" else "SciPy sgemm"
    print(f"{label:<15} float32 peak ({when}): {peak['peak_gflops']:6.1f} GFLOP/s "
          f"(best per size {sizes}; background {harness.fmt_load(peak['background'])})")
    return peak


def reference_peak(start, end):
    """The peak used for '% of peak': the better of the start and end measurements.

    A peak is a capability, so a measurement spoiled by a neighbour (or a
    VM's host, which the background load cannot see) must not lower it:
    an underestimated peak would inflate every percentage.
    """
    return max(start["peak_gflops"], end["peak_gflops"])


def print_compile_times(compiled):
    print("Numba compile cost, first float32 call in a fresh process (one new NUMBA_CACHE_DIR):")
    for kind in ("cold", "warm"):
        c = compiled[kind]
        calls = ", ".join(f"{name} {s * 1e3:,.1f} ms" for name, s in c["first_call_s"].items())
        print(f"  {kind:<4}: import gdcore {c['import_s'] * 1e3:,.0f} ms; first call: {calls}; "
              f"process {c['process_s']:.1f} s; background {harness.fmt_load(c['background'])}")


def print_jax(results):
    """JAX's compile times and the peers' time ratios to gdcore, one line per network."""
    if all(r["jax_compile"] is None for r in results):
        return
    print("JAX compile of value_and_grad (ahead of time, not in the steady state):")
    for r in results:
        jc = r["jax_compile"]
        print(f"  {r['network'].name}: trace + lower {jc['trace_s']:.3f} s, XLA compile "
              f"{jc['compile_s']:.3f} s; first call after compiling "
              f"{jc['first_call_s'] * 1e3:.2f} ms")
    print("peers' time per call over gdcore's (impl / gdcore, > 1: gdcore faster):")
    for r in results:
        t = r["timings"]
        base = t[GDCORE].median_us
        parts = [f"{impl} {fmt_us(t[impl].median_us)} µs = {t[impl].median_us / base:.2f}x"
                 for impl in (JAX, TORCH) if impl in t]
        print(f"  {r['network'].name}: gdcore {fmt_us(base)} µs; {'; '.join(parts)}")


def print_results(results):
    """Correctness, per-implementation statistics and gdcore's cost breakdown."""
    print("correctness, checked before timing (max |grad error| / max |grad|):")
    for r in results:
        for pair, c in r["checks"].items():
            print(f"  {r['network'].name}: {pair}: loss diff {c['loss_abs_diff']:.2e}, "
                  f"grad {c['grad_max_err_over_max_grad']:.2e}")
    print(f"steady state, µs/call: median of per-block means [p25, p75]; blocks quiet/run "
          f"(quiet: other processes <= {MAX_BACKGROUND} cores)")
    for r in results:
        print(f"  {r['network'].name} (batch {r['network'].batch}):")
        for impl, t in r["timings"].items():
            flag = "  ** CONTENDED: too few quiet blocks, all kept **" if t.contended else ""
            print(f"    {impl:<24} {fmt_us(t.median_us):>10} [{fmt_us(t.p25_us)}, "
                  f"{fmt_us(t.p75_us)}]  blocks {t.blocks_quiet}/{t.blocks_run}, "
                  f"{t.calls:,} calls{flag}")
    print("gdcore per-call breakdown:")
    for r in results:
        print_breakdown(r)


def main():
    # Import SciPy's BLAS now so threadpoolctl sees it too (Numba's np.dot calls it).
    import scipy.linalg.cython_blas  # noqa: F401
    print("gdcore value_and_grad benchmark (float32)")
    harness.print_machine()
    idle = harness.print_background(MAX_BACKGROUND)
    blas = harness.blas_report()
    harness.print_blas(blas, f"gdcore's products call the '{BOUND_TO}' entry's BLAS "
                       "(gdcore.kernels.blas)")
    threads = harness.match_torch_threads(blas, torch)
    jax_info = None
    if jax is None:
        print(f"JAX: not installed ({JAX_MISSING}) -- JAX peer skipped")
    else:
        jax_info = jax_threads_note(threads["numpy_blas"])
    print("matmul peaks: NumPy's is the reference for '% of peak' (measured at start and end, "
          "the better counts); SciPy's is the BLAS of Numba's np.dot, for information")
    peaks = {"numpy_start": measure_peak("numpy", "start"),
             "scipy": measure_peak("scipy", "start")}
    bandwidth = harness.copy_bandwidth()
    print(f"NumPy copy bandwidth: {bandwidth:.1f} GB/s (for reference; these passes are "
          "GEMM- or latency-bound)")
    compiled = compile_times()
    print_compile_times(compiled)

    results = []
    for net in NETWORKS:
        print(f"timing {net.name} (batch {net.batch}) ...", flush=True)
        results.append(time_network(net))
    peaks["numpy_end"] = measure_peak("numpy", "end")
    peak = reference_peak(peaks["numpy_start"], peaks["numpy_end"])
    peaks["reference_gflops"] = peak
    print_results(results)
    print_jax(results)

    rows = [row for r in results for row in table_rows(r, peak)]
    print()
    print(markdown(rows, peak))
    print(f"\n{KERNEL}: gdcore.kernels.network.value_and_grad on already validated arrays "
          "with reused buffers, i.e. the public call minus validation and allocation.\n"
          f"{JAX}: jax.jit(jax.value_and_grad(loss)) compiled ahead of time, on JAX arrays "
          "made beforehand, block_until_ready per call; its compile time is printed apart.\n"
          f"{GEMMS}: the pass's matrix products alone, same shapes and transposes; for the "
          "MNIST-sized network the floor of any per-GEMM BLAS code, for the small one mostly "
          "Python call overhead.\nGFLOP/s counts the GEMM flops of forward + backward for "
          "every row; '% of peak' is against NumPy's float32 square-matmul peak of this run.")
    above = sorted({f"{r['network']} / {r['impl']}" for r in rows if r["pct_of_peak"] > 100})
    if above:
        print(f"\n> Suspect peak: {', '.join(above)} ran above the measured matmul peak, so the "
              "peak was probably measured during a disturbance and every '% of peak' is "
              "overstated.")
    noisy = [r["network"].name for r in results if contended(r)]
    if noisy:
        print(f"\n> Not for publication: other processes used more than {MAX_BACKGROUND} "
              f"cores during most of the {', '.join(noisy)} measurements.")
    print()
    verdicts = targets(results, peak)
    harness.print_verdicts(verdicts)

    out = {
        "environment": harness.environment(),
        "blas": blas,
        "threads": threads,
        "jax": jax_info,
        "background_before_cores": idle,
        "timing_policy": {"passes": PASSES, "blocks_per_pass": BLOCKS_PER_PASS,
                          "block_seconds": BLOCK_SECONDS, "settle_seconds": SETTLE_SECONDS,
                          "warmup_seconds": WARMUP_SECONDS,
                          "max_turn_seconds": MAX_TURN_SECONDS,
                          "max_background_cores": MAX_BACKGROUND},
        "matmul_peak": peaks,
        "copy_bandwidth_gbs": bandwidth,
        "compile": compiled,
        "networks": [{"name": r["network"].name, "sizes": r["network"].sizes,
                      "loss": r["network"].loss, "batch": r["network"].batch,
                      "n_params": r["n_params"], "gemm_flops": r["flops"],
                      "timings_us": r["timings"], "block_background_cores": r["background"],
                      "checks": r["checks"], "jax_compile": r["jax_compile"]}
                     for r in results],
        "table": rows,
        "targets": verdicts,
    }
    # One file per BLAS binding (GDCORE_BLAS).
    path = harness.write_json(RESULTS_PATH.with_name(f"value_and_grad-{BOUND_TO}.json"), out)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
