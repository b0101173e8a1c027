"""What a view writes and how it wakes agents: tool results and approvals that resume a
suspended run, the three invoke modes, and writes that are refused before anything happens."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import pytest

import ait
from ait.client import ClientSession
from ait.conversation import ToolCallPart
from ait.testing import ScriptedProvider

from .helpers import Agent, Connect, ended, events, fold, serving, started, text_of, wait_for

# -- client-side tools and approvals ------------------------------------------------------------


async def items(*things: Any) -> AsyncIterator[Any]:
    for thing in things:
        yield thing


def tool_call(message: ait.Message, call_id: str) -> ToolCallPart:
    (part,) = [p for p in message.parts if isinstance(p, ToolCallPart) and p.id == call_id]
    return part


async def weather_agent(run: ait.Run) -> None:
    """Asks the client for the weather (a client-side tool), then answers with it."""
    await run.start()
    if not run.resumed:
        await run.pipe(
            items(
                "Let me look.",
                {
                    "type": "tool-input-available",
                    "id": "call1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
            )
        )
        await run.suspend()
        return
    conversation = await run.load_conversation()
    call = tool_call(conversation[-1], "call1")
    if call.state == "output-error":
        reply = f"The tool failed: {call.error}"
    else:
        reply = f"It is {call.output['celsius']} degrees in {call.input['city']}."
    result = await run.pipe(items(reply))
    await run.end(result.reason)


async def test_a_tool_result_resumes_the_same_run(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    agent.handler = weather_agent
    alice = await connect("alice")
    bob = await connect("bob")
    asked = await alice.view.send("weather in Paris?")
    suspended = await ended(asked)
    assert suspended.status == "suspended"
    (asking,) = suspended.message_ids
    call = tool_call(alice.view.messages[-1], "call1")
    assert (call.name, call.state, call.input) == (
        "get_weather",
        "input-available",
        {"city": "Paris"},
    )

    answered = await alice.view.send_tool_result("call1", {"celsius": 21})
    assert answered.known_run_id == suspended.run_id  # a continuation knows its run
    assert answered.message_id == asking  # the input amends the message that asked
    assert await started(answered) == suspended.run_id  # resolved by the run.resume
    pieces = await text_of(answered)
    final = await ended(answered)

    assert pieces == ["It is 21 degrees in Paris."]
    assert final.run_id == suspended.run_id and final.status == "complete"
    assert final.message_ids[0] == asking and len(final.message_ids) == 2
    user, tool_message, reply = alice.view.messages
    assert user.id == asked.message_id
    assert tool_message.id == asking and tool_message.text == "Let me look."
    call = tool_call(tool_message, "call1")
    assert call.state == "output-available" and call.output == {"celsius": 21}
    assert reply.text == "It is 21 degrees in Paris." and reply.run_id == suspended.run_id

    channel = bus.channel(channel_name)
    lifecycle = [e.type for e in await events(channel) if e.type.startswith("run.")]
    assert lifecycle == ["run.start", "run.suspend", "run.resume", "run.end"]
    (resume,) = await events(channel, "run.resume")
    assert resume.input_event_id == answered.input_event_id
    (result_input,) = [e for e in await events(channel, "input") if e.run_id is not None]
    assert (result_input.role, result_input.message_id) == ("tool", asking)
    # Bob, who never wrote, folds the same.
    await wait_for(
        lambda: [m.text for m in bob.view.messages] == [m.text for m in alice.view.messages]
    )
    assert tool_call(bob.view.messages[1], "call1").output == {"celsius": 21}


async def test_a_tool_error_resumes_the_run_too(agent: Agent, connect: Connect) -> None:
    agent.handler = weather_agent
    alice = await connect("alice")
    suspended = await ended(await alice.view.send("weather?"))
    failed = await alice.view.send_tool_result("call1", error="no network")
    final = await ended(failed)
    assert final.run_id == suspended.run_id and final.status == "complete"
    assert alice.view.messages[-1].text == "The tool failed: no network"
    call = tool_call(alice.view.messages[1], "call1")
    assert (call.state, call.error) == ("output-error", "no network")


async def approval_agent(run: ait.Run) -> None:
    """Asks for approval before deleting; answers how it went."""
    await run.start()
    if not run.resumed:
        await run.pipe(
            items(
                {
                    "type": "tool-input-available",
                    "id": "del1",
                    "name": "delete_files",
                    "input": {"path": "/tmp/x"},
                },
                {"type": "tool-approval-request", "id": "del1"},
            )
        )
        await run.suspend()
        return
    conversation = await run.load_conversation()
    call = tool_call(conversation[-1], "del1")
    if call.approval == "approved":
        reply = "Deleted."
    else:
        reply = f"Not deleted ({call.approval_reason or 'no reason'})."
    result = await run.pipe(items(reply))
    await run.end(result.reason)


@pytest.mark.parametrize(
    ("approved", "reason", "expected", "state"),
    [
        (True, None, "Deleted.", "approved"),
        (False, "too risky", "Not deleted (too risky).", "denied"),
    ],
)
async def test_an_approval_resumes_the_same_run(
    agent: Agent,
    connect: Connect,
    approved: bool,
    reason: str | None,
    expected: str,
    state: str,
) -> None:
    agent.handler = approval_agent
    alice = await connect("alice")
    suspended = await ended(await alice.view.send("clean up"))
    assert suspended.status == "suspended"
    assert tool_call(alice.view.messages[-1], "del1").approval == "requested"

    answer = await alice.view.approve("del1", approved, reason=reason)
    assert answer.known_run_id == suspended.run_id
    assert await started(answer) == suspended.run_id
    final = await ended(answer)
    assert final.status == "complete" and final.run_id == suspended.run_id
    assert alice.view.messages[-1].text == expected
    call = tool_call(alice.view.messages[1], "del1")
    assert (call.approval, call.approval_reason) == (state, reason)


async def parallel_calls_agent(run: ait.Run) -> None:
    """Calls two tools at once (one message), suspends once, answers with both results."""
    await run.start()
    if not run.resumed:
        await run.pipe(
            items(
                {"type": "tool-input-available", "id": "w", "name": "weather", "input": {}},
                {"type": "tool-input-available", "id": "t", "name": "time", "input": {}},
            )
        )
        await run.suspend()
        return
    conversation = await run.load_conversation()
    calls = [tool_call(conversation[-1], call_id) for call_id in ("w", "t")]
    described = ", ".join(f"{c.name}={c.output if c.error is None else c.error}" for c in calls)
    await run.end((await run.pipe(items(described))).reason)


async def test_parallel_tool_calls_are_answered_together(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    agent.handler = parallel_calls_agent
    alice = await connect("alice")
    suspended = await ended(await alice.view.send("weather and time?"))
    assert suspended.status == "suspended"

    answered = await alice.view.send_tool_results({"w": "sunny"}, errors={"t": "no clock"})
    final = await ended(answered)
    assert final.run_id == suspended.run_id and final.status == "complete"
    assert alice.view.messages[-1].text == "weather=sunny, time=no clock"
    channel = bus.channel(channel_name)
    lifecycle = [e.type for e in await events(channel) if e.type.startswith("run.")]
    assert lifecycle == ["run.start", "run.suspend", "run.resume", "run.end"]  # one resume
    (answer,) = [e for e in await events(channel, "input") if e.run_id is not None]
    assert [(item["type"], item["id"]) for item in answer.payload] == [
        ("tool-output-available", "w"),
        ("tool-output-error", "t"),
    ]


async def test_answering_calls_together_is_checked(agent: Agent, connect: Connect) -> None:
    agent.handler = parallel_calls_agent
    alice = await connect("alice")
    await ended(await alice.view.send("weather and time?"))
    with pytest.raises(ait.UsageError, match="no tool results"):
        await alice.view.send_tool_results({})
    with pytest.raises(ait.UsageError, match=r"\['w'\] have both a result and an error"):
        await alice.view.send_tool_results({"w": 1}, errors={"w": "x"})
    with pytest.raises(ait.UsageError, match="no tool call 'nope'"):
        await alice.view.send_tool_results({"w": 1, "nope": 2})
    await ended(await alice.view.send_tool_results({"w": 1, "t": 2}))

    agent.handler = weather_agent  # a second run, whose call is in another message
    await ended(await alice.view.send("weather?"))
    with pytest.raises(ait.UsageError, match="not all of one message"):
        await alice.view.send_tool_results({"w": 1, "call1": 2})


async def test_parallel_calls_answered_apart_resume_the_run_once_with_both(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    """The run suspended awaiting both calls: the first answer is on the channel and the
    run stays suspended (its agent acknowledges the invocation quietly); the second
    resumes it with both, and both answers' handles follow the run to its end."""
    agent.handler = parallel_calls_agent
    alice = await connect("alice")
    suspended = await ended(await alice.view.send("weather and time?"))
    assert suspended.status == "suspended" and suspended.awaiting == ("w", "t")
    channel = bus.channel(channel_name)
    worker = agent.worker
    assert worker is not None

    weather = await alice.view.send_tool_result("w", "sunny")
    await wait_for(lambda: len(agent.runs) == 2 and worker.stats["acked"] == 2)
    lifecycle = [e.type for e in await events(channel) if e.type.startswith("run.")]
    assert lifecycle == ["run.start", "run.suspend"]  # nothing published for it
    assert agent.errors == []  # waiting for an answer is not a failure
    run = alice.tree.run(suspended.run_id)
    assert run is not None and run.status == "suspended" and run.awaiting == ("w", "t")
    assert not weather.done

    clock = await alice.view.send_tool_result("t", error="no clock")
    for answer in (weather, clock):
        final = await ended(answer)
        assert final.run_id == suspended.run_id and final.status == "complete"
        assert final.awaiting == ()
    assert alice.view.messages[-1].text == "weather=sunny, time=no clock"
    lifecycle = [e.type for e in await events(channel) if e.type.startswith("run.")]
    assert lifecycle == ["run.start", "run.suspend", "run.resume", "run.end"]
    (resume,) = await events(channel, "run.resume")
    assert resume.input_event_id == weather.input_event_id  # the first answer on the channel
    assert resume.answers == (weather.input_event_id, clock.input_event_id)
    assert agent.errors == []


