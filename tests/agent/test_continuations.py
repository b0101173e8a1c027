"""Tool calls and continuations: what `pipe` reports of a model's tool calls, results the agent
publishes itself, writing more of an earlier message, and who gets to resume a suspended run."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import msgpack  # pyright: ignore[reportMissingTypeStubs]
import pytest

import ait
from ait import RunHistory, ToolCall
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


async def test_the_loser_of_a_resume_waits_for_the_winners_resume_to_say_taken(
    bus: ait.Bus, channel_name: str
) -> None:
    """Two workers woken for the same answer: the winner has claimed the run but not yet
    published its run.resume when the loser's claim fails. The loser waits for it, and
    learns its answer was taken: a quiet conflict, never reported."""
    run_id, result, _ = await suspended_with_a_result(bus, channel_name)
    channel = bus.channel(channel_name)
    winner = ait.RunResume(
        run_id=run_id,
        invocation_id="winner",
        input_event_id=result.event_id,
        input_message_id=result.message_id,
        run_client_id=result.client_id,
    )
    record = msgpack.packb({"input-event-id": result.event_id, "alive-at": int(time.time() * 1000)})
    assert await bus.handle.client.hsetnx(channel.key_for("active"), run_id, record)  # claimed
    async with ait.AgentSession(bus, channel_name) as session:
        tried = anyio.Event()
        claim = session.claim_active

        async def claiming(run: ait.Run) -> bool:
            held = await claim(run)
            tried.set()
            return held

        session.claim_active = claiming  # type: ignore[method-assign]
        loser = session.create_run(invocation(channel, result))
        outcome: list[ait.RunConflict] = []

        async def start() -> None:
            outcome.append(await raises(ait.RunConflict, loser.start()))

        async with anyio.create_task_group() as tg:
            tg.start_soon(start)
            with anyio.fail_after(10):
                await tried.wait()
            await channel.publish(winner)  # the winner's resume comes after the loser's try
        (conflict,) = outcome
    assert (conflict.run_id, conflict.state, conflict.taken) == (run_id, "active", True)
    lifecycle = [e.type for e in await events(channel) if e.type.startswith("run.")]
    assert lifecycle == ["run.start", "run.suspend", "run.resume"]


async def test_a_resume_that_lost_the_race_while_reading_conflicts(
    bus: ait.Bus, channel_name: str
) -> None:
    """B reads the run suspended, then A resumes it and ends it before B claims: B's claim
    goes through (A let go), but the run is not suspended any more: RunConflict, nothing
    published, no record left behind."""
    run_id, result, _ = await suspended_with_a_result(bus, channel_name)
    channel = bus.channel(channel_name)
    a_done, b_read = anyio.Event(), anyio.Event()
    async with ait.AgentSession(bus, channel_name) as late_session:
        late = late_session.create_run(invocation(channel, result))
        caught_up, read_history = late_session.catch_up, late_session.run_history

        async def reading_history(run_id: str) -> RunHistory:  # B reads it suspended...
            history = await read_history(run_id)
            b_read.set()
            return history

        async def slow_catch_up(since: str | None = None) -> None:  # ...and pauses
            await a_done.wait()
            await caught_up(since)

        late_session.run_history = reading_history  # type: ignore[method-assign]
        late_session.catch_up = slow_catch_up  # type: ignore[method-assign]

        async def first() -> None:
            await b_read.wait()  # A resumes the run only once B has read it suspended
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


# -- runs waiting for several answers -------------------------------------------------------------


def two_calls(*extra: object) -> ScriptedProvider:
    """A model that calls two tools at once (one message), then whatever `extra` says."""
    return ScriptedProvider(
        [
            ToolCallEnd(id="a", name="weather", arguments={}),
            ToolCallEnd(id="b", name="time", arguments={}),
            *extra,
        ],
        finish_reason="tool_calls",
    )


@asynccontextmanager
async def started_run(
    bus: ait.Bus, channel: ait.Channel, event: ait.Input
) -> AsyncIterator[ait.Run]:
    """A run of its own session, started for `event`: `start()` has returned."""
    async with ait.AgentSession(bus, channel.name) as session:
        run = session.create_run(invocation(channel, event))
        await run.start()
        yield run


async def suspend_after(
    bus: ait.Bus, channel_name: str, provider: ScriptedProvider, **suspend: object
) -> tuple[str, str, ait.RunSuspend]:
    """Run one invocation: pipe `provider`, then `suspend(**suspend)`. Returns the run id,
    the message holding the calls, and the run.suspend as it is on the channel."""
    channel = bus.channel(channel_name)
    _, question = await publish_input(channel, "weather and time?")
    async with started_run(bus, channel, question) as run:
        asked = await run.pipe(provider.stream())
        await run.suspend(**suspend)  # type: ignore[arg-type]
    assert run.run_id is not None
    (suspended,) = await events(channel, "run.suspend")
    return run.run_id, asked.message_id, suspended


async def answer(
    bus: ait.Bus, channel_name: str, run_id: str, message_id: str, *calls: str
) -> ait.Input:
    _, result = await publish_input(
        bus.channel(channel_name),
        run_id=run_id,
        message_id=message_id,
        payload=[e for call in calls for e in ait.ChatCodec.tool_result(call, f"{call}!")],
    )
    return result


async def test_a_run_waits_for_every_call_it_left_open(bus: ait.Bus, channel_name: str) -> None:
    """By default a suspend awaits the calls of this invocation without a result: an answer
    to one of two is AwaitingAnswers (nothing published, nothing held); the answer to the
    other resumes the run with both, the first on the channel named."""
    channel = bus.channel(channel_name)
    run_id, message_id, suspended = await suspend_after(bus, channel_name, two_calls())
    assert suspended.awaiting == ("a", "b")

    first = await answer(bus, channel_name, run_id, message_id, "a")
    async with ait.AgentSession(bus, channel_name) as session:
        early = session.create_run(invocation(channel, first))
        waiting = await raises(ait.AwaitingAnswers, early.start())
        assert (waiting.run_id, waiting.missing, waiting.state) == (run_id, ("b",), "suspended")
        assert isinstance(waiting, ait.RunConflict)  # code that returns on a conflict still does
        assert early.state == "created"
        assert early not in session._runs  # pyright: ignore[reportPrivateUsage]
        assert await session.active_runs() == {}
    assert [e.type for e in await events(channel) if e.type.startswith("run.")] == [
        "run.start",
        "run.suspend",
    ]

    second = await answer(bus, channel_name, run_id, message_id, "b")
    async with started_run(bus, channel, second) as last:
        assert last.resumed and last.run_id == run_id
        assert last.input is not None and last.input.event_id == first.event_id
        assert [a.event_id for a in last.answers] == [first.event_id, second.event_id]
        conversation = await last.load_conversation()
        calls = {p.id: p.output for p in conversation[-1].parts if p.type == "tool-call"}
        assert calls == {"a": "a!", "b": "b!"}
        await last.end()
    (resume,) = await events(channel, "run.resume")
    assert resume.answers == (first.event_id, second.event_id)
    assert resume.input_event_id == first.event_id


async def test_an_answer_that_repeats_another_is_not_taken(bus: ait.Bus, channel_name: str) -> None:
    run_id, message_id, _ = await suspend_after(bus, channel_name, two_calls())
    first = await answer(bus, channel_name, run_id, message_id, "a")
    await answer(bus, channel_name, run_id, message_id, "a")  # a second client, same call
    last = await answer(bus, channel_name, run_id, message_id, "b")
    channel = bus.channel(channel_name)
    async with started_run(bus, channel, last) as run:
        assert [a.event_id for a in run.answers] == [first.event_id, last.event_id]
        await run.end()


async def test_the_calls_a_run_waits_for_can_be_named(bus: ait.Bus, channel_name: str) -> None:
    """`awaiting=["a"]`: the run will run `b` itself once resumed; the answer to `a` alone
    resumes it."""
    run_id, message_id, suspended = await suspend_after(
        bus, channel_name, two_calls(), awaiting=["a"]
    )
    assert suspended.awaiting == ("a",)
    result = await answer(bus, channel_name, run_id, message_id, "a")
    channel = bus.channel(channel_name)
    async with started_run(bus, channel, result) as run:
        assert run.resumed and [a.event_id for a in run.answers] == [result.event_id]
        await run.end()
    (resume,) = await events(channel, "run.resume")
    assert resume.payload is None  # one answer: the header names it, no list
    assert resume.answers == (result.event_id,)


@pytest.mark.parametrize(
    ("extra", "awaited"),
    [
        # The agent published b's result itself: only a is left to a client.
        ([{"type": "tool-output-available", "id": "b", "output": 1}], ("a",)),
        # It asked approval of b: it waits for that answer only, and runs the calls itself.
        ([{"type": "tool-approval-request", "id": "b"}], ("b",)),
    ],
)
async def test_the_default_waits_for_approvals_else_for_calls_without_result(
    bus: ait.Bus, channel_name: str, extra: list[object], awaited: tuple[str, ...]
) -> None:
    _, _, suspended = await suspend_after(bus, channel_name, two_calls(*extra))
    assert suspended.awaiting == awaited


async def test_with_nothing_awaited_the_first_answer_resumes(
    bus: ait.Bus, channel_name: str
) -> None:
    run_id, message_id, suspended = await suspend_after(bus, channel_name, two_calls(), awaiting=())
    assert suspended.payload is None and suspended.awaiting == ()
    result = await answer(bus, channel_name, run_id, message_id, "a")
    channel = bus.channel(channel_name)
    async with started_run(bus, channel, result) as run:
        assert run.resumed
        await run.end()


@pytest.mark.parametrize(
    ("awaiting", "message"),
    [("a", "not one string"), ([""], "non-empty strings"), ([1], "non-empty strings")],
)
async def test_awaiting_that_is_not_call_ids_is_a_usage_error(
    bus: ait.Bus, channel_name: str, awaiting: object, message: str
) -> None:
    channel = bus.channel(channel_name)
    _, question = await publish_input(channel, "hi")
    async with started_run(bus, channel, question) as run:
        with pytest.raises(ait.UsageError, match=message):
            await run.suspend(awaiting=awaiting)  # type: ignore[arg-type]
        assert run.state == "started"  # nothing published: it may still end or suspend
        await run.end()
    assert [e.type for e in await events(channel) if e.type.startswith("run.")] == [
        "run.start",
        "run.end",
    ]


async def test_an_answer_its_run_took_already_is_a_quiet_conflict(
    bus: ait.Bus, channel_name: str
) -> None:
    """Both answers were on the channel when the first one's agent resumed the run: the
    second one's agent finds the run resumed with its answer. `taken` says nothing is
    wrong; an answer the run did not take conflicts without it."""
    channel = bus.channel(channel_name)
    run_id, message_id, _ = await suspend_after(bus, channel_name, two_calls())
    first = await answer(bus, channel_name, run_id, message_id, "a")
    second = await answer(bus, channel_name, run_id, message_id, "b")
    repeat = await answer(bus, channel_name, run_id, message_id, "b")  # not taken
    async with started_run(bus, channel, first) as run:
        assert [a.event_id for a in run.answers] == [first.event_id, second.event_id]
        for late, taken in ((second, True), (repeat, False)):
            other = run.session.create_run(invocation(channel, late))
            conflict = await raises(ait.RunConflict, other.start())
            assert (conflict.state, conflict.taken) == ("active", taken)
        await run.end()
    async with ait.AgentSession(bus, channel_name) as session:
        conflict = await raises(
            ait.RunConflict, session.create_run(invocation(channel, second)).start()
        )
        assert (conflict.state, conflict.taken) == ("ended", True)
        assert "took this answer already" in str(conflict)
