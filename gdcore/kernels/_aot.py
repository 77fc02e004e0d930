"""Kernels compiled ahead of time: find, check and serve gdcore's C extensions.

``python -m gdcore aot`` (:mod:`gdcore.aot_build`) compiles the generic
kernels (codes read at run time) of each dtype into a C extension,
``gdcore/_aot_kernels_f32*.so`` and ``gdcore/_aot_kernels_f64*.so``, with
``numba.pycc``.  Loading one takes a millisecond, where compiling the same
kernels with Numba takes 10-20 s per entry point on a cold cache.

An extension is used only when it is *fresh*: its exported ``stamp()`` must
equal :func:`stamp` of this process, which names what the machine code was
built from (the kernel sources, Numba, llvmlite and NumPy versions, the host
CPU and its features).  A stale, missing or unloadable extension is never an
error: the kernels are then compiled by Numba as before, with one
``logging`` record saying why and the compile notice
(:mod:`gdcore._compile_notice`) naming ``python -m gdcore aot``.

The check runs once per process, on the first kernel lookup
(:func:`exports`), not at import: ``import gdcore`` reads no file for it.

The exported functions check nothing: a wrong dtype, ndim or layout crashes
the process.  :func:`picker` selects the extension by the params' dtype (a
dtype without an export gets the JIT kernel); the callers pass exactly the
exported types, validated in Python beforehand (``tests/test_aot.py`` checks
every call site against the exported signatures).
"""

import hashlib
import importlib
import inspect
import logging
import os
import threading

import numpy as np

LOGGER = logging.getLogger("gdcore")
PACKAGE = __name__.rsplit(".", 2)[0]  # "gdcore"
DTYPES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
# The exported kernels (the generic ones the public calls make); each is served by a
# picker that reads the dtype of its argument named "params" (else its first).
EXPORTS = ("any_value_and_grad", "any_loss", "any_predict", "run_epoch", "evaluate",
           "apply_update", "scan_inputs", "first_nonfinite", "lbfgs_step", "restart",
           "pcg64_shuffle")
# Exported by the float64 extension alone: the L-BFGS state is float64 for every x0,
# and the shuffle takes no floats at all.
FLOAT64_ONLY = ("lbfgs_step", "restart", "pcg64_shuffle")
# Exports whose arguments hold no params dtype: every call gets the float64 extension's.
DTYPE_FREE = ("pcg64_shuffle",)


def exported(dtype):
    """The names the extension of ``dtype`` exports."""
    if np.dtype(dtype) == np.float64:
        return EXPORTS
    return tuple(name for name in EXPORTS if name not in FLOAT64_ONLY)


def module_name(dtype):
    """Import name of the extension of ``dtype``, e.g. ``gdcore._aot_kernels_f64``."""
    return f"{PACKAGE}._aot_kernels_{DTYPES[np.dtype(dtype)]}"