async def test_two_clients_answering_one_call_each_both_follow_the_run(
    agent: Agent, connect: Connect
) -> None:
    agent.handler = parallel_calls_agent
    alice = await connect("alice")
    bob = await connect("bob")
    suspended = await ended(await alice.view.send("weather and time?"))
    await wait_for(lambda: getattr(bob.tree.run(suspended.run_id), "status", "") == "suspended")

    from_alice = await alice.view.send_tool_result("w", "rain")
    from_bob = await bob.view.send_tool_result("t", "noon")
    texts = [await text_of(from_alice), await text_of(from_bob)]
    assert texts == [["weather=rain, time=noon"]] * 2  # each handle streams the answer
    for answer in (from_alice, from_bob):
        assert await started(answer) == suspended.run_id
        assert (await ended(answer)).status == "complete"


async def test_answers_a_resume_took_are_not_reported_by_the_worker(
    bus: ait.Bus, pool_name: str, connect: Connect
) -> None:
    """Both answers are on the channel before any agent is woken: the first invocation
    resumes the run with both; the second finds its answer taken, which is no failure."""
    alice = await connect("alice", invoke=None)  # opened outside the worker's task group
    async with serving(bus, pool_name, handler=parallel_calls_agent, concurrency=1) as agent:
        asked = await alice.view.send("weather and time?")
        queue = bus.pool(pool_name)
        await queue.enqueue(asked.to_invocation())
        assert (await ended(asked)).status == "suspended"
        weather = await alice.view.send_tool_result("w", "fog")
        clock = await alice.view.send_tool_result("t", "dawn")
        await wait_for(lambda: weather.echoed and clock.echoed)
        await queue.enqueue(weather.to_invocation())
        await queue.enqueue(clock.to_invocation())
        for answer in (weather, clock):
            assert (await ended(answer)).status == "complete"
        worker = agent.worker
        assert worker is not None
        await wait_for(lambda: worker.stats["acked"] == 3)
        assert agent.errors == []
        assert alice.view.messages[-1].text == "weather=fog, time=dawn"


