"""A user's cancel (a `cancel` event on the channel) against task cancellation (anyio).

A user's cancel ends the run `cancelled` within a token, keeps the partial output, and may
be refused by a hook; task cancellation always propagates unchanged and is never reported
as a user's cancel. A viewer leaving cancels nothing.
"""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

import ait
from ait.testing import ScriptedProvider

from .helpers import (
    Clock,
    Ticker,
    answer,
    cancel,
    events,
    fold,
    invocation,
    publish_input,
    run_ends,
    slow,
    wait_for,
    wait_for_event,
)

# A session always runs two tasks: its router and its heartbeat.
PERMANENT_TASKS = 2


def background_tasks(session: ait.AgentSession) -> int:
    """The session's background tasks still running besides the permanent ones."""
    return len(session.tasks._scopes) - PERMANENT_TASKS  # pyright: ignore[reportPrivateUsage]


async def pipe_ticker(run: ait.Run, ticker: Ticker) -> ait.PipeResult:
    await run.start()
    result = await run.pipe(ticker.stream())
    await run.end(result.reason, error=result.error)
    return result


class Handler:
    """Runs `pipe_ticker` in a task group and keeps its result."""

    def __init__(self, run: ait.Run, ticker: Ticker | None = None) -> None:
        self.run = run
        self.ticker = ticker or Ticker()
        self.result: ait.PipeResult | None = None
        self.done = anyio.Event()

    async def __call__(self) -> None:
        try:
            self.result = await pipe_ticker(self.run, self.ticker)
        finally:
            self.done.set()


async def assert_cancelled_on_the_wire(channel: ait.Channel, run: ait.Run) -> None:
    assert run.run_id is not None
    ends = await run_ends(channel)
    assert ends[run.run_id].reason == "cancelled"
    tree = await fold(channel)
    info = tree.run(run.run_id)
    assert info is not None and info.status == "cancelled"
    for message_id in info.message_ids:
        message = tree.message(message_id)
        assert message is not None and message.status == "cancelled"
        assert message.finish_reason == "cancelled"


# -- a cancel sent before the run starts --------------------------------------------------------


@pytest.mark.parametrize("session_first", [False, True], ids=["replayed", "live"])
async def test_a_cancel_before_start_is_held_and_honoured_at_start(
    bus: ait.Bus, channel_name: str, session_first: bool
) -> None:
    """`replayed`: input and cancel were on the channel before the session opened (an agent
    that restarted, or a worker, which opens a session per invocation); `live`: the session
    saw them come. Either way the run starts and ends cancelled, even when the provider
    would answer at once."""
    channel = bus.channel(channel_name)
    provider = ScriptedProvider([f"t{i} " for i in range(50)])  # no delay: a fast answer
    session = ait.AgentSession(bus, channel_name)
    if session_first:
        await session.__aenter__()
    try:
        _, sent = await publish_input(channel)
        await cancel(channel, input_message_id=sent.message_id)
        if session_first:
            await anyio.sleep(0.05)  # held by the router before the run exists
        else:
            await session.__aenter__()
        run = session.create_run(invocation(channel, sent))
        clock = Clock()
        result = await answer(run, provider)
        elapsed = clock.elapsed()
        assert background_tasks(session) == 0
    finally:
        await session.__aexit__(None, None, None)
    assert result.reason == "cancelled"
    assert provider.emitted <= 1  # never, or barely, consulted
    assert elapsed < 0.5
    assert run.cancelled and run.cancel_request is not None
    assert run.cancel_request.cancel.input_message_id == sent.message_id
    types = [e.type for e in await events(channel)]
    assert types[:3] == ["input", "cancel", "run.start"]  # the run did start, for all to see
    assert types[-1] == "run.end"
    await assert_cancelled_on_the_wire(channel, run)


async def test_a_cancel_published_between_create_run_and_start(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name) as session:
        _, sent = await publish_input(channel)
        run = session.create_run(invocation(channel, sent))
        await cancel(channel, input_message_id=sent.message_id)
        await anyio.sleep(0.05)
        provider = slow(100)
        result = await answer(run, provider)
    assert result.reason == "cancelled" and provider.emitted <= 1


# -- cancel by each scope -----------------------------------------------------------------------


