"""Live subscriptions through the shared reader: order, no gap, no duplicate, fan-out."""

from __future__ import annotations

import gc
import math
import tracemalloc
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

import ait
from ait.bus import Subscription

from .helpers import delta, inp


async def take(sub: Subscription, n: int, timeout: float = 10) -> list[ait.Entry]:
    got: list[ait.Entry] = []
    with anyio.fail_after(timeout):
        async for entry in sub:
            got.append(entry)
            if len(got) == n:
                break
    return got


async def test_subscribe_from_now_sees_only_later_entries(
    any_bus: ait.Bus, channel_name: str
) -> None:
    channel = any_bus.channel(channel_name)
    await channel.publish(inp(0))
    async with channel.subscribe() as sub:
        ids = await channel.publish_many([inp(1), inp(2)])
        got = await take(sub, 2)
    assert got == [(ids[0], inp(1)), (ids[1], inp(2))]
    assert sub.last_id == ids[1]


async def test_subscribe_after_id_replays_then_follows(any_bus: ait.Bus, channel_name: str) -> None:
    channel = any_bus.channel(channel_name)
    old = await channel.publish_many([inp(i) for i in range(5)])
    async with channel.subscribe(after=old[1]) as sub:
        new = await channel.publish(inp(5))
        got = await take(sub, 4)
    assert [entry_id for entry_id, _ in got] == [*old[2:], new]


async def test_subscribe_without_enter_opens_on_first_read(
    any_bus: ait.Bus, channel_name: str
) -> None:
    channel = any_bus.channel(channel_name)
    ids = await channel.publish_many([inp(1), inp(2)])
    sub = channel.subscribe(after="0-0")
    try:
        got = await take(sub, 2)
    finally:
        await sub.aclose()
    assert [entry_id for entry_id, _ in got] == ids


async def test_subscribers_at_different_cursors_share_one_reader(
    any_bus: ait.Bus, channel_name: str
) -> None:
    channel = any_bus.channel(channel_name)
    ids = await channel.publish_many([inp(i) for i in range(6)])
    async with (
        channel.subscribe(after="0-0") as from_start,
        channel.subscribe(after=ids[3]) as from_middle,
        channel.subscribe() as from_now,
    ):
        assert any_bus.hub.connections == 1
        more = await channel.publish_many([inp(6), inp(7)])
        a, b, c = await take(from_start, 8), await take(from_middle, 4), await take(from_now, 2)
    assert [i for i, _ in a] == ids + more
    assert [i for i, _ in b] == ids[4:] + more
    assert [i for i, _ in c] == more


async def test_late_joiner_on_followed_channel_gets_the_gap(
    any_bus: ait.Bus, channel_name: str
) -> None:
    """A newcomer whose cursor is behind the shared reader's fetches the range itself."""
    channel = any_bus.channel(channel_name)
    async with channel.subscribe(after="0-0") as first:
        ids = await channel.publish_many([inp(i) for i in range(5)])
        await take(first, 5)
        async with channel.subscribe(after="0-0") as late:
            more = await channel.publish(inp(5))
            got = await take(late, 6)
    assert [i for i, _ in got] == [*ids, more]


async def test_many_channels_use_few_connections(any_bus: ait.Bus) -> None:
    channels = [any_bus.channel(f"many-{ait.ids.new_id()[:8]}-{i}") for i in range(150)]
    subs = [ch.subscribe() for ch in channels]
    for sub in subs:
        await sub.open()
    try:
        assert any_bus.hub.connections == math.ceil(150 / 64)
        ids = [await ch.publish(inp(i)) for i, ch in enumerate(channels)]
        for sub, entry_id in zip(subs, ids, strict=True):
            assert [i for i, _ in await take(sub, 1)] == [entry_id]
    finally:
        for sub in subs:
            await sub.aclose()
    assert any_bus.hub.busy_connections == 0  # kept open a while for the next ones


async def test_joining_a_blocked_reader_wakes_it(redis_url: str, channel_name: str) -> None:
    """With a 60 s block, a new channel is still served at once (CLIENT UNBLOCK)."""
    async with ait.Bus.from_url(redis_url, reader_block_ms=60_000) as bus:
        async with bus.channel(channel_name + "-a").subscribe():
            await anyio.sleep(0.1)  # the group is now blocked in XREAD on channel a
            channel_b = bus.channel(channel_name + "-b")
            async with channel_b.subscribe() as sub_b:
                assert bus.hub.connections == 1
                entry_id = await channel_b.publish(inp(1))
                with anyio.fail_after(2):
                    got = await take(sub_b, 1)
    assert got[0][0] == entry_id


