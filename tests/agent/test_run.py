"""A run's lifecycle on a real channel: the full exchange, the conversation it loads, the
order of calls, failures of the provider, suspend and resume, and inputs that never come."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

import ait
from ait.testing import ScriptedProvider

from .helpers import (
    Clock,
    answer,
    entries,
    events,
    fold,
    invocation,
    publish_input,
)

# -- the full exchange --------------------------------------------------------------------------


async def test_full_exchange(bus: ait.Bus, channel_name: str) -> None:
    channel = bus.channel(channel_name)
    input_entry, sent = await publish_input(channel, "hi")
    provider = ScriptedProvider(["Hel", "lo", " there"], delay=0.001)
    async with ait.AgentSession(bus, channel_name) as session:
        run = session.create_run(ait.Invocation(channel=channel_name, input_event_id=sent.event_id))
        assert run.state == "created"
        await run.start()
        assert run.state == "started" and run.run_id and not run.resumed
        assert run.input == sent and run.input_entry_id == input_entry

        conversation = await run.load_conversation()
        assert [(m.id, m.role, m.text) for m in conversation] == [(sent.message_id, "user", "hi")]

        result = await run.pipe(provider.stream(conversation))
        assert result.reason == "complete" and result.error is None
        assert provider.requests == [conversation] and provider.emitted == 3
        assert run.state == "started"  # pipe never ends the run
        await run.end(result.reason)
        assert run.state == "ended"

        assert await session.active_runs() == {}  # the run left the channel's active set

    tree = await fold(channel)
    view = ait.View(tree)
    user, assistant = view.messages
    assert (user.id, user.role, user.text, user.status) == (
        sent.message_id,
        "user",
        "hi",
        "complete",
    )
    assert (assistant.id, assistant.role, assistant.text) == (
        result.message_id,
        "assistant",
        "Hello there",
    )
    assert assistant.status == "complete" and assistant.finish_reason == "stop"
    assert assistant.run_id == run.run_id and assistant.parent == sent.message_id

    info = tree.run(run.run_id)
    assert info is not None and info.status == "complete" and info.error is None
    assert info.message_ids == (result.message_id,)

    (start,) = await events(channel, "run.start")
    assert start.run_id == run.run_id
    assert start.invocation_id == run.invocation_id
    assert start.input_event_id == sent.event_id
    assert start.input_message_id == sent.message_id
    assert start.run_client_id == "alice"
    assert start.parent == sent.message_id
    assert start.fork_of is None and start.regenerate is None
    (end,) = await events(channel, "run.end")
    assert (end.run_id, end.reason, end.error_code) == (run.run_id, "complete", None)
    assert [e.type for e in await events(channel)][:2] == ["input", "run.start"]
    assert (await events(channel))[-1].type == "run.end"


async def test_a_run_can_be_given_its_ids(bus: ait.Bus, channel_name: str) -> None:
    channel = bus.channel(channel_name)
    _, sent = await publish_input(channel)
    async with ait.AgentSession(bus, channel_name) as session:
        run = session.create_run(invocation(channel, sent), run_id="r-fixed", invocation_id="i-1")
        await answer(run, ScriptedProvider())
    (start,) = await events(channel, "run.start")
    assert (start.run_id, start.invocation_id) == ("r-fixed", "i-1")


async def test_create_run_checks_the_channel_and_the_session(
    bus: ait.Bus, channel_name: str
) -> None:
    session = ait.AgentSession(bus, channel_name)
    with pytest.raises(ait.UsageError, match="unopened"):
        session.create_run(ait.Invocation(channel=channel_name, input_event_id="e"))
    async with session:
        with pytest.raises(ait.UsageError, match="other-channel"):
            session.create_run(ait.Invocation(channel="other-channel", input_event_id="e"))
    with pytest.raises(ait.UsageError, match="closed"):
        session.create_run(ait.Invocation(channel=channel_name, input_event_id="e"))
    with pytest.raises(ait.UsageError):
        async with session:
            pass


# -- the conversation a run loads ---------------------------------------------------------------


def echo_provider(label: str) -> ScriptedProvider:
    return ScriptedProvider([label])


async def run_once(
    session: ait.AgentSession, channel: ait.Channel, event: ait.Input, reply: str
) -> tuple[ait.Run, list[ait.Message], ait.PipeResult]:
    run = session.create_run(invocation(channel, event))
    await run.start()
    conversation = await run.load_conversation()
    result = await run.pipe(ScriptedProvider([reply]).stream(conversation))
    await run.end(result.reason)
    return run, conversation, result


def texts(messages: list[ait.Message]) -> list[str]:
    return [m.text for m in messages]


async def test_load_conversation_follows_only_the_branch_of_the_input(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name) as session:
        _, q1 = await publish_input(channel, "q1")
        _, c1, a1 = await run_once(session, channel, q1, "a1")
        assert texts(c1) == ["q1"]

        _, q2 = await publish_input(channel, "q2", parent=a1.message_id)
        _, c2, a2 = await run_once(session, channel, q2, "a2")
        assert texts(c2) == ["q1", "a1", "q2"]

        # An edit of q2: same parent, a new sibling that replaces it.
        _, q2e = await publish_input(
            channel, "q2 edited", parent=a1.message_id, fork_of=q2.message_id
        )
        run_edit, c3, a3 = await run_once(session, channel, q2e, "a3")
        assert texts(c3) == ["q1", "a1", "q2 edited"]

        # A regeneration of a2: a sibling run under q2; neither a2 nor the edit branch.
        _, regen = await publish_input(
            channel, "", parent=q2.message_id, regenerate=a2.message_id, payload=[]
        )
        run_regen, c4, a4 = await run_once(session, channel, regen, "a4")
        assert texts(c4) == ["q1", "a1", "q2"]
        assert [m.id for m in c4] == [q1.message_id, a1.message_id, q2.message_id]

        # A regeneration of the first answer sees the first question only.
        _, regen1 = await publish_input(
            channel, "", parent=q1.message_id, regenerate=a1.message_id, payload=[]
        )
        _, c5, _ = await run_once(session, channel, regen1, "a5")
        assert texts(c5) == ["q1"]

        # The edit branch continued: its conversation skips q2, a2 and the regeneration.
        _, q3 = await publish_input(channel, "q3", parent=a3.message_id)
        _, c6, _ = await run_once(session, channel, q3, "a6")
        assert texts(c6) == ["q1", "a1", "q2 edited", "a3", "q3"]

    starts = {e.run_id: e for e in await events(channel, "run.start")}
    assert starts[run_regen.run_id].regenerate == a2.message_id
    assert starts[run_regen.run_id].parent == q2.message_id
    assert starts[run_edit.run_id].fork_of == q2.message_id
    tree = await fold(channel)
    message = tree.message(a4.message_id)
    assert message is not None and message.parent == q2.message_id and message.text == "a4"


async def test_load_conversation_pages_back_through_a_long_history(
    bus: ait.Bus, channel_name: str
) -> None:
    """More than one page (500 entries) of other traffic between the branch's messages."""
    channel = bus.channel(channel_name)
    _, first = await publish_input(channel, "first")
    for i in range(1200):  # unrelated inputs of other branches
        await publish_input(channel, f"noise {i}", client="bob")
    _, second = await publish_input(channel, "second", parent=first.message_id)
    async with ait.AgentSession(bus, channel_name) as session:
        run = session.create_run(invocation(channel, second))
        await run.start()
        conversation = await run.load_conversation()
        await run.end()
    assert texts(conversation) == ["first", "second"]


