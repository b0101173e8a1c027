"""A cancel aimed at a suspended run: nobody holds the run, so it is honoured by whoever
next can. The agent woken by the next answer ends the run `cancelled` instead of resuming
it (`RunCancelled`); a run whose cancel was honoured while active never suspends."""

from __future__ import annotations

import anyio

import ait
from ait.ids import new_id

from .helpers import events, fold, invocation, publish_input, raises
from .test_continuations import suspended_with_a_result


async def cancel(channel: ait.Channel, run_id: str, client: str = "alice") -> None:
    await channel.publish(ait.Cancel(event_id=new_id(), client_id=client, run_id=run_id))


def lifecycle(found: list[ait.Event]) -> list[str]:
    return [e.type for e in found if e.type.startswith("run.")]


async def test_the_answer_to_a_cancelled_suspended_run_ends_it_cancelled(
    bus: ait.Bus, channel_name: str
) -> None:
    run_id, result, _ = await suspended_with_a_result(bus, channel_name)
    channel = bus.channel(channel_name)
    await cancel(channel, run_id)
    async with ait.AgentSession(bus, channel_name) as session:
        run = session.create_run(invocation(channel, result))
        stopped = await raises(ait.RunCancelled, run.start())
        assert isinstance(stopped, ait.RunConflict)  # code that returns on a conflict still does
        assert (stopped.run_id, stopped.state, stopped.taken) == (run_id, "ended", False)
        assert run.state == "ended" and run.cancelled and not run.resumed
        assert run.cancel_request is not None and run.cancel_request.cancel.run_id == run_id
        assert await session.active_runs() == {}
    assert lifecycle(await events(channel)) == ["run.start", "run.suspend", "run.end"]
    (end,) = await events(channel, "run.end")
    assert (end.reason, end.invocation_id) == ("cancelled", run.invocation_id)
    info = (await fold(channel)).run(run_id)
    assert info is not None and (info.status, info.cancel_requested) == ("cancelled", True)
    async with ait.AgentSession(bus, channel_name) as session:  # a second answer: too late
        late = session.create_run(invocation(channel, result))
        conflict = await raises(ait.RunConflict, late.start())
        assert conflict.state == "ended" and not isinstance(conflict, ait.RunCancelled)


async def test_a_cancel_sent_long_before_the_answer_is_found_in_the_runs_history(
    bus: ait.Bus, channel_name: str
) -> None:
    """The cancel is older than the agent's rewind window (none here): it is read back
    with the run's history, as the run itself is."""
    run_id, result, _ = await suspended_with_a_result(bus, channel_name)
    channel = bus.channel(channel_name)
    await cancel(channel, run_id)
    async with ait.AgentSession(bus, channel_name, rewind=0) as session:
        run = session.create_run(invocation(channel, result))
        await raises(ait.RunCancelled, run.start())
    assert [e.reason for e in await events(channel, "run.end")] == ["cancelled"]


async def test_a_cancel_all_while_suspended_targets_the_run(
    bus: ait.Bus, channel_name: str
) -> None:
    run_id, result, _ = await suspended_with_a_result(bus, channel_name)
    channel = bus.channel(channel_name)
    await channel.publish(ait.Cancel(event_id=new_id(), client_id="alice", scope="client"))
    async with ait.AgentSession(bus, channel_name) as session:
        await raises(ait.RunCancelled, session.create_run(invocation(channel, result)).start())
    info = (await fold(channel)).run(run_id)
    assert info is not None and (info.status, info.cancel_requested) == ("cancelled", True)


async def test_a_refused_cancel_lets_the_answer_resume_the_run(
    bus: ait.Bus, channel_name: str
) -> None:
    run_id, result, _ = await suspended_with_a_result(bus, channel_name)
    channel = bus.channel(channel_name)
    await cancel(channel, run_id, client="mallory")
    judged: list[str] = []

    def only_alice(request: ait.CancelRequest) -> bool:
        judged.append(request.cancel.client_id)
        return request.cancel.client_id == "alice"

    async with ait.AgentSession(bus, channel_name, on_cancel=only_alice) as session:
        run = session.create_run(invocation(channel, result))
        await run.start()
        assert run.resumed and not run.cancelled
        await run.end()
    assert judged == ["mallory"]  # judged once, though the session also holds it
    assert lifecycle(await events(channel)) == ["run.start", "run.suspend", "run.resume", "run.end"]


async def test_a_cancel_honoured_before_the_suspend_ends_the_run_instead(
    bus: ait.Bus, channel_name: str
) -> None:
    """The cancel came after the last token but before the handler suspended: a suspend
    would let the next answer run on what the user asked to stop."""
    channel = bus.channel(channel_name)
    _, question = await publish_input(channel, "weather?")
    async with ait.AgentSession(bus, channel_name) as session:
        run = session.create_run(invocation(channel, question))
        await run.start()
        assert run.run_id is not None
        await cancel(channel, run.run_id)
        with anyio.fail_after(10):
            await run.wait_cancelled()
        await run.suspend()
        assert run.state == "ended"
    assert lifecycle(await events(channel)) == ["run.start", "run.end"]
    assert [e.reason for e in await events(channel, "run.end")] == ["cancelled"]
