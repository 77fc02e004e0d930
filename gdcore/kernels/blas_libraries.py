"""The BLAS libraries gdcore's products can call, found at import through ctypes.

:mod:`.blas` binds its product symbols to one of them.  Each library is
described by a :class:`Library`: the addresses of its ``cblas_?gemm`` with
64-bit integers, and its thread-count functions.

* **OpenBLAS**, NumPy's own (``scipy-openblas`` built with 64-bit integers:
  NumPy's PyPI wheels for Linux and Windows), found where NumPy loaded it.
* **MKL**, Intel's Math Kernel Library, from the ``mkl`` wheel (the
  ``gdcore[mkl]`` extra: ``libmkl_rt`` in the environment's ``lib``, the
  base installation's or the user's, for ``pip install --user``) or a
  system installation.  Its ``cblas_?gemm_64`` take 64-bit integers.

MKL runs its threads on GNU OpenMP (``libgomp``), unless the user chose
another layer with ``MKL_THREADING_LAYER``: Numba's ``omp`` threading layer
(the one gdcore's threaded optimizer steps run on where Numba finds no TBB)
uses the same ``libgomp``, so MKL's products and gdcore's threaded steps
share one pool of threads instead of two pools spinning against each other.
That choice must be made before MKL's first call, so it is made when MKL is
found; a process where something else called MKL first keeps that layer.
Where libgomp is not loaded yet, it is loaded with idle threads that spin
only briefly before they sleep (:func:`_load_gomp`), which keeps two-thread
products from collapsing when other processes hold the cores.  An MKL that
something else loaded first keeps its own set-up (layer and reproducibility
mode), and the GNU layer is chosen only where its library lies beside
``libmkl_rt`` (MKL aborts the process on a layer it cannot load).  Like
Numba's ``omp`` layer, GNU OpenMP is not fork-safe: a process forked after
multithreaded MKL products should not run them again (start worker
processes with ``spawn`` or ``forkserver``).
"""

import ctypes
import ctypes.util
import glob
import os
import site
import sys
from dataclasses import dataclass

import numpy as np

# MKL's threading layers (mkl_service.h): MKL_THREADING_GNU runs on libgomp.
MKL_THREADING_GNU = 3
# MKL's reproducibility modes (mkl_cbwr.h).
MKL_CBWR_AUTO, MKL_CBWR_STRICT = 2, 0x10000


@dataclass(frozen=True)
class Library:
    """A BLAS that gdcore's products can call.

    Attributes
    ----------
    name : str
        ``"openblas"`` or ``"mkl"``.
    gemm : dict
        Address of ``cblas_sgemm`` and ``cblas_dgemm`` with 64-bit integers,
        by dtype: ``{np.dtype(np.float32): int, np.dtype(np.float64): int}``.
    get_threads, set_threads : ctypes functions
        The library's process-wide thread count: ``get_threads() -> int``,
        ``set_threads(int)``.
    version : str
        What the library says of itself.
    threads_on_gomp : bool
        Its threads are GNU OpenMP's (``libgomp``), as Numba's ``omp``
        layer's are.
    set_local_threads : ctypes function or None
        ``set_local_threads(int) -> int``: the count for the calling thread
        alone, over the process-wide one; returns the thread's previous
        local count (0: none, the process-wide count applies).  MKL's; None
        for OpenBLAS, whose count is process-wide only.
    """

    name: str
    gemm: dict
    get_threads: object
    set_threads: object
    version: str
    threads_on_gomp: bool = False
    set_local_threads: object = None


def _address(library, symbol):
    return ctypes.cast(getattr(library, symbol), ctypes.c_void_p).value


def _thread_functions(library, get_name, set_name):
    get_, set_ = getattr(library, get_name), getattr(library, set_name)
    get_.argtypes, get_.restype = [], ctypes.c_int
    set_.argtypes, set_.restype = [ctypes.c_int], None
    return get_, set_


def cpu_vendor():
    """The CPU's vendor string (``"GenuineIntel"``, ``"AuthenticAMD"``, ...), or ``""``."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return "GenuineIntel" if "Intel" in platform.processor() else ""


def numpy_carries_scipy_openblas64():
    """Whether NumPy says it was built with scipy-openblas with 64-bit integers."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # noqa: BLE001 -- an older or differently built NumPy
        return False
    return blas.get("name") == "scipy-openblas" and "USE64BITINT" in str(
        blas.get("openblas configuration", ""))


