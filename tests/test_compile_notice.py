"""The notice that gdcore's kernels are being compiled: once per process, only on a cache miss."""
import os
import subprocess
import sys

import numpy as np

from gdcore import _compile_notice

SCRIPT = """
import logging, sys
import numpy as np
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(name)s|%(message)s")
import gdcore
from gdcore.kernels import lbfgs
lbfgs.dot(np.ones(3), np.ones(3))
lbfgs.dot_of_differences(np.ones(3), np.ones(3), np.ones(3), np.ones(3))
"""


def run(cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, check=True,
                          capture_output=True, text=True)
    return [line for line in done.stdout.splitlines() if line.startswith("gdcore|")]


def test_one_record_on_a_cache_miss_and_none_when_cached(tmp_path):
    cold = run(tmp_path)
    assert len(cold) == 1  # two kernels compiled, one notice
    assert "compiling gdcore's kernels for this machine" in cold[0]
    assert "gdcore.kernels.lbfgs.dot" in cold[0] and "once per machine" in cold[0]
    assert run(tmp_path) == []  # loaded from the cache: nothing to say


def test_other_compilations_are_not_announced(caplog):
    import numba

    notice = _compile_notice.Notice()

    class Event:
        data = {"dispatcher": numba.njit(lambda x: x)}

    with caplog.at_level("INFO", logger="gdcore"):
        notice.on_start(Event())
    assert not notice.said and not caplog.records
    assert _compile_notice.compiled_name(object()) is None
    assert _compile_notice.compiled_name(numba.njit(norm)).endswith("test_compile_notice.norm")


def norm(x):
    return np.sqrt(np.sum(x * x))
