"""The fold benchmark still runs: one quick round, in a subprocess, and it judges its targets."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_fold_quick_runs_checks_and_judges_its_targets() -> None:
    done = subprocess.run(
        [sys.executable, "bench/fold.py", "--quick", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    # A wrong fold raises FoldMismatch: a non-zero exit. A missed target does not.
    assert done.returncode == 0, done.stdout + done.stderr
    verdicts = re.findall(r"^  (PASS|MISS)  \[(\d)\] ", done.stdout, flags=re.MULTILINE)
    assert [number for _, number in verdicts] == ["1", "2", "2", "2", "2"], done.stdout
    assert re.search(r"^\| 1 \| fold, live, 1 view \| delta entries/s \|", done.stdout, re.M)