def tool_call_stream(call_id: str) -> AsyncIterator[Any]:
    async def stream() -> AsyncIterator[Any]:
        yield "Let me look that up."
        yield {"type": "tool-input-start", "id": call_id, "name": "weather"}
        yield {
            "type": "tool-input-available",
            "id": call_id,
            "name": "weather",
            "input": {"city": "Paris"},
        }
        yield {"type": "finish", "finish_reason": "tool_calls", "status": "complete"}

    return stream()


async def test_suspend_then_a_tool_result_resumes_the_same_run(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    _, question = await publish_input(channel, "weather in Paris?")
    async with ait.AgentSession(bus, channel_name) as session:
        first = session.create_run(invocation(channel, question))
        await first.start()
        asked = await first.pipe(tool_call_stream("call-1"))
        assert asked.reason == "complete"
        await first.suspend()
        assert first.state == "suspended"
        assert await session.active_runs() == {}
        await first.suspend()  # idempotent
        await first.end()  # a no-op after suspend
        assert first.state == "suspended"

        assert first.run_id is not None
        _, result_input = await publish_input(
            channel,
            run_id=first.run_id,
            message_id=asked.message_id,
            payload=ait.ChatCodec.tool_result("call-1", {"celsius": 21}),
        )
        second = session.create_run(invocation(channel, result_input))
        await second.start()
        assert second.resumed and second.run_id == first.run_id
        assert second.invocation_id != first.invocation_id
        assert list(await session.active_runs()) == [first.run_id]

        conversation = await second.load_conversation()
        assert [m.id for m in conversation] == [question.message_id, asked.message_id]
        (call,) = [p for p in conversation[1].parts if isinstance(p, ait.conversation.ToolCallPart)]
        assert call.state == "output-available" and call.output == {"celsius": 21}
        assert call.input == {"city": "Paris"}

        final = await second.pipe(ScriptedProvider(["21 degrees"]).stream(conversation))
        await second.end(final.reason)

    lifecycle = [e for e in await events(channel) if e.type.startswith("run.")]
    assert [e.type for e in lifecycle] == ["run.start", "run.suspend", "run.resume", "run.end"]
    assert {e.run_id for e in lifecycle} == {first.run_id}
    resume = lifecycle[2]
    assert resume.input_event_id == result_input.event_id
    assert resume.input_message_id == asked.message_id
    assert resume.invocation_id == second.invocation_id
    outputs = [e for e in await events(channel, "output") if e.message_id == final.message_id]
    assert {e.parent for e in outputs} == {asked.message_id}  # after the run's last message

    tree = await fold(channel)
    info = tree.run(first.run_id)
    assert info is not None and info.status == "complete"
    assert info.message_ids == (asked.message_id, final.message_id)
    assert [m.id for m in ait.View(tree).messages] == [
        question.message_id,
        asked.message_id,
        final.message_id,
    ]
    assert tree.path_to(final.message_id)[-1].text == "21 degrees"


async def test_a_resumed_run_in_another_session_continues_after_its_last_message(
    bus: ait.Bus, channel_name: str
) -> None:
    """The invocation that resumes may land on another agent process (nothing in memory),
    and the tool result may target a message that is not the run's last: the new output
    follows the run's last message all the same."""
    channel = bus.channel(channel_name)
    _, question = await publish_input(channel, "go")
    async with ait.AgentSession(bus, channel_name) as session:
        first = session.create_run(invocation(channel, question))
        await first.start()
        asked = await first.pipe(tool_call_stream("c9"))
        waiting = await first.pipe(ScriptedProvider(["waiting for the tool"]).stream())
        await first.suspend()
    assert first.run_id is not None
    _, tool_result = await publish_input(
        channel,
        run_id=first.run_id,
        message_id=asked.message_id,
        payload=ait.ChatCodec.tool_result("c9", "ok"),
    )
    async with ait.AgentSession(bus, channel_name) as other:
        second = other.create_run(invocation(channel, tool_result))
        await second.start()
        assert second.resumed and second.run_id == first.run_id
        conversation = await second.load_conversation()
        final = await second.pipe(ScriptedProvider(["done"]).stream())
        await second.end()
    assert [m.id for m in conversation] == [
        question.message_id,
        asked.message_id,
        waiting.message_id,
    ]
    (call,) = [p for p in conversation[1].parts if isinstance(p, ait.conversation.ToolCallPart)]
    assert call.output == "ok"
    parents = {e.message_id: e.parent for e in await events(channel, "output")}
    assert parents[asked.message_id] == question.message_id
    assert parents[waiting.message_id] == asked.message_id  # within one invocation
    assert parents[final.message_id] == waiting.message_id  # across the resume
    tree = await fold(channel)
    assert [m.id for m in ait.View(tree).messages] == [
        question.message_id,
        asked.message_id,
        waiting.message_id,
        final.message_id,
    ]


# -- the order of calls -------------------------------------------------------------------------


async def test_calls_out_of_order_raise_usage_errors(bus: ait.Bus, channel_name: str) -> None:
    channel = bus.channel(channel_name)
    _, sent = await publish_input(channel)
    async with ait.AgentSession(bus, channel_name) as session:
        run = session.create_run(invocation(channel, sent))
        with pytest.raises(ait.UsageError, match="start"):
            await run.pipe(ScriptedProvider().stream())
        with pytest.raises(ait.UsageError, match="start"):
            await run.end()
        with pytest.raises(ait.UsageError, match="start"):
            await run.suspend()
        with pytest.raises(ait.UsageError, match="start"):
            await run.load_conversation()
        assert await entries(channel) == [(await entries(channel))[0]]  # only the input

        await run.start()
        with pytest.raises(ait.UsageError, match="started"):
            await run.start()
        await run.end()
        with pytest.raises(ait.UsageError, match="ended"):
            await run.start()
        with pytest.raises(ait.UsageError, match="ended"):
            await run.pipe(ScriptedProvider().stream())
        await run.end()  # idempotent
        await run.end("error", code="late")  # still nothing
        await run.suspend()  # nothing either
        assert run.state == "ended"
    assert [e.type for e in await events(channel)] == ["input", "run.start", "run.end"]


async def test_end_with_an_error_puts_code_and_message_on_the_wire(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name) as session:
        _, a = await publish_input(channel, "a")
        _, b = await publish_input(channel, "b")
        _, c = await publish_input(channel, "c")
        run_a = session.create_run(invocation(channel, a))
        await run_a.start()
        await run_a.end("error", error=TimeoutError("the model took too long"))
        run_b = session.create_run(invocation(channel, b))
        await run_b.start()
        await run_b.end("error", code="quota", message="out of credits")
        run_c = session.create_run(invocation(channel, c))
        await run_c.start()
        await run_c.end("error")
    ends = {e.run_id: e for e in await events(channel, "run.end")}
    assert (ends[run_a.run_id].error_code, ends[run_a.run_id].error_message) == (
        "timeout-error",
        "the model took too long",
    )
    assert (ends[run_b.run_id].error_code, ends[run_b.run_id].error_message) == (
        "quota",
        "out of credits",
    )
    assert ends[run_c.run_id].reason == "error"
    assert ends[run_c.run_id].error_code and ends[run_c.run_id].error_message
    info = (await fold(channel)).run(run_a.run_id)
    assert info is not None and info.status == "error"
    assert info.error is not None and info.error.code == "timeout-error"


async def test_a_provider_failure_mid_stream_is_an_error_result(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    _, sent = await publish_input(channel)
    boom = ValueError("the model fell over")
    provider = ScriptedProvider(["one ", "two ", "three"], fail_after=2, error=boom)
    async with ait.AgentSession(bus, channel_name) as session:
        run = session.create_run(invocation(channel, sent))
        result = await answer(run, provider)
    assert result.reason == "error" and result.error is boom
    assert provider.emitted == 2

    message = (await fold(channel)).message(result.message_id)
    assert message is not None
    assert message.text == "one two "  # what was streamed stays
    assert message.status == "error" and message.finish_reason == "error"
    assert message.error is not None
    assert (message.error.code, message.error.message) == ("value-error", "the model fell over")
    payload = [item for e in await events(channel, "output") for item in e.payload]
    assert payload[-2:] == [
        {"type": "error", "code": "value-error", "message": "the model fell over"},
        {"type": "finish", "finish_reason": "error", "status": "error"},
    ]
    (end,) = await events(channel, "run.end")
    assert (end.reason, end.error_code, end.error_message) == (
        "error",
        "value-error",
        "the model fell over",
    )


async def test_a_failure_before_the_first_token_and_a_bad_item(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    _, sent = await publish_input(channel)

    async def bad_items() -> AsyncIterator[Any]:
        yield "fine"
        yield 42  # not something a message can hold

    async with ait.AgentSession(bus, channel_name) as session:
        run = session.create_run(invocation(channel, sent))
        await run.start()
        early = await run.pipe(ScriptedProvider(fail_after=0).stream())
        assert early.reason == "error" and isinstance(early.error, RuntimeError)
        assert early.items == 0
        bad = await run.pipe(bad_items())
        assert bad.reason == "error" and isinstance(bad.error, ait.CodecError)
        assert run.state == "started"
        await run.end()
    tree = await fold(channel)
    for result in (early, bad):
        message = tree.message(result.message_id)
        assert message is not None and message.status == "error"
    assert tree.message(bad.message_id).text == "fine"  # type: ignore[union-attr]


async def test_pipe_without_finish_closes_the_message(bus: ait.Bus, channel_name: str) -> None:
    channel = bus.channel(channel_name)
    _, sent = await publish_input(channel)

    async def plain() -> AsyncIterator[str]:
        yield "just "
        yield "text"

    async with ait.AgentSession(bus, channel_name) as session:
        run = session.create_run(invocation(channel, sent))
        await run.start()
        result = await run.pipe(plain())
        # a second message of the same run follows the first one
        again = await run.pipe(plain(), role="assistant")
        await run.end()
    assert result.items == 2
    tree = await fold(channel)
    message = tree.message(result.message_id)
    assert message is not None and message.status == "complete" and message.text == "just text"
    follow = tree.message(again.message_id)
    assert follow is not None and follow.parent == result.message_id


# -- inputs that do not come --------------------------------------------------------------------


async def test_an_input_that_never_comes_raises_and_publishes_nothing(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name, input_timeout=0.5) as session:
        run = session.create_run(ait.Invocation(channel=channel_name, input_event_id="nowhere"))
        clock = Clock()
        with pytest.raises(ait.InputNotFound) as caught:
            await run.start()
        assert 0.45 <= clock.elapsed() < 2.0
        assert caught.value.input_event_id == "nowhere" and caught.value.channel == channel_name
        assert run.state == "created" and run.run_id is None
        assert await session.active_runs() == {}

        # the session goes on working
        _, sent = await publish_input(channel)
        await answer(session.create_run(invocation(channel, sent)), ScriptedProvider())
    assert [e.type for e in await events(channel)][0] == "input"
    assert await channel.length() == len(await entries(channel))
    assert not any(e.type.startswith("run.") and e.run_id is None for e in await events(channel))
    starts = await events(channel, "run.start")
    assert len(starts) == 1 and starts[0].input_event_id == sent.event_id


async def test_nothing_at_all_is_published_for_a_missing_input(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name, input_timeout=0.3) as session:
        run = session.create_run(ait.Invocation(channel=channel_name, input_event_id="missing"))
        with pytest.raises(ait.InputNotFound):
            await run.start()
    assert await channel.length() == 0


async def test_an_input_published_while_start_waits_is_found(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    event = ait.Input(
        event_id="late-input",
        message_id="late-message",
        role="user",
        client_id="alice",
        payload=ait.ChatCodec.user_text("sorry I'm late"),
    )
    async with ait.AgentSession(bus, channel_name, input_timeout=2.0) as session:
        run = session.create_run(invocation(channel, event))
        clock = Clock()
        async with anyio.create_task_group() as tg:
            tg.start_soon(run.start)
            await anyio.sleep(0.2)
            assert run.state == "created"
            await channel.publish(event)
        assert clock.elapsed() < 1.5
        assert run.state == "started" and run.input == event
        assert texts(await run.load_conversation()) == ["sorry I'm late"]
        await run.end()


async def test_an_input_older_than_the_rewind_is_found_in_history(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    _, old = await publish_input(channel, "from before")
    for i in range(700):  # more than one page of history above it
        await publish_input(channel, f"later {i}", client="bob")
    await anyio.sleep(0.01)
    async with ait.AgentSession(bus, channel_name, rewind=0.0, input_timeout=0.5) as session:
        run = session.create_run(invocation(channel, old))
        await run.start()
        assert run.input == old
        assert texts(await run.load_conversation()) == ["from before"]
        await run.end()


async def test_an_input_replayed_by_the_rewind_is_found_without_waiting(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    _, sent = await publish_input(channel)
    async with ait.AgentSession(bus, channel_name, input_timeout=0.2) as session:
        run = session.create_run(invocation(channel, sent))
        clock = Clock()
        await run.start()
        assert clock.elapsed() < 0.2
        await run.end()