@pytest.mark.parametrize("by", ["run_id", "input_message_id", "client", "all"])
async def test_cancel_by_each_scope(bus: ait.Bus, channel_name: str, by: str) -> None:
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name) as session:
        _, sent = await publish_input(channel)
        handler = Handler(session.create_run(invocation(channel, sent)))
        async with anyio.create_task_group() as tg:
            tg.start_soon(handler)
            await handler.ticker.running()
            run = handler.run
            target: dict[str, Any] = {
                "run_id": {"run_id": run.run_id},
                "input_message_id": {"input_message_id": sent.message_id},
                "client": {"scope": "client", "client": "alice"},
                "all": {"scope": "all", "client": "someone-else"},
            }[by]
            await cancel(channel, **target)
            with anyio.fail_after(2):
                await handler.done.wait()
        assert background_tasks(session) == 0  # no writer, no cancel task left behind
    assert handler.result is not None and handler.result.reason == "cancelled"
    assert handler.ticker.closed
    await assert_cancelled_on_the_wire(channel, handler.run)


async def test_scope_client_cancels_only_that_clients_runs(bus: ait.Bus, channel_name: str) -> None:
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name) as session:
        _, from_alice = await publish_input(channel, client="alice")
        _, from_bob = await publish_input(channel, client="bob")
        alice = Handler(session.create_run(invocation(channel, from_alice)))
        bob = Handler(session.create_run(invocation(channel, from_bob)))
        async with anyio.create_task_group() as tg:
            tg.start_soon(alice)
            tg.start_soon(bob)
            await alice.ticker.running()
            await bob.ticker.running()
            await cancel(channel, scope="client", client="bob")
            with anyio.fail_after(2):
                await bob.done.wait()
            # the same cancel event was offered to alice's run at the same moment
            await anyio.sleep(0.05)
            assert not alice.done.is_set() and not alice.run.cancelled
            alice.ticker.stop()
    assert bob.result is not None and bob.result.reason == "cancelled"
    assert alice.result is not None and alice.result.reason == "complete"
    ends = await run_ends(channel)
    assert ends[alice.run.run_id].reason == "complete"  # type: ignore[index]
    await assert_cancelled_on_the_wire(channel, bob.run)


@pytest.mark.parametrize("by", ["run_id", "input_message_id"])
async def test_cancelling_one_of_two_concurrent_runs_leaves_the_other(
    bus: ait.Bus, channel_name: str, by: str
) -> None:
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name) as session:
        _, first_input = await publish_input(channel, "one")
        _, second_input = await publish_input(channel, "two")
        first = Handler(session.create_run(invocation(channel, first_input)))
        second = Handler(session.create_run(invocation(channel, second_input)))
        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            tg.start_soon(second)
            await first.ticker.running()
            await second.ticker.running()
            if by == "run_id":
                await cancel(channel, run_id=first.run.run_id)
            else:
                await cancel(channel, input_message_id=first_input.message_id)
            with anyio.fail_after(2):
                await first.done.wait()
            await anyio.sleep(0.05)
            assert not second.done.is_set()
            second.ticker.stop()
    assert first.result is not None and first.result.reason == "cancelled"
    assert second.result is not None and second.result.reason == "complete"
    assert not second.run.cancelled
    tree = await fold(channel)
    info = tree.run(second.run.run_id)  # type: ignore[arg-type]
    assert info is not None and info.status == "complete"
    await assert_cancelled_on_the_wire(channel, first.run)


async def test_a_cancel_older_than_the_input_is_ignored(bus: ait.Bus, channel_name: str) -> None:
    """Cancels of every kind sent before the input are about something else."""
    channel = bus.channel(channel_name)
    message_id = "m-future"
    await cancel(channel, input_message_id=message_id)
    await cancel(channel, scope="all")
    await cancel(channel, scope="client", client="alice")
    offered: list[str] = []

    def record(request: ait.CancelRequest) -> bool:
        offered.append(request.entry_id)
        return True

    async with ait.AgentSession(bus, channel_name, on_cancel=record) as session:
        _, sent = await publish_input(channel, message_id=message_id)
        handler = Handler(session.create_run(invocation(channel, sent)))
        async with anyio.create_task_group() as tg:
            tg.start_soon(handler)
            await handler.ticker.running()
            await wait_for(lambda: handler.ticker.emitted >= 20)
            assert not handler.run.cancelled and offered == []
            # A fresh cancel works, and is the only one ever offered: the router handles
            # events in order, so the old ones were judged (and dropped) before it.
            fresh = await cancel(channel, input_message_id=message_id)
            with anyio.fail_after(2):
                await handler.done.wait()
    assert offered == [fresh]
    assert handler.result is not None and handler.result.reason == "cancelled"


