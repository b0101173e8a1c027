"""AgentWorker in one process: concurrency, acknowledgement, handler failures, bad queue
entries, graceful and forced stops."""

from __future__ import annotations

import anyio
import pytest

import ait
from ait.agent import Handler
from ait.agent.session import input_claim_key
from ait.testing import ScriptedProvider, memory_bus

from .helpers import (
    Clock,
    Ticker,
    enqueue_input,
    events,
    fold,
    invocation,
    pool_name,
    run_ends,
    serving,
    wait_for,
    wait_for_event,
)


def answer_with(provider_factory: object) -> Handler:
    async def handler(run: ait.Run) -> None:
        await run.start()
        messages = await run.load_conversation()
        result = await run.pipe(provider_factory(messages).stream(messages))  # type: ignore[operator]
        await run.end(result.reason, error=result.error)

    return handler


async def all_ended(channel: ait.Channel, n: int, timeout: float = 10) -> dict[str, ait.RunEnd]:
    with anyio.fail_after(timeout):
        while len(ends := await run_ends(channel)) < n:
            await anyio.sleep(0.01)
    return ends


async def test_worker_arguments_are_checked(bus: ait.Bus) -> None:
    async def handler(run: ait.Run) -> None: ...

    with pytest.raises(ait.UsageError, match="concurrency"):
        ait.AgentWorker(bus, handler, concurrency=0)
    with pytest.raises(ait.UsageError, match="lease"):
        ait.AgentWorker(bus, handler, lease=0.5)


async def test_concurrency_is_respected(bus: ait.Bus, channel_name: str) -> None:
    channel = bus.channel(channel_name)
    pool = pool_name()
    running = 0
    most = 0
    seen_busy: list[int] = []

    async def handler(run: ait.Run) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        seen_busy.append(worker.busy)
        try:
            await run.start()
            result = await run.pipe(ScriptedProvider(["a", "b", "c"], delay=0.05).stream())
            await run.end(result.reason)
        finally:
            running -= 1

    worker = ait.AgentWorker(bus, handler, pool=pool, concurrency=2, block_ms=100)
    async with serving(worker):
        for i in range(7):
            await enqueue_input(bus, channel, pool, f"q{i}")
        ends = await all_ended(channel, 7)
    assert {e.reason for e in ends.values()} == {"complete"}
    assert most == 2  # never more than 2, and the 2 slots were used
    assert max(seen_busy) <= 2
    assert worker.stats["taken"] == 7 and worker.stats["acked"] == 7
    assert await bus.pool(pool).pending_count() == 0


