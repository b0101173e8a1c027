"""The agent session follows a channel that anyone may write to: whatever it cannot read is
reported (`on_error`) and skipped, and the session keeps working."""

from __future__ import annotations

from typing import Any

import anyio
import msgpack
import pytest

import ait
from ait.testing import ScriptedProvider

from .helpers import Ticker, answer, cancel, events, fold, invocation, publish_input, wait_for


async def xadd(bus: ait.Bus, key: str, *fields: Any) -> str:
    raw = await bus.handle.client.execute_command("XADD", key, "*", *fields)
    return raw.decode()


def pack(value: Any) -> bytes:
    return msgpack.packb(value)  # type: ignore[no-any-return]


async def write_junk(bus: ait.Bus, channel: ait.Channel) -> list[str]:
    """Entries no reader can decode; return their ids."""
    key = channel.key
    good_headers = {"event-id": "x1", "client-id": "mallory", "scope": "all"}
    return [
        await xadd(bus, key, "junk", "1"),
        await xadd(bus, key, "v", "2", "t", "input", "h", pack({})),  # unknown version
        await xadd(bus, key, "v", "1", "t", "teleport", "h", pack({})),  # unknown type
        await xadd(bus, key, "v", "1", "t", "input", "h", b"\xc1\xc1"),  # h not msgpack
        await xadd(bus, key, "v", "1", "t", "input", "h", pack({"event-id": "e"})),  # missing
        # cancels with a bad payload or no target: they must cancel nothing
        await xadd(bus, key, "v", "1", "t", "cancel", "h", pack(good_headers), "d", b"\xc1"),
        await xadd(
            bus, key, "v", "1", "t", "cancel", "h", pack({"event-id": "x2", "client-id": "m"})
        ),
        await xadd(
            bus, key, "v", "1", "t", "cancel", "h", pack({**good_headers, "scope": "everything"})
        ),
    ]


