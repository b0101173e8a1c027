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

A scenario may run more sides than A and B (`Scenario.extra_sides`, e.g. a provider and a
full run against one raw program): each round runs A, the extra sides, then B, and a check
names the side it compares with raw (`Check.side`). A `plus` check may scale the raw side
(`Check.factor`): diff = side - factor * raw, for targets such as "at most 1.1x raw + 5 ms".
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import redis
import redis.asyncio as aioredis
import redis.utils

import ait
from ait.testing import EmbeddedRedis

Metrics = dict[str, float]
Kind = Literal["higher", "lower", "plus", "limit", "info"]

__all__ = [
    "Check",
    "Metrics",
    "Round",
    "Scenario",
    "Side",
    "BenchBase",
    "Verdict",
    "arguments",
    "environment",
    "judge",
    "median",
    "parse",
    "percentile",
    "progress",
    "report",
    "render_block",
    "render_summary",
    "render_targets",
    "run_interleaved",
    "run_scenarios",
    "selected",
    "serve",
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
    side: str = "ait"  # the side compared with raw: "ait" or the name of an extra side
    factor: float = 1.0  # `plus` only: diff = side - factor * raw

    def show(self, value: float) -> str:
        if math.isnan(value):
            return "n/a"
        return f"{value * self.scale:,.{self.digits}f}"

    def direction(self) -> str:
        return {
            "higher": "ratio = ait/raw, higher is better",
            "lower": "ratio = ait/raw, lower is better",
            "plus": "diff = ait - raw, lower is better"
            if self.factor == 1
            else f"diff = ait - {self.factor:g} x raw, lower is better",
            "limit": "ait value, absolute bound",
            "info": "ratio = ait/raw, for information",
        }[self.kind].replace("ait", self.side)

    def target_text(self) -> str:
        if self.target is None:
            return "-"
        if self.kind == "higher":
            return f">= {self.target:g}x raw"
        if self.kind == "lower":
            return f"<= {self.target:g}x raw"
        if self.kind == "plus":
            raw = "raw" if self.factor == 1 else f"{self.factor:g}x raw"
            return f"<= {raw} + {self.target * self.scale:g} {self.unit}"
        return f"<= {self.target * self.scale:g} {self.unit}"


@dataclass
class Round:
    ait: Metrics
    raw: Metrics
    extra: dict[str, Metrics] = field(default_factory=dict[str, Metrics])

    def side(self, name: str) -> Metrics:
        return self.ait if name == "ait" else self.extra.get(name, {})


@dataclass(frozen=True)
class Side:
    """A further program a scenario runs in every round, between A and B."""

    name: str
    description: str
    run: Callable[[], Awaitable[Metrics]]


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
    extra_sides: list[Side] = field(default_factory=list[Side])


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
    ait = [r.side(check.side).get(check.key, math.nan) for r in rounds]
    raw = [r.raw.get(check.key, math.nan) for r in rounds]
    if check.kind == "plus":
        per_round = [a - check.factor * b for a, b in zip(ait, raw, strict=True)]
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
    """Run A, the extra sides, then B in each round; `between` runs after every side
    (cleanup)."""
    results: list[Round] = []
    order = [
        ("ait", scenario.run_ait),
        *((side.name, side.run) for side in scenario.extra_sides),
        ("raw", scenario.run_raw),
    ]
    for index in range(rounds):
        sides: dict[str, Metrics] = {}
        for label, run in order:
            progress(f"{scenario.name}: round {index + 1}/{rounds}, {label}")
            gc.collect()
            started = time.perf_counter()
            metrics = await run()
            metrics["_seconds"] = time.perf_counter() - started
            sides[label] = metrics
            await between()
        ait, raw = sides.pop("ait"), sides.pop("raw")
        results.append(Round(ait, raw, sides))
    return results


def render_block(scenario: Scenario, rounds: Sequence[Round]) -> tuple[str, list[Verdict]]:
    lines = [
        "",
        f"[{scenario.number}] {scenario.name}: {scenario.title}",
        f"    A = ait: {scenario.ait_side}",
        *(f"    {side.name} = {side.description}" for side in scenario.extra_sides),
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
        lines.append(f"    {'round':>5}  {check.side:>12}  {'raw':>12}  {third:>9}")
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
            head = f"max {check.side} {check.show(verdict.summary)} {check.unit}"
        elif check.kind == "plus":
            head = f"median diff {check.show(verdict.summary)} {check.unit}"
        else:
            head = f"median ratio {_fmt_ratio(verdict.summary, 3)}"
        lines.append(
            f"    {head}   target {check.target_text()}   {verdict.result}"
            f"   (medians: {check.side} {check.show(median(verdict.ait))},"
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
            label = c.label if c.side == "ait" else f"{c.side}: {c.label}"
            lines.append(
                f"| {scenario.number} | {scenario.name} | {label} ({c.unit}) "
                f"| {c.show(median(v.ait))} | {c.show(median(v.raw))} | {merit} "
                f"| {c.target_text()} | {v.result} |"
            )
    return "\n".join(lines)


def render_targets(results: Sequence[tuple[Scenario, list[Verdict]]]) -> str:
    """One line per judged check: `PASS` or `MISS`, the scenario, the figure and the target."""
    lines: list[str] = []
    for scenario, verdicts in results:
        for v in verdicts:
            if v.passed is None:
                continue
            c = v.check
            if c.kind == "limit":
                figure = f"max {c.side} {c.show(v.summary)} {c.unit}"
            elif c.kind == "plus":
                figure = f"median diff {c.show(v.summary)} {c.unit}"
            else:
                figure = f"median ratio {_fmt_ratio(v.summary, 3)}"
            side = "" if c.side == "ait" else f" [{c.side}]"
            lines.append(
                f"  {v.result}  [{scenario.number}] {scenario.name}{side}: {c.label}:"
                f" {figure} (target {c.target_text()})"
            )
    return "\n".join(lines)


def render_tail(results: Sequence[tuple[Scenario, list[Verdict]]], rounds: int) -> str:
    """The end of a report: the Markdown summary, one PASS/MISS line per target, a count."""
    judged = [v for _, vs in results for v in vs if v.passed is not None]
    missed = [
        f"{s.number} {s.name}: {v.check.label}"
        for s, vs in results
        for v in vs
        if v.passed is False
    ]
    lines = [
        "",
        f"## Summary ({rounds} rounds, medians of same-round ratios)",
        "",
        render_summary(results, rounds),
        "",
        "Targets:",
        render_targets(results) or "  (none judged)",
        "",
        f"{len(judged) - len(missed)} of {len(judged)} targets met"
        + (f"; missed: {'; '.join(missed)}" if missed else "")
        + ".",
    ]
    return "\n".join(lines)


# -- command line ---------------------------------------------------------------------------


def selected(all_scenarios: list[Scenario], only: str | None) -> list[Scenario]:
    if not only:
        return all_scenarios
    wanted = [w.strip() for w in only.split(",") if w.strip()]

    def matches(scenario: Scenario, word: str) -> bool:
        return (
            word in (scenario.name, scenario.number)
            or scenario.name.startswith(word + "-")
            or (word.isdigit() and scenario.number.rstrip("abcd") == word)
        )

    names = {s.name for s in all_scenarios}
    wanted_names = {w for w in wanted if w in names}  # an exact name means only that one
    chosen = [
        s
        for s in all_scenarios
        if s.name in wanted_names or any(matches(s, w) for w in wanted if w not in names)
    ]
    unknown = [w for w in wanted if not any(matches(s, w) for s in all_scenarios)]
    if unknown:
        known = ", ".join(s.name for s in all_scenarios)
        raise SystemExit(f"unknown scenario(s) {', '.join(unknown)}; known: {known}")
    return chosen


def environment(url: str, server_version: str, extra: str = "") -> str:
    """One line on what the numbers were measured with."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"python {platform.python_version()}, {extra}redis-py {redis.__version__}, "
        f"hiredis {'yes' if redis.utils.HIREDIS_AVAILABLE else 'NO'}, "
        f"redis-server {server_version} on {url}, {os.cpu_count()} CPUs, "
        f"load average {load}"
    )


def arguments(description: str, *, default_rounds: int = 5) -> argparse.ArgumentParser:
    """The options every benchmark takes; a benchmark adds its own before parsing."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--rounds", type=int, default=default_rounds, help=f"rounds (default {default_rounds})"
    )
    parser.add_argument("--only", help="comma-separated scenario names, prefixes or numbers")
    parser.add_argument("--quick", action="store_true", help="reduced sizes: a smoke run")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", help="also write every round's raw metrics to this file")
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


async def run_scenarios(
    chosen: Sequence[Scenario],
    rounds: int,
    between: Callable[[], Awaitable[None]],
    dump: dict[str, Any],
) -> list[tuple[Scenario, list[Verdict]]]:
    """Run each scenario's rounds, print its block as it finishes, record every round."""
    results: list[tuple[Scenario, list[Verdict]]] = []
    for scenario in chosen:
        measured = await run_interleaved(scenario, rounds, between)
        text, verdicts = render_block(scenario, measured)
        print(text, flush=True)
        results.append((scenario, verdicts))
        dump[scenario.name] = [{"ait": r.ait, "raw": r.raw, **r.extra} for r in measured]
    return results


class BenchBase:
    """What every benchmark's sides share: the server, names, a bus that counts its errors.

    `between()` runs after every side: an empty server for the next one.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.admin = aioredis.Redis.from_url(url)
        self._names = 0
        self.bus_errors = 0
        self.last_bus_error = ""

    def name(self, kind: str) -> str:
        self._names += 1
        return f"bench-{kind}-{self._names:06d}"

    def raw_client(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(self.url)

    def bus(self) -> ait.Bus:
        """An ait bus; the errors it reports in the background are counted, not logged."""
        self.bus_errors = 0
        return ait.Bus.from_url(self.url, on_error=self._count_error)

    def _count_error(self, error: BaseException) -> None:
        self.bus_errors += 1
        self.last_bus_error = repr(error)

    async def between(self) -> None:
        await self.admin.flushall()
        await anyio.sleep(0.05)


async def report(
    title: str,
    args: argparse.Namespace,
    bench: BenchBase,
    chosen: Sequence[Scenario],
    dump: dict[str, Any],
    *,
    extra: str = "",
    quick_note: str = "--quick: reduced sizes, for a smoke run; numbers are noisier.",
) -> list[tuple[Scenario, list[Verdict]]]:
    """Print the header, run the chosen scenarios (printing each block), return the results."""
    info = await bench.admin.info("server")
    print(title)
    print(environment(bench.url, info.get("redis_version", "?"), extra))
    print("ratio = side/raw of the same round; the verdict uses the median over rounds.")
    if args.quick:
        print(quick_note)
    return await run_scenarios(chosen, args.rounds, bench.between, dump)


def serve(
    run: Callable[[argparse.Namespace, str, dict[str, Any]], Awaitable[None]],
    args: argparse.Namespace,
    dump: dict[str, Any],
) -> int:
    """Run a benchmark on a private embedded redis-server; write the raw rounds if asked."""
    with EmbeddedRedis() as server:
        anyio.run(run, args, server.url, dump, backend="asyncio")
    if args.json:
        Path(args.json).write_text(json.dumps(dump, indent=1))
    return 0
