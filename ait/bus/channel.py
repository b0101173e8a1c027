"""A channel: one conversation, one Redis stream, every event in one total order.

```python
channel = bus.channel("chat-42")
entry_id = await channel.publish(event)
for entry_id, event in await channel.read(after="0-0", count=100): ...
older = await channel.history(before=entry_id, limit=50)     # oldest first
async with channel.subscribe(after=entry_id) as sub:
    async for entry_id, event in sub: ...
async with channel.writer() as out:                          # coalescing, for deltas
    out.send(delta_event)
```
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..codec import decode_or_bad, encode_event, entry_size
from ..errors import EntryTooLarge, UsageError
from ..events import BadEntry, Event
from ..ids import MAX_ENTRY_ID, MIN_ENTRY_ID, check_name, entry_id_problem
from ._redis import translate_errors

if TYPE_CHECKING:
    from .bus import Bus
    from .subscription import Subscription
    from .writer import CoalescingWriter

__all__ = ["Channel", "Entry", "Retention"]

Entry = tuple[str, Event | BadEntry]
"""One entry as readers return it: the entry id and its event (or a `BadEntry`)."""


@dataclass(frozen=True, slots=True)
class Retention:
    """How much of a channel Redis keeps; trimming is approximate (`~`) and cheap.

    Args:
        max_entries: keep about this many newest entries (`XADD ... MAXLEN ~ n`).
        max_age: keep entries younger than about this many seconds (`XADD ... MINID ~ id`).

    Readers whose cursor falls behind trimmed entries are told so (`ContinuityLost`).
    """

    max_entries: int | None = None
    max_age: float | None = None

    def __post_init__(self) -> None:
        if (self.max_entries is None) == (self.max_age is None):
            raise UsageError("Retention takes exactly one of max_entries or max_age")
        if self.max_entries is not None and self.max_entries < 1:
            raise UsageError("Retention.max_entries must be at least 1")
        if self.max_age is not None and self.max_age <= 0:
            raise UsageError("Retention.max_age must be positive")

    def xadd_args(self) -> list[Any]:
        if self.max_entries is not None:
            return ["MAXLEN", "~", self.max_entries]
        assert self.max_age is not None
        return ["MINID", "~", f"{int((time.time() - self.max_age) * 1000)}-0"]


def decode_reply(reply: Sequence[Any] | None) -> list[Entry]:
    """Entries of a raw XRANGE/XREAD stream reply (`[[id, [field, value, ...]], ...]`)."""
    entries: list[Entry] = []
    if not reply:
        return entries
    append = entries.append
    for raw_id, fields in reply:
        entry_id = raw_id.decode()
        if fields is None:
            append((entry_id, BadEntry(entry_id=entry_id, reason="entry has no fields")))
        else:
            append((entry_id, decode_or_bad(entry_id, fields)))
    return entries


class Channel:
    """One conversation's stream. Get one with `bus.channel(name)`; it is cheap to create."""

    def __init__(self, bus: Bus, name: str, *, retention: Retention | None = None) -> None:
        self.name = check_name("channel", name)
        self.bus = bus
        #: The Redis key of the stream; every key of a channel shares its hash tag.
        self.key = f"{bus.prefix}{{{name}}}:events"
        self.retention = retention if retention is not None else bus.retention

    def __repr__(self) -> str:
        return f"Channel({self.name!r})"

    # -- writing --------------------------------------------------------------------------

    def encode(self, event: Event) -> list[bytes]:
        """The entry fields of `event`, checked against the size limit before any write."""
        fields = encode_event(event)
        size = entry_size(fields)
        if size > self.bus.max_entry_bytes:
            raise EntryTooLarge(size, self.bus.max_entry_bytes)
        return fields

    def xadd_command(self, fields: list[bytes]) -> list[Any]:
        trim = self.retention.xadd_args() if self.retention is not None else []
        return ["XADD", self.key, *trim, "*", *fields]

    async def publish(self, event: Event) -> str:
        """Append `event` to the channel and return its entry id.

        Raises:
            EntryTooLarge: the encoded entry is over the bus's limit; nothing was written.
            CodecError: the payload cannot be encoded.
            BusConnectionError, BusTimeoutError: Redis is unreachable or slow.
        """
        command = self.xadd_command(self.encode(event))
        client = self.bus.handle.client
        with translate_errors(f"publish on channel {self.name!r}"):
            raw = await client.execute_command(*command)
        return raw.decode()

    async def publish_many(
        self, events: Sequence[Event], *, with_commands: Sequence[Sequence[Any]] = ()
    ) -> list[str]:
        """Append several events in one round trip, in order, all or none; return their ids.

        (On Redis Cluster: in order and in one round trip, but not all-or-none.)

        Args:
            with_commands: more Redis commands to run in the same transaction, on keys of
                this channel only (see `key_for`), after the events.
        """
        encoded = [self.encode(event) for event in events]
        return await self.write_encoded(encoded, with_commands=with_commands)

    async def write_encoded(
        self, entries: Sequence[list[bytes]], *, with_commands: Sequence[Sequence[Any]] = ()
    ) -> list[str]:
        """Append already encoded entries atomically (MULTI/EXEC) in one round trip."""
        if not entries and not with_commands:
            return []
        client = self.bus.handle.client
        with translate_errors(f"publish on channel {self.name!r}"):
            if len(entries) == 1 and not with_commands:
                return [(await client.execute_command(*self.xadd_command(entries[0]))).decode()]
            # MULTI/EXEC on one Redis. redis-py's Cluster transactions block the event loop
            # (a thread joined per command), so on Cluster: one ordered pipeline, not atomic.
            pipe = client.pipeline(transaction=not self.bus.handle.cluster)
            for fields in entries:
                pipe.execute_command(*self.xadd_command(fields))
            for command in with_commands:
                pipe.execute_command(*command)
            replies = await pipe.execute()
        return [raw.decode() for raw in replies[: len(entries)]]

    def key_for(self, suffix: str) -> str:
        """Another key of this channel, with the same hash tag: `<prefix>{<channel>}:<suffix>`."""
        return f"{self.bus.prefix}{{{self.name}}}:{suffix}"

    def writer(
        self,
        *,
        linger: float | None = None,
        max_wait: float | None = None,
        retry_for: float = 0.0,
    ) -> CoalescingWriter:
        """A coalescing writer for high-rate deltas (see `CoalescingWriter`); with
        `retry_for`, one that rides out outages of Redis up to that many seconds."""
        from .writer import CoalescingWriter

        return CoalescingWriter(self, linger=linger, max_wait=max_wait, retry_for=retry_for)

    # -- reading --------------------------------------------------------------------------

    async def read(self, after: str = MIN_ENTRY_ID, count: int = 100) -> list[Entry]:
        """Up to `count` entries after entry id `after` (exclusive), oldest first."""
        _check_id("after", after)
        _check_count(count)
        return await self.range(f"({after}", "+", count)

    async def history(
        self, before: str | None = None, limit: int = 100, *, inclusive: bool = False
    ) -> list[Entry]:
        """Up to `limit` entries just before `before` (None = the newest), oldest first.

        Reading pages backward: pass the oldest id of one page as `before` of the next.
        Fewer than `limit` entries means the oldest entry has been reached.

        Args:
            inclusive: include the entry `before` itself.
        """
        if before is not None:
            _check_id("before", before)
        _check_count(limit)
        end = "+" if before is None else (before if inclusive else f"({before}")
        if _empty_interval("-", end):
            return []
        with translate_errors(f"read the history of channel {self.name!r}"):
            reply = await self.bus.handle.client.execute_command(
                "XREVRANGE", self.key, end, "-", "COUNT", limit
            )
        entries = decode_reply(reply)
        entries.reverse()
        return entries

    async def range(self, start: str, end: str, count: int) -> list[Entry]:
        """Raw XRANGE: `start`/`end` as Redis takes them (`-`, `+`, `(id` exclusive)."""
        return (await self.scan(start, end, count, skip=()))[0]

    async def scan(
        self, start: str, end: str, count: int, *, skip: Collection[str], reverse: bool = False
    ) -> tuple[list[Entry], str | None]:
        """`range`, leaving out the entries of the event types in `skip` without decoding
        them (a reader that needs only inputs and cancels need not unpack every output).
        With `reverse`, reads newest first, from `end` down to `start` (`XREVRANGE`).

        Returns the entries kept, in the order read, and the id of the last entry read,
        kept or not (None when there was none): the cursor of the next page. Entries in a
        layout other than ait's own, and those that do not decode, are kept (as `BadEntry`
        when they do not decode).
        """
        _check_id("start", start, bound=True)
        _check_id("end", end, bound=True)
        _check_count(count)
        if _empty_interval(start, end):
            return [], None
        skipped = frozenset(kind.encode() for kind in skip)
        command = ("XREVRANGE", end, start) if reverse else ("XRANGE", start, end)
        with translate_errors(f"read channel {self.name!r}"):
            reply = await self.bus.handle.client.execute_command(
                command[0], self.key, *command[1:], "COUNT", count
            )
        if not reply:
            return [], None
        if not skipped:
            return decode_reply(reply), reply[-1][0].decode()
        kept = [
            item
            for item in reply
            if not (
                type(fields := item[1]) is list
                and len(fields) >= 4  # pyright: ignore[reportUnknownArgumentType]
                and fields[2] == b"t"
                and fields[3] in skipped
            )
        ]
        return decode_reply(kept), reply[-1][0].decode()

    async def last_id(self) -> str | None:
        """The id of the newest entry, or None when the channel is empty."""
        with translate_errors(f"read channel {self.name!r}"):
            reply = await self.bus.handle.client.execute_command(
                "XREVRANGE", self.key, "+", "-", "COUNT", 1
            )
        return reply[0][0].decode() if reply else None

    async def length(self) -> int:
        """How many entries the stream holds now (after any trimming)."""
        with translate_errors(f"read channel {self.name!r}"):
            return int(await self.bus.handle.client.execute_command("XLEN", self.key))

    def subscribe(
        self, after: str = "$", *, strict: bool = True, buffer: int | None = None
    ) -> Subscription:
        """Follow the channel live from after entry id `after` (`"$"`: from now on).

        Use it as `async with channel.subscribe(...) as sub: async for entry_id, event in sub`;
        entering is the "subscribed and ready" point. See `Subscription` for the guarantees.

        Args:
            after: `$`, `0-0` (everything), or the id of an entry you read.
            strict: `after` names an entry you read; if it was trimmed away, the first read
                raises `ContinuityLost`. Pass False to start from a position in time
                (`f"{ms}-0"`) that need not be an entry.
            buffer: entries this subscription may hold unread before it is detached as
                lagged (`SubscriberLagged`); the bus's `subscriber_buffer` by default.
        """
        if after != "$":
            _check_id("after", after)
        if buffer is not None:
            check_buffer("buffer", buffer)
        from .subscription import Subscription

        return Subscription(self, after, strict=strict, buffer=buffer)


def _check_id(name: str, value: str, *, bound: bool = False) -> None:
    problem = entry_id_problem(value, bound=bound)
    if problem is not None:
        raise UsageError(f"{name}={value!r} {problem}")


def _empty_interval(start: str, end: str) -> bool:
    """Whether an exclusive bound lies past either end of the ids: nothing is after the
    largest id, nothing before 0-0, and Redis refuses such a bound rather than say so."""
    return start == f"({MAX_ENTRY_ID}" or end == f"({MIN_ENTRY_ID}"


def check_buffer(name: str, size: int) -> int:
    """`size` if it is a valid subscriber buffer (entries, at least 1), else UsageError."""
    if not isinstance(size, int) or size < 1:  # pyright: ignore[reportUnnecessaryIsInstance]
        raise UsageError(
            f"{name} must be a positive int (entries a subscriber may hold unread before "
            f"it is detached as lagged; subscriber_buffer on the bus), not {size!r}"
        )
    return size


def _check_count(count: int) -> None:
    if not isinstance(count, int) or count < 1:  # pyright: ignore[reportUnnecessaryIsInstance]
        raise UsageError(f"count must be a positive int, not {count!r}")
