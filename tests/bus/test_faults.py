"""Faults on a real redis-server of the test's own: crashes, restarts, hangs, cancellation.

Marked `fault` so they can be looped on their own: `scripts/test -m fault --count ...`.
"""

from __future__ import annotations

import contextlib
import os
import signal

import anyio
import pytest
import redis.asyncio as aioredis
import redis.exceptions as rexc

import ait
from ait.bus import Subscription
from ait.testing import EmbeddedRedis

from .helpers import inp

pytestmark = pytest.mark.fault


async def collect(sub: Subscription, into: list[ait.Entry], n: int) -> None:
    async for entry in sub:
        into.append(entry)
        if len(into) == n:
            return


async def wait_for(predicate: object, timeout: float = 10) -> None:
    assert callable(predicate)
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


async def test_subscriber_survives_sigkill_and_restart_with_aof(
    persistent_redis: EmbeddedRedis, channel_name: str
) -> None:
    """(a) kill -9 mid-subscription, restart on the same socket: exactly the sequence."""
    errors: list[BaseException] = []
    async with ait.Bus.from_url(persistent_redis.url, on_error=errors.append) as bus:
        channel = bus.channel(channel_name)
        published: list[str] = []
        got: list[ait.Entry] = []
        async with channel.subscribe() as sub, anyio.create_task_group() as tg:
            tg.start_soon(collect, sub, got, 40)
            for i in range(20):
                published.append(await channel.publish(inp(i)))
            await wait_for(lambda: len(got) == 20)
            await anyio.sleep(0.05)  # the reader is blocked in XREAD again

            persistent_redis.kill()
            with pytest.raises(ait.BusConnectionError):
                await channel.publish(inp(-1))
            await anyio.to_thread.run_sync(persistent_redis.start)

            for i in range(20, 40):
                published.append(await _publish_retrying(channel, inp(i)))
            with anyio.fail_after(15):
                await wait_for(lambda: len(got) == 40)
    assert [entry_id for entry_id, _ in got] == published
    assert [event for _, event in got] == [inp(i) for i in range(40)]
    assert any(isinstance(e, ait.BusConnectionError) for e in errors), "the drop was reported"


async def test_publish_with_redis_down_fails_fast_with_a_bus_error(
    ephemeral_redis: EmbeddedRedis, channel_name: str
) -> None:
    """(b) Redis gone at publish time: a typed error within a bounded time."""
    async with ait.Bus.from_url(ephemeral_redis.url, command_timeout=1.0) as bus:
        channel = bus.channel(channel_name)
        await channel.publish(inp(0))
        ephemeral_redis.kill()
        with anyio.fail_after(3):
            with pytest.raises(ait.BusConnectionError, match="unable to publish"):
                await channel.publish(inp(1))
            with pytest.raises(ait.BusConnectionError):
                await channel.publish_many([inp(2), inp(3)])
            with pytest.raises(ait.BusConnectionError):
                await channel.history()


async def test_publish_to_a_hung_redis_times_out(
    ephemeral_redis: EmbeddedRedis, channel_name: str
) -> None:
    """(b) Redis alive but not answering (SIGSTOP): BusTimeoutError after command_timeout."""
    async with ait.Bus.from_url(ephemeral_redis.url, command_timeout=0.5) as bus:
        channel = bus.channel(channel_name)
        await channel.publish(inp(0))
        assert ephemeral_redis.pid is not None
        os.kill(ephemeral_redis.pid, signal.SIGSTOP)
        try:
            with anyio.fail_after(3), pytest.raises(ait.BusTimeoutError):
                await channel.publish(inp(1))
        finally:
            os.kill(ephemeral_redis.pid, signal.SIGCONT)


async def test_open_with_redis_unreachable_is_a_clear_error(tmp_path: object) -> None:
    bus = ait.Bus.from_url(f"unix://{tmp_path}/nothing-here.sock")
    with pytest.raises(ait.BusConnectionError, match="unable to connect to Redis at unix://"):
        await bus.__aenter__()
    assert bus.state == "closed"


async def test_writer_surfaces_a_failed_write_and_hands_back_events(
    ephemeral_redis: EmbeddedRedis, channel_name: str
) -> None:
    async with ait.Bus.from_url(ephemeral_redis.url) as bus:
        channel = bus.channel(channel_name)
        async with channel.writer() as out:
            out.send(inp(0))
            await out.flush()
            ephemeral_redis.kill()
            out.send(inp(1))
            out.send(inp(2))
            with pytest.raises(ait.WriteFailed) as info:
                await out.flush()
            assert info.value.unsent == [inp(1), inp(2)]
            assert isinstance(info.value.cause, ait.BusConnectionError)
            await anyio.to_thread.run_sync(ephemeral_redis.start)
            out.send(inp(3))
            await out.flush()
        assert [event for _, event in await channel.read()] == [inp(3)]


