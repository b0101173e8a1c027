"""Multitask policies: what a new input does while another run is active on the channel.

Every policy is tested with the active run in the same session and in another agent (a
session on a bus of its own): the channel's `active` hash is what counts, not memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

import ait
from ait.ids import entry_id_key
from ait.testing import ScriptedProvider

from .helpers import (
    Ticker,
    entries,
    events,
    fold,
    invocation,
    publish_input,
    raises,
    wait_for,
)


async def entry_of(channel: ait.Channel, kind: str, run_id: str | None) -> str:
    """The entry id of the (first) lifecycle event `kind` of run `run_id`."""
    for entry_id, event in await entries(channel):
        if event.type == kind and event.run_id == run_id:
            return entry_id
    raise AssertionError(f"no {kind} for run {run_id}")


class Active:
    """A run held active by a Ticker in a task, in some session."""

    def __init__(self, session: ait.AgentSession, channel: ait.Channel) -> None:
        self.session = session
        self.channel = channel
        self.ticker = Ticker()
        self.result: ait.PipeResult | None = None
        self.done = anyio.Event()
        self.run: ait.Run | None = None

    async def __call__(self, task_status: anyio.abc.TaskStatus[None]) -> None:
        _, sent = await publish_input(self.channel, "first", client="alice")
        run = self.run = self.session.create_run(invocation(self.channel, sent))
        await run.start()
        task_status.started()
        try:
            self.result = await run.pipe(self.ticker.stream())
            await run.end(self.result.reason)
        finally:
            self.done.set()


@pytest.fixture(params=["same-session", "other-agent"])
async def sessions(
    request: pytest.FixtureRequest, redis_url: str, bus: ait.Bus, channel_name: str
) -> AsyncIterator[tuple[ait.AgentSession, ait.AgentSession]]:
    """The session of the active run, and the session of the new input's run."""
    async with ait.AgentSession(bus, channel_name, agent_id="agent-a") as first:
        if request.param == "same-session":
            yield first, first
            return
        async with ait.Bus.from_url(redis_url) as other_bus:
            async with ait.AgentSession(other_bus, channel_name, agent_id="agent-b") as second:
                yield first, second


async def second_run(
    session: ait.AgentSession, channel: ait.Channel, multitask: str | None, **options: object
) -> ait.Run:
    _, sent = await publish_input(channel, "second", client="bob", multitask=multitask)
    return session.create_run(invocation(channel, sent), **options)  # type: ignore[arg-type]


async def finish(run: ait.Run, text: str = "two") -> ait.PipeResult:
    result = await run.pipe(ScriptedProvider([text]).stream())
    await run.end(result.reason)
    return result


@pytest.mark.parametrize("multitask", [None, "parallel"])
async def test_parallel_runs_stream_side_by_side(
    sessions: tuple[ait.AgentSession, ait.AgentSession], channel_name: str, multitask: str | None
) -> None:
    first, second = sessions
    channel = first.channel
    active = Active(first, channel)
    async with anyio.create_task_group() as tg:
        await tg.start(active)
        await wait_for(lambda: active.ticker.emitted >= 3)
        run = await second_run(second, channel, multitask)
        await run.start()  # at once, while the first run streams
        assert not active.done.is_set()
        await finish(run)
        await wait_for(lambda: active.ticker.emitted >= 10)  # the first still streams
        active.ticker.stop()
    assert active.run is not None and active.result is not None
    assert active.result.reason == "complete" and not active.run.cancelled
    start_2 = await entry_of(channel, "run.start", run.run_id)
    end_1 = await entry_of(channel, "run.end", active.run.run_id)
    end_2 = await entry_of(channel, "run.end", run.run_id)
    assert entry_id_key(start_2) < entry_id_key(end_2) < entry_id_key(end_1)
    # outputs of the first run on both sides of the second run's output
    first_outputs = [
        entry_id_key(i)
        for i, e in await entries(channel)
        if e.type == "output" and e.run_id == active.run.run_id
    ]
    assert first_outputs[0] < entry_id_key(start_2) < first_outputs[-1]
    tree = await fold(channel)
    assert {r.status for r in tree.runs} == {"complete"}


async def test_interrupt_cancels_the_active_run_before_starting(
    sessions: tuple[ait.AgentSession, ait.AgentSession], channel_name: str
) -> None:
    first, second = sessions
    channel = first.channel
    active = Active(first, channel)
    async with anyio.create_task_group() as tg:
        await tg.start(active)
        await wait_for(lambda: active.ticker.emitted >= 3)
        run = await second_run(second, channel, "interrupt")
        with anyio.fail_after(5):
            await run.start()
        assert active.done.is_set()  # ended before this run started
        await finish(run)
    assert active.run is not None and active.result is not None
    assert active.result.reason == "cancelled" and active.run.cancelled
    end_1 = await entry_of(channel, "run.end", active.run.run_id)
    start_2 = await entry_of(channel, "run.start", run.run_id)
    assert entry_id_key(end_1) < entry_id_key(start_2)
    (interrupt,) = await events(channel, "cancel")
    assert interrupt.run_id == active.run.run_id
    assert interrupt.client_id == f"agent:{second.agent_id}"
    tree = await fold(channel)
    statuses = {r.run_id: r.status for r in tree.runs}
    assert statuses == {active.run.run_id: "cancelled", run.run_id: "complete"}


