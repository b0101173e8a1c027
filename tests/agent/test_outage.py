"""A run and a short outage of Redis (a redis-server of the test's own, AOF `appendfsync
always`, killed and restarted on the same data): the run rides it out and its answer is
whole, once; past `outage_bound` it ends `redis-unavailable` once Redis is back, and gives
up cleanly if Redis never comes back."""

from __future__ import annotations

import anyio
import pytest

import ait
from ait.client import ClientSession
from ait.testing import EmbeddedRedis, ScriptedProvider

from .helpers import events, pool_name, started_run, wait_for

pytestmark = pytest.mark.fault

FAST_FAILING = {"command_timeout": 2.0, "connect_timeout": 1.0}
TOKENS = [f"w{i} " for i in range(90)]


def publish_failures(errors: list[BaseException]) -> int:
    """How many of `errors` are failed writes to the channel (not reads, not heartbeats)."""
    return sum(
        isinstance(e, ait.BusConnectionError) and "unable to publish" in str(e) for e in errors
    )


async def fresh_view(url: str, channel: str) -> tuple[list[ait.Message], list[ait.RunInfo]]:
    """What a client that opens the channel now shows, on a bus of its own."""
    async with (
        ait.Bus.from_url(url) as bus,
        ClientSession(bus, channel, client_id="carol", invoke=None) as carol,
    ):
        return carol.view.messages, carol.tree.runs()


async def test_a_run_rides_out_a_short_outage_and_its_answer_is_whole_once(
    persistent_redis: EmbeddedRedis, channel_name: str
) -> None:
    """The issue's case: a worker answers, Redis goes away for about two seconds of tokens
    and comes back. The run ends `complete` (not `agent-lost`), and the live client and a
    fresh one show every token exactly once."""
    provider = ScriptedProvider(TOKENS, delay=0.05)
    pool = pool_name()
    agent_errors: list[BaseException] = []
    bus_errors: list[BaseException] = []

    async def answer(run: ait.Run) -> None:
        await run.start()
        result = await run.pipe(provider.stream())
        results.append(result)
        await run.end(result.reason, error=result.error)

    results: list[ait.PipeResult] = []
    async with (
        ait.Bus.from_url(persistent_redis.url, on_error=bus_errors.append, **FAST_FAILING) as bus,
        ClientSession(bus, channel_name, client_id="alice", pool=pool) as alice,
    ):
        worker = ait.AgentWorker(bus, answer, pool=pool, block_ms=200, on_error=agent_errors.append)
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            active = await alice.view.send("count slowly")
            await wait_for(lambda: provider.emitted >= 10)
            persistent_redis.kill()
            killed_at = provider.emitted
            # About two seconds of the model's tokens while Redis is away: the run reads on.
            await wait_for(lambda: results or provider.emitted >= killed_at + 40, timeout=30)
            gave_up = list(results)
            await anyio.to_thread.run_sync(persistent_redis.start)
            with anyio.fail_after(30):
                info = await active.wait()
            live = [m.text for m in alice.view.messages]
            worker.stop()
    assert gave_up == [], f"the pipe gave up in the outage: {gave_up}"
    assert publish_failures(bus_errors) >= 1, "the run's writer should have met the outage"
    assert [r.reason for r in results] == ["complete"]
    assert (info.status, info.error) == ("complete", None)
    answer_text = "".join(TOKENS)
    assert live == ["count slowly", answer_text]
    messages, runs = await fresh_view(persistent_redis.url, channel_name)
    assert [m.text for m in messages] == ["count slowly", answer_text]
    assert [(r.status, r.error) for r in runs] == [("complete", None)]


async def test_past_the_bound_the_run_ends_redis_unavailable_once_redis_is_back(
    persistent_redis: EmbeddedRedis, channel_name: str
) -> None:
    provider = ScriptedProvider(TOKENS * 5, delay=0.02)
    session_errors: list[BaseException] = []
    results: list[ait.PipeResult] = []
    ended = anyio.Event()
    async with started_run(
        persistent_redis.url, channel_name, on_error=session_errors.append, outage_bound=2.0
    ) as (channel, _, run):

        async def answer() -> None:
            result = await run.pipe(provider.stream())
            results.append(result)
            await run.end(result.reason, error=result.error)
            ended.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(answer)
            await wait_for(lambda: provider.emitted >= 10)
            persistent_redis.kill()
            await wait_for(lambda: results, timeout=15)  # the pipe gave up...
            # ...and the run's end waits for Redis.
            await wait_for(lambda: publish_failures(session_errors) >= 1)
            await anyio.to_thread.run_sync(persistent_redis.start)
            with anyio.fail_after(15):
                await ended.wait()
        ends = await events(channel, "run.end")
    (result,) = results
    assert result.reason == "error"
    assert isinstance(result.error, ait.RedisUnavailable)
    assert provider.closed, "the pipe stopped reading the model"
    assert [(e.reason, e.error_code) for e in ends] == [("error", "redis-unavailable")]
    assert "Redis was unreachable" in (ends[0].error_message or "")
    messages, runs = await fresh_view(persistent_redis.url, channel_name)
    (info,) = runs
    assert info.status == "error"
    assert info.error is not None and info.error.code == "redis-unavailable"
    said = messages[-1]
    assert said.status == "error"
    assert "".join(TOKENS * 5).startswith(said.text) and said.text.count("w0 ") == 1


async def test_if_redis_never_comes_back_the_run_gives_up_cleanly(
    persistent_redis: EmbeddedRedis, channel_name: str
) -> None:
    """`end()` waits out its bound once, then raises; later attempts try once, so the
    session's own ending does not wait again."""
    provider = ScriptedProvider(TOKENS * 5, delay=0.02)
    async with started_run(
        persistent_redis.url, channel_name, on_error=lambda e: None, outage_bound=1.0
    ) as (_, session, run):
        persistent_redis.kill()
        with anyio.fail_after(15):
            result = await run.pipe(provider.stream())
        assert isinstance(result.error, ait.RedisUnavailable)
        with anyio.fail_after(15), pytest.raises(ait.BusConnectionError):
            await run.end(result.reason, error=result.error)
        assert run.state == "started"
        with anyio.fail_after(0.9), pytest.raises(ait.BusConnectionError):
            await run.end("error", code="agent-stopped", message="stop")
        with anyio.fail_after(5):
            await session.aclose()  # ends the run (tries once), does not hang on Redis
