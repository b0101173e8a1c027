"""Shared by the client tests: an agent worker serving a pool of the test's own, client
sessions on the test's channel, and probes that compare what clients folded with the channel.

Everything runs on real Redis. The worker is a real `AgentWorker` on a pool name no other
test uses, so invocations left over by one test are never answered by another's agent.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Protocol, TypeVar

import anyio
import pytest

import ait
from ait.client import ActiveRun, ClientSession, RunOutput
from ait.ids import entry_id_key, new_id
from ait.testing import ScriptedProvider

Handler = Callable[[ait.Run], Awaitable[None]]
T = TypeVar("T")

#: What the default agent answers: three text deltas, then a finish.
TOKENS = ("Hel", "lo", " there")


class Agent:
    """An `AgentWorker` serving `pool` with `handler` (the canonical start / load / pipe /
    end with `provider` by default). Swap `provider` or `handler` while it serves."""

    def __init__(self, bus: ait.Bus, pool: str, provider: ScriptedProvider | None) -> None:
        self.bus = bus
        self.pool = pool
        self.provider = provider or ScriptedProvider(TOKENS, delay=0.001)
        self.handler: Handler = self.answer
        #: Every run the worker handed to the handler, in order.
        self.runs: list[ait.Run] = []
        #: The conversation each canonical answer loaded, by run id.
        self.conversations: dict[str, list[ait.Message]] = {}
        self.results: list[ait.PipeResult] = []
        #: What the worker reported (handler failures, bus errors while Redis is away).
        self.errors: list[BaseException] = []
        self.worker: ait.AgentWorker | None = None
        #: What `worker.run()` raised, when `serving(..., survive_crash=True)`.
        self.crashed: BaseException | None = None

    async def answer(self, run: ait.Run) -> None:
        await run.start()
        messages = await run.load_conversation()
        assert run.run_id is not None
        self.conversations[run.run_id] = messages
        result = await run.pipe(self.provider.stream(messages))
        self.results.append(result)
        await run.end(result.reason, error=result.error)

    async def handle(self, run: ait.Run) -> None:
        self.runs.append(run)
        await self.handler(run)


@asynccontextmanager
async def serving(
    bus: ait.Bus,
    pool: str,
    *,
    provider: ScriptedProvider | None = None,
    handler: Handler | None = None,
    concurrency: int = 4,
    survive_crash: bool = False,
    **options: Any,
) -> AsyncIterator[Agent]:
    """Run an agent worker for `pool` in a task group of the caller's task while the block
    runs; on exit stop it (in-flight handlers get a short grace, then are cancelled).

    A worker that raises fails the test, unless `survive_crash`: then the error is kept in
    `agent.crashed` (a fault test that is about the clients, not the agent).
    """
    agent = Agent(bus, pool, provider)
    if handler is not None:
        agent.handler = handler
    options.setdefault("shutdown_timeout", 2.0)
    options.setdefault("block_ms", 500)
    worker = ait.AgentWorker(
        bus,
        agent.handle,
        pool=pool,
        concurrency=concurrency,
        on_error=agent.errors.append,
        **options,
    )
    agent.worker = worker

    async def run() -> None:
        try:
            await worker.run()
        except Exception as exc:
            if not survive_crash:
                raise
            agent.crashed = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, name=f"agent worker {pool}")
        try:
            yield agent
        finally:
            worker.stop()


class Connect(Protocol):
    async def __call__(self, client_id: str = "alice", **options: Any) -> ClientSession: ...


@pytest.fixture
def pool_name() -> str:
    """A worker pool no other test uses."""
    return f"pool-{new_id()[:12]}"


@pytest.fixture
async def agent(bus: ait.Bus, pool_name: str) -> AsyncIterator[Agent]:
    """An agent worker answering every invocation of `pool_name` with `TOKENS`."""
    async with serving(bus, pool_name) as served:
        yield served


@pytest.fixture
async def connect(bus: ait.Bus, channel_name: str, pool_name: str) -> AsyncIterator[Connect]:
    """Open client sessions on the test's channel and pool; all closed at teardown."""
    async with AsyncExitStack() as stack:

        async def open_session(client_id: str = "alice", **options: Any) -> ClientSession:
            options.setdefault("pool", pool_name)
            session = ClientSession(bus, channel_name, client_id=client_id, **options)
            return await stack.enter_async_context(session)

        yield open_session


# -- probes ---------------------------------------------------------------------------------------

#: Longest any single wait of a client test may take. A regression fails here, fast and
#: plainly, rather than at pytest-timeout (whose signal interrupts the event loop and can
#: leave the async fixtures' teardown hanging).
LIMIT = 20.0


async def ended(active: ActiveRun) -> ait.RunInfo:
    """`await active.wait()`, within `LIMIT`."""
    with anyio.fail_after(LIMIT):
        return await active.wait()


async def started(active: ActiveRun) -> str:
    """`await active.run_id`, within `LIMIT`."""
    with anyio.fail_after(LIMIT):
        return await active.run_id


async def text_of(active: ActiveRun) -> list[str]:
    """Every piece of `active.text_stream()`, within `LIMIT`."""
    with anyio.fail_after(LIMIT):
        return [piece async for piece in active.text_stream()]


async def outputs_of(active: ActiveRun) -> list[RunOutput]:
    """Every item of `active.events()`, within `LIMIT`."""
    with anyio.fail_after(LIMIT):
        return [output async for output in active.events()]


