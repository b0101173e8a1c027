"""Liveness across processes: heartbeats in the active hash, atomic lease renewal."""

from __future__ import annotations

import time

import anyio
import msgpack
import pytest

import ait
from ait.bus.active import ActiveRuns
from ait.ids import new_id

from .helpers import (
    answer,
    events,
    invocation,
    publish_input,
    raises,
    run_ends,
    slow,
    wait_for_event,
)


async def test_a_ghost_in_the_active_hash_does_not_block_new_runs(
    bus: ait.Bus, channel_name: str
) -> None:
    """A run recorded by an agent that died outside any worker stops counting once its
    record is three heartbeats (and the grace) old: a `reject` input is not rejected
    because of it, and the agent that noticed ends it `agent-lost` for every client."""
    channel = bus.channel(channel_name)
    ghost = msgpack.packb(
        {"input-event-id": "gone", "started-at": 1, "alive-at": int(time.time() * 1000) - 60_000}
    )
    await bus.handle.client.hset(channel.key_for("active"), "ghost-run", ghost)
    async with ait.AgentSession(bus, channel_name, heartbeat=10.0, agent_id="a1") as session:
        assert "ghost-run" not in await session.active_runs()
        assert await bus.handle.client.hexists(channel.key_for("active"), "ghost-run") == 0
        (end,) = await events(channel, "run.end")
        assert (end.run_id, end.reason, end.error_code) == ("ghost-run", "error", "agent-lost")
        assert "no heartbeat for 32 s, noticed by agent a1" in str(end.error_message)
        _, event = await publish_input(channel, multitask="reject")
        run = session.create_run(invocation(channel, event))
        await run.start()  # not RunRejected
        await run.end()


async def test_a_record_says_its_heartbeat_so_that_others_judge_it_by_it(
    bus: ait.Bus, channel_name: str
) -> None:
    """An agent with a 60 s heartbeat is not taken for dead by one with a 0.2 s one."""
    channel = bus.channel(channel_name)
    async with (
        ait.AgentSession(bus, channel_name, heartbeat=60) as patient,
        ait.AgentSession(bus, channel_name, heartbeat=0.2) as hasty,
    ):
        _, event = await publish_input(channel)
        run = patient.create_run(invocation(channel, event))
        await run.start()
        record = (await hasty.active_runs())[str(run.run_id)]
        assert record["heartbeat-ms"] == 60_000
        key = channel.key_for("active")
        aged = msgpack.packb({**record, "alive-at": record["alive-at"] - 5_000})
        await bus.handle.client.hset(key, str(run.run_id), aged)  # 25 beats of `hasty` ago
        assert str(run.run_id) in await hasty.active_runs()
        await run.end()


async def test_an_agent_whose_run_was_ended_as_lost_stops_it(
    bus: ait.Bus, channel_name: str
) -> None:
    """Another process took the agent for dead (it was frozen) and ended its run: the
    agent sees the `run.end` and stops (`RunLost`); its heartbeat does not record the run
    again; its session goes on serving."""
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name, heartbeat=60) as session:
        _, event = await publish_input(channel)
        run = session.create_run(invocation(channel, event))
        await run.start()
        assert run.run_id is not None
        active = ActiveRuns(channel)

        async def noticed() -> None:
            await wait_for_event(channel, lambda e: isinstance(e, ait.Output))
            (raw,) = (await active.records([str(run.run_id)])).values()
            assert await active.end_lost(str(run.run_id), raw, message="frozen")

        async with anyio.create_task_group() as tg:
            tg.start_soon(noticed)
            with anyio.fail_after(10):
                result = await run.pipe(slow(5_000, delay=0.01).stream())
        assert result.reason == "error" and isinstance(result.error, ait.RunLost)
        assert run.lost and run.state == "ended"
        await run.end()  # nothing: it is over
        await raises(ait.UsageError, run.pipe(slow(1).stream()))
        await session.refresh_records([run])
        assert await active.records() == {}
        assert [e.error_code for e in await events(channel, "run.end")] == ["agent-lost"]

        _, later = await publish_input(channel)
        fresh = session.create_run(invocation(channel, later))
        await answer(fresh, slow(3))
        assert not fresh.lost
        assert (await run_ends(channel))[str(fresh.run_id)].reason == "complete"


async def test_a_live_run_keeps_its_record_fresh_and_blocks_reject(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name, heartbeat=0.2) as session:
        _, first = await publish_input(channel)
        active = session.create_run(invocation(channel, first))
        await active.start()
        await anyio.sleep(1.0)  # five heartbeats: far past 3 x 0.2 s without a refresh
        assert active.run_id in await session.active_runs()
        _, second = await publish_input(channel, multitask="reject")
        rejected = session.create_run(invocation(channel, second))
        await raises(ait.RunRejected, rejected.start())
        await active.end()
        assert await session.active_runs() == {}