async def test_interrupt_with_nothing_active_just_starts(bus: ait.Bus, channel_name: str) -> None:
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name) as session:
        run = await second_run(session, channel, "interrupt")
        await run.start()
        await finish(run)
    assert await events(channel, "cancel") == []


async def test_interrupt_refused_by_the_active_run_waits_then_goes_ahead(
    bus: ait.Bus, channel_name: str
) -> None:
    """The active run's hook refuses the interrupt: the new run waits `interrupt_timeout`,
    then starts beside it (the policy cannot force a run that will not stop)."""
    channel = bus.channel(channel_name)
    async with ait.AgentSession(
        bus, channel_name, on_cancel=lambda request: False, interrupt_timeout=0.5
    ) as session:
        active = Active(session, channel)
        async with anyio.create_task_group() as tg:
            await tg.start(active)
            run = await second_run(session, channel, "interrupt")
            with anyio.fail_after(3):
                await run.start()
            assert not active.done.is_set()
            await finish(run)
            active.ticker.stop()
    assert active.result is not None and active.result.reason == "complete"


async def test_enqueue_starts_after_the_active_run_ends(
    sessions: tuple[ait.AgentSession, ait.AgentSession], channel_name: str
) -> None:
    first, second = sessions
    channel = first.channel
    active = Active(first, channel)
    async with anyio.create_task_group() as tg:
        await tg.start(active)
        run = await second_run(second, channel, "enqueue")
        started = anyio.Event()

        async def start_second() -> None:
            await run.start()
            started.set()

        tg.start_soon(start_second)
        await anyio.sleep(0.3)
        assert not started.is_set() and run.state == "created"
        assert [e.run_id for e in await events(channel, "run.start")] == [active.run.run_id]  # type: ignore[union-attr]
        active.ticker.stop()
        with anyio.fail_after(3):
            await started.wait()
        await finish(run)
    assert active.run is not None and active.result is not None
    assert active.result.reason == "complete" and not active.run.cancelled
    end_1 = await entry_of(channel, "run.end", active.run.run_id)
    start_2 = await entry_of(channel, "run.start", run.run_id)
    assert entry_id_key(end_1) < entry_id_key(start_2)
    assert await events(channel, "cancel") == []


async def test_enqueue_does_not_wait_for_a_suspended_run(bus: ait.Bus, channel_name: str) -> None:
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name) as session:
        _, sent = await publish_input(channel)
        paused = session.create_run(invocation(channel, sent))
        await paused.start()
        await paused.suspend()
        run = await second_run(session, channel, "enqueue")
        with anyio.fail_after(1):
            await run.start()
        await finish(run)


async def test_enqueue_gives_up_waiting_after_its_timeout(bus: ait.Bus, channel_name: str) -> None:
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name, enqueue_timeout=0.3) as session:
        active = Active(session, channel)
        async with anyio.create_task_group() as tg:
            await tg.start(active)
            run = await second_run(session, channel, "enqueue")
            with anyio.fail_after(2):
                await run.start()
            assert not active.done.is_set()
            await finish(run)
            active.ticker.stop()


class Queued:
    """A run for an `enqueue` input, started in a task: `started` once start() returned;
    it ends when `release` is set."""

    def __init__(self, session: ait.AgentSession, channel: ait.Channel, sent: ait.Input) -> None:
        self.run = session.create_run(invocation(channel, sent))
        self.started = anyio.Event()
        self.release = anyio.Event()

    async def __call__(self) -> None:
        await self.run.start()
        self.started.set()
        await self.release.wait()
        await finish(self.run)


async def waiting(
    tg: anyio.abc.TaskGroup, session: ait.AgentSession, channel: ait.Channel, sent: ait.Input
) -> Queued:
    """Start the run of `sent` in `tg`; return once it waits for its turn."""
    queued = Queued(session, channel, sent)
    tg.start_soon(queued)
    await wait_for(lambda: queued.run.input is not None)
    return queued


async def b_and_c(channel: ait.Channel) -> tuple[ait.Input, ait.Input]:
    """Two `enqueue` inputs, B then C."""
    _, b_sent = await publish_input(channel, "B", multitask="enqueue")
    _, c_sent = await publish_input(channel, "C", multitask="enqueue")
    return b_sent, c_sent


async def queue_length(channel: ait.Channel) -> int:
    return int(await channel.bus.handle.client.hlen(channel.key_for("queue")))


