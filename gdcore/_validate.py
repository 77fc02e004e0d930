"""Input checks with clear messages, in one place.

Every public function funnels its arguments through these helpers.  They
raise ``TypeError`` for the wrong kind of object and ``ValueError`` for the
wrong value, always naming the argument and what was expected.  They never
modify their inputs: conversions return new arrays (or the input itself when it
already has the required dtype and layout).

Scans over the data (finiteness, label range) run in one compiled pass
(:func:`gdcore.kernels.checks.scan_inputs`, inside the same compiled call as
the computation) because a NumPy scan per condition costs more than the whole
gradient evaluation of a small network; :func:`raise_for_status` turns its
result into the message.
"""

import numbers
import operator

import numpy as np

from . import codes
from ._sparse import SparseRows, is_sparse
from .kernels import checks

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _integer(value, name):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None


def positive_int(value, name):
    """Return ``value`` as an int, or raise if it is not an integer > 0."""
    value = _integer(value, name)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def nonnegative_int(value, name):
    """Return ``value`` as an int, or raise if it is not an integer >= 0."""
    value = _integer(value, name)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def flag(value, name):
    """Return ``value`` as a bool, or raise TypeError if it is not one."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def real_in(value, name, low, high, *, low_open=False, high_open=False):
    """Return ``value`` as a float in the interval, or raise naming ``name``.

    The interval is ``[low, high]``, with either end open as requested.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (above and below and np.isfinite(value)):
        if high == np.inf:
            expected = f"a finite number {'>' if low_open else '>='} {low:g}"
        else:
            expected = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be {expected}, got {value}")
    return value


def nonnegative_float(value, name):
    """Return ``value`` as a float, or raise if it is not a finite number >= 0."""
    if type(value) is float and 0.0 <= value < np.inf:  # fast path: the common case
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def _lookup(name, table, what, aliases=None):
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a string, got {name!r}")
    key = name.lower()
    if aliases:
        key = aliases.get(key, key)
    if key not in table:
        valid = ", ".join(sorted(list(table) + list(aliases or ())))
        raise ValueError(f"unknown {what} {name!r}; expected one of: {valid}")
    return key


def activation_name(name, what="activation"):
    """Canonical activation name, or a ValueError listing the valid ones."""
    return _lookup(name, codes.ACTIVATIONS, what)


def loss_name(name):
    """Canonical loss name (aliases resolved), or a ValueError listing the valid ones."""
    return _lookup(name, codes.LOSSES, "loss", codes.LOSS_ALIASES)


