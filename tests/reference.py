"""A plain-NumPy reference for gdcore's models, written from the documented spec.

Nothing here imports gdcore's kernels or uses its offset table: the parameter
layout, every activation and every loss are re-derived from their definitions
(the layout rule of the model docstring, PyTorch's ``reduction="mean"`` losses).
The reference only reads the *specification* of a model: its layers'
``(n_in, n_out, activation)`` and its loss name.

Every function accepts either one parameter vector ``(n_params,)`` or a batch
of them ``(B, n_params)``; batches let SciPy's vectorised finite differences
evaluate a whole stencil in one call.
"""

import numpy as np
from scipy.differentiate import jacobian
from scipy.special import erf, logsumexp

LEAKY_SLOPE = 0.01
HUBER_DELTA = 1.0
HIDDEN_ACTIVATIONS = ("identity", "relu", "leaky_relu", "elu", "sigmoid", "tanh",
                      "softplus", "gelu", "silu")
REGRESSION_LOSSES = ("mse", "mae", "huber")
LOGIT_LOSSES = ("binary_cross_entropy", "cross_entropy")
LOSSES = REGRESSION_LOSSES + LOGIT_LOSSES


# Activations, each from its formula ---------------------------------------------
def _sigmoid(z):
    # 1 / (1 + e^-z) for z >= 0 and e^z / (1 + e^z) for z < 0: no overflow warning.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


ACTIVATIONS = {
    "identity": lambda z: z,
    "relu": lambda z: np.maximum(z, 0.0),
    "leaky_relu": lambda z: np.where(z > 0, z, LEAKY_SLOPE * z),
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0.0))),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "softplus": lambda z: np.logaddexp(0.0, z),
    "gelu": lambda z: 0.5 * z * (1.0 + erf(z / np.sqrt(2.0))),
    "silu": lambda z: z * _sigmoid(z),
    "softmax": _softmax,
}

# Where each activation's derivative (relu, leaky_relu) or second derivative
# (elu with alpha = 1) jumps.  A finite-difference stencil across such a point
# measures neither side, so the reference skips those coordinates.
KINKED = frozenset({"relu", "leaky_relu", "elu"})


# Layout, from the documented rule ----------------------------------------------------
def layout(model):
    """[(w_start, b_start, n_in, n_out, activation), ...] and n_params.

    Layer l: its (n_in, n_out) row-major weights, then its (n_out,) bias, then layer l+1.
    """
    rows = []
    start = 0
    for layer in model.layers:
        w0 = start
        b0 = w0 + layer.n_in * layer.n_out
        rows.append((w0, b0, layer.n_in, layer.n_out, layer.activation))
        start = b0 + layer.n_out
    return rows, start


def _batched(params):
    params = np.asarray(params, dtype=np.float64)
    return params[None, :] if params.ndim == 1 else params, params.ndim == 1


def forward(model, params, X):
    """Pre-activations and activations of every layer.

    Returns a list of (Z, A), each of shape (B, n_samples, n_out); for a logit
    loss the output layer's A is its activation too (it is what predict returns).
    """
    P, _ = _batched(params)
    rows, n_params = layout(model)
    assert P.shape[1] == n_params
    A = np.asarray(X, dtype=np.float64)
    out = []
    for w0, b0, n_in, n_out, act in rows:
        W = P[:, w0:b0].reshape(-1, n_in, n_out)
        b = P[:, b0:b0 + n_out]
        Z = A @ W + b[:, None, :]
        A = ACTIVATIONS[act](Z)
        out.append((Z, A))
    return out


def predict(model, params, X):
    P, single = _batched(params)
    A = forward(model, P, X)[-1][1]
    return A[0] if single else A


def _dense_targets(model, y, n):
    """y as (n, k) floats, or None for integer class labels."""
    y = np.asarray(y)
    if model.loss == "cross_entropy" and y.ndim == 1:
        return None
    return y.reshape(n, model.layers[-1].n_out).astype(np.float64)


def per_sample_loss(model, params, X, y):
    """l_i of every sample, shape (B, n): the mean over outputs, or the per-sample CE."""
    P, _ = _batched(params)
    n = np.shape(X)[0]
    Z, A = forward(model, P, X)[-1]
    Y = _dense_targets(model, y, n)
    if model.loss == "cross_entropy":
        log_p = Z - logsumexp(Z, axis=-1, keepdims=True)  # log softmax
        if Y is None:
            labels = np.asarray(y, dtype=np.int64)
            return -log_p[:, np.arange(n), labels]
        return -(Y * log_p).sum(axis=-1)
    if model.loss == "binary_cross_entropy":
        # -[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))], with
        # -log sigmoid(z) = log(1 + e^-z) and -log(1 - sigmoid(z)) = log(1 + e^z).
        elem = Y * np.logaddexp(0.0, -Z) + (1.0 - Y) * np.logaddexp(0.0, Z)
    else:
        r = A - Y  # regression losses read the activated output
        if model.loss == "mse":
            elem = r * r
        elif model.loss == "mae":
            elem = np.abs(r)
        elif model.loss == "huber":
            ar = np.abs(r)
            d = HUBER_DELTA
            elem = np.where(ar < d, 0.5 * r * r, d * (ar - 0.5 * d))
        else:
            raise ValueError(model.loss)
    return elem.mean(axis=-1)


