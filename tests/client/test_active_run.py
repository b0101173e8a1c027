"""ActiveRun: one send followed from the optimistic message to the end of the run, and the
run's cancellation (before and after its id is known, by id, by client)."""

from __future__ import annotations

import anyio

import ait
from ait.client import RunOutput
from ait.testing import ScriptedProvider

from .helpers import (
    TOKENS,
    Agent,
    Connect,
    ended,
    events,
    fold,
    outputs_of,
    serving,
    started,
    status,
    text_of,
    wait_for,
)

# -- send -> stream -> complete -----------------------------------------------------------------


async def test_send_shows_the_message_at_once_then_streams_the_answer(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    alice = await connect("alice")
    channel = bus.channel(channel_name)
    seen: list[list[tuple[str, str, bool]]] = []
    alice.view.on_change(
        lambda _: seen.append([(m.id, m.role, m.optimistic) for m in alice.view.messages])
    )

    active = await alice.view.send("hi")

    # The ids are known at once, before anything came back.
    assert active.input_event_id and active.message_id
    assert active.known_run_id is None or active.known_run_id  # a run may already have begun
    # The very first change is the optimistic message, before the channel echoed it.
    assert seen[0] == [(active.message_id, "user", True)]

    pieces = await text_of(active)
    info = await ended(active)
    run_id = await started(active)

    (start,) = await events(channel, "run.start")
    (sent,) = await events(channel, "input")
    assert run_id == start.run_id == info.run_id
    assert (sent.event_id, sent.message_id) == (active.input_event_id, active.message_id)
    assert start.input_event_id == active.input_event_id
    assert pieces == list(TOKENS)
    assert info.status == "complete" and info.error is None and info.started

    user, answer = alice.view.messages
    assert (user.id, user.text, user.optimistic, user.status) == (
        active.message_id,
        "hi",
        False,
        "complete",
    )
    assert answer.role == "assistant" and answer.run_id == run_id
    assert answer.text == "".join(pieces) and answer.status == "complete"
    assert info.message_ids == (answer.id,)

    # Promoted in place: never two copies of the input, and optimistic until the echo only.
    for state in seen:
        assert [row for row in state if row[1] == "user"] in (
            [(active.message_id, "user", True)],
            [(active.message_id, "user", False)],
        )
    flags = [row[2] for state in seen for row in state if row[1] == "user"]
    assert flags[0] is True and flags[-1] is False
    assert flags == sorted(flags, reverse=True)  # True ... True, False ... False


async def test_events_are_the_codec_events_of_the_run_ending_with_finish(
    agent: Agent, connect: Connect
) -> None:
    alice = await connect("alice")
    active = await alice.view.send("hi")
    outputs: list[RunOutput] = await outputs_of(active)
    info = await ended(active)

    (message_id,) = info.message_ids
    assert {o.message_id for o in outputs} == {message_id}
    kinds = [o.event["type"] for o in outputs]
    # The provider's Finish carries usage and timings before the message's finish.
    assert kinds == ["text-delta"] * len(TOKENS) + ["usage", "metrics", "finish"]
    assert outputs[-1].event["status"] == "complete"
    assert outputs[-3].event["completion_tokens"] == len(TOKENS)
    assert [o.event["delta"] for o in outputs[: len(TOKENS)]] == list(TOKENS)


async def test_streams_read_late_or_twice_still_start_at_the_beginning(
    agent: Agent, connect: Connect
) -> None:
    alice = await connect("alice")
    active = await alice.view.send("hi")
    first: list[str] = []
    second: list[str] = []
    async with anyio.create_task_group() as tg:

        async def read(into: list[str]) -> None:
            async for piece in active.text_stream():
                into.append(piece)

        tg.start_soon(read, first)
        tg.start_soon(read, second)
    await ended(active)
    late = await text_of(active)
    assert first == second == late == list(TOKENS)


async def test_a_long_stream_arrives_whole_and_in_order(agent: Agent, connect: Connect) -> None:
    tokens = [f"w{i} " for i in range(500)]
    agent.provider = ScriptedProvider(tokens)  # as fast as it goes: the writer coalesces
    alice = await connect("alice")
    active = await alice.view.send("go")
    pieces = await text_of(active)
    assert pieces == tokens
    info = await ended(active)
    assert alice.tree.snapshot(info.message_ids[0]).text == "".join(tokens)


async def test_an_agents_resend_of_output_that_had_landed_streams_once(
    agent: Agent, connect: Connect
) -> None:
    """After an outage an agent's writer may write an entry again, not knowing the first
    had landed; both carry one resend key. The stream (and the view) take it once."""

    async def resending(run: ait.Run) -> None:
        await run.start()
        assert run.run_id is not None and run.input is not None
        said = [
            ait.Output(
                run_id=run.run_id,
                message_id="a1",
                role="assistant",
                parent=run.input.message_id,
                payload=[{"type": "text-delta", "id": "t0", "delta": piece}],
                entry_key=f"w-{n}",
            )
            for n, piece in enumerate(["Hel", "lo"])
        ]
        await run.session.channel.publish_many([said[0], said[0], said[1], said[0], said[1]])
        await run.end()

    agent.handler = resending
    alice = await connect("alice")
    active = await alice.view.send("hi")
    assert await text_of(active) == ["Hel", "lo"]
    assert (await ended(active)).status == "complete"
    assert alice.view.messages[-1].text == "Hello"


async def test_awaiting_the_run_id_of_a_run_that_never_starts_fails_on_close(
    connect: Connect,
) -> None:
    alice = await connect("alice", invoke=None)  # nobody is woken
    active = await alice.view.send("anyone?")
    failures: list[BaseException] = []
    async with anyio.create_task_group() as tg:

        async def wait_id() -> None:
            try:
                await started(active)
            except ait.UsageError as exc:
                failures.append(exc)

        async def wait_end() -> None:
            try:
                await ended(active)
            except ait.UsageError as exc:
                failures.append(exc)

        tg.start_soon(wait_id)
        tg.start_soon(wait_end)
        await anyio.sleep(0.05)
        assert not failures
        await alice.aclose()
    assert len(failures) == 2
    assert any("before the run started" in str(e) for e in failures)
    assert any("before the run ended" in str(e) for e in failures)
    assert not active.done
    assert await text_of(active) == []  # ends, does not hang


async def test_enqueued_sends_are_answered_one_after_another_in_order(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    """While A streams, B then C ask `enqueue`: with free workers for both, B starts when
    A ends, and C when B ends."""
    agent.provider = ScriptedProvider([f"t{i} " for i in range(20)], delay=0.01)
    alice = await connect("alice")
    a = await alice.view.send("A")
    await started(a)
    b = await alice.view.send("B", multitask="enqueue")
    c = await alice.view.send("C", multitask="enqueue")
    infos = [await ended(active) for active in (a, b, c)]
    assert [info.status for info in infos] == ["complete"] * 3
    order = [
        (event.type, event.run_id)
        for event in await events(bus.channel(channel_name))
        if event.type in ("run.start", "run.end")
    ]
    runs = [info.run_id for info in infos]
    assert order == [(kind, run) for run in runs for kind in ("run.start", "run.end")]


# -- cancel -------------------------------------------------------------------------------------


async def test_cancel_before_the_run_id_is_known(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    agent.provider = ScriptedProvider(["never"] * 50, delay=0.01, first_token_delay=0.3)
    alice = await connect("alice")
    active = await alice.view.send("hi")
    assert active.known_run_id is None  # the agent cannot have started in this time
    await active.cancel()
    info = await ended(active)

    assert info.status == "cancelled" and info.cancel_requested
    (cancel,) = await events(bus.channel(channel_name), "cancel")
    assert cancel.input_message_id == active.message_id and cancel.run_id is None
    assert agent.results[0].reason == "cancelled" and agent.provider.emitted == 0
    (answer_id,) = info.message_ids
    answer = alice.tree.snapshot(answer_id)
    assert answer.status == "cancelled" and answer.text == ""
    await wait_for(lambda: agent.worker is not None and agent.worker.busy == 0)


async def test_cancel_all_before_any_agent_started_is_shown_as_requested(
    bus: ait.Bus, channel_name: str, pool_name: str, connect: Connect
) -> None:
    """The agent honours a cancel published after the input, before its run.start: every
    client's fold says so too (one rule for both, `cancel_applies`)."""
    alice = await connect("alice")
    active = await alice.view.send("hi")
    await alice.cancel_all()  # no agent is serving the pool yet
    async with serving(bus, pool_name):
        info = await ended(active)
    assert info.status == "cancelled" and info.cancel_requested
    tree = await fold(bus.channel(channel_name))
    assert [(r.status, r.cancel_requested) for r in tree.runs] == [("cancelled", True)]


async def test_cancel_mid_stream_keeps_the_partial_text(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    tokens = [f"t{i} " for i in range(2000)]
    agent.provider = ScriptedProvider(tokens, delay=0.002)
    alice = await connect("alice")
    active = await alice.view.send("count")
    got: list[str] = []
    async for piece in active.text_stream():
        got.append(piece)
        if len(got) == 5:
            assert active.known_run_id is not None
            await active.cancel()
    info = await ended(active)

    assert info.status == "cancelled"
    assert 5 <= len(got) < len(tokens)
    assert got == tokens[: len(got)]
    (cancel,) = await events(bus.channel(channel_name), "cancel")
    assert cancel.run_id == info.run_id  # by run id once it was known
    answer = alice.tree.snapshot(info.message_ids[0])
    assert answer.status == "cancelled" and answer.finish_reason == "cancelled"
    assert answer.text == "".join(got)  # everything streamed stays, nothing more
    (end,) = await events(bus.channel(channel_name), "run.end")
    assert end.reason == "cancelled"
    # And the session goes on working.
    agent.provider = ScriptedProvider(["again"])
    again = await alice.view.send("again")
    assert (await ended(again)).status == "complete"
    assert alice.view.messages[-1].text == "again"


async def test_session_cancel_by_run_id(agent: Agent, connect: Connect) -> None:
    agent.provider = ScriptedProvider([f"t{i}" for i in range(2000)], delay=0.002)
    alice = await connect("alice")
    bob = await connect("bob")
    active = await alice.view.send("go")
    run_id = await started(active)
    await wait_for(lambda: len(alice.view.messages) == 2)  # the answer streams
    await bob.cancel(run_id)  # anyone may ask (no hook refuses here)
    info = await ended(active)
    assert info.status == "cancelled"
    await wait_for(lambda: status(bob.tree, run_id) == "cancelled")


async def test_cancel_all_stops_this_clients_runs_only(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    agent.provider = ScriptedProvider([f"t{i} " for i in range(200)], delay=0.004)
    alice = await connect("alice")
    bob = await connect("bob")
    a1 = await alice.view.send("one")
    a2 = await alice.view.send("two")
    b1 = await bob.view.send("three")
    for active in (a1, a2, b1):
        await started(active)
    await alice.cancel_all()
    assert (await ended(a1)).status == "cancelled"
    assert (await ended(a2)).status == "cancelled"
    assert (await ended(b1)).status == "complete"
    tree = await fold(bus.channel(channel_name))
    statuses = {info.client_id: info.status for info in tree.runs() if info.client_id == "bob"}
    assert statuses == {"bob": "complete"}


async def test_cancelling_a_finished_run_changes_nothing(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    alice = await connect("alice")
    active = await alice.view.send("hi")
    info = await ended(active)
    await active.cancel()
    await alice.cancel_all()
    channel = bus.channel(channel_name)
    await wait_for(lambda: len(alice.tree.runs()) == 1)
    tree = await fold(channel)
    assert status(tree, info.run_id) == "complete"
    assert alice.view.messages[-1].status == "complete"
