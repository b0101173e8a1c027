"""Every client folds every entry: clients that watched live, a late joiner that came in
mid-stream, and a reader that folds the whole channel afresh all end with the same tree."""

from __future__ import annotations

import anyio

import ait
from ait.client import ActiveRun, ClientSession
from ait.testing import ScriptedProvider

from .helpers import (
    Agent,
    Connect,
    assert_converged,
    default_view,
    dump,
    ended,
    fold,
    shown,
    started,
    status,
    wait_for,
)


def streaming(session: ClientSession) -> list[ait.Message]:
    """The messages `session` shows that are being streamed now, with some text already."""
    return [m for m in session.view.messages if m.status == "streaming" and m.text]


async def test_three_clients_and_a_late_joiner_converge(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    channel = bus.channel(channel_name)
    clients = [await connect(name) for name in ("alice", "bob", "carol")]
    agent.provider = ScriptedProvider(["welcome"])
    opening = await clients[0].view.send("hi")
    await ended(opening)
    for session in clients:
        await wait_for(lambda s=session: len(s.view.messages) == 2)
    agent.provider = ScriptedProvider([f"w{i} " for i in range(150)], delay=0.003)

    # All three write at once: three inputs on the same parent, three runs in parallel.
    actives: list[ActiveRun] = []
    async with anyio.create_task_group() as tg:

        async def send(session: ClientSession, text: str) -> None:
            actives.append(await session.view.send(text))

        for session in clients:
            tg.start_soon(send, session, f"from {session.client_id}")

    # A late joiner comes in while the runs stream: it sees the partial answers...
    await wait_for(lambda: len(streaming(clients[0])) == 3)
    dave = await connect("dave")
    partial = {m.id: m.text for m in streaming(dave)}
    assert partial, "the late joiner should see the answers mid-stream"
    answers = [m for m in dave.view.messages[2:] if m.role == "assistant"]
    assert len(answers) == 3 and {m.status for m in answers} == {"streaming"}

    # ...then the rest, live.
    infos = [await ended(active) for active in actives]
    assert {info.status for info in infos} == {"complete"}
    everyone = [*clients, dave]
    await assert_converged(channel, *everyone)
    for message_id, text in partial.items():
        final = dave.tree.snapshot(message_id)
        assert final.text.startswith(text) and len(final.text) > len(text)
        assert final.status == "complete"

    expected = default_view(await fold(channel))
    assert len(expected) == 8
    assert {row[1] for row in expected[2:5]} == {"user"}  # the inputs came before any answer
    for session in everyone:
        assert shown(session.view) == expected, session.client_id


async def test_branches_converge_too(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    """Edits, regenerations and cancels from several clients at once: same tree everywhere."""
    channel = bus.channel(channel_name)
    agent.provider = ScriptedProvider([f"w{i} " for i in range(60)], delay=0.002)
    alice, bob, carol = [await connect(name) for name in ("alice", "bob", "carol")]
    first = await alice.view.send("hi")
    info = await ended(first)
    (answer,) = info.message_ids
    await wait_for(lambda: len(bob.view.messages) == 2 and len(carol.view.messages) == 2)

    async with anyio.create_task_group() as tg:

        async def regenerate() -> None:
            await ended(await alice.view.regenerate(answer))

        async def edit() -> None:
            await ended(await bob.view.edit(first.message_id, "hello"))

        async def send_then_cancel() -> None:
            active = await carol.view.send("and also")
            await started(active)
            await active.cancel()
            await ended(active)

        tg.start_soon(regenerate)
        tg.start_soon(edit)
        tg.start_soon(send_then_cancel)

    late = await connect("dave")
    await assert_converged(channel, alice, bob, carol, late)
    statuses = sorted(run["status"] for run in dump(late.tree)["runs"].values())
    assert statuses == ["cancelled", "complete", "complete", "complete"]
    # The late joiner shows the newest siblings: bob's edit and its answer.
    assert [m.text for m in late.view.messages][0] == "hello"
    assert shown(late.view) == default_view(await fold(channel))


async def test_a_client_that_leaves_and_comes_back_converges(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    channel = bus.channel(channel_name)
    agent.provider = ScriptedProvider([f"w{i} " for i in range(300)], delay=0.002)
    alice = await connect("alice")  # never leaves
    active = await alice.view.send("stream something long")
    run_id = await started(active)

    # Bob watches a bit, drops (closes), and comes back while the run still streams.
    async with ClientSession(bus, channel_name, client_id="bob") as bob:
        await wait_for(lambda: len(streaming(bob)) == 1)
        seen_before = streaming(bob)[0].text
    await wait_for(lambda: len(streaming(alice)[0].text) > len(seen_before) + 20)
    async with ClientSession(bus, channel_name, client_id="bob") as back:
        (mid_stream,) = streaming(back)
        assert mid_stream.text.startswith(seen_before)
        assert status(back.tree, run_id) == "active"
        await ended(active)
        await assert_converged(channel, alice, back)
        assert shown(back.view) == shown(alice.view)
        assert back.view.messages[-1].text == "".join(f"w{i} " for i in range(300))

    # And once more after the run ended: the same again.
    async with ClientSession(bus, channel_name, client_id="bob") as later:
        assert dump(later.tree) == dump(alice.tree)


async def test_a_message_echoed_before_the_first_optimistic_one_is_shown(
    bus: ait.Bus, channel_name: str, connect: Connect
) -> None:
    alice = await connect("alice", invoke=None)
    bob = await connect("bob", invoke=None)
    publish = bob.channel.publish
    others: list[ActiveRun] = []

    async def publish_after_alice(event: ait.Event) -> str:
        # Bob's message is shown (optimistic) already; alice's lands on the channel first.
        assert [m.optimistic for m in bob.view.messages] == [True]
        others.append(await alice.view.send("from alice"))
        await wait_for(lambda: bob.tree.message(others[0].message_id) is not None)
        return await publish(event)

    bob.channel.publish = publish_after_alice  # type: ignore[method-assign]
    mine = await bob.view.send("from bob")
    await wait_for(lambda: not bob.tree.snapshot(mine.message_id).optimistic)
    assert [m.text for m in alice.view.messages] == ["from alice", "from bob"]
    assert [m.text for m in bob.view.messages] == ["from alice", "from bob"]
    assert not bob.view.has_older