def float_dtype(dtype, name="dtype"):
    """Return ``dtype`` as float32 or float64, or raise."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {dt}")
    return dt


def _as_float_array(value, name, dtype) -> np.ndarray:
    """Convert to a C-contiguous array of ``dtype`` without touching the input."""
    arr = _as_array(value, name)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return kernel_ready(arr, dtype)


def _kernel_layout(arr):
    flags = arr.flags
    return flags.c_contiguous and flags.writeable


def _as_array(value, name):
    """``np.asarray(value)``, with a TypeError naming ``name`` for ragged input."""
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be array-like of real numbers: {exc}") from None


def kernel_ready(arr, dtype):
    """``arr`` itself if it is C-contiguous, writeable and of ``dtype``, else a copy.

    Read-only arrays are copied too: the kernels are compiled for writeable
    arrays, and a read-only one would trigger a second compilation.
    """
    if arr.dtype == dtype and _kernel_layout(arr):
        return arr
    return np.array(arr, dtype=dtype, order="C", copy=True)


def params_array(model, params) -> np.ndarray:
    """Validate ``params`` for ``model``; return it as a C-contiguous 1-D array.

    The params dtype is the compute dtype: float32 and float64 arrays keep
    theirs; anything else (lists, integer arrays) becomes float64.
    """
    if (type(params) is np.ndarray and params.ndim == 1 and params.dtype in FLOAT_DTYPES
            and params.shape[0] == model.n_params and _kernel_layout(params)):
        return params  # fast path: already what the kernels take
    kind = params.dtype.kind if isinstance(params, np.ndarray) else None
    if kind == "f" and params.dtype.itemsize in (4, 8):
        dtype = np.dtype(f"f{params.dtype.itemsize}")  # native byte order
    elif kind is not None and kind not in "iu":
        raise TypeError(f"params must be a float32 or float64 array, got dtype {params.dtype}")
    else:
        dtype = np.dtype(np.float64)
    arr = _as_float_array(params, "params", dtype)
    if arr.ndim != 1:
        raise ValueError(f"params must be 1-D of length {model.n_params}, got shape {arr.shape}")
    if arr.shape[0] != model.n_params:
        raise ValueError(
            f"params has length {arr.shape[0]} but the model has {model.n_params} parameters"
        )
    return arr


def feature_count(model, n_features):
    """Raise unless ``n_features`` (X's columns) is the model's input width."""
    if n_features != model.n_inputs:
        raise ValueError(f"X has {n_features} features but the model expects {model.n_inputs}")


def validation_split(validation_data):
    """``(X_val, y_val, sample_weight_val or None)`` from ``fit``'s ``validation_data``."""
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise TypeError("validation_data must be a tuple (X_val, y_val) or "
                        "(X_val, y_val, sample_weight_val)")
    Xv, yv, *wv = validation_data
    return Xv, yv, wv[0] if wv else None


def sparse_features(model, X, dtype):
    """``X`` (SciPy sparse, shape (n_samples, model.n_inputs)) as SparseRows in ``dtype``.

    The CSR arrays are the caller's own when they already have the kernels'
    types (values in ``dtype``, int64 indices): nothing is copied then.
    """
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    n, n_features = X.shape
    if n == 0:
        raise ValueError("X is an empty batch: it must have at least one sample")
    feature_count(model, n_features)
    if X.format != "csr":
        X = X.tocsr()
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")
    data = np.ascontiguousarray(X.data, dtype=dtype)
    indices = np.ascontiguousarray(X.indices, dtype=np.int64)
    indptr = np.ascontiguousarray(X.indptr, dtype=np.int64)
    nnz = data.shape[0]
    if (data.ndim != 1 or indices.shape != (nnz,) or indptr.shape != (n + 1,)
            or indptr[0] != 0 or indptr[-1] != nnz or np.any(np.diff(indptr) < 0)):
        raise ValueError("X is a malformed CSR matrix: its indptr must rise from 0 to the "
                         "number of stored values, one entry per row plus one")
    if nnz and (indices.min() < 0 or indices.max() >= n_features):
        raise ValueError(f"X is a malformed CSR matrix: a column index lies outside "
                         f"[0, {n_features})")
    return SparseRows(data, indices, indptr, np.arange(n, dtype=np.int64), n_features)


def features(model, X, dtype):
    """Validate ``X``; return it as a C-contiguous (n_samples, n_features) array."""
    if (type(X) is np.ndarray and X.dtype == dtype and X.ndim == 2 and X.shape[0] > 0
            and X.shape[1] == model.n_inputs and _kernel_layout(X)):
        return X  # fast path: already what the kernels take
    if is_sparse(X):
        return sparse_features(model, X, dtype)
    arr = _as_float_array(X, "X", dtype)
    if arr.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError("X is an empty batch: it must have at least one sample")
    feature_count(model, arr.shape[1])
    return arr


NO_LABELS = np.zeros(0, dtype=np.int64)


def targets(model, y, n_samples, dtype):
    """Validate ``y`` against the model's loss and output width.

    The one check of targets that every loss-computing entry point (functional,
    gradcheck, fit and its validation data) goes through: ``None`` is refused
    here, as are class-probability rows that do not sum to 1.  Values (NaN,
    label range, targets outside [0, 1]) are left to the compiled scan.

    Returns
    -------
    Y : ndarray of shape (n_samples, n_outputs) or (0, n_outputs)
        Dense targets; empty when ``labels`` carries them.
    labels : ndarray of shape (n_samples,) or (0,), int64
        Class labels for ``cross_entropy`` with integer targets, else empty.
    """
    k = model.n_outputs
    loss = model.loss_code
    if type(y) is np.ndarray and y.dtype == dtype and _kernel_layout(y):
        # Fast paths: dense targets already in kernel form.
        if y.shape == (n_samples, k):
            if loss == codes.CROSS_ENTROPY:
                _check_probability_rows(y, y.dtype)
            return y, NO_LABELS
        if k == 1 and y.shape == (n_samples,) and loss != codes.CROSS_ENTROPY:
            return y.reshape(n_samples, 1), NO_LABELS
    if y is None:
        # Every loss reads n_samples targets: without them the kernels would
        # read past the end of an empty array.
        raise TypeError(f"y must be the targets of the {n_samples} samples, got None")
    if loss == codes.CROSS_ENTROPY:
        y_arr = _as_array(y, "y")
        if y_arr.dtype.kind not in "iuf":
            raise TypeError(
                f"y for cross_entropy must hold integer class labels 0..{k - 1} or class "
                f"probabilities, got dtype {y_arr.dtype}"
            )
        if y_arr.ndim == 1 and y_arr.dtype.kind in "iu":
            if y_arr.shape[0] != n_samples:
                raise ValueError(f"y has {y_arr.shape[0]} labels but X has {n_samples} samples")
            if y_arr.dtype.kind == "u" and y_arr.size and y_arr.max() >= k:
                i = int(np.argmax(y_arr >= k))  # report it before int64 could wrap it
                raise ValueError(_label_message(y_arr[i], i, k))
            labels = kernel_ready(y_arr, np.dtype(np.int64))
            return no_targets(model, dtype), labels
        if y_arr.ndim == 1:
            raise TypeError(
                "y for cross_entropy must be integer labels of shape (n_samples,) or class "
                f"probabilities of shape (n_samples, {k}); got a 1-D float array"
            )
        if y_arr.ndim != 2 or y_arr.shape != (n_samples, k):
            raise ValueError(
                f"y for cross_entropy must be integer labels of shape ({n_samples},) or class "
                f"probabilities of shape ({n_samples}, {k}), got shape {y_arr.shape}"
            )
        Y = _as_float_array(y_arr, "y", dtype)
        _check_probability_rows(Y, y_arr.dtype)
        return Y, NO_LABELS
    arr = _as_float_array(y, "y", dtype)
    if k == 1 and arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape != (n_samples, k):
        expected = f"({n_samples},) or ({n_samples}, 1)" if k == 1 else f"({n_samples}, {k})"
        hint = ""
        if arr.ndim == 1 and k > 1 and _as_array(y, "y").dtype.kind in "iu":
            hint = (f"; 1-D integer targets look like class labels: a classifier needs "
                    f"loss=\"cross_entropy\" (e.g. gd.mlp(sizes, loss=\"cross_entropy\")), "
                    f"this model has loss={model.loss!r}")
        raise ValueError(f"y must have shape {expected} for this model, got "
                         f"{np.shape(y)}{hint}")
    return arr, NO_LABELS


def _check_probability_rows(Y, y_dtype):
    """Raise unless each row of class probabilities ``Y`` sums to 1.

    The tolerance is the square root of the machine epsilon of the coarsest of
    float32, ``y_dtype`` (the targets as given) and ``Y.dtype`` (as computed):
    3.5e-4, or 0.031 for float16 targets.  Probabilities are routinely made in
    float32 (another framework's softmax) and stored in float64, so their rows
    sum to 1 only to float32 precision, about n_outputs float32 ulps; a missing
    class (0.9) or an empty row is far outside.  NaN/Inf and values outside
    [0, 1] are left to the data scan, which names them as such: while ``Y``
    holds any, this check defers to it.
    """
    eps = max(np.finfo(np.float32).eps, np.finfo(Y.dtype).eps)
    if y_dtype.kind == "f":
        eps = max(eps, np.finfo(y_dtype).eps)
    with np.errstate(invalid="ignore", over="ignore"):
        sums = Y.sum(axis=1, dtype=np.float64)
        bad = np.abs(sums - 1.0) > np.sqrt(eps)  # False for NaN sums
    if bad.any() and ((Y >= 0) & (Y <= 1)).all():  # False for NaN too
        i = int(np.argmax(bad))
        raise ValueError(
            f"y holds class probabilities whose rows must sum to 1, but row {i} sums to "
            f"{sums[i]:.6g} ({Y[i].tolist()}); for class labels pass integers of shape "
            f"({Y.shape[0]},)")


_EMPTY: dict = {}


def _empty(shape, dtype):
    """A shared empty array (kernels never write to one): no allocation per call."""
    key = (shape, dtype)
    arr = _EMPTY.get(key)
    if arr is None:
        arr = _EMPTY[key] = np.zeros(shape, dtype=dtype)
    return arr


def no_weights(dtype):
    """The empty weights array that means "plain mean" to the kernels."""
    return _empty((0,), dtype)


def no_targets(model, dtype):
    """An empty (0, n_outputs) target array, for kernels that need no targets."""
    return _empty((0, model.n_outputs), dtype)


def sample_weights(sample_weight, n_samples, dtype):
    """Validate ``sample_weight``; return (n_samples,) weights, or an empty array for None."""
    if sample_weight is None:
        return no_weights(dtype)
    w = _as_float_array(sample_weight, "sample_weight", dtype)
    if w.ndim != 1 or w.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight must have shape ({n_samples},), got shape {w.shape}"
        )
    return w


