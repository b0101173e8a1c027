"""The bus's bounded pool of command connections, on a real redis-server.

At most `max_connections` connections; a burst waits for a free one, first come first
served, up to `command_timeout`; a waiter that gives up (cancelled, timed out) never takes
a connection with it.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import ait
from ait.events import Input
from ait.ids import new_id


def pool_of(bus: ait.Bus) -> Any:
    return bus.handle.client.connection_pool


def counts(bus: ait.Bus) -> tuple[int, int]:
    """(connections in use, connections idle) of the bus's command pool."""
    pool = pool_of(bus)
    return len(pool._in_use_connections), len(pool._available_connections)


def message() -> Input:
    return Input(event_id=new_id(), message_id=new_id(), role="user", client_id="c", payload=[])


async def wait_for_waiters(bus: ait.Bus, n: int) -> None:
    with anyio.fail_after(2):
        while len(pool_of(bus)._waiters) < n:
            await anyio.sleep(0.001)


async def test_a_burst_shares_the_connections(redis_url: str, channel_name: str) -> None:
    async with ait.Bus.from_url(redis_url, max_connections=2) as bus:
        channel = bus.channel(channel_name)
        most = 0

        async def publish(count: int) -> None:
            nonlocal most
            for _ in range(count):
                await channel.publish(message())
                most = max(most, counts(bus)[0])

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(publish, 10)
        assert await bus.handle.client.xlen(channel.key) == 200
        assert most == 2  # both were used, never a third
        assert counts(bus) == (0, 2)


async def test_waiters_are_served_in_order(redis_url: str) -> None:
    async with ait.Bus.from_url(redis_url, max_connections=1) as bus:
        pool = pool_of(bus)
        held = await pool.get_connection()
        served: list[int] = []

        async def command(n: int) -> None:
            await bus.handle.client.ping()
            served.append(n)

        async with anyio.create_task_group() as tg:
            for n in range(5):
                tg.start_soon(command, n)
                await wait_for_waiters(bus, n + 1)
            await pool.release(held)
        assert served == [0, 1, 2, 3, 4]
        assert counts(bus) == (0, 1)


async def test_no_free_connection_in_time_is_a_timeout(redis_url: str, channel_name: str) -> None:
    async with ait.Bus.from_url(redis_url, max_connections=1, command_timeout=0.2) as bus:
        pool = pool_of(bus)
        held = await pool.get_connection()
        with pytest.raises(ait.BusTimeoutError, match="no connection of the pool became free"):
            await bus.channel(channel_name).publish(message())
        assert len(pool._waiters) == 0
        await pool.release(held)
        await bus.channel(channel_name).publish(message())  # the pool works on
        assert counts(bus) == (0, 1)


async def test_a_cancelled_waiter_takes_no_connection(redis_url: str) -> None:
    async with ait.Bus.from_url(redis_url, max_connections=1) as bus:
        pool = pool_of(bus)
        held = await pool.get_connection()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(bus.handle.client.ping)
                await wait_for_waiters(bus, 1)
                scope.cancel()
        await pool.release(held)
        assert counts(bus) == (0, 1)
        assert await bus.handle.client.ping()


async def test_a_waiter_cancelled_as_it_is_handed_a_connection_passes_it_on(
    redis_url: str,
) -> None:
    """The release hands the connection over, and the waiter is cancelled before it runs:
    the connection goes to the next waiter, not nowhere."""
    async with ait.Bus.from_url(redis_url, max_connections=1) as bus:
        pool = pool_of(bus)
        held = await pool.get_connection()
        served: list[str] = []

        async def command(name: str) -> None:
            await bus.handle.client.ping()
            served.append(name)

        async with anyio.create_task_group() as tg:
            async with anyio.create_task_group() as first:
                first.start_soon(command, "first")
                await wait_for_waiters(bus, 1)
                tg.start_soon(command, "second")
                await wait_for_waiters(bus, 2)
                await pool.release(held)  # to the first waiter...
                first.cancel_scope.cancel()  # ...cancelled before it could use it
        assert served == ["second"]
        assert counts(bus) == (0, 1)
