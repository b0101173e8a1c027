"""The edge between `ait` and redis-py: clients, dedicated reader connections, errors.

Everything redis-py raises is translated here (`translate_errors`), so no `redis.*`
exception crosses the bus's public API. Commands whose replies we decode ourselves (XRANGE,
XREVRANGE, XREAD) have redis-py's reply callbacks removed on our own clients: the raw
hiredis lists go straight into the envelope decoder without an intermediate dict per entry.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Generator, Sequence
from typing import Any, Protocol

import redis.asyncio as aioredis
import redis.exceptions as rexc
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry  # the asyncio one: redis-py 8 warns on the sync class
from redis.backoff import NoBackoff
from redis.crc import key_slot

from ..errors import BusConnectionError, BusError, BusTimeoutError

__all__ = ["RawConnection", "RedisHandle", "open_reader", "translate_errors"]

# Reply callbacks we drop so the decoder sees hiredis's raw lists.
_RAW_COMMANDS = ("XRANGE", "XREVRANGE", "XREAD", "XADD", "XAUTOCLAIM", "XREADGROUP", "XCLAIM")


@contextlib.contextmanager
def translate_errors(action: str) -> Generator[None]:
    """Re-raise redis-py and socket errors met while doing `action` as `BusError`s."""
    try:
        yield
    except rexc.MaxConnectionsError as exc:
        raise BusTimeoutError(
            f"unable to {action}: every connection of the pool is busy ({exc}); "
            "raise max_connections on the Bus"
        ) from exc
    except rexc.ConnectionError as exc:
        if "No connection available" not in str(exc):
            raise BusConnectionError(f"unable to {action}: {_describe(exc)}") from exc
        raise BusTimeoutError(
            f"unable to {action}: no connection of the pool became free in time; "
            "raise max_connections on the Bus"
        ) from exc
    except rexc.TimeoutError as exc:
        raise BusTimeoutError(f"unable to {action}: Redis did not answer in time ({exc})") from exc
    except (ConnectionError, OSError, EOFError) as exc:
        raise BusConnectionError(f"unable to {action}: {_describe(exc)}") from exc
    except rexc.RedisError as exc:
        raise BusError(f"unable to {action}: {exc}") from exc


class _BoundedPool(aioredis.ConnectionPool):
    """A bounded pool: at most `max_connections`, a burst waits (up to `timeout`) for one
    to come free; and a connection idle for a while is checked before it is handed out.

    redis-py's `BlockingConnectionPool` bounds the pool too, but takes an `asyncio.Condition`
    and arms a timeout on every checkout and release, even when a connection is free: about
    15 us per command, a fifth of an XADD's cost here. This pool takes the free connection
    at once and only waits (a future per waiter, first come first served, handed the
    connection by `release`) when all are busy.

    After Redis restarts, every pooled connection is dead, and redis-py hands them out
    anyway: the first command on each would fail. Retrying commands is not safe (a retried
    XADD may write twice), so instead an idle connection is checked with PING first, and
    replaced if it is dead. Busy connections (used within the last second) are not probed.
    """

    _PROBE_AFTER = 1.0

    def __init__(self, *args: Any, timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # pyright: ignore[reportUnknownMemberType]
        self.timeout = timeout
        self._released: dict[Any, float] = {}
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()

    async def get_connection(self, *_args: Any, **_options: Any) -> Any:
        if self._available_connections or len(self._in_use_connections) < self.max_connections:
            connection = self.get_available_connection()
        else:
            connection = await self._wait()
        try:
            await self.ensure_connection(connection)
        except BaseException:
            await self.release(connection)
            raise
        return connection

    async def _wait(self) -> Any:
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.timeout):
                return await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                # Handed a connection as the wait ended: pass it on, never lose it.
                await self.release(waiter.result())
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise rexc.ConnectionError("No connection available.") from exc
            raise

    async def ensure_connection(self, connection: Any) -> None:
        await super().ensure_connection(connection)
        released = self._released.pop(connection, None)
        if released is None or time.monotonic() - released < self._PROBE_AFTER:
            return
        try:
            await connection.send_command("PING", check_health=False)
            await connection.read_response()
        except (rexc.ConnectionError, rexc.TimeoutError, OSError):
            await connection.disconnect()
            await connection.connect()

    async def release(self, connection: Any) -> None:
        self._released[connection] = time.monotonic()
        if connection.should_reconnect():
            await connection.disconnect()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)  # still in use: by the waiter now
                return
        self._in_use_connections.discard(connection)
        self._available_connections.append(connection)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"Redis is unreachable or the connection dropped ({text})"


class RawConnection(Protocol):
    """The part of a redis-py connection the shared reader uses."""

    async def connect(self) -> None: ...
    async def disconnect(self, nowait: bool = False) -> None: ...
    async def send_command(self, *args: Any, **kwargs: Any) -> None: ...
    async def send_packed_command(self, command: bytes, check_health: bool = True) -> None: ...
    async def read_response(self, *args: Any, **kwargs: Any) -> Any: ...


async def open_reader(conn: RawConnection) -> tuple[int, str | None]:
    """Connect a reader connection; return its CLIENT ID and the server's run_id.

    The run_id changes on every restart of the server, which tells a reader coming back
    whether the data it had seen may be gone. Servers without INFO (fakeredis) give None.
    """
    with translate_errors("connect the shared reader"):
        await conn.connect()
        await conn.send_command("CLIENT", "ID")
        client_id = int(await conn.read_response())
        await conn.send_command("INFO", "server")
        try:
            info = await conn.read_response()
        except rexc.ResponseError:
            return client_id, None
    text = info.decode(errors="replace") if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith("run_id:"):
            return client_id, line[len("run_id:") :].strip()
    return client_id, None


class RedisHandle:
    """One Redis deployment as the bus sees it: a command client and a reader factory.

    Args:
        client: the client for ordinary commands (a pool of connections). The handle owns it
            and changes its reply callbacks; do not share it.
        cluster: whether `client` is a `RedisCluster`.
        reader_timeout: the socket timeout for dedicated reader connections; it must be
            longer than any blocking XREAD they issue.
    """

    def __init__(self, client: Any, *, cluster: bool, reader_timeout: float) -> None:
        self.client = client
        self.cluster = cluster
        self._reader_timeout = reader_timeout
        for command in _RAW_COMMANDS:
            client.response_callbacks[command] = _identity

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        cluster: bool,
        command_timeout: float,
        connect_timeout: float,
        reader_timeout: float,
        max_connections: int,
    ) -> RedisHandle:
        options: dict[str, Any] = {
            "socket_timeout": command_timeout,
            "socket_connect_timeout": connect_timeout,
            # A retried XADD after a dropped reply could write an entry twice: fail instead
            # and let the caller decide. Stale pooled connections are probed at checkout.
            "retry": Retry(NoBackoff(), 0),
            "decode_responses": False,
        }
        try:
            if cluster:
                client: Any = RedisCluster.from_url(url, max_connections=max_connections, **options)
            else:
                # A bounded pool that makes a burst wait for a free connection rather than
                # open hundreds (or fail past redis-py's default limit).
                pool = _BoundedPool.from_url(  # pyright: ignore
                    url, max_connections=max_connections, timeout=command_timeout, **options
                )
                client = aioredis.Redis.from_pool(pool)  # the client owns (and closes) it
        except (ValueError, rexc.RedisError) as exc:
            raise BusError(f"invalid Redis URL {url!r}: {exc}") from exc
        return cls(client, cluster=cluster, reader_timeout=reader_timeout)

    def slot(self, key: str) -> int:
        """The Redis Cluster hash slot of `key` (0 when not in cluster mode)."""
        return key_slot(key.encode()) if self.cluster else 0

    async def reader_connection(self, key: str) -> RawConnection:
        """A new connection of its own, for one blocking reader over keys of `key`'s slot."""
        if self.cluster:
            with translate_errors("find the cluster node of a channel"):
                node = self.client.get_node_from_key(key)
                kwargs = dict(node.connection_kwargs)
                kwargs.update(host=node.host, port=node.port)
                conn_class = node.connection_class
        else:
            pool = self.client.connection_pool
            kwargs = dict(pool.connection_kwargs)
            conn_class = pool.connection_class
        kwargs["socket_timeout"] = self._reader_timeout
        kwargs["retry"] = Retry(NoBackoff(), 0)
        return conn_class(**kwargs)

    async def unblock(self, client_id: int, key: str) -> bool:
        """Wake a connection blocked in XREAD (as if its block timed out).

        Returns False when that connection was not blocked at that moment.
        """
        with translate_errors("wake the shared reader"):
            if self.cluster:
                node = self.client.get_node_from_key(key)
                done = await self.client.execute_command(
                    "CLIENT UNBLOCK", client_id, target_nodes=node
                )
            else:
                done = await self.client.execute_command("CLIENT UNBLOCK", client_id)
        return bool(done)

    async def refused_keys(self, cursors: Sequence[tuple[str, str]]) -> dict[str, str]:
        """Read each key after its cursor alone (one pipeline, no blocking); return the keys
        Redis refuses for what they are, with its words: a key of another type (WRONGTYPE),
        one this user may not read (NOPERM), a cursor it cannot parse.

        Other errors are the server's state, not a key's (BUSY running a script, LOADING, a
        cluster redirection): those keys are not returned, whatever their number.

        Raises:
            BusError: the pipeline failed as a whole (Redis unreachable, slow).
        """
        with translate_errors("find the channel a shared read failed on"):
            pipe = self.client.pipeline(transaction=False)
            for key, cursor in cursors:
                pipe.execute_command("XREAD", "COUNT", 1, "STREAMS", key, cursor)
            replies = await pipe.execute(raise_on_error=False)
        refused: dict[str, str] = {}
        for (key, _), reply in zip(cursors, replies, strict=True):
            if isinstance(reply, rexc.ResponseError) and _refuses_the_key(reply):
                refused[key] = str(reply)
        return refused

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.aclose()


def _refuses_the_key(error: rexc.ResponseError) -> bool:
    # redis-py keeps the code of the errors it does not map (WRONGTYPE ...) and drops
    # `ERR ` from the generic ones; NOPERM has a class of its own.
    refusals = ("WRONGTYPE", "Invalid stream ID")
    return isinstance(error, rexc.NoPermissionError) or str(error).startswith(refusals)


def _identity(response: Any, **_options: Any) -> Any:
    return response
