"""Model specifications, the flat parameter layout and initialisation.

A :class:`Model` is an immutable description: a tuple of :class:`Dense` layers
and a loss.  Its parameters live in ONE flat 1-D array; the model's
``offsets`` table says where each layer's blocks are.  Layer ``l`` stores its
weights row-major as ``(n_in, n_out)`` (so a layer computes ``X @ W + b``),
then its bias ``(n_out,)``, then layer ``l + 1`` follows.

Nothing here is compiled: this module only computes layouts and draws initial
values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _validate, codes
from ._typing import FloatArray, Seed

# Activations whose layers get He initialisation; the rest get Glorot.
_HE_ACTIVATIONS = frozenset({"relu", "leaky_relu", "elu", "gelu", "silu"})
# The int64 offset table must address every parameter.
_MAX_PARAMS = 2**62


class _Layout(NamedTuple):
    """What the kernels index, derived once from a model's validated layers."""

    offsets: np.ndarray  # (n_layers, codes.N_COLS) int64, read-only for good
    n_params: int
    n_inputs: int
    n_outputs: int
    loss_code: int
    acts: int  # activation spec (codes.activation_spec): the kernels compiled for the model
    kernel_key: tuple  # (loss_code, acts): the model's key in the kernel tables (kernels._jit)
    workspace_units: int  # per-sample scratch of the gradient kernels (kernels.network)
    forward_units: int  # per-sample scratch of forward-only kernels (loss, predict): Z and A


def _build_layout(layers, loss_code):
    table = np.zeros((len(layers), codes.N_COLS), dtype=np.int64)
    start = 0
    units = 0
    for l, layer in enumerate(layers):
        table[l, codes.COL_W_START] = start
        table[l, codes.COL_B_START] = start + layer.n_in * layer.n_out
        table[l, codes.COL_N_IN] = layer.n_in
        table[l, codes.COL_N_OUT] = layer.n_out
        table[l, codes.COL_ACTIVATION] = codes.ACTIVATIONS[layer.activation]
        table[l, codes.COL_UNIT_START] = units
        start += layer.n_params
        units += layer.n_out
    # The table's memory belongs to an immutable bytes object, so neither the
    # table nor its base can be made writeable again (a read-only array that owns
    # its memory can be, with setflags(write=True)).
    offsets = np.frombuffer(table.tobytes(), dtype=np.int64).reshape(table.shape)
    if not offsets.flags.aligned:  # pragma: no cover - CPython aligns bytes to 8
        table.setflags(write=False)  # the kernels are compiled for aligned tables
        offsets = table[...]
    widest = max(layer.n_out for layer in layers)
    acts = codes.activation_spec(table[:, codes.COL_ACTIVATION])
    return _Layout(offsets=offsets, n_params=start, n_inputs=layers[0].n_in,
                   n_outputs=layers[-1].n_out, loss_code=loss_code,
                   acts=acts, kernel_key=(loss_code, acts),
                   workspace_units=2 * units + 2 * widest, forward_units=2 * units)


@dataclass(frozen=True)
class Dense:
    """A fully connected layer ``activation(X @ W + b)``.

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths, both > 0.
    activation : str, default "identity"
        One of ``identity, relu, leaky_relu, elu, sigmoid, tanh, softplus,
        gelu, silu``; ``softmax`` is allowed only as the output of a
        ``cross_entropy`` model.
    """

    n_in: int
    n_out: int
    activation: str = "identity"

    def __post_init__(self):
        object.__setattr__(self, "n_in", _validate.positive_int(self.n_in, "n_in"))
        object.__setattr__(self, "n_out", _validate.positive_int(self.n_out, "n_out"))
        object.__setattr__(self, "activation", _validate.activation_name(self.activation))

    def __reduce__(self):
        # Pickles and copies go through the constructor, which validates.
        return type(self), (self.n_in, self.n_out, self.activation)

    def __setstate__(self, state):
        # Pickles that carry instance state (crafted ones): validate it as new.
        if not isinstance(state, dict):
            raise TypeError("a pickled Dense must carry n_in, n_out and activation")
        for name in ("n_in", "n_out", "activation"):
            object.__setattr__(self, name, state.get(name, "identity"))
        self.__post_init__()

    @property
    def n_params(self):
        """Weights plus biases: ``(n_in + 1) * n_out``."""
        return (self.n_in + 1) * self.n_out