async def test_slow_subscriber_is_detached_then_catches_up_without_loss(
    any_bus: ait.Bus, channel_name: str
) -> None:
    channel = any_bus.channel(channel_name)
    ids: list[str] = []
    async with channel.subscribe() as fast, channel.subscribe(buffer=4) as slow:
        for i in range(20):
            ids.append(await channel.publish(inp(i)))
            # one XREAD reply (one batch) per entry: let the fast reader take each
            assert [x for x, _ in await take(fast, 1)] == [ids[-1]]
        got: list[str] = []
        with pytest.raises(ait.SubscriberLagged) as info:
            async for entry_id, _ in slow:
                got.append(entry_id)
        assert got == ids[: len(got)] and 0 < len(got) < 20
        assert info.value.last_id == got[-1]
        rest = await take(slow, 20 - len(got))
        got += [entry_id for entry_id, _ in rest]
        # and it follows live again afterwards
        ids.append(await channel.publish(inp(20)))
        got += [entry_id for entry_id, _ in await take(slow, 1)]
    assert got == ids


async def test_foreign_garbage_is_reported_in_place_and_reading_goes_on(
    any_bus: ait.Bus, channel_name: str
) -> None:
    channel = any_bus.channel(channel_name)
    raw = any_bus.handle.client
    async with channel.subscribe() as sub:
        good1 = await channel.publish(inp(1))
        junk = [
            await raw.xadd(channel.key, {"hello": "world"}),
            await raw.xadd(channel.key, {"v": "1", "t": "input", "h": b"\xc1\xff"}),
            await raw.xadd(channel.key, {"v": "9", "t": "input", "h": b"\x80"}),
            await raw.xadd(channel.key, {"v": "1", "t": "teleport", "h": b"\x80"}),
        ]
        good2 = await channel.publish(inp(2))
        got = await take(sub, 6)
    junk_ids = [j.decode() for j in junk]
    assert [i for i, _ in got] == [good1, *junk_ids, good2]
    bad = [event for _, event in got[1:5]]
    assert all(isinstance(b, ait.BadEntry) for b in bad)
    assert [b.entry_id for b in bad if isinstance(b, ait.BadEntry)] == junk_ids
    reasons = " | ".join(b.reason for b in bad if isinstance(b, ait.BadEntry))
    assert "version" in reasons and "teleport" in reasons and "msgpack" in reasons
    assert got[5][1] == inp(2)
    # history and read report them in place too
    assert [type(e).__name__ for _, e in await channel.read()] == [
        "Input",
        *["BadEntry"] * 4,
        "Input",
    ]


async def test_cancelling_a_blocked_subscriber_leaks_nothing(
    redis_url: str, channel_name: str
) -> None:
    async with ait.Bus.from_url(redis_url, reader_linger=0) as bus:
        baseline = await _client_count(redis_url)
        channel = bus.channel(channel_name)
        with anyio.move_on_after(0.3) as scope:
            async with channel.subscribe() as sub:
                await take(sub, 1, timeout=30)
        assert scope.cancelled_caught
        assert bus.hub.connections == 0
        # the group's task ends and its connection closes
        with anyio.fail_after(5):
            while await _client_count(redis_url) > baseline:
                await anyio.sleep(0.02)
        # and the bus is still fine
        async with channel.subscribe() as again:
            entry_id = await channel.publish(inp(1))
            assert (await take(again, 1))[0][0] == entry_id


async def test_a_channel_joining_while_the_xread_is_sent_is_not_left_waiting(
    redis_url: str, channel_name: str
) -> None:
    """The reader is between two XREADs, the next one on its way to Redis without the new
    channel: once it is out, the group wakes it (CLIENT UNBLOCK) at once instead of
    letting the new channel wait out the 60 s block."""
    async with ait.Bus.from_url(redis_url, reader_block_ms=60_000) as bus:
        channel_a, channel_b = bus.channel(channel_name + "-a"), bus.channel(channel_name + "-b")
        async with channel_a.subscribe() as sub_a:
            entry_id = await channel_a.publish(inp(0))
            assert (await take(sub_a, 1))[0][0] == entry_id
            (group,) = bus.hub._groups  # pyright: ignore[reportPrivateUsage]
            conn = group._conn  # pyright: ignore[reportPrivateUsage]
            assert conn is not None
            send = conn.send_packed_command
            sending, proceed = anyio.Event(), anyio.Event()

            async def held_send(*args: Any, **kwargs: Any) -> None:
                sending.set()
                await proceed.wait()  # the channel joins while this XREAD is on its way
                await send(*args, **kwargs)

            conn.send_packed_command = held_send  # type: ignore[method-assign]
            await channel_a.publish(inp(1))  # the XREAD returns; the next one is held
            with anyio.fail_after(5):
                await sending.wait()
            async with channel_b.subscribe() as sub_b:
                conn.send_packed_command = send  # type: ignore[method-assign]
                proceed.set()
                entry_id = await channel_b.publish(inp(2))
                assert (await take(sub_b, 1, timeout=5))[0][0] == entry_id


