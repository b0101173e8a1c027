"""The shared reader: one blocking XREAD per group of channels, fanned out in memory.

One XREAD per subscriber collapses at a thousand subscribers; one XREAD over a thousand keys
costs many times more per call than over a few dozen. So a process keeps one `ReaderHub`
per bus, which sorts followed keys into groups of at most `keys_per_connection` (in Redis
Cluster: keys of one hash slot), and runs one task and one dedicated connection per group.

Each reply is decoded once and handed to every local subscriber of the key as one batch
`(prev, entries)`: `prev` is the cursor the hub read after, so a subscriber that is behind
knows exactly which range it must fetch itself. A subscriber whose buffer is full is
detached, never waited for; it catches up from its own cursor (see `subscription.py`).

When a group's connection drops, the group reconnects with backoff and checks, for every key
it follows, that the entry it last read still exists. If not, the stream was reset (Redis
restarted without persistence) or trimmed past it: its subscribers get a `Lost` marker and
the group follows the stream again from its beginning.

When Redis refuses a group's read with an error, one key may be the cause and the whole
XREAD fails with it (a key that holds another type: WRONGTYPE; a key this user may not
read: NOPERM). The group then reads each key alone, without blocking, and drops those Redis
refuses for what they are: their subscribers are told (`Subscriber.failed`), and the other
keys are read again at once. Errors of the server's state (BUSY, LOADING) drop no key: the
group backs off and reads again, as when Redis is away.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from ..errors import BusConnectionError, BusError, BusTimeoutError
from ..ids import MIN_ENTRY_ID, entry_id_key
from ._redis import RawConnection, RedisHandle, open_reader, translate_errors
from ._tasks import BackgroundTasks
from .channel import Entry, decode_reply

__all__ = ["Batch", "Lost", "ReaderHub", "Subscriber"]

log = logging.getLogger("ait.bus")


@dataclass(frozen=True, slots=True)
class Batch:
    """Entries of one key from one XREAD reply, and the cursor that read started after."""

    prev: str
    entries: list[Entry]


@dataclass(frozen=True, slots=True)
class Lost:
    """The stream no longer holds the entry the hub had reached."""

    last_id: str
    reason: str


def _bulk(value: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


class Subscriber(Protocol):
    def deliver(self, item: Batch | Lost) -> bool:
        """Hand over an item without waiting; False when the subscriber's buffer is full."""
        ...

    def detached(self) -> None:
        """Called once when the hub drops the subscriber because its buffer was full."""
        ...

    def failed(self, reason: str) -> None:
        """Called once when the hub drops the subscriber's key: Redis refused to read it."""
        ...


class ReaderHub:
    """All shared readers of one bus."""

    def __init__(
        self,
        handle: RedisHandle,
        tasks: BackgroundTasks,
        *,
        keys_per_connection: int,
        block_ms: int,
        count: int,
        on_error: Callable[[BaseException], None],
        linger: float = 0.0,
    ) -> None:
        self.handle = handle
        self.tasks = tasks
        self.keys_per_connection = keys_per_connection
        self.block_ms = block_ms
        #: Seconds a group left without keys keeps its connection for the next ones.
        self.linger = linger
        self.count = count
        self.on_error = on_error
        self._groups: list[_Group] = []
        self._group_of: dict[str, _Group] = {}
        #: The constant start of every XREAD this hub sends, RESP-encoded.
        self.xread_head = b"".join(
            _bulk(part)
            for part in (b"XREAD", b"COUNT", b"%d" % count, b"BLOCK", b"%d" % block_ms, b"STREAMS")
        )

    @property
    def connections(self) -> int:
        """Dedicated reader connections open or being opened now, idle ones included."""
        return len(self._groups)

    @property
    def busy_connections(self) -> int:
        """Reader connections following at least one channel now."""
        return sum(1 for group in self._groups if group.cursors)

    def attach(self, key: str, subscriber: Subscriber, cursor: str) -> str:
        """Start delivering `key` to `subscriber`; return the hub's cursor for the key.

        A key new to the hub is followed from `cursor`. A key already followed keeps its
        cursor; the subscriber fetches anything between its own cursor and the hub's.
        """
        group = self._group_of.get(key)
        if group is not None:
            group.subscribers[key].add(subscriber)
            return group.cursors[key]
        group = self._group_for(key)
        group.cursors[key] = cursor
        group.subscribers[key] = {subscriber}
        self._group_of[key] = group
        group.keys_changed()
        return cursor

    def detach(self, key: str, subscriber: Subscriber) -> None:
        group = self._group_of.get(key)
        if group is None:
            return
        subs = group.subscribers.get(key)
        if subs is not None:
            subs.discard(subscriber)
            if not subs:
                del group.subscribers[key]
                del group.cursors[key]
                group.forget(key)
                del self._group_of[key]
        if not group.cursors:
            # On one server, the group lingers: a key attached soon reuses its connection
            # (a worker opens a session per invocation); it leaves on its own once
            # `linger` passes, and its XREAD of keys nobody follows is woken, not waited
            # out. In a cluster, groups are per hash slot: the next channel would rarely
            # land in this one's, so it closes at once.
            if self.linger <= 0 or self.handle.cluster:
                group.stop()
                self._groups.remove(group)
            else:
                group.keys_changed()

    def _group_for(self, key: str) -> _Group:
        slot = self.handle.slot(key)
        for group in self._groups:
            if group.slot == slot and len(group.cursors) < self.keys_per_connection:
                return group
        group = _Group(self, slot)
        self._groups.append(group)
        self.tasks.start(group.run, name=f"ait reader group slot={slot}")
        return group