def nonfinite_params_message(params):
    """``"params contains NaN or Inf (at index i)"`` for the first such value, or None.

    One compiled pass (:func:`gdcore.kernels.finite.first_nonfinite`), for the
    callers that check params outside a kernel's input scan (fit, save, load).
    """
    index = checks.first_nonfinite_kernel[0](params)
    return None if index < 0 else _scan_message(checks.PARAMS_NOT_FINITE, index, None, None,
                                                 None, None, None)


def raise_for_status(status, index, model, X, Y, labels, weights, first_row=0):
    """Raise the documented error for a non-OK status of the compiled input scan.

    ``status, index`` come from :func:`gdcore.kernels.checks.scan_inputs`
    (run by the kernels of :mod:`gdcore.kernels.entry`); the arrays are the
    converted inputs that were scanned.  When they are rows of a larger data
    set starting at row ``first_row`` (a chunk of a Dask array), the message
    names the sample by its row in that data set.
    """
    if status != checks.OK:
        raise ValueError(_scan_message(status, index, model, X, Y, labels, weights, first_row))


def _range_note(row):
    """A hint when an inf may come from converting large values to float32."""
    if row.dtype == np.float32 and np.isinf(row).any():
        return "; float32 models convert their inputs to float32, whose range ends at 3.4e38"
    return ""