async def test_a_reader_connection_left_idle_serves_the_next_subscription(
    redis_url: str, channel_name: str
) -> None:
    """A worker opens a session per invocation: the reader connection its last channel left
    is kept for `reader_linger` and taken by the next subscription, then closed."""
    async with ait.Bus.from_url(redis_url, reader_linger=0.5) as bus:
        channel_a, channel_b = bus.channel(channel_name + "-a"), bus.channel(channel_name + "-b")
        async with channel_a.subscribe() as sub:
            entry_id = await channel_a.publish(inp(0))
            assert (await take(sub, 1))[0][0] == entry_id
            readers = await _reader_ids(redis_url)
        assert len(readers) == 1
        assert (bus.hub.connections, bus.hub.busy_connections) == (1, 0)
        async with channel_b.subscribe() as sub:
            assert (bus.hub.connections, bus.hub.busy_connections) == (1, 1)
            entry_id = await channel_b.publish(inp(1))
            assert (await take(sub, 1))[0][0] == entry_id
            assert await _reader_ids(redis_url) == readers  # the same connection
        with anyio.fail_after(5):  # the linger passes: the connection closes
            while await _reader_ids(redis_url):
                await anyio.sleep(0.02)
        assert bus.hub.connections == 0
        async with channel_b.subscribe() as again:  # and a new one opens when needed
            entry_id = await channel_b.publish(inp(2))
            assert (await take(again, 1))[0][0] == entry_id


async def test_closing_the_bus_ends_iteration(redis_url: str, channel_name: str) -> None:
    bus = ait.Bus.from_url(redis_url)
    got: list[ait.Entry] = []
    async with bus, anyio.create_task_group() as tg:
        sub = bus.channel(channel_name).subscribe()
        await sub.open()

        async def consume() -> None:
            async for entry in sub:
                got.append(entry)

        tg.start_soon(consume)
        await anyio.sleep(0.05)
        await bus.aclose()
    assert got == []
    with pytest.raises(ait.UsageError):
        await sub.open()


async def test_subscribing_needs_an_open_bus(redis_url: str, channel_name: str) -> None:
    bus = ait.Bus.from_url(redis_url)
    with pytest.raises(ait.UsageError, match="unopened"):
        await bus.channel(channel_name).subscribe().open()
    async with bus:
        pass
    with pytest.raises(ait.UsageError, match="closed"):
        await bus.channel(channel_name).publish(inp(1))


async def _reader_ids(url: str) -> set[str]:
    """The ids of the connections whose last command was an XREAD: the shared reader's."""
    client = aioredis.Redis.from_url(url)
    try:
        return {str(c["id"]) for c in await client.client_list() if c.get("cmd") == "xread"}
    finally:
        await client.aclose()


async def _client_count(url: str) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        info = await client.client_list()
        return len([c for c in info if c.get("cmd") != "client|list"])
    finally:
        await client.aclose()


