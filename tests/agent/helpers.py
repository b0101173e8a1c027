"""Small builders and probes shared by the agent tests.

Everything here talks to the real channel: inputs are published the way a client would,
and results are checked by folding the channel with the same Tree the clients use.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio

import ait
from ait.ids import new_id
from ait.testing import ScriptedProvider

E = TypeVar("E", bound=BaseException)


async def publish_input(
    channel: ait.Channel,
    text: str = "hi",
    *,
    client: str = "alice",
    parent: str | None = None,
    fork_of: str | None = None,
    regenerate: str | None = None,
    run_id: str | None = None,
    message_id: str | None = None,
    multitask: Any = None,
    payload: Any = None,
) -> tuple[str, ait.Input]:
    """Publish an input as a client would; return its entry id and the event."""
    event = ait.Input(
        event_id=new_id(),
        message_id=message_id or new_id(),
        role="user",
        client_id=client,
        parent=parent,
        fork_of=fork_of,
        regenerate=regenerate,
        run_id=run_id,
        multitask=multitask,
        payload=payload if payload is not None else ait.ChatCodec.user_text(text),
    )
    entry_id = await channel.publish(event)
    return entry_id, event


async def raises(kind: type[E], call: Awaitable[Any]) -> E:
    """Await `call`; return the `kind` exception it raised, or fail with an AssertionError.

    Use it instead of `pytest.raises` inside task groups: pytest's failure is a
    BaseException, which a task group wraps in a BaseExceptionGroup that breaks anyio's test
    runner (the test hangs or errors in teardown instead of failing).
    """
    try:
        await call
    except kind as exc:
        return exc
    raise AssertionError(f"did not raise {kind.__name__}")


def invocation(channel: ait.Channel, event: ait.Input) -> ait.Invocation:
    return ait.Invocation(channel=channel.name, input_event_id=event.event_id)


async def cancel(
    channel: ait.Channel,
    *,
    client: str = "alice",
    run_id: str | None = None,
    input_message_id: str | None = None,
    scope: Any = None,
) -> str:
    """Publish a cancel as a client would; return its entry id."""
    return await channel.publish(
        ait.Cancel(
            event_id=new_id(),
            client_id=client,
            run_id=run_id,
            input_message_id=input_message_id,
            scope=scope,
        )
    )


async def entries(channel: ait.Channel) -> list[ait.Entry]:
    """Every entry of the channel, oldest first."""
    found: list[ait.Entry] = []
    after = "0-0"
    while True:
        page = await channel.read(after=after, count=1000)
        found.extend(page)
        if len(page) < 1000:
            return found
        after = page[-1][0]


async def events(channel: ait.Channel, kind: str | None = None) -> list[Any]:
    """The events of the channel (of one type), oldest first."""
    return [e for _, e in await entries(channel) if kind is None or e.type == kind]


async def fold(channel: ait.Channel) -> ait.Tree:
    """The channel folded from its first entry, as a fresh client would see it."""
    tree = ait.Tree()
    errors = tree.apply(await entries(channel))
    tree.history_complete = True
    assert not errors, errors
    return tree


async def wait_for(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.005)


async def wait_for_event(
    channel: ait.Channel,
    match: Callable[[Any], bool],
    timeout: float = 10.0,
) -> tuple[str, Any]:
    """Poll the channel until an event matches; return its entry."""
    with anyio.fail_after(timeout):
        while True:
            for entry_id, event in await entries(channel):
                if match(event):
                    return entry_id, event
            await anyio.sleep(0.005)


def is_end(run_id: str | None = None) -> Callable[[Any], bool]:
    return lambda e: isinstance(e, ait.RunEnd) and (run_id is None or e.run_id == run_id)


def is_start_for(input_event: ait.Input) -> Callable[[Any], bool]:
    return lambda e: isinstance(e, ait.RunStart) and e.input_event_id == input_event.event_id


async def run_ends(channel: ait.Channel) -> dict[str, ait.RunEnd]:
    return {e.run_id: e for e in await events(channel, "run.end")}


async def answer(run: ait.Run, provider: ScriptedProvider) -> ait.PipeResult:
    """The canonical handler: start, load, pipe, end."""
    await run.start()
    messages = await run.load_conversation()
    result = await run.pipe(provider.stream(messages))
    await run.end(result.reason, error=result.error)
    return result


def slow(n: int = 2000, delay: float = 0.001, **options: Any) -> ScriptedProvider:
    """A provider that streams `n` tokens, one every `delay` seconds (long enough to cancel)."""
    return ScriptedProvider([f"t{i} " for i in range(n)], delay=delay, **options)


class Clock:
    """A monotonic stopwatch."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start


class Ticker:
    """A stream that yields a token every `delay` seconds until `stop()` (then finishes).

    Lets a test hold a run open exactly as long as it needs, with no guessing of durations.
    """

    def __init__(self, delay: float = 0.001) -> None:
        self.delay = delay
        self.emitted = 0
        self.closed = False
        self._stop = anyio.Event()
        self.started = anyio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def running(self, timeout: float = 5.0) -> None:
        """Wait until the stream has yielded its first token (bounded: a run cancelled
        before streaming never gets there, and the test must fail, not hang)."""
        with anyio.fail_after(timeout):
            await self.started.wait()

    async def stream(self) -> AsyncIterator[Any]:
        try:
            while not self._stop.is_set():
                self.emitted += 1
                self.started.set()
                yield "tick "
                await anyio.sleep(self.delay)
            yield {"type": "finish", "finish_reason": "stop", "status": "complete"}
        finally:
            self.closed = True


@asynccontextmanager
async def started_run(
    url: str, channel_name: str, **session_options: Any
) -> AsyncIterator[tuple[ait.Channel, ait.AgentSession, ait.Run]]:
    """A run started for an input just published, in a session with `session_options`, on
    a bus of its own that fails fast when Redis is away (and keeps its background errors
    to itself): for tests that stop Redis under a run."""
    async with ait.Bus.from_url(
        url, on_error=lambda e: None, command_timeout=2.0, connect_timeout=1.0
    ) as bus:
        channel = bus.channel(channel_name)
        _, sent = await publish_input(channel)
        async with ait.AgentSession(bus, channel_name, **session_options) as session:
            run = session.create_run(invocation(channel, sent))
            await run.start()
            yield channel, session, run


def pool_name() -> str:
    """A pool no other test uses."""
    return f"pool-{new_id()[:12]}"


@asynccontextmanager
async def serving(worker: ait.AgentWorker) -> AsyncIterator[ait.AgentWorker]:
    """Run `worker` in the background; stop it gracefully (and wait) on exit."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        try:
            yield worker
        finally:
            worker.stop()


async def enqueue_input(
    bus: ait.Bus, channel: ait.Channel, pool: str, text: str = "hi", **options: Any
) -> tuple[ait.Input, str]:
    """Publish an input and queue its invocation, as a client does; return both."""
    _, event = await publish_input(channel, text, **options)
    queued = await bus.pool(pool).enqueue(invocation(channel, event))
    return event, queued
