"""The SSE decoder benchmark still runs: one quick round, in a subprocess, and it judges its
targets against httpx-sse."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_sse_quick_runs_and_judges_its_targets() -> None:
    done = subprocess.run(
        [sys.executable, "bench/sse.py", "--quick", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    # Sides decoding different events raise DecodeMismatch: a non-zero exit. A miss does not.
    assert done.returncode == 0, done.stdout + done.stderr
    verdicts = re.findall(r"^  (PASS|MISS)  \[(\d)\] ", done.stdout, flags=re.MULTILINE)
    assert [number for _, number in verdicts] == ["1", "2"], done.stdout
    assert re.search(r"^\| 1 \| long-line \| decode time \(ms\) \|", done.stdout, re.MULTILINE)
    assert re.search(r"^\| 2 \| small-events \| decode time \(ms\) \|", done.stdout, re.MULTILINE)
