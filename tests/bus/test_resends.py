"""A writer that rides out an outage (`retry_for`): on a real redis-server of the test's
own, killed and restarted or hung, what it was given is written once Redis is back, a copy
of a write that had landed carries the same resend key, and past the bound it gives up
with `RedisUnavailable`."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

import ait
from ait.codec.chat import ChatCodec
from ait.testing import EmbeddedRedis

pytestmark = pytest.mark.fault

FAST_FAILING = {"command_timeout": 0.5, "connect_timeout": 0.5}


def text(i: int) -> ait.Output:
    """One text delta of the answer `a1`."""
    return ait.Output(
        run_id="r1",
        message_id="a1",
        role="assistant",
        parent="u1",
        payload=[{"type": "text-delta", "id": "t0", "delta": f"w{i} "}],
    )


async def wait_for(predicate: object, timeout: float = 10) -> None:
    assert callable(predicate)
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.005)


@asynccontextmanager
async def writing(
    server: EmbeddedRedis, channel_name: str, retry_for: float
) -> AsyncIterator[tuple[ait.Channel, ait.CoalescingWriter]]:
    """A writer with `retry_for` on a fast-failing bus, once it wrote `w0`."""
    async with ait.Bus.from_url(server.url, on_error=lambda e: None, **FAST_FAILING) as bus:
        channel = bus.channel(channel_name)
        async with channel.writer(retry_for=retry_for) as out:
            out.send(text(0))
            await out.flush()
            yield channel, out


def answer_of(entries: list[ait.Entry]) -> str:
    """The text of `a1` as the fold makes it of these entries."""
    tree = ait.Tree()
    question = ait.Input(
        event_id="e1", message_id="u1", role="user", client_id="a", payload=ChatCodec.user_text("?")
    )
    assert tree.apply([("0-1", question), *entries]) == []
    message = tree.message("a1")
    assert message is not None
    return message.text


async def test_a_writer_rides_out_a_restart_and_keys_every_entry(
    persistent_redis: EmbeddedRedis, channel_name: str
) -> None:
    errors: list[BaseException] = []
    async with ait.Bus.from_url(
        persistent_redis.url, on_error=errors.append, **FAST_FAILING
    ) as bus:
        channel = bus.channel(channel_name)
        async with channel.writer(retry_for=30) as out:
            for i in range(10):
                out.send(text(i))
            await out.flush()
            persistent_redis.kill()
            for i in range(10, 20):
                out.send(text(i))
            await wait_for(lambda: out.resends >= 2)  # Redis is away, the writer keeps at it
            assert out.backlog == 10
            for i in range(20, 30):  # still accepted: send() never fails in an outage
                out.send(text(i))
            await anyio.to_thread.run_sync(persistent_redis.start)
            with anyio.fail_after(10):
                await out.flush()
            assert out.backlog == 0
        entries = await channel.read(count=1000)
    assert all(isinstance(e, ait.BusConnectionError) for e in errors) and errors
    keys = [event.entry_key for _, event in entries if not isinstance(event, ait.BadEntry)]
    assert None not in keys
    assert answer_of(entries) == "".join(f"w{i} " for i in range(30))


async def test_a_write_that_landed_unacknowledged_is_written_again_and_folds_once(
    ephemeral_redis: EmbeddedRedis, channel_name: str
) -> None:
    """Redis hangs (SIGSTOP) with a write on its way: the writer times out, and resends
    while Redis stays hung. When Redis resumes it runs the hung write, then the resend: the
    entry is on the stream twice, with one key, and the fold shows it once."""
    assert ephemeral_redis.pid is not None
    async with writing(ephemeral_redis, channel_name, retry_for=30) as (channel, out):
        os.kill(ephemeral_redis.pid, signal.SIGSTOP)
        try:
            out.send(text(1))  # on its way when Redis stopped answering
            await wait_for(lambda: out.resends >= 2)
        finally:
            os.kill(ephemeral_redis.pid, signal.SIGCONT)
        out.send(text(2))
        with anyio.fail_after(10):
            await out.flush()
        entries = await channel.read(count=100)
    copies = Counter(event.entry_key for _, event in entries if not isinstance(event, ait.BadEntry))
    assert sorted(copies.values()) == [1, 1, 2], "the hung write should have landed too"
    assert [e.payload[0]["delta"] for _, e in entries if isinstance(e, ait.Output)] == [
        "w0 ",
        "w1 ",
        "w1 ",
        "w2 ",
    ]
    assert answer_of(entries) == "w0 w1 w2 "


async def test_past_its_bound_the_writer_gives_up_with_redis_unavailable(
    persistent_redis: EmbeddedRedis, channel_name: str
) -> None:
    async with writing(persistent_redis, channel_name, retry_for=1.0) as (channel, out):
        persistent_redis.kill()
        out.send(text(1))
        out.send(text(2))
        with anyio.fail_after(5), pytest.raises(ait.RedisUnavailable) as info:
            await out.flush()
        error = info.value
        assert isinstance(error, ait.WriteFailed)
        assert error.unsent == [text(1), text(2)]
        assert isinstance(error.cause, ait.BusConnectionError)
        assert error.bound == 1.0 and error.waited >= 1.0
        assert "Redis was unreachable for" in str(error)
        # The writer goes on working once Redis is back, with a new outage allowance.
        await anyio.to_thread.run_sync(persistent_redis.start)
        out.send(text(3))
        with anyio.fail_after(10):
            await out.flush()
        entries = await channel.read(count=100)
    assert answer_of(entries) == "w0 w3 "


async def test_a_writer_without_retry_for_writes_no_keys(bus: ait.Bus, channel_name: str) -> None:
    channel = bus.channel(channel_name)
    async with channel.writer() as out:
        out.send(text(0))
        out.send(ait.Input(event_id="e9", message_id="m9", role="user", client_id="a"))
        await out.flush()
    assert [event.entry_key for _, event in await channel.read()] == [None, None]
    with pytest.raises(ait.UsageError, match="retry_for"):
        channel.writer(retry_for=-1)
