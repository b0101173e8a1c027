"""The coalescing writer: immediate when idle, batched under load, ordered, failures surfaced."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

import ait

from .helpers import delta, inp


def payload_items(entries: list[ait.Entry]) -> list[object]:
    items: list[object] = []
    for _, event in entries:
        assert isinstance(event, ait.Output)
        items.extend(event.payload)
    return items


async def test_idle_send_is_written_at_once(any_bus: ait.Bus, channel_name: str) -> None:
    channel = any_bus.channel(channel_name)
    async with channel.writer() as out, channel.subscribe() as sub:
        out.send(delta(0))
        with anyio.fail_after(2):
            entry_id, event = await sub.__anext__()
        assert event == delta(0)
        assert out.entries_written == 1


async def test_bursts_coalesce_into_few_entries_in_order(
    any_bus: ait.Bus, channel_name: str
) -> None:
    channel = any_bus.channel(channel_name)
    async with channel.writer() as out:
        for i in range(2000):
            out.send(delta(i))
            if i % 10 == 0:
                await anyio.lowlevel.checkpoint()
        await out.flush()
        written = out.entries_written
    entries = await channel.read(count=10_000)
    assert payload_items(entries) == [{"i": i} for i in range(2000)]
    assert len(entries) == written
    assert written < 200  # 2000 events in far fewer entries


async def test_messages_and_other_events_are_never_merged_across(
    any_bus: ait.Bus, channel_name: str
) -> None:
    channel = any_bus.channel(channel_name)
    sequence: list[ait.Event] = [
        delta(1, "a"),
        delta(2, "a"),
        delta(3, "b"),
        inp(9),
        delta(4, "b"),
        delta(5, "a"),
    ]
    async with channel.writer() as out:
        await out.flush()
        # queue everything while no write runs, so one batch holds it all
        for event in sequence:
            out.send(event)
        await out.flush()
    entries = await channel.read()
    shape = [
        (e.message_id, [p["i"] for p in e.payload]) if isinstance(e, ait.Output) else e.type
        for _, e in entries
    ]
    assert shape == [("a", [1, 2]), ("b", [3]), "input", ("b", [4]), ("a", [5])]


async def test_an_event_too_large_is_handed_back_and_the_rest_written(
    redis_url: str, channel_name: str
) -> None:
    async with ait.Bus.from_url(redis_url, max_entry_bytes=2048) as bus:
        channel = bus.channel(channel_name)
        big = ait.Output(
            run_id="r1", message_id="z", role="assistant", parent="m0", payload=["x" * 4000]
        )
        async with channel.writer() as out:
            out.send(delta(1))
            out.send(big)
            out.send(delta(2))
            with pytest.raises(ait.WriteFailed) as info:
                await out.flush()
            assert info.value.unsent == [big]
            assert isinstance(info.value.cause, ait.EntryTooLarge)
            out.send(delta(3))  # usable again
            await out.flush()
        items = payload_items(await channel.read())
        assert items == [{"i": 1}, {"i": 2}, {"i": 3}]


async def test_coalesced_entries_are_split_below_the_size_limit(
    redis_url: str, channel_name: str
) -> None:
    async with ait.Bus.from_url(redis_url, max_entry_bytes=4096) as bus:
        channel = bus.channel(channel_name)
        async with channel.writer() as out:
            await out.flush()
            for i in range(300):
                out.send(
                    ait.Output(
                        run_id="r",
                        message_id="m",
                        role="assistant",
                        parent="p",
                        payload=[f"{i:04d}" * 10],
                    )
                )
            await out.flush()
        entries = await channel.read(count=1000)
        assert len(entries) > 1
        assert payload_items(entries) == [f"{i:04d}" * 10 for i in range(300)]


async def test_lifecycle_errors(any_bus: ait.Bus, channel_name: str) -> None:
    out = any_bus.channel(channel_name).writer()
    with pytest.raises(ait.UsageError, match="unopened"):
        out.send(delta(1))
    async with out:
        out.send(delta(1))
    # closing flushed it
    assert len(await any_bus.channel(channel_name).read()) == 1
    with pytest.raises(ait.UsageError, match="closed"):
        out.send(delta(2))
    with pytest.raises(ait.UsageError):
        await out.__aenter__()
    with pytest.raises(ait.UsageError):
        any_bus.channel(channel_name).writer(linger=-1)


async def test_a_message_handle_queues_codec_events_without_events(
    any_bus: ait.Bus, channel_name: str
) -> None:
    channel = any_bus.channel(channel_name)
    async with channel.writer() as out:
        reply = out.message(run_id="r1", message_id="a1", role="assistant", parent="m0")
        other = out.message(run_id="r1", message_id="a2", role="assistant", parent="a1")
        for i in range(500):
            reply.send({"type": "text-delta", "id": "t1", "delta": f"{i} "})
            if i % 50 == 0:
                await anyio.lowlevel.checkpoint()
        other.extend([{"type": "text-delta", "id": "t1", "delta": "next"}])
        await out.flush()
    entries = await channel.read(count=1000)
    outputs = [e for _, e in entries if isinstance(e, ait.Output)]
    assert len(outputs) == len(entries) < 100
    first = [o for o in outputs if o.message_id == "a1"]
    assert all((o.run_id, o.role, o.parent) == ("r1", "assistant", "m0") for o in first)
    assert [p["delta"] for o in first for p in o.payload] == [f"{i} " for i in range(500)]
    assert outputs[-1].message_id == "a2" and outputs[-1].parent == "a1"


async def test_quiet_sends_are_written_alone_and_bursts_together(
    any_bus: ait.Bus, channel_name: str
) -> None:
    channel = any_bus.channel(channel_name)
    async with channel.writer(linger=0.005) as out:
        for i in range(3):  # each after a quiet spell longer than linger: one entry each
            out.send(delta(i))
            await out.flush()
            await anyio.sleep(0.02)
        for i in range(3, 30):  # a burst: the first goes at once, the rest wait their turn
            out.send(delta(i))
        await out.flush()
        written = out.entries_written
    assert 3 < written <= 5
    assert payload_items(await channel.read(count=100)) == [{"i": i} for i in range(30)]


async def test_a_writer_whose_task_was_cancelled_does_not_hang_its_flush(
    any_bus: ait.Bus, channel_name: str
) -> None:
    from ait.bus._tasks import BackgroundTasks

    tasks = BackgroundTasks()
    await tasks.enter()
    try:
        out = any_bus.channel(channel_name).writer()
        out.start_in(tasks)
        tasks.stop()  # the owner of the task went away
        await anyio.sleep(0.05)  # the writer's task has ended
        out.send(delta(1))
        with anyio.fail_after(2), pytest.raises(ait.WriteFailed) as info:
            await out.flush()
        assert info.value.unsent == [delta(1)]
        with anyio.fail_after(2):
            await out.aclose()
    finally:
        await tasks.exit()


async def test_flush_does_not_wait_out_the_linger(any_bus: ait.Bus, channel_name: str) -> None:
    """In a burst, writes wait `linger` for more to join; a flush wants them now (the end of
    a message, a cancel), so it writes what is pending at once."""
    channel = any_bus.channel(channel_name)
    async with channel.writer(linger=1.0, max_wait=1.0) as out:
        for i in range(10):  # a burst, written at once as the first write
            out.send(delta(i))
        await anyio.sleep(0.05)
        for i in range(10, 20):  # more of it: these wait out the linger...
            out.send(delta(i))
        await anyio.sleep(0.05)
        assert len(await channel.read(count=100)) == 1
        start = anyio.current_time()  # ...unless flushed
        await out.flush()
        took = anyio.current_time() - start
        out.send(delta(20))  # the hurry is over: the next burst lingers again
        for i in range(21, 25):
            out.send(delta(i))
        await anyio.sleep(0.2)
        lingering = len(await channel.read(count=100))
        await out.flush()
    assert took < 0.5
    assert payload_items(await channel.read(count=100)) == [{"i": i} for i in range(25)]
    assert lingering < len(await channel.read(count=100))