# -- on_cancel hooks ----------------------------------------------------------------------------


def refusing(asynchronous: bool, calls: list[ait.CancelRequest]) -> Any:
    if asynchronous:

        async def hook(request: ait.CancelRequest) -> bool:
            calls.append(request)
            await anyio.sleep(0.01)
            return False

        return hook

    def sync_hook(request: ait.CancelRequest) -> bool:
        calls.append(request)
        return False

    return sync_hook


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("level", ["session", "run"])
async def test_a_hook_that_refuses_lets_the_run_complete(
    bus: ait.Bus, channel_name: str, level: str, asynchronous: bool
) -> None:
    channel = bus.channel(channel_name)
    calls: list[ait.CancelRequest] = []
    hook = refusing(asynchronous, calls)
    session_hook = hook if level == "session" else None
    async with ait.AgentSession(bus, channel_name, on_cancel=session_hook) as session:
        _, sent = await publish_input(channel)
        run_hook = hook if level == "run" else None
        handler = Handler(session.create_run(invocation(channel, sent), on_cancel=run_hook))
        async with anyio.create_task_group() as tg:
            tg.start_soon(handler)
            await handler.ticker.running()
            entry = await cancel(channel, run_id=handler.run.run_id)
            await wait_for(lambda: bool(calls), timeout=2)
            await anyio.sleep(0.05)  # an async verdict lands
            assert not handler.run.cancelled
            handler.ticker.stop()
    (request,) = calls
    assert (request.run_id, request.entry_id) == (handler.run.run_id, entry)
    assert request.cancel.client_id == "alice"
    assert (request.channel, request.run_client_id) == (channel_name, sent.client_id)
    assert handler.result is not None and handler.result.reason == "complete"
    assert (await run_ends(channel))[handler.run.run_id].reason == "complete"  # type: ignore[index]


async def test_a_hook_can_let_only_the_runs_owner_cancel(bus: ait.Bus, channel_name: str) -> None:
    channel = bus.channel(channel_name)

    def owner_only(request: ait.CancelRequest) -> bool:
        return request.cancel.client_id == request.run_client_id

    async with ait.AgentSession(bus, channel_name, on_cancel=owner_only) as session:
        _, sent = await publish_input(channel, client="alice")
        handler = Handler(session.create_run(invocation(channel, sent)))
        async with anyio.create_task_group() as tg:
            tg.start_soon(handler)
            await handler.ticker.running()
            await cancel(channel, run_id=handler.run.run_id, client="mallory")
            await anyio.sleep(0.1)
            assert not handler.run.cancelled
            await cancel(channel, run_id=handler.run.run_id, client="alice")
            with anyio.fail_after(2):
                await handler.done.wait()
    assert handler.result is not None and handler.result.reason == "cancelled"


