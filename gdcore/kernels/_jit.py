"""The one jit policy shared by every gdcore kernel.

* ``cache=True``: compiled machine code is stored beside the sources, so only
  the first run after an install pays for compilation.
* ``error_model="numpy"``: division by zero gives inf/nan like NumPy instead of
  raising, and lets loops vectorise without exception checks.
* ``fastmath`` is restricted to flags that keep NaN and Inf semantics, because
  divergence detection relies on NaN surviving the arithmetic.
* Codes as constants (:func:`per_code`): an entry point's kernel is compiled
  for the codes of the model and optimizer at hand (loss, activations,
  optimizer), which its factory bakes into the kernel as closure values, and
  the dispatch on a code is an ``overload`` that, for a constant code,
  returns that code's implementation alone (``prefer_literal``).  A relu /
  cross-entropy network trained with Adam thus compiles the loops of relu,
  softmax, cross-entropy and Adam, and no other activation, loss or
  optimizer: the first ``fit`` of the digits network took 23.5 s instead of
  36.6 s (``bench/bench_startup.py``, AMD EPYC Zen 3, this change and the
  ones below together; JAX's import + first jitted epoch took 3.5 s).
  Numba's integer-code dispatch read at run time still serves everything
  else (``GDCORE_KERNELS=generic``, and any call with a variable code).
* Literal constants at call sites: Numba compiles a callee once more for
  every distinct literal argument, so kernels pass values read from arrays
  where a constant would only repeat a value (gd.lbfgs compiled its
  direction and trial-point kernels twice over a ``0`` and a ``True``).
* ``cache=False`` only for drivers specialised on a user's compiled objective
  (:mod:`.minimize_loops`): the cache key cannot see edits to that function,
  so a cached driver could run a stale objective.
* ``strict=True`` also drops ``reassoc`` for kernels whose accuracy rests on
  the order of operations: a stable loss such as ``log(sum) - (z - max)``
  becomes ``(log(sum) + max) - z`` under reassociation, which rounds away the
  digits the formula exists to keep.
* ``exact=True`` drops every fastmath flag, for elementwise kernels whose
  results must not depend on how the compiler vectorises them (the
  optimizer steps): with ``contract``, ``afn`` or ``arcp`` the vectorised
  body of a loop and its scalar remainder may fuse a multiply-add, or
  divide by a hoisted reciprocal, differently from each other and from one
  CPU to another, and the in-place and out-of-place versions of a step
  differed in the last bit on AVX-512.  Without those flags every element is a sequence of
  correctly rounded IEEE operations, the same in vector and scalar code.
  Elementwise loops still vectorise: only reductions need ``reassoc``.
  The L-BFGS state machine (:mod:`.lbfgs`) and the minimization drivers are
  exact too: with the flags, gd.lbfgs's iterates on the same machine differed
  between a process that compiled its kernels and one that loaded them from
  Numba's cache (nfev changed on 17 of 70 Moré-Garbow-Hillstrom runs); its
  sums run in a fixed order instead (:func:`.lbfgs.dot_of_differences`), at
  the cost of unvectorised dot products (400 ns for 1000 elements compiled in
  a loop, against 200 ns with ``reassoc``).
* Cached kernels compile under a lock on their cache index
  (:mod:`._cache_lock`), so processes sharing the cache (warmup's, a test
  suite's workers, a node's worker processes) compile each kernel once and
  never lose one another's entries.
* ``nogil=True`` everywhere: kernels take arrays and scalars only, so they
  release the GIL and Python threads (scikit-learn's threading backend, Dask's
  threaded workers, a user's thread pool) run them in parallel.
* ``no_cfunc_wrapper``: Numba otherwise builds, for every compiled
  function, a C-callable wrapper that only ``cfunc`` users and first-class
  function values need; gdcore uses neither, and the wrappers were 2% of a
  cold first ``fit``'s compile time (Numba's passes timed per function,
  AMD EPYC Zen 3).
* ``inline=True`` for small helpers called once per layer or per step
  (bias and column sums, the forward pass; the views of the flat arrays
  are intrinsics, :mod:`.views`, cheaper still to compile):
  Numba then compiles them into their callers.  A call between compiled
  functions passes every array as its separate fields (pointer, shape,
  strides, ...), and the 10-32-1 gradient has about twenty such calls; with
  :mod:`.network`'s helpers inlined it took 8% less time (paired in-process
  runs of both variants, 40 rounds each, twice: median ratios 0.918 and 0.915).
  Measure each case: inlining the activation dispatch made the same gradient
  about 20% slower.  Inlining also saves compile time: a helper compiled
  on its own goes through Numba's whole pipeline, wrappers included, and its
  machine code is optimized and emitted again in every caller that links it.
  A ``strict`` kernel must never be inlined, since its body would take the
  caller's fastmath flags; an ``exact`` helper may be (``exact=True,
  inline=True``) because it is only ever called from ``exact`` kernels,
  which have no flags to give it (``tests/test_jit_policy.py`` checks every
  caller).
* ``parallel=True`` only where a caller asks for threads on a large,
  memory-bound step (:func:`.updates.apply_update_threaded`): Numba's
  threads and multithreaded BLAS must not share a kernel, and tiny steps
  would pay microseconds per parallel region.
"""

import functools
import os

import numba

from . import _aot
from ._cache_lock import guard

FASTMATH_FLAGS = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})
STRICT_FASTMATH_FLAGS = FASTMATH_FLAGS - {"reassoc"}