def _openblas_version():
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # noqa: BLE001
        return "scipy-openblas"


def numpy_openblas():
    """NumPy's bundled scipy-openblas (64-bit integers) as a :class:`Library`, or None."""
    if not numpy_carries_scipy_openblas64():
        return None
    # Where NumPy's own extension resolves the symbols (its loaded dependency),
    # then the library files beside NumPy (Windows: DLLs resolve no symbols
    # through a dependent module).
    core = getattr(np, "_core", None) or getattr(np, "core", None)
    here = os.path.dirname(np.__file__)
    candidates = [getattr(getattr(core, "_multiarray_umath", None), "__file__", None)]
    candidates += sorted(glob.glob(os.path.join(here, os.pardir, "numpy.libs", "*openblas64*"))
                         + glob.glob(os.path.join(here, ".dylibs", "*openblas64*")))
    for path in candidates:
        if not path:
            continue
        try:
            library = ctypes.CDLL(path)  # already loaded by NumPy: the same handle
            gemm = {np.dtype(np.float32): _address(library, "scipy_cblas_sgemm64_"),
                    np.dtype(np.float64): _address(library, "scipy_cblas_dgemm64_")}
            get_, set_ = _thread_functions(library, "scipy_openblas_get_num_threads64_",
                                           "scipy_openblas_set_num_threads64_")
        except (OSError, AttributeError):
            continue
        return Library("openblas", gemm, get_, set_, _openblas_version())
    return None


def _mkl_candidates():
    """Paths where MKL's single dynamic library may be, most specific first."""
    names = ("libmkl_rt.so.3", "libmkl_rt.so.2", "libmkl_rt.so", "libmkl_rt.3.dylib",
             "libmkl_rt.2.dylib", "mkl_rt.3.dll", "mkl_rt.2.dll")
    # The mkl wheel puts it in its installation's lib (Library/bin on Windows): the
    # environment's, the base installation's under a venv that sees its packages, or
    # the user's (pip install --user).
    prefixes = [sys.prefix, sys.base_prefix]
    if site.ENABLE_USER_SITE:
        prefixes.append(site.getuserbase())
    roots = [os.path.join(prefix, *sub) for prefix in dict.fromkeys(prefixes)
             for sub in (("lib",), ("Library", "bin"))]
    paths = [os.path.join(root, name) for root in roots for name in names]
    found = ctypes.util.find_library("mkl_rt")
    return [p for p in paths if os.path.exists(p)] + ([found] if found else [])


def mkl():
    """Intel MKL's ``libmkl_rt`` as a :class:`Library`, or None when it is not installed.

    Sets MKL's threading layer to GNU OpenMP first (see the module
    docstring) unless ``MKL_THREADING_LAYER`` is set or ``libgomp`` cannot
    be loaded (then MKL keeps its default, Intel's OpenMP).
    """
    preloaded = _mapped("libmkl_rt")  # someone else's MKL: its set-up is theirs
    for path in _mkl_candidates():
        try:
            library = ctypes.CDLL(path)
            gemm = {np.dtype(np.float32): _address(library, "cblas_sgemm_64"),
                    np.dtype(np.float64): _address(library, "cblas_dgemm_64")}
            get_, set_ = _thread_functions(library, "MKL_Get_Max_Threads",
                                           "MKL_Set_Num_Threads")
            set_layer = library.MKL_Set_Threading_Layer
            set_local = library.MKL_Set_Num_Threads_Local
        except (OSError, AttributeError):
            continue
        set_layer.argtypes, set_layer.restype = [ctypes.c_int], ctypes.c_int
        set_local.argtypes, set_local.restype = [ctypes.c_int], ctypes.c_int
        chosen = os.environ.get("MKL_THREADING_LAYER", "").strip().upper()
        if chosen:
            on_gomp = chosen == "GNU"
        elif preloaded or not _gnu_layer_beside(_mapped("libmkl_rt")):
            on_gomp = False  # MKL keeps its layer (it aborts on a layer it cannot load)
        else:
            # MKL would abort the process when its first product failed to load libgomp;
            # set_layer returns the layer in force: GNU, unless MKL was called before.
            on_gomp = _load_gomp() and set_layer(MKL_THREADING_GNU) == MKL_THREADING_GNU
        if not os.environ.get("MKL_CBWR") and not preloaded:
            _reproducible(library)
        return Library("mkl", gemm, get_, set_, _mkl_version(library), on_gomp, set_local)
    return None