async def test_a_heartbeat_that_lands_after_the_end_does_not_record_the_run_again(
    any_bus: ait.Bus, channel_name: str
) -> None:
    """The beat lists the live runs, then writes: a run may end in between. Its record must
    stay gone, or it would block `reject` inputs until it went stale. (On the in-memory bus
    too: its Lua runs in lupa.)"""
    bus = any_bus
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name, heartbeat=60.0) as session:
        _, first = await publish_input(channel)
        _, other_input = await publish_input(channel)
        ending = session.create_run(invocation(channel, first))
        other = session.create_run(invocation(channel, other_input))
        await ending.start()
        await other.start()
        beat = [ending, other]  # what the heartbeat saw as live
        await ending.end()
        before = (await session.active_runs())[str(other.run_id)]["alive-at"]
        await anyio.sleep(0.01)
        await session.refresh_records(beat)
        runs = await session.active_runs()
        assert list(runs) == [other.run_id]
        assert runs[str(other.run_id)]["alive-at"] > before  # the live one was refreshed
        await other.end()


async def test_a_stale_record_refreshed_meanwhile_is_not_removed(
    bus: ait.Bus, channel_name: str
) -> None:
    """Removing stale records compares them with what was read: a record refreshed since
    (its agent was only slow) stays."""
    channel = bus.channel(channel_name)
    key = channel.key_for("active")
    old = msgpack.packb({"alive-at": int(time.time() * 1000) - 60_000})
    fresh = msgpack.packb({"alive-at": int(time.time() * 1000)})
    await bus.handle.client.hset(key, mapping={"slow-run": old, "dead-run": old})
    client = bus.handle.client
    hgetall = client.hgetall

    async def read_then_refresh(name: str) -> object:
        seen = await hgetall(name)
        await client.hset(key, "slow-run", fresh)  # the slow agent's beat lands now
        return seen

    async with ait.AgentSession(bus, channel_name, heartbeat=10.0) as session:
        client.hgetall = read_then_refresh  # type: ignore[method-assign]
        try:
            assert await session.active_runs() == {}  # both looked stale when read
        finally:
            del client.hgetall
        assert await client.hgetall(key) == {b"slow-run": fresh}


async def test_failing_to_remove_stale_records_is_reported_not_raised(
    bus: ait.Bus, channel_name: str
) -> None:
    """Removing stale records is housekeeping: when it fails (here Redis refuses the
    script), they are left out all the same, the problem is reported, and a run with a
    multitask policy starts."""
    channel = bus.channel(channel_name)
    key = channel.key_for("active")
    old = msgpack.packb({"alive-at": int(time.time() * 1000) - 60_000})
    await bus.handle.client.hset(key, "dead-run", old)
    client = bus.handle.client
    problems: list[BaseException] = []

    async def refused(*_args: object) -> object:
        await client.execute_command("EVAL", "return redis.error_reply('NOPERM no')", 0)
        raise AssertionError("unreachable")

    async with ait.AgentSession(bus, channel_name, on_error=problems.append) as session:
        client.eval = refused  # type: ignore[method-assign]
        try:
            assert await session.active_runs() == {}
            _, event = await publish_input(channel, multitask="reject")
            run = session.create_run(invocation(channel, event))
            await run.start()  # not rejected by the dead run, not failed by the housekeeping
            await run.end()
        finally:
            del client.eval
    assert len(problems) >= 2 and all(isinstance(p, ait.BusError) for p in problems)
    assert "unable to end the lost run 'dead-run'" in str(problems[0])
    assert await client.hexists(key, "dead-run") == 1  # still there: removal failed


async def test_a_worker_that_lost_its_lease_cannot_renew_it_back(
    bus: ait.Bus, channel_name: str
) -> None:
    pool = bus.pool(f"lease-{new_id()[:10]}")
    entry = await pool.enqueue(ait.Invocation(channel=channel_name, input_event_id="e1"))
    assert [i for i, _ in await pool.read("slow-worker", 1, 10)] == [entry]
    try:
        assert await pool.renew("slow-worker", entry) == [entry]
        await anyio.sleep(0.05)
        # The slow worker was paused past its lease: another one reclaims the entry.
        assert [i for i, _ in await pool.claim_idle("rescuer", 10)] == [entry]
        assert await pool.renew("slow-worker", entry) == []  # it learns it lost it
        assert await pool.renew("rescuer", entry) == [entry]
        assert await pool.renew("nobody", "0-1") == []
    finally:
        await pool.aclose()


@pytest.mark.parametrize("policy", ["reject", "enqueue"])
async def test_policies_ignore_runs_of_a_closed_session_that_ended_them(
    bus: ait.Bus, channel_name: str, policy: str
) -> None:
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name) as first_agent:
        _, event = await publish_input(channel)
        run = first_agent.create_run(invocation(channel, event))
        await run.start()
        await run.pipe(slow(3).stream())
    # Closing the session ended the open run (agent-stopped): nothing is active.
    async with ait.AgentSession(bus, channel_name) as second_agent:
        assert await second_agent.active_runs() == {}
        _, later = await publish_input(channel, multitask=policy)
        fresh = second_agent.create_run(invocation(channel, later))
        with anyio.fail_after(5):
            await fresh.start()
        await fresh.end()
