"""The SSE decoder, measured: `ait.providers.SSEDecoder` against httpx-sse on the same bytes.

    .venv/bin/python bench/sse.py [--rounds N] [--quick] [--only NAME] [--json FILE]

No Redis, no network: the bytes of a stream are built in memory before any timing, cut into
16 KiB chunks (what an HTTP response hands over), and decoded by both sides in every round:
  A = ait: `SSEDecoder.feed(chunk)` per chunk, then `flush()`
  B = raw: httpx-sse's own line and field decoders fed what its `EventSource.iter_sse` gets
      from httpx: each chunk through an incremental UTF-8 decoder (errors="replace", as
      httpx's `TextDecoder`), then `SSELineDecoder.decode`, then `SSEDecoder.decode` per line

Scenarios:
  1 long-line     one `data:` line of 1 MiB (256 KiB with --quick), then a blank line: the
                  case a decoder that rescans its buffer per chunk turns quadratic.
  2 small-events  20,000 events (5,000 with --quick) as an Anthropic stream sends them:
                  `event:` and a `data:` line of JSON of about 100 bytes.

Each side decodes the stream `reps` times per round (a decode takes milliseconds, less than
a time slice of the other programs on a shared machine) and reports the fastest: the work
is the same every time, and noise only ever adds to it. A round's ratio is ait/raw.
Targets: <= 1.5x raw in both. Both sides' events are checked equal (names, data) after
timing, so a wrong decode fails the run.
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import platform
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx_sse
from _harness import (
    Check,
    Metrics,
    Scenario,
    arguments,
    parse,
    render_tail,
    run_scenarios,
    selected,
)
from httpx_sse._decoders import SSEDecoder as RawDecoder
from httpx_sse._decoders import SSELineDecoder as RawLineDecoder

from ait.providers import SSEDecoder

CHUNK = 16 * 1024
TARGET = 1.5  # ait / raw decode time, both scenarios

Events = list[tuple[str, str]]  # (event, data) of each decoded event


@dataclass(frozen=True)
class Sizes:
    line_bytes: int
    events: int
    reps: int


FULL = Sizes(line_bytes=1024 * 1024, events=20_000, reps=9)
QUICK = Sizes(line_bytes=256 * 1024, events=5_000, reps=3)


class DecodeMismatch(Exception):
    """The two sides decoded different events: the comparison would not be of the same work."""


def chunked(raw: bytes) -> list[bytes]:
    return [raw[i : i + CHUNK] for i in range(0, len(raw), CHUNK)]


def long_line(size: int, seed: int) -> bytes:
    """One data line of `size` bytes of JSON-like text (a few multibyte characters in it)."""
    rng = random.Random(seed)
    words = ["token", "delta", "é", "🙂", '"x": 1', "text", "你好", " "]
    parts: list[bytes] = []
    total = 0
    while total < size:
        parts.append(rng.choice(words).encode())
        total += len(parts[-1])
    return b"data: " + b"".join(parts) + b"\n\n"


def small_events(count: int, seed: int) -> bytes:
    rng = random.Random(seed)
    words = ["The", " tree", " folds", " every", " entry", ",", " é", " 🙂", "\\n", " code"]
    lines: list[str] = []
    for index in range(count):
        delta = json.dumps({"type": "text_delta", "text": rng.choice(words)})
        data = f'{{"type":"content_block_delta","index":{index % 3},"delta":{delta}}}'
        lines.append(f"event: content_block_delta\ndata: {data}\n\n")
    return "".join(lines).encode()


def decode_ait(chunks: list[bytes]) -> Events:
    decoder = SSEDecoder()
    events: Events = []
    for chunk in chunks:
        events.extend((e.event, e.data) for e in decoder.feed(chunk))
    events.extend((e.event, e.data) for e in decoder.flush())
    return events


def decode_raw(chunks: list[bytes]) -> Events:
    text = codecs.getincrementaldecoder("utf-8")(errors="replace")
    lines, fields = RawLineDecoder(), RawDecoder()
    events: Events = []
    for chunk in chunks:
        for line in lines.decode(text.decode(chunk)):
            event = fields.decode(line.rstrip("\n"))
            if event is not None:
                events.append((event.event, event.data))
    for line in lines.decode(text.decode(b"", True)) + lines.flush():
        event = fields.decode(line.rstrip("\n"))
        if event is not None:
            events.append((event.event, event.data))
    return events


class Bench:
    def __init__(self, sizes: Sizes, seed: int) -> None:
        self.sizes = sizes
        self.streams = {
            "long-line": chunked(long_line(sizes.line_bytes, seed)),
            "small-events": chunked(small_events(sizes.events, seed)),
        }
        self.expected = {name: decode_raw(chunks) for name, chunks in self.streams.items()}

    def side(
        self, name: str, decode: Callable[[list[bytes]], Events]
    ) -> Callable[[], Awaitable[Metrics]]:
        async def run() -> Metrics:
            chunks = self.streams[name]
            times: list[float] = []
            events: Events = []
            for _ in range(self.sizes.reps):
                started = time.perf_counter_ns()
                events = decode(chunks)
                times.append((time.perf_counter_ns() - started) / 1e6)
            if events != self.expected[name]:  # untimed: a wrong decode fails the run
                raise DecodeMismatch(f"{name}: {decode.__name__} decoded other events than raw")
            return {"ms": min(times), "events": len(events)}

        return run


def scenarios(bench: Bench) -> list[Scenario]:
    s = bench.sizes
    common = (
        f"the same bytes in {CHUNK // 1024} KiB chunks, built before timing; each side decodes "
        f"them {s.reps} times per round, the fastest counts; events checked equal"
    )
    ait_side = "`SSEDecoder.feed(chunk)` per chunk, then `flush()`"
    raw_side = (
        "httpx-sse 0.4: incremental UTF-8 decode (as httpx), `SSELineDecoder.decode`, "
        "`SSEDecoder.decode` per line (as `EventSource.iter_sse`)"
    )
    checks = [
        Check("decode time", "ms", "ms", "lower", TARGET, digits=2),
        Check("events decoded", "events", "events", "info"),
    ]
    titles = {
        "long-line": f"one data line of {s.line_bytes // 1024:,} KiB",
        "small-events": f"{s.events:,} events of `event:` and a `data:` line of JSON",
    }
    return [
        Scenario(
            name=name,
            number=str(number),
            title=title,
            ait_side=ait_side,
            raw_side=raw_side,
            common=common,
            run_ait=bench.side(name, decode_ait),
            run_raw=bench.side(name, decode_raw),
            checks=checks,
        )
        for number, (name, title) in enumerate(titles.items(), start=1)
    ]


async def nothing() -> None:
    """Between sides: there is no server to empty."""


async def run(args: argparse.Namespace, dump: dict[str, Any]) -> None:
    bench = Bench(QUICK if args.quick else FULL, args.seed)
    chosen = selected(scenarios(bench), args.only)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"ait SSE decoder benchmark: {args.rounds} rounds, interleaved A (ait) B (raw)")
    print(
        f"python {platform.python_version()}, httpx-sse {httpx_sse.__version__},"
        f" {os.cpu_count()} CPUs, load average {load}"
    )
    print("ratio = ait/raw of the same round; the verdict uses the median over rounds.")
    if args.quick:
        print("--quick: reduced sizes, for a smoke run; numbers are noisier.")
    started = time.perf_counter()
    results = await run_scenarios(chosen, args.rounds, nothing, dump)
    print(render_tail(results, args.rounds))
    print(f"Total time {time.perf_counter() - started:.0f} s.")


def main(argv: list[str] | None = None) -> int:
    args = parse(arguments(__doc__.split("\n\n")[0]), argv)
    dump: dict[str, Any] = {}
    anyio.run(run, args, dump, backend="asyncio")
    if args.json:
        Path(args.json).write_text(json.dumps(dump, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