async def test_an_answer_the_run_would_refuse_is_refused_at_once(
    bus: ait.Bus, channel_name: str, pool_name: str, agent: Agent, connect: Connect
) -> None:
    """A second result for a call, a second approval, an answer to a run that ended: the
    agent would refuse each (RunConflict) and publish nothing, so the view refuses them
    before sending, instead of leaving an ActiveRun that never resolves."""
    agent.handler = weather_agent
    alice = await connect("alice")
    await ended(await alice.view.send("weather?"))
    await ended(await alice.view.send_tool_result("call1", {"celsius": 21}))
    channel = bus.channel(channel_name)

    async def refused(write: Callable[[], Awaitable[Any]], message: str) -> None:
        before = len(await events(channel))
        queued = await bus.pool(pool_name).length()
        with pytest.raises(ait.UsageError, match=message):
            await write()
        assert len(await events(channel)) == before  # nothing published
        assert await bus.pool(pool_name).length() == queued  # no agent woken

    view = alice.view
    await refused(lambda: view.send_tool_result("call1", 22), "'call1' has its result already")
    await refused(lambda: view.send_tool_result("call1", error="x"), "has its result already")

    agent.handler = approval_agent
    await ended(await alice.view.send("clean up"))
    await ended(await alice.view.approve("del1", True))
    await refused(lambda: view.approve("del1", False), "approval of tool call 'del1' was answered")