def _sources():
    """The files whose text the kernels are compiled from (kernels/*.py, codes.py)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    kernels = os.path.join(root, "kernels")
    names = sorted(f for f in os.listdir(kernels) if f.endswith(".py"))
    return [os.path.join(kernels, f) for f in names] + [os.path.join(root, "codes.py")]


def stamp():
    """What an extension built in this process, on this machine, would be built from.

    Returns
    -------
    str
        One line per item: the sha256 of the kernel sources, the numba,
        llvmlite and numpy versions, and the host CPU name and features
        (an extension built with ``target_cpu="host"`` may use any of them).
    """
    import llvmlite
    import numba
    from llvmlite import binding

    digest = hashlib.sha256()
    for path in _sources():
        with open(path, "rb") as f:
            digest.update(os.path.basename(path).encode() + b"\0" + f.read() + b"\0")
    return "\n".join([
        f"sources sha256 {digest.hexdigest()}",
        f"numba {numba.__version__}",
        f"llvmlite {llvmlite.__version__}",
        f"numpy {np.__version__}",
        f"cpu {binding.get_host_cpu_name()}",
        f"features {binding.get_host_cpu_features().flatten()}",
    ])


_lock = threading.Lock()
_loaded = None  # dtype -> extension module, or {} when the JIT serves; None: not checked


def exports():
    """The fresh extensions, loaded and bound to the BLAS, on first call.

    Returns
    -------
    dict
        ``{dtype: module}`` for float32 and float64, or ``{}`` when either
        extension is missing, stale or unloadable (the JIT serves both
        dtypes then: one code path per process).
    """
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                _loaded = _load()
    return _loaded


def _load():
    try:
        expected = stamp()
    except Exception as exc:  # noqa: BLE001 -- e.g. a source file unreadable
        return _fall_back(f"cannot compute the build stamp ({exc!r})", logging.WARNING)
    modules = {}
    for dtype in DTYPES:
        name = module_name(dtype)
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                return _fall_back(f"{name} is unloadable ({exc!r})", logging.WARNING)
            return _fall_back(f"{name} is not built", logging.INFO)
        except Exception as exc:  # noqa: BLE001 -- a foreign or damaged file
            return _fall_back(f"{name} is unloadable ({exc!r})", logging.WARNING)
        try:
            built = module.stamp()
            missing = [f for f in exported(dtype) if not hasattr(module, f)]
        except Exception as exc:  # noqa: BLE001
            return _fall_back(f"{name} has no readable stamp ({exc!r})", logging.WARNING)
        if built != expected:
            changed = sorted({line.split(" ", 1)[0] for line in
                              set(built.splitlines()) ^ set(expected.splitlines())})
            return _fall_back(f"{name} is stale (changed: {', '.join(changed) or 'format'})",
                              logging.WARNING)
        if missing:
            return _fall_back(f"{name} lacks {', '.join(missing)}", logging.WARNING)
        modules[dtype] = module
    from .blas import ADDRESSES

    for module in modules.values():
        # Both slots in each extension: each has its own (hidden) copy of the globals.
        module.set_gemm(ADDRESSES[np.dtype(np.float64)], 1)
        module.set_gemm(ADDRESSES[np.dtype(np.float32)], 0)
    LOGGER.debug("gdcore: using the kernels compiled ahead of time (%s)",
                 ", ".join(m.__file__ for m in modules.values()))
    return modules


def _fall_back(reason, level):
    """Log why the JIT serves, make the compile notice name the AOT build; return {}."""
    from .. import _compile_notice

    LOGGER.log(level, "gdcore: %s; kernels are compiled by Numba instead (run 'python -m "
               "gdcore aot' to build them ahead of time)", reason)
    _compile_notice.NOTICE.reason = reason
    return {}


class _ByDtype(dict):
    """dtype -> exported function; a dtype without one gets the JIT kernel (``like``)."""

    def __init__(self, like):
        super().__init__()
        self.like = like

    def __missing__(self, dtype):
        return self.like


def picker(name, like):
    """The callable serving exported kernel ``name``: the params dtype picks the extension.

    An export that takes no params array (:data:`DTYPE_FREE`) is always the
    float64 extension's.

    Parameters
    ----------
    name : str
        One of :data:`EXPORTS`.
    like : numba dispatcher
        The JIT kernel it stands for; the picker takes the same arguments.

    Returns
    -------
    callable or None
        None when no fresh extension is loaded.
    """
    modules = exports()
    if not modules:
        return None
    by_dtype = _ByDtype(like)
    by_dtype.update({dtype: getattr(module, name) for dtype, module in modules.items()
                     if name in exported(dtype)})
    # The kernel's own parameter names, spelled out: a ``*args`` picker repacked the
    # arguments and cost 0.5 us per call over the extension's own call, this one
    # 0.18-0.21 us (timeit; with the extension's call, what a Numba dispatcher costs).
    names = list(inspect.signature(like.py_func).parameters)
    args = ", ".join(names)
    namespace = {"by_dtype": by_dtype, "FLOAT64": np.dtype(np.float64)}
    if name in DTYPE_FREE:
        selector, chosen_by = "FLOAT64", "always the float64 extension's"
    else:
        key = "params" if "params" in names else names[0]
        selector, chosen_by = f"{key}.dtype", f"float32 or float64 by {key}.dtype"
    exec(f"def aot_{name}({args}):\n    return by_dtype[{selector}]({args})\n", namespace)
    call = namespace[f"aot_{name}"]
    call.__doc__ = f"{name} compiled ahead of time, {chosen_by}."
    call.__module__ = __name__
    call.exports = by_dtype
    return call
