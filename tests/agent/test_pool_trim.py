"""Trimming the invocation queue: `Pool.trim()` and the worker's periodic trim.

Every test reads the real stream afterwards (its ids, not just a count), so it fails both
when trimming removes too much (a pending or undelivered entry is gone) and when it removes
nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

import ait
from ait.ids import new_id
from ait.testing import EmbeddedRedis

from ..bus.test_cluster import cluster_url as cluster_url
from .helpers import Ticker, enqueue_input, pool_name, serving, wait_for


@pytest.fixture
async def pool(any_bus: ait.Bus) -> AsyncIterator[ait.Pool]:
    """A fresh pool on either bus; its reader connection closed afterwards."""
    opened = any_bus.pool(pool_name())
    try:
        yield opened
    finally:
        await opened.aclose()


def invocation() -> ait.Invocation:
    return ait.Invocation(channel="chat-trim", input_event_id=new_id())


async def fill(pool: ait.Pool, n: int) -> list[str]:
    return [await pool.enqueue(invocation()) for _ in range(n)]


async def stream_ids(bus: ait.Bus, pool: ait.Pool) -> list[str]:
    """The ids left in the queue's stream, read straight from Redis."""
    raw: Any = await bus.handle.client.execute_command("XRANGE", pool.key, "-", "+")
    return [entry_id.decode() for entry_id, _ in raw]


async def test_acknowledged_entries_are_trimmed(any_bus: ait.Bus, pool: ait.Pool) -> None:
    ids = await fill(pool, 5)
    taken = await pool.read("w1", 5, 1)
    assert [entry_id for entry_id, _ in taken] == ids
    await pool.ack(*ids)

    assert await pool.trim() == 5
    assert await stream_ids(any_bus, pool) == []
    assert await pool.trim() == 0  # nothing left to do

    # The emptied queue works on: a new invocation is delivered, and trimmed once acked.
    (later,) = await fill(pool, 1)
    assert [entry_id for entry_id, _ in await pool.read("w1", 5, 1)] == [later]
    await pool.ack(later)
    assert await pool.trim() == 1
    assert await pool.length() == 0


async def test_pending_and_undelivered_entries_are_kept(any_bus: ait.Bus, pool: ait.Pool) -> None:
    ids = await fill(pool, 10)
    await pool.read("w1", 6, 1)  # ids[0:6] delivered, ids[6:] not yet
    await pool.ack(ids[0], ids[1], ids[3])  # ids[2], ids[4], ids[5] still pending

    # Only what precedes the oldest pending entry goes; an acknowledged entry after it
    # (ids[3]) waits for the next trim.
    assert await pool.trim() == 2
    assert await stream_ids(any_bus, pool) == ids[2:]

    # The pending entries are still there to reclaim, whole, and the rest to read.
    reclaimed = await pool.claim_idle("w2", 0)
    assert [entry_id for entry_id, _ in reclaimed] == [ids[2], ids[4], ids[5]]
    assert all(isinstance(entry, ait.Invocation) for _, entry in reclaimed)
    fresh = await pool.read("w2", 10, 1)
    assert [entry_id for entry_id, _ in fresh] == ids[6:]
    assert all(isinstance(entry, ait.Invocation) for _, entry in fresh)

    await pool.ack(ids[2], ids[4])
    assert await pool.trim() == 3  # up to ids[5], still pending
    assert await stream_ids(any_bus, pool) == ids[5:]
    await pool.ack(*ids[5:])
    assert await pool.trim() == 5
    assert await pool.length() == 0


async def test_undelivered_entries_are_kept_when_nothing_is_pending(
    any_bus: ait.Bus, pool: ait.Pool
) -> None:
    ids = await fill(pool, 6)
    await pool.read("w1", 3, 1)
    await pool.ack(*ids[:3])

    assert await pool.trim() == 3
    assert await stream_ids(any_bus, pool) == ids[3:]
    assert [entry_id for entry_id, _ in await pool.read("w1", 10, 1)] == ids[3:]


async def test_a_queue_with_no_stream_or_no_group_is_left_alone(any_bus: ait.Bus) -> None:
    unused = any_bus.pool(pool_name())
    assert await unused.trim() == 0
    assert await any_bus.handle.client.exists(unused.key) == 0  # trim created nothing

    empty = any_bus.pool(pool_name())
    await empty.ensure_group()
    assert await empty.trim() == 0

    # Queued before any worker created the group: nothing was delivered, nothing is done.
    ungrouped = any_bus.pool(pool_name())
    ids = await fill(ungrouped, 3)
    assert await ungrouped.trim() == 0
    assert await stream_ids(any_bus, ungrouped) == ids


async def test_every_group_must_be_done_with_an_entry(any_bus: ait.Bus, pool: ait.Pool) -> None:
    """Other groups of your own (an archiver, an auditor) keep what they have not finished.

    XINFO GROUPS lists groups by name: the lagging one comes after `workers`, the done one
    before, so that a trim looking at fewer than all groups fails here.
    """
    ids = await fill(pool, 4)
    client = any_bus.handle.client

    async def consume(group: str, count: int, *acked: str) -> None:
        await client.execute_command(
            "XREADGROUP", "GROUP", group, "c1", "COUNT", count, "STREAMS", pool.key, ">"
        )
        if acked:
            await client.execute_command("XACK", pool.key, group, *acked)

    for group in ("archive", "zaudit"):
        await client.execute_command("XGROUP", "CREATE", pool.key, group, "0")
    await consume("archive", 4, *ids)
    await pool.read("w1", 4, 1)
    await pool.ack(*ids)
    assert await pool.trim() == 0  # zaudit has read nothing
    assert await stream_ids(any_bus, pool) == ids

    await consume("zaudit", 2, ids[0])
    assert await pool.trim() == 1  # ids[1]: read by zaudit, not acknowledged
    assert await stream_ids(any_bus, pool) == ids[1:]