@pytest.mark.parametrize("first_agent", ["alice's", "bob's"])
async def test_of_two_clients_answering_at_once_the_first_answer_counts(
    bus: ait.Bus, channel_name: str, connect: Connect, first_agent: str
) -> None:
    """Both answers to one call are on the channel (alice's first) before any agent acts.
    Whichever agent gets there first, the run resumes with alice's answer, as every fold
    shows it; the other agent gets RunConflict and publishes nothing. Bob's ActiveRun
    learns from the channel that the run resumed with another answer, and raises
    AnswerRefused instead of waiting forever."""
    alice = await connect("alice", invoke=None)
    bob = await connect("bob", invoke=None)
    conflicts: list[str] = []

    async def answer(active: ait.ActiveRun) -> None:
        async with ait.AgentSession(bus, channel_name) as session:
            run = session.create_run(active.to_invocation())
            try:
                await weather_agent(run)
            except ait.RunConflict as exc:
                conflicts.append(str(exc.state))

    asked = await alice.view.send("weather?")
    await answer(asked)
    assert (await ended(asked)).status == "suspended"
    run_id = asked.known_run_id or ""
    await wait_for(lambda: getattr(bob.tree.run(run_id), "status", None) == "suspended")

    # At once: each view checks its tree before either answer comes back from Redis.
    sent: dict[str, ait.ActiveRun] = {}

    async def send(name: str, view: ait.ClientView, celsius: int) -> None:
        sent[name] = await view.send_tool_result("call1", {"celsius": celsius})

    async with anyio.create_task_group() as tg:
        tg.start_soon(send, "alice", alice.view, 21)
        tg.start_soon(send, "bob", bob.view, 5)
    from_alice, from_bob = sent["alice"], sent["bob"]
    await wait_for(lambda: from_bob.echoed and from_alice.echoed)
    order = [e.event_id for e in await events(bus.channel(channel_name), "input") if e.run_id]
    assert order == [from_alice.input_event_id, from_bob.input_event_id]  # alice's first
    if first_agent == "alice's":
        await answer(from_alice)
        await answer(from_bob)
    else:
        await answer(from_bob)  # resumes the run with alice's answer, the first
        await answer(from_alice)
    assert conflicts == ["ended"]  # the second agent found the run over, and did nothing

    assert (await ended(from_alice)).status == "complete"
    with pytest.raises(ait.AnswerRefused, match="resumed by another answer") as refused:
        await ended(from_bob)
    assert refused.value.run_id == run_id
    with pytest.raises(ait.AnswerRefused):
        await started(from_bob)
    assert [text async for text in from_bob.text_stream()] == []
    (resume,) = await events(bus.channel(channel_name), "run.resume")
    assert resume.input_event_id == from_alice.input_event_id
    for client in (alice, bob):
        await wait_for(lambda c=client: c.view.messages[-1].text == "It is 21 degrees in Paris.")
        assert tool_call(client.view.messages[1], "call1").output == {"celsius": 21}


async def test_an_answer_to_an_ended_run_is_refused(agent: Agent, connect: Connect) -> None:
    async def asks_then_gives_up(run: ait.Run) -> None:
        await run.start()
        await run.pipe(items({"type": "tool-input-available", "id": "c9", "name": "f"}))
        await run.end("complete")  # never suspends for the answer

    agent.handler = asks_then_gives_up
    alice = await connect("alice")
    await ended(await alice.view.send("go"))
    with pytest.raises(ait.UsageError, match="ended \\(complete\\); it takes no more answers"):
        await alice.view.send_tool_result("c9", 1)


