"""Faults: Redis killed mid-stream, reader connections dropped, a subscriber detached as
lagged, a stream lost to a restart without persistence, and a client that never reads its
changes. After each, clients agree with the channel and keep working."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

import ait
from ait._constants import READER_COUNT
from ait.client import ClientSession, SessionError
from ait.ids import new_id
from ait.testing import ScriptedProvider

from .helpers import (
    Agent,
    Connect,
    assert_converged,
    default_view,
    dump,
    ended,
    events,
    fold,
    reopening,
    retrying,
    seed,
    serving,
    shown,
    wait_for,
)

FAST_FAILING = {"command_timeout": 2.0, "connect_timeout": 1.0}


def streaming_text(session: ClientSession) -> str:
    messages = session.view.messages
    return messages[-1].text if messages and messages[-1].role == "assistant" else ""


@pytest.mark.fault
async def test_redis_killed_and_restarted_mid_stream(
    persistent_redis: ait.EmbeddedRedis, channel_name: str
) -> None:
    url = persistent_redis.url
    pool = f"pool-{new_id()[:12]}"
    provider = ScriptedProvider([f"w{i} " for i in range(400)], delay=0.003)
    bus_errors: list[BaseException] = []
    # The agent and the clients are different processes: each has its own bus.
    async with (
        ait.Bus.from_url(url, **FAST_FAILING) as agent_bus,
        ait.Bus.from_url(url, on_error=bus_errors.append, **FAST_FAILING) as client_bus,
        ClientSession(client_bus, channel_name, client_id="alice", pool=pool) as alice,
        ClientSession(client_bus, channel_name, client_id="bob", pool=pool) as bob,
    ):
        channel = client_bus.channel(channel_name)
        # The run ends one way or another: complete if no write fell in the outage, else
        # its pipe saw the failure and the run ended with an error, or could not be ended
        # at all (see test_the_worker_survives_a_redis_outage): assert about the clients.
        async with serving(agent_bus, pool, provider=provider, survive_crash=True) as agent:
            active = await alice.view.send("stream through a crash")
            await wait_for(lambda: len(streaming_text(bob)) > 100)
            persistent_redis.kill()
            await anyio.sleep(0.3)
            await anyio.to_thread.run_sync(persistent_redis.start)
            assert agent.worker is not None
            worker = agent.worker
            await wait_for(
                lambda: agent.crashed is not None or (agent.results and worker.busy == 0),
                timeout=30,
            )
            await assert_converged(channel, alice, bob)
        assert bus_errors, "the clients' readers should have reported the outage"
        assert active.input_event_id in {e.event_id for e in await events(channel, "input")}

        # A fresh client folds the same; with a (restarted) agent, a new exchange works.
        async with (
            serving(agent_bus, pool, provider=ScriptedProvider(["back", " again"])),
            reopening(client_bus, channel_name, client_id="carol", pool=pool) as carol,
        ):
            assert dump(carol.tree) == dump(alice.tree)
            assert shown(carol.view) == shown(alice.view)
            again = await retrying(lambda: carol.view.send("are you there?"))
            assert (await ended(again)).status == "complete"
            await assert_converged(channel, alice, bob, carol)
        assert alice.view.messages[-1].text == "back again"


@pytest.mark.fault
async def test_the_worker_survives_a_redis_outage(
    persistent_redis: ait.EmbeddedRedis, channel_name: str
) -> None:
    pool = f"pool-{new_id()[:12]}"
    provider = ScriptedProvider([f"w{i} " for i in range(400)], delay=0.003)
    # Runs that give up on Redis at once: this is about the worker when its runs fail.
    quick = {"outage_bound": 0.3}
    async with (
        ait.Bus.from_url(persistent_redis.url, **FAST_FAILING) as bus,
        ClientSession(bus, channel_name, client_id="alice", pool=pool) as alice,
        serving(bus, pool, provider=provider, survive_crash=True, session_options=quick) as agent,
    ):
        await alice.view.send("stream through a crash")
        await wait_for(lambda: len(streaming_text(alice)) > 100)
        persistent_redis.kill()
        await wait_for(lambda: agent.results)  # the pipe saw the failed write...
        await anyio.sleep(0.2)  # ...and the handler's run.end failed too
        await anyio.to_thread.run_sync(persistent_redis.start)
        crashed = agent.crashed
        if crashed is None:
            provider.tokens = ["still", " serving"]
            again = await retrying(lambda: alice.view.send("are you there?"))
            info = await ended(again)
            assert info.status == "complete"
            assert alice.view.messages[-1].text == "still serving"
    # Asserted outside the worker's task group, so the failure is plain.
    assert crashed is None, f"the worker died: {crashed!r}"


async def test_reader_connections_dropped_mid_stream(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    """Every blocking XREAD connection killed while a run streams (the clients' and the
    agent session's): subscriptions resume from their last id, no gap, no duplicate."""
    agent.provider = ScriptedProvider([f"w{i} " for i in range(400)], delay=0.002)
    alice = await connect("alice")
    bob = await connect("bob")
    active = await alice.view.send("go")
    client = bus.handle.client
    for _ in range(3):
        await wait_for(lambda: len(streaming_text(bob)) > 0)
        before = len(streaming_text(bob))
        await wait_for(lambda b=before: len(streaming_text(bob)) > b + 30)
        listing = (await client.execute_command("CLIENT", "LIST")).decode()
        readers = [
            line.split("id=")[1].split(" ")[0]
            for line in listing.splitlines()
            if "cmd=xread" in line
        ]
        assert readers, "the shared readers should be blocked in XREAD"
        for reader in readers:
            await client.execute_command("CLIENT", "KILL", "ID", reader)
    info = await ended(active)
    assert info.status == "complete"
    await assert_converged(bus.channel(channel_name), alice, bob)
    assert bob.view.messages[-1].text == "".join(f"w{i} " for i in range(400))


async def test_a_lagged_subscription_catches_up_without_loss(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    """The shared reader detaches a subscriber whose buffer is full; the session catches up
    from its own cursor (here the detach is triggered by hand, mid-stream, twice)."""
    agent.provider = ScriptedProvider([f"w{i} " for i in range(300)], delay=0.002)
    reported: list[SessionError] = []
    alice = await connect("alice", on_error=reported.append)
    active = await alice.view.send("go")
    sub = alice._sub  # pyright: ignore[reportPrivateUsage]
    assert sub is not None
    for threshold in (20, 200):
        await wait_for(lambda t=threshold: len(streaming_text(alice)) > t)
        bus.hub.detach(sub.channel.key, sub)  # what the hub does to a full subscriber
        sub.detached()
    info = await ended(active)
    assert info.status == "complete"
    await assert_converged(bus.channel(channel_name), alice)
    assert reported == []  # lagging is recovered from, not an error


async def test_a_channel_redis_refuses_is_reported_and_followed_again(
    redis_url: str, channel_name: str
) -> None:
    """The channel's key is overwritten with a string: Redis refuses to read it (WRONGTYPE).
    The session reports it, lives on, and follows the channel again once it is a stream."""
    reported: list[SessionError] = []
    async with (
        ait.Bus.from_url(redis_url, reader_block_ms=200) as bus,  # SET wakes no XREAD
        ClientSession(
            bus, channel_name, client_id="alice", invoke=None, on_error=reported.append
        ) as alice,
    ):
        channel = bus.channel(channel_name)
        await seed(channel, 1)
        await wait_for(lambda: len(alice.tree) == 2)
        await bus.handle.client.execute_command("SET", channel.key, "not a stream")
        await wait_for(lambda: any("WRONGTYPE" in str(e) for e in reported))
        assert all(type(e) is ait.BusError for e in reported)

        await bus.handle.client.execute_command("DEL", channel.key)
        new = await seed(channel, 1)
        await wait_for(lambda: alice.tree.message(new[0][1]) is not None, 15)
        await assert_converged(channel, alice)
        assert any(isinstance(e, ait.ContinuityLost) for e in reported)  # the old stream went


@pytest.mark.fault
async def test_a_stream_lost_to_a_restart_is_reported_and_rebuilt(
    ephemeral_redis: ait.EmbeddedRedis, channel_name: str
) -> None:
    reported: list[SessionError] = []
    async with (
        ait.Bus.from_url(ephemeral_redis.url, **FAST_FAILING) as bus,
        ClientSession(
            bus, channel_name, client_id="alice", invoke=None, on_error=reported.append
        ) as alice,
    ):
        channel = bus.channel(channel_name)
        old = await seed(channel, 5)
        await wait_for(lambda: len(alice.tree) == 10)
        changes: list[ait.ViewChange] = []
        alice.view.on_change(changes.append)

        ephemeral_redis.kill()  # no persistence: everything is gone
        await anyio.to_thread.run_sync(ephemeral_redis.start)
        new = await retrying(lambda: seed(channel, 2))

        await wait_for(lambda: any(isinstance(e, ait.ContinuityLost) for e in reported), 15)
        (lost,) = [e for e in reported if isinstance(e, ait.ContinuityLost)]
        assert channel_name in str(lost)
        await assert_converged(channel, alice)
        assert {m.id for m in alice.view.messages} == {i for pair in new for i in pair}
        assert all(alice.tree.message(i) is None for pair in old for i in pair)
        assert shown(alice.view) == default_view(await fold(channel))
        assert any(change.kind == "structure" for change in changes)

        # errors() has it too, for a reader that comes late.
        async def first_lost() -> ait.ContinuityLost:
            async for error in alice.errors():
                if isinstance(error, ait.ContinuityLost):
                    return error
            raise AssertionError("errors() ended without the ContinuityLost")

        assert await first_lost() is lost
        # And the session still writes.
        written = await alice.view.send("after the reset")
        await wait_for(lambda: not alice.tree.snapshot(written.message_id).optimistic)
        assert alice.view.messages[-1].parent == new[-1][1]


async def test_a_slow_client_stays_bounded(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    """A UI that never reads its changes: the queue collapses at its buffer, the
    subscription's buffer stays bounded, and Redis grows with the stream only."""
    tokens = [f"t{i} " for i in range(4000)]
    agent.provider = ScriptedProvider(tokens, delay=0.0002)
    client = bus.handle.client
    channel = bus.channel(channel_name)
    slow = await connect("slow", invoke=None)
    changes = slow.view.changes(buffer=32)  # never consumed
    other_view = slow.create_view()
    other_changes = other_view.changes()  # default buffer, never consumed either
    alice = await connect("alice")

    async def memory() -> int:
        return int((await client.execute_command("INFO", "memory"))["used_memory"])

    used_before = await memory()
    sub = slow._sub  # pyright: ignore[reportPrivateUsage]
    assert sub is not None
    peaks: dict[str, int] = {"queue": 0, "other": 0, "buffer": 0, "ready": 0}

    def sample() -> None:
        queue = len(changes._queue)  # pyright: ignore[reportPrivateUsage]
        peaks["queue"] = max(peaks["queue"], queue)
        peaks["other"] = max(peaks["other"], len(other_changes._queue))  # pyright: ignore[reportPrivateUsage]
        inbox = sub._inbox  # pyright: ignore[reportPrivateUsage]
        if inbox is not None:
            peaks["buffer"] = max(peaks["buffer"], inbox.entries)
        peaks["ready"] = max(peaks["ready"], len(sub._ready))  # pyright: ignore[reportPrivateUsage]

    active = await alice.view.send("a long answer")
    info: ait.RunInfo | None = None
    async with anyio.create_task_group() as tg:

        async def sampler() -> None:
            while True:
                sample()
                await anyio.lowlevel.checkpoint()

        tg.start_soon(sampler)
        info = await ended(active)
        await assert_converged(channel, slow, alice)
        tg.cancel_scope.cancel()

    assert info is not None and info.status == "complete"
    entries = await channel.length()
    assert entries > 100  # many entries: the bound was really exercised
    assert peaks["queue"] == 32  # it filled, and collapsed instead of growing
    assert len(changes._queue) <= 32  # pyright: ignore[reportPrivateUsage]
    assert changes._queue[0].kind == "structure"  # pyright: ignore[reportPrivateUsage]
    assert peaks["other"] <= 256
    assert peaks["buffer"] <= max(bus.subscriber_buffer, READER_COUNT)
    assert peaks["ready"] <= 1024
    assert slow.view.messages[-1].text == "".join(tokens)  # nothing was lost meanwhile

    stream_bytes = int(await client.execute_command("MEMORY", "USAGE", channel.key))
    used_after = await memory()
    # Redis grew by the stream (plus the allocator's slack), not by buffers for a slow reader.
    assert used_after - used_before < stream_bytes + 1_000_000
    keys = await client.execute_command("KEYS", f"ait:{{{channel_name}}}:*")
    assert sorted(k.decode() for k in keys) == [channel.key]

    # A consumer that finally reads gets a re-render, then live changes again.
    first = await changes.__anext__()
    assert first.kind == "structure"
