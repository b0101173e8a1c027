"""Tool calls and continuations: what `pipe` reports of a model's tool calls, results the agent
publishes itself, writing more of an earlier message, and who gets to resume a suspended run."""

from __future__ import annotations

import anyio
import pytest

import ait
from ait import ToolCall
from ait.providers import ToolCallEnd, ToolCallStart
from ait.testing import ScriptedProvider

from .helpers import entries, events, fold, invocation, publish_input, raises


def weather_call(call_id: str = "c1") -> ScriptedProvider:
    return ScriptedProvider(
        [
            "Checking.",
            ToolCallStart(id=call_id, name="weather"),
            ToolCallEnd(id=call_id, name="weather", arguments={"city": "Paris"}),
        ],
        finish_reason="tool_calls",
    )


async def test_pipe_reports_the_tool_calls_finish_reason_and_usage(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    _, question = await publish_input(channel, "weather?")
    async with ait.AgentSession(bus, channel_name) as session:
        run = session.create_run(invocation(channel, question))
        await run.start()
        result = await run.pipe(weather_call().stream())
        plain = await run.pipe(ScriptedProvider(["a", "b"], finish_reason="length").stream())
        await run.end()
    assert result.reason == "complete"
    assert result.tool_calls == (ToolCall("c1", "weather", {"city": "Paris"}),)
    assert result.finish_reason == "tool_calls"
    assert result.usage == {"prompt_tokens": 0, "completion_tokens": 3}
    assert plain.tool_calls == () and plain.finish_reason == "length"
    assert plain.usage == {"prompt_tokens": 0, "completion_tokens": 2}


async def test_a_stream_without_finish_has_no_reason_or_usage(
    bus: ait.Bus, channel_name: str
) -> None:
    async def bare():
        yield "just text"

    channel = bus.channel(channel_name)
    _, question = await publish_input(channel)
    async with ait.AgentSession(bus, channel_name) as session:
        run = session.create_run(invocation(channel, question))
        await run.start()
        result = await run.pipe(bare())
        await run.end()
    assert (result.finish_reason, result.usage, result.tool_calls) == (None, None, ())


async def test_the_agents_tool_result_lands_in_the_message_of_the_call(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    _, question = await publish_input(channel, "weather in Paris and Rome?")
    async with ait.AgentSession(bus, channel_name) as session:
        run = session.create_run(invocation(channel, question))
        await run.start()
        asked = await run.pipe(
            ScriptedProvider(
                [
                    ToolCallStart(id="paris", name="weather"),
                    ToolCallEnd(id="paris", name="weather", arguments={"city": "Paris"}),
                    ToolCallStart(id="rome", name="weather"),
                    ToolCallEnd(id="rome", name="weather", arguments={"city": "Rome"}),
                ]
            ).stream()
        )
        assert [call.id for call in asked.tool_calls] == ["paris", "rome"]
        await run.tool_result("paris", {"celsius": 21})
        await run.tool_result("rome", error="the weather service is down")
        with pytest.raises(ait.UsageError, match="no tool call 'oslo'"):
            await run.tool_result("oslo", 3)
        answer = await run.pipe(ScriptedProvider(["21 in Paris; Rome unknown"]).stream())
        await run.end()

    parents = {e.message_id: e.parent for e in await events(channel, "output")}
    assert parents == {asked.message_id: question.message_id, answer.message_id: asked.message_id}
    tree = await fold(channel)
    (message,) = [m for m in tree.path_to(answer.message_id) if m.id == asked.message_id]
    calls = {p.id: p for p in message.parts if isinstance(p, ait.conversation.ToolCallPart)}
    assert calls["paris"].state == "output-available" and calls["paris"].output == {"celsius": 21}
    assert calls["rome"].state == "output-error"
    assert calls["rome"].error == "the weather service is down"


async def test_tool_result_before_start_is_a_usage_error(bus: ait.Bus, channel_name: str) -> None:
    channel = bus.channel(channel_name)
    _, question = await publish_input(channel)
    async with ait.AgentSession(bus, channel_name) as session:
        run = session.create_run(invocation(channel, question))
        with pytest.raises(ait.UsageError, match="start"):
            await run.tool_result("c1", 1)


async def test_piping_into_an_earlier_message_keeps_its_place(
    bus: ait.Bus, channel_name: str
) -> None:
    """More of an earlier message keeps that message's parent, and the next new message
    still follows the run's newest message (no accidental branch)."""
    channel = bus.channel(channel_name)
    _, question = await publish_input(channel)
    async with ait.AgentSession(bus, channel_name) as session:
        run = session.create_run(invocation(channel, question))
        await run.start()
        first = await run.pipe(ScriptedProvider(["one"]).stream())
        second = await run.pipe(ScriptedProvider(["two"]).stream())
        again = await run.pipe(ScriptedProvider([" more"]).stream(), message_id=first.message_id)
        third = await run.pipe(ScriptedProvider(["three"]).stream())
        await run.end()
    assert again.message_id == first.message_id
    outputs = await events(channel, "output")
    parents: dict[str, set[str]] = {}
    for event in outputs:
        parents.setdefault(event.message_id, set()).add(event.parent)
    assert parents == {
        first.message_id: {question.message_id},
        second.message_id: {first.message_id},
        third.message_id: {second.message_id},
    }
    tree = await fold(channel)
    view = ait.View(tree)
    assert [m.id for m in view.messages] == [
        question.message_id,
        first.message_id,
        second.message_id,
        third.message_id,
    ]
    assert view.messages[1].text == "one more"


async def suspended_with_a_result(bus: ait.Bus, channel_name: str) -> tuple[str, ait.Input, str]:
    """A run that asked for a tool and suspended, and the client's result input for it.

    Returns the run id, the result input, and the message holding the call.
    """
    channel = bus.channel(channel_name)
    _, question = await publish_input(channel, "weather?")
    async with ait.AgentSession(bus, channel_name) as session:
        run = session.create_run(invocation(channel, question))
        await run.start()
        asked = await run.pipe(weather_call().stream())
        await run.suspend()
    assert run.run_id is not None
    _, result = await publish_input(
        channel,
        run_id=run.run_id,
        message_id=asked.message_id,
        payload=ait.ChatCodec.tool_result("c1", {"celsius": 21}),
    )
    return run.run_id, result, asked.message_id


async def test_a_resumed_run_can_answer_calls_made_before_it_suspended(
    bus: ait.Bus, channel_name: str
) -> None:
    """The calls (and their messages) come from the channel, not from memory: a resumed run
    in another process can publish results for the calls of the earlier invocation."""
    run_id, result, asked_id = await suspended_with_a_result(bus, channel_name)
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name) as session:
        resumed = session.create_run(invocation(channel, result))
        await resumed.start()
        assert resumed.resumed and resumed.run_id == run_id
        await resumed.tool_result("c1", {"celsius": 22})  # say, the agent re-checked
        more = await resumed.pipe(ScriptedProvider([" Done."]).stream(), message_id=asked_id)
        await resumed.end()
    assert more.message_id == asked_id
    outputs = [e for e in await events(channel, "output") if e.message_id == asked_id]
    assert {e.parent for e in outputs} == {(await events(channel, "input"))[0].message_id}
    tree = await fold(channel)
    info = tree.run(run_id)
    assert info is not None and info.message_ids == (asked_id,) and info.status == "complete"


async def test_only_one_of_two_agents_resumes_a_suspended_run(
    bus: ait.Bus, channel_name: str
) -> None:
    """Two agents woken for the same tool result (a doorbell retried, two workers): one
    resumes the run, the other gets RunConflict and publishes nothing."""
    run_id, result, _ = await suspended_with_a_result(bus, channel_name)
    channel = bus.channel(channel_name)
    outcomes: list[str] = []

    async def agent() -> None:
        async with ait.AgentSession(bus, channel_name) as session:
            run = session.create_run(invocation(channel, result))
            try:
                await run.start()
            except ait.RunConflict as exc:
                assert exc.run_id == run_id
                outcomes.append("conflict")
                return
            outcomes.append("resumed")
            await anyio.sleep(0.2)  # still active while the other one tries
            await run.end()

    async with anyio.create_task_group() as tg:
        tg.start_soon(agent)
        tg.start_soon(agent)
    assert sorted(outcomes) == ["conflict", "resumed"]
    lifecycle = [e.type for e in await events(channel) if e.type.startswith("run.")]
    assert lifecycle == ["run.start", "run.suspend", "run.resume", "run.end"]


async def test_a_resume_that_lost_the_race_while_reading_conflicts(
    bus: ait.Bus, channel_name: str
) -> None:
    """B reads the run suspended, then A resumes it and ends it before B claims: B's claim
    goes through (A let go), but the run is not suspended any more: RunConflict, nothing
    published, no record left behind."""
    run_id, result, _ = await suspended_with_a_result(bus, channel_name)
    channel = bus.channel(channel_name)
    a_done = anyio.Event()
    async with ait.AgentSession(bus, channel_name) as late_session:
        late = late_session.create_run(invocation(channel, result))
        caught_up = late_session.catch_up

        async def slow_catch_up() -> None:  # B pauses between its check and its claim
            await a_done.wait()
            await caught_up()

        late_session.catch_up = slow_catch_up  # type: ignore[method-assign]

        async def first() -> None:
            async with ait.AgentSession(bus, channel_name) as session:
                run = session.create_run(invocation(channel, result))
                await run.start()
                await run.end()
            a_done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            conflict = await raises(ait.RunConflict, late.start())
        assert conflict.run_id == run_id and conflict.state == "ended"
        assert late.state == "created"
        assert late not in late_session._runs  # pyright: ignore[reportPrivateUsage]
        assert await late_session.active_runs() == {}
    lifecycle = [e.type for e in await events(channel) if e.type.startswith("run.")]
    assert lifecycle == ["run.start", "run.suspend", "run.resume", "run.end"]


async def test_a_continuation_of_an_ended_run_conflicts_and_publishes_nothing(
    bus: ait.Bus, channel_name: str
) -> None:
    run_id, result, _ = await suspended_with_a_result(bus, channel_name)
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name) as session:
        resumed = session.create_run(invocation(channel, result))
        await resumed.start()
        await resumed.end()
        before = len(await entries(channel))
        late = session.create_run(invocation(channel, result))
        conflict = await raises(ait.RunConflict, late.start())
        assert conflict.state == "ended" and "ended" in str(conflict)
        assert late.state == "created"
        assert late not in session._runs  # pyright: ignore[reportPrivateUsage]  # not kept
        assert await session.active_runs() == {}
    assert len(await entries(channel)) == before


