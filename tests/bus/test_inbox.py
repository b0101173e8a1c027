"""The buffer between the shared reader and one subscription (`_Inbox`).

Bounded (a full buffer refuses, so the hub can detach the laggard), drained in order
after the hub stops sending, emptied at once when the subscription closes, and a reader
cancelled while waiting loses nothing.
"""

from __future__ import annotations

import anyio

from ait.bus.reader import Batch
from ait.bus.subscription import _Inbox  # pyright: ignore[reportPrivateUsage]


def batch(n: int) -> Batch:
    return Batch(prev=f"{n}-0", entries=[(f"{n + 1}-0", None)])  # pyright: ignore[reportArgumentType]


async def test_items_come_in_order_and_a_full_buffer_refuses() -> None:
    inbox = _Inbox(3)
    assert [inbox.put(batch(n)) for n in range(4)] == [True, True, True, False]
    assert len(inbox) == 3
    assert [await inbox.get() for _ in range(3)] == [batch(0), batch(1), batch(2)]
    assert inbox.put(batch(9))  # room again
    assert await inbox.get() == batch(9)


async def test_a_waiting_reader_is_woken_by_a_put() -> None:
    inbox = _Inbox(4)
    got: list[object] = []

    async def read() -> None:
        got.append(await inbox.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        await anyio.wait_all_tasks_blocked()
        assert got == []
        inbox.put(batch(1))
    assert got == [batch(1)]


async def test_after_sending_stops_the_rest_is_drained_then_none() -> None:
    inbox = _Inbox(4)
    inbox.put(batch(1))
    inbox.put(batch(2))
    inbox.close_sending()
    assert inbox.put(batch(3))  # accepted and dropped: nobody will send it on
    assert [await inbox.get(), await inbox.get(), await inbox.get()] == [batch(1), batch(2), None]


async def test_stopping_wakes_a_waiting_reader() -> None:
    for stop in ("close_sending", "close"):
        inbox = _Inbox(4)
        got: list[object] = ["nothing yet"]

        async def read(inbox: _Inbox = inbox, got: list[object] = got) -> None:
            got[0] = await inbox.get()

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await anyio.wait_all_tasks_blocked()
            getattr(inbox, stop)()
        assert got == [None], stop


async def test_closing_drops_what_is_queued() -> None:
    inbox = _Inbox(4)
    inbox.put(batch(1))
    inbox.close()
    assert len(inbox) == 0
    assert await inbox.get() is None
    assert inbox.put(batch(2)) and len(inbox) == 0


async def test_a_reader_cancelled_while_waiting_loses_nothing() -> None:
    inbox = _Inbox(4)
    with anyio.move_on_after(0.01):
        await inbox.get()
    assert inbox.put(batch(1))  # the cancelled wait left no stale waiter behind
    assert await inbox.get() == batch(1)

    # Cancelled in the same loop turn as the put that woke it: the item is either handed to
    # the reader (anyio lets a task whose wait is already over run on) or still queued:
    # exactly once, never gone.
    got: list[object] = []

    async def read() -> None:
        got.append(await inbox.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        await anyio.wait_all_tasks_blocked()
        inbox.put(batch(2))
        tg.cancel_scope.cancel()
    if got:
        assert got == [batch(2)] and len(inbox) == 0
    else:
        assert await inbox.get() == batch(2)