async def test_restart_without_persistence_is_reported_as_continuity_lost(
    ephemeral_redis: EmbeddedRedis, channel_name: str
) -> None:
    """(e) the stream vanished: say so, never silently follow a different history."""
    async with ait.Bus.from_url(ephemeral_redis.url, on_error=lambda e: None) as bus:
        channel = bus.channel(channel_name)
        async with channel.subscribe() as sub:
            first = await channel.publish_many([inp(0), inp(1)])
            got: list[ait.Entry] = []
            await collect(sub, got, 2)
            assert [i for i, _ in got] == first

            ephemeral_redis.kill()
            await anyio.to_thread.run_sync(ephemeral_redis.start)
            second = [await _publish_retrying(channel, inp(i)) for i in (10, 11)]

            with anyio.fail_after(10), pytest.raises(ait.ContinuityLost) as info:
                await sub.__anext__()
            assert info.value.last_id == first[-1]
            assert "reset" in info.value.reason
            # iterating again follows the new stream from its start
            after: list[ait.Entry] = []
            with anyio.fail_after(10):
                await collect(sub, after, 2)
            assert [i for i, _ in after] == second


async def test_a_reset_before_the_shared_reader_first_connects_is_continuity_lost(
    ephemeral_redis: EmbeddedRedis, channel_name: str
) -> None:
    """The subscription checked its cursor (on the command pool), then Redis restarted empty
    before the shared reader's first connection: the new stream must not be taken for the
    old one."""
    async with ait.Bus.from_url(ephemeral_redis.url, on_error=lambda e: None) as bus:
        channel = bus.channel(channel_name)
        first = await channel.publish(inp(0))
        connect = bus.handle.reader_connection
        may_connect = anyio.Event()

        async def held_connection(key: str) -> object:
            await may_connect.wait()
            return await connect(key)

        bus.handle.reader_connection = held_connection  # type: ignore[method-assign]
        got: list[ait.Entry] = []
        lost: list[ait.ContinuityLost] = []

        async def follow(sub: Subscription) -> None:
            while len(got) < 1:
                try:
                    got.append(await sub.__anext__())
                except ait.ContinuityLost as exc:
                    lost.append(exc)

        async with channel.subscribe(after=first) as sub, anyio.create_task_group() as tg:
            tg.start_soon(follow, sub)
            await anyio.sleep(0.3)  # the subscription checks its cursor, then waits
            ephemeral_redis.kill()
            await anyio.to_thread.run_sync(ephemeral_redis.start)
            second = await _publish_retrying(channel, inp(1))
            may_connect.set()
            with anyio.fail_after(10):
                await wait_for(lambda: got)
        assert [exc.last_id for exc in lost] == [first]
        assert [i for i, _ in got] == [second]


async def test_cursor_trimmed_while_detached_is_continuity_lost(
    redis_url: str, channel_name: str
) -> None:
    async with ait.Bus.from_url(redis_url) as bus:
        channel = bus.channel(channel_name)
        async with channel.subscribe(buffer=1) as slow, channel.subscribe() as fast:
            ids = [await channel.publish(inp(0))]
            got: list[ait.Entry] = []
            await collect(slow, got, 1)
            await collect(fast, [], 1)
            for i in range(1, 4):
                ids.append(await channel.publish(inp(i)))
                await collect(fast, [], 1)
            # slow holds at most one batch, so it was detached; then everything is trimmed
            await bus.handle.client.execute_command("XTRIM", channel.key, "MAXLEN", 1)
            with pytest.raises(ait.SubscriberLagged):
                async for entry in slow:
                    got.append(entry)
            with pytest.raises(ait.ContinuityLost, match="trimmed"):
                await slow.__anext__()
            rest: list[ait.Entry] = []
            await collect(slow, rest, 1)
            assert [i for i, _ in rest] == ids[-1:]


async def test_cancelled_publisher_and_subscriber_leave_the_bus_usable(
    redis_url: str, channel_name: str
) -> None:
    async with ait.Bus.from_url(redis_url) as bus:
        channel = bus.channel(channel_name)
        async with anyio.create_task_group() as tg:

            async def subscriber() -> None:
                async with channel.subscribe() as sub:
                    await collect(sub, [], 10_000)

            async def publisher() -> None:
                while True:
                    await channel.publish(inp(1))

            tg.start_soon(subscriber)
            tg.start_soon(publisher)
            await anyio.sleep(0.2)
            tg.cancel_scope.cancel()
        assert bus.hub.busy_connections == 0
        async with channel.subscribe() as sub:
            entry_id = await channel.publish(inp(2))
            got: list[ait.Entry] = []
            with anyio.fail_after(5):
                await collect(sub, got, 1)
            assert got[0][0] == entry_id


async def _publish_retrying(channel: ait.Channel, event: ait.Event) -> str:
    with anyio.fail_after(10):
        while True:
            try:
                return await channel.publish(event)
            except ait.BusConnectionError:
                await anyio.sleep(0.05)