def _label_message(label, index, n_outputs):
    return (f"y has label {label} (sample {index}) but the model has {n_outputs} outputs; "
            f"labels must be in [0, {n_outputs})")


def _scan_message(status, index, model, X, Y, labels, weights, first_row=0):
    if status == checks.PARAMS_NOT_FINITE:
        return f"params contains NaN or Inf (at index {index})"
    sample = first_row + index
    if status == checks.X_NOT_FINITE:
        values = X.stored(index) if type(X) is SparseRows else X[index]
        return f"X contains NaN or Inf (in sample {sample}){_range_note(values)}"
    if status == checks.Y_NOT_FINITE:
        return f"y contains NaN or Inf (in sample {sample}){_range_note(Y[index])}"
    if status == checks.LABEL_OUT_OF_RANGE:
        return _label_message(labels[index], sample, model.n_outputs)
    if status == checks.TARGET_OUT_OF_UNIT:
        what = ("binary targets" if model.loss_code == codes.BINARY_CROSS_ENTROPY
                else "class probabilities")
        return f"y has {what} outside [0, 1] (sample {sample}: {Y[index].tolist()})"
    if status == checks.WEIGHT_INVALID:
        return (f"sample_weight must be finite and >= 0, got {float(weights[index])} "
                f"at sample {sample}{_range_note(weights[index:index + 1])}")
    if status == checks.WEIGHT_SUM_INVALID:
        with np.errstate(over="ignore"):
            total = weights.sum(dtype=np.float64)
        note = ("; float32 models convert sample_weight to float32, where values below "
                "1.4e-45 become 0" if weights.dtype == np.float32 and total == 0 else "")
        return f"sample_weight must have a positive, finite sum, got {total}{note}"
    raise AssertionError(f"unknown scan status {status}")  # pragma: no cover
