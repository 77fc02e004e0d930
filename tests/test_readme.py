"""Every Python code block of the README runs, as a reader would paste it.

Each block runs on its own, in a fresh namespace, in a temporary working
directory; output is captured.  A block that raises fails its test.
"""

import contextlib
import io
import os
import re
import warnings
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
TEXT = README.read_text()
# Each block padded with the README's lines above it: a traceback names README.md's line.
BLOCKS = ["\n" * TEXT[:m.start(1)].count("\n") + m.group(1)
          for m in re.finditer(r"```python\n(.*?)```", TEXT, flags=re.S)]


def first_line(block):
    return next(line for line in block.splitlines() if line.strip() and
                not line.startswith(("import", "from")))[:60]  # a stable test id


def test_the_readme_has_its_code_blocks():
    assert len(BLOCKS) >= 7  # quick start, models, training, optimizers, minimize, sklearn, dask


@pytest.mark.parametrize("block", BLOCKS, ids=[first_line(b) for b in BLOCKS])
def test_readme_block_runs(block, tmp_path, monkeypatch):
    if "gdcore.sklearn" in block or "from sklearn" in block:
        pytest.importorskip("sklearn")
    if "gdcore.dask" in block:
        pytest.importorskip("dask")
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a reader's session would show them, not fail
        exec(compile(block, str(README), "exec"), {"__name__": "__readme__"})
    assert os.getcwd() == str(tmp_path)