def _mapped(stem):
    """Path of the loaded library whose file name starts with ``stem``, or None (Linux)."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1] if line.strip() else ""
                if os.path.basename(path).startswith(stem):
                    return path
    except OSError:
        pass
    return None


def _gnu_layer_beside(runtime):
    """Whether MKL's GNU OpenMP threading library lies beside its ``runtime`` (Linux)."""
    if runtime is None or not sys.platform.startswith("linux"):
        return False
    return bool(glob.glob(os.path.join(os.path.dirname(runtime), "libmkl_gnu_thread.so*")))


def _reproducible(library):
    """Put MKL in strict Conditional Numerical Reproducibility (CNR) mode.

    gdcore promises the same bits for the same data and thread count.  By
    default MKL may round differently where only the operands' memory
    alignment differs (a layer's block starts anywhere in the flat
    parameter array; a Dask chunk lands anywhere in a worker's memory);
    strict CNR, on the code path MKL picks for this CPU (``AUTO``), makes
    its products independent of alignment for a fixed thread count.
    """
    cbwr_set = getattr(library, "MKL_CBWR_Set", None)
    if cbwr_set is not None:
        cbwr_set.argtypes, cbwr_set.restype = [ctypes.c_int], ctypes.c_int
        cbwr_set(MKL_CBWR_AUTO | MKL_CBWR_STRICT)


def _gomp_loaded():
    """Whether this process has loaded the system's ``libgomp.so`` (Linux; False where
    unknown).  Copies bundled under other names (PyTorch's ``libgomp-<hash>.so``) are
    other runtimes with their own threads and do not count."""
    return _mapped("libgomp.so") is not None


# Spins of an idle libgomp thread before it sleeps (GOMP_SPINCOUNT; libgomp's own
# default is 300,000, or 1,000 with more threads than cores): see _load_gomp.
GOMP_SPINS = 20000


def _load_gomp():
    """Load GNU OpenMP's runtime with idle threads that spin briefly, then sleep.

    libgomp reads its spin count (``GOMP_SPINCOUNT``) once, when it is
    loaded, so :data:`GOMP_SPINS` is set for the load and removed again: no
    other library loaded later, and no child process, inherits it.  Nothing
    is set where libgomp is loaded already or the user chose
    (``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` set).  Returns whether it loads.

    Why (the MNIST step's 8 float32 products on two MKL threads, AMD EPYC
    Zen 3, 2 cores): on a quiet machine they took 2.07 ms with libgomp's
    default spinning, 2.11 ms with 20,000 spins and 3.89 ms with no spinning
    at all (``OMP_WAIT_POLICY=PASSIVE``: a sleeping thread is woken for every
    parallel region).  With two other processes busy on both cores, 5.08,
    4.83 and 10.1 ms.  When those other processes were parallel programs
    themselves, the default spinning collapsed to 180-190 ms (a spinning
    thread burns the time slice the thread it waits for needs), and 10,000
    spins took 13-20 ms.
    """
    if (os.environ.get("OMP_WAIT_POLICY") or os.environ.get("GOMP_SPINCOUNT")
            or _gomp_loaded()):
        return _gomp_loads()
    os.environ["GOMP_SPINCOUNT"] = str(GOMP_SPINS)
    try:
        return _gomp_loads()
    finally:
        del os.environ["GOMP_SPINCOUNT"]


def _gomp_loads():
    """Whether GNU OpenMP's runtime (``libgomp``) can be loaded (loading it)."""
    for name in ("libgomp.so.1", ctypes.util.find_library("gomp")):
        if name:
            try:
                ctypes.CDLL(name)
                return True
            except OSError:
                continue
    return False


def _mkl_version(library):
    buffer = ctypes.create_string_buffer(256)
    try:
        library.MKL_Get_Version_String(buffer, len(buffer))
    except AttributeError:  # pragma: no cover - every libmkl_rt has it
        return "MKL"
    return buffer.value.decode(errors="replace").strip()