async def test_enqueued_inputs_start_one_after_another_in_channel_order(
    sessions: tuple[ait.AgentSession, ait.AgentSession], channel_name: str
) -> None:
    """B and C, both `enqueue`, wait for A. When A ends, B starts (the first on the
    channel, though its agent came second) and C waits for B's end, not just A's."""
    first, second = sessions
    channel = first.channel
    active = Active(first, channel)
    async with anyio.create_task_group() as tg:
        await tg.start(active)
        b_sent, c_sent = await b_and_c(channel)
        c = await waiting(tg, second, channel, c_sent)  # C's agent came first
        b = await waiting(tg, first, channel, b_sent)
        active.ticker.stop()
        with anyio.fail_after(10):
            await b.started.wait()
        with anyio.move_on_after(0.5):  # C's chance to start beside B, were it to
            await c.started.wait()
        assert not c.started.is_set() and c.run.state == "created"
        b.release.set()
        with anyio.fail_after(10):
            await c.started.wait()
        c.release.set()
    assert active.run is not None and b.run.run_id is not None and c.run.run_id is not None
    end_a = await entry_of(channel, "run.end", active.run.run_id)
    start_b = await entry_of(channel, "run.start", b.run.run_id)
    end_b = await entry_of(channel, "run.end", b.run.run_id)
    start_c = await entry_of(channel, "run.start", c.run.run_id)
    order = [entry_id_key(entry) for entry in (end_a, start_b, end_b, start_c)]
    assert order == sorted(order)
    assert await queue_length(channel) == 0


async def test_an_enqueued_input_waits_for_an_earlier_one_whose_agent_is_late(
    bus: ait.Bus, channel_name: str
) -> None:
    """C's agent is waiting when A ends; B (before C on the channel) has no agent yet.
    C keeps its place behind B, whose agent comes a moment later."""
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name) as session:
        active = Active(session, channel)
        async with anyio.create_task_group() as tg:
            await tg.start(active)
            b_sent, c_sent = await b_and_c(channel)
            c = await waiting(tg, session, channel, c_sent)  # B has no agent yet
            active.ticker.stop()
            with anyio.fail_after(10):
                await active.done.wait()
            with anyio.move_on_after(0.5):  # C's chance to jump ahead, were it to
                await c.started.wait()
            b = await waiting(tg, session, channel, b_sent)
            with anyio.fail_after(10):
                await b.started.wait()
            assert not c.started.is_set()
            b.release.set()
            with anyio.fail_after(10):
                await c.started.wait()
            c.release.set()
    assert b.run.run_id is not None and c.run.run_id is not None
    end_b = await entry_of(channel, "run.end", b.run.run_id)
    start_c = await entry_of(channel, "run.start", c.run.run_id)
    assert entry_id_key(end_b) < entry_id_key(start_c)


async def test_an_earlier_enqueued_input_nobody_answers_holds_the_queue_only_a_while(
    bus: ait.Bus, channel_name: str
) -> None:
    """An `enqueue` input no agent was ever woken for is waited for `input_timeout`."""
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name, input_timeout=0.5) as session:
        await publish_input(channel, "B", multitask="enqueue")  # nobody will answer it
        run = await second_run(session, channel, "enqueue")
        clock = anyio.current_time()
        with anyio.fail_after(10):
            await run.start()
        assert anyio.current_time() - clock >= 0.4
        await finish(run)
    assert await queue_length(channel) == 0


async def test_reject_while_a_run_is_active(
    sessions: tuple[ait.AgentSession, ait.AgentSession], channel_name: str
) -> None:
    first, second = sessions
    channel = first.channel
    active = Active(first, channel)
    async with anyio.create_task_group() as tg:
        await tg.start(active)
        run = await second_run(second, channel, "reject")
        # (not pytest.raises: its failure is a BaseException, which inside a task group
        # breaks anyio's test runner instead of failing the test)
        rejected = await raises(ait.RunRejected, run.start())
        assert rejected.run_id == run.run_id
        assert active.run is not None and active.run.run_id in str(rejected)
        assert run.state == "ended"
        await run.end()  # a no-op: the run is over
        await raises(ait.UsageError, run.pipe(ScriptedProvider().stream()))
        await wait_for(lambda: active.ticker.emitted >= 5)
        assert not active.done.is_set() and not active.run.cancelled
        assert list(await second.active_runs()) == [active.run.run_id]
        active.ticker.stop()
    assert active.result is not None and active.result.reason == "complete"

    mine = [e for e in await events(channel) if getattr(e, "run_id", None) == run.run_id]
    assert [e.type for e in mine] == ["run.start", "run.end"]
    start, end = mine
    assert start.input_message_id == run.input.message_id  # type: ignore[union-attr]
    assert start.run_client_id == "bob"
    assert (end.reason, end.error_code) == ("error", "rejected")
    assert end.error_message
    tree = await fold(channel)
    info = tree.run(run.run_id)  # type: ignore[arg-type]
    assert info is not None and info.status == "error"
    assert info.error is not None and info.error.code == "rejected"
    first_info = tree.run(active.run.run_id)  # type: ignore[arg-type]
    assert first_info is not None and first_info.status == "complete"


async def test_reject_with_nothing_active_just_starts(bus: ait.Bus, channel_name: str) -> None:
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name) as session:
        run = await second_run(session, channel, "reject")
        await run.start()
        result = await finish(run)
    assert result.reason == "complete"
