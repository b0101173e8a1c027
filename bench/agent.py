"""The agent side, measured: a run's token throughput and its cancel latency, against raw
redis-py programs doing the same work, in the same run.

    .venv/bin/python bench/agent.py [--rounds N] [--quick] [--only tokens,cancel] [--json F]

Every scenario runs its two sides interleaved, A (ait) then B (raw), `--rounds` times, on one
private redis-server (unix socket, `FLUSHALL` after every side); the verdict uses the median
of the same-round ratios (see bench/README.md).

Scenarios (`--only` takes names, prefixes such as `cancel`, or numbers such as `2`):
  1  tokens          a scripted provider at full speed (no delay, a checkpoint per token)
                     through `Run.pipe` vs one awaited XADD per token: tokens/s, entries
  1b tokens-flusher  the same run vs a raw 10 ms timed, pipelined flusher (for information)
  2  cancel          cancel published -> the run's `run.end` on the channel, the provider
                     streaming at 200 tokens/s: p50/p99 over 60 cancels per round
  2b cancel-busy     the same, the provider streaming as fast as it can
  3  wake            an invocation on a busy channel (20,000 output entries in the last two
                     minutes) -> its run.start on the channel: p50/p99 over 40 wake-ups
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, replace
from functools import partial
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
    render_tail,
    report,
    selected,
    serve,
)
from bus import Wire, fields_of, key_of

import ait
from ait.ids import new_id
from ait.testing import ScriptedProvider

NS_PER_MS = 1_000_000
FLUSH_INTERVAL = 0.010  # the raw timed flusher of scenario 1b
CANCEL_RATE = 200  # tokens/s of the provider in scenario 2
TOKENS_TARGET = 0.5  # ait tokens/s >= 0.5x one XADD per token
CANCEL_P99_MS = 50.0
WAKE_P50_PLUS_MS = 5.0  # wake -> run.start p50 within raw + 5 ms
WAKE_P99_PLUS_MS = 10.0


@dataclass(frozen=True)
class Sizes:
    tokens: int = 20_000  # scenario 1, per side
    cancels: int = 60  # scenario 2, per side and round
    stream_before_cancel: tuple[float, float] = (0.020, 0.050)  # seconds, uniform
    wakes: int = 40  # scenario 3, per side and round
    backlog: int = 20_000  # output entries on the channel before the wake-ups


FULL = Sizes()
QUICK = replace(FULL, tokens=2_000, cancels=12, wakes=10, backlog=5_000)


# -- helpers ----------------------------------------------------------------------------------


def token_text(item: Any) -> str | None:
    """The text of a provider item (a `str` or a `TextDelta`); None for anything else."""
    if isinstance(item, str):
        return item
    text = getattr(item, "text", None)
    return text if isinstance(text, str) and getattr(item, "type", "text") == "text" else None


def text_delta(text: str) -> dict[str, Any]:
    """The codec event Run.pipe writes for a text token (the first text part is `t1`)."""
    return {"type": "text-delta", "id": "t1", "delta": text}


FINISH = {"type": "finish", "status": "complete"}
FINISH_CANCELLED = {"type": "finish", "finish_reason": "cancelled", "status": "cancelled"}


def new_input(text: str = "Tell me a long story.") -> ait.Input:
    return ait.Input(
        event_id=new_id(),
        message_id=new_id(),
        role="user",
        client_id="alice",
        payload=ait.ChatCodec.user_text(text),
    )


class Counter:
    """The consumer of scenario 1, the same code for both sides: one raw XREAD BLOCK loop on
    its own connection counting text deltas; notes when the last expected one arrived."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.tokens = 0
        self.last_at = float("nan")
        self.done = anyio.Event()

    async def run(self, r: aioredis.Redis, key: str) -> None:
        cursor: bytes | str = "0-0"
        unpackb = msgpack.unpackb
        try:
            while self.tokens < self.expected:
                reply = await r.xread({key: cursor}, count=1000, block=1000)
                for _key, entries in reply or ():
                    for entry_id, fields in entries:
                        cursor = entry_id
                        if fields[b"t"] == b"output":
                            for item in unpackb(fields[b"d"]):
                                if item["type"] == "text-delta":
                                    self.tokens += 1
                if self.tokens >= self.expected:
                    self.last_at = time.perf_counter()
        finally:
            self.done.set()
            await r.aclose()