async def test_the_run_hook_overrides_the_session_hook_and_a_refusal_is_not_final(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    verdicts = [False, True]  # refuse the first cancel, allow the second
    seen: list[str] = []

    async def run_hook(request: ait.CancelRequest) -> bool:
        seen.append(request.entry_id)
        return verdicts[len(seen) - 1]

    def session_hook(request: ait.CancelRequest) -> bool:
        raise AssertionError("the run's own hook decides")

    async with ait.AgentSession(bus, channel_name, on_cancel=session_hook) as session:
        _, sent = await publish_input(channel)
        handler = Handler(session.create_run(invocation(channel, sent), on_cancel=run_hook))
        async with anyio.create_task_group() as tg:
            tg.start_soon(handler)
            await handler.ticker.running()
            await cancel(channel, run_id=handler.run.run_id)
            await wait_for(lambda: len(seen) == 1)
            await anyio.sleep(0.02)
            assert not handler.run.cancelled
            second = await cancel(channel, scope="all")
            with anyio.fail_after(2):
                await handler.done.wait()
    assert handler.result is not None and handler.result.reason == "cancelled"
    assert handler.run.cancel_request is not None
    assert handler.run.cancel_request.entry_id == second


async def test_a_hook_that_raises_refuses_and_is_reported(bus: ait.Bus, channel_name: str) -> None:
    channel = bus.channel(channel_name)
    errors: list[BaseException] = []

    def broken(request: ait.CancelRequest) -> bool:
        raise KeyError("no such user")

    async with ait.AgentSession(
        bus, channel_name, on_cancel=broken, on_error=errors.append
    ) as session:
        _, sent = await publish_input(channel)
        handler = Handler(session.create_run(invocation(channel, sent)))
        async with anyio.create_task_group() as tg:
            tg.start_soon(handler)
            await handler.ticker.running()
            await cancel(channel, run_id=handler.run.run_id)
            await wait_for(lambda: bool(errors), timeout=2)
            handler.ticker.stop()
    assert handler.result is not None and handler.result.reason == "complete"
    (error,) = errors
    assert isinstance(error, ait.AitError)
    assert "on_cancel" in str(error) and "no such user" in str(error)


# -- latency and what stays ---------------------------------------------------------------------


async def measure_cancel_latency(bus: ait.Bus, channel: ait.Channel) -> tuple[float, Any]:
    """Publish a cancel mid-stream; seconds until its run.end is on the channel."""
    async with ait.AgentSession(bus, channel.name) as session:
        _, sent = await publish_input(channel)
        provider = slow(20_000, delay=0.001)
        run = session.create_run(invocation(channel, sent))
        result: list[ait.PipeResult] = []
        async with channel.subscribe() as sub, anyio.create_task_group() as tg:

            async def handler() -> None:
                result.append(await answer(run, provider))

            tg.start_soon(handler)
            with anyio.fail_after(5):
                async for _, event in sub:
                    if isinstance(event, ait.Output) and event.run_id == run.run_id:
                        break
                await anyio.sleep(0.05)  # well into the stream
                clock = Clock()
                await cancel(channel, run_id=run.run_id)
                async for _, event in sub:
                    if isinstance(event, ait.RunEnd) and event.run_id == run.run_id:
                        latency = clock.elapsed()
                        break
    assert result[0].reason == "cancelled" and event.reason == "cancelled"
    assert provider.closed and provider.emitted < 20_000
    return latency, (run, result[0], provider)


async def test_cancel_latency_is_small_and_the_partial_output_stays(
    bus: ait.Bus, channel_name: str
) -> None:
    latencies: list[float] = []
    for i in range(5):
        channel = bus.channel(f"{channel_name}-{i}")
        latency, (run, result, provider) = await measure_cancel_latency(bus, channel)
        latencies.append(latency)
        tree = await fold(channel)
        message = tree.message(result.message_id)
        assert message is not None
        expected = "".join(f"t{i} " for i in range(provider.emitted))
        assert message.text == expected  # every token that was emitted is on the channel
        assert len(message.text) > 0
        assert message.status == "cancelled" and message.finish_reason == "cancelled"
        await assert_cancelled_on_the_wire(channel, run)
    print(  # noqa: T201
        "cancel latency (publish cancel -> run.end on the channel), ms: "
        + ", ".join(f"{x * 1000:.1f}" for x in latencies)
        + f"; median {statistics.median(latencies) * 1000:.1f}"
    )
    assert max(latencies) < 0.5


async def test_a_viewer_leaving_never_cancels(
    redis_url: str, bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name) as session:
        _, sent = await publish_input(channel)
        handler = Handler(session.create_run(invocation(channel, sent)))
        async with anyio.create_task_group() as tg:
            tg.start_soon(handler)
            # a viewer on a bus of its own (another process, as it were) watches, then goes
            async with ait.Bus.from_url(redis_url) as viewer_bus:
                viewer = viewer_bus.channel(channel_name)
                with anyio.fail_after(5):
                    async with viewer.subscribe(after="0-0") as sub:
                        async for _, event in sub:
                            if isinstance(event, ait.Output):
                                break
            # a viewer whose task is cancelled mid-read
            with anyio.move_on_after(0.05):
                async with channel.subscribe() as sub:
                    async for _ in sub:
                        pass
            await anyio.sleep(0.1)
            assert not handler.run.cancelled and not handler.done.is_set()
            handler.ticker.stop()
    assert handler.result is not None and handler.result.reason == "complete"
    assert await events(channel, "cancel") == []
    assert (await run_ends(channel))[handler.run.run_id].reason == "complete"  # type: ignore[index]


# -- task cancellation --------------------------------------------------------------------------


async def test_task_cancellation_propagates_out_of_pipe(bus: ait.Bus, channel_name: str) -> None:
    channel = bus.channel(channel_name)
    errors: list[BaseException] = []
    outcome: list[str] = []
    provider = slow(10_000)
    async with ait.AgentSession(bus, channel_name, on_error=errors.append) as session:
        _, sent = await publish_input(channel)
        run = session.create_run(invocation(channel, sent))
        await run.start()

        async def handler(task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
            task_status.started()
            try:
                result = await run.pipe(provider.stream())
            except anyio.get_cancelled_exc_class():
                outcome.append("cancelled out of pipe")
                raise
            outcome.append(f"pipe returned {result.reason}")  # pragma: no cover

        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                await tg.start(handler)
                await wait_for(lambda: provider.emitted >= 5)
                scope.cancel()
        assert scope.cancelled_caught
        assert outcome == ["cancelled out of pipe"]
        assert not run.cancelled and run.cancel_request is None
        assert run.state == "started"
        assert provider.closed
        await anyio.sleep(0.05)  # let the writer put out what was sent
        tree = await fold(channel)
        run_messages = tree.run(run.run_id).message_ids  # type: ignore[arg-type, union-attr]
        # the run is still the agent's to end; the session still works
        await run.end("error", code="handler-cancelled", message="the handler was cancelled")
        _, other = await publish_input(channel, "again")
        again = await answer(session.create_run(invocation(channel, other)), ScriptedProvider())
        assert again.reason == "complete"
        assert background_tasks(session) == 0
    assert errors == []
    assert await events(channel, "cancel") == []
    ends = await run_ends(channel)
    assert ends[run.run_id].reason == "error"  # type: ignore[index]
    # pipe wrote nothing after the cancellation: no finish (cancelled or otherwise), no
    # error event claiming the stream failed
    closing = [
        item
        for e in await events(channel, "output")
        if e.run_id == run.run_id
        for item in e.payload
        if item["type"] in ("finish", "error")
    ]
    assert closing == []
    message = (await fold(channel)).message(run_messages[0])
    assert message is not None and message.text.startswith("t0 t1 t2 t3 t4 ")


async def test_closing_the_session_ends_an_open_run(bus: ait.Bus, channel_name: str) -> None:
    """A handler cancelled by its task leaves the run open: closing the session ends it."""
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name) as session:
        _, sent = await publish_input(channel)
        run = session.create_run(invocation(channel, sent))
        with anyio.move_on_after(0.1):
            await pipe_ticker(run, Ticker())
        assert run.state == "started"
    _, end = await wait_for_event(channel, lambda e: isinstance(e, ait.RunEnd), timeout=2)
    assert (end.run_id, end.reason, end.error_code) == (run.run_id, "error", "agent-stopped")
    assert not run.cancelled


async def test_ending_from_a_cancelled_handler_still_reaches_the_channel(
    bus: ait.Bus, channel_name: str
) -> None:
    """`finally: await run.end(...)` in a handler whose task is being cancelled: the
    terminal event goes out (then the cancellation goes on)."""
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name) as session:
        _, sent = await publish_input(channel)
        run = session.create_run(invocation(channel, sent))
        await run.start()
        with anyio.CancelScope() as scope:
            scope.cancel()
            try:
                await run.pipe(ScriptedProvider(["x"]).stream())
            finally:
                await run.end("error", code="handler-cancelled", message="cancelled")
        assert scope.cancelled_caught
        assert run.state == "ended"
        assert await session.active_runs() == {}
    (end,) = await events(channel, "run.end")
    assert (end.run_id, end.error_code) == (run.run_id, "handler-cancelled")


