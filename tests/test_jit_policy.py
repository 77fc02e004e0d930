"""The jit policy's promises that no single kernel test sees (see ``gdcore.kernels._jit``).

An ``exact`` helper compiled into its callers (``jit(exact=True, inline=True)``)
takes its caller's fastmath flags, so every function that calls one must be
exact itself: the step rules' element helpers are only exact because the loops
that inline them are.  Functions are matched by the global names their code
reads, which is how a kernel reaches a helper.
"""

import importlib
import inspect
import pkgutil

import pytest
from numba.core import caching
from numba.core.registry import CPUDispatcher

from gdcore import kernels
from gdcore.kernels import _cache_lock, _jit, updates


def _kernel_functions():
    """(name, python function, dispatcher or None) of every function in gdcore.kernels."""
    for info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"{kernels.__name__}.{info.name}")
        for attr, value in vars(module).items():
            if isinstance(value, CPUDispatcher) and inspect.getmodule(value.py_func) is module:
                yield f"{info.name}.{attr}", value.py_func, value
            elif inspect.isfunction(value) and inspect.getmodule(value) is module:
                yield f"{info.name}.{attr}", value, None


FUNCTIONS = sorted(_kernel_functions(), key=lambda f: f[0])


def _is_exact(dispatcher):
    return dispatcher.targetoptions.get("fastmath") is False


def _exact_inline_helpers():
    return {name.split(".")[-1]: d for name, _, d in FUNCTIONS
            if d is not None and d.targetoptions.get("inline") == "always" and _is_exact(d)}


def test_the_step_rules_element_helpers_are_exact_and_inlined():
    assert {"not_finite", "clipped", "with_decay", "moving_mean",
            "moving_square"} <= set(_exact_inline_helpers())


def test_every_caller_of_an_exact_inlined_helper_is_exact():
    helpers = _exact_inline_helpers()
    callers = 0
    for name, func, dispatcher in FUNCTIONS:
        used = set(func.__code__.co_names) & set(helpers)
        if not used:
            continue
        callers += 1
        assert dispatcher is not None and _is_exact(dispatcher), (
            f"{name} calls the exact inlined helper(s) {sorted(used)} but is not "
            f"jit(exact=True): the helper would take its fastmath flags")
    assert callers >= 9  # the step loops and the clip-norm sum


@pytest.mark.parametrize("code", sorted(updates.RULES))
def test_each_optimizer_code_has_its_own_update_kernel(code):
    # What a user's process puts in the table (nothing compiles until a call).
    kernel = updates.update_kernel.make(code)
    assert isinstance(kernel, CPUDispatcher)
    assert [cell.cell_contents for cell in kernel.py_func.__closure__] == [code]
    assert kernel is not updates.update_kernel.make(code)  # the table keeps one per code


@pytest.mark.parametrize("specialise", [True, False])
def test_a_kernel_table_makes_each_key_once_and_refuses_unknown_keys(monkeypatch, specialise):
    monkeypatch.setattr(_jit, "SPECIALISE", specialise)
    made = []
    generic = object()
    table = _jit.per_code(generic, lambda a, b=0: a >= 0, "test code")(
        lambda *codes: made.append(codes) or object())
    assert table[3] is table(3) and table[(1, 2)] is table(1, 2)
    assert (table[3] is generic) is not specialise
    assert made == ([(3,), (1, 2)] if specialise else [])
    with pytest.raises(ValueError, match=r"unknown test code \(-1, 2\)"):
        table(-1, 2)
    assert (-1, 2) not in table


def test_an_unknown_optimizer_code_is_refused():
    with pytest.raises(ValueError, match="unknown optimizer code"):
        updates.update_kernel(99)


def test_every_cached_kernel_compiles_under_its_cache_lock(tmp_path, monkeypatch):
    """Cached dispatchers compile through _cache_lock (processes sharing the cache
    take turns); a compile leaves the lock file beside the kernel's cache index."""
    guarded = [name for name, _, d in FUNCTIONS
               if d is not None and isinstance(d._cache, caching.Cache)]
    assert len(guarded) > 30
    for name, _, d in FUNCTIONS:
        if d is not None and isinstance(d._cache, caching.Cache):
            assert d.compile.__func__ is _cache_lock._compile_in_turn, name

    @_jit.jit
    def twice(x):
        return 2 * x

    monkeypatch.setattr(twice._cache._cache_file, "_index_path",
                        str(tmp_path / "twice.nbi"))
    assert twice(3) == 6
    assert (tmp_path / "twice.nbi.lock").exists()
    assert not _cache_lock._HELD  # released
