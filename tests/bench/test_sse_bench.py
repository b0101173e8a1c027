"""The SSE decoder benchmark still runs: one quick round, in a subprocess, and it judges its
targets against httpx-sse (sides decoding different events make it exit non-zero)."""

from __future__ import annotations

import re

import pytest

from .helpers import run_bench, verdicts


@pytest.mark.slow
def test_bench_sse_quick_runs_and_judges_its_targets() -> None:
    report = run_bench("sse.py", timeout=110)
    assert [number for _, number in verdicts(report)] == ["1", "2"], report
    assert re.search(r"^\| 1 \| long-line \| decode time \(ms\) \|", report, re.MULTILINE)
    assert re.search(r"^\| 2 \| small-events \| decode time \(ms\) \|", report, re.MULTILINE)