class EndWatcher:
    """The observer of scenario 2, the same code for both sides: one raw XREAD BLOCK loop on
    its own connection noting when each run's `run.end` arrives, and how many text deltas
    of that run came after the cancel naming it."""

    def __init__(self) -> None:
        self.ended: dict[str, int] = {}  # run id -> arrival (perf_counter_ns)
        self.reasons: dict[str, str] = {}
        self.after_cancel: dict[str, int] = {}  # run id -> deltas after its cancel
        self._cancelled: set[str] = set()  # runs cancelled, not ended yet
        self._waiters: dict[str, anyio.Event] = {}

    async def run(self, r: aioredis.Redis, key: str) -> None:
        cursor: bytes | str = "0-0"
        unpackb = msgpack.unpackb
        while True:
            reply = await r.xread({key: cursor}, count=1000, block=1000)
            now = time.perf_counter_ns()
            for _key, entries in reply or ():
                for entry_id, fields in entries:
                    cursor = entry_id
                    kind = fields[b"t"]
                    if kind == b"output":
                        if self._cancelled:  # decode only between a cancel and its run.end
                            run_id = unpackb(fields[b"h"])["run-id"]
                            if run_id in self._cancelled:
                                deltas = unpackb(fields[b"d"])
                                self.after_cancel[run_id] += sum(
                                    1 for d in deltas if d["type"] == "text-delta"
                                )
                    elif kind == b"cancel":
                        run_id = unpackb(fields[b"h"])["run-id"]
                        self.after_cancel.setdefault(run_id, 0)
                        self._cancelled.add(run_id)
                    elif kind == b"run.end":
                        headers = unpackb(fields[b"h"])
                        run_id = headers["run-id"]
                        self._cancelled.discard(run_id)
                        self.ended[run_id] = now
                        self.reasons[run_id] = headers["reason"]
                        waiter = self._waiters.pop(run_id, None)
                        if waiter is not None:
                            waiter.set()

    async def wait(self, run_id: str) -> int:
        if run_id not in self.ended:
            waiter = self._waiters.setdefault(run_id, anyio.Event())
            with anyio.fail_after(10):
                await waiter.wait()
        return self.ended[run_id]


def cancel_fields(run_id: str) -> dict[bytes, bytes]:
    """A client's cancel of `run_id`, encoded before the clock starts (both sides)."""
    return fields_of(ait.Cancel(event_id=new_id(), client_id="alice", run_id=run_id))


# -- the scenarios ----------------------------------------------------------------------------


