"""The benchmark harness: interleaved A/B rounds, percentiles, same-round ratios, reports.

A scenario runs its two sides, A (ait) and B (raw redis-py), one after the other in every
round: A B A B ... Absolute numbers on a shared machine swing several times between rounds,
but the two sides of one round see about the same machine, so the figure of merit is the
ratio of the two sides *within* a round, summarised by the median over rounds.

Every check of a scenario reads one metric of both sides' results:

- `higher`: a throughput. ratio = ait / raw; PASS when the median ratio >= target.
- `lower`:  a latency or a cost. ratio = ait / raw; PASS when the median ratio <= target.
- `plus`:   a latency budget. diff = ait - raw (in the metric's unit); PASS when the
            median diff <= target.
- `limit`:  an absolute bound on the ait side; PASS when every round's ait value <= target.
- `info`:   reported, not judged.
"""

from __future__ import annotations

import gc
import math
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Metrics = dict[str, float]
Kind = Literal["higher", "lower", "plus", "limit", "info"]

__all__ = [
    "Check",
    "Metrics",
    "Round",
    "Scenario",
    "Verdict",
    "judge",
    "median",
    "percentile",
    "progress",
    "render_block",
    "render_summary",
    "run_interleaved",
]


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) with linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


def progress(text: str) -> None:
    """A progress line on stderr (stdout holds only the report)."""
    print(f"  .. {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Check:
    """One judged (or reported) metric of a scenario."""

    label: str
    key: str
    unit: str
    kind: Kind
    target: float | None = None
    scale: float = 1.0  # multiply the stored value by this for display
    digits: int = 0

    def show(self, value: float) -> str:
        if math.isnan(value):
            return "n/a"
        return f"{value * self.scale:,.{self.digits}f}"

    def direction(self) -> str:
        return {
            "higher": "ratio = ait/raw, higher is better",
            "lower": "ratio = ait/raw, lower is better",
            "plus": "diff = ait - raw, lower is better",
            "limit": "ait value, absolute bound",
            "info": "ratio = ait/raw, for information",
        }[self.kind]

    def target_text(self) -> str:
        if self.target is None:
            return "-"
        if self.kind == "higher":
            return f">= {self.target:g}x raw"
        if self.kind == "lower":
            return f"<= {self.target:g}x raw"
        if self.kind == "plus":
            return f"<= raw + {self.target * self.scale:g} {self.unit}"
        return f"<= {self.target * self.scale:g} {self.unit}"


@dataclass
class Round:
    ait: Metrics
    raw: Metrics


@dataclass
class Scenario:
    """Two programs doing the same work; `checks` say what is compared."""

    name: str
    number: str
    title: str
    ait_side: str
    raw_side: str
    common: str
    run_ait: Callable[[], Awaitable[Metrics]]
    run_raw: Callable[[], Awaitable[Metrics]]
    checks: list[Check]
    notes: str = ""


@dataclass
class Verdict:
    check: Check
    ait: list[float]
    raw: list[float]
    per_round: list[float]  # ratio (or diff) of each round
    summary: float  # median of per_round (limit: max of ait)
    passed: bool | None  # None for info
    extra: dict[str, Any] = field(default_factory=dict[str, Any])

    @property
    def result(self) -> str:
        return "-" if self.passed is None else ("PASS" if self.passed else "MISS")


def _ratio(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b) or b == 0:
        return math.nan
    return a / b


def judge(check: Check, rounds: Sequence[Round]) -> Verdict:
    ait = [r.ait.get(check.key, math.nan) for r in rounds]
    raw = [r.raw.get(check.key, math.nan) for r in rounds]
    if check.kind == "plus":
        per_round = [a - b for a, b in zip(ait, raw, strict=True)]
        summary = median(per_round)
    elif check.kind == "limit":
        bound = math.inf if check.target is None else check.target
        per_round = [1.0 if a <= bound else 0.0 for a in ait]  # 1: within the bound
        summary = max(ait) if ait else math.nan
    else:
        per_round = [_ratio(a, b) for a, b in zip(ait, raw, strict=True)]
        summary = median(per_round)
    passed: bool | None
    if check.kind == "info" or check.target is None:
        passed = None
    elif math.isnan(summary):
        passed = False
    elif check.kind == "higher":
        passed = summary >= check.target
    else:
        passed = summary <= check.target
    return Verdict(check, ait, raw, per_round, summary, passed)


async def run_interleaved(
    scenario: Scenario, rounds: int, between: Callable[[], Awaitable[None]]
) -> list[Round]:
    """Run A then B in each round; `between` runs after every side (cleanup)."""
    results: list[Round] = []
    for index in range(rounds):
        sides: list[Metrics] = []
        for label, run in (("ait", scenario.run_ait), ("raw", scenario.run_raw)):
            progress(f"{scenario.name}: round {index + 1}/{rounds}, {label}")
            gc.collect()
            started = time.perf_counter()
            metrics = await run()
            metrics["_seconds"] = time.perf_counter() - started
            sides.append(metrics)
            await between()
        results.append(Round(*sides))
    return results


def render_block(scenario: Scenario, rounds: Sequence[Round]) -> tuple[str, list[Verdict]]:
    lines = [
        "",
        f"[{scenario.number}] {scenario.name}: {scenario.title}",
        f"    A = ait: {scenario.ait_side}",
        f"    B = raw: {scenario.raw_side}",
    ]
    if scenario.common:
        lines.append(f"    both:    {scenario.common}")
    verdicts: list[Verdict] = []
    for check in scenario.checks:
        verdict = judge(check, rounds)
        verdicts.append(verdict)
        lines.append(f"  {check.label} ({check.unit}; {check.direction()})")
        third = {"plus": "diff", "limit": "bound"}.get(check.kind, "ratio")
        lines.append(f"    {'round':>5}  {'ait':>12}  {'raw':>12}  {third:>9}")
        for index, (a, b, x) in enumerate(
            zip(verdict.ait, verdict.raw, verdict.per_round, strict=True)
        ):
            if check.kind == "plus":
                shown = check.show(x)
            elif check.kind == "limit":
                shown = "ok" if x else "OVER"
            else:
                shown = _fmt_ratio(x)
            lines.append(
                f"    {index + 1:>5}  {check.show(a):>12}  {check.show(b):>12}  {shown:>9}"
            )
        if check.kind == "limit":
            head = f"max ait {check.show(verdict.summary)} {check.unit}"
        elif check.kind == "plus":
            head = f"median diff {check.show(verdict.summary)} {check.unit}"
        else:
            head = f"median ratio {_fmt_ratio(verdict.summary, 3)}"
        lines.append(
            f"    {head}   target {check.target_text()}   {verdict.result}"
            f"   (medians: ait {check.show(median(verdict.ait))},"
            f" raw {check.show(median(verdict.raw))})"
        )
    if scenario.notes:
        lines.extend(f"    note: {line}" for line in scenario.notes.splitlines())
    return "\n".join(lines), verdicts


def _fmt_ratio(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}x"


def render_summary(results: Sequence[tuple[Scenario, list[Verdict]]], rounds: int) -> str:
    lines = [
        f"| # | scenario | metric | ait (median) | raw (median) | median same-round ratio"
        f" ({rounds} rounds) | target | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scenario, verdicts in results:
        for v in verdicts:
            c = v.check
            if c.kind == "plus":
                sign = "+" if v.summary >= 0 else ""
                merit = f"{sign}{c.show(v.summary)} {c.unit}"
            elif c.kind == "limit":
                merit = f"max {c.show(v.summary)}"
            else:
                merit = _fmt_ratio(v.summary, 3)
            lines.append(
                f"| {scenario.number} | {scenario.name} | {c.label} ({c.unit}) "
                f"| {c.show(median(v.ait))} | {c.show(median(v.raw))} | {merit} "
                f"| {c.target_text()} | {v.result} |"
            )
    return "\n".join(lines)
