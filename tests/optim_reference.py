"""A plain-NumPy reference for gdcore's optimizers, written from the published rules.

Nothing here imports gdcore.  Each optimizer is one function transcribing
its update rule as published (PyTorch's documented algorithms for SGD, Adam,
AdamW, RMSprop, Adagrad, Adamax and NAdam; the Lion paper for Lion), in
float64, in the textbook form (``m = b1 * m + (1 - b1) * g``, not PyTorch's
``lerp``), so agreement with gdcore is agreement to rounding, not to the
operation.

Usage::

    opt = ReferenceOptimizer("adam", b1=0.9, b2=0.999, eps=1e-8)
    state = opt.init(n)
    p = opt.step(p, g, state, lr)      # returns new params, updates ``state``

Gradient clipping is applied first: by value (clip each entry to
``[-clip_value, clip_value]``), then by global L2 norm (if the norm exceeds
``clip_norm``, scale by ``clip_norm / norm``), both before weight decay.
"""

import math

import numpy as np

# Each optimizer's hyperparameters and their defaults, in the published form.
DEFAULTS = {
    "sgd": dict(momentum=0.0, nesterov=False, weight_decay=0.0),
    "adam": dict(b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False),
    "adamw": dict(b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01, amsgrad=False),
    "rmsprop": dict(rho=0.99, eps=1e-8, momentum=0.0, centered=False, weight_decay=0.0),
    "adagrad": dict(eps=1e-10, weight_decay=0.0),
    "adamax": dict(b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0),
    "nadam": dict(b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, momentum_decay=4e-3),
    "lion": dict(b1=0.9, b2=0.99, weight_decay=0.0),
}


def clip_gradient(g, clip_value=None, clip_norm=None):
    """Clip by value, then by global L2 norm; returns a new array."""
    g = np.array(g, dtype=np.float64)
    if clip_value is not None:
        g = np.clip(g, -clip_value, clip_value)
    if clip_norm is not None:
        norm = math.sqrt(float(np.sum(g * g)))
        if norm > clip_norm:
            g = g * (clip_norm / norm)
    return g


# One function per optimizer: (p, g, state dict, lr, t) -> new p; t counts from 1.
def sgd(p, g, s, lr, t, momentum, nesterov, weight_decay):
    g = g + weight_decay * p
    if momentum > 0:
        s["buf"] = g.copy() if t == 1 else momentum * s["buf"] + g
        g = g + momentum * s["buf"] if nesterov else s["buf"]
    return p - lr * g


def adam(p, g, s, lr, t, b1, b2, eps, weight_decay, amsgrad, decoupled=False):
    if decoupled:
        p = p * (1.0 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    s["m"] = b1 * s["m"] + (1.0 - b1) * g
    s["v"] = b2 * s["v"] + (1.0 - b2) * g * g
    v = s["v"]
    if amsgrad:
        s["vmax"] = np.maximum(s["vmax"], s["v"])
        v = s["vmax"]
    bc1 = 1.0 - b1 ** t
    bc2 = 1.0 - b2 ** t
    denom = np.sqrt(v) / math.sqrt(bc2) + eps
    return p - (lr / bc1) * s["m"] / denom


def adamw(p, g, s, lr, t, **hp):
    return adam(p, g, s, lr, t, decoupled=True, **hp)


def rmsprop(p, g, s, lr, t, rho, eps, momentum, centered, weight_decay):
    g = g + weight_decay * p
    s["sq"] = rho * s["sq"] + (1.0 - rho) * g * g
    mean_sq = s["sq"]
    if centered:
        s["gavg"] = rho * s["gavg"] + (1.0 - rho) * g
        mean_sq = mean_sq - s["gavg"] ** 2
    avg = np.sqrt(mean_sq) + eps
    if momentum > 0:
        s["buf"] = momentum * s["buf"] + g / avg
        return p - lr * s["buf"]
    return p - lr * g / avg


def adagrad(p, g, s, lr, t, eps, weight_decay):
    g = g + weight_decay * p
    s["sum"] = s["sum"] + g * g
    return p - lr * g / (np.sqrt(s["sum"]) + eps)


def adamax(p, g, s, lr, t, b1, b2, eps, weight_decay):
    g = g + weight_decay * p
    s["m"] = b1 * s["m"] + (1.0 - b1) * g
    s["u"] = np.maximum(b2 * s["u"], np.abs(g) + eps)
    return p - lr / (1.0 - b1 ** t) * s["m"] / s["u"]


def nadam(p, g, s, lr, t, b1, b2, eps, weight_decay, momentum_decay):
    g = g + weight_decay * p
    mu_t = b1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))
    mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
    s["mu_product"] = s["mu_product"] * mu_t
    mu_product = s["mu_product"]
    s["m"] = b1 * s["m"] + (1.0 - b1) * g
    s["v"] = b2 * s["v"] + (1.0 - b2) * g * g
    denom = np.sqrt(s["v"] / (1.0 - b2 ** t)) + eps
    p = p - lr * (1.0 - mu_t) / (1.0 - mu_product) * g / denom
    return p - lr * mu_next / (1.0 - mu_product * mu_next) * s["m"] / denom


def lion(p, g, s, lr, t, b1, b2, weight_decay):
    c = b1 * s["m"] + (1.0 - b1) * g
    p = p - lr * (np.sign(c) + weight_decay * p)
    s["m"] = b2 * s["m"] + (1.0 - b2) * g
    return p


RULES = {"sgd": sgd, "adam": adam, "adamw": adamw, "rmsprop": rmsprop, "adagrad": adagrad,
         "adamax": adamax, "nadam": nadam, "lion": lion}


class ReferenceOptimizer:
    """One optimizer of :data:`RULES` with its hyperparameters (missing ones default)."""

    def __init__(self, name, clip_norm=None, clip_value=None, **hyper):
        unknown = set(hyper) - set(DEFAULTS[name])
        if unknown:
            raise TypeError(f"{name} has no hyperparameters {sorted(unknown)}")
        self.name = name
        self.hyper = {**DEFAULTS[name], **hyper}
        self.clip_norm = clip_norm
        self.clip_value = clip_value

    def init(self, n):
        z = np.zeros(n)
        return {"t": 0, "buf": z.copy(), "m": z.copy(), "v": z.copy(), "vmax": z.copy(),
                "sq": z.copy(), "gavg": z.copy(), "sum": z.copy(), "u": z.copy(),
                "mu_product": 1.0}

    def step(self, p, g, state, lr):
        state["t"] += 1
        g = clip_gradient(g, self.clip_value, self.clip_norm)
        return RULES[self.name](np.asarray(p, dtype=np.float64), g, state, float(lr),
                                state["t"], **self.hyper)
