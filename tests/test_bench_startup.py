"""``bench/bench_startup.py``'s bookkeeping, without starting a process or compiling.

The benchmark's figures come from child scripts built from templates and from
medians that drop disturbed runs; a slip in either (a brace left unescaped,
an entry point dropped from the total, a contended run preferred to a quiet
one) would print a plausible wrong table rather than fail, so they are
checked here on synthetic results.
"""

import ast
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import bench_startup as bs  # noqa: E402  (bench/ is a folder of scripts, not a package)

ALL_PEERS = {peer: True for peer in bs.PEER_MODULES}


def sample(import_s, first_s, background, label="fit float32", compiled=None):
    s = {"import_s": import_s, "first_call_s": {label: first_s}, "process_s": import_s + first_s,
         "background": background, "info": {}}
    if compiled is not None:
        s["compiled"] = s["compiled_functions"] = compiled
    return s


@pytest.mark.parametrize("impl", sorted(bs.CHILDREN))
def test_child_scripts_are_python(impl):
    entries = (bs.ENTRIES if impl.startswith("gdcore")
               else [e for e in bs.ENTRIES if impl in bs.PEERS[e]])
    for entry in entries:
        for dtype in bs.DTYPES:
            ast.parse(bs.child_code(impl, [(entry, dtype)], "/nonexistent/data.npz"))
    # each entry point a child is asked for is a function it defines
    tree = ast.parse(bs.child_code(impl, [], "x.npz"))
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert set(entries) <= defined


def test_default_plan_covers_every_entry_point_in_both_dtypes():
    rows = bs.plan_rows(set(bs.ENTRIES) | {"sequence"}, quick=False, available=ALL_PEERS)
    for impl in ("gdcore", "gdcore-jit"):  # as installed, and compiled by Numba
        gdcore = {(r.entry, r.dtype) for r in rows if r.impl == impl}
        assert {(e, d) for e in bs.ENTRIES for d in bs.DTYPES} <= gdcore
    sequence = [r for r in rows if r.entry == "sequence"]
    assert len(sequence) == 1 and len(sequence[0].calls) == 2 * len(bs.ENTRIES)
    for entry in bs.JAX_COMPARED:  # every target has its JAX row, in the headline dtype
        assert any(r.entry == entry and r.impl == "jax" for r in rows)
    assert len({r.key for r in rows}) == len(rows)


def test_quick_plan_keeps_the_headline_dtype_only():
    rows = bs.plan_rows(set(bs.ENTRIES), quick=True, available={p: False for p in ALL_PEERS})
    assert all(r.dtype == bs.HEADLINE_DTYPE[r.entry] for r in rows)
    assert [r.entry for r in rows if r.impl == "gdcore"] == list(bs.ENTRIES)
    assert [r.entry for r in rows if r.impl == "gdcore-jit"] == list(bs.ENTRIES)
    # short rounds keep what is compared with a peer, and nothing else
    assert {r.entry for r in rows if r.headline} == {e for e in bs.ENTRIES if bs.PEERS[e]}


def test_summary_prefers_quiet_runs_and_flags_when_none_was():
    busy, quiet = sample(1.0, 30.0, 1.0), sample(1.0, 10.0, 0.1)
    s = bs.summarise([busy, quiet, quiet])
    assert s["first_s"] == 10.0 and s["n"] == 3 and s["n_quiet"] == 2 and not s["contended"]
    s = bs.summarise([busy, sample(1.0, 20.0, 0.9)])
    assert s["first_s"] == 25.0 and s["contended"]


def test_targets_compare_import_plus_first_call():
    rows = bs.plan_rows({"fit"}, quick=True, available=ALL_PEERS)
    summary = {
        "fit gdcore float32": {"cold": bs.summarise([sample(1.0, 2.0, 0.0, compiled=9)]),
                               "warm": bs.summarise([sample(1.0, 0.2, 0.0, compiled=0)])},
        # JAX: slower import, faster first call; gdcore wins on the sum, 3.0 s vs 3.5 s
        "fit jax float32": {"cold": bs.summarise([sample(2.5, 1.0, 0.0)]), "warm": None},
    }
    status = {v["target"].split(" <= ")[0].split(":")[0]: v["status"]
              for v in bs.targets(rows, summary)}
    assert status["cold import gdcore + first fit (1 epoch, Adam) (float32)"] == "PASS"
    assert status["warm"] == "PASS"
    assert status["every entry point in both dtypes, cold, one process in sequence (import "
                  "included)"].startswith("SKIP")
