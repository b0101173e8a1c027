"""The coalescing writer: high-rate deltas in few entries, without adding latency when quiet.

`send()` never waits. A background task writes, keeping order:
- after a quiet spell, at once: one event, one XADD, one round trip of latency (an LLM
  streaming tens of tokens a second always finds the writer quiet);
- when events come much faster than `linger` apart (5 ms by default, never above
  `max_wait`), writes start at least `linger` apart: what arrives meanwhile goes out
  together, in one round trip, and consecutive outputs of one message merge into one
  entry whose payload is their list. The rate is a moving average of the gaps between
  events, so a producer that slows down is written at once again.

For a stream of deltas of one message, `writer.message(...)` gives a handle whose
`send(item)` queues a codec event without building an `Output` per delta: the entry's
`Output` is built once, when it is written.

`flush()` waits for everything sent so far; `aclose()` flushes and stops. A failed write
surfaces on the next `send()`/`flush()` as `WriteFailed`, carrying the events not written.

With `retry_for=` seconds, the writer rides out an outage: a write Redis did not acknowledge
(the connection dropped, no answer in time) is sent again, unchanged, with a growing pause
between attempts, while `send()` keeps queueing behind it. Every entry of such a writer
carries a resend key (`k`, docs/protocol.md), so a copy of an entry that had landed folds
away. Only once Redis stayed away longer than `retry_for` does the writer give up, with
`RedisUnavailable`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from .._constants import WRITER_LINGER, WRITER_MAX_WAIT
from ..codec import encode_event, entry_size
from ..codec.envelope import check_event, encode_payload
from ..errors import (
    BusConnectionError,
    BusError,
    BusTimeoutError,
    CodecError,
    EntryTooLarge,
    RedisUnavailable,
    UsageError,
    WriteFailed,
)
from ..events import Event, Output
from ..ids import new_id
from ._tasks import BackgroundTasks

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["CoalescingWriter", "MessageOutput"]

_monotonic = time.monotonic

_MERGE_LIMIT = 1024  # codec events in one merged entry, well under the size limit for deltas
# Pauses between the attempts of a write Redis did not acknowledge: doubling, jittered.
_RESEND_FIRST = 0.05
_RESEND_MAX = 1.0


class MessageOutput:
    """The output of one message through a writer: queue codec events, one by one or many.

    ```python
    out = writer.message(run_id=run_id, message_id=mid, role="assistant", parent=input_id)
    out.send({"type": "text-delta", "id": "t1", "delta": "Hel"})
    ```
    """

    __slots__ = ("_head", "_template", "_writer")

    def __init__(self, writer: CoalescingWriter, template: Output) -> None:
        self._writer = writer
        self._template = template
        # v, t and h never change for one message: encode them once, not per entry.
        self._head = encode_event(template)[:6]

    @property
    def message_id(self) -> str:
        return self._template.message_id

    def send(self, item: dict[str, Any]) -> None:
        """Queue one codec event (a wire map) for this message. Never waits."""
        self._writer.queue((self, item))

    def extend(self, items: Iterable[dict[str, Any]]) -> None:
        """Queue several codec events for this message, in order."""
        for item in items:
            self._writer.queue((self, item))

    def output(self, payload: list[Any]) -> Output:
        """The `Output` event carrying `payload` for this message."""
        return self._template.model_copy(update={"payload": payload})

    def fields(self, payload: list[Any]) -> list[bytes]:
        """The entry fields of an `Output` carrying `payload` (as `encode_event` makes them)."""
        return [*self._head, b"d", encode_payload(payload)]


_Item = Event | tuple[MessageOutput, dict[str, Any]]


class CoalescingWriter:
    """Batches events of one channel into few entries. Get one with `channel.writer()`.

    ```python
    async with channel.writer() as out:
        for delta in deltas:
            out.send(delta)          # never blocks
        await out.flush()            # everything sent is on the stream
    ```

    Args:
        linger: when events come faster than every `linger / 2` on average, the least time
            between the starts of two writes (default 0.005 s); at slower rates each event
            is written at once.
        max_wait: upper bound for `linger` (default 0.05). An event also waits for the
            write in flight when it arrives (one round trip, usually well under a
            millisecond); no setting shortens that without giving up order.
        retry_for: seconds to keep sending again a write Redis did not acknowledge (0,
            the default: never; the first failure is reported). Entries then carry a
            resend key, and each failed attempt goes to the bus's `on_error`.
    """

    def __init__(
        self,
        channel: Channel,
        *,
        linger: float | None = None,
        max_wait: float | None = None,
        retry_for: float = 0.0,
    ) -> None:
        self.channel = channel
        self.max_wait = WRITER_MAX_WAIT if max_wait is None else max_wait
        self.linger = min(WRITER_LINGER if linger is None else linger, self.max_wait)
        if self.linger < 0:
            raise UsageError("linger must not be negative")
        if not retry_for >= 0:
            raise UsageError("retry_for must be a number of seconds, 0 or more")
        self.retry_for = retry_for
        # A writer that resends keys its entries: this prefix, then a counter.
        self._key_prefix = f"{new_id()[:16]}-" if retry_for > 0 else None
        self._keys = 0
        # A write Redis did not acknowledge, to send again: its entries (encoded once, so
        # a copy is the same bytes), its items, and those of its batch that were rejected.
        self._held: list[list[bytes]] = []
        self._held_items: list[_Item] = []
        self._held_rejected: list[Event] = []
        self._outage_since: float | None = None
        self._attempts = 0
        self._pending: list[_Item] = []
        self._sent = 0  # items accepted
        self._done = 0  # items written, or handed back in a WriteFailed
        self._wake = anyio.Event()
        # Set by flush(): whoever waits for the writes wants them now, not after the linger.
        self._hurry = anyio.Event()
        self._progress = anyio.Event()
        self._error: WriteFailed | None = None
        self._reject_cause: Exception = CodecError("event rejected")
        self._writing = False
        self._stopped = False
        self._inflight: list[_Item] = []
        self._last_write = -1e9
        self._last_arrival = -1e9
        self._gap = 1.0  # seconds between events, averaged
        self._tasks = BackgroundTasks()
        self._scope: anyio.CancelScope | None = None
        self._state = "unopened"
        #: Entries written so far (each may hold many events).
        self.entries_written = 0
        #: Writes sent again because Redis did not acknowledge an earlier attempt.
        self.resends = 0

    async def __aenter__(self) -> CoalescingWriter:
        if self._state != "unopened":
            raise UsageError(f"unable to open the writer; it is {self._state} (make a new one)")
        await self._tasks.enter()
        self.start_in(self._tasks)
        return self

    def start_in(self, tasks: BackgroundTasks) -> None:
        """Open the writer with its task in `tasks` (owned by a longer-lived object), for
        callers whose open and close do not nest like `async with`. Close with `aclose()`."""
        if self._state != "unopened":
            raise UsageError(f"unable to open the writer; it is {self._state} (make a new one)")
        self._state = "open"
        self._scope = tasks.start(self._run, name=f"ait writer {self.channel.name}")

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.aclose()
        finally:
            await self._tasks.exit()  # not under any other scope: it must nest correctly

    def message(
        self,
        *,
        run_id: str,
        message_id: str,
        role: str,
        parent: str,
        extra_headers: Mapping[str, str] | None = None,
    ) -> MessageOutput:
        """A handle that queues codec events for one message (see `MessageOutput`)."""
        template = Output(
            run_id=run_id,
            message_id=message_id,
            role=role,
            parent=parent,
            extra_headers=dict(extra_headers or {}),
        )
        return MessageOutput(self, template)

    def send(self, event: Event) -> None:
        """Queue `event` for writing. Never waits.

        Raises:
            WriteFailed: an earlier write failed (raised once; the writer goes on). The
                event given to this call was not queued: send it again if you want it.
            UsageError: the writer is not open, or `event` is not an event.
        """
        check_event(event)  # here, not in the background where nobody would hear of it
        self.queue(event)

    def queue(self, item: _Item) -> None:
        if self._state != "open" or self._error is not None:
            self._refuse()
        self._pending.append(item)
        self._sent += 1
        # How fast events come: a moving average of the gaps between them.
        now = _monotonic()
        gap = now - self._last_arrival
        self._last_arrival = now
        self._gap += 0.2 * ((gap if gap < 1.0 else 1.0) - self._gap)
        if not self._writing:
            self._wake.set()

    @property
    def backlog(self) -> int:
        """Events sent and not yet written (nor handed back in a `WriteFailed`)."""
        return self._sent - self._done

    def next_key(self) -> str | None:
        """A fresh resend key from this writer's series (None: the writer does not resend),
        for an entry written beside it that may be sent again too."""
        if self._key_prefix is None:
            return None
        self._keys += 1
        return f"{self._key_prefix}{self._keys:x}"

    def _refuse(self) -> None:
        if self._state != "open":
            raise UsageError(f"unable to send; the writer is {self._state}")
        error, self._error = self._error, None
        assert error is not None
        raise error

    async def flush(self) -> None:
        """Wait until everything sent so far is written (at once: not after the linger).

        Raises:
            WriteFailed: a write failed; its events are in the error's `unsent`.
        """
        target = self._sent
        if self._done < target:
            self._hurry.set()
        while self._done < target:
            if self._stopped:
                # Cut mid-write, the batch in flight may or may not be on the stream.
                unsent = _as_events(self._inflight + self._pending)
                self._inflight, self._pending = [], []
                self._done = self._sent
                stopped = UsageError("the writer's task was stopped before writing")
                raise WriteFailed(stopped, unsent)
            progress = self._progress
            await progress.wait()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    async def aclose(self) -> None:
        """Flush, then stop the background task. Idempotent.

        Raises:
            WriteFailed: the last writes failed.
        """
        if self._state != "open":
            self._state = "closed"
            return
        try:
            # A writer riding out an outage gives up by itself after `retry_for`.
            with anyio.CancelScope(shield=True), anyio.move_on_after(10 + self.retry_for):
                await self.flush()
        finally:
            self._state = "closed"
            if self._scope is not None:
                self._scope.cancel()

    async def _run(self) -> None:
        try:
            await self._serve()
        finally:
            # Stopped (closed, or cancelled from outside): nobody waits on a dead writer.
            self._stopped = True
            self._progress.set()

    async def _serve(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            while self._pending or self._held_items:
                await self._write_next()
            if self._hurry.is_set():
                self._hurry = anyio.Event()

    async def _write_next(self) -> None:
        """One write: what Redis did not acknowledge last time, then what gathered since."""
        self._writing = True
        try:
            # When events come much faster than `linger` apart, writes wait their turn and
            # each entry carries more; at slower rates every event goes at once.
            if not self._held_items and self._gap < self.linger / 2 and not self._hurry.is_set():
                wait = self._last_write + self.linger - time.monotonic()
                if wait > 0:
                    with anyio.move_on_after(wait):
                        await self._hurry.wait()
            self._last_write = time.monotonic()
            batch, self._pending = self._pending, []
            rejected = self._held_rejected
            if self._held_items:
                self.resends += 1
            entries = self._held + self._encode(batch, rejected)
            items = self._held_items + batch
            self._inflight = items
            try:
                await self.channel.write_encoded(entries)
            except BusError as exc:
                if self._resend_later(exc):
                    self._held, self._held_items, self._held_rejected = entries, items, rejected
                    self.channel.bus.report(exc)
                    await anyio.sleep(self._pause())
                    return
                unsent = items + self._pending
                self._pending = []
                self._error = self._failure(exc, _as_events(unsent))
                done = len(unsent)
            else:
                self.entries_written += len(entries)
                if rejected:
                    self._error = WriteFailed(self._reject_cause, rejected)
                done = len(items)
            self._held, self._held_items, self._held_rejected = [], [], []
            self._outage_since, self._attempts = None, 0
            self._inflight = []
            self._done += done
            self._progress.set()
            self._progress = anyio.Event()
        finally:
            self._writing = False

    def _resend_later(self, exc: BusError) -> bool:
        """Whether a write that failed with `exc` is to be sent again: Redis away, and not
        for longer than `retry_for`."""
        if not self.retry_for or not isinstance(exc, BusConnectionError | BusTimeoutError):
            return False
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
        return now - self._outage_since < self.retry_for

    def _pause(self) -> float:
        """Seconds until the next attempt: doubling from 50 ms to 1 s, jittered, and never
        past the bound (the last attempt is made at it)."""
        assert self._outage_since is not None
        delay = min(_RESEND_FIRST * 2**self._attempts, _RESEND_MAX)
        self._attempts += 1
        left = self._outage_since + self.retry_for - time.monotonic()
        return max(0.0, min(delay * random.uniform(0.5, 1.0), left))

    def _failure(self, exc: BusError, unsent: list[Event]) -> WriteFailed:
        if self._outage_since is not None and isinstance(exc, BusConnectionError | BusTimeoutError):
            waited = time.monotonic() - self._outage_since
            return RedisUnavailable(exc, unsent, waited=waited, bound=self.retry_for)
        return WriteFailed(exc, unsent)

    def _encode(self, batch: list[_Item], rejected: list[Event]) -> list[list[bytes]]:
        """Merge runs of one message's outputs into entries, then encode each entry.

        An event that cannot be encoded on its own (too large, not msgpack-able) goes to
        `rejected`; the others are written.
        """
        entries: list[list[bytes]] = []
        group: list[Any] = []  # codec events of one message, in order
        owner: Output | MessageOutput | None = None

        def close() -> None:
            nonlocal owner
            if owner is not None:
                entries.extend(self._encode_payload(owner, group, rejected))
                owner = None
                group.clear()

        for item in batch:
            if type(item) is tuple:
                out, event = item
                if owner is not out or len(group) >= _MERGE_LIMIT:
                    close()
                    owner = out
                group.append(event)
            elif isinstance(item, Output):
                if not (isinstance(owner, Output) and _same_message(owner, item)) or (
                    len(group) >= _MERGE_LIMIT
                ):
                    close()
                    owner = item
                group.extend(item.payload)
            else:
                close()
                entries.extend(self._encode_one(item, rejected))  # pyright: ignore[reportArgumentType]
        close()
        return entries

    def _checked(self, fields: list[bytes]) -> list[bytes]:
        """An entry's fields with a resend key (if this writer resends and the event came
        without one of its own), size-checked."""
        if self._key_prefix is not None and fields[-2] != b"k":
            self._keys += 1
            fields.extend((b"k", f"{self._key_prefix}{self._keys:x}".encode()))
        size = entry_size(fields)
        if size > self.channel.bus.max_entry_bytes:
            raise EntryTooLarge(size, self.channel.bus.max_entry_bytes)
        return fields

    def _encode_one(self, event: Event, rejected: list[Event]) -> list[list[bytes]]:
        try:
            return [self._checked(encode_event(event))]
        except (EntryTooLarge, CodecError) as exc:
            self._reject_cause = exc
            rejected.append(event)
            return []

    def _encode_payload(
        self, owner: Output | MessageOutput, payload: list[Any], rejected: list[Event]
    ) -> list[list[bytes]]:
        try:
            if isinstance(owner, MessageOutput):
                # No Output built: its head is encoded once.
                return [self._checked(owner.fields(payload))]
            output = owner.model_copy(update={"payload": list(payload)})
            if owner.entry_key is not None and output.payload != owner.payload:
                # Merged or split, it is another entry: its key named the event sent.
                output = output.model_copy(update={"entry_key": None})
            return [self._checked(encode_event(output))]
        except (EntryTooLarge, CodecError) as exc:
            if len(payload) == 1:
                self._reject_cause = exc
                rejected.append(_output(owner, payload))
                return []
            half = len(payload) // 2
            return self._encode_payload(owner, payload[:half], rejected) + self._encode_payload(
                owner, payload[half:], rejected
            )


def _output(owner: Output | MessageOutput, payload: list[Any]) -> Output:
    if isinstance(owner, MessageOutput):
        return owner.output(list(payload))
    return owner.model_copy(update={"payload": list(payload)})


def _same_message(a: Output, b: Output) -> bool:
    return (
        a.message_id == b.message_id
        and a.run_id == b.run_id
        and a.role == b.role
        and a.parent == b.parent
        and a.extra_headers == b.extra_headers
    )


def _as_events(items: list[_Item]) -> list[Event]:
    """Items as events (a message handle's codec event becomes a one-event Output)."""
    return [item[0].output([item[1]]) if type(item) is tuple else item for item in items]  # pyright: ignore
