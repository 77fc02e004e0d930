"""Write ``bench/RESULTS.md``: every committed benchmark result, rendered from its JSON.

Each ``bench/results/*.json`` is what one run of a benchmark script wrote:
its machine and versions, its tables and its verdicts.  This script turns
them into one Markdown file, so that no table is ever typed by hand and none
can disagree with its run (``tests/test_results_md.py`` regenerates the file
and compares).  Only the results git tracks are rendered (a fresh clone's
set); local runs of subsets stay out until they are committed.

Run ``.venv/bin/python bench/results_md.py`` after committing new results
(``make bench`` does it at its end).
"""

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
OUTPUT = HERE / "RESULTS.md"

# What each result file is, by the script that writes it (file-name prefix).
BENCHES = {
    "value_and_grad": "One gradient (`bench/bench_value_and_grad.py`)",
    "training": "Training (`bench/bench_training.py`)",
    "blas": "The BLAS libraries on gdcore's products (`bench/bench_blas.py`)",
    "minimize": "SciPy drop-in (`bench/bench_minimize.py`)",
    "sklearn": "scikit-learn drop-in (`bench/bench_sklearn.py`)",
    "dask": "Beyond one machine (`bench/bench_dask.py`)",
    "threads": "Threads (`bench/bench_threads.py`)",
    "startup": "Start-up (`bench/bench_startup.py`)",
    "updates": "Optimizer steps (`bench/bench_updates.py`)",
}
TABLE_KEYS = ("table", "rows", "grid_table", "tables")  # where the scripts put tables


def tracked_results():
    """The result files git tracks (all of them outside a git checkout), sorted."""
    try:
        listed = subprocess.run(["git", "ls-files", "--", str(RESULTS)], cwd=HERE,
                                capture_output=True, text=True, check=True).stdout
        names = {Path(line).name for line in listed.split()}
    except (OSError, subprocess.CalledProcessError):
        names = None
    return sorted(p for p in RESULTS.glob("*.json") if names is None or p.name in names)


def commit_date(head):
    """The commit's date (YYYY-MM-DD) from git, or None."""
    try:
        return subprocess.run(["git", "show", "-s", "--format=%cs", head], cwd=HERE,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def cell(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return "…"  # nested detail: in the JSON
    return "" if value is None else str(value).replace("|", "\\|")


def markdown_table(rows):
    """A list of dicts as a Markdown table (columns: every key, in first-seen order)."""
    columns = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def render_tables(value, title=None):
    out = [f"**{title}**", ""] if title else []
    if isinstance(value, str):  # a table the script formatted itself
        return out + [value.strip(), ""]
    if isinstance(value, dict):
        for name, sub in value.items():
            out += render_tables(sub, name)
        return out
    if value and all(isinstance(row, dict) for row in value):
        return out + [markdown_table(value), ""]
    return out


def environment_line(result):
    env = result.get("environment", {})
    git = env.get("git") or {}
    head = git.get("head")
    parts = []
    if head:
        date = commit_date(head)
        dirty = " with uncommitted changes" if git.get("gdcore_dirty") else ""
        parts.append(f"commit {head[:7]}{dirty}" + (f" ({date})" if date else ""))
    generation = f" ({env['cpu_generation']})" if env.get("cpu_generation") else ""
    parts.append(f"CPU {env.get('cpu_model', '?')}{generation}, {env.get('cpu_count', '?')} cores")
    parts.append(f"OPENBLAS_CORETYPE {env.get('OPENBLAS_CORETYPE') or 'not set'}")
    versions = ", ".join(f"{k} {env[k]}" for k in ("python", "numpy", "numba", "scipy", "torch")
                         if env.get(k))
    parts.append(versions)
    return "; ".join(parts)


def render(path):
    result = json.loads(path.read_text())
    prefix = path.stem.split("-")[0]
    binding = path.stem.split("-")[1] if "-" in path.stem else None
    title = BENCHES.get(prefix, path.stem)
    if binding in ("openblas", "mkl", "scipy"):
        title += f", products on {'MKL' if binding == 'mkl' else 'OpenBLAS'}"
    out = [f"## {title}", "", f"`bench/results/{path.name}`: {environment_line(result)}.", ""]
    targets = result.get("targets") or []
    if targets:
        out += ["Verdicts:", ""]
        out += [f"- [{t['status']}] {t['target']}: {t['value']}" for t in targets]
        out.append("")
    for key in TABLE_KEYS:
        if key in result and not (key == "rows" and "table" in result and prefix != "blas"):
            out += render_tables(result[key])
    return out


def build():
    lines = ["# Benchmark results", "",
             "Generated by `bench/results_md.py` from the committed `bench/results/*.json`; "
             "do not edit by hand.  Each section is one run of one script, its peers "
             "measured in the same run (how each bench measures: its module docstring).  "
             "The README quotes a short summary.", ""]
    for path in tracked_results():
        lines += render(path)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    text = build()
    if "--check" in argv:  # exit 1 when RESULTS.md is not what the results give
        return 0 if OUTPUT.exists() and OUTPUT.read_text() == text else 1
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(HERE.parent)} from {len(tracked_results())} result files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
