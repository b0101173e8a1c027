"""The once-only claim on a fresh input: of several agents woken for one input (a doorbell
retried, a duplicate delivery), one answers it; the others get a quiet `RunConflict`."""

from __future__ import annotations

import anyio

import ait
from ait.agent.session import input_claim_key

from .helpers import Ticker, events, invocation, publish_input, raises


async def test_two_agents_woken_for_one_input_start_one_run(
    redis_url: str, bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    _, sent = await publish_input(channel)
    outcomes: list[str] = []

    async def agent(agent_bus: ait.Bus) -> None:
        async with ait.AgentSession(agent_bus, channel_name) as session:
            run = session.create_run(invocation(channel, sent))
            try:
                await run.start()
            except ait.RunConflict as exc:
                assert exc.taken and exc.state in ("active", "ended")
                outcomes.append("conflict")
                return
            outcomes.append("started")
            await run.end()

    async with ait.Bus.from_url(redis_url) as other_bus, anyio.create_task_group() as tg:
        tg.start_soon(agent, bus)
        tg.start_soon(agent, other_bus)
    assert sorted(outcomes) == ["conflict", "started"]
    assert [e.type for e in await events(channel)] == ["input", "run.start", "run.end"]
    assert await bus.handle.client.exists(input_claim_key(channel, sent.event_id)) == 0


async def test_an_input_answered_already_conflicts_and_publishes_nothing(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    _, sent = await publish_input(channel)
    async with ait.AgentSession(bus, channel_name) as session:
        first = session.create_run(invocation(channel, sent))
        await first.start()
        await first.end()
        late = session.create_run(invocation(channel, sent))
        conflict = await raises(ait.RunConflict, late.start())
        assert (conflict.run_id, conflict.state, conflict.taken) == (first.run_id, "ended", True)
        assert "answered already" in str(conflict)
        assert late.state == "created" and late.run_id is None
    assert [e.type for e in await events(channel)] == ["input", "run.start", "run.end"]


async def test_a_claim_left_by_a_dead_agent_lapses(bus: ait.Bus, channel_name: str) -> None:
    channel = bus.channel(channel_name)
    _, sent = await publish_input(channel)
    key = input_claim_key(channel, sent.event_id)
    await bus.handle.client.set(key, "dead-run", px=2_000)  # died before its run.start
    async with ait.AgentSession(bus, channel_name) as session:
        conflict = await raises(
            ait.RunConflict, session.create_run(invocation(channel, sent)).start()
        )
        assert (conflict.run_id, conflict.taken) == ("dead-run", True)
        with anyio.fail_after(10):
            while await bus.handle.client.exists(key):
                await anyio.sleep(0.05)
        run = session.create_run(invocation(channel, sent))
        await run.start()
        await run.end()
    assert [e.type for e in await events(channel)] == ["input", "run.start", "run.end"]


async def test_a_waiting_run_keeps_its_claim_and_gives_it_back_when_stopped(
    bus: ait.Bus, channel_name: str
) -> None:
    """While an `enqueue` input waits for the active run, the heartbeat keeps its claim;
    a start cut short gives it back, so a retry may answer the input."""
    channel = bus.channel(channel_name)
    client = bus.handle.client
    async with ait.AgentSession(bus, channel_name, heartbeat=0.1) as session:
        _, first = await publish_input(channel, "first")
        active = session.create_run(invocation(channel, first))
        await active.start()
        _, queued = await publish_input(channel, "second", multitask="enqueue")
        key = input_claim_key(channel, queued.event_id)
        waiting = session.create_run(invocation(channel, queued))
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiting.start)
            with anyio.fail_after(10):
                while (ttl := await client.pttl(key)) < 0:
                    await anyio.sleep(0.01)
                while (again := await client.pttl(key)) <= ttl:  # refreshed: it went up
                    ttl = again
                    await anyio.sleep(0.01)
            assert ttl <= 300  # three heartbeats: a dead agent's claim lapses soon
            tg.cancel_scope.cancel()
        assert waiting.state == "created"
        assert await client.exists(key) == 0
        ticker = Ticker()
        ticker.stop()
        await active.pipe(ticker.stream())
        await active.end()
    assert [e.type for e in await events(channel, "run.start")] == ["run.start"]