@dataclass(frozen=True)
class Model:
    """A feed-forward network: layers applied in order, trained on ``loss``.

    Parameters
    ----------
    layers : sequence of Dense
        At least one layer; each layer's ``n_in`` equals the previous ``n_out``.
    loss : str, default "mse"
        ``mse``, ``mae``, ``huber``, ``binary_cross_entropy`` (alias
        ``log_loss``) or ``cross_entropy``.  The logit losses read the output
        layer's pre-activation; their output activation (sigmoid / softmax,
        or identity for raw logits) only shapes :func:`gdcore.predict`.

    Attributes
    ----------
    n_params : int
        Length of the flat parameter array.
    offsets : ndarray of shape (n_layers, 6), int64, read-only
        The layer offset table, one row per layer, columns
        ``[w_start, b_start, n_in, n_out, activation_code, unit_start]``
        (``unit_start``: the layer's first column in the per-sample
        activation workspace, i.e. the number of units in earlier layers).
        Computed once by the constructor; neither it nor the memory it views
        can be made writeable.

    Notes
    -----
    Pickling and copying (``copy.copy``, ``copy.deepcopy``) rebuild the model
    from ``layers`` and ``loss`` through the constructor: a copy is validated
    and laid out like a new model, and a table carried by a pickle is never
    used.
    """

    layers: tuple
    loss: str = "mse"
    if TYPE_CHECKING:  # set by __post_init__ from the layout (_Layout's fields)
        offsets: np.ndarray = field(init=False)
        n_params: int = field(init=False)
        n_inputs: int = field(init=False)
        n_outputs: int = field(init=False)
        loss_code: int = field(init=False)
        acts: int = field(init=False)
        kernel_key: tuple = field(init=False)
        workspace_units: int = field(init=False)
        forward_units: int = field(init=False)

    def __post_init__(self):
        if isinstance(self.layers, Dense) or not hasattr(self.layers, "__iter__") or \
                (isinstance(self.layers, np.ndarray) and self.layers.ndim == 0):
            raise TypeError(f"layers must be a sequence of Dense, got {self.layers!r}")
        layers = tuple(self.layers)
        if not layers:
            raise ValueError("layers must hold at least one Dense layer, got none")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Dense):
                raise TypeError(f"layers[{i}] must be a Dense, got {layer!r}")
        # Each layer is checked again (a Dense changed through object.__setattr__
        # after its construction would otherwise reach the offset table).
        checked = []
        for i, layer in enumerate(layers):
            try:
                checked.append(Dense(layer.n_in, layer.n_out, layer.activation))
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"layers[{i}]: {exc}") from None
        layers = tuple(checked)
        for i in range(1, len(layers)):
            if layers[i].n_in != layers[i - 1].n_out:
                raise ValueError(
                    f"layers[{i}].n_in is {layers[i].n_in} but layers[{i - 1}].n_out is "
                    f"{layers[i - 1].n_out}; consecutive widths must match"
                )
        loss = _validate.loss_name(self.loss)
        loss_code = codes.LOSSES[loss]
        for i, layer in enumerate(layers[:-1]):
            if layer.activation == "softmax":
                raise ValueError(
                    f"layers[{i}] uses softmax, which is only allowed on the output layer "
                    "of a cross_entropy model"
                )
        out = layers[-1]
        out_code = codes.ACTIVATIONS[out.activation]
        if loss_code in codes.LOGIT_LOSSES:
            allowed = codes.LOGIT_LOSS_OUTPUTS[loss_code]
            if out_code not in allowed:
                names = " or ".join(sorted(codes.ACTIVATION_NAMES[c] for c in allowed))
                raise ValueError(
                    f"the output activation of a {loss} model must be {names} (the loss "
                    f"is computed from the logits), got {out.activation!r}"
                )
        elif out_code == codes.SOFTMAX:
            raise ValueError(
                f"softmax output is only allowed with loss='cross_entropy', got loss={loss!r}"
            )
        if loss_code == codes.CROSS_ENTROPY and out.n_out < 2:
            raise ValueError(
                "a cross_entropy model needs at least 2 outputs; use "
                "binary_cross_entropy for a single logit"
            )
        n_params = sum(layer.n_params for layer in layers)
        if n_params >= _MAX_PARAMS:
            raise ValueError(f"layers describe {n_params} parameters, more than can be "
                             f"addressed ({_MAX_PARAMS})")
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "loss", loss)
        # The derived layout, as plain attributes of the frozen instance: assignment
        # raises, and every call reads them (properties cost 0.18 us per read, about
        # 3 us of a 20 us small-network value_and_grad).  object.__setattr__ on a
        # model is tampering gdcore does not defend against.
        layout = _build_layout(layers, loss_code)
        object.__setattr__(self, "_layout", layout)  # the mark of a constructed model
        for name, value in layout._asdict().items():
            object.__setattr__(self, name, value)

    # Pickling and copying rebuild through the constructor, so a copy is validated
    # and its layout recomputed (read-only) like a new model's: a pickled table,
    # edited or not, is never trusted.
    def __reduce__(self):
        return type(self), (self.layers, self.loss)

    def __setstate__(self, state):
        # Reached only by pickles that carry instance state (older gdcore versions,
        # or crafted ones): keep the spec, validate it, recompute the rest.
        if not isinstance(state, dict) or "layers" not in state:
            raise TypeError("a pickled Model must carry its layers and loss")
        object.__setattr__(self, "layers", state["layers"])
        object.__setattr__(self, "loss", state.get("loss", "mse"))
        self.__post_init__()

    @property
    def output(self):
        """The output layer's activation name."""
        return self.layers[-1].activation

    def _blocks(self):
        """``(w_start, b_start, n_in, n_out)`` of each layer, from the offset table."""
        cols = [codes.COL_W_START, codes.COL_B_START, codes.COL_N_IN, codes.COL_N_OUT]
        return [tuple(int(v) for v in row) for row in self.offsets[:, cols]]

    def unpack(self, params: FloatArray) -> list[tuple[FloatArray, FloatArray]]:
        """Split a flat parameter array into per-layer views.

        Parameters
        ----------
        params : ndarray of shape (n_params,)

        Returns
        -------
        list of (W, b)
            ``W`` of shape (n_in, n_out) and ``b`` of shape (n_out,), views
            into ``params`` (writing to them writes to ``params``).
        """
        if not isinstance(params, np.ndarray):
            raise TypeError(
                f"params must be a NumPy array to return views, got {type(params).__name__}"
            )
        flat = _validate.params_array(self, params)
        if flat is not params:
            raise ValueError(
                "params must be a writeable, C-contiguous float32 or float64 array to return "
                f"views, got dtype {params.dtype}, C-contiguous {params.flags.c_contiguous}, "
                f"writeable {params.flags.writeable}"
            )
        out = []
        for w0, b0, n_in, n_out in self._blocks():
            out.append((params[w0:b0].reshape(n_in, n_out), params[b0:b0 + n_out]))
        return out

    def pack(self, arrays: Sequence[tuple[ArrayLike, ArrayLike]],
             dtype: DTypeLike = np.float64) -> FloatArray:
        """Inverse of :meth:`unpack`: a new flat array from ``[(W, b), ...]``."""
        arrays = list(arrays)
        n_layers = self.offsets.shape[0]
        if len(arrays) != n_layers:
            raise ValueError(f"arrays must hold {n_layers} (W, b) pairs, got {len(arrays)}")
        dtype = _validate.float_dtype(dtype)
        flat = np.empty(self.n_params, dtype=dtype)
        for l, ((W, b), (w0, b0, n_in, n_out)) in enumerate(zip(arrays, self._blocks())):
            W, b = np.asarray(W), np.asarray(b)
            if W.dtype.kind not in "biuf" or b.dtype.kind not in "biuf":
                raise TypeError(f"arrays[{l}] must hold real numbers, got dtypes "
                                f"{W.dtype} and {b.dtype}")
            if W.shape != (n_in, n_out) or b.shape != (n_out,):
                raise ValueError(
                    f"layer {l} expects W {(n_in, n_out)} and b {(n_out,)}, "
                    f"got W {W.shape} and b {b.shape}"
                )
            flat[w0:b0] = W.reshape(-1)
            flat[b0:b0 + n_out] = b
        return flat

    def to_spec(self) -> dict:
        """The model as a plain, JSON-serialisable dict (see :meth:`from_spec`).

        Returns
        -------
        dict
            ``{"layers": [{"n_in": int, "n_out": int, "activation": str}, ...],
            "loss": str}`` with canonical (lower-case, alias-resolved) names.
        """
        layers = [{"n_in": layer.n_in, "n_out": layer.n_out, "activation": layer.activation}
                  for layer in self.layers]
        return {"layers": layers, "loss": self.loss}

    @classmethod
    def from_spec(cls, spec):
        """Build a model from the dict :meth:`to_spec` returns.

        Every value goes through the normal constructors, so a spec is held to
        the same rules as a model built in code.  Keys must match exactly: an
        unknown key may carry meaning this version cannot honour, so it is
        refused rather than dropped.

        Parameters
        ----------
        spec : dict
            ``{"layers": [{"n_in": .., "n_out": .., "activation": ..}, ...], "loss": ..}``.

        Returns
        -------
        Model

        Raises
        ------
        TypeError, ValueError
            Naming the part of ``spec`` that is malformed.
        """
        def check_keys(value, keys, name):
            if not isinstance(value, dict):
                raise TypeError(f"{name} must be a dict with keys {keys}, "
                                f"got {type(value).__name__}")
            missing = [key for key in keys if key not in value]
            unknown = [key for key in value if key not in keys]
            if missing or unknown:
                raise ValueError(f"{name} must have exactly the keys {keys}; missing "
                                 f"{missing}, unknown {unknown}")

        check_keys(spec, ["layers", "loss"], "spec")
        if not isinstance(spec["layers"], (list, tuple)):
            raise TypeError(f"spec['layers'] must be a list of layer dicts, "
                            f"got {type(spec['layers']).__name__}")
        layers = []
        for i, layer in enumerate(spec["layers"]):
            name = f"spec['layers'][{i}]"
            check_keys(layer, ["n_in", "n_out", "activation"], name)
            try:
                layers.append(Dense(layer["n_in"], layer["n_out"], layer["activation"]))
            except (TypeError, ValueError) as exc:
                kind = TypeError if isinstance(exc, TypeError) else ValueError
                raise kind(f"{name}: {exc}") from None
        return cls(tuple(layers), loss=spec["loss"])

    def __str__(self):
        lines = [f"Model(loss={self.loss!r})",
                 f"  {'layer':<6}{'shape':>14}  {'activation':<12}{'params':>10}"]
        for l, layer in enumerate(self.layers):
            shape = f"{layer.n_in} -> {layer.n_out}"
            lines.append(f"  {l:<6}{shape:>14}  {layer.activation:<12}{layer.n_params:>10,}")
        lines.append(f"  total parameters: {self.n_params:,}")
        return "\n".join(lines)