async def test_a_user_cancel_during_a_slow_first_token(bus: ait.Bus, channel_name: str) -> None:
    """The provider is waiting for its first token (say, a long prompt): the cancel does
    not wait for that token."""
    channel = bus.channel(channel_name)
    provider = ScriptedProvider(["never"], first_token_delay=30)
    async with ait.AgentSession(bus, channel_name) as session:
        _, sent = await publish_input(channel)
        run = session.create_run(invocation(channel, sent))
        result: list[ait.PipeResult] = []

        async def handler() -> None:
            result.append(await answer(run, provider))

        async with anyio.create_task_group() as tg:
            tg.start_soon(handler)
            await wait_for(lambda: run.state == "started" and bool(provider.requests))
            await anyio.sleep(0.05)
            clock = Clock()
            await cancel(channel, run_id=run.run_id)
            with anyio.fail_after(2):
                while not result:
                    await anyio.sleep(0.005)
            assert clock.elapsed() < 0.5
    assert result[0].reason == "cancelled" and provider.emitted == 0 and provider.closed
    await assert_cancelled_on_the_wire(channel, run)


Hook = Callable[[ait.CancelRequest], bool | Awaitable[bool]]


async def outputs(channel: ait.Channel, n: int) -> None:
    """`n` output entries, as a run streaming into the channel leaves them."""
    event = ait.Output(
        run_id="r-other",
        message_id="m-other",
        role="assistant",
        parent="p",
        payload=[{"type": "text-delta", "id": "t1", "delta": "word "}],
    )
    for start in range(0, n, 500):
        await channel.publish_many([event] * min(500, n - start))


