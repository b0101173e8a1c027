"""A live subscription to one channel, served by the bus's shared reader.

Guarantees:
- entries come in stream order, each once: the subscription remembers the last entry id
  it yielded and never yields that id or an older one again;
- no gap: whenever the shared reader is ahead of this subscription (on joining, after
  being detached as lagged) the subscription reads the missing range itself first, a page
  at a time, each yielded before the next is read (a long gap is never held whole);
- Redis going away is waited out: reads are retried with backoff, forever, until the
  subscription is closed or its task cancelled (each failure is reported to `bus.on_error`);
- what cannot be guaranteed is said: a subscriber that fell behind is detached and raises
  `SubscriberLagged` once (iterate again to catch up, nothing is lost); a stream that was
  reset or trimmed past the cursor raises `ContinuityLost` once, and iterating again follows
  the stream from its oldest entry;
- an entry that does not decode is yielded as a `BadEntry` in its place;
- a channel Redis refuses to read (its key holds another type, this user may not read it)
  raises `BusError` once, and leaves the shared reader: the other channels are not held
  up; iterating again tries again.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

import anyio

from .._constants import READER_COUNT
from ..errors import (
    BusConnectionError,
    BusError,
    BusTimeoutError,
    ContinuityLost,
    SubscriberLagged,
    UsageError,
)
from ..ids import MIN_ENTRY_ID, entry_id_key
from .channel import Entry
from .reader import Batch, Lost, ReaderHub

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["Subscription"]

T = TypeVar("T")

_UNOPENED, _OPEN, _CLOSED = "unopened", "open", "closed"


class Subscription:
    """Follows one channel live. Create with `channel.subscribe(after=...)`.

    ```python
    async with channel.subscribe(after="$") as sub:   # ready: nothing published later is missed
        async for entry_id, event in sub:
            ...
    ```

    `last_id` is the cursor: the id of the last entry yielded (or the starting point).
    """

    def __init__(
        self, channel: Channel, after: str, *, strict: bool = True, buffer: int | None = None
    ) -> None:
        self.channel = channel
        #: Entries it may hold unread before the shared reader detaches it as lagged.
        self.buffer = channel.bus.subscriber_buffer if buffer is None else buffer
        self._after = after
        self._strict = strict
        self.last_id = after if after != "$" else MIN_ENTRY_ID
        # True when last_id names an entry that existed: then a catch-up read must find it.
        self._cursor_is_entry = False
        self._state = _UNOPENED
        self._ready: deque[Entry] = deque()
        self._held: Batch | None = None
        self._attached = False
        self._lagged = False
        self._failure: str | None = None  # why the hub dropped our key, until raised
        self._inbox: _Inbox | None = None
        self._hub: ReaderHub | None = None
        self._gap_until: str | None = None
        self._verify = False

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Subscription:
        await self.open()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Resolve the starting point and join the shared reader (entering does this)."""
        if self._state == _OPEN:
            return
        if self._state == _CLOSED:
            raise UsageError("unable to open the subscription; it is closed (subscribe again)")
        self.channel.bus.require_open("subscribe")
        if self._after == "$":
            last = await self._retrying(self.channel.last_id)
            self.last_id = last or MIN_ENTRY_ID
            self._cursor_is_entry = last is not None
        else:
            # `after` names an entry the caller read: if it is gone, so may be what followed.
            self._cursor_is_entry = self._strict and self._after != MIN_ENTRY_ID
        self._state = _OPEN
        self._attach()
        if self._after == "$":
            self._verify = False  # resolved a moment ago

    async def aclose(self) -> None:
        """Leave the shared reader. Idempotent."""
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        self._detach()

    def _attach(self) -> None:
        if self._inbox is not None:
            self._inbox.close()  # the drained buffer of a detached (lagged) attachment
        self._inbox = _Inbox(self.buffer)
        self._lagged = False
        self._failure = None
        self._attached = True
        bus = self.channel.bus
        self._hub = bus.hub
        bus.track(self)
        # Whatever lies between our cursor and the hub's is ours to fetch (next read), and
        # our cursor must still exist: a reader that followed from a trimmed cursor would
        # skip what was trimmed without knowing.
        self._gap_until = self._hub.attach(self.channel.key, self, self.last_id)
        self._verify = self._cursor_is_entry

    def _detach(self) -> None:
        if self._attached:
            self._attached = False
            assert self._hub is not None
            self._hub.detach(self.channel.key, self)
            self.channel.bus.untrack(self)
        if self._inbox is not None:
            self._inbox.close()

    def bus_closed(self) -> None:
        """The bus is closing: end iteration."""
        self._state = _CLOSED
        self._detach()

    # -- the hub's side (synchronous, on the reader task) ---------------------------------

    def deliver(self, item: Batch | Lost) -> bool:
        assert self._inbox is not None
        return self._inbox.put(item)

    def detached(self) -> None:
        self._lagged = True
        self._left()

    def failed(self, reason: str) -> None:
        self._failure = reason
        self._left()

    def _left(self) -> None:
        """The hub dropped us: what it queued is still read, then the cause is raised."""
        self._attached = False
        self.channel.bus.untrack(self)
        if self._inbox is not None:
            self._inbox.close_sending()

    # -- iteration ------------------------------------------------------------------------

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Entry:
        if self._state == _UNOPENED:
            await self.open()
        while True:
            if self._ready:
                entry = self._ready.popleft()
                self.last_id = entry[0]
                self._cursor_is_entry = True
                return entry
            if self._state == _CLOSED:
                raise StopAsyncIteration
            if self._gap_until is not None:
                await self._catch_up()  # one page; may raise ContinuityLost: retried
                continue
            if self._held is not None:
                batch, self._held = self._held, None
                self._queue_newer(batch.entries)  # its gap is read: what was there, was read
                continue
            if not (self._attached or self._lagged or self._failure):
                self._attach()
                continue
            assert self._inbox is not None
            item = await self._inbox.get()
            if item is None:
                # Our buffer is drained and will get nothing more: we were detached.
                if self._lagged:
                    self._lagged = False
                    raise SubscriberLagged(self.channel.name, self.last_id) from None
                if self._failure is not None:
                    reason, self._failure = self._failure, None
                    raise BusError(
                        f"unable to follow channel {self.channel.name!r}: {reason}; "
                        "it left the shared reader (iterate again to retry)"
                    )
                continue
            if isinstance(item, Lost) and await self._cursor_gone():
                lost_at = self.last_id
                self._reset_cursor()
                raise ContinuityLost(self.channel.name, lost_at, item.reason)
            if isinstance(item, Lost):
                continue  # the hub's cursor is gone, ours is not: nothing of ours was lost
            self._take(item)

    def _take(self, batch: Batch) -> None:
        """Queue a batch's entries newer than the cursor. If the hub read it after an entry
        we have not reached, hold it: the gap before it is read first (`_catch_up`)."""
        tail = self._ready[-1][0] if self._ready else self.last_id
        if batch.prev == tail:
            self._ready.extend(batch.entries)  # the usual case: it follows on exactly
            return
        if entry_id_key(batch.prev) > entry_id_key(tail):
            self._held = batch
            self._gap_until = batch.prev
            self._verify = True
            return
        self._queue_newer(batch.entries)

    def _queue_newer(self, entries: list[Entry]) -> None:
        """Queue those of `entries` newer than the last entry queued or yielded."""
        cursor = entry_id_key(self._ready[-1][0] if self._ready else self.last_id)
        if entry_id_key(entries[0][0]) > cursor:
            self._ready.extend(entries)
        else:
            self._ready.extend(e for e in entries if entry_id_key(e[0]) > cursor)

    async def _catch_up(self) -> None:
        """Read the next page of the gap, (cursor, `_gap_until`], into the ready queue.

        One page at a time, yielded before the next is read: a subscriber far behind holds
        a page, not the whole gap. Ends the gap once a page reaches its end.
        """
        upto = self._gap_until
        assert upto is not None
        start = self._ready[-1][0] if self._ready else self.last_id
        must_find_start = self._verify and self._cursor_is_entry and not self._ready
        self._verify = False
        target = entry_id_key(upto)
        if entry_id_key(start) >= target:
            if not must_find_start:
                self._gap_until = None
                return
            upto = start  # nothing to fetch: just check the cursor
        lower = start if must_find_start else f"({start}"
        count = READER_COUNT + must_find_start
        page = await self._retrying(partial(self.channel.range, lower, upto, count))
        if must_find_start:
            if not page or page[0][0] != start:
                lost_at = start
                self._reset_cursor()
                raise ContinuityLost(
                    self.channel.name,
                    lost_at,
                    "entries after the cursor were trimmed or the stream reset",
                )
            del page[0]
        if len(page) < READER_COUNT or entry_id_key(page[-1][0]) >= target:
            self._gap_until = None
        self._ready.extend(page)

    async def _cursor_gone(self) -> bool:
        """Is the entry we last read gone from the stream? (Not if we read none.)"""
        if not self._cursor_is_entry or self.last_id == MIN_ENTRY_ID:
            return False
        found = await self._retrying(partial(self.channel.range, self.last_id, self.last_id, 1))
        return not found

    def _reset_cursor(self) -> None:
        self.last_id = MIN_ENTRY_ID
        self._cursor_is_entry = False
        self._ready.clear()

    async def _retrying(self, read: Callable[[], Awaitable[T]]) -> T:
        delay = 0.05
        while True:
            try:
                return await read()
            except (BusConnectionError, BusTimeoutError) as exc:
                self.channel.bus.report(exc)
                await anyio.sleep(delay * (0.5 + random.random() / 2))
                delay = min(delay * 2, 2.0)


