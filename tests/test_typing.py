"""gdcore's public API is typed: every documented callable is annotated, and mypy is clean.

An IDE then shows ``FitResult`` for ``gd.fit(...)`` rather than ``Any``, and a
user's type checker reads the hints (``gdcore/py.typed``, PEP 561).
"""

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import gdcore
from test_docs import NAMES, resolve

ROOT = Path(gdcore.__file__).resolve().parent.parent


def callables():
    """The functions and methods the API reference documents (classes: their __init__
    when gdcore defines one; dataclass and NamedTuple fields carry annotations)."""
    for name in NAMES:
        obj = resolve(name)
        if inspect.isclass(obj):
            init = obj.__dict__.get("__init__")
            if init is not None and inspect.isfunction(init):
                yield f"{name}.__init__", init
        else:
            yield name, obj


CALLABLES = list(callables())


@pytest.mark.parametrize("name, func", CALLABLES, ids=[name for name, _ in CALLABLES])
def test_every_public_callable_is_annotated(name, func):
    signature = inspect.signature(func)
    missing = [p.name for p in signature.parameters.values()
               if p.name != "self" and p.annotation is inspect.Parameter.empty]
    assert not missing, f"{name}: parameters without a type: {missing}"
    if func.__name__ != "__init__":
        assert signature.return_annotation is not inspect.Signature.empty, f"{name}: no return type"


def test_the_package_says_it_is_typed():
    assert (ROOT / "gdcore" / "py.typed").exists()
    assert '"py.typed"' in (ROOT / "pyproject.toml").read_text()


def test_mypy_is_clean_on_gdcore():
    pytest.importorskip("mypy")
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", "--cache-dir",
                           str(ROOT / ".venv" / "mypy-cache"), "gdcore"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
