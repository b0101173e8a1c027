"""Faults on a real redis-server of the test's own: crashes, restarts, hangs, cancellation.

Marked `fault` so they can be looped on their own: `scripts/test -m fault --count ...`.
"""

from __future__ import annotations

import os
import signal

import anyio
import pytest

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