async def test_garbage_on_the_channel_is_reported_and_skipped(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    errors: list[BaseException] = []
    async with ait.AgentSession(bus, channel_name, on_error=errors.append) as session:
        _, sent = await publish_input(channel)
        handler_result: list[ait.PipeResult] = []
        ticker = Ticker()
        run = session.create_run(invocation(channel, sent))

        async def handler() -> None:
            await run.start()
            handler_result.append(await run.pipe(ticker.stream()))
            await run.end(handler_result[0].reason)

        async with anyio.create_task_group() as tg:
            tg.start_soon(handler)
            await ticker.running()
            junk = await write_junk(bus, channel)
            await wait_for(lambda: len(errors) >= len(junk), timeout=3)
            assert not run.cancelled  # the undecodable `scope=all` cancel cancels nothing
            ticker.stop()
        assert handler_result[0].reason == "complete"

        # each bad entry reported once, by its id
        assert all(isinstance(e, ait.AitError) for e in errors)
        for entry_id in junk:
            assert sum(entry_id in str(e) for e in errors) == 1, entry_id
        assert len(errors) == len(junk)

        # and the session still works: a run, and a cancel
        _, again = await publish_input(channel, "again")
        assert (
            await answer(session.create_run(invocation(channel, again)), ScriptedProvider())
        ).reason == "complete"
        _, third = await publish_input(channel, "third")
        ticker = Ticker()
        run = session.create_run(invocation(channel, third))
        async with anyio.create_task_group() as tg:
            handler_result.clear()
            tg.start_soon(handler)
            await ticker.running()
            await cancel(channel, run_id=run.run_id)
        assert handler_result[0].reason == "cancelled"


async def test_junk_before_the_session_opens_is_reported_and_runs_work(
    bus: ait.Bus, channel_name: str
) -> None:
    """Garbage replayed from the rewind window, and garbage in the history a run loads."""
    channel = bus.channel(channel_name)
    errors: list[BaseException] = []
    _, first = await publish_input(channel, "first")
    junk = await write_junk(bus, channel)
    _, second = await publish_input(channel, "second", parent=first.message_id)
    async with ait.AgentSession(bus, channel_name, on_error=errors.append) as session:
        run = session.create_run(invocation(channel, second))
        await run.start()
        conversation = await run.load_conversation()
        result = await run.pipe(ScriptedProvider().stream())
        await run.end(result.reason)
        await wait_for(lambda: len(errors) >= len(junk), timeout=3)
    assert [m.text for m in conversation] == ["first", "second"]
    assert result.reason == "complete"
    for entry_id in junk:
        assert any(entry_id in str(e) for e in errors), entry_id


async def test_an_input_found_by_the_history_scan_among_junk(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    _, old = await publish_input(channel, "old")
    await write_junk(bus, channel)
    await anyio.sleep(0.01)
    errors: list[BaseException] = []
    async with ait.AgentSession(
        bus, channel_name, rewind=0.0, input_timeout=0.5, on_error=errors.append
    ) as session:
        result = await answer(session.create_run(invocation(channel, old)), ScriptedProvider())
    assert result.reason == "complete"


async def test_a_malformed_input_payload_is_reported(bus: ait.Bus, channel_name: str) -> None:
    """An input whose envelope decodes but whose payload the conversation cannot fold: the
    agent must not silently answer an empty conversation."""
    channel = bus.channel(channel_name)
    errors: list[BaseException] = []
    bad = ait.Input(
        event_id="bad-event", message_id="bad-message", role="user", client_id="m", payload={"x": 1}
    )
    entry_id = await channel.publish(bad)
    async with ait.AgentSession(bus, channel_name, on_error=errors.append) as session:
        run = session.create_run(invocation(channel, bad))
        await run.start()
        conversation = await run.load_conversation()
        await run.end()
    assert conversation == []
    assert any(entry_id in str(e) for e in errors), errors


@pytest.mark.parametrize("payload", [None, []])
async def test_an_input_without_content_gives_a_run_its_anchor(
    bus: ait.Bus, channel_name: str, payload: Any
) -> None:
    channel = bus.channel(channel_name)
    _, sent = await publish_input(channel, payload=payload if payload is not None else [])
    async with ait.AgentSession(bus, channel_name) as session:
        result = await answer(session.create_run(invocation(channel, sent)), ScriptedProvider())
    message = (await fold(channel)).message(result.message_id)
    assert message is not None and message.parent == sent.message_id


async def test_a_cancel_after_a_burst_of_traffic_still_reaches_the_run(
    bus: ait.Bus, channel_name: str
) -> None:
    """Thousands of entries of other traffic (inputs the session remembers) in a few
    transactions, then a cancel: the router gets through the burst and honours it."""
    channel = bus.channel(channel_name)
    errors: list[BaseException] = []
    async with ait.AgentSession(bus, channel_name, on_error=errors.append) as session:
        _, sent = await publish_input(channel)
        ticker = Ticker()
        run = session.create_run(invocation(channel, sent))
        result: list[ait.PipeResult] = []

        async def handler() -> None:
            await run.start()
            result.append(await run.pipe(ticker.stream()))
            await run.end(result[0].reason)

        async with anyio.create_task_group() as tg:
            tg.start_soon(handler)
            await ticker.running()
            noise = [
                ait.Input(
                    event_id=f"n{i}", message_id=f"n{i}", role="user", client_id="bob", payload=[]
                )
                for i in range(3000)
            ]
            for start in range(0, len(noise), 500):
                await channel.publish_many(noise[start : start + 500])
            await cancel(channel, run_id=run.run_id)
            with anyio.fail_after(5):
                while not result:
                    await anyio.sleep(0.01)
    assert result[0].reason == "cancelled"
    assert [e for e in errors if not isinstance(e, ait.SubscriberLagged)] == []
    assert (await events(channel, "run.end"))[0].reason == "cancelled"


async def test_a_channel_redis_refuses_is_reported_and_followed_again(
    redis_url: str, channel_name: str
) -> None:
    """The channel's key is overwritten with a string (WRONGTYPE): the session reports it,
    lives on, and once the key is a stream again it follows it (a cancel reaches a run)."""
    errors: list[BaseException] = []
    async with (
        ait.Bus.from_url(redis_url, reader_block_ms=200) as bus,  # SET wakes no XREAD
        ait.AgentSession(bus, channel_name, on_error=errors.append) as session,
    ):
        channel = bus.channel(channel_name)
        await bus.handle.client.execute_command("SET", channel.key, "not a stream")
        await wait_for(lambda: any("WRONGTYPE" in str(e) for e in errors))
        assert all(type(e) is ait.BusError for e in errors)

        await bus.handle.client.execute_command("DEL", channel.key)
        _, sent = await publish_input(channel)
        run = session.create_run(invocation(channel, sent))
        results: list[ait.PipeResult] = []
        ticker = Ticker()

        async def handler() -> None:
            await run.start()
            results.append(await run.pipe(ticker.stream()))
            await run.end(results[0].reason)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(handler)
                await ticker.running()
                await cancel(channel, run_id=run.run_id)
        assert results[0].reason == "cancelled"
