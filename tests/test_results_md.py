"""bench/RESULTS.md is what bench/results_md.py makes of the committed results."""

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_results_md_matches_the_committed_results():
    done = subprocess.run([sys.executable, str(BENCH / "results_md.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, ("bench/RESULTS.md differs from what the results give: run "
                                  ".venv/bin/python bench/results_md.py")


def test_every_committed_result_has_a_section():
    text = (BENCH / "RESULTS.md").read_text()
    for path in sorted((BENCH / "results").glob("*.json")):
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", str(path)],
                                 cwd=BENCH, capture_output=True).returncode == 0
        if tracked:
            assert f"`bench/results/{path.name}`" in text, path.name