class Bench(BenchBase):
    def __init__(self, url: str, sizes: Sizes, seed: int) -> None:
        super().__init__(url)
        self.sizes = sizes
        self.seed = seed
        self.wire = Wire(seed)
        self.rng = random.Random(seed)
        self._cancel_tokens = self.tokens(100_000)

    def tokens(self, n: int) -> list[str]:
        tokens = self.wire.tokens
        return [tokens[i % len(tokens)] for i in range(n)]

    async def output_entries(self, key: str) -> int:
        """Output entries on the stream (every entry written for the run's message)."""
        count = 0
        lower = "-"
        while True:
            page = await self.admin.xrange(key, min=lower, max="+", count=5000)
            count += sum(1 for _id, f in page if f[b"t"] == b"output")
            if len(page) < 5000:
                return count
            lower = "(" + page[-1][0].decode()

    # 1. tokens/s -------------------------------------------------------------------------

    async def tokens_ait(self) -> Metrics:
        n = self.sizes.tokens
        provider = ScriptedProvider(self.tokens(n))
        counter = Counter(n)
        async with self.bus() as bus:
            channel = bus.channel(self.name("tokens"))
            event = new_input()
            await channel.publish(event)
            async with ait.AgentSession(bus, channel.name) as agent:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(counter.run, self.raw_client(), channel.key)
                    await anyio.sleep(0.05)  # the consumer blocks in XREAD
                    invocation = ait.Invocation(channel=channel.name, input_event_id=event.event_id)
                    run = agent.create_run(invocation)
                    started = time.perf_counter()
                    await run.start()
                    piping = time.perf_counter()
                    result = await run.pipe(provider.stream())
                    piped = time.perf_counter()
                    await run.end(result.reason)
                    ended = time.perf_counter()
                    with anyio.fail_after(60):
                        await counter.done.wait()
            assert result.reason == "complete", result
            assert counter.tokens == n, (counter.tokens, n)
            entries = await self.output_entries(channel.key)
        return {
            "rate": n / (counter.last_at - piping),
            "entries_per_1000": 1000 * entries / n,
            "start_ms": (piping - started) * 1000,
            "end_ms": (ended - piped) * 1000,
            "bus_errors": float(self.bus_errors),
        }

    async def tokens_raw(self, variant: str) -> Metrics:
        """`xadd`: one awaited XADD per token. `flusher`: tokens appended to a list, a task
        XADDs everything pending as one entry every 10 ms (a msgpack list)."""
        n = self.sizes.tokens
        provider = ScriptedProvider(self.tokens(n))
        counter = Counter(n)
        key = key_of(self.name("tokens"))
        w = self.wire
        r = self.raw_client()
        try:
            event = new_input()
            await r.xadd(key, fields_of(event))
            run_id = new_id()
            start = ait.RunStart(
                run_id=run_id,
                invocation_id=new_id(),
                input_event_id=event.event_id,
                input_message_id=event.message_id,
                run_client_id="alice",
                parent=event.message_id,
            )
            end = ait.RunEnd(run_id=run_id, invocation_id=start.invocation_id, reason="complete")
            async with anyio.create_task_group() as tg:
                tg.start_soon(counter.run, self.raw_client(), key)
                await anyio.sleep(0.05)
                await r.xadd(key, fields_of(start))
                piping = time.perf_counter()
                if variant == "xadd":
                    async for item in provider.stream():
                        text = token_text(item)
                        payload = [text_delta(text)] if text is not None else [FINISH]
                        await r.xadd(key, w.raw_fields(payload))
                else:
                    await self.flusher_program(r, key, provider.stream())
                await r.xadd(key, fields_of(end))
                with anyio.fail_after(60):
                    await counter.done.wait()
        finally:
            await r.aclose()
        assert counter.tokens == n, (counter.tokens, n)
        entries = await self.output_entries(key)
        return {
            "rate": n / (counter.last_at - piping),
            "entries_per_1000": 1000 * entries / n,
        }

    async def flusher_program(
        self, r: aioredis.Redis, key: str, stream: AsyncIterator[Any]
    ) -> None:
        pending: list[Any] = []
        produced = anyio.Event()
        w = self.wire

        async def flusher() -> None:
            while True:
                with anyio.move_on_after(FLUSH_INTERVAL):
                    await produced.wait()
                if pending:
                    batch = pending.copy()
                    pending.clear()
                    await r.xadd(key, w.raw_fields(batch))
                if produced.is_set() and not pending:
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(flusher)
            async for item in stream:
                text = token_text(item)
                pending.append(text_delta(text) if text is not None else FINISH)
            produced.set()

    # 2. cancel latency -------------------------------------------------------------------

    def cancel_provider(self, busy: bool) -> ScriptedProvider:
        # Far more tokens than a run streams before its cancel: it never completes.
        return ScriptedProvider(self._cancel_tokens, delay=0 if busy else 1 / CANCEL_RATE)

    def cancel_metrics(
        self, samples: list[int], watcher: EndWatcher, run_ids: list[str], not_cancelled: int
    ) -> Metrics:
        ms = [s / NS_PER_MS for s in samples]
        after = [watcher.after_cancel.get(rid, 0) for rid in run_ids]
        return {
            "p50": percentile(ms, 50),
            "p99": percentile(ms, 99),
            "max": max(ms),
            "not_cancelled": float(not_cancelled),
            "after_max": float(max(after)),
            "after_median": float(percentile(after, 50)),
            "bus_errors": float(self.bus_errors),
        }

    async def cancel_ait(self, busy: bool) -> Metrics:
        watcher = EndWatcher()
        samples: list[int] = []
        run_ids: list[str] = []
        not_cancelled = 0
        canceller = self.raw_client()
        async with self.bus() as bus:
            channel = bus.channel(self.name("cancel"))
            await canceller.xlen(channel.key)
            async with (
                ait.AgentSession(bus, channel.name) as agent,
                anyio.create_task_group() as tg,
            ):
                tg.start_soon(watcher.run, self.raw_client(), channel.key)
                for _ in range(self.sizes.cancels):
                    event = new_input()
                    await channel.publish(event)
                    invocation = ait.Invocation(channel=channel.name, input_event_id=event.event_id)
                    run = agent.create_run(invocation)
                    await run.start()
                    assert run.run_id is not None
                    done = anyio.Event()
                    outcome: list[str] = []

                    async def serve(run: ait.Run, done: anyio.Event, outcome: list[str]) -> None:
                        result = await run.pipe(self.cancel_provider(busy).stream())
                        await run.end(result.reason)
                        outcome.append(result.reason)
                        done.set()

                    tg.start_soon(serve, run, done, outcome)
                    await anyio.sleep(self.rng.uniform(*self.sizes.stream_before_cancel))
                    fields = cancel_fields(run.run_id)
                    published = time.perf_counter_ns()
                    await canceller.xadd(channel.key, fields)
                    ended = await watcher.wait(run.run_id)
                    samples.append(ended - published)
                    run_ids.append(run.run_id)
                    with anyio.fail_after(10):
                        await done.wait()
                    if outcome != ["cancelled"] or watcher.reasons[run.run_id] != "cancelled":
                        not_cancelled += 1
                tg.cancel_scope.cancel()
        await canceller.aclose()
        return self.cancel_metrics(samples, watcher, run_ids, not_cancelled)

    async def cancel_raw(self, busy: bool) -> Metrics:
        watcher = EndWatcher()
        samples: list[int] = []
        run_ids: list[str] = []
        not_cancelled = 0
        key = key_of(self.name("cancel"))
        canceller = self.raw_client()
        producer = self.raw_client()
        control = self.raw_client()
        await canceller.xlen(key)
        await producer.xlen(key)
        await control.xlen(key)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(watcher.run, self.raw_client(), key)
                for _ in range(self.sizes.cancels):
                    event = new_input()
                    await producer.xadd(key, fields_of(event))
                    run_id = new_id()
                    done = anyio.Event()
                    outcome: list[str] = []
                    started = anyio.Event()
                    tg.start_soon(
                        self.raw_agent_run,
                        producer,
                        control,
                        key,
                        event,
                        run_id,
                        busy,
                        started,
                        done,
                        outcome,
                    )
                    await started.wait()
                    await anyio.sleep(self.rng.uniform(*self.sizes.stream_before_cancel))
                    fields = cancel_fields(run_id)
                    published = time.perf_counter_ns()
                    await canceller.xadd(key, fields)
                    ended = await watcher.wait(run_id)
                    samples.append(ended - published)
                    run_ids.append(run_id)
                    with anyio.fail_after(10):
                        await done.wait()
                    if outcome != ["cancelled"] or watcher.reasons[run_id] != "cancelled":
                        not_cancelled += 1
                tg.cancel_scope.cancel()
        finally:
            for r in (canceller, producer, control):
                await r.aclose()
        return self.cancel_metrics(samples, watcher, run_ids, not_cancelled)

    async def raw_agent_run(
        self,
        producer: aioredis.Redis,
        control: aioredis.Redis,
        key: str,
        event: ait.Input,
        run_id: str,
        busy: bool,
        started: anyio.Event,
        done: anyio.Event,
        outcome: list[str],
    ) -> None:
        """A raw agent's run: XADD run.start; one XADD per token while a watcher (an XREAD
        BLOCK loop on its own connection) looks for a cancel naming the run; on the cancel,
        stop the producer, then XADD a `finish` output and `run.end` in one round trip."""
        headers = {"run-id": run_id, "message-id": new_id(), "role": "assistant"}
        headers["parent"] = event.message_id
        packed = msgpack.packb(headers)

        def output(payload: list[Any]) -> dict[bytes, bytes]:
            return {b"v": b"1", b"t": b"output", b"h": packed, b"d": msgpack.packb(payload)}

        invocation_id = new_id()
        start = ait.RunStart(
            run_id=run_id,
            invocation_id=invocation_id,
            input_event_id=event.event_id,
            input_message_id=event.message_id,
            run_client_id="alice",
            parent=event.message_id,
        )
        end = ait.RunEnd(run_id=run_id, invocation_id=invocation_id, reason="cancelled")
        start_id = await producer.xadd(key, fields_of(start))
        started.set()
        reason = "complete"
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                nonlocal reason
                cursor = start_id
                while True:
                    reply = await control.xread({key: cursor}, count=1000, block=1000)
                    for _key, entries in reply or ():
                        for entry_id, fields in entries:
                            cursor = entry_id
                            if fields[b"t"] == b"cancel":
                                if msgpack.unpackb(fields[b"h"]).get("run-id") == run_id:
                                    reason = "cancelled"
                                    tg.cancel_scope.cancel()
                                    return

            tg.start_soon(watch)
            async for item in self.cancel_provider(busy).stream():
                text = token_text(item)
                await producer.xadd(key, output([text_delta(text)] if text else [FINISH]))
            tg.cancel_scope.cancel()
        pipe = control.pipeline(transaction=False)
        pipe.xadd(key, output([FINISH_CANCELLED]))
        pipe.xadd(key, fields_of(end))
        await pipe.execute()
        outcome.append(reason)
        done.set()

    # 3. wake -> run.start ------------------------------------------------------------------

    async def fill_backlog(self, r: aioredis.Redis, key: str) -> None:
        """`backlog` output entries, as a streaming run leaves them (both sides)."""
        output = fields_of(
            ait.Output(
                run_id=new_id(),
                message_id=new_id(),
                role="assistant",
                parent=new_id(),
                payload=[text_delta(token) for token in self.tokens(8)],
            )
        )
        for _ in range(0, self.sizes.backlog, 1000):
            pipe = r.pipeline(transaction=False)
            for _ in range(1000):
                pipe.xadd(key, output)  # pyright: ignore[reportArgumentType]
            await pipe.execute()

    def wake_metrics(self, samples: list[int]) -> Metrics:
        ms = [s / NS_PER_MS for s in samples]
        return {"p50": percentile(ms, 50), "p99": percentile(ms, 99), "max": max(ms)}

    async def wake_ait(self) -> Metrics:
        r = self.raw_client()
        samples: list[int] = []
        try:
            async with self.bus() as bus:
                channel = bus.channel(self.name("wake"))
                await self.fill_backlog(r, channel.key)
                for _ in range(self.sizes.wakes):
                    event = new_input()
                    await r.xadd(channel.key, fields_of(event))  # pyright: ignore[reportArgumentType]
                    woken = time.perf_counter_ns()
                    async with ait.AgentSession(bus, channel.name) as session:
                        invocation = ait.Invocation(
                            channel=channel.name, input_event_id=event.event_id
                        )
                        run = session.create_run(invocation)
                        await run.start()
                        samples.append(time.perf_counter_ns() - woken)
                        await run.end()
        finally:
            await r.aclose()
        return self.wake_metrics(samples)

    async def wake_raw(self) -> Metrics:
        r = self.raw_client()
        key = key_of(self.name("wake"))
        samples: list[int] = []
        unpackb = msgpack.unpackb
        try:
            await self.fill_backlog(r, key)
            for _ in range(self.sizes.wakes):
                event = new_input()
                await r.xadd(key, fields_of(event))  # pyright: ignore[reportArgumentType]
                woken = time.perf_counter_ns()
                found: ait.Input | None = None
                upper = "+"
                while found is None:  # the newest entries first, until the input
                    page = await r.xrevrange(key, max=upper, min="-", count=100)
                    for _entry_id, fields in page:
                        if fields[b"t"] == b"input":
                            headers = unpackb(fields[b"h"])
                            if headers["event-id"] == event.event_id:
                                found = event
                                break
                    upper = "(" + page[-1][0].decode()
                run_id, invocation_id = new_id(), new_id()
                start = ait.RunStart(
                    run_id=run_id,
                    invocation_id=invocation_id,
                    input_event_id=found.event_id,
                    input_message_id=found.message_id,
                    run_client_id=found.client_id,
                    parent=found.message_id,
                )
                await r.xadd(key, fields_of(start))  # pyright: ignore[reportArgumentType]
                samples.append(time.perf_counter_ns() - woken)
                end = ait.RunEnd(run_id=run_id, invocation_id=invocation_id, reason="complete")
                await r.xadd(key, fields_of(end))  # pyright: ignore[reportArgumentType]
        finally:
            await r.aclose()
        return self.wake_metrics(samples)