async def test_lone_lagging_subscriber_learns_of_a_trim(redis_url: str, channel_name: str) -> None:
    """Alone on its channel, a lagged subscriber rejoins with its own cursor: it must check
    that its cursor still exists instead of letting XREAD skip the trimmed range."""
    async with ait.Bus.from_url(redis_url, subscriber_buffer=1) as bus:
        channel = bus.channel(channel_name)
        async with channel.subscribe() as sub:
            await channel.publish(inp(0))
            got: list[ait.Entry] = []
            await collect(sub, got, 1)
            for i in range(1, 4):
                await channel.publish(inp(i))
                await anyio.sleep(0.05)  # one batch each: the second one overflows
            await bus.handle.client.execute_command("XTRIM", channel.key, "MAXLEN", 1)
            with pytest.raises(ait.SubscriberLagged):
                async for entry in sub:
                    got.append(entry)
            with pytest.raises(ait.ContinuityLost):
                await sub.__anext__()


async def test_resuming_from_a_trimmed_cursor_is_continuity_lost(
    redis_url: str, channel_name: str
) -> None:
    async with ait.Bus.from_url(redis_url) as bus:
        channel = bus.channel(channel_name)
        ids = await channel.publish_many([inp(i) for i in range(20)])
        await bus.handle.client.execute_command("XTRIM", channel.key, "MAXLEN", 5)
        async with channel.subscribe(after=ids[3]) as sub:
            with pytest.raises(ait.ContinuityLost, match="trimmed"):
                await sub.__anext__()
            rest: list[ait.Entry] = []
            await collect(sub, rest, 5)
            assert [i for i, _ in rest] == ids[-5:]
        # a cursor that still exists resumes normally, and 0-0 means "from the start"
        async with channel.subscribe(after=ids[-3]) as sub:
            got: list[ait.Entry] = []
            await collect(sub, got, 2)
            assert [i for i, _ in got] == ids[-2:]


async def test_a_channel_this_user_may_not_read_is_left_and_the_others_go_on(
    ephemeral_redis: EmbeddedRedis, channel_name: str
) -> None:
    """An ACL lets the user read `*-good*` keys only: the shared XREAD over both channels
    fails (NOPERM), the bad one is left with a BusError, the good one goes on."""
    url = ephemeral_redis.url
    async with ait.Bus.from_url(url) as admin:
        acl = "ACL SETUSER limited on >secret ~*-good* +@all"
        await admin.handle.client.execute_command(*acl.split())
    limited = url.replace("unix://", "unix://limited:secret@", 1)
    async with ait.Bus.from_url(limited) as bus:
        good, bad = bus.channel(channel_name + "-good"), bus.channel(channel_name + "-bad")
        async with good.subscribe() as good_sub, bad.subscribe(after="0-0") as bad_sub:
            with anyio.fail_after(10), pytest.raises(ait.BusError, match="permission"):
                await bad_sub.__anext__()
            entry_id = await good.publish(inp(1))
            got: list[ait.Entry] = []
            with anyio.fail_after(10):
                await collect(good_sub, got, 1)
            assert [i for i, _ in got] == [entry_id]


async def test_a_busy_server_is_waited_out_not_blamed_on_a_channel(
    ephemeral_redis: EmbeddedRedis, channel_name: str
) -> None:
    """A script running long makes Redis answer every command BUSY, the lone read of each
    key too, yet no key is at fault: the subscription waits, as for Redis away."""
    url = ephemeral_redis.url
    errors: list[BaseException] = []
    raw = aioredis.Redis.from_url(url)
    script = aioredis.Redis.from_url(url, socket_timeout=30)

    async def run_script() -> None:
        with contextlib.suppress(rexc.ResponseError):  # killed by SCRIPT KILL
            await script.eval("while true do end", 0)

    try:
        await raw.config_set("busy-reply-threshold", 20)
        async with (
            ait.Bus.from_url(url, on_error=errors.append) as bus,
            anyio.create_task_group() as tg,
        ):
            channel = bus.channel(channel_name)
            tg.start_soon(run_script)
            try:
                await _until(raw, busy=True)
                # Subscribed while Redis is busy: the shared reader's first commands fail.
                async with channel.subscribe(after="0-0") as sub:
                    await wait_for(lambda: any("BUSY" in str(e) for e in errors))
                    await anyio.sleep(0.3)  # a few more attempts, backing off
                    assert bus.hub.busy_connections == 1  # it still follows the channel
                    await _kill_script(raw)
                    entry_id = await channel.publish(inp(1))
                    got: list[ait.Entry] = []
                    with anyio.fail_after(10):
                        await collect(sub, got, 1)  # no BusError: the channel was kept
                    assert [i for i, _ in got] == [entry_id]
            finally:
                await _kill_script(raw)  # whatever happened, leave the server usable
    finally:
        await raw.aclose()
        await script.aclose()


async def _kill_script(client: aioredis.Redis) -> None:
    with contextlib.suppress(rexc.ResponseError):  # NOTBUSY: none runs
        await client.script_kill()
    await _until(client, busy=False)


async def _until(client: aioredis.Redis, *, busy: bool) -> None:
    """Until Redis answers BUSY (a script runs past the threshold), or answers again."""
    with anyio.fail_after(10):
        while True:
            try:
                await client.ping()
                if not busy:
                    return
            except rexc.ResponseError as exc:
                if busy and "BUSY" in str(exc):
                    return
            await anyio.sleep(0.01)
