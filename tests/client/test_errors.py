"""Runs that fail show it (status, code and message on the run and on its message), and what
another writer put on the channel that cannot be folded is reported while the session goes on."""

from __future__ import annotations

import anyio

import ait
from ait.client import SessionError
from ait.conversation import FoldError
from ait.ids import new_id
from ait.testing import ScriptedProvider

from .helpers import Agent, Connect, assert_converged, ended, status, text_of, wait_for


class QuotaExceeded(Exception):
    code = "quota-exceeded"


async def test_a_provider_failure_is_an_error_on_the_run_and_the_message(
    agent: Agent, connect: Connect
) -> None:
    agent.provider = ScriptedProvider(
        ["partial ", "answer ", "never"], fail_after=2, error=QuotaExceeded("out of credits")
    )
    alice = await connect("alice")
    bob = await connect("bob")
    active = await alice.view.send("hi")
    pieces = await text_of(active)
    info = await ended(active)

    assert pieces == ["partial ", "answer "]
    assert info.status == "error"
    assert info.error is not None
    assert (info.error.code, info.error.message) == ("quota-exceeded", "out of credits")
    message = alice.view.messages[-1]
    assert message.status == "error" and message.text == "partial answer "
    assert message.error is not None
    assert (message.error.code, message.error.message) == ("quota-exceeded", "out of credits")
    await wait_for(lambda: bob.tree.run(info.run_id) is not None)
    await wait_for(lambda: status(bob.tree, info.run_id) == "error")
    assert bob.view.messages[-1] == message.model_copy(update={"client_id": message.client_id})


async def test_run_end_with_an_error_code_and_message(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    async def refuse(run: ait.Run) -> None:
        await run.start()
        result = await run.pipe(ScriptedProvider(["I started, but"]).stream())
        assert result.reason == "complete"
        await run.end("error", code="policy", message="this topic is not allowed")

    agent.handler = refuse
    alice = await connect("alice")
    info = await ended(await alice.view.send("hi"))
    assert info.status == "error"
    assert info.error == ait.conversation.MessageError(
        code="policy", message="this topic is not allowed"
    )
    # The message itself finished before the run failed: it keeps its own status.
    message = alice.tree.snapshot(info.message_ids[0])
    assert message.status == "complete" and message.text == "I started, but"


async def test_a_handler_that_raises_ends_its_run_with_an_error(
    agent: Agent, connect: Connect
) -> None:
    async def crash(run: ait.Run) -> None:
        await run.start()
        raise LookupError("no such tool")

    agent.handler = crash
    alice = await connect("alice")
    info = await ended(await alice.view.send("hi"))
    assert info.status == "error" and info.error is not None
    assert (info.error.code, info.error.message) == ("lookup-error", "no such tool")
    assert info.message_ids == ()  # it never wrote a message
    assert [m.role for m in alice.view.messages] == ["user"]


async def test_garbage_on_the_channel_is_reported_and_the_session_goes_on(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    channel = bus.channel(channel_name)
    client = bus.handle.client
    reported: list[SessionError] = []
    alice = await connect("alice", on_error=reported.append)
    first = await alice.view.send("before")
    await ended(first)

    garbage = [
        await client.execute_command("XADD", channel.key, "*", "junk", "1"),
        await client.execute_command("XADD", channel.key, "*", "v", "9", "t", "input", "h", "x"),
        await client.execute_command("XADD", channel.key, "*", "v", "1", "t", "party", "h", "\x80"),
    ]
    garbage_ids = [raw.decode() for raw in garbage]
    # Well-formed envelopes whose contents do not fold: a payload that is no codec event,
    # and an output that claims an input message.
    bad_output = ait.Output(
        run_id=new_id(), message_id=new_id(), role="assistant", parent="x", payload=[{"n": 1}]
    )
    stolen = ait.Output(
        run_id=new_id(),
        message_id=first.message_id,
        role="assistant",
        parent="x",
        payload=[{"type": "text-delta", "id": "t0", "delta": "mine now"}],
    )
    garbage_ids.append(await channel.publish(bad_output))
    garbage_ids.append(await channel.publish(stolen))

    await wait_for(lambda: len(reported) == 5)
    assert all(isinstance(error, FoldError) for error in reported)
    folds = [error for error in reported if isinstance(error, FoldError)]
    assert [error.entry_id for error in folds] == garbage_ids
    assert all(error.reason for error in folds)

    # errors() replays them for a late reader, then follows new ones; ends on close.
    late: list[SessionError] = []

    async def read_errors() -> None:
        async for error in alice.errors():
            late.append(error)

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_errors)
        await wait_for(lambda: len(late) == 5)
        await client.execute_command("XADD", channel.key, "*", "junk", "2")
        await wait_for(lambda: len(late) == 6)
        assert late == reported and len(reported) == 6

        # Nothing of the garbage was folded; the session keeps working.
        assert alice.tree.snapshot(first.message_id).text == "before"
        second = await alice.view.send("after")
        assert (await ended(second)).status == "complete"
        assert [m.text for m in alice.view.messages] == [
            "before",
            "Hello there",
            "after",
            "Hello there",
        ]
        await assert_converged(channel, alice)
        await alice.aclose()  # ends the errors() iteration
    assert len(late) == 6


async def test_errors_are_logged_without_a_callback(
    bus: ait.Bus, channel_name: str, connect: Connect, caplog: object
) -> None:
    import logging

    alice = await connect("alice")
    channel = bus.channel(channel_name)
    with_caplog = caplog  # pytest's LogCaptureFixture
    with with_caplog.at_level(logging.WARNING, logger="ait.client"):  # type: ignore[attr-defined]
        await bus.handle.client.execute_command("XADD", channel.key, "*", "junk", "1")
        await wait_for(
            lambda: any("ait client" in r.getMessage() for r in with_caplog.records)  # type: ignore[attr-defined]
        )
    errors: list[SessionError] = []

    async def first_error() -> None:
        async for error in alice.errors():
            errors.append(error)
            return

    await first_error()
    assert isinstance(errors[0], FoldError)


async def test_a_failing_on_error_callback_does_not_stop_the_session(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    def broken(error: SessionError) -> None:
        raise RuntimeError("the UI's handler is broken")

    alice = await connect("alice", on_error=broken)
    await bus.handle.client.execute_command("XADD", bus.channel(channel_name).key, "*", "junk", "1")
    info = await ended(await alice.view.send("still here?"))
    assert info.status == "complete"
    assert alice.view.messages[-1].text == "Hello there"