async def test_a_cancel_pages_under_the_tail_is_seen_before_the_run_starts(
    bus: ait.Bus, channel_name: str
) -> None:
    """The rewind window is replayed newest first, a page at a time: a run's start waits
    until the replay has passed its input, so a cancel sent just after the input, under
    thousands of newer entries, is honoured at once."""
    channel = bus.channel(channel_name)
    input_entry, sent = await publish_input(channel)
    cancel_entry = await cancel(channel, input_message_id=sent.message_id)
    await outputs(channel, 20_000)
    async with ait.AgentSession(bus, channel_name) as session:
        await session.catch_up(since=input_entry)  # what start() waits for
        held = session._held  # pyright: ignore[reportPrivateUsage]
        assert cancel_entry in [entry_id for entry_id, _ in held]
        run = session.create_run(invocation(channel, sent))
        await run.start()
        assert run.cancelled
        assert run.cancel_request is not None
        assert run.cancel_request.cancel.input_message_id == sent.message_id
        await run.end("cancelled")


async def test_held_cancels_keep_the_newest_when_the_window_holds_too_many(
    bus: ait.Bus, channel_name: str
) -> None:
    """The session holds at most 1,000 cancels for runs yet to start. Replayed newest
    first, the oldest are the ones left out, never one the live subscription added."""
    channel = bus.channel(channel_name)
    _, sent = await publish_input(channel)
    for _ in range(3):
        await channel.publish_many(
            [
                ait.Cancel(event_id=ait.ids.new_id(), client_id="bob", run_id="gone")
                for _ in range(500)
            ]
        )
    last = await cancel(channel, input_message_id=sent.message_id)
    async with ait.AgentSession(bus, channel_name) as session:
        run = session.create_run(invocation(channel, sent))
        await run.start()
        held = session._held  # pyright: ignore[reportPrivateUsage]
        assert len(held) == 1_000
        assert held[-1][0] == last  # the newest, in channel order
        assert [entry_id for entry_id, _ in held] == sorted(
            (entry_id for entry_id, _ in held), key=ait.ids.entry_id_key
        )
        assert run.cancelled
        await run.end("cancelled")


@pytest.mark.parametrize(
    ("failure", "recovers"),
    [(ait.BusConnectionError("redis went away"), True), (RuntimeError("a bug"), False)],
    ids=["redis-away-then-back", "unexpected"],
)
async def test_a_failing_replay_is_reported_and_never_holds_a_run_back(
    bus: ait.Bus,
    channel_name: str,
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
    recovers: bool,
) -> None:
    """The first page of the replay fails. A Redis error is reported and the page read
    again, so the cancel before the session opened is still held; anything else is
    reported, the replay stops, and the run starts at once all the same."""
    channel = bus.channel(channel_name)
    _, sent = await publish_input(channel)
    await cancel(channel, input_message_id=sent.message_id)
    errors: list[BaseException] = []
    session = ait.AgentSession(bus, channel_name, on_error=errors.append, input_timeout=5)
    scan = session.channel.scan
    calls = 0

    async def failing_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise failure
        return await scan(*args, **kwargs)

    monkeypatch.setattr(session.channel, "scan", failing_once)
    async with session:
        run = session.create_run(invocation(channel, sent))
        clock = Clock()
        await run.start()
        assert clock.elapsed() < 1.0
        assert run.cancelled is recovers
        await run.end("cancelled" if recovers else "complete")
    assert any(str(failure) in str(error) for error in errors)