class _Group:
    """One dedicated connection blocked in one XREAD over up to N keys."""

    def __init__(self, hub: ReaderHub, slot: int) -> None:
        self.hub = hub
        self.slot = slot
        self.cursors: dict[str, str] = {}
        self.subscribers: dict[str, set[Subscriber]] = {}
        self._scope = anyio.CancelScope()
        self._conn: RawConnection | None = None
        self._client_id: int | None = None
        self._blocking = False
        self._stale = False  # the key set changed since the XREAD in flight was sent
        self._waking = False
        self._key_bulks: dict[str, bytes] = {}
        self._run_id: str | None = None  # the server's run_id: it changes on every restart
        self._previous_run_id: str | None = None
        self._keys_added = anyio.Event()  # wakes a lingering group
        self._read_key: str | None = None  # a key of the last XREAD sent

    def stop(self) -> None:
        self._scope.cancel()

    def keys_changed(self) -> None:
        """Make the XREAD in flight, if any, return so the next one covers the new keys."""
        self._stale = True
        self._keys_added.set()
        self._wake_if_stale()

    def _wake_if_stale(self) -> None:
        if self._blocking and self._stale and not self._waking:
            self._waking = True
            self.hub.tasks.start(self._wake, name="ait reader wake")

    async def _wake(self) -> None:
        try:
            # CLIENT UNBLOCK travels on another connection and may overtake our XREAD:
            # repeat until it hits the blocked call or the call has returned by itself.
            for attempt in range(200):
                if not (self._blocking and self._stale) or self._client_id is None:
                    return
                # A key of the XREAD in flight picks the node (Cluster): the group may
                # follow none any more (it lingers), or new ones.
                key = self._read_key
                if key is None:
                    return
                if await self.hub.handle.unblock(self._client_id, key):
                    return
                await anyio.sleep(0.001 * min(attempt + 1, 20))
        except Exception as exc:  # never raise from the background; the block times out
            log.debug("waking the shared reader failed: %r", exc)
        finally:
            self._waking = False

    async def run(self) -> None:
        delay = 0.0
        with self._scope:
            try:
                while self.cursors or await self._linger():
                    try:
                        if self._conn is None:
                            await self._connect()
                            # Also on the first connect: subscribers checked their cursors
                            # on the command pool, and Redis may have restarted since.
                            await self._check_continuity()
                            delay = 0.0
                        reply = await self._xread()
                        if reply:
                            self._dispatch(reply)
                    except Exception as exc:
                        # Never let the shared reader die: it is what every subscriber of
                        # the process waits on. Report, back off, reconnect, go on.
                        await self._drop_connection()
                        if type(exc) is BusError and await self._drop_refused_keys():
                            delay = 0.0  # the keys at fault are gone: read the others now
                            continue
                        if not isinstance(exc, BusConnectionError | BusTimeoutError):
                            log.exception("ait shared reader failed; restarting it")
                        self.hub.on_error(exc)
                        delay = min(max(delay * 2, 0.05), 2.0)
                        await anyio.sleep(delay * (0.5 + random.random() / 2))
            finally:
                if not self.cursors and self in self.hub._groups:  # pyright: ignore[reportPrivateUsage]
                    self.hub._groups.remove(self)  # pyright: ignore[reportPrivateUsage]
                with anyio.CancelScope(shield=True):
                    await self._drop_connection()

    async def _linger(self) -> bool:
        """Wait up to the hub's `linger` for keys, the connection kept; True if any came."""
        self._keys_added = anyio.Event()
        with anyio.move_on_after(self.hub.linger):
            while not self.cursors:
                await self._keys_added.wait()
                self._keys_added = anyio.Event()
        return bool(self.cursors)

    async def _connect(self) -> None:
        key = next(iter(self.cursors))
        # Ours from here: if the handshake fails (Redis BUSY, an ACL), `run` drops it.
        self._conn = conn = await self.hub.handle.reader_connection(key)
        self._client_id, run_id = await open_reader(conn)
        self._previous_run_id, self._run_id = self._run_id, run_id

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        self._blocking = False
        self._client_id = None
        if conn is not None:
            try:
                await conn.disconnect(nowait=True)
            except Exception as exc:  # closing a broken socket may fail in many ways
                log.debug("closing a reader connection failed: %r", exc)

    async def _xread(self) -> Any:
        assert self._conn is not None
        cursors = self.cursors
        if not cursors:  # the last key left while connecting: no XREAD of no keys
            return None
        self._stale = False
        self._read_key = next(iter(cursors))
        # Packed by hand: redis-py's generic packing of 64 keys and ids costs ~100 us a call;
        # the keys' encodings are cached and only the cursors are encoded each time.
        packed = b"".join(
            (
                b"*%d\r\n" % (6 + 2 * len(cursors)),
                self.hub.xread_head,
                *(self._key_bulk(key) for key in cursors),
                *(_bulk(cursor.encode()) for cursor in cursors.values()),
            )
        )
        with translate_errors("read channels"):
            await self._conn.send_packed_command(packed, check_health=False)
            self._blocking = True
            self._wake_if_stale()  # the keys changed while it was being sent
            try:
                return await self._conn.read_response()
            finally:
                self._blocking = False

    def forget(self, key: str) -> None:
        self._key_bulks.pop(key, None)

    def _key_bulk(self, key: str) -> bytes:
        bulk = self._key_bulks.get(key)
        if bulk is None:
            bulk = self._key_bulks[key] = _bulk(key.encode())
        return bulk

    def _dispatch(self, reply: Any) -> None:
        # RESP3 answers a map of key to entries, RESP2 a list of [key, entries] pairs.
        pairs: Any = reply.items() if isinstance(reply, dict) else reply  # pyright: ignore
        for raw_key, raw_entries in pairs:
            key: str = raw_key.decode()
            prev = self.cursors.get(key)
            if prev is None or not raw_entries:
                continue  # unsubscribed while the read was in flight
            entries = decode_reply(raw_entries)
            self.cursors[key] = entries[-1][0]
            batch = Batch(prev, entries)
            for subscriber in list(self.subscribers.get(key, ())):
                if not subscriber.deliver(batch):
                    self._drop_lagging(key, subscriber)

    def _drop_lagging(self, key: str, subscriber: Subscriber) -> None:
        self.hub.detach(key, subscriber)
        subscriber.detached()

    async def _drop_refused_keys(self) -> bool:
        """Redis answered a read of the group with an error: read each key alone to find
        those it refuses for what they are (`RedisHandle.refused_keys`), and drop them,
        telling their subscribers. False when no key is at fault (Redis is busy, away):
        back off and read again, as for any failure."""
        cursors = list(self.cursors.items())
        if not cursors:
            return False
        try:
            refused = await self.hub.handle.refused_keys(cursors)
        except BusError as exc:
            log.debug("reading each key alone failed: %r", exc)
            return False
        for key, reason in refused.items():
            subscribers = self.subscribers.get(key)
            if subscribers is None:
                continue  # it left meanwhile
            self.hub.on_error(
                BusError(f"unable to follow {key}: {reason}; the shared reader left it")
            )
            for subscriber in list(subscribers):
                self.hub.detach(key, subscriber)
                subscriber.failed(reason)
        return bool(refused)

    async def _check_continuity(self) -> None:
        """After a reconnect: does every key still hold the entry we last read?"""
        client = self.hub.handle.client
        for key, cursor in list(self.cursors.items()):
            if cursor == MIN_ENTRY_ID:
                continue
            with translate_errors("check a channel's continuity"):
                found = await client.execute_command("XRANGE", key, cursor, cursor)
                if found:
                    continue
                newest = await client.execute_command("XREVRANGE", key, "+", "-", "COUNT", 1)
            if key not in self.cursors:
                continue
            restarted = self._previous_run_id is not None and self._previous_run_id != self._run_id
            if (
                restarted
                or not newest
                or entry_id_key(newest[0][0].decode()) < entry_id_key(cursor)
            ):
                reason = "the stream was reset: Redis restarted and lost it (no persistence?)"
            else:
                reason = "entries up to the last one read were trimmed or deleted"
            self.cursors[key] = MIN_ENTRY_ID
            marker = Lost(cursor, reason)
            for subscriber in list(self.subscribers.get(key, ())):
                if not subscriber.deliver(marker):
                    self._drop_lagging(key, subscriber)
