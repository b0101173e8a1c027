"""Opening reads only the newest history; `load_older` pages back to the channel's start,
through trimmed streams and pages made only of deltas, and never pages forever."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio

import ait
from ait.client import ClientSession
from ait.ids import new_id

from .helpers import Agent, Connect, default_view, ended, fold, input_event, seed, shown, turn

TURNS = 120  # 5 entries each: input, run.start, a text output, a finish output, run.end


class PageCounter:
    """Counts the history pages a session reads (wraps its channel's `history`)."""

    def __init__(self, session: ClientSession) -> None:
        self.pages: list[int] = []
        read: Callable[..., Awaitable[list[ait.Entry]]] = session.channel.history

        async def history(*args: Any, **kwargs: Any) -> list[ait.Entry]:
            page = await read(*args, **kwargs)
            self.pages.append(len(page))
            return page

        session.channel.history = history  # type: ignore[method-assign]


def newest(view: ait.View, tree: ait.Tree, count: int) -> None:
    """`view` shows exactly the newest `count` messages of the whole conversation."""
    expected = default_view(tree)
    assert shown(view) == expected[len(expected) - count :]


async def test_opening_reads_only_the_newest_pages(bus: ait.Bus, channel_name: str) -> None:
    channel = bus.channel(channel_name)
    await seed(channel, TURNS)
    full = await fold(channel)
    session = ClientSession(bus, channel_name, client_id="alice", window=10, page_size=50)
    counter = PageCounter(session)
    async with session:
        assert len(session.view.messages) == 10
        newest(session.view, full, 10)
        assert session.view.has_older
        assert not session.tree.history_complete
        # 50 entries hold 10 exchanges, 20 messages: one page fills a window of 10.
        assert counter.pages == [50]
        assert len(session.tree) == 20


async def test_load_older_pages_back_to_the_start(bus: ait.Bus, channel_name: str) -> None:
    channel = bus.channel(channel_name)
    await seed(channel, TURNS)
    full = await fold(channel)
    total = len(default_view(full))
    assert total == 2 * TURNS
    session = ClientSession(bus, channel_name, client_id="alice", window=10, page_size=50)
    counter = PageCounter(session)
    async with session:
        view = session.view
        other = session.create_view(window=3)  # pagination is per view
        shown_count = 10
        calls = 0
        while True:
            calls += 1
            assert calls < 20, "load_older never reached the start"
            pages_before = len(counter.pages)
            revealed = await view.load_older(25)
            shown_count += revealed
            assert len(view.messages) == shown_count
            newest(view, full, shown_count)
            if revealed < 25:
                break
            assert revealed == 25 and view.has_older
            # Page by page: never the whole rest of the history at once.
            assert len(counter.pages) - pages_before <= 2
            assert len(session.tree) - shown_count < 20  # no more than one page ahead
        assert shown_count == total and calls == (total - 10) // 25 + 1
        assert not view.has_older and session.tree.history_complete
        assert counter.pages[-1] < 50  # the short page that told us it is the start
        pages = len(counter.pages)
        assert await view.load_older(25) == 0  # at the start: nothing, and no more reads
        assert len(counter.pages) == pages
        assert len(other.messages) == 3 and other.has_older  # untouched by `view`
        assert await other.load_older(1000) == total - 3
        assert len(counter.pages) == pages  # all folded already: revealed without reading


class CursorLog:
    """The `before` cursor of each history page a session reads."""

    def __init__(self, session: ClientSession) -> None:
        self.cursors: list[str | None] = []
        read: Callable[..., Awaitable[list[ait.Entry]]] = session.channel.history

        async def history(before: str | None = None, **kwargs: Any) -> list[ait.Entry]:
            self.cursors.append(before)
            await anyio.sleep(0.01)  # a round trip long enough for the other call to start
            return await read(before, **kwargs)

        session.channel.history = history  # type: ignore[method-assign]


async def test_concurrent_load_older_calls_read_each_page_once(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    await seed(channel, TURNS)
    full = await fold(channel)
    # 20 entries a page hold 4 exchanges, 8 messages: one page fills a window of 4.
    session = ClientSession(
        bus, channel_name, client_id="alice", invoke=None, window=4, page_size=20
    )
    log = CursorLog(session)
    async with session:
        view, other = session.view, session.create_view(window=4)
        opened = len(log.cursors)
        revealed: list[int] = []

        async def load(target: ait.View) -> None:
            revealed.append(await target.load_older(10))

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(load, view)
                tg.start_soon(load, view)
                tg.start_soon(load, other)
        assert revealed == [10, 10, 10]
        newest(view, full, 24)
        newest(other, full, 14)
        reads = log.cursors[opened:]
        assert len(reads) == len(set(reads)), f"a page was read twice: {reads}"
        # 20 more messages for `view`: 16 beyond what opening read, two pages; `other`
        # wanted fewer, all folded by then.
        assert len(reads) == 2


async def test_load_older_on_a_trimmed_stream_stops_at_what_is_left(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    await seed(channel, TURNS)
    client = bus.handle.client
    # Exact trim to an odd length: the oldest entry left is in the middle of an exchange.
    await client.execute_command("XTRIM", channel.key, "MAXLEN", 333)
    assert await channel.length() == 333
    remaining = await fold(channel)
    async with ClientSession(
        bus, channel_name, client_id="alice", window=10, page_size=50
    ) as session:
        view = session.view
        for _ in range(30):
            if await view.load_older(25) < 25:
                break
        else:
            raise AssertionError("load_older never reached the start of a trimmed stream")
        assert not view.has_older
        assert shown(view) == default_view(remaining)
        assert await view.load_older(25) == 0


async def test_trimming_while_open_ends_paging_without_a_loop(
    bus: ait.Bus, channel_name: str
) -> None:
    channel = bus.channel(channel_name)
    await seed(channel, TURNS)
    async with ClientSession(
        bus, channel_name, client_id="alice", window=10, page_size=50
    ) as session:
        counter = PageCounter(session)
        # Everything older than what the session read is gone now.
        await bus.handle.client.execute_command("XTRIM", channel.key, "MAXLEN", 40)
        # What it folded stays (20 messages, 10 shown); older reads find nothing more.
        assert await session.view.load_older(25) == 10
        assert not session.view.has_older and session.tree.history_complete
        assert len(counter.pages) <= 2
        assert await session.view.load_older(25) == 0


async def test_a_page_made_only_of_deltas_still_makes_progress(
    bus: ait.Bus, channel_name: str
) -> None:
    """A very long answer spans many pages without a new message: paging goes on."""
    channel = bus.channel(channel_name)
    ids = await seed(channel, 3)
    pieces = [f"d{i} " for i in range(3000)]
    long_turn, long_input, long_answer = turn(99, parent=ids[-1][1], answer=pieces)
    for start in range(0, len(long_turn), 500):
        await channel.publish_many(long_turn[start : start + 500])
    parent = long_answer
    for n in range(3):
        made, _, parent = turn(100 + n, parent=parent)
        await channel.publish_many(made)
    full = await fold(channel)
    total = len(default_view(full))
    assert total == 14

    async with ClientSession(
        bus, channel_name, client_id="alice", window=4, page_size=20
    ) as session:
        counter = PageCounter(session)
        view = session.view
        newest(view, full, 4)
        shown_count = 4
        for _ in range(10):
            revealed = await view.load_older(3)
            shown_count += revealed
            if revealed < 3:
                break
        assert shown_count == total and not view.has_older
        assert shown(view) == default_view(full)
        answer = session.tree.snapshot(long_answer)
        assert answer.text == "".join(pieces) and answer.status == "complete"
        assert session.tree.snapshot(long_input).text == "question 99"
        assert sum(counter.pages) >= 3000  # it really paged through the deltas


async def test_live_messages_while_paging_back(
    bus: ait.Bus, channel_name: str, agent: Agent, connect: Connect
) -> None:
    channel = bus.channel(channel_name)
    ids = await seed(channel, 40)
    alice = await connect("alice", window=6, page_size=30)
    view = alice.view
    first = await view.send("live question")
    await ended(first)
    assert view.messages[-2].text == "live question"
    assert view.messages[-2].parent == ids[-1][1]  # continues the seeded branch
    while await view.load_older(20) == 20:
        pass
    assert not view.has_older
    assert shown(view) == default_view(await fold(channel))
    assert len(view.messages) == 2 * 40 + 2


async def test_an_empty_channel_has_nothing_older(bus: ait.Bus) -> None:
    async with ClientSession(bus, f"empty-{new_id()[:8]}", client_id="alice") as session:
        assert session.view.messages == []
        assert not session.view.has_older
        assert session.tree.history_complete
        assert await session.view.load_older(10) == 0


async def test_opening_never_shows_a_message_cut_by_the_page_boundary(
    bus: ait.Bus, channel_name: str
) -> None:
    """A run that streams across another exchange: its answer's last delta is in the newest
    page, its first ones far back. Opening must read until the answer is whole."""
    channel = bus.channel(channel_name)
    first = input_event("slow one")
    quick = input_event("quick one", parent=first.message_id)
    slow_run, slow_answer = new_id(), new_id()
    quick_run, quick_answer = new_id(), new_id()

    def start(run_id: str, event: ait.Input) -> ait.RunStart:
        return ait.RunStart(
            run_id=run_id,
            invocation_id=new_id(),
            input_event_id=event.event_id,
            input_message_id=event.message_id,
            run_client_id=event.client_id,
            parent=event.message_id,
        )

    def out(run_id: str, message_id: str, parent: str, *payload: dict[str, Any]) -> ait.Output:
        return ait.Output(
            run_id=run_id,
            message_id=message_id,
            role="assistant",
            parent=parent,
            payload=list(payload),
        )

    def text(delta: str) -> dict[str, Any]:
        return {"type": "text-delta", "id": "t0", "delta": delta}

    finish = {"type": "finish", "status": "complete"}
    await channel.publish_many(
        [
            first,
            start(slow_run, first),
            out(slow_run, slow_answer, first.message_id, text("part1 ")),
            quick,
            start(quick_run, quick),
            out(quick_run, quick_answer, quick.message_id, text("fast"), finish),
            ait.RunEnd(run_id=quick_run, invocation_id=new_id(), reason="complete"),
            out(slow_run, slow_answer, first.message_id, text("part2")),
            out(slow_run, slow_answer, first.message_id, finish),
            ait.RunEnd(run_id=slow_run, invocation_id=new_id(), reason="complete"),
        ]
    )
    full = await fold(channel)
    async with ClientSession(
        bus, channel_name, client_id="alice", window=2, page_size=7
    ) as session:  # the newest page holds the quick exchange and the slow answer's end
        # Read only in part, the slow answer would sort after the quick exchange (by its
        # newest delta) and show as "part2". Whole, it sorts where it began.
        assert shown(session.view) == default_view(full)[-2:]
        assert [m.text for m in session.view.messages] == ["quick one", "fast"]
        assert session.tree.snapshot(slow_answer).text == "part1 part2"