async def wait_for(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll until `predicate()` is true; fail the test after `timeout` seconds."""
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.005)


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
    return [e for _, e in await entries(channel) if kind is None or e.type == kind]


async def fold(channel: ait.Channel) -> ait.Tree:
    """The whole channel folded from its first entry: what a fresh reader knows."""
    tree = ait.Tree()
    tree.apply(await entries(channel))
    tree.history_complete = True
    return tree


def dump(tree: ait.Tree) -> dict[str, Any]:
    """A canonical dump of a tree: every placed message and every run, sorted by id."""
    order = tree.structure.order
    return {
        "messages": {mid: tree.snapshot(mid).model_dump() for mid in sorted(order)},
        "runs": {info.run_id: info.model_dump() for info in tree.runs()},
        "order": list(order),
    }


def shown(view: ait.View) -> list[tuple[str, str, str, str]]:
    """What a view shows, as (id, role, text, status) rows."""
    return [(m.id, m.role, m.text, m.status) for m in view.messages]


def default_view(tree: ait.Tree) -> list[tuple[str, str, str, str]]:
    """What a fresh view with the default selection shows of `tree`, all of it."""
    view = ait.View(tree, window=1_000_000)
    try:
        return shown(view)
    finally:
        view.close()


async def assert_converged(channel: ait.Channel, *sessions: ClientSession) -> None:
    """Each session's tree equals the channel folded from scratch (once they caught up)."""
    last = await retrying(channel.last_id)
    for session in sessions:
        await wait_for(lambda s=session: _caught_up(s, last))
    expected = dump(await retrying(lambda: fold(channel)))
    for session in sessions:
        assert dump(session.tree) == expected, session.client_id


async def retrying(make: Callable[[], Awaitable[T]], attempts: int = 5) -> T:
    """`await make()`, again after a `BusConnectionError`: right after Redis restarts, the
    first command on each idle pooled connection fails once (see the fault tests)."""
    for attempt in range(attempts):
        try:
            return await make()
        except ait.BusConnectionError:
            if attempt == attempts - 1:
                raise
            await anyio.sleep(0.05)
    raise AssertionError("unreachable")


@asynccontextmanager
async def reopening(bus: ait.Bus, channel: str, **options: Any) -> AsyncIterator[ClientSession]:
    """A client session opened with `retrying` (a new session for each attempt)."""

    async def attempt() -> ClientSession:
        session = ClientSession(bus, channel, **options)
        await session.__aenter__()
        return session

    session = await retrying(attempt)
    try:
        yield session
    finally:
        await session.__aexit__(None, None, None)


def _caught_up(session: ClientSession, last: str | None) -> bool:
    sub = session._sub  # pyright: ignore[reportPrivateUsage]
    return last is None or (sub is not None and entry_id_key(sub.last_id) >= entry_id_key(last))


def status(tree: ait.Tree, run_id: str) -> str | None:
    """The status of run `run_id` in `tree`, None while the tree does not know it."""
    info = tree.run(run_id)
    return info.status if info is not None else None


def input_event(
    text: str,
    *,
    client: str = "seed",
    parent: str | None = None,
    message_id: str | None = None,
) -> ait.Input:
    return ait.Input(
        event_id=new_id(),
        message_id=message_id or new_id(),
        role="user",
        client_id=client,
        parent=parent,
        payload=ait.ChatCodec.user_text(text),
    )


def turn(
    n: int, *, parent: str | None, answer: list[str] | None = None
) -> tuple[list[ait.Event], str, str]:
    """The entries of one finished exchange (input, run.start, outputs, run.end); returns
    them with the input's and the answer's message ids."""
    question = input_event(f"question {n}", parent=parent)
    run_id, answer_id = new_id(), new_id()
    start = ait.RunStart(
        run_id=run_id,
        invocation_id=new_id(),
        input_event_id=question.event_id,
        input_message_id=question.message_id,
        run_client_id=question.client_id,
        parent=question.message_id,
    )
    pieces = answer if answer is not None else [f"answer {n}"]
    outputs: list[ait.Event] = [
        ait.Output(
            run_id=run_id,
            message_id=answer_id,
            role="assistant",
            parent=question.message_id,
            payload=[{"type": "text-delta", "id": "t0", "delta": piece}],
        )
        for piece in pieces
    ]
    outputs.append(
        ait.Output(
            run_id=run_id,
            message_id=answer_id,
            role="assistant",
            parent=question.message_id,
            payload=[{"type": "finish", "finish_reason": "stop", "status": "complete"}],
        )
    )
    end = ait.RunEnd(run_id=run_id, invocation_id=start.invocation_id, reason="complete")
    return [question, start, *outputs, end], question.message_id, answer_id


async def seed(channel: ait.Channel, turns: int, *, batch: int = 500) -> list[tuple[str, str]]:
    """Publish `turns` finished exchanges on one branch; return their (input, answer) ids."""
    pending: list[ait.Event] = []
    ids: list[tuple[str, str]] = []
    parent: str | None = None
    for n in range(turns):
        made, question, answer = turn(n, parent=parent)
        pending.extend(made)
        ids.append((question, answer))
        parent = answer
        if len(pending) >= batch:
            await channel.publish_many(pending)
            pending = []
    if pending:
        await channel.publish_many(pending)
    return ids


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start
