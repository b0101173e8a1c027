"""ait's bus against raw redis-py programs doing the same work, in the same run.

    .venv/bin/python bench/bus.py [--rounds N] [--only publish,writer,...] [--quick] [--json F]

Every scenario has two sides: A uses ait (`Bus`, `Channel`, `CoalescingWriter`,
`Subscription`), B is a plain redis-py program written the way one would write it by hand
(hiredis parser, asyncio). They run interleaved, A B A B ..., for `--rounds` rounds, on one
private redis-server (unix socket). Each check reports the ratio of the two sides within
each round and the median of those same-round ratios, which is what survives the 3-8x
swings of absolute numbers on a shared machine. See bench/README.md for how to read it.

Scenarios (`--only` takes names, name prefixes such as `fanout`, or numbers such as `5`):
  1 publish          awaited publish throughput
  2 writer           coalescing writer throughput vs a 10 ms timed pipelined flusher
  3 writer-latency   coalescing writer latency at 200 events/s vs one XADD per event
  4 process          producer process -> subscriber process latency at 200 events/s
  5 fanout-*         one channel, 100 and 1,000 local subscribers: latency, no loss,
                     saturation deliveries/s
  6 channels         1,000 channels x 1 subscriber at 2,000 events/s; connections used
  7 history          read and decode 10,000 entries
  8 memory           Redis memory per delta event
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
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
    render_summary,
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

HERE = Path(__file__).resolve().parent
PRODUCER = HERE / "_producer.py"
NS_PER_MS = 1_000_000
READ_COUNT = 512  # entries per XREAD, as ait's shared reader asks (READER_COUNT)
LATENCY_RATE = 200  # events/s of scenarios 3 and 4
FANOUT_RATE = 100  # events/s of the fan-out latency scenarios
CHANNELS = 1000
CHANNELS_RATE = 2000  # events/s over all channels of scenario 6
FLUSH_INTERVAL = 0.010  # the raw timed flusher of scenarios 2 and 8
MEMORY_PAUSE = 0.001  # seconds between bursts of 1-8 deltas in scenario 8


# -- sizes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    publish_events: int = 5000
    writer_events: int = 30_000
    latency_seconds: float = 2.0  # scenario 3, per side
    process_seconds: float = 2.0  # scenario 4
    fanout_seconds: float = 2.0  # scenario 5 latency phase
    saturation_deliveries: int = 500_000  # scenario 5 saturation: events x subscribers
    channels_seconds: float = 2.0  # scenario 6
    history_entries: int = 10_000
    history_page: int = 500
    memory_events: int = 10_000


FULL = Sizes()
QUICK = replace(
    FULL,
    publish_events=1000,
    writer_events=5000,
    latency_seconds=0.5,
    process_seconds=0.5,
    fanout_seconds=0.5,
    saturation_deliveries=100_000,
    channels_seconds=0.5,
    memory_events=2000,
)


# -- the data every scenario streams --------------------------------------------------------

WORDS = (
    "the of and to in is that for it as with was on be by this are at from or an have not "
    "but which they you were all one their has more can will stream token model answer "
    "redis latency branch message channel event delta python async"
).split()


class Wire:
    """One assistant message: its ids, its headers, and deltas of LLM-like tokens.

    Both sides write byte-identical envelopes (`v`, `t`, `h`, `d`): the raw side packs the
    same headers with msgpack, checked against `ait.codec.encode_event` on start.
    """

    def __init__(self, seed: int) -> None:
        self.headers = {
            "run-id": new_id(),
            "message-id": new_id(),
            "role": "assistant",
            "parent": new_id(),
        }
        self.packed_headers: bytes = msgpack.packb(self.headers)
        rng = random.Random(seed)
        self.tokens = [" " + rng.choice(WORDS) for _ in range(4096)]
        self._check()

    def delta(self, i: int, **extra: int) -> dict[str, Any]:
        """One codec event: a text delta (plus `ts`/`seq` where a scenario times it)."""
        return {"type": "text-delta", "delta": self.tokens[i % len(self.tokens)], **extra}

    def handle(self, out: ait.CoalescingWriter) -> Any:
        """A message handle on `out` for these headers (what Run.pipe uses per delta)."""
        h = self.headers
        return out.message(
            run_id=h["run-id"], message_id=h["message-id"], role=h["role"], parent=h["parent"]
        )

    def output(self, payload: list[Any]) -> ait.Output:
        h = self.headers
        return ait.Output(
            run_id=h["run-id"],
            message_id=h["message-id"],
            role=h["role"],
            parent=h["parent"],
            payload=payload,
        )

    def raw_fields(self, payload: list[Any]) -> dict[bytes, bytes]:
        """What a raw program XADDs for an Output: the envelope, packed by hand."""
        return {
            b"v": b"1",
            b"t": b"output",
            b"h": self.packed_headers,
            b"d": msgpack.packb(payload),
        }

    def _check(self) -> None:
        payload = [self.delta(1), self.delta(2, ts=3, seq=4)]
        flat = [x for pair in self.raw_fields(payload).items() for x in pair]
        if flat != encode_event(self.output(payload)):
            raise SystemExit("bench bug: raw envelope differs from ait.codec.encode_event")


def fields_of(event: ait.Event) -> dict[bytes, bytes]:
    flat = encode_event(event)
    return dict(zip(flat[0::2], flat[1::2], strict=True))


def key_of(channel: str) -> str:
    return f"ait:{{{channel}}}:events"


async def sleep_until(deadline: float) -> None:
    delay = deadline - time.perf_counter()
    if delay > 0:
        await anyio.sleep(delay)


def latency_metrics(samples_ns: Sequence[int]) -> Metrics:
    ms = [s / NS_PER_MS for s in samples_ns]
    return {"p50": percentile(ms, 50), "p99": percentile(ms, 99)}


# -- consumers shared by several scenarios --------------------------------------------------


class Tally:
    """Deliveries of a fan-out: per subscriber count and order, latencies, finish time."""

    def __init__(self, subscribers: int, expected: Sequence[int], measure: bool) -> None:
        self.expected = list(expected)  # events each subscriber must get
        self.received = [0] * subscribers
        self.disordered = 0  # out of order or repeated
        self.lagged = 0  # SubscriberLagged raised (ait), caught up afterwards
        self.measure = measure
        self.latencies: list[int] = []
        self.ready = 0
        self.all_ready = anyio.Event()
        self.spawned_at = 0.0  # when the subscriber tasks were started
        self.ready_at = math.nan  # when the last one was subscribed
        self.finished = 0
        self.all_finished = anyio.Event()
        self.finished_at = 0.0
        self.stop = anyio.Event()  # subscribers stay subscribed until this is set

    def mark_ready(self) -> None:
        self.ready += 1
        if self.ready == len(self.received):
            self.ready_at = time.perf_counter()
            self.all_ready.set()

    def mark_finished(self) -> None:
        self.finished += 1
        if self.finished == len(self.received):
            self.finished_at = time.perf_counter()
            self.all_finished.set()

    def lost(self) -> int:
        short = sum(max(0, e - r) for e, r in zip(self.expected, self.received, strict=True))
        return short + self.disordered


async def ait_subscriber(channel: ait.Channel, index: int, tally: Tally) -> None:
    """One ait subscription in its own task: `async for entry_id, event in sub`."""
    expected = tally.expected[index]
    next_seq = 0
    got = 0
    async with channel.subscribe() as sub:
        tally.mark_ready()
        while got < expected:
            try:
                async for _entry_id, event in sub:
                    now = time.perf_counter_ns()
                    item = event.payload[0]
                    seq = item["seq"]
                    if seq != next_seq:
                        tally.disordered += 1
                    next_seq = seq + 1
                    got += 1
                    if tally.measure:
                        tally.latencies.append(now - item["ts"])
                    if got >= expected:
                        break
            except ait.SubscriberLagged:
                tally.lagged += 1
        tally.received[index] = got
        tally.mark_finished()
        await tally.stop.wait()


async def raw_subscriber(
    receive: MemoryObjectReceiveStream[list[tuple[bytes, Any, Any]]], index: int, tally: Tally
) -> None:
    """A raw program's local consumer: batches from its one reader, through a memory stream."""
    expected = tally.expected[index]
    next_seq = 0
    got = 0
    tally.mark_ready()
    async with receive:
        if expected:
            async for batch in receive:
                for _entry_id, _headers, payload in batch:
                    now = time.perf_counter_ns()
                    item = payload[0]
                    seq = item["seq"]
                    if seq != next_seq:
                        tally.disordered += 1
                    next_seq = seq + 1
                    got += 1
                    if tally.measure:
                        tally.latencies.append(now - item["ts"])
                if got >= expected:
                    break
    tally.received[index] = got
    tally.mark_finished()
    await tally.stop.wait()


