"""The agent side when Redis goes away (a redis-server of the test's own, AOF on, killed
and restarted): a terminal event that could not be written can be written again, and a
worker survives the outage and settles the run it could not end."""

from __future__ import annotations

import anyio
import pytest

import ait
from ait.testing import EmbeddedRedis, ScriptedProvider

from .helpers import (
    enqueue_input,
    events,
    pool_name,
    started_run,
    wait_for,
    wait_for_event,
)

pytestmark = pytest.mark.fault

FAST_FAILING = {"command_timeout": 2.0, "connect_timeout": 1.0}


async def retrying(action: object, timeout: float = 10) -> object:
    assert callable(action)
    with anyio.fail_after(timeout):
        while True:
            try:
                return await action()
            except ait.BusConnectionError:
                await anyio.sleep(0.05)


async def test_a_terminal_event_that_failed_can_be_sent_again(
    persistent_redis: EmbeddedRedis, channel_name: str
) -> None:
    """Redis stays away longer than the run's outage bound: `end()` raises after it, and
    a later call writes the event once Redis is back."""
    errors: list[BaseException] = []
    async with started_run(
        persistent_redis.url, channel_name, on_error=errors.append, outage_bound=0.5
    ) as (channel, session, run):
        result = await run.pipe(ScriptedProvider(["before the outage"]).stream())
        assert result.reason == "complete"

        persistent_redis.kill()
        with anyio.fail_after(10), pytest.raises(ait.BusConnectionError):
            await run.end()
        assert run.state == "started"  # not ended: nothing was written
        await anyio.to_thread.run_sync(persistent_redis.start)

        await retrying(run.end)
        assert run.state == "ended"
        assert await session.active_runs() == {}
        ends = await events(channel, "run.end")
    assert [(e.run_id, e.reason) for e in ends] == [(run.run_id, "complete")]


async def test_a_worker_survives_an_outage_and_settles_the_run(
    persistent_redis: EmbeddedRedis, channel_name: str
) -> None:
    """The handler's run.end fails (Redis down longer than the run's outage bound), so
    does the worker's own attempt: the worker reports it, keeps serving, and once Redis is
    back it reclaims the entry after the lease and ends the run `agent-lost`."""
    pool = pool_name()
    errors: list[BaseException] = []
    in_outage = anyio.Event()

    async def handler(run: ait.Run) -> None:
        await run.start()
        await run.pipe(ScriptedProvider(["an answer"]).stream())
        assert run.input is not None
        if run.input.payload[0]["delta"] == "first":
            await in_outage.wait()
        await run.end()

    async with ait.Bus.from_url(persistent_redis.url, **FAST_FAILING) as bus:
        channel = bus.channel(channel_name)
        worker = ait.AgentWorker(
            bus,
            handler,
            pool=pool,
            lease=1,
            block_ms=100,
            on_error=errors.append,
            session_options={"outage_bound": 0.5},
        )
        crashed: list[BaseException] = []

        async def serve() -> None:
            try:
                await worker.run()
            except Exception as exc:  # pragma: no cover - the failure this test looks for
                crashed.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            first, _ = await enqueue_input(bus, channel, pool, "first")
            await wait_for(lambda: worker.busy == 1)
            await wait_for_event(channel, lambda e: isinstance(e, ait.Output))
            persistent_redis.kill()
            in_outage.set()
            await wait_for(lambda: worker.busy == 0, timeout=10)  # gave up on it
            assert crashed == []
            await anyio.to_thread.run_sync(persistent_redis.start)

            second, _ = await retrying(lambda: enqueue_input(bus, channel, pool, "second"))  # type: ignore[misc]

            async def two_ends() -> bool:
                return len(await events(channel, "run.end")) >= 2

            with anyio.fail_after(15):
                while not await retrying(two_ends):
                    await anyio.sleep(0.05)
            await wait_for(lambda: worker.stats["acked"] == 2)
            worker.stop()
        assert crashed == []
        assert await bus.pool(pool).pending_count() == 0
        starts = {e.input_event_id: e.run_id for e in await events(channel, "run.start")}
        ends = {e.run_id: e for e in await events(channel, "run.end")}
    lost = ends[starts[first.event_id]]
    assert (lost.reason, lost.error_code) == ("error", "agent-lost")
    assert ends[starts[second.event_id]].reason == "complete"
    assert worker.stats["lost_ended"] == 1
    assert any(isinstance(e, ait.BusConnectionError) for e in errors)


async def test_a_worker_serves_again_after_redis_restarts_without_its_data(
    ephemeral_redis: EmbeddedRedis, channel_name: str
) -> None:
    """Redis restarts empty: the queue's consumer group is gone (NOGROUP on every read and
    reclaim). The worker creates it again, says so once, and answers the next input."""
    pool = pool_name()
    errors: list[BaseException] = []

    async def handler(run: ait.Run) -> None:
        await run.start()
        await run.end()

    async with ait.Bus.from_url(
        ephemeral_redis.url, **FAST_FAILING, on_error=lambda e: None
    ) as bus:
        channel = bus.channel(channel_name)
        worker = ait.AgentWorker(
            bus, handler, pool=pool, lease=1, block_ms=100, on_error=errors.append
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            await enqueue_input(bus, channel, pool, "before")
            await wait_for(lambda: worker.stats["acked"] == 1)
            ephemeral_redis.kill()
            await anyio.to_thread.run_sync(ephemeral_redis.start)
            await retrying(lambda: enqueue_input(bus, channel, pool, "after"))
            await wait_for(lambda: worker.stats["acked"] == 2, timeout=20)
            worker.stop()
    recreated = [e for e in errors if "created it again" in str(e)]
    assert len(recreated) == 1 and isinstance(recreated[0], ait.BusError)
    assert not [e for e in errors if "NOGROUP" in str(e) and e not in recreated]