class _Inbox:
    """The bounded buffer between the hub and one subscription: batches in, one consumer.

    Bounded in entries, what the memory it takes follows (a batch holds 1 to 512): a batch
    that would take it over `limit` is refused, unless nothing is held (else a limit below
    one batch would never take one).

    An anyio memory stream did this before, but each wait of its receiver allocates half a
    dozen objects the garbage collector tracks (events, futures, a waiter entry), which live
    until the next batch: with 100 subscriptions in a process at 200 tokens/s that was 547
    young collections and 4 full ones in 3 s, and the full ones (tens of ms each) made the
    p99 token latency. Here a wait costs one future, created only when the buffer is empty.
    """

    __slots__ = ("_items", "_limit", "_open", "_sending", "_waiter", "entries")

    def __init__(self, limit: int) -> None:
        self._items: deque[Batch | Lost] = deque()
        self._limit = limit
        #: Entries held (a `Lost` marker counts as one).
        self.entries = 0
        self._sending = True  # the hub may still put
        self._open = True  # the subscription still reads
        self._waiter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Batch | Lost) -> bool:
        """Queue `item`; False (nothing queued) when the buffer is full. After a close, the
        item is dropped: nobody will read it."""
        if not (self._sending and self._open):
            return True
        size = len(item.entries) if type(item) is Batch else 1
        if self.entries + size > self._limit and self._items:
            return False
        self._items.append(item)
        self.entries += size
        self._wake()
        return True

    async def get(self) -> Batch | Lost | None:
        """The next item; None once the buffer is drained and nothing more will come."""
        while not self._items:
            if not (self._sending and self._open):
                return None
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        if not self._open:
            return None
        item = self._items.popleft()
        self.entries -= len(item.entries) if type(item) is Batch else 1
        return item

    def close_sending(self) -> None:
        """No more items will come; what is queued can still be read."""
        self._sending = False
        self._wake()

    def close(self) -> None:
        """Nothing more is read: drop what is queued, wake the reader."""
        self._open = False
        self._items.clear()
        self.entries = 0
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