def require_model(model):
    """Raise TypeError unless ``model`` is a :class:`Model`."""
    if type(model) is Model and "_layout" in model.__dict__:  # every call: one fast test
        return
    if not isinstance(model, Model):
        raise TypeError(f"model must be a gdcore Model, got {type(model).__name__}")
    if type(model.__dict__.get("_layout")) is not _Layout:
        # e.g. object.__new__(Model), or a pickle that skipped the constructor
        raise TypeError("model must be a gdcore Model built by its constructor; this one "
                        "has no offset table")


def mlp(sizes: Sequence[int], activation: str = "relu", output: str | None = None,
        loss: str = "mse") -> Model:
    """A multilayer perceptron from its layer widths.

    Parameters
    ----------
    sizes : sequence of int
        ``[n_inputs, hidden_1, ..., n_outputs]``, at least two entries.
    activation : str, default "relu"
        Activation of every hidden layer.
    output : str or None
        Output activation; by default what the loss implies (softmax for
        ``cross_entropy``, sigmoid for ``binary_cross_entropy``, identity
        otherwise).
    loss : str, default "mse"

    Returns
    -------
    Model
    """
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__") or \
            (isinstance(sizes, np.ndarray) and sizes.ndim == 0):
        raise TypeError(f"sizes must be a sequence of layer widths, got {sizes!r}")
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(
            f"sizes must list at least the input and output widths, got {sizes!r}"
        )
    sizes = [_validate.positive_int(s, f"sizes[{i}]") for i, s in enumerate(sizes)]
    n_params = sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))
    if n_params >= _MAX_PARAMS:
        raise ValueError(f"sizes {sizes} give {n_params} parameters, more than can be "
                         f"addressed ({_MAX_PARAMS})")
    activation = _validate.activation_name(activation)
    if activation == "softmax" and len(sizes) > 2:
        raise ValueError("softmax cannot be a hidden activation; use it as output of a "
                         "cross_entropy model")
    loss = _validate.loss_name(loss)
    if output is None:
        output = codes.ACTIVATION_NAMES[codes.DEFAULT_OUTPUT[codes.LOSSES[loss]]]
    else:
        output = _validate.activation_name(output, "output activation")
    layers = [Dense(sizes[i], sizes[i + 1], activation) for i in range(len(sizes) - 2)]
    layers.append(Dense(sizes[-2], sizes[-1], output))
    return Model(tuple(layers), loss=loss)


