"""The client side, measured: token latency to views of many sessions, and reconnect time,
against raw redis-py programs doing the same work, in the same run.

    .venv/bin/python bench/client.py [--rounds N] [--quick] [--only latency,reconnect] [--json F]

Every scenario runs its two sides interleaved, A (ait) then B (raw), `--rounds` times, on one
private redis-server (unix socket, `FLUSHALL` after every side); the verdict uses the median
of the same-round ratios (see bench/README.md).

Scenarios (`--only` takes names, prefixes such as `latency`, or numbers such as `1`):
  1a/1b/1c latency-1/10/100  an agent process streams a run at 200 tokens/s; this process
                             holds 1, 10 or 100 ClientSessions; latency = the agent handing
                             a token to the run's pipe -> a view's on_change callback here.
                             Target: p99 at 100 sessions at most raw p99 + 5 ms
  1d       latency-100-gc-frozen  the same, the collector frozen after setup on both sides
                             (gc.freeze()): a diagnostic of the p99 tail, not judged
  2        reconnect         a channel of 10,000 entries, 100 messages: ClientSession enter
                             -> the default view's messages (first render). Target < 150 ms

The agent process is this file run as `bench/client.py --producer {ait|raw} ...`.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import msgpack
import redis.asyncio as aioredis
from _harness import (
    BenchBase,
    Check,
    Metrics,
    Scenario,
    arguments,
    parse,
    percentile,
    render_tail,
    report,
    selected,
    serve,
)
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

import ait
from ait.codec import encode_event
from ait.ids import new_id

HERE = Path(__file__).resolve()
NS_PER_MS = 1_000_000
RATE = 200  # tokens/s of the agent's run
ADDED_P99_MS = 5.0
RECONNECT_MS = 150.0
READ_COUNT = 512  # entries per XREAD of the raw shared reader (as ait's shared reader)


@dataclass(frozen=True)
class Sizes:
    latency_seconds: float = 3.0  # streaming time per side
    history_entries: int = 10_000
    history_messages: int = 100
    reconnects: int = 10  # ClientSession enters per side and round


FULL = Sizes()
QUICK = replace(FULL, latency_seconds=0.5, reconnects=3)


def token(i: int) -> str:
    return f" w{i % 10_000:04d}"


def key_of(channel: str) -> str:
    return f"ait:{{{channel}}}:events"


def fields_of(event: ait.Event) -> dict[bytes, bytes]:
    flat = encode_event(event)
    return dict(zip(flat[0::2], flat[1::2], strict=True))


# -- the agent process ------------------------------------------------------------------------


async def producer(
    mode: str, url: str, channel: str, input_event_id: str, message_id: str, count: int
) -> None:
    """Stream `count` tokens at RATE/s; print every token's time.monotonic_ns() (CLOCK_MONOTONIC,
    shared by the processes of the machine) as JSON at the end.

    ait: an `AgentSession` run: `run.pipe(tokens())` where tokens() notes the time just
    before it yields each token to the pipe. raw: one awaited XADD per token (the same
    Output envelope), the time noted just before the XADD."""
    stamps: list[int] = []

    async def go() -> None:
        print("ready", flush=True)
        line = await anyio.to_thread.run_sync(sys.stdin.readline)
        if line.strip() != "go":
            raise SystemExit(f"producer: expected 'go', got {line!r}")

    async def tokens() -> AsyncIterator[str]:
        start = time.monotonic()
        for i in range(count):
            delay = start + i / RATE - time.monotonic()
            if delay > 0:
                await anyio.sleep(delay)
            stamps.append(time.monotonic_ns())
            yield token(i)

    if mode == "ait":
        async with ait.Bus.from_url(url) as bus, ait.AgentSession(bus, channel) as agent:
            run = agent.create_run(ait.Invocation(channel=channel, input_event_id=input_event_id))
            await run.start()
            await go()
            result = await run.pipe(tokens(), message_id=message_id)
            await run.end(result.reason)
    else:
        r = aioredis.Redis.from_url(url)
        key = key_of(channel)
        headers = {"run-id": new_id(), "message-id": message_id, "role": "assistant"}
        headers["parent"] = new_id()
        packed = msgpack.packb(headers)
        await r.ping()
        await go()
        try:
            async for text in tokens():
                delta = {"type": "text-delta", "id": "t1", "delta": text}
                fields = {b"v": b"1", b"t": b"output", b"h": packed, b"d": msgpack.packb([delta])}
                await r.xadd(key, fields)
        finally:
            await r.aclose()
    print(json.dumps({"stamps": stamps}), flush=True)


# -- consumers in this process ----------------------------------------------------------------


class Tally:
    """Arrivals of every token at every simulated client."""

    def __init__(self, clients: int, expected: int) -> None:
        self.expected = expected
        self.arrivals = [[0] * expected for _ in range(clients)]
        self.counts = [0] * clients
        self.repeated = 0
        self.finished = 0
        self.all_finished = anyio.Event()
        self.clients = clients

    def arrived(self, client: int, count: int, now: int) -> None:
        """Client `client` now holds `count` tokens."""
        seen = self.counts[client]
        if count <= seen:
            return
        if count > self.expected:  # more text than was sent: something came twice
            self.repeated += count - max(seen, self.expected)
        arrivals = self.arrivals[client]
        for i in range(seen, min(count, self.expected)):
            arrivals[i] = now
        self.counts[client] = count
        if count >= self.expected > seen:
            self.finished += 1
            if self.finished == self.clients:
                self.all_finished.set()

    def latencies(self, stamps: list[int]) -> list[float]:
        return [
            (arrivals[i] - stamps[i]) / NS_PER_MS
            for arrivals in self.arrivals
            for i in range(len(stamps))
            if arrivals[i]
        ]

    def lost(self) -> int:
        return sum(max(0, self.expected - c) for c in self.counts) + self.repeated


def watch_view(view: ait.ClientView, message_id: str, times: list[int]) -> None:
    """A view's on_change callback: note when each change of the streaming message arrives
    (its first token is a `structure` change that shows it, the others `content` changes).
    Which tokens each change brought is worked out after the run, from the entries."""

    def on_change(change: ait.ViewChange) -> None:
        if message_id in change.message_ids:
            times.append(time.monotonic_ns())

    view.on_change(on_change)


async def changes_to_tokens(r: aioredis.Redis, key: str, message_id: str, run_id: str) -> list[int]:
    """The tokens each change of `message_id` brought, in order: one change per entry that
    touches the message (its outputs, then the run's run.end), each output's text deltas."""
    counts: list[int] = []
    lower: bytes | str = "-"
    unpackb = msgpack.unpackb
    while True:
        page = await r.xrange(key, min=lower, max="+", count=1000)
        for _entry_id, f in page:
            kind = f[b"t"]
            if kind not in (b"output", b"run.end"):
                continue
            headers = unpackb(f[b"h"])
            if kind == b"output" and headers["message-id"] == message_id:
                counts.append(sum(1 for e in unpackb(f[b"d"]) if e["type"] == "text-delta"))
            elif kind == b"run.end" and headers["run-id"] == run_id:
                counts.append(0)
        if len(page) < 1000:
            return counts
        lower = b"(" + page[-1][0]


async def raw_consumer(
    receive: MemoryObjectReceiveStream[list[tuple[bytes, Any, Any]]], client: int, tally: Tally
) -> None:
    """A raw program's simulated client: batches from its process's one reader; keeps the
    message's text chunks and counts its tokens."""
    chunks: list[str] = []
    async with receive:
        async for batch in receive:
            for _entry_id, _headers, payload in batch:
                now = time.monotonic_ns()
                before = len(chunks)
                for item in payload:
                    if item["type"] == "text-delta":
                        chunks.append(item["delta"])
                if len(chunks) > before:
                    tally.arrived(client, len(chunks), now)
            if tally.counts[client] >= tally.expected:
                return


async def raw_reader(
    r: aioredis.Redis,
    key: str,
    sends: list[MemoryObjectSendStream[list[tuple[bytes, Any, Any]]]],
    tally: Tally,
) -> None:
    """ONE XREAD BLOCK reader for the whole process: each reply decoded once, fanned out."""
    cursor: bytes | str = "0-0"
    unpackb = msgpack.unpackb
    while not tally.all_finished.is_set():
        reply = await r.xread({key: cursor}, count=READ_COUNT, block=1000)
        for _key, entries in reply or ():
            cursor = entries[-1][0]
            batch = [
                (entry_id, unpackb(f[b"h"]), unpackb(f[b"d"]))
                for entry_id, f in entries
                if f[b"t"] == b"output"
            ]
            if batch:
                for send in sends:
                    send.send_nowait(batch)


class GcWatch:
    """The garbage collector's full (generation 2) collections while the clock runs."""

    def __init__(self) -> None:
        self.pauses: list[float] = []  # ms
        self._started = 0.0
        self._on = False

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if not self._on or info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((time.perf_counter() - self._started) * 1000)

    def start(self) -> None:
        self._on = True

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._on = False
        gc.callbacks.remove(self)


# -- history of the reconnect scenario --------------------------------------------------------

WORDS = (
    "the of and to in is that for it as with was on be by this are at from or an have not "
    "but which they you were all one their has more can will stream token model answer "
    "redis latency branch message channel event delta python async"
).split()


@dataclass
class History:
    """A conversation of `messages` messages in `entries` entries: per exchange an Input, a
    run.start, outputs of 1-8 text deltas (the last with a finish), a run.end."""

    fields: list[dict[bytes, bytes]]
    message_ids: list[str]
    texts: dict[str, str]


def build_history(entries: int, messages: int, seed: int) -> History:
    rng = random.Random(seed)
    exchanges = messages // 2
    per_exchange = entries // exchanges
    outputs = per_exchange - 3
    fields: list[dict[bytes, bytes]] = []
    message_ids: list[str] = []
    texts: dict[str, str] = {}
    parent: str | None = None
    for turn in range(exchanges):
        question = f"Question {turn}: " + " ".join(rng.choice(WORDS) for _ in range(15))
        user = ait.Input(
            event_id=new_id(),
            message_id=new_id(),
            role="user",
            client_id="alice",
            parent=parent,
            payload=ait.ChatCodec.user_text(question),
        )
        run_id, answer = new_id(), new_id()
        start = ait.RunStart(
            run_id=run_id,
            invocation_id=new_id(),
            input_event_id=user.event_id,
            input_message_id=user.message_id,
            run_client_id="alice",
            parent=user.message_id,
        )
        fields += [fields_of(user), fields_of(start)]
        chunks: list[str] = []
        for index in range(outputs):
            deltas = [" " + rng.choice(WORDS) for _ in range(rng.randint(1, 8))]
            chunks += deltas
            payload: list[dict[str, Any]] = [
                {"type": "text-delta", "id": "t1", "delta": d} for d in deltas
            ]
            if index == outputs - 1:
                payload.append({"type": "finish", "finish_reason": "stop", "status": "complete"})
            output = ait.Output(
                run_id=run_id,
                message_id=answer,
                role="assistant",
                parent=user.message_id,
                payload=payload,
            )
            fields.append(fields_of(output))
        end = ait.RunEnd(run_id=run_id, invocation_id=start.invocation_id, reason="complete")
        fields.append(fields_of(end))
        message_ids += [user.message_id, answer]
        texts[user.message_id] = question
        texts[answer] = "".join(chunks)
        parent = answer
    return History(fields, message_ids, texts)


# -- the scenarios ----------------------------------------------------------------------------


class Bench(BenchBase):
    def __init__(self, url: str, sizes: Sizes, seed: int) -> None:
        super().__init__(url)
        self.sizes = sizes
        self.seed = seed
        self.session_errors = 0
        self.history = build_history(sizes.history_entries, sizes.history_messages, seed)
        self.entries_read: int | None = None  # by the ait side of the reconnect scenario
        self.tracked = 0  # objects the collector tracks when the stream starts

    def _session_error(self, error: object) -> None:
        self.session_errors += 1

    # 1. token latency to many sessions ---------------------------------------------------

    async def start_producer(
        self, mode: str, channel: str, input_event_id: str, message_id: str, count: int
    ) -> tuple[Process, BufferedByteReceiveStream]:
        command = [
            sys.executable,
            str(HERE),
            "--producer",
            mode,
            self.url,
            channel,
            input_event_id,
            message_id,
            str(count),
        ]
        process = await anyio.open_process(command, stderr=None)
        assert process.stdout is not None
        lines = BufferedByteReceiveStream(process.stdout)
        line = await lines.receive_until(b"\n", 1000)
        if line.strip() != b"ready":
            raise RuntimeError(f"producer said {line!r}")
        return process, lines

    async def finish_producer(
        self, process: Process, lines: BufferedByteReceiveStream
    ) -> list[int]:
        line = await lines.receive_until(b"\n", 10_000_000)
        await process.wait()
        return list(json.loads(line)["stamps"])

    async def go(self, process: Process, freeze: bool, watch: GcWatch) -> None:
        """Start the agent's stream (after any untimed preparation of the collector)."""
        self.tracked = len(gc.get_objects())
        if freeze:
            gc.collect()
            gc.freeze()
        watch.start()
        assert process.stdin is not None
        await process.stdin.send(b"go\n")

    async def latency_side(self, mode: str, clients: int, freeze: bool = False) -> Metrics:
        count = int(RATE * self.sizes.latency_seconds)
        tally = Tally(clients, count)
        channel_name = self.name("latency")
        timeout = 60 + self.sizes.latency_seconds * 5
        opened_in = math.nan
        self.session_errors = 0
        with anyio.fail_after(timeout):
            if mode == "ait":
                async with self.bus() as bus, anyio.create_task_group() as tg:
                    # Each session in a task of its own, as a server holds one per connection.
                    started = time.perf_counter()
                    sessions: list[ait.ClientSession] = []
                    opened = anyio.Event()
                    stop = anyio.Event()

                    async def hold(index: int) -> None:
                        async with ait.ClientSession(
                            bus,
                            channel_name,
                            client_id=f"client-{index}",
                            invoke=None,
                            on_error=self._session_error,
                        ) as session:
                            sessions.append(session)
                            if len(sessions) == clients:
                                opened.set()
                            await stop.wait()

                    for index in range(clients):
                        tg.start_soon(hold, index)
                    await opened.wait()
                    opened_in = time.perf_counter() - started
                    active = await sessions[0].view.send("Count to a thousand, please.")
                    answer = new_id()
                    times: list[list[int]] = [[] for _ in sessions]
                    for session, noted in zip(sessions, times, strict=True):
                        watch_view(session.view, answer, noted)
                    process, lines = await self.start_producer(
                        "ait", channel_name, active.input_event_id, answer, count
                    )
                    async with process:
                        run_id = await active.run_id  # started: every session folds it now
                        await anyio.sleep(0.1)
                        with GcWatch() as watch:
                            await self.go(process, freeze, watch)
                            stamps = await self.finish_producer(process, lines)  # run.end out
                    # Untimed: which tokens each change brought; wait for every session's
                    # last change (the run.end), then check every session's text.
                    per_change = await changes_to_tokens(
                        self.admin, key_of(channel_name), answer, run_id
                    )
                    with anyio.move_on_after(10):
                        while any(len(noted) < len(per_change) for noted in times):
                            await anyio.sleep(0.01)
                    expected_text = "".join(token(i) for i in range(count))
                    for index, (session, noted) in enumerate(zip(sessions, times, strict=True)):
                        tally.repeated += max(0, len(noted) - len(per_change))
                        held = 0
                        for noted_at, brought in zip(noted, per_change, strict=False):
                            held += brought
                            tally.arrived(index, held, noted_at)
                        message = session.tree.message(answer)
                        if message is None or message.text != expected_text:
                            tally.repeated += 1  # a wrong fold counts as a loss
                    stop.set()
            else:
                reader = self.raw_client()
                key = key_of(channel_name)
                await reader.xlen(key)
                try:
                    async with anyio.create_task_group() as tg:
                        started = time.perf_counter()
                        sends = []
                        for index in range(clients):
                            send, receive = anyio.create_memory_object_stream[Any](math.inf)
                            sends.append(send)
                            tg.start_soon(raw_consumer, receive, index, tally)
                        opened_in = time.perf_counter() - started
                        process, lines = await self.start_producer(
                            "raw", channel_name, "-", new_id(), count
                        )
                        async with process:
                            tg.start_soon(raw_reader, reader, key, sends, tally)
                            await anyio.sleep(0.1)
                            with GcWatch() as watch:
                                await self.go(process, freeze, watch)
                                await tally.all_finished.wait()
                                stamps = await self.finish_producer(process, lines)
                finally:
                    await reader.aclose()
        gc.unfreeze()
        samples = tally.latencies(stamps)
        assert len(stamps) == count
        return {
            "p50": percentile(samples, 50),
            "p99": percentile(samples, 99),
            "max": max(samples),
            "lost": float(tally.lost()),
            "open_ms": opened_in * 1000,
            "gc_full": float(len(watch.pauses)),
            "gc_longest": max(watch.pauses, default=0.0),
            "tracked": float(self.tracked),
            "errors": float(self.bus_errors + self.session_errors if mode == "ait" else 0),
        }

    # 2. reconnect ------------------------------------------------------------------------

    async def write_history(self, key: str) -> list[str]:
        ids: list[str] = []
        for first in range(0, len(self.history.fields), 1000):
            pipe = self.admin.pipeline(transaction=False)
            for fields in self.history.fields[first : first + 1000]:
                pipe.xadd(key, fields)
            ids += [raw.decode() for raw in await pipe.execute()]
        return ids

    async def reconnect_ait(self) -> Metrics:
        times: list[float] = []
        h = self.history
        self.session_errors = 0
        async with self.bus() as bus:
            channel = bus.channel(self.name("history"))
            ids = await self.write_history(channel.key)
            await channel.length()  # a pooled connection, as a running process has
            for index in range(self.sizes.reconnects):
                started = time.perf_counter()
                async with ait.ClientSession(
                    bus,
                    channel.name,
                    client_id=f"bob-{index}",
                    invoke=None,
                    on_error=self._session_error,
                ) as client:
                    messages = client.view.messages
                    times.append(time.perf_counter() - started)
                    oldest = client._oldest  # pyright: ignore[reportPrivateUsage]
                # Checks, untimed: the newest window, whole texts.
                window = client.window
                assert [m.id for m in messages] == h.message_ids[-window:], "wrong window"
                assert all(m.text == h.texts[m.id] for m in messages), "wrong text"
                assert oldest is not None
                self.entries_read = len(ids) - ids.index(oldest)
        return {
            "median_ms": statistics.median(times) * 1000,
            "max_ms": max(times) * 1000,
            "entries": float(self.entries_read or 0),
            "errors": float(self.bus_errors + self.session_errors),
        }

    async def reconnect_raw(self) -> Metrics:
        """XREVRANGE the same newest entries in pages of 200, msgpack-decode h and d."""
        times: list[float] = []
        key = key_of(self.name("history"))
        await self.write_history(key)
        wanted = self.entries_read or len(self.history.fields)
        unpackb = msgpack.unpackb
        r = self.raw_client()
        try:
            await r.xlen(key)
            for _ in range(self.sizes.reconnects):
                started = time.perf_counter()
                entries: list[tuple[bytes, bytes, Any, Any]] = []
                upper: bytes | str = "+"
                while len(entries) < wanted:
                    page = await r.xrevrange(key, max=upper, min="-", count=200)
                    for entry_id, f in page:
                        d = f.get(b"d")
                        entries.append(
                            (entry_id, f[b"t"], unpackb(f[b"h"]), None if d is None else unpackb(d))
                        )
                    if len(page) < 200:
                        break
                    upper = b"(" + page[-1][0]
                entries.reverse()
                times.append(time.perf_counter() - started)
            assert len(entries) >= wanted
        finally:
            await r.aclose()
        return {
            "median_ms": statistics.median(times) * 1000,
            "max_ms": max(times) * 1000,
            "entries": float(len(entries)),
        }


# -- the scenario table -----------------------------------------------------------------------


def scenarios(bench: Bench) -> list[Scenario]:
    s = bench.sizes
    ms = partial(Check, unit="ms", digits=2)
    latency = []
    cases = (("1a", 1, False), ("1b", 10, False), ("1c", 100, False), ("1d", 100, True))
    for number, clients, freeze in cases:
        target = ADDED_P99_MS if clients == 100 and not freeze else None
        diagnostic = (
            " (diagnostic, not judged: gc.collect() + gc.freeze() once the clients are open, "
            "on both sides)"
            if freeze
            else ""
        )
        latency.append(
            Scenario(
                name=f"latency-{clients}" + ("-gc-frozen" if freeze else ""),
                number=number,
                title=f"{clients} ClientSession{'s' if clients > 1 else ''} in this process, "
                f"an agent process streaming {RATE} tokens/s for {s.latency_seconds:g} s"
                + diagnostic,
                ait_side=f"agent process: `AgentSession` run, `run.pipe(tokens())`; here: "
                f"{clients} x `ClientSession` (invoke=None) on one Bus, each default view "
                "with an `on_change` callback noting the time of every change of the "
                "streaming message (the tokens each brought: from the entries, after the run)",
                raw_side="agent process: one awaited XADD per token (same envelope); here: ONE "
                f"XREAD BLOCK reader, each reply decoded once and fanned out to {clients} "
                "consumer tasks through anyio memory streams (a shared-reader fan-out, "
                "what ait does; not one XREAD per client); each keeps the text chunks",
                common="latency = time.monotonic_ns() at the callback / consumer minus at the "
                "agent's hand-over of the token (ait: just before yielding it to the pipe; "
                "raw: just before its XADD), per client and token; the garbage collector "
                + ("frozen after setup" if freeze else "runs as usual"),
                run_ait=partial(bench.latency_side, "ait", clients, freeze),
                run_raw=partial(bench.latency_side, "raw", clients, freeze),
                checks=[
                    Check("p99 latency", "p99", "ms", "plus", target, digits=2),
                    Check("p50 latency", "p50", "ms", "plus", None, digits=2),
                    ms(label="p99 latency", key="p99", kind="info"),
                    ms(label="slowest delivery", key="max", kind="info"),
                    Check("tokens lost or repeated", "lost", "deliveries", "limit", 0),
                    Check("full gc collections while streaming", "gc_full", "collections", "info"),
                    ms(label="longest full gc collection", key="gc_longest", kind="info"),
                    Check("objects tracked by the gc", "tracked", "objects", "info"),
                    ms(label="time to open the clients", key="open_ms", kind="info", digits=1),
                    Check("errors ait reported (on_error)", "errors", "errors", "info"),
                ],
            )
        )
    return [
        *latency,
        Scenario(
            name="reconnect",
            number="2",
            title=f"a channel of {s.history_entries:,} entries and {s.history_messages} "
            f"messages; {s.reconnects} reconnects per side",
            ait_side="`async with ClientSession(bus, channel)` (window 50) until "
            "`client.view.messages` returns (first render), on an open Bus",
            raw_side="XREVRANGE the same newest entries in pages of 200 + msgpack.unpackb of "
            "h and d of each (no fold: for information)",
            common="per exchange: an Input, a run.start, 197 outputs of 1-8 text deltas, a "
            "run.end; time per reconnect, median (and slowest) of the reconnects of a round",
            run_ait=bench.reconnect_ait,
            run_raw=bench.reconnect_raw,
            checks=[
                Check(
                    "reconnect -> first render",
                    "median_ms",
                    "ms",
                    "limit",
                    RECONNECT_MS,
                    digits=1,
                ),
                ms(label="reconnect -> first render", key="median_ms", kind="info", digits=1),
                ms(label="slowest reconnect", key="max_ms", kind="info", digits=1),
                Check("entries read", "entries", "entries", "info"),
                Check("errors ait reported (on_error)", "errors", "errors", "info"),
            ],
        ),
    ]


# -- main -------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, url: str, dump: dict[str, Any]) -> None:
    bench = Bench(url, QUICK if args.quick else FULL, args.seed)
    chosen = selected(scenarios(bench), args.only)
    title = f"ait client benchmark: {args.rounds} rounds, interleaved A (ait) B (raw) per round"
    started = time.perf_counter()
    try:
        results = await report(title, args, bench, chosen, dump)
    finally:
        await bench.admin.aclose()
    print(render_tail(results, args.rounds))
    print(f"Total time {time.perf_counter() - started:.0f} s.")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--producer"]:
        mode, url, channel, input_event_id, message_id, count = argv[1:7]
        anyio.run(
            producer, mode, url, channel, input_event_id, message_id, int(count), backend="asyncio"
        )
        return 0
    args = parse(arguments(__doc__.split("\n\n")[0]), argv)
    return serve(run, args, {"sizes": asdict(QUICK if args.quick else FULL)})


if __name__ == "__main__":
    sys.exit(main())