async def test_two_workers_share_the_queue_without_exceeding_each_concurrency(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    pool = pool_name()
    running = {"a": 0, "b": 0}
    most = {"a": 0, "b": 0}
    served = {"a": 0, "b": 0}

    def make(name: str) -> Handler:
        async def handler(run: ait.Run) -> None:
            running[name] += 1
            most[name] = max(most[name], running[name])
            served[name] += 1
            try:
                await run.start()
                await run.pipe(ScriptedProvider(["x"], first_token_delay=0.05).stream())
                await run.end()
            finally:
                running[name] -= 1

        return handler

    a = ait.AgentWorker(bus, make("a"), pool=pool, concurrency=1, block_ms=100)
    b = ait.AgentWorker(bus, make("b"), pool=pool, concurrency=3, block_ms=100)
    async with serving(a), serving(b):
        for i in range(12):
            await enqueue_input(bus, channel, pool, f"q{i}")
        await all_ended(channel, 12)
    assert most["a"] == 1 and most["b"] <= 3
    assert served["a"] + served["b"] == 12 and served["a"] > 0 and served["b"] > 0


async def test_the_entry_is_acknowledged_after_end_and_after_suspend(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    pool = pool_name()
    queue = bus.pool(pool)
    pending_before_finish: list[int] = []

    async def handler(run: ait.Run) -> None:
        await run.start()
        await run.pipe(ScriptedProvider(["working"]).stream())
        pending_before_finish.append(await queue.pending_count())
        assert run.input is not None
        if run.input.payload[0]["delta"] == "suspend me":
            await run.suspend()
        else:
            await run.end()

    worker = ait.AgentWorker(bus, handler, pool=pool, block_ms=100)
    async with serving(worker):
        await enqueue_input(bus, channel, pool, "end me")
        await wait_for_event(channel, lambda e: isinstance(e, ait.RunEnd))
        await wait_for(lambda: worker.stats["acked"] == 1)
        assert await queue.pending_count() == 0
        await enqueue_input(bus, channel, pool, "suspend me")
        await wait_for_event(channel, lambda e: isinstance(e, ait.RunSuspend))
        await wait_for(lambda: worker.stats["acked"] == 2)
        assert await queue.pending_count() == 0
    assert pending_before_finish == [1, 1]  # held (unacknowledged) while the run was open


async def test_a_handler_that_returns_without_ending_gets_end_complete(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    pool = pool_name()

    async def handler(run: ait.Run) -> None:
        await run.start()
        await run.pipe(ScriptedProvider(["forgot to end"]).stream())

    worker = ait.AgentWorker(bus, handler, pool=pool, block_ms=100)
    async with serving(worker):
        await enqueue_input(bus, channel, pool)
        (end,) = (await all_ended(channel, 1)).values()
        await wait_for(lambda: worker.stats["acked"] == 1)
    assert end.reason == "complete"
    assert await bus.pool(pool).pending_count() == 0
    assert {r.status for r in (await fold(channel)).runs} == {"complete"}


async def test_a_handler_that_raises_gets_end_error_and_the_worker_keeps_serving(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    pool = pool_name()
    errors: list[BaseException] = []

    class ToolCrashed(Exception):
        pass

    async def handler(run: ait.Run) -> None:
        await run.start()
        assert run.input is not None
        if run.input.payload[0]["delta"] == "crash":
            raise ToolCrashed("the tool crashed")
        await run.pipe(ScriptedProvider(["fine"]).stream())
        await run.end()

    worker = ait.AgentWorker(bus, handler, pool=pool, block_ms=100, on_error=errors.append)
    async with serving(worker):
        crashing, _ = await enqueue_input(bus, channel, pool, "crash")
        fine, _ = await enqueue_input(bus, channel, pool, "fine")
        ends = await all_ended(channel, 2)
        await wait_for(lambda: worker.stats["acked"] == 2)
    starts = {e.input_event_id: e.run_id for e in await events(channel, "run.start")}
    crashed = ends[starts[crashing.event_id]]
    assert (crashed.reason, crashed.error_code, crashed.error_message) == (
        "error",
        "tool-crashed",
        "the tool crashed",
    )
    assert ends[starts[fine.event_id]].reason == "complete"
    assert [type(e) for e in errors] == [ToolCrashed]
    assert worker.stats["failed"] == 1
    assert await bus.pool(pool).pending_count() == 0


async def test_a_handler_that_raises_before_start_publishes_nothing(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    pool = pool_name()
    errors: list[BaseException] = []

    async def handler(run: ait.Run) -> None:
        raise RuntimeError("not even started")

    worker = ait.AgentWorker(bus, handler, pool=pool, block_ms=100, on_error=errors.append)
    async with serving(worker):
        await enqueue_input(bus, channel, pool)
        await wait_for(lambda: worker.stats["acked"] == 1)
    assert [e.type for e in await events(channel)] == ["input"]
    assert len(errors) == 1


async def test_bad_queue_entries_are_reported_and_acknowledged(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    pool = pool_name()
    queue = bus.pool(pool)
    errors: list[BaseException] = []

    async def handler(run: ait.Run) -> None:
        await run.start()
        await run.pipe(ScriptedProvider(["ok"]).stream())
        await run.end()

    worker = ait.AgentWorker(bus, handler, pool=pool, block_ms=100, on_error=errors.append)
    await queue.ensure_group()
    client = bus.handle.client
    junk = [
        (await client.execute_command("XADD", queue.key, "*", "garbage", "1")).decode(),
        (
            await client.execute_command(
                "XADD", queue.key, "*", "v", "1", "t", "invocation", "h", b"\xc1"
            )
        ).decode(),
        (
            await client.execute_command(
                "XADD", queue.key, "*", "v", "9", "t", "invocation", "h", b"\x80"
            )
        ).decode(),
    ]
    async with serving(worker):
        await enqueue_input(bus, channel, pool)
        await all_ended(channel, 1)
        await wait_for(lambda: worker.stats["acked"] == 4)
    assert await queue.pending_count() == 0
    for entry_id in junk:
        assert sum(entry_id in str(e) for e in errors) == 1
    assert worker.stats["taken"] == 1


async def test_an_invocation_whose_input_never_comes_is_reported_and_acknowledged(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    pool = pool_name()
    errors: list[BaseException] = []
    calls = 0

    async def handler(run: ait.Run) -> None:
        nonlocal calls
        calls += 1
        await run.start()

    worker = ait.AgentWorker(
        bus,
        handler,
        pool=pool,
        block_ms=100,
        on_error=errors.append,
        session_options={"input_timeout": 0.3},
    )
    async with serving(worker):
        await bus.pool(pool).enqueue(ait.Invocation(channel=channel_name, input_event_id="ghost"))
        await wait_for(lambda: worker.stats["acked"] == 1, timeout=5)
    assert calls == 1
    assert [type(e) for e in errors] == [ait.InputNotFound]
    assert await channel.length() == 0
    assert await bus.pool(pool).pending_count() == 0


async def test_a_rejected_run_is_acknowledged_and_not_a_failure(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    pool = pool_name()
    errors: list[BaseException] = []
    ticker = Ticker()

    async def handler(run: ait.Run) -> None:
        await run.start()
        result = await run.pipe(ticker.stream())
        await run.end(result.reason)

    worker = ait.AgentWorker(
        bus, handler, pool=pool, block_ms=100, on_error=errors.append, concurrency=2
    )
    async with serving(worker):
        await enqueue_input(bus, channel, pool, "first")
        await ticker.running()
        await enqueue_input(bus, channel, pool, "second", multitask="reject")
        await wait_for(lambda: worker.stats["acked"] == 1, timeout=5)
        ticker.stop()
        await wait_for(lambda: worker.stats["acked"] == 2, timeout=5)
    ends = await run_ends(channel)
    assert sorted((e.reason, e.error_code) for e in ends.values()) == [
        ("complete", None),
        ("error", "rejected"),
    ]
    assert [type(e) for e in errors] == [ait.RunRejected]
    assert worker.stats["failed"] == 0


# -- stopping -----------------------------------------------------------------------------------


async def test_a_graceful_stop_lets_in_flight_runs_finish(bus: ait.Bus, channel_name: str) -> None:
    channel = bus.channel(channel_name)
    pool = pool_name()
    started = anyio.Event()

    async def handler(run: ait.Run) -> None:
        await run.start()
        started.set()
        await run.pipe(ScriptedProvider([f"t{i}" for i in range(30)], delay=0.01).stream())
        await run.end()

    worker = ait.AgentWorker(bus, handler, pool=pool, block_ms=100, shutdown_timeout=5)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await enqueue_input(bus, channel, pool)
        with anyio.fail_after(5):
            await started.wait()
        worker.stop()
        # after stop, nothing new is taken
        late, _ = await enqueue_input(bus, channel, pool, "too late")
    (end,) = (await run_ends(channel)).values()
    assert end.reason == "complete"
    message = (await fold(channel)).runs[0]
    assert message.status == "complete"
    assert worker.stats["taken"] == 1 and worker.stats["acked"] == 1
    assert await bus.pool(pool).pending_count() == 0
    assert await bus.pool(pool).length() == 2  # the late one waits for the next worker
    assert [e.input_event_id for e in await events(channel, "run.start")] != [late.event_id]


async def test_a_stop_past_the_shutdown_timeout_ends_runs_agent_shutdown(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    pool = pool_name()
    ticker = Ticker()

    async def handler(run: ait.Run) -> None:
        await run.start()
        await run.pipe(ticker.stream())  # never finishes by itself
        await run.end()

    worker = ait.AgentWorker(bus, handler, pool=pool, block_ms=100, shutdown_timeout=0.3)
    clock = Clock()
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await enqueue_input(bus, channel, pool)
        await ticker.running()
        clock = Clock()
        worker.stop()
    assert 0.25 < clock.elapsed() < 2.0
    (end,) = (await run_ends(channel)).values()
    assert (end.reason, end.error_code) == ("error", "agent-shutdown")
    assert ticker.closed
    tree = await fold(channel)
    assert {r.status for r in tree.runs} == {"error"}


async def test_cancelling_run_is_a_hard_stop_that_still_ends_runs(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    pool = pool_name()
    ticker = Ticker()

    async def handler(run: ait.Run) -> None:
        await run.start()
        await run.pipe(ticker.stream())
        await run.end()

    worker = ait.AgentWorker(bus, handler, pool=pool, block_ms=100, shutdown_timeout=30)
    clock = Clock()
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            await enqueue_input(bus, channel, pool)
            await ticker.running()
            clock = Clock()
            scope.cancel()
    assert clock.elapsed() < 2.0  # not the 30 s of a graceful stop
    (end,) = (await run_ends(channel)).values()
    assert (end.reason, end.error_code) == ("error", "agent-shutdown")


async def test_a_run_ended_by_a_shutdown_is_acknowledged_and_never_rerun(
    bus: ait.Bus, channel_name: str
) -> None:
    """The shut-down run ended (`agent-shutdown`): its entry is acknowledged, so the next
    worker does not take it over."""
    channel = bus.channel(channel_name)
    pool = pool_name()
    ticker = Ticker()
    calls = 0

    async def handler(run: ait.Run) -> None:
        nonlocal calls
        calls += 1
        await run.start()
        await run.pipe(ticker.stream())
        await run.end()

    first = ait.AgentWorker(bus, handler, pool=pool, block_ms=100, shutdown_timeout=0.1, lease=1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(first.run)
        await enqueue_input(bus, channel, pool)
        await ticker.running()
        first.stop()
    queue = bus.pool(pool)
    assert await queue.pending_count() == 0
    assert await bus.handle.client.hlen(channel.key_for("active")) == 0
    second = ait.AgentWorker(bus, handler, pool=pool, block_ms=100, lease=1)
    async with serving(second):
        await anyio.sleep(1.5)  # past the lease: nothing to reclaim
    assert calls == 1 and second.stats["reclaimed"] == 0
    assert len(await events(channel, "run.start")) == 1
    assert len(await events(channel, "run.end")) == 1


# -- recovery, with a dead worker simulated in this process ------------------------------------


async def take_as_dead_worker(bus: ait.Bus, pool: str) -> str:
    """Read one invocation as a consumer that will never renew nor acknowledge it."""
    queue = bus.pool(pool)
    try:
        (entry,) = await queue.read("dead-worker", 1, 1000)
    finally:
        await queue.aclose()
    return entry[0]


async def test_a_reclaimed_entry_whose_run_finished_is_just_acknowledged(
    bus: ait.Bus, channel_name: str
) -> None:
    """The worker died after its run ended but before acknowledging: nothing is run again."""
    channel = bus.channel(channel_name)
    pool = pool_name()
    sent, _ = await enqueue_input(bus, channel, pool)
    await take_as_dead_worker(bus, pool)
    async with ait.AgentSession(bus, channel_name) as session:
        run = session.create_run(invocation(channel, sent))
        await run.start()
        await run.end()
    calls = 0

    async def handler(run: ait.Run) -> None:
        nonlocal calls
        calls += 1

    worker = ait.AgentWorker(bus, handler, pool=pool, block_ms=100, lease=1)
    async with serving(worker):
        await wait_for(lambda: worker.stats["acked"] == 1, timeout=5)
    assert calls == 0 and worker.stats["reclaimed"] == 1 and worker.stats["lost_ended"] == 0
    assert await bus.pool(pool).pending_count() == 0
    assert [e.type for e in await events(channel)] == ["input", "run.start", "run.end"]


async def test_a_reclaimed_entry_whose_run_never_started_is_answered(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    pool = pool_name()
    await enqueue_input(bus, channel, pool)
    await take_as_dead_worker(bus, pool)

    async def handler(run: ait.Run) -> None:
        await run.start()
        await run.pipe(ScriptedProvider(["late but here"]).stream())
        await run.end()

    worker = ait.AgentWorker(bus, handler, pool=pool, block_ms=100, lease=1)
    async with serving(worker):
        await wait_for(lambda: worker.stats["acked"] == 1, timeout=5)
    assert worker.stats["reclaimed"] == 1
    (end,) = (await run_ends(channel)).values()
    assert end.reason == "complete"
    assert await bus.pool(pool).pending_count() == 0


async def test_a_dead_workers_claim_on_the_input_does_not_stop_the_rescue(
    bus: ait.Bus, channel_name: str
) -> None:
    """The dead worker claimed the input, then died before its run.start: the worker that
    takes over knows it is dead (its lease ran out), so it releases the claim and answers."""
    channel = bus.channel(channel_name)
    pool = pool_name()
    sent, _ = await enqueue_input(bus, channel, pool)
    await take_as_dead_worker(bus, pool)
    await bus.handle.client.set(input_claim_key(channel, sent.event_id), "dead-run")

    async def handler(run: ait.Run) -> None:
        await run.start()
        await run.end()

    errors: list[BaseException] = []
    worker = ait.AgentWorker(bus, handler, pool=pool, block_ms=100, lease=1, on_error=errors.append)
    async with serving(worker):
        await wait_for(lambda: worker.stats["acked"] == 1, timeout=10)
    (end,) = (await run_ends(channel)).values()
    assert end.reason == "complete" and errors == []


@pytest.mark.parametrize("restart_lost", [False, True])
async def test_a_reclaimed_entry_whose_run_was_left_open_is_ended_agent_lost(
    bus: ait.Bus, channel_name: str, restart_lost: bool
) -> None:
    channel = bus.channel(channel_name)
    pool = pool_name()
    sent, _ = await enqueue_input(bus, channel, pool)
    await take_as_dead_worker(bus, pool)
    session = ait.AgentSession(bus, channel_name)
    await session.__aenter__()
    lost = session.create_run(invocation(channel, sent))
    await lost.start()
    await lost.pipe(ScriptedProvider(["half an ans"]).stream())
    # the "dead worker" goes without ending its run (its session is dropped unclosed)
    session.tasks.stop()

    async def handler(run: ait.Run) -> None:
        await run.start()
        await run.pipe(ScriptedProvider(["a whole answer"]).stream())
        await run.end()

    worker = ait.AgentWorker(
        bus, handler, pool=pool, block_ms=100, lease=1, restart_lost=restart_lost
    )
    async with serving(worker):
        await wait_for(lambda: worker.stats["acked"] == 1, timeout=5)
    ends = await run_ends(channel)
    lost_end = ends.pop(lost.run_id)  # type: ignore[arg-type]
    assert (lost_end.reason, lost_end.error_code) == ("error", "agent-lost")
    assert lost_end.invocation_id == lost.invocation_id
    assert worker.stats["lost_ended"] == 1
    if restart_lost:
        (again,) = ends.values()
        assert again.reason == "complete"
        starts = await events(channel, "run.start")
        assert [s.input_event_id for s in starts] == [sent.event_id, sent.event_id]
    else:
        assert ends == {}
    assert await bus.handle.client.hlen(channel.key_for("active")) == 0
    assert await bus.pool(pool).pending_count() == 0
    await session.__aexit__(None, None, None)


async def queue_readers(bus: ait.Bus) -> int:
    """Connections of this server whose last command was a queue read (XREADGROUP)."""
    listing = await bus.handle.client.execute_command("CLIENT", "LIST")
    text = listing.decode() if isinstance(listing, bytes) else str(listing)
    return sum(" cmd=xreadgroup" in line for line in text.splitlines())


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
async def test_a_stopped_worker_leaves_no_connection_open(
    bus: ait.Bus, channel_name: str, busy: bool
) -> None:
    """The worker's queue reader has a connection of its own: closed when the worker stops,
    whether it was blocked reading (idle) or waiting for a free slot (busy)."""
    channel = bus.channel(channel_name)
    pool = pool_name()
    before = await queue_readers(bus)  # other tests' workers on this server, if any
    ticker = Ticker()

    async def handler(run: ait.Run) -> None:
        await run.start()
        await run.pipe(ticker.stream())
        await run.end()

    worker = ait.AgentWorker(bus, handler, pool=pool, concurrency=1, block_ms=100)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await enqueue_input(bus, channel, pool)
        await ticker.running()
        assert await queue_readers(bus) == before + 1
        if not busy:
            ticker.stop()
            await wait_for(lambda: worker.stats["acked"] == 1)
            await anyio.sleep(0.2)  # blocked in its queue read again
        else:
            await anyio.sleep(0.2)  # waiting for its one slot, the reader connection idle
            ticker.stop()
        worker.stop()
    with anyio.fail_after(5):
        while await queue_readers(bus) > before:
            await anyio.sleep(0.05)


async def test_a_worker_on_the_in_memory_bus_answers_without_starving_the_loop() -> None:
    """fakeredis answers a blocking XREADGROUP at once; the worker must wait, not spin (a
    spin starved every other task: the client never saw its answer)."""
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    async with memory_bus() as bus, anyio.create_task_group() as tg:
        worker = ait.AgentWorker(bus, answer_with(lambda _: ScriptedProvider(["hi"])))
        tg.start_soon(worker.run)
        tg.start_soon(tick)
        async with ait.ClientSession(bus, "chat-memory", client_id="alice") as client:
            with anyio.fail_after(10):
                info = await (await client.view.send("hello")).wait()
            assert info.status == "complete"
            assert client.view.messages[-1].text == "hi"
            before = ticks
            await anyio.sleep(0.3)  # the worker idles in its queue read meanwhile
            assert ticks - before >= 10
        worker.stop()
        tg.cancel_scope.cancel()


async def test_an_empty_queue_read_on_the_in_memory_bus_waits_for_its_block() -> None:
    async with memory_bus() as bus:
        pool = bus.pool("idle")
        clock = anyio.current_time()
        assert await pool.read("c1", 1, 300) == []
        assert 0.28 <= anyio.current_time() - clock < 2
        await pool.aclose()