async def test_trim_on_redis_cluster(cluster_url: str) -> None:
    async with ait.Bus.from_url(cluster_url) as bus:
        assert bus.cluster
        pool = bus.pool(pool_name())
        try:
            assert await pool.trim() == 0
            ids = await fill(pool, 4)
            await pool.read("w1", 3, 1)
            await pool.ack(ids[0], ids[2])
            assert await pool.trim() == 1
            assert await stream_ids(bus, pool) == ids[1:]
        finally:
            await pool.aclose()


# -- the worker ------------------------------------------------------------------------------


async def quick(run: ait.Run) -> None:
    await run.start()
    await run.end("complete")


async def test_trim_every_is_checked(bus: ait.Bus) -> None:
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ait.UsageError, match="trim_every"):
            ait.AgentWorker(bus, quick, trim_every=bad)
    assert ait.AgentWorker(bus, quick, trim_every=None).trim_every is None


async def test_the_worker_trims_what_it_acknowledged(any_bus: ait.Bus, channel_name: str) -> None:
    channel = any_bus.channel(channel_name)
    pool_id = pool_name()
    pool = any_bus.pool(pool_id)
    held = Ticker()
    first, first_id = await enqueue_input(any_bus, channel, pool_id, "hold")

    async def handler(run: ait.Run) -> None:
        await run.start()
        if run.invocation.input_event_id == first.event_id:
            await run.pipe(held.stream())  # holds the oldest entry pending
        await run.end("complete")

    queued = [first_id] + [(await enqueue_input(any_bus, channel, pool_id))[1] for _ in range(4)]
    worker = ait.AgentWorker(any_bus, handler, pool=pool_id, concurrency=5, trim_every=0.1)
    async with serving(worker):
        await wait_for(lambda: worker.stats["acked"] == 4)
        await anyio.sleep(0.4)  # several trims: none may touch the pending entry
        assert await stream_ids(any_bus, pool) == queued
        assert worker.stats["trimmed"] == 0

        held.stop()
        await wait_for(lambda: worker.stats["acked"] == 5)
        with anyio.fail_after(5):
            while await pool.length():
                await anyio.sleep(0.02)
        assert worker.stats["trimmed"] == 5

        # Work queued after a trim is still served.
        _, late = await enqueue_input(any_bus, channel, pool_id)
        await wait_for(lambda: worker.stats["acked"] == 6)
        with anyio.fail_after(5):
            while await pool.length():
                await anyio.sleep(0.02)
        assert worker.stats["trimmed"] == 6
        assert late not in await stream_ids(any_bus, pool)


async def test_a_worker_with_trim_every_none_never_trims(bus: ait.Bus, channel_name: str) -> None:
    channel = bus.channel(channel_name)
    pool_id = pool_name()
    queued = [(await enqueue_input(bus, channel, pool_id))[1] for _ in range(3)]
    worker = ait.AgentWorker(bus, quick, pool=pool_id, trim_every=None)
    async with serving(worker):
        await wait_for(lambda: worker.stats["acked"] == 3)
        await anyio.sleep(0.3)
    assert await stream_ids(bus, bus.pool(pool_id)) == queued
    assert worker.stats["trimmed"] == 0
    assert await bus.pool(pool_id).trim() == 3  # they were trimmable: the worker chose not to


async def test_a_failing_trim_is_reported_and_the_worker_serves_on(
    ephemeral_redis: EmbeddedRedis, channel_name: str
) -> None:
    """A user the ACL forbids XTRIM: every trim fails, and the worker keeps working."""
    admin = aioredis.Redis.from_url(ephemeral_redis.url)
    await admin.execute_command(*"ACL SETUSER notrim on >secret ~* +@all -xtrim".split())
    await admin.aclose()
    socket = ephemeral_redis.url.removeprefix("unix://")
    problems: list[BaseException] = []
    async with ait.Bus.from_url(f"unix://notrim:secret@{socket}") as bus:
        channel = bus.channel(channel_name)
        pool_id = pool_name()
        worker = ait.AgentWorker(
            bus, quick, pool=pool_id, trim_every=0.05, on_error=problems.append
        )
        async with serving(worker):
            await enqueue_input(bus, channel, pool_id)
            await wait_for(lambda: worker.stats["acked"] == 1)
            await wait_for(lambda: len(problems) >= 2)  # it tried again after failing
            await enqueue_input(bus, channel, pool_id)
            await wait_for(lambda: worker.stats["acked"] == 2)
        assert all(isinstance(p, ait.BusError) for p in problems), problems
        assert "unable to trim the queue" in str(problems[0])
        assert worker.stats["trimmed"] == 0
        assert await bus.pool(pool_id).length() == 2
        assert await bus.pool(pool_id).pending_count() == 0