# -- the scenario table -----------------------------------------------------------------------


def scenarios(bench: Bench) -> list[Scenario]:
    s = bench.sizes
    ms = partial(Check, unit="ms", digits=2)
    run_side = (
        "`AgentSession` + `create_run` + `start()` + `run.pipe(provider.stream())` + `end()`; "
        "tokens/s from the pipe() call to the consumer's receipt of the last token"
    )
    consumer = (
        "the same ScriptedProvider (no delay, an `anyio.lowlevel.checkpoint()` per token) "
        "feeds both; consumer: ONE raw XREAD BLOCK loop on its own connection (same code for "
        "both) counting text deltas"
    )
    entries = [
        Check("output entries per 1,000 tokens", "entries_per_1000", "entries", "info", digits=1),
    ]
    cancel_checks = [
        Check("p99 cancel -> run.end", "p99", "ms", "limit", CANCEL_P99_MS, digits=2),
        ms(label="p50 cancel -> run.end", key="p50", kind="info"),
        ms(label="p99 cancel -> run.end", key="p99", kind="info"),
        ms(label="slowest cancel -> run.end", key="max", kind="info"),
        Check("runs not ended `cancelled`", "not_cancelled", "runs", "limit", 0),
        Check("text deltas after the cancel, worst run", "after_max", "deltas", "info"),
        Check("errors ait reported in the background", "bus_errors", "errors", "info"),
    ]
    cancel_common = (
        "observer: ONE raw XREAD BLOCK loop (same code) noting each run.end's arrival; the "
        "cancel (`ait.Cancel(run_id=...)`, encoded beforehand) is published with a raw XADD "
        "(same code) after 20-50 ms of streaming; latency = run.end arrival - "
        "perf_counter_ns() just before the cancel's XADD"
    )
    return [
        Scenario(
            name="tokens",
            number="1",
            title=f"{s.tokens:,} tokens from a scripted provider at full speed, one run",
            ait_side=run_side,
            raw_side="one awaited `r.xadd` per token (the Output envelope, one text delta), "
            "run.start and run.end XADDed around it",
            common=consumer,
            run_ait=bench.tokens_ait,
            run_raw=partial(bench.tokens_raw, "xadd"),
            checks=[
                Check("throughput", "rate", "tokens/s", "higher", TOKENS_TARGET),
                *entries,
                ms(
                    label="run.start() (find input, publish run.start)", key="start_ms", kind="info"
                ),
                ms(label="pipe() return -> run.end() done", key="end_ms", kind="info"),
                Check("errors ait reported in the background", "bus_errors", "errors", "info"),
            ],
        ),
        Scenario(
            name="tokens-flusher",
            number="1b",
            title=f"{s.tokens:,} tokens at full speed, ait vs a timed flusher (for information)",
            ait_side=run_side,
            raw_side="tokens appended to a list; a flusher task XADDs everything pending as "
            "ONE entry (msgpack list) every 10 ms, final flush at the end",
            common=consumer,
            run_ait=bench.tokens_ait,
            run_raw=partial(bench.tokens_raw, "flusher"),
            checks=[Check("throughput", "rate", "tokens/s", "info", digits=0), *entries],
        ),
        Scenario(
            name="cancel",
            number="2",
            title=f"{s.cancels} cancels per side, the provider streaming at {CANCEL_RATE} tokens/s",
            ait_side="an `AgentSession`; per run: `create_run`, `start()`, a task doing "
            "`run.pipe(ScriptedProvider(delay=5 ms).stream())` then `run.end(result.reason)`",
            raw_side="per run: XADD run.start; a producer task doing one XADD per token and a "
            "watcher (XREAD BLOCK on its own connection) looking for a cancel naming the run; "
            "on it: stop the producer, XADD a finish output and run.end in one pipeline",
            common=cancel_common,
            run_ait=partial(bench.cancel_ait, False),
            run_raw=partial(bench.cancel_raw, False),
            checks=cancel_checks,
        ),
        Scenario(
            name="cancel-busy",
            number="2b",
            title=f"{s.cancels} cancels per side, the provider streaming as fast as it can",
            ait_side="as in 2, `ScriptedProvider(delay=0)`",
            raw_side="as in 2, the same provider",
            common=cancel_common,
            run_ait=partial(bench.cancel_ait, True),
            run_raw=partial(bench.cancel_raw, True),
            checks=cancel_checks,
        ),
        Scenario(
            name="wake",
            number="3",
            title=f"{s.wakes} wake-ups per side on a channel holding {s.backlog:,} output entries",
            ait_side="per invocation, as a worker does: open an `AgentSession` (it replays the "
            "two-minute rewind window for inputs and cancels), `create_run`, `start()`",
            raw_side="per invocation: XREVRANGE pages of 100 from the newest entry until the "
            "input (its `event-id` header), then XADD run.start; no cancel watching, no "
            "active-run record",
            common="the input is XADDed (same code) just before the clock starts; latency = "
            "run.start() returned (raw: its XADD answered) - perf_counter_ns() after the input",
            run_ait=bench.wake_ait,
            run_raw=bench.wake_raw,
            checks=[
                Check("p50 wake -> run.start", "p50", "ms", "plus", WAKE_P50_PLUS_MS, digits=2),
                Check("p99 wake -> run.start", "p99", "ms", "plus", WAKE_P99_PLUS_MS, digits=2),
                ms(label="p50 wake -> run.start", key="p50", kind="info"),
                ms(label="slowest wake -> run.start", key="max", kind="info"),
            ],
        ),
    ]


# -- main -------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, url: str, dump: dict[str, Any]) -> None:
    bench = Bench(url, QUICK if args.quick else FULL, args.seed)
    chosen = selected(scenarios(bench), args.only)
    title = f"ait agent benchmark: {args.rounds} rounds, interleaved A (ait) B (raw) per round"
    started = time.perf_counter()
    try:
        results = await report(title, args, bench, chosen, dump)
    finally:
        await bench.admin.aclose()
    print(render_tail(results, args.rounds))
    print(f"Total time {time.perf_counter() - started:.0f} s.")


def main(argv: list[str] | None = None) -> int:
    args = parse(arguments(__doc__.split("\n\n")[0]), argv)
    return serve(run, args, {"sizes": asdict(QUICK if args.quick else FULL)})


if __name__ == "__main__":
    sys.exit(main())
