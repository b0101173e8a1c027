"""The agent, client and llama benchmarks still run: one quick round each, in a subprocess,
and each judges its targets (PASS or MISS lines, a Markdown summary)."""

from __future__ import annotations

import re

import pytest

from .helpers import run_bench, verdicts


@pytest.mark.slow
def test_bench_agent_quick_runs_and_judges_its_targets() -> None:
    report = run_bench("agent.py", timeout=120)
    numbers = [number for _, number in verdicts(report)]
    assert numbers == ["1", "2", "2", "2b", "2b", "3", "3"], report
    assert re.search(r"^\| 1 \| tokens \| throughput \(tokens/s\) \|", report, re.MULTILINE)
    assert re.search(r"^\| 1 \| tokens \| output entries per 1,000 tokens", report, re.MULTILINE)
    assert re.search(r"^\| 2 \| cancel \| p99 cancel -> run.end \(ms\) \|", report, re.MULTILINE)
    assert re.search(r"^\| 3 \| wake \| p50 wake -> run.start \(ms\) \|", report, re.MULTILINE)


@pytest.mark.slow
def test_bench_client_quick_runs_and_judges_its_targets() -> None:
    report = run_bench("client.py", timeout=180)
    numbers = [number for _, number in verdicts(report)]
    assert numbers == ["1a", "1b", "1c", "1c", "1d", "2"], report
    assert re.search(r"^\| 1c \| latency-100 \| p99 latency \(ms\) \|", report, re.MULTILINE)
    assert re.search(r"^\| 2 \| reconnect \| reconnect -> first render", report, re.MULTILINE)


@pytest.mark.slow
def test_bench_llama_quick_runs_and_judges_its_targets() -> None:
    report = run_bench("llama.py", timeout=180)
    found = verdicts(report)
    assert [number for _, number in found] == ["1", "1", "1"], report
    assert "[1] generate [e2e]: time to first token" in report
    # Every side generated the same tokens: the comparison is of the same work.
    assert re.search(
        r"^\| 1 \| generate \| tokens generated \(tokens\) \| (\d+) \| \1 \|", report, re.M
    )
    assert re.search(
        r"^\| 1 \| generate \| e2e: tokens generated \(tokens\) \| (\d+) \| \1 \|", report, re.M
    )
