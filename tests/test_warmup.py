"""``python -m gdcore warmup``: compiles what the entry points need, then finds it cached."""
import re
import subprocess
import sys


def warmup(*args):
    return subprocess.run([sys.executable, "-m", "gdcore", *args], capture_output=True,
                          text=True)


def test_a_second_warmup_compiles_nothing():
    first = warmup("warmup", "--jobs", "1", "--group", "minimize", "--dtype", "float64")
    assert first.returncode == 0, first.stderr
    second = warmup("warmup", "--jobs", "1", "--group", "minimize", "--dtype", "float64")
    assert second.returncode == 0, second.stderr
    lines = second.stdout.splitlines()
    assert re.match(r"minimize\s+float64\s+[\d.]+ s\s+0 gdcore kernels compiled", lines[0])
    assert "0 kernels compiled" in lines[-1]


def test_usage_errors_exit_2():
    none = warmup()
    assert none.returncode == 2 and "usage: python -m gdcore {warmup,aot}" in none.stderr
    jobs = warmup("warmup", "--jobs", "0")
    assert jobs.returncode == 2 and "--jobs must be at least 1" in jobs.stderr
    loss = warmup("warmup", "--loss", "hinge")
    assert loss.returncode == 2 and "invalid choice: 'hinge'" in loss.stderr
