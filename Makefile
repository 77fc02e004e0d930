# The two commands of the README: `make demo` and `make test`.  Each creates
# .venv on first use and installs what it needs; nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp

.PHONY: demo test bench clean

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "gdcore needs Python 3.10+"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# One stamp per extra, redone when pyproject.toml changes.
$(STAMP)-%: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[$*]"
	@touch $@

demo: $(STAMP)-demo
	$(PY) examples/digits.py

# Then the bitwise and determinism tests (marker `bitwise`) once more, with Numba
# compiling for a generic x86-64 CPU into its own cache: a promise that holds only
# for one instruction set fails on any machine, not only on the CPU that breaks it.
GENERIC_CACHE := $(CURDIR)/$(VENV)/numba-cache-generic

test: $(STAMP)-test
	$(PY) -m pytest
	NUMBA_CPU_NAME=generic NUMBA_CACHE_DIR=$(GENERIC_CACHE) $(PY) -m pytest -m bitwise -q

bench: $(STAMP)-bench
	$(PY) bench/bench_value_and_grad.py
	$(PY) bench/bench_training.py
	$(PY) bench/bench_minimize.py
	$(PY) bench/bench_threads.py
	$(PY) bench/bench_startup.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
	find . -name __pycache__ -prune -exec rm -rf {} +
