"""Running a benchmark from a test: one quick round, in a subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_bench(script: str, timeout: float) -> str:
    """The report of one quick round of `bench/<script>`; a non-zero exit fails the test."""
    done = subprocess.run(
        [sys.executable, f"bench/{script}", "--quick", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def verdicts(report: str) -> list[tuple[str, str]]:
    """(PASS|MISS, scenario number) of every judged target."""
    return re.findall(r"^  (PASS|MISS)  \[(\w+)\] ", report, flags=re.MULTILINE)
