"""A worker pool's invocation queue: a stream read by the consumer group `workers`.

```python
await bus.pool("default").enqueue(Invocation(channel="chat-42", input_event_id=event_id))
```

Workers (`ait.AgentWorker`) read with XREADGROUP, renew the lease of what they hold with
XCLAIM (which resets its idle time), acknowledge with XACK once the run ended or suspended,
and reclaim entries idle past the lease with XAUTOCLAIM: the entries of a worker that died.
Entries that do not decode are handed over as `BadEntry` so the worker can report and
acknowledge them instead of reclaiming them forever. `trim()` deletes the entries every
group is done with (XTRIM MINID), so that acknowledged invocations do not pile up.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, cast

import anyio

from ..codec import decode_invocation, encode_invocation
from ..errors import BusError, CodecError
from ..events import BadEntry, Invocation
from ..ids import check_name
from ._redis import RawConnection, translate_errors

if TYPE_CHECKING:
    from .bus import Bus

__all__ = ["GROUP", "Pool", "QueuedInvocation"]

GROUP = "workers"

QueuedInvocation = tuple[str, Invocation | BadEntry]

# Renew only what the consumer still holds: XCLAIM with min-idle 0 alone would take an
# entry back from the worker that reclaimed it.
_RENEW = """
local held = {}
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if pending[1] and pending[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    table.insert(held, ARGV[i])
  end
end
return held
"""
"""A queue entry: its id and the invocation (or why it could not be decoded)."""


class Pool:
    """The invocation queue of pool `name`. Get one with `bus.pool(name)`."""

    def __init__(self, bus: Bus, name: str) -> None:
        self.name = check_name("pool", name)
        self.bus = bus
        self.key = f"{bus.prefix}pool:{{{name}}}:invocations"
        self._group_ready = False
        self._reader: RawConnection | None = None

    def __repr__(self) -> str:
        return f"Pool({self.name!r})"

    async def _command(self, action: str, *args: Any) -> Any:
        with translate_errors(action):
            return await self.bus.handle.client.execute_command(*args)

    async def enqueue(self, invocation: Invocation) -> str:
        """Queue `invocation` for a worker of this pool; return its queue entry id."""
        stamped = invocation.model_copy(update={"enqueued_at": int(time.time() * 1000)})
        raw = await self._command(
            f"enqueue on pool {self.name!r}", "XADD", self.key, "*", *encode_invocation(stamped)
        )
        return raw.decode()

    async def ensure_group(self) -> None:
        """Create the consumer group (from the queue's start, so nothing queued is skipped)."""
        if not self._group_ready:
            await self._create_group()

    async def _create_group(self) -> bool:
        """XGROUP CREATE; True when this call created the group, False when it existed."""
        try:
            await self._command(
                "create the worker group", "XGROUP", "CREATE", self.key, GROUP, "0", "MKSTREAM"
            )
        except BusError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            created = False
        else:
            created = True
        self._group_ready = True
        return created

    async def _recreate_group(self, error: BusError) -> None:
        """After NOGROUP: the group is gone (Redis restarted without its data, or the key was
        deleted). Create it again, then raise a `BusError` that says so, for the caller to
        report once; return quietly when another call had created it already."""
        self._group_ready = False
        if await self._create_group():
            raise BusError(
                f"the worker group of pool {self.name!r} was gone (did Redis restart without "
                "its data?); created it again"
            ) from error

    async def read(self, consumer: str, count: int, block_ms: int) -> list[QueuedInvocation]:
        """Up to `count` new invocations for `consumer`, waiting up to `block_ms` for one.

        The blocking read uses a connection of its own (not one of the command pool's);
        `aclose()` closes it.
        """
        await self.ensure_group()
        deadline = anyio.current_time() + block_ms / 1000
        while True:
            try:
                entries = await self._read_once(consumer, count, block_ms)
            except BusError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self._recreate_group(exc)
                continue
            remaining = deadline - anyio.current_time()
            if entries or block_ms <= 0 or remaining <= 0.02:
                return entries
            # An empty answer long before the block ran out: the server does not block
            # XREADGROUP (fakeredis, for the in-memory bus). Poll, rather than spin.
            await anyio.sleep(min(0.01, remaining))
            block_ms = max(1, int(remaining * 1000))

    async def _read_once(self, consumer: str, count: int, block_ms: int) -> list[QueuedInvocation]:
        conn = self._reader
        if conn is None:
            conn = await self.bus.handle.reader_connection(self.key)
        try:
            with translate_errors("read the invocation queue"):
                if self._reader is None:
                    await conn.connect()
                    self._reader = conn
                await conn.send_command(
                    "XREADGROUP", "GROUP", GROUP, consumer, "COUNT", count, "BLOCK", block_ms,
                    "STREAMS", self.key, ">",
                )  # fmt: skip
                reply = await conn.read_response()
        except BaseException:
            # A read cut short (an error, a cancel) leaves its reply on the socket: drop it.
            self._reader = None
            with anyio.CancelScope(shield=True):
                await _disconnect(conn)
            raise
        if not reply:
            return []
        pairs: Any = reply.items() if isinstance(reply, dict) else reply  # pyright: ignore
        entries: list[QueuedInvocation] = []
        for _key, raw_entries in pairs:
            entries.extend(_decode(raw_entries))
        return entries

    async def aclose(self) -> None:
        """Close the queue reader's own connection, if open."""
        conn, self._reader = self._reader, None
        if conn is not None:
            await _disconnect(conn)

    async def ack(self, *entry_ids: str) -> None:
        """Acknowledge entries: done with, never handed out again."""
        if entry_ids:
            await self._command("acknowledge invocations", "XACK", self.key, GROUP, *entry_ids)

    async def renew(self, consumer: str, *entry_ids: str) -> list[str]:
        """Reset the idle time of entries `consumer` still holds (its lease); return them.

        Atomic (a Lua script): an entry another worker took over in the meantime stays
        with that worker, so a worker paused past its lease learns it lost the entry
        instead of taking it back.
        """
        if not entry_ids:
            return []
        with translate_errors("renew invocation leases"):
            reply = await self.bus.handle.client.eval(
                _RENEW, 1, self.key, GROUP, consumer, *entry_ids
            )
        held: list[Any] = list(reply or [])
        return [raw.decode() if isinstance(raw, bytes) else str(raw) for raw in held]

    async def claim_idle(
        self, consumer: str, min_idle_ms: int, count: int = 100
    ) -> list[QueuedInvocation]:
        """Take over entries idle for at least `min_idle_ms` (their worker is gone)."""
        await self.ensure_group()
        claimed: list[QueuedInvocation] = []
        cursor = "0-0"
        while True:
            try:
                reply = await self._command(
                    "reclaim invocations",
                    "XAUTOCLAIM", self.key, GROUP, consumer, min_idle_ms, cursor, "COUNT", count,
                )  # fmt: skip
            except BusError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self._recreate_group(exc)
                continue
            cursor = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
            claimed.extend(_decode(reply[1]))
            if cursor == "0-0" or len(claimed) >= count:
                return claimed

    async def pending_count(self) -> int:
        """Entries handed out and not yet acknowledged."""
        await self.ensure_group()
        reply = await self._command("read the pending invocations", "XPENDING", self.key, GROUP)
        if isinstance(reply, dict):  # redis-py parses the summary into a map
            return int(cast(dict[str, Any], reply).get("pending") or 0)
        return int(reply[0]) if reply else 0

    async def length(self) -> int:
        return int(await self._command("read the invocation queue", "XLEN", self.key))

    async def trim(self) -> int:
        """Delete the entries every consumer group is done with; return how many.

        Kept: every entry not yet delivered to a group (after its last-delivered-id), and
        every entry from the oldest one still pending (delivered, not acknowledged) on. A
        queue without a group (or without a stream) is left alone.

        ```python
        removed = await bus.pool("default").trim()
        ```
        """
        bound = await self._trim_bound()
        if bound is None:
            return 0
        # Exact (`=`), not `~`: approximate trimming only drops whole stream nodes (up to 100
        # entries), so it would keep up to a node of finished entries and make the count
        # vague; and without LIMIT it stops after 100 nodes' worth (10,000 entries) per call,
        # which a busy pool trimmed once a minute can outgrow. Exact costs little more: the
        # whole nodes are freed the same way, the entries of the one boundary node are only
        # flagged deleted.
        removed = await self._command(
            f"trim the queue of pool {self.name!r}",
            "XTRIM", self.key, "MINID", "=", f"{bound[0]}-{bound[1]}",
        )  # fmt: skip
        return int(removed)

    async def _trim_bound(self) -> tuple[int, int] | None:
        """The smallest id any group may still need (entries below it are done), or None.

        XINFO GROUPS is read before XPENDING, and that order makes the pair safe without a
        transaction: an entry at or below a group's last-delivered-id was delivered before
        XINFO answered, and an entry that was not pending then (acknowledged) never becomes
        pending again (only XCLAIM's FORCE, which ait never sends, could do that); entries
        delivered in between are above the last-delivered-id read, so kept anyway.
        """
        try:
            groups: Any = await self._command("read the worker groups", "XINFO GROUPS", self.key)
        except BusError as exc:
            if "no such key" in str(exc).lower():  # a pool nobody used yet
                return None
            raise
        bound: tuple[int, int] | None = None
        for raw_group in cast(list[Any], groups or []):
            group = _pairs(raw_group)
            last = _parse_id(group["last-delivered-id"])
            # Everything after the last delivered entry waits for a worker.
            keep_from = (last[0], last[1] + 1) if last[1] < _MAX_SEQ else (last[0] + 1, 0)
            if int(group.get("pending") or 0):
                summary = await self._command(
                    "read the pending invocations", "XPENDING", self.key, group["name"]
                )
                oldest = _pending_min(summary)
                if oldest is not None:
                    keep_from = min(keep_from, _parse_id(oldest))
            bound = keep_from if bound is None else min(bound, keep_from)
        return bound


async def _disconnect(conn: RawConnection) -> None:
    try:
        await conn.disconnect(nowait=True)
    except Exception:  # closing a broken socket may fail; it is gone either way
        pass


_MAX_SEQ = 2**64 - 1


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(raw: Any) -> dict[str, Any]:
    """An XINFO record as a dict, whether redis-py parsed it (a map) or not (a flat list)."""
    if isinstance(raw, dict):
        items: list[tuple[Any, Any]] = list(cast(dict[Any, Any], raw).items())
    else:
        flat: list[Any] = list(raw)
        items = list(zip(flat[::2], flat[1::2], strict=True))
    return {_text(key): value for key, value in items}


def _pending_min(summary: Any) -> Any:
    """The smallest pending id of an XPENDING summary (a map when parsed), or None."""
    if isinstance(summary, dict):
        return cast(dict[str, Any], summary).get("min")
    return summary[1] if summary else None


def _parse_id(raw: Any) -> tuple[int, int]:
    """A stream id as a (milliseconds, sequence) pair, which compares as Redis orders ids."""
    ms, _, seq = _text(raw).partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        raise BusError(f"unable to trim the invocation queue: bad stream id {raw!r}") from None


def _decode(raw_entries: Any) -> list[QueuedInvocation]:
    entries: list[QueuedInvocation] = []
    items: list[Any] = list(raw_entries or [])
    for raw_id, fields in items:
        entry_id: str = raw_id.decode()
        if fields is None:  # deleted while pending
            entries.append((entry_id, BadEntry(entry_id=entry_id, reason="entry was deleted")))
            continue
        try:
            entries.append((entry_id, decode_invocation(entry_id, fields)))
        except CodecError as exc:
            entries.append((entry_id, BadEntry(entry_id=entry_id, reason=exc.reason)))
    return entries