def jit(func=None, *, strict=False, exact=False, cache=True, parallel=False, inline=False):
    """Compile ``func`` with gdcore's policy (lazy, cached, NaN-preserving fastmath, no GIL).

    Use as ``@jit``, ``@jit(strict=True)``, ``@jit(exact=True)`` (no fastmath
    flag at all), ``@jit(cache=False)``, ``@jit(parallel=True)`` (a kernel
    with ``numba.prange`` loops) or ``@jit(inline=True)`` (compiled into each
    caller; with ``exact=True`` only for helpers of exact kernels).
    """
    if strict and inline:
        raise ValueError("a strict kernel cannot be inlined: it would take its caller's "
                         "fastmath flags")

    def compile_(f):
        dispatcher = numba.njit(cache=cache, parallel=parallel,
                                inline="always" if inline else "never",
                                **options(strict=strict, exact=exact))(f)
        return guard(dispatcher) if cache else dispatcher

    return compile_ if func is None else compile_(func)


def options(strict=False, exact=False):
    """The Numba options of the policy (for ``jit`` and for ``overload``'s ``jit_options``)."""
    flags = frozenset() if exact else STRICT_FASTMATH_FLAGS if strict else FASTMATH_FLAGS
    return dict(error_model="numpy", fastmath=set(flags) or False, nogil=True,
                no_cfunc_wrapper=True)


# GDCORE_KERNELS (read at import, fixed for the process) chooses what the tables serve:
# * "auto" (the default): the kernels compiled ahead of time (:mod:`._aot`) for the
#   tables that have them, when a fresh extension is installed; else as "jit";
# * "jit" (or "specialised"): kernels compiled by Numba for each key (per_code);
# * "generic": every table holds its generic kernel, compiled by Numba: one
#   compilation serves every model and optimizer, which is what a run over many of
#   them (gdcore's own test suite) wants.
MODE = os.environ.get("GDCORE_KERNELS", "auto").strip().lower() or "auto"
if MODE == "specialised":
    MODE = "jit"
if MODE not in ("auto", "jit", "generic"):
    raise ValueError(f"GDCORE_KERNELS must be 'auto', 'jit' or 'generic', got {MODE!r}")
SPECIALISE = MODE != "generic"


class KernelTable(dict):
    """One kernel per key, made on first use: ``table[key]`` or ``table(*codes)``.

    A key is one integer code (an optimizer's) or a tuple of them (a model's
    ``kernel_key``: its loss code and activation spec; an optimizer's code
    with those).  A missing key is checked with ``valid`` (ValueError naming
    ``kind`` if rejected) and filled with, in this order: the generic kernel
    compiled ahead of time (``aot``, an export of :mod:`._aot`) under
    ``GDCORE_KERNELS=auto`` when a fresh extension is loaded; ``generic``
    under ``GDCORE_KERNELS=generic``; else ``make(*codes)``.  A hit is a plain
    dict lookup, which the small public calls make once per call (0.05 us,
    against 0.4 us for a Python-level lookup function).

    Compiled callers that take a kernel as an argument (the minimization
    loops) need a Numba dispatcher, never the AOT callable: :meth:`jit_kernel`.
    """

    def __init__(self, make, generic, valid, kind, aot=None):
        super().__init__()
        self.make, self.generic, self.valid, self.kind, self.aot = make, generic, valid, kind, aot
        self._jit = {}
        functools.update_wrapper(self, make)

    def __missing__(self, key):
        codes = self._check(key)
        kernel = _aot.picker(self.aot, self.generic) if self.aot and MODE == "auto" else None
        if kernel is None:
            kernel = self.jit_kernel(*codes)
        self[key] = kernel
        return kernel

    def _check(self, key):
        codes = key if isinstance(key, tuple) else (key,)
        if not self.valid(*codes):
            raise ValueError(f"unknown {self.kind} {key!r}")
        return codes

    def jit_kernel(self, *codes):
        """The Numba-compiled kernel of ``codes`` (generic or specialised by the mode)."""
        key = codes if len(codes) > 1 else codes[0]
        kernel = self._jit.get(key)
        if kernel is None:
            self._check(key)
            kernel = self.make(*(int(c) for c in codes)) if SPECIALISE else self.generic
            self._jit[key] = kernel
        return kernel

    def __call__(self, *codes):
        return self[codes if len(codes) > 1 else codes[0]]

    # A table is a cache, not a value: two tables are equal only if they are one.
    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__  # type: ignore[assignment]


def single(kernel, aot):
    """A :class:`KernelTable` of one kernel that takes no codes: ``table[0]``.

    For kernels called from Python that have an export ``aot`` (:mod:`._aot`).
    """
    def make(code):
        return kernel

    return KernelTable(make, kernel, (0).__eq__, "key", aot)


def per_code(generic, valid, kind, aot=None):
    """Decorate a factory ``make(*codes) -> kernel`` into its :class:`KernelTable`.

    The factory compiles a kernel that takes the same arguments as
    ``generic`` but uses the codes as constants of its body (closure values)
    in place of the run-time ones, so that only the branches those codes
    select are compiled (see :func:`.updates.rule_step`).  Numba keys its
    on-disk cache by closure values too, so every key's kernel is cached once
    per machine.  ``aot`` names ``generic``'s export in the extensions built
    ahead of time (:mod:`._aot`), if it has one.
    """
    def decorate(make):
        return KernelTable(make, generic, valid, kind, aot)

    return decorate