async def test_a_continuation_of_an_unknown_run_conflicts(bus: ait.Bus, channel_name: str) -> None:
    channel = bus.channel(channel_name)
    _, stray = await publish_input(
        channel, run_id="no-such-run", payload=ait.ChatCodec.tool_result("c1", 1)
    )
    async with ait.AgentSession(bus, channel_name) as session:
        run = session.create_run(invocation(channel, stray))
        conflict = await raises(ait.RunConflict, run.start())
    assert conflict.state is None and "recent history" in str(conflict)
    assert [e.type for e in await events(channel)] == ["input"]


async def test_load_conversation_sees_what_the_run_published_since_its_input(
    bus: ait.Bus, channel_name: str
) -> None:
    """A tool loop: call, result, the model again. Each load includes the run's own newest
    message and the results published into it."""
    channel = bus.channel(channel_name)
    _, question = await publish_input(channel, "weather?")
    async with ait.AgentSession(bus, channel_name) as session:
        run = session.create_run(invocation(channel, question))
        await run.start()
        assert [m.id for m in await run.load_conversation()] == [question.message_id]
        asked = await run.pipe(weather_call().stream())
        await run.tool_result("c1", {"celsius": 21})
        loaded = await run.load_conversation()
        assert [m.id for m in loaded] == [question.message_id, asked.message_id]
        (call,) = [p for p in loaded[1].parts if isinstance(p, ait.conversation.ToolCallPart)]
        assert call.state == "output-available" and call.output == {"celsius": 21}
        answer = await run.pipe(ScriptedProvider(["21 degrees"]).stream())
        final = await run.load_conversation()
        await run.end()
    assert [m.id for m in final] == [question.message_id, asked.message_id, answer.message_id]
    assert final[-1].text == "21 degrees"


async def test_a_resumed_run_sees_the_first_tool_result_in_the_conversation(
    bus: ait.Bus, channel_name: str
) -> None:
    _, result, asked_id = await suspended_with_a_result(bus, channel_name)
    channel = bus.channel(channel_name)
    _, unrelated = await publish_input(channel, "meanwhile, on another branch")
    async with ait.AgentSession(bus, channel_name) as session:
        resumed = session.create_run(invocation(channel, result))
        await resumed.start()
        await resumed.tool_result("c1", {"celsius": 22})
        loaded = await resumed.load_conversation()
        await resumed.end()
    assert loaded[-1].id == asked_id
    assert unrelated.message_id not in [m.id for m in loaded]
    (call,) = [p for p in loaded[-1].parts if isinstance(p, ait.conversation.ToolCallPart)]
    # A call has one result, the first on the channel (the client's): every fold, the
    # agent's included, ignores a later one, so all agree on what the run resumed with.
    assert call.output == {"celsius": 21}
