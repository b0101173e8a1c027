"""Edits and regenerations make branches; each view picks its own branch by the view rules:
its own edit at once, its own regenerate when the new run has a message, other views (of
this client or another) stay pinned on what they showed, a late joiner shows the newest
siblings."""

from __future__ import annotations

import ait
from ait.testing import ScriptedProvider

from .helpers import Agent, Connect, ended, events, serving, shown, started, status, wait_for


def texts(view: ait.View) -> list[str]:
    return [m.text for m in view.messages]


async def test_edit_and_regenerate_across_views_and_clients(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    channel = bus.channel(channel_name)
    answers = iter(["first answer", "second answer", "edited answer"])
    agent.provider = ScriptedProvider(lambda _: [next(answers)], first_token_delay=0.05)
    alice = await connect("alice")
    alice_other = alice.create_view()
    bob = await connect("bob")

    asked = await alice.view.send("hi")
    first = await ended(asked)
    (a1,) = first.message_ids
    u1 = asked.message_id
    for view in (alice.view, alice_other, bob.view):
        await wait_for(lambda v=view: texts(v) == ["hi", "first answer"])

    # -- regenerate: the regenerating view selects the new run with its first message -------
    redo = await alice.view.regenerate(a1)
    assert texts(alice.view) == ["hi", "first answer"]  # nothing runs yet: unchanged
    second_run = await started(redo)
    assert second_run != first.run_id
    # Started: the old answer stays until the new one has a word (then that one shows).
    assert [m.id for m in alice.view.messages][0] == u1 and len(alice.view.messages) == 2
    second = await ended(redo)
    (a2,) = second.message_ids
    assert texts(alice.view) == ["hi", "second answer"]
    assert alice.view.selected_index(a2) == 1
    assert [m.id for m in alice.view.siblings(a2)] == [a1, a2]
    assert [m.id for m in alice.view.siblings(a1)] == [a1, a2]
    (request,) = [e for e in await events(channel, "input") if e.regenerate is not None]
    assert request.regenerate == a1 and request.parent == u1
    assert request.event_id == redo.input_event_id
    # Not a message: the regenerate request is never shown, not even optimistically.
    assert redo.message_id not in {m.id for m in alice.view.messages}
    assert alice.tree.message(redo.message_id) is None

    # Other views stay where they were: alice's second view, and bob's.
    await wait_for(lambda: bob.tree.run(second_run) is not None)
    await wait_for(lambda: status(bob.tree, second_run) == "complete")
    assert texts(alice_other) == ["hi", "first answer"]
    assert texts(bob.view) == ["hi", "first answer"]
    assert bob.view.selected_index(a1) == 0
    assert [m.id for m in bob.view.siblings(a1)] == [a1, a2]

    # A late joiner shows the newest sibling.
    carol = await connect("carol")
    assert texts(carol.view) == ["hi", "second answer"]
    await carol.aclose()

    # -- edit: the editing view selects its edit at once ---------------------------------
    edited = await alice.view.edit(u1, "hello")
    assert texts(alice.view)[0] == "hello"  # before the run, maybe before the echo
    assert alice.view.messages[0].id == edited.message_id
    third = await ended(edited)
    (a3,) = third.message_ids
    assert texts(alice.view) == ["hello", "edited answer"]
    assert [m.id for m in alice.view.siblings(edited.message_id)] == [u1, edited.message_id]
    assert alice.view.selected_index(u1) == 1
    (edit_event,) = [e for e in await events(channel, "input") if e.fork_of is not None]
    assert (edit_event.fork_of, edit_event.parent) == (u1, None)
    assert agent.conversations[third.run_id][0].text == "hello"
    assert [m.id for m in agent.conversations[third.run_id]] == [edited.message_id]

    await wait_for(lambda: bob.tree.run(third.run_id) is not None)
    await wait_for(lambda: status(bob.tree, third.run_id) == "complete")
    assert texts(bob.view) == ["hi", "first answer"]  # pinned
    assert texts(alice_other) == ["hi", "first answer"]

    # -- siblings() / select() switch branches ---------------------------------------------
    bob.view.select(u1, 1)
    assert texts(bob.view) == ["hello", "edited answer"]
    bob.view.select(u1, 0)
    assert texts(bob.view) == ["hi", "first answer"]
    bob.view.select(a1, 1)
    assert texts(bob.view) == ["hi", "second answer"]
    assert bob.view.selected_index(a2) == 1
    # One view's selection never moves another's.
    assert texts(alice.view) == ["hello", "edited answer"]
    assert texts(alice_other) == ["hi", "first answer"]
    alice.view.select(u1, 0)
    assert texts(alice.view) == ["hi", "second answer"]  # alice picked the regeneration

    # A late joiner shows the newest siblings: the edit, then its only answer.
    dave = await connect("dave")
    assert texts(dave.view) == ["hello", "edited answer"]
    assert dave.view.selected_index(u1) == 1


async def test_a_send_from_a_view_continues_the_branch_that_view_shows(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    alice = await connect("alice")
    other = alice.create_view()
    first = await alice.view.send("hi")
    info = await ended(first)
    redo = await alice.view.regenerate(info.message_ids[0])
    regenerated = await ended(redo)
    await wait_for(lambda: len(other.messages) == 2)

    # `other` is pinned on the first answer, `alice.view` shows the regeneration.
    assert other.messages[-1].id == info.message_ids[0]
    assert alice.view.messages[-1].id == regenerated.message_ids[0]
    from_other = await other.send("follow-up on the first")
    from_main = await alice.view.send("follow-up on the second")
    for active in (from_other, from_main):
        await ended(active)
    inputs = {e.event_id: e for e in await events(bus.channel(channel_name), "input")}
    assert inputs[from_other.input_event_id].parent == info.message_ids[0]
    assert inputs[from_main.input_event_id].parent == regenerated.message_ids[0]
    assert [m.text for m in other.messages][-2:] == ["follow-up on the first", "Hello there"]
    assert [m.text for m in alice.view.messages][-2:] == ["follow-up on the second", "Hello there"]
    # The agent saw only the branch of each input.
    run_other = (await ended(from_other)).run_id
    assert [m.id for m in agent.conversations[run_other]] == [
        first.message_id,
        info.message_ids[0],
        from_other.message_id,
    ]


async def test_bad_branch_targets_are_usage_errors(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    alice = await connect("alice")
    active = await alice.view.send("hi")
    info = await ended(active)
    (answer,) = info.message_ids
    channel = bus.channel(channel_name)
    before = len(await events(channel))
    try:
        await alice.view.edit(answer, "an answer is not an input")
    except ait.UsageError as exc:
        assert "not an input message" in str(exc)
    else:
        raise AssertionError("editing an assistant message must fail")
    try:
        await alice.view.regenerate(active.message_id)
    except ait.UsageError as exc:
        assert "not an agent's message" in str(exc)
    else:
        raise AssertionError("regenerating an input must fail")
    try:
        alice.view.select(active.message_id, 3)
    except ait.UsageError as exc:
        assert "no sibling 3" in str(exc)
    else:
        raise AssertionError("selecting a missing sibling must fail")
    try:
        await alice.view.send_tool_result("no-such-call", 1)
    except ait.UsageError as exc:
        assert "no tool call" in str(exc)
    else:
        raise AssertionError("answering a missing tool call must fail")
    assert len(await events(channel)) == before  # nothing was published
    assert shown(alice.view) == shown(alice.view)
    assert [m.id for m in alice.view.messages] == [active.message_id, answer]


async def test_a_rejected_regeneration_leaves_the_view_as_it_was(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    """`multitask="reject"` while another run streams: the rejected run has no message, so
    there is nothing to select; the view keeps the answer, and the run still streaming."""
    alice = await connect("alice")
    first = await ended(await alice.view.send("hi"))
    (a1,) = first.message_ids
    agent.provider = ScriptedProvider(["tick "] * 400, delay=0.05)
    slow = await alice.view.send("count slowly")
    await wait_for(lambda: len(alice.view.messages) == 4)
    before = [m.id for m in alice.view.messages]
    changes: list[ait.ViewChange] = []
    alice.view.on_change(changes.append)

    redo = await alice.view.regenerate(a1, multitask="reject")
    rejected = await ended(redo)
    assert (rejected.status, rejected.error and rejected.error.code) == ("error", "rejected")
    assert rejected.message_ids == ()
    assert [m.id for m in alice.view.messages] == before
    assert [m.id for m in alice.view.siblings(a1)] == [a1]
    assert all(change.kind == "content" for change in changes)  # only the ticks
    assert alice.view.messages[-1].status == "streaming"
    await slow.cancel()
    assert (await ended(slow)).status == "cancelled"


async def test_a_view_follows_the_restart_of_a_lost_run(
    bus: ait.Bus, channel_name: str, pool_name: str, connect: Connect
) -> None:
    """A worker dies mid-answer; another ends its run `agent-lost` and, with `restart_lost`,
    answers again: every view that showed the dead partial answer shows the new one."""
    alice = await connect("alice")
    bob = await connect("bob", invoke=None)
    asked = await alice.view.send("hello?")
    queue = bus.pool(pool_name)
    try:
        ((_, invocation),) = await queue.read("dead-worker", 1, 1000)
    finally:
        await queue.aclose()
    doomed = ait.AgentSession(bus, channel_name)
    await doomed.__aenter__()
    try:
        lost = doomed.create_run(invocation)
        await lost.start()
        await lost.pipe(ScriptedProvider(["half an ans"]).stream())
        doomed.tasks.stop()  # the worker dies: its run is never ended, its entry never acked
        for view in (alice.view, bob.view):
            await wait_for(lambda v=view: texts(v) == ["hello?", "half an ans"])

        provider = ScriptedProvider(["a whole answer"])
        options = {"lease": 1, "restart_lost": True, "block_ms": 100}
        async with serving(bus, pool_name, provider=provider, **options):
            error = (await ended(asked)).error
            assert error is not None and error.code == "agent-lost"
            for view in (alice.view, bob.view):
                await wait_for(lambda v=view: texts(v) == ["hello?", "a whole answer"])
        answer = alice.view.messages[-1]
        assert [m.text for m in alice.view.siblings(answer.id)] == ["half an ans", "a whole answer"]
        assert alice.view.selected_index(answer.id) == 1
        restarted = alice.tree.run_for_input(asked.message_id)
        assert restarted is not None and restarted.run_id != lost.run_id
        # The dead answer stays reachable, and a choice of it stands.
        bob.view.select(answer.id, 0)
        assert texts(bob.view) == ["hello?", "half an ans"]
    finally:
        await doomed.__aexit__(None, None, None)