def init(model: Model, seed: Seed = 0, dtype: DTypeLike = np.float64) -> FloatArray:
    """Initial parameters: He for ReLU-like layers, Glorot otherwise, zero biases.

    He: ``normal(0, sqrt(2 / n_in))`` for relu, leaky_relu, elu, gelu, silu.
    Glorot: ``uniform(-a, a)`` with ``a = sqrt(6 / (n_in + n_out))`` for the
    others.  Values are drawn in float64 from ``np.random.default_rng(seed)``
    and then rounded to ``dtype``, so float32 and float64 starts agree.

    Parameters
    ----------
    model : Model
    seed : int or numpy.random.Generator, default 0
    dtype : {np.float64, np.float32}

    Returns
    -------
    params : ndarray of shape (model.n_params,)
    """
    require_model(model)
    dtype = _validate.float_dtype(dtype)
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"seed must be an integer >= 0 or a numpy Generator, got {seed!r}")
    try:
        rng = np.random.default_rng(seed)
    except (TypeError, ValueError):
        raise TypeError(f"seed must be an integer >= 0 or a numpy Generator, got {seed!r}") \
            from None
    flat = np.zeros(model.n_params, dtype=np.float64)
    for (W, _), layer in zip(model.unpack(flat), model.layers):
        if layer.activation in _HE_ACTIVATIONS:
            W[...] = rng.normal(0.0, np.sqrt(2.0 / layer.n_in), size=W.shape)
        else:
            a = np.sqrt(6.0 / (layer.n_in + layer.n_out))
            W[...] = rng.uniform(-a, a, size=W.shape)
    return flat.astype(dtype)
