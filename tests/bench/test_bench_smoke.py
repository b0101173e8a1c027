"""The bus benchmark still runs: one quick round of one scenario, in a subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_bus_quick_publish_runs_and_prints_a_ratio() -> None:
    done = subprocess.run(
        [sys.executable, "bench/bus.py", "--quick", "--rounds", "1", "--only", "publish"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"median ratio \d+\.\d+x +target >= 0\.85x raw +(PASS|MISS)", done.stdout)
    assert re.search(r"\| 1 \| publish \| throughput", done.stdout)  # the summary table