async def test_a_channel_whose_read_fails_is_dropped_and_the_others_go_on(
    redis_url: str, channel_name: str
) -> None:
    """One XREAD serves many channels; a key that cannot be read (here it became a plain
    string: WRONGTYPE) fails that XREAD as a whole. Its subscription gets the error, the
    shared read goes on without it, and the other channels keep being delivered."""
    errors: list[BaseException] = []
    async with ait.Bus.from_url(redis_url, on_error=errors.append) as bus:
        good, bad = bus.channel(channel_name + "-good"), bus.channel(channel_name + "-bad")
        await bad.publish(inp(0))
        async with good.subscribe() as good_sub, bad.subscribe() as bad_sub:
            assert bus.hub.connections == 1  # one XREAD for both
            await bus.handle.client.execute_command("SET", bad.key, "not a stream any more")
            ids = [await good.publish(inp(i)) for i in range(3)]
            assert [i for i, _ in await take(good_sub, 3)] == ids
            with anyio.fail_after(10), pytest.raises(ait.BusError, match="WRONGTYPE") as info:
                await bad_sub.__anext__()
            assert type(info.value) is ait.BusError
            assert bad.name in str(info.value)
            assert bus.hub.busy_connections == 1  # the reader follows the good one only
            later = await good.publish(inp(3))
            assert [i for i, _ in await take(good_sub, 1)] == [later]
            # Iterating again retries: once the key is a stream again, it is followed.
            await bus.handle.client.execute_command("DEL", bad.key)
            with pytest.raises(ait.ContinuityLost):
                await bad_sub.__anext__()  # its cursor went with the old stream
            again = await bad.publish(inp(4))
            assert [i for i, _ in await take(bad_sub, 1)] == [again]
    assert any("WRONGTYPE" in str(error) for error in errors)


async def _catch_up_peak(bus: ait.Bus, channel: ait.Channel, gap: int) -> int:
    """Bytes the heap grew to at most while a subscription caught up `gap` entries that the
    shared reader had already passed (another subscriber of the channel kept up). The
    entries are deltas of one message, as a long gap mostly is: one set of headers, which
    the decoder's cache of headers holds once, whatever the gap."""
    for start in range(0, gap, 1000):
        await channel.publish_many([delta(i) for i in range(start, min(start + 1000, gap))])
    async with channel.subscribe(), channel.subscribe(after="0-0") as behind:
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            seen = 0
            with anyio.fail_after(60):
                async for _ in behind:
                    seen += 1
                    if seen == gap:
                        break
            return tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()


async def test_catching_up_a_long_gap_holds_one_page_at_a_time(
    redis_url: str, channel_name: str
) -> None:
    """The gap is read and yielded a page at a time: four times the gap, not four times the
    memory (it was the whole gap at once, about 2 kB an entry)."""
    async with ait.Bus.from_url(redis_url) as bus:
        await _catch_up_peak(bus, bus.channel(channel_name + "-warm"), 2_000)
        small = await _catch_up_peak(bus, bus.channel(channel_name + "-n"), 4_000)
        large = await _catch_up_peak(bus, bus.channel(channel_name + "-4n"), 16_000)
    assert large < 2 * small, (small, large)


async def _lag_after(fast: Subscription, slow: Subscription, batches: list[int]) -> list[str]:
    """Publish `batches` (sizes: each one XREAD reply), the fast subscriber taking each;
    return what the slow one yields before it lags."""
    channel = fast.channel
    for n, size in enumerate(batches):
        ids = await channel.publish_many([inp(n * 100 + i) for i in range(size)])
        assert [i for i, _ in await take(fast, size)] == ids
    got: list[str] = []
    with pytest.raises(ait.SubscriberLagged):
        async for entry_id, _ in slow:
            got.append(entry_id)
    return got


async def test_a_subscriber_lags_past_the_configured_number_of_entries(
    redis_url: str, channel_name: str
) -> None:
    async with ait.Bus.from_url(redis_url, subscriber_buffer=10) as bus:
        channel = bus.channel(channel_name)
        async with channel.subscribe() as fast, channel.subscribe() as slow:
            assert len(await _lag_after(fast, slow, [1] * 30)) == 10
        # The bound counts entries, not batches: 5 + 5 is over 8.
        async with channel.subscribe() as fast, channel.subscribe(buffer=8) as slow:
            assert len(await _lag_after(fast, slow, [5, 5, 5])) == 5
        # A batch larger than the bound is taken when nothing else is held.
        async with channel.subscribe() as fast, channel.subscribe(buffer=2) as slow:
            assert len(await _lag_after(fast, slow, [3, 1])) == 3


async def test_the_subscriber_buffer_must_hold_an_entry(redis_url: str, channel_name: str) -> None:
    for size in (0, -1):
        with pytest.raises(ait.UsageError, match="subscriber_buffer"):
            ait.Bus.from_url(redis_url, subscriber_buffer=size)
        with pytest.raises(ait.UsageError, match="subscriber_buffer"):
            ait.Bus.embedded(subscriber_buffer=size)
    async with ait.Bus.from_url(redis_url) as bus:
        with pytest.raises(ait.UsageError, match="buffer"):
            bus.channel(channel_name).subscribe(buffer=0)