def loss(model, params, X, y, l2=0.0, sample_weight=None):
    """The batch loss: (weighted) mean of per-sample losses + 0.5 * l2 * sum(W**2)."""
    P, single = _batched(params)
    li = per_sample_loss(model, P, X, y)
    if sample_weight is None:
        value = li.mean(axis=-1)
    else:
        w = np.asarray(sample_weight, dtype=np.float64)
        value = (li * w).sum(axis=-1) / w.sum()
    if l2:
        rows, _ = layout(model)
        sq = sum((P[:, w0:b0] ** 2).sum(axis=-1) for w0, b0, *_ in rows)
        value = value + 0.5 * l2 * sq
    return float(value[0]) if single else value


def kink_pattern(model, params, X, y):
    """Which side of every kink each sample sits on, shape (B, n_kinks), bool.

    relu / leaky_relu / elu units: z > 0.  mae: sign of the residual.  huber:
    |residual| < delta.
    """
    P, _ = _batched(params)
    n = np.shape(X)[0]
    layers = forward(model, P, X)
    parts = [np.zeros((P.shape[0], 0), dtype=bool)]
    for (Z, _), layer in zip(layers, model.layers):
        if layer.activation in KINKED:
            parts.append((Z > 0).reshape(P.shape[0], -1))
    if model.loss in ("mae", "huber"):
        r = layers[-1][1] - _dense_targets(model, y, n)
        if model.loss == "mae":
            parts += [(r > 0).reshape(P.shape[0], -1), (r < 0).reshape(P.shape[0], -1)]
        else:
            parts.append((np.abs(r) < HUBER_DELTA).reshape(P.shape[0], -1))
    return np.concatenate(parts, axis=1)


def kink_margin(model, params, X, y, activations=("relu", "leaky_relu"), residuals=True):
    """Distance of the nearest kinked quantity to its kink (inf when there is none).

    Pre-activations of the units with one of ``activations`` are measured from
    0; with ``residuals``, mae residuals from 0 and huber residuals from
    +-delta.  Used to keep float32 runs away from places where rounding alone
    can flip a derivative.
    """
    n = np.shape(X)[0]
    layers = forward(model, params, X)
    dists = [np.inf]
    for (Z, _), layer in zip(layers, model.layers):
        if layer.activation in activations:
            dists.append(np.abs(Z).min())
    if residuals and model.loss in ("mae", "huber"):
        r = layers[-1][1] - _dense_targets(model, y, n)
        dists.append(np.abs(r).min() if model.loss == "mae"
                     else np.abs(np.abs(r) - HUBER_DELTA).min())
    return float(min(dists))


def numerical_grad(model, params, X, y, l2=0.0, sample_weight=None, step=1e-4):
    """Fourth-order central differences of :func:`loss` by ``scipy.differentiate``.

    Returns
    -------
    grad : ndarray of shape (n_params,)
        NaN at the coordinates whose stencil crosses a kink.
    n_skipped : int
    """
    p0 = np.asarray(params, dtype=np.float64)
    base_pattern = kink_pattern(model, p0, X, y)[0]
    crossing = np.zeros(p0.shape[0], dtype=bool)

    def f(x):
        # jacobian() evaluates columns x[:, ...]: move the parameter axis last.
        pts = np.moveaxis(x, 0, -1).reshape(-1, p0.shape[0])
        moved = pts != p0
        perturbed = moved.any(axis=1)
        if perturbed.any():
            coord = moved[perturbed].argmax(axis=1)
            flips = (kink_pattern(model, pts[perturbed], X, y) != base_pattern).any(axis=1)
            crossing[coord[flips]] = True
        return loss(model, pts, X, y, l2, sample_weight).reshape(x.shape[1:])

    res = jacobian(f, p0, order=4, maxiter=1, initial_step=step)
    return np.where(crossing, np.nan, res.df), int(crossing.sum())


def f32_exact(a):
    """``a`` rounded to float32 and back: the same point for float32 and float64 runs."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def norm_rel_error(a, b, floor=0.0):
    """||a - b|| / max(||a||, ||b||, floor); 0 when everything is 0."""
    scale = max(np.linalg.norm(a), np.linalg.norm(b), floor)
    return 0.0 if scale == 0 else float(np.linalg.norm(a - b) / scale)