def decode_raw(entries: Sequence[tuple[bytes, dict[bytes, bytes]]]) -> list[tuple[bytes, Any, Any]]:
    """The raw program's decode: each entry's headers and payload unpacked once."""
    unpackb = msgpack.unpackb
    return [(entry_id, unpackb(f[b"h"]), unpackb(f[b"d"])) for entry_id, f in entries]


async def raw_fanout_reader(
    client: aioredis.Redis,
    sends: dict[bytes, list[MemoryObjectSendStream[list[tuple[bytes, Any, Any]]]]],
    total: int,
) -> None:
    """ONE blocking XREAD over every key, each reply decoded once and fanned out in memory."""
    cursors: dict[bytes, bytes | str] = dict.fromkeys(sends, "0-0")
    seen = 0
    while seen < total:
        reply = await client.xread(cursors, count=READ_COUNT, block=1000)
        for key, entries in reply or ():
            batch = decode_raw(entries)
            cursors[key] = entries[-1][0]
            seen += len(batch)
            for send in sends[key]:
                send.send_nowait(batch)


# -- the scenarios --------------------------------------------------------------------------


class Bench(BenchBase):
    def __init__(self, url: str, sizes: Sizes, seed: int) -> None:
        super().__init__(url)
        self.sizes = sizes
        self.seed = seed
        self.wire = Wire(seed)
        self._history: list[dict[bytes, bytes]] | None = None

    async def client_count(self) -> int:
        return len(await self.admin.client_list())

    async def count_deltas(self, key: str) -> tuple[int, int]:
        """(entries, deltas) on the stream: what both sides must agree on."""
        entries = deltas = 0
        lower = "-"
        while True:
            page = await self.admin.xrange(key, min=lower, max="+", count=5000)
            for _entry_id, fields in page:
                entries += 1
                deltas += len(msgpack.unpackb(fields[b"d"]))
            if len(page) < 5000:
                return entries, deltas
            lower = "(" + page[-1][0].decode()

    # 1. awaited publish --------------------------------------------------------------------

    async def publish_ait(self) -> Metrics:
        n, w = self.sizes.publish_events, self.wire
        events = [w.output([w.delta(i)]) for i in range(n)]
        async with self.bus() as bus:
            channel = bus.channel(self.name("publish"))
            await channel.length()  # a pooled connection, open before the clock starts
            started = time.perf_counter()
            for event in events:
                await channel.publish(event)
            elapsed = time.perf_counter() - started
            assert await channel.length() == n
        return {"rate": n / elapsed}

    async def publish_raw(self) -> Metrics:
        n, w = self.sizes.publish_events, self.wire
        entries = [fields_of(w.output([w.delta(i)])) for i in range(n)]
        key = key_of(self.name("publish"))
        r = self.raw_client()
        try:
            await r.xlen(key)
            started = time.perf_counter()
            for fields in entries:
                await r.xadd(key, fields)
            elapsed = time.perf_counter() - started
            assert await r.xlen(key) == n
        finally:
            await r.aclose()
        return {"rate": n / elapsed}

    # 2. coalescing writer throughput -------------------------------------------------------

    async def writer_ait(self) -> Metrics:
        n, w = self.sizes.writer_events, self.wire
        async with self.bus() as bus:
            channel = bus.channel(self.name("writer"))
            await channel.length()
            async with channel.writer() as out:
                message = w.handle(out)
                started = time.perf_counter()
                for i in range(n):
                    message.send(w.delta(i))
                    await anyio.lowlevel.checkpoint()
                await out.flush()
                elapsed = time.perf_counter() - started
            entries, deltas = await self.count_deltas(channel.key)
        assert deltas == n, (deltas, n)
        return {"rate": n / elapsed, "entries_per_1000": 1000 * entries / n}

    async def timed_flusher_program(
        self, r: aioredis.Redis, key: str, produce: Callable[[list[Any]], Awaitable[None]]
    ) -> None:
        """The raw program: `produce` appends deltas to a list; every 10 ms a flusher task
        packs everything pending into ONE entry (one XADD carrying a msgpack list)."""
        pending: list[Any] = []
        produced = anyio.Event()

        async def flusher() -> None:
            while True:
                with anyio.move_on_after(FLUSH_INTERVAL):
                    await produced.wait()
                if pending:
                    batch = pending.copy()
                    pending.clear()
                    await r.xadd(key, self.wire.raw_fields(batch))
                if produced.is_set() and not pending:
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(flusher)
            await produce(pending)
            produced.set()

    async def writer_raw(self) -> Metrics:
        n, w = self.sizes.writer_events, self.wire
        key = key_of(self.name("writer"))
        r = self.raw_client()

        async def produce(pending: list[Any]) -> None:
            for i in range(n):
                pending.append(w.delta(i))
                await anyio.lowlevel.checkpoint()

        try:
            await r.xlen(key)
            started = time.perf_counter()
            await self.timed_flusher_program(r, key, produce)
            elapsed = time.perf_counter() - started
        finally:
            await r.aclose()
        entries, deltas = await self.count_deltas(key)
        assert deltas == n, (deltas, n)
        return {"rate": n / elapsed, "entries_per_1000": 1000 * entries / n}

    # 3. coalescing writer latency at 200 events/s ------------------------------------------

    async def xread_consumer(self, key: str, total: int, samples: list[int]) -> None:
        """The consumer of scenario 3 (the same for both sides): a raw XREAD BLOCK loop on
        its own connection; one latency sample per delta, `now - ts` at arrival."""
        r = self.raw_client()
        try:
            cursor: bytes | str = "0-0"
            seen = 0
            while seen < total:
                reply = await r.xread({key: cursor}, count=1000, block=1000)
                now = time.perf_counter_ns()
                for _key, entries in reply or ():
                    for entry_id, fields in entries:
                        for item in msgpack.unpackb(fields[b"d"]):
                            samples.append(now - item["ts"])
                            seen += 1
                        cursor = entry_id
        finally:
            await r.aclose()

    async def paced_latency(
        self, key: str, send: Callable[[int], Awaitable[None]], seconds: float
    ) -> Metrics:
        n = int(LATENCY_RATE * seconds)
        samples: list[int] = []
        with anyio.fail_after(seconds * 5 + 20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.xread_consumer, key, n, samples)
                await anyio.sleep(0.05)  # the consumer blocks in XREAD
                start = time.perf_counter()
                for i in range(n):
                    await sleep_until(start + i / LATENCY_RATE)
                    await send(i)
        assert len(samples) == n
        return latency_metrics(samples)

    async def writer_latency_ait(self) -> Metrics:
        w = self.wire
        async with self.bus() as bus:
            channel = bus.channel(self.name("wlat"))
            await channel.length()
            async with channel.writer() as out:
                message = w.handle(out)

                async def send(i: int) -> None:
                    message.send(w.delta(i, ts=time.perf_counter_ns(), seq=i))

                return await self.paced_latency(channel.key, send, self.sizes.latency_seconds)

    async def writer_latency_raw(self) -> Metrics:
        w = self.wire
        key = key_of(self.name("wlat"))
        r = self.raw_client()
        try:
            await r.xlen(key)

            async def send(i: int) -> None:
                fields = w.raw_fields([w.delta(i, ts=time.perf_counter_ns(), seq=i)])
                await r.xadd(key, fields)

            return await self.paced_latency(key, send, self.sizes.latency_seconds)
        finally:
            await r.aclose()

    # 4. producer process -> subscriber process ---------------------------------------------

    async def process_side(self, mode: str) -> Metrics:
        n = int(LATENCY_RATE * self.sizes.process_seconds)
        channel_name = self.name("proc")
        command = [
            sys.executable,
            str(PRODUCER),
            mode,
            self.url,
            channel_name,
            str(n),
            str(1 / LATENCY_RATE),
            json.dumps(self.wire.headers),
        ]
        samples: list[int] = []

        async def start_producer(process: Process) -> None:
            assert process.stdout is not None and process.stdin is not None
            line = await BufferedByteReceiveStream(process.stdout).receive_until(b"\n", 1000)
            if line.strip() != b"ready":
                raise RuntimeError(f"producer said {line!r}")
            await process.stdin.send(b"go\n")

        with anyio.fail_after(self.sizes.process_seconds * 5 + 30):
            if mode == "ait":
                async with self.bus() as bus:
                    channel = bus.channel(channel_name)
                    async with (
                        channel.subscribe() as sub,
                        await anyio.open_process(command, stderr=None) as process,
                    ):
                        await start_producer(process)
                        async for _entry_id, event in sub:
                            now = time.monotonic_ns()
                            for item in event.payload:
                                samples.append(now - item["ts"])
                            if len(samples) >= n:
                                break
                        await process.wait()
            else:
                r = self.raw_client()
                key = key_of(channel_name)
                try:
                    await r.xlen(key)
                    async with await anyio.open_process(command, stderr=None) as process:
                        await start_producer(process)
                        cursor: bytes | str = "0-0"
                        while len(samples) < n:
                            reply = await r.xread({key: cursor}, count=READ_COUNT, block=1000)
                            for _key, entries in reply or ():
                                for entry_id, fields in entries:
                                    now = time.monotonic_ns()
                                    for item in msgpack.unpackb(fields[b"d"]):
                                        samples.append(now - item["ts"])
                                    cursor = entry_id
                        await process.wait()
                finally:
                    await r.aclose()
        assert len(samples) == n
        return latency_metrics(samples)

    # 5. fan-out: one channel, many subscribers ---------------------------------------------

    async def fanout_side(self, mode: str, subscribers: int, saturate: bool) -> Metrics:
        w = self.wire
        channel_name = self.name("fanout")
        key = key_of(channel_name)
        if saturate:
            n = max(100, self.sizes.saturation_deliveries // subscribers)
        else:
            n = int(FANOUT_RATE * self.sizes.fanout_seconds)
        tally = Tally(subscribers, [n] * subscribers, measure=not saturate)
        publisher = self.raw_client()
        await publisher.xlen(key)

        async def publish() -> float:
            """Returns the start time. Both sides publish with this same raw publisher."""
            await tally.all_ready.wait()
            await anyio.sleep(0.05)  # readers block in XREAD
            start = time.perf_counter()
            if saturate:  # as fast as possible, 100 XADDs per pipelined round trip
                for first in range(0, n, 100):
                    pipe = publisher.pipeline(transaction=False)
                    for i in range(first, min(n, first + 100)):
                        pipe.xadd(key, w.raw_fields([w.delta(i, ts=0, seq=i)]))
                    await pipe.execute()
            else:
                for i in range(n):
                    await sleep_until(start + i / FANOUT_RATE)
                    fields = w.raw_fields([w.delta(i, ts=time.perf_counter_ns(), seq=i)])
                    await publisher.xadd(key, fields)
            return start

        timeout = 60 + self.sizes.fanout_seconds * 5
        start = math.nan
        try:
            with anyio.move_on_after(timeout):
                if mode == "ait":
                    async with self.bus() as bus, anyio.create_task_group() as tg:
                        channel = bus.channel(channel_name)
                        tally.spawned_at = time.perf_counter()
                        for index in range(subscribers):
                            tg.start_soon(ait_subscriber, channel, index, tally)
                        start = await publish()
                        await tally.all_finished.wait()
                        tally.stop.set()
                else:
                    reader = self.raw_client()
                    try:
                        async with anyio.create_task_group() as tg:
                            sends = []
                            tally.spawned_at = time.perf_counter()
                            for index in range(subscribers):
                                send, receive = anyio.create_memory_object_stream[Any](math.inf)
                                sends.append(send)
                                tg.start_soon(raw_subscriber, receive, index, tally)
                            tg.start_soon(raw_fanout_reader, reader, {key.encode(): sends}, n)
                            start = await publish()
                            await tally.all_finished.wait()
                            tally.stop.set()
                    finally:
                        await reader.aclose()
        finally:
            await publisher.aclose()
        metrics: Metrics = {
            "lost": float(tally.lost()),
            "lagged": float(tally.lagged),
            "subscribe_ms": (tally.ready_at - tally.spawned_at) * 1000,
            "bus_errors": float(self.bus_errors if mode == "ait" else 0),
        }
        if saturate:
            finished = tally.finished_at if tally.all_finished.is_set() else math.nan
            metrics["deliveries"] = n * subscribers / (finished - start)
        else:
            metrics.update(latency_metrics(tally.latencies))
        return metrics

    # 6. 1,000 channels, one subscriber each ------------------------------------------------

    async def channels_side(self, mode: str) -> Metrics:
        w = self.wire
        n = int(CHANNELS_RATE * self.sizes.channels_seconds)
        rng = random.Random(self.seed)
        targets = [rng.randrange(CHANNELS) for _ in range(n)]
        per_channel = Counter(targets)
        names = [self.name("chan") for _ in range(CHANNELS)]
        keys = [key_of(name) for name in names]
        tally = Tally(CHANNELS, [per_channel[c] for c in range(CHANNELS)], measure=True)
        # Each channel gets its own sequence, so order is checked per channel.
        seq_of = []
        next_seq = [0] * CHANNELS
        for c in targets:
            seq_of.append(next_seq[c])
            next_seq[c] += 1
        publisher = self.raw_client()
        await publisher.ping()
        baseline = await self.client_count()
        samples: list[int] = []
        reader_connections = math.nan
        published_in = [math.nan]  # seconds the publisher took for its n events

        async def publish() -> None:
            """2,000 events/s over random channels: every 2 ms, what is due, pipelined."""
            await tally.all_ready.wait()
            await anyio.sleep(0.1)  # every reader blocks in XREAD
            samples.append(await self.client_count())
            start = time.perf_counter()
            sent = 0
            tick = 0
            while sent < n:
                tick += 1
                await sleep_until(start + tick * 0.002)
                due = min(n, int((time.perf_counter() - start) * CHANNELS_RATE))
                pipe = publisher.pipeline(transaction=False)
                for i in range(sent, due):
                    c = targets[i]
                    item = w.delta(i, ts=time.perf_counter_ns(), seq=seq_of[i])
                    pipe.xadd(keys[c], w.raw_fields([item]))
                if due > sent:
                    await pipe.execute()
                if sent < n // 2 <= due:
                    samples.append(await self.client_count())
                sent = due
            published_in[0] = time.perf_counter() - start

        try:
            with anyio.move_on_after(60 + self.sizes.channels_seconds * 5):
                if mode == "ait":
                    async with self.bus() as bus, anyio.create_task_group() as tg:
                        tally.spawned_at = time.perf_counter()
                        for index, name in enumerate(names):
                            tg.start_soon(ait_subscriber, bus.channel(name), index, tally)
                        await publish()
                        await tally.all_finished.wait()
                        samples.append(await self.client_count())
                        reader_connections = bus.hub.connections
                        tally.stop.set()
                else:
                    reader = self.raw_client()
                    try:
                        async with anyio.create_task_group() as tg:
                            sends: dict[bytes, list[MemoryObjectSendStream[Any]]] = {}
                            tally.spawned_at = time.perf_counter()
                            for index, key in enumerate(keys):
                                send, receive = anyio.create_memory_object_stream[Any](math.inf)
                                sends[key.encode()] = [send]
                                tg.start_soon(raw_subscriber, receive, index, tally)
                            tg.start_soon(raw_fanout_reader, reader, sends, n)
                            await publish()
                            await tally.all_finished.wait()
                            samples.append(await self.client_count())
                            reader_connections = 1
                            tally.stop.set()
                    finally:
                        await reader.aclose()
        finally:
            await publisher.aclose()
        metrics = latency_metrics(tally.latencies)
        metrics["lost"] = float(tally.lost())
        metrics["subscribe_ms"] = (tally.ready_at - tally.spawned_at) * 1000
        metrics["bus_errors"] = float(self.bus_errors if mode == "ait" else 0)
        metrics["connections"] = float(max(samples, default=math.nan) - baseline)
        metrics["reader_connections"] = float(reader_connections)
        metrics["publish_rate"] = n / published_in[0]
        return metrics

    # 7. history ----------------------------------------------------------------------------

    def history_entries(self) -> list[dict[bytes, bytes]]:
        """10,000 entries as a conversation stores them: Inputs, and Outputs of 1-8 deltas."""
        if self._history is None:
            w = self.wire
            rng = random.Random(self.seed)
            entries = []
            for i in range(self.sizes.history_entries):
                if i % 20 == 0:
                    event: ait.Event = ait.Input(
                        event_id=new_id(),
                        message_id=new_id(),
                        role="user",
                        client_id="alice",
                        parent=new_id(),
                        payload=[{"type": "text", "text": "What is a stream? " * 3}],
                    )
                else:
                    event = w.output([w.delta(i + k) for k in range(rng.randint(1, 8))])
                entries.append(fields_of(event))
            self._history = entries
        return self._history

    async def write_history(self, key: str) -> None:
        entries = self.history_entries()
        for first in range(0, len(entries), 1000):
            pipe = self.admin.pipeline(transaction=False)
            for fields in entries[first : first + 1000]:
                pipe.xadd(key, fields)
            await pipe.execute()

    async def history_ait(self) -> Metrics:
        page_size = self.sizes.history_page
        async with self.bus() as bus:
            channel = bus.channel(self.name("history"))
            await self.write_history(channel.key)
            await channel.length()
            started = time.perf_counter()
            entries: list[ait.Entry] = []
            cursor = "0-0"
            while True:
                page = await channel.read(after=cursor, count=page_size)
                entries.extend(page)
                if len(page) < page_size:
                    break
                cursor = page[-1][0]
            elapsed = time.perf_counter() - started
        assert len(entries) == self.sizes.history_entries
        assert not any(isinstance(event, ait.BadEntry) for _, event in entries)
        return {"rate": len(entries) / elapsed}

    async def history_raw(self) -> Metrics:
        page_size = self.sizes.history_page
        key = key_of(self.name("history"))
        await self.write_history(key)
        r = self.raw_client()
        unpackb = msgpack.unpackb
        try:
            await r.xlen(key)
            started = time.perf_counter()
            entries: list[tuple[bytes, bytes, Any, Any]] = []
            lower: bytes | str = "-"
            while True:
                page = await r.xrange(key, min=lower, max="+", count=page_size)
                for entry_id, f in page:
                    d = f.get(b"d")
                    entries.append(
                        (entry_id, f[b"t"], unpackb(f[b"h"]), None if d is None else unpackb(d))
                    )
                if len(page) < page_size:
                    break
                lower = b"(" + page[-1][0]
            elapsed = time.perf_counter() - started
        finally:
            await r.aclose()
        assert len(entries) == self.sizes.history_entries
        return {"rate": len(entries) / elapsed}

    # 8. Redis memory per event -------------------------------------------------------------

    def bursts(self) -> list[int]:
        rng = random.Random(self.seed)
        sizes: list[int] = []
        left = self.sizes.memory_events
        while left > 0:
            sizes.append(min(left, rng.randint(1, 8)))
            left -= sizes[-1]
        return sizes

    async def memory_ait(self) -> Metrics:
        w = self.wire
        n = self.sizes.memory_events
        async with self.bus() as bus:
            channel = bus.channel(self.name("memory"))
            async with channel.writer() as out:
                message = w.handle(out)
                i = 0
                for size in self.bursts():
                    for _ in range(size):
                        message.send(w.delta(i))
                        i += 1
                    await anyio.sleep(MEMORY_PAUSE)
                await out.flush()
            return await self.memory_metrics(channel.key, n)

    async def memory_raw(self) -> Metrics:
        w = self.wire
        n = self.sizes.memory_events
        key = key_of(self.name("memory"))
        r = self.raw_client()

        async def produce(pending: list[Any]) -> None:
            i = 0
            for size in self.bursts():
                for _ in range(size):
                    pending.append(w.delta(i))
                    i += 1
                await anyio.sleep(MEMORY_PAUSE)

        try:
            await self.timed_flusher_program(r, key, produce)
        finally:
            await r.aclose()
        return await self.memory_metrics(key, n)

    async def memory_metrics(self, key: str, n: int) -> Metrics:
        entries, deltas = await self.count_deltas(key)
        assert deltas == n, (deltas, n)
        used = await self.admin.memory_usage(key, samples=0)
        assert used is not None
        return {
            "bytes_per_event": used / n,
            "entries_per_1000": 1000 * entries / n,
            "bytes_per_entry": used / entries,
        }


# -- the scenario table ---------------------------------------------------------------------


SUBSCRIBE_CHECKS = [
    Check("time until every subscriber is subscribed", "subscribe_ms", "ms", "info", digits=1),
    Check("errors ait reported in the background (on_error)", "bus_errors", "errors", "info"),
]


def scenarios(bench: Bench) -> list[Scenario]:
    s = bench.sizes
    ms = partial(Check, unit="ms", digits=3)
    throughput = partial(Check, kind="higher", digits=0)
    fanout = []
    for number, subscribers in (("5a", 100), ("5b", 1000)):
        fanout.append(
            Scenario(
                name=f"fanout-{subscribers}",
                number=number,
                title=f"one channel, {subscribers} subscribers in one process, "
                f"latency at {FANOUT_RATE} events/s for {s.fanout_seconds:g} s",
                ait_side=f"{subscribers} x `async with channel.subscribe()` in "
                "their own tasks (the shared reader fans out)",
                raw_side=f"ONE XREAD BLOCK reader task fanning each decoded reply out to "
                f"{subscribers} consumer tasks through anyio memory streams",
                common="the same raw XADD publisher; latency = arrival in the consumer task "
                "minus perf_counter_ns() at publish; every subscriber checks it got every "
                "event exactly once, in order",
                run_ait=partial(bench.fanout_side, "ait", subscribers, False),
                run_raw=partial(bench.fanout_side, "raw", subscribers, False),
                checks=[
                    ms(label="p50 latency", key="p50", kind="lower", target=1.5),
                    ms(label="p99 latency", key="p99", kind="lower", target=1.5),
                    Check("lost, repeated or out of order", "lost", "deliveries", "limit", 0),
                    *SUBSCRIBE_CHECKS,
                ],
            )
        )
    for number, subscribers in (("5c", 100), ("5d", 1000)):
        n = max(100, s.saturation_deliveries // subscribers)
        fanout.append(
            Scenario(
                name=f"fanout-sat-{subscribers}",
                number=number,
                title=f"saturation: {n:,} events published as fast as possible to "
                f"{subscribers} subscribers",
                ait_side=f"{subscribers} ait subscriptions, as in fanout-{subscribers}",
                raw_side="one XREAD BLOCK reader fanning out to memory streams, as in "
                f"fanout-{subscribers}",
                common="the same raw publisher, 100 XADDs per pipelined round trip; "
                "deliveries/s = events x subscribers / (last delivery - first publish)",
                run_ait=partial(bench.fanout_side, "ait", subscribers, True),
                run_raw=partial(bench.fanout_side, "raw", subscribers, True),
                checks=[
                    throughput(
                        label="deliveries", key="deliveries", unit="deliveries/s", target=0.6
                    ),
                    Check("lost, repeated or out of order", "lost", "deliveries", "limit", 0),
                    Check("SubscriberLagged raised (caught up)", "lagged", "times", "info"),
                ],
            )
        )
    return [
        Scenario(
            name="publish",
            number="1",
            title=f"awaited publish, {s.publish_events:,} events one after another",
            ait_side="`await channel.publish(event)` (encodes the event on each call)",
            raw_side="`await r.xadd(key, fields)`, fields pre-encoded with "
            "ait.codec.encode_event (equal entries)",
            common="one Output with one text delta per entry",
            run_ait=bench.publish_ait,
            run_raw=bench.publish_raw,
            checks=[throughput(label="throughput", key="rate", unit="events/s", target=0.85)],
        ),
        Scenario(
            name="writer",
            number="2",
            title=f"coalescing writer throughput, {s.writer_events:,} deltas",
            ait_side="producer: `message.send(delta)` (a `writer.message(...)` handle, as "
            "Run.pipe uses) + `await anyio.lowlevel.checkpoint()` "
            "per delta into `channel.writer()`, then `await out.flush()`",
            raw_side="producer: append the delta dict to a list + the same checkpoint; "
            "a flusher task every 10 ms XADDs all pending deltas as ONE entry "
            "(msgpack list), final flush at the end",
            common="time from the first delta until every delta is on the stream",
            run_ait=bench.writer_ait,
            run_raw=bench.writer_raw,
            checks=[
                throughput(label="throughput", key="rate", unit="tokens/s", target=0.8),
                Check("entries per 1,000 events", "entries_per_1000", "entries", "info", digits=1),
            ],
        ),
        Scenario(
            name="writer-latency",
            number="3",
            title=f"coalescing writer latency, one delta every 5 ms ({LATENCY_RATE}/s) "
            f"for {s.latency_seconds:g} s",
            ait_side="`message.send(delta)` on a `channel.writer()` message handle",
            raw_side="one awaited `r.xadd` per delta",
            common="consumer: one raw XREAD BLOCK loop on its own connection (same code); "
            "latency = arrival - perf_counter_ns() taken at send",
            run_ait=bench.writer_latency_ait,
            run_raw=bench.writer_latency_raw,
            checks=[
                ms(label="p50 latency", key="p50", kind="lower", target=1.3),
                ms(label="p99 latency", key="p99", kind="lower", target=1.5),
            ],
        ),
        Scenario(
            name="process",
            number="4",
            title=f"producer process -> subscriber process, {LATENCY_RATE} events/s for "
            f"{s.process_seconds:g} s",
            ait_side="producer process: `await channel.publish(Output(...))`; this process: "
            "`async for ... in channel.subscribe()`",
            raw_side="producer process: `await r.xadd(key, fields)`; this process: an XREAD "
            "BLOCK loop resuming from the last id",
            common="latency = time.monotonic_ns() (CLOCK_MONOTONIC, shared by processes) at "
            "arrival - at publish",
            run_ait=partial(bench.process_side, "ait"),
            run_raw=partial(bench.process_side, "raw"),
            checks=[
                Check("p50 latency", "p50", "ms", "plus", target=0.150, digits=3),
                ms(label="p99 latency", key="p99", kind="lower", target=1.5),
            ],
        ),
        *fanout,
        Scenario(
            name="channels",
            number="6",
            title=f"{CHANNELS:,} channels x 1 subscriber, {CHANNELS_RATE:,} events/s over "
            f"random channels for {s.channels_seconds:g} s",
            ait_side=f"{CHANNELS:,} `channel.subscribe()` in their own tasks (shared reader: "
            "about 64 keys per connection)",
            raw_side=f"ONE XREAD BLOCK over all {CHANNELS:,} keys, replies dispatched to "
            f"{CHANNELS:,} consumer tasks through memory streams",
            common="the same raw publisher (pipelined every 2 ms); connections = CLIENT LIST "
            "from a separate client minus the count before the side opened",
            run_ait=partial(bench.channels_side, "ait"),
            run_raw=partial(bench.channels_side, "raw"),
            checks=[
                ms(label="p50 latency", key="p50", kind="lower", target=0.3),
                ms(label="p99 latency", key="p99", kind="info"),
                Check("Redis connections used", "connections", "connections", "limit", 20),
                Check(
                    "of which shared-reader connections",
                    "reader_connections",
                    "connections",
                    "info",
                ),
                Check("lost, repeated or out of order", "lost", "deliveries", "limit", 0),
                Check(
                    "publish rate achieved (a machine too busy falls behind)",
                    "publish_rate",
                    "events/s",
                    "info",
                ),
                *SUBSCRIBE_CHECKS,
            ],
        ),
        Scenario(
            name="history",
            number="7",
            title=f"read and decode {s.history_entries:,} entries in pages of {s.history_page}",
            ait_side="`channel.read(after=cursor, count=page)` until a short page",
            raw_side="`r.xrange(key, '(cursor', '+', count=page)` + msgpack.unpackb of h and d "
            "of every entry",
            common="1 Input every 20 entries, the others Outputs of 1-8 deltas",
            run_ait=bench.history_ait,
            run_raw=bench.history_raw,
            checks=[throughput(label="throughput", key="rate", unit="entries/s", target=0.7)],
        ),
        Scenario(
            name="memory",
            number="8",
            title=f"Redis memory per delta, {s.memory_events:,} deltas in bursts of 1-8, "
            f"{MEMORY_PAUSE * 1000:g} ms apart",
            ait_side="`channel.writer()` message handle: a write goes at once after a quiet spell, "
            "writer is idle, so mostly one entry per burst",
            raw_side="the 10 ms timed flusher of scenario 2: one entry per 10 ms of deltas",
            common="every entry is the full envelope (v, t, h = 4 headers with three 32-char "
            "ids, d = msgpack list of deltas); MEMORY USAGE key SAMPLES 0 / deltas",
            run_ait=bench.memory_ait,
            run_raw=bench.memory_raw,
            notes=f"h is {len(bench.wire.packed_headers)} bytes and is stored again in every "
            "entry; each delta in d is about 30 bytes of msgpack, so fewer, larger entries "
            "cost less per event.",
            checks=[
                Check("memory per event", "bytes_per_event", "bytes", "lower", 1.2, digits=1),
                Check("entries per 1,000 events", "entries_per_1000", "entries", "info", digits=1),
                Check("memory per entry", "bytes_per_entry", "bytes", "info", digits=1),
            ],
        ),
    ]


# -- main -----------------------------------------------------------------------------------


async def run(args: argparse.Namespace, url: str, dump: dict[str, Any]) -> None:
    sizes = QUICK if args.quick else FULL
    bench = Bench(url, sizes, args.seed)
    chosen = selected(scenarios(bench), args.only)
    title = f"ait bus benchmark: {args.rounds} rounds, interleaved A (ait) B (raw) per round"
    started = time.perf_counter()
    try:
        results = await report(title, args, bench, chosen, dump)
    finally:
        await bench.admin.aclose()
    judged = [v for _, vs in results for v in vs if v.passed is not None]
    misses = [
        f"{s.number} {s.name}: {v.check.label}"
        for s, vs in results
        for v in vs
        if v.passed is False
    ]
    print()
    print(f"## Summary ({args.rounds} rounds, medians of same-round ratios)")
    print()
    print(render_summary(results, args.rounds))
    print()
    print(
        f"{len(judged) - len(misses)} of {len(judged)} targets met"
        + (f"; missed: {'; '.join(misses)}" if misses else "")
        + f". Total time {time.perf_counter() - started:.0f} s."
    )


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__.split("\n\n")[0])
    parser.set_defaults(rounds=None)  # 5; 3 with --quick
    args = parse(parser, argv)
    if args.rounds is None:
        args.rounds = 3 if args.quick else 5
    return serve(run, args, {"sizes": asdict(QUICK if args.quick else FULL)})


if __name__ == "__main__":
    sys.exit(main())