async def test_a_run_cancelled_while_suspended_ends_cancelled_and_refuses_answers(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    """Nobody holds a suspended run: the agent woken by the next answer finds the cancel,
    ends the run `cancelled` instead of resuming it, and the answer is refused; an answer
    sent after that is refused at once, as for any finished run."""
    agent.handler = weather_agent
    alice = await connect("alice")
    suspended = await ended(await alice.view.send("weather in Paris?"))
    assert suspended.status == "suspended"
    await alice.cancel(suspended.run_id)
    await wait_for(lambda: alice.tree.run(suspended.run_id).cancel_requested)  # type: ignore[union-attr]

    answered = await alice.view.send_tool_result("call1", {"celsius": 21})
    with anyio.fail_after(20), pytest.raises(ait.AnswerRefused, match="cancelled"):
        await answered.wait()
    info = alice.tree.run(suspended.run_id)
    assert info is not None and (info.status, info.cancel_requested) == ("cancelled", True)
    channel = bus.channel(channel_name)
    lifecycle = [e.type for e in await events(channel) if e.type.startswith("run.")]
    assert lifecycle == ["run.start", "run.suspend", "run.end"]
    assert (await fold(channel)).run(suspended.run_id).status == "cancelled"  # type: ignore[union-attr]
    with pytest.raises(ait.UsageError):  # refused before anything is published
        await alice.view.send_tool_result("call1", {"celsius": 22})
    await wait_for(lambda: agent.worker is not None and agent.worker.stats["acked"] == 2)
    assert agent.errors == []  # ending it as asked is nothing to report


async def test_an_answer_waits_for_the_run_to_suspend(agent: Agent, connect: Connect) -> None:
    """A client quick to answer (the call is shown while the run is still active) is not
    refused by the agent: the view sends the answer once the run has suspended."""
    shown = anyio.Event()
    go_on = anyio.Event()

    async def slow_to_suspend(run: ait.Run) -> None:
        await run.start()
        if run.resumed:
            await run.end((await run.pipe(items("Thanks."))).reason)
            return
        await run.pipe(items({"type": "tool-input-available", "id": "q1", "name": "f"}))
        shown.set()
        await go_on.wait()
        await run.suspend()

    agent.handler = slow_to_suspend
    alice = await connect("alice")
    asked = await alice.view.send("go")
    await shown.wait()
    await wait_for(lambda: any(p.type == "tool-call" for p in alice.view.messages[-1].parts))
    assert (await asked.run_id) and alice.tree.run(await asked.run_id).status == "active"  # type: ignore[union-attr]
    async with anyio.create_task_group() as tg:
        answered: list[ait.ActiveRun] = []

        async def answer() -> None:
            answered.append(await alice.view.send_tool_result("q1", 42))

        tg.start_soon(answer)
        await anyio.sleep(0.1)
        assert answered == []  # held while the run is active
        go_on.set()
    final = await ended(answered[0])
    assert final.status == "complete" and final.run_id == await asked.run_id
    assert alice.view.messages[-1].text == "Thanks."


async def test_cancelling_a_resumed_run_by_its_handle(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    slow = ScriptedProvider([f"t{i} " for i in range(2000)], delay=0.002)

    async def handler(run: ait.Run) -> None:
        await run.start()
        if not run.resumed:
            await run.pipe(items({"type": "tool-input-available", "id": "c", "name": "f"}))
            await run.suspend()
            return
        result = await run.pipe(slow.stream())
        await run.end(result.reason)

    agent.handler = handler
    alice = await connect("alice")
    suspended = await ended(await alice.view.send("go"))
    resumed = await alice.view.send_tool_result("c", 1)
    async for _ in resumed.text_stream():
        await resumed.cancel()  # by run id: known from the start
        break
    final = await ended(resumed)
    assert final.run_id == suspended.run_id and final.status == "cancelled"
    (cancel,) = await events(bus.channel(channel_name), "cancel")
    assert cancel.run_id == suspended.run_id


# -- invoke modes -------------------------------------------------------------------------------


async def test_invoke_none_publishes_without_queueing(
    bus: ait.Bus, channel_name: str, pool_name: str, connect: Connect
) -> None:
    pool = bus.pool(pool_name)
    alice = await connect("alice", invoke=None)
    active = await alice.view.send("just a note")
    assert await pool.length() == 0
    (sent,) = await events(bus.channel(channel_name), "input")
    assert sent.event_id == active.input_event_id
    await wait_for(lambda: not alice.view.messages[0].optimistic)
    assert active.known_run_id is None

    # The pool mode (the default) queues exactly one invocation per write.
    bob = await connect("bob")
    queued = await bob.view.send("wake someone")
    assert await pool.length() == 1
    try:
        ((_, invocation),) = await pool.read("probe", 10, 10)
    finally:
        await pool.aclose()  # reads hold a connection of their own
    assert isinstance(invocation, ait.Invocation)
    assert (invocation.channel, invocation.input_event_id) == (
        channel_name,
        queued.input_event_id,
    )


async def test_invoke_callable_is_an_http_doorbell(
    bus: ait.Bus, channel_name: str, pool_name: str
) -> None:
    """A function given the invocation, as a web app would POST it to its endpoint."""
    received: list[ait.Invocation] = []
    provider = ScriptedProvider(["rang", " the bell"])

    async with anyio.create_task_group() as tg, ait.AgentSession(bus, channel_name) as agent:

        async def answer(invocation: ait.Invocation) -> None:
            run = agent.create_run(invocation)
            await run.start()
            result = await run.pipe(provider.stream(await run.load_conversation()))
            await run.end(result.reason)

        async def doorbell(invocation: ait.Invocation) -> None:
            # What the endpoint gets is JSON: make the round trip a server would.
            received.append(ait.Invocation.from_json(invocation.model_dump_json()))
            tg.start_soon(answer, received[-1])

        async with ClientSession(
            bus, channel_name, client_id="alice", pool=pool_name, invoke=doorbell
        ) as alice:
            active = await alice.view.send("ding")
            assert received == [active.to_invocation()]
            assert received[0].channel == channel_name
            assert received[0].input_event_id == active.input_event_id
            info = await ended(active)
            assert info.status == "complete"
            assert alice.view.messages[-1].text == "rang the bell"
    assert await bus.pool(pool_name).length() == 0  # the pool was never used


async def test_a_failing_doorbell_raises_but_the_input_is_on_the_channel(
    bus: ait.Bus, channel_name: str, connect: Connect
) -> None:
    async def broken(invocation: ait.Invocation) -> None:
        raise ConnectionRefusedError("the endpoint is down")

    attempts: list[ait.Invocation] = []

    async def recovers(invocation: ait.Invocation) -> None:
        attempts.append(invocation)

    alice = await connect("alice", invoke=broken)
    with pytest.raises(ait.InvokeFailed) as info:
        await alice.view.send("hello?")
    assert isinstance(info.value.__cause__, ConnectionRefusedError)
    (sent,) = await events(bus.channel(channel_name), "input")
    await wait_for(
        lambda: [(m.id, m.optimistic) for m in alice.view.messages] == [(sent.message_id, False)]
    )
    # The handle survives the failure: waking an agent can be tried again.
    active = info.value.active_run
    assert active.input_event_id == sent.event_id
    alice.invoke = recovers
    await active.invoke()
    assert [a.input_event_id for a in attempts] == [sent.event_id]


async def test_a_retried_doorbell_gets_the_input_answered_once(
    bus: ait.Bus, channel_name: str, pool_name: str, connect: Connect
) -> None:
    """The doorbell queued the invocation, then raised (its reply was lost); the caller
    rings again, as documented: two invocations of one input, one run, nothing reported."""
    queue = bus.pool(pool_name)
    rings = 0

    async def queues_then_fails_once(invocation: ait.Invocation) -> None:
        nonlocal rings
        rings += 1
        await queue.enqueue(invocation)
        if rings == 1:
            raise ConnectionResetError("the reply was lost")

    alice = await connect("alice", invoke=queues_then_fails_once)
    with pytest.raises(ait.InvokeFailed) as failed:
        await alice.view.send("hello?")
    active = failed.value.active_run
    await active.invoke()
    assert await queue.length() == 2
    async with serving(bus, pool_name) as agent:  # both invocations are waiting for it
        info = await ended(active)
        await wait_for(lambda: agent.worker is not None and agent.worker.stats["acked"] == 2)
    assert info.status == "complete"
    assert len(await events(bus.channel(channel_name), "run.start")) == 1
    assert agent.errors == []


async def test_a_hanging_doorbell_fails_the_write_in_time_with_the_handle(
    bus: ait.Bus, channel_name: str, connect: Connect
) -> None:
    """A doorbell that never answers must not hold `send()`: after `invoke_timeout` the
    write raises InvokeFailed, with the live ActiveRun (to cancel, or to ring again)."""
    rung = anyio.Event()

    async def hangs(invocation: ait.Invocation) -> None:
        rung.set()
        await anyio.sleep_forever()

    alice = await connect("alice", invoke=hangs, invoke_timeout=0.2)
    with anyio.fail_after(10), pytest.raises(ait.InvokeFailed) as failed:
        await alice.view.send("anyone?")
    assert rung.is_set() and isinstance(failed.value.__cause__, TimeoutError)
    assert "invoke_timeout" in str(failed.value.__cause__)
    active = failed.value.active_run
    (sent,) = await events(bus.channel(channel_name), "input")
    assert active.input_event_id == sent.event_id
    await active.cancel()  # there is a handle to act on
    (cancel,) = await events(bus.channel(channel_name), "cancel")
    assert cancel.input_message_id == active.message_id
    with anyio.fail_after(10), pytest.raises(TimeoutError):
        await active.invoke()  # ringing again is bounded too


async def test_pool_per_send_routes_to_another_pool(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    gpu = f"{agent.pool}-gpu"
    alice = await connect("alice")  # opened outside the worker's task group: nesting
    async with serving(bus, gpu, provider=ScriptedProvider(["from the gpu pool"])) as big:
        default = await alice.view.send("small question")
        routed = await alice.view.send("big question", pool=gpu)
        first, second = await ended(default), await ended(routed)
        assert [r.run_id for r in agent.runs] == [first.run_id]
        assert [r.run_id for r in big.runs] == [second.run_id]
        assert alice.tree.snapshot(second.message_ids[0]).text == "from the gpu pool"
        assert alice.tree.snapshot(first.message_ids[0]).text == "Hello there"
    # A session-wide pool works the same way.
    bob = ClientSession(bus, channel_name, client_id="bob", pool=gpu)
    assert bob.pool == gpu


async def test_a_session_may_use_another_pool_by_default(
    bus: ait.Bus, channel_name: str, pool_name: str, connect: Connect
) -> None:
    other = f"{pool_name}-b"
    alice = await connect("alice", pool=other)
    async with serving(bus, other, provider=ScriptedProvider(["b"])) as agent_b:
        info = await ended(await alice.view.send("x"))
        assert [r.run_id for r in agent_b.runs] == [info.run_id]
    assert await bus.pool(pool_name).length() == 0


# -- refused writes -----------------------------------------------------------------------------


async def test_writing_after_close_is_a_usage_error(
    bus: ait.Bus, channel_name: str, pool_name: str, agent: Agent, connect: Connect
) -> None:
    alice = await connect("alice")
    active = await alice.view.send("hi")
    info = await ended(active)
    await alice.aclose()
    await alice.aclose()  # idempotent
    channel = bus.channel(channel_name)
    before = len(await events(channel))
    queued = await bus.pool(pool_name).length()

    with pytest.raises(ait.UsageError, match="unable to send; the session is closed"):
        await alice.view.send("too late")
    with pytest.raises(ait.UsageError, match="unable to regenerate; the session is closed"):
        await alice.view.regenerate(info.message_ids[0])
    with pytest.raises(ait.UsageError, match="unable to edit; the session is closed"):
        await alice.view.edit(active.message_id, "too late")
    with pytest.raises(ait.UsageError, match="unable to answer a tool call; the session is"):
        await alice.view.approve("call-1")
    with pytest.raises(ait.UsageError, match="unable to publish; the session is closed"):
        await alice.cancel_all()
    with pytest.raises(ait.UsageError, match="unable to publish; the session is closed"):
        await active.cancel()
    with pytest.raises(ait.UsageError, match="unable to create a view; the session is closed"):
        alice.create_view()
    assert len(await events(channel)) == before
    assert await bus.pool(pool_name).length() == queued
    # Nothing was folded either.
    assert [m.id for m in alice.view.messages] == [active.message_id, info.message_ids[0]]


async def test_a_closed_view_writes_nothing(
    bus: ait.Bus, channel_name: str, pool_name: str, agent: Agent, connect: Connect
) -> None:
    """A closed view stops following the tree: its last message is stale, and a write from
    it would fork the conversation there. Every write is refused."""
    alice = await connect("alice")
    active = await alice.view.send("hi")
    info = await ended(active)
    extra = alice.create_view()
    extra.close()
    extra.close()  # idempotent
    assert extra.closed and not alice.view.closed
    await ended(await alice.view.send("later"))
    channel = bus.channel(channel_name)
    before = len(await events(channel))
    queued = await bus.pool(pool_name).length()

    with pytest.raises(ait.UsageError, match="unable to send; the view is closed"):
        await extra.send("x")
    with pytest.raises(ait.UsageError, match="unable to edit; the view is closed"):
        await extra.edit(active.message_id, "x")
    with pytest.raises(ait.UsageError, match="unable to regenerate; the view is closed"):
        await extra.regenerate(info.message_ids[0])
    with pytest.raises(ait.UsageError, match="unable to answer a tool call; the view is closed"):
        await extra.send_tool_result("call-1", 1)
    with pytest.raises(ait.UsageError, match="unable to answer a tool call; the view is closed"):
        await extra.send_tool_results({"call-1": 1})
    with pytest.raises(ait.UsageError, match="unable to answer a tool call; the view is closed"):
        await extra.approve("call-1")
    assert len(await events(channel)) == before
    assert await bus.pool(pool_name).length() == queued
    assert len(alice.view.messages) == 4  # the open view still writes
    await ended(await alice.view.send("still fine"))


async def test_a_view_window_below_one_is_refused(connect: Connect) -> None:
    alice = await connect("alice", invoke=None, window=3)
    for window in (0, -1):
        with pytest.raises(ait.UsageError, match=f"at least 1 message, not {window}"):
            alice.create_view(window=window)
    assert alice.create_view().initial_window == 3  # None: the session's window
    assert alice.create_view(window=1).initial_window == 1


async def test_a_session_is_used_once(bus: ait.Bus, channel_name: str) -> None:
    session = ClientSession(bus, channel_name, client_id="alice")
    with pytest.raises(ait.UsageError, match="not open yet"):
        _ = session.view
    with pytest.raises(ait.UsageError, match="unable to create a view; the session is unopened"):
        session.create_view()
    async with session:
        with pytest.raises(ait.UsageError, match="it is open"):
            await session.__aenter__()
    with pytest.raises(ait.UsageError, match="it is closed"):
        async with session:
            pass
    with pytest.raises(ait.UsageError, match="client_id"):
        ClientSession(bus, channel_name, client_id="")
    with pytest.raises(ait.UsageError, match="window must be at least 1 message, not 0"):
        ClientSession(bus, channel_name, client_id="alice", window=0)
    with pytest.raises(ait.InvalidName):
        ClientSession(bus, "no spaces here", client_id="alice")


async def test_opening_on_a_closed_bus_is_a_usage_error(redis_url: str, channel_name: str) -> None:
    async with ait.Bus.from_url(redis_url) as bus:
        pass
    with pytest.raises(ait.UsageError, match="the bus is closed"):
        async with ClientSession(bus, channel_name, client_id="alice"):
            pass


async def test_an_input_over_the_size_limit_is_refused_before_anything(
    redis_url: str, channel_name: str, pool_name: str
) -> None:
    async with ait.Bus.from_url(redis_url, max_entry_bytes=4096) as small:
        channel = small.channel(channel_name)
        async with ClientSession(small, channel_name, client_id="alice", pool=pool_name) as alice:
            changes: list[ait.ViewChange] = []
            alice.view.on_change(changes.append)
            with pytest.raises(ait.EntryTooLarge) as caught:
                await alice.view.send("x" * 10_000)
            assert caught.value.size > 4096  # type: ignore[attr-defined]
            assert alice.view.messages == [] and len(alice.tree) == 0
            assert changes == []  # not even shown for a moment
            assert await channel.length() == 0
            assert await small.pool(pool_name).length() == 0
            assert alice._pending == {}  # pyright: ignore[reportPrivateUsage]
            # A write that fits still goes.
            await alice.view.send("x" * 1000)
            await wait_for(lambda: len(alice.tree) == 1 and not alice.view.messages[0].optimistic)


async def test_a_payload_that_is_not_codec_events_is_refused(
    bus: ait.Bus, channel_name: str, connect: Connect
) -> None:
    alice = await connect("alice", invoke=None)
    with pytest.raises(ait.CodecError):
        await alice.view.send([{"type": "no-such-event"}])
    with pytest.raises(ait.CodecError):
        await alice.view.send([{"type": "text-delta", "id": "t0"}])  # no delta
    assert alice.view.messages == []
    assert await bus.channel(channel_name).length() == 0


@pytest.mark.fault
async def test_a_failed_publish_takes_the_optimistic_message_back(
    persistent_redis: ait.EmbeddedRedis, channel_name: str
) -> None:
    async with (
        ait.Bus.from_url(persistent_redis.url, command_timeout=2, connect_timeout=1) as bus,
        ClientSession(bus, channel_name, client_id="alice", invoke=None) as alice,
    ):
        kept = await alice.view.send("before the crash")
        await wait_for(lambda: not alice.view.messages[0].optimistic)
        shown_during: list[list[str]] = []
        alice.view.on_change(lambda _: shown_during.append([m.id for m in alice.view.messages]))
        persistent_redis.kill()
        with pytest.raises(ait.BusError):
            await alice.view.send("during the crash")
        # It was shown optimistically for a moment, then taken back.
        assert len(shown_during) == 2 and len(shown_during[0]) == 2
        assert [m.id for m in alice.view.messages] == [kept.message_id]
        assert shown_during[-1] == [kept.message_id]
        pending = alice._pending  # pyright: ignore[reportPrivateUsage]
        assert list(pending) == [kept.input_event_id]  # the failed one is not waited for
        await anyio.to_thread.run_sync(persistent_redis.start)
        # The session recovers: the next send goes and is echoed.
        again = await alice.view.send("after the crash")
        await wait_for(
            lambda: (
                [m.id for m in alice.view.messages] == [kept.message_id, again.message_id]
                and not alice.view.messages[-1].optimistic
            )
        )
        tree = await fold(bus.channel(channel_name))
        assert [m.text for m in ait.View(tree).messages] == ["before the crash", "after the crash"]


async def test_a_write_with_invalid_arguments_is_a_usage_error(
    bus: ait.Bus, channel_name: str, pool_name: str, connect: Connect
) -> None:
    """Bad arguments are refused before anything is folded, published or queued, and the
    session writes on."""
    alice = await connect("alice")
    first = await alice.view.send("hello")
    channel = bus.channel(channel_name)
    before = len(await events(channel))
    queued = await bus.pool(pool_name).length()

    view = alice.view
    cases: list[tuple[Callable[[], Awaitable[Any]], str]] = [
        (lambda: view.send("x", headers={"run-id": "r1"}), "extra_headers repeat named headers"),
        (lambda: view.send("x", role=""), "role: String should have at least 1 character"),
        (lambda: view.send("x", headers={"x-n": 5}), r"extra_headers\.x-n: Input should be"),
        (lambda: view.send(12), r"list of ChatCodec events \(mappings\); got int"),
        (lambda: view.send(["text"]), "got list"),
        (lambda: view.edit(first.message_id, "y", headers={"parent": "p"}), "repeat named"),
    ]
    for write, message in cases:
        with pytest.raises(ait.UsageError, match=message):
            await write()
    assert len(await events(channel)) == before
    assert await bus.pool(pool_name).length() == queued
    assert [m.id for m in alice.view.messages] == [first.message_id]

    second = await alice.view.send("still here")
    assert [m.id for m in alice.view.messages] == [first.message_id, second.message_id]
