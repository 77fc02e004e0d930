# The two commands of the README: `make demo` and `make test`.  Each creates
# .venv on first use and installs what it needs; nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp

.PHONY: demo test bench docs clean

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "gdcore needs Python 3.10+"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# One stamp per extra, redone when pyproject.toml changes.  pip would compile every
# installed module to bytecode one file at a time (half of the test extra's install
# time); compileall does the same on all cores (errors are printed, not fatal, as
# pip's are).
SITE_PACKAGES = $$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"), sysconfig.get_path("platlib"))')

# Then gdcore's main kernels are compiled ahead of time for this machine into C
# extensions beside its sources (python -m gdcore aot: both dtypes at once, one
# per core: 83-89 s on a 2-core AMD EPYC; nothing when they are already built
# from these sources); a first call then loads them in milliseconds instead of
# compiling for 10-20 s.  A failed build is not fatal: the kernels are then
# compiled by Numba on first use, as before.
$(STAMP)-%: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet --no-compile -e ".[$*]"
	-@$(PY) -m compileall -q -j 0 $(SITE_PACKAGES) > /dev/null
	-$(PY) -m gdcore aot
	@touch $@

# Numba's cache does not notice an edit of a kernel that a cached kernel calls
# (gdcore/kernels/_stale_cache.py): every target that runs gdcore first drops a
# cache older than the kernel sources, so that nothing runs an older edit's code.
DROP_STALE_CACHE := $(PY) -m gdcore.kernels._stale_cache

demo: $(STAMP)-demo
	@$(DROP_STALE_CACHE)
	$(PY) examples/digits.py

# The suite runs in one worker process per core (pytest-xdist), a whole test file
# per worker at a time, so that two workers seldom need the same new kernel at
# once (gdcore/kernels/_cache_lock.py makes the second one wait for the first one's compile
# and load it).  Beside it, the bitwise and determinism tests (marker `bitwise`)
# run once more with Numba compiling for a generic x86-64 CPU into its own cache:
# a promise that holds only for one instruction set fails on any machine, not only
# on the CPU that breaks it.  Both passes are mostly compilation, which is
# single-threaded, so running them at once fills the cores while either pass
# waits on a compile or ends with one file left; the generic pass's report is
# printed after the main one's.  The main pass runs on the products' default BLAS
# binding (GDCORE_BLAS=auto: MKL on Intel CPUs, NumPy's OpenBLAS elsewhere; the test
# extra installs MKL on x86-64), the generic pass on the other one where there is
# one (else on the same), so the determinism promises are checked on both (and
# tests/test_blas.py compares every binding's products and gradients).
OTHER_BLAS = $$($(PY) -c 'from gdcore.kernels import blas, blas_libraries as b; \
	found = {"mkl": b.mkl(), "openblas": b.numpy_openblas()}; \
	print(next((k for k, v in found.items() if v and k != blas.BOUND_TO), blas.BOUND_TO))')
GENERIC_CACHE := $(CURDIR)/$(VENV)/numba-cache-generic
GENERIC_LOG := $(VENV)/generic-pass.log

test: $(STAMP)-test
	@$(DROP_STALE_CACHE) "" $(GENERIC_CACHE)
	@other=$(OTHER_BLAS); GDCORE_BLAS=$$other NUMBA_CPU_NAME=generic \
	    NUMBA_CACHE_DIR=$(GENERIC_CACHE) \
	    $(PY) -m pytest -m bitwise -q \
	    -p no:cacheprovider > $(GENERIC_LOG) 2>&1 & generic=$$!; \
	echo "$(PY) -m pytest -n auto --dist loadfile"; \
	$(PY) -m pytest -n auto --dist loadfile; main=$$?; \
	wait $$generic; status=$$?; \
	echo "GDCORE_BLAS=$$other NUMBA_CPU_NAME=generic NUMBA_CACHE_DIR=$(GENERIC_CACHE) $(PY) -m pytest -m bitwise -q"; \
	cat $(GENERIC_LOG); \
	[ $$main -eq 0 ] && [ $$status -eq 0 ]

# The value_and_grad and training benches run once per BLAS binding of gdcore's
# products: NumPy's OpenBLAS, and MKL where the bench extra installed it.
BLAS_BINDINGS = $$($(PY) -c 'from gdcore.kernels import blas_libraries as b; \
	print("openblas", "mkl" if b.mkl() else "")')

bench: $(STAMP)-bench
	@$(DROP_STALE_CACHE)
	for blas in $(BLAS_BINDINGS); do \
	    GDCORE_BLAS=$$blas $(PY) bench/bench_value_and_grad.py || exit 1; \
	    GDCORE_BLAS=$$blas $(PY) bench/bench_training.py || exit 1; \
	done
	$(PY) bench/bench_blas.py
	$(PY) bench/bench_small.py
	$(PY) bench/bench_minimize.py
	$(PY) bench/bench_updates.py
	$(PY) bench/bench_threads.py
	$(PY) bench/bench_startup.py
	$(PY) bench/bench_sklearn.py
	$(PY) bench/bench_dask.py
	$(PY) bench/results_md.py

# The API reference from the numpydoc docstrings (docs/api.rst lists every public
# name; tests/test_docs.py checks each one's parameters and returns); Sphinx's
# warnings are errors.
docs: $(STAMP)-docs
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "docs/_build/html/index.html"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis gdcore/_aot_kernels_* docs/_build
	find . -name __pycache__ -prune -exec rm -rf {} +
