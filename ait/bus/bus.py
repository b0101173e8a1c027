"""The bus: a connection to Redis (standalone or Cluster) and the factory for channels."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from .._constants import (
    DEFAULT_MAX_ENTRY_BYTES,
    DEFAULT_PREFIX,
    READER_BLOCK_MS,
    READER_COUNT,
    READER_KEYS_PER_CONNECTION,
    READER_LINGER,
    SUBSCRIBER_BUFFER,
)
from ..errors import UsageError
from ._redis import RedisHandle, translate_errors
from ._tasks import BackgroundTasks
from .channel import Channel, Retention, check_buffer
from .embedded import AppendFsync, EmbeddedRedis
from .pool import Pool
from .reader import ReaderHub

if TYPE_CHECKING:
    import os

    from .subscription import Subscription

__all__ = ["Bus"]

log = logging.getLogger("ait.bus")

HandleFactory = Callable[[], Awaitable[RedisHandle]]


class Bus:
    """A connection to Redis and the factory for channels. Open it with `async with`.

    ```python
    bus = ait.Bus.from_url("redis://localhost:6379/0")   # or ait.Bus.embedded()
    async with bus:
        channel = bus.channel("chat-42")
        await channel.publish(event)
    ```

    A bus keeps one pool of connections for commands, and one shared reader (a handful of
    dedicated connections) for every subscription of the process: see `ReaderHub`.

    Args (keyword, for `from_url` and `embedded`):
        prefix: the key prefix (`ait:` by default); every key of a channel is
            `<prefix>{<channel>}:...`.
        max_entry_bytes: entries larger than this are refused before writing (1 MiB).
        retention: default `Retention` of channels (None: keep everything).
        cluster: True for Redis Cluster, False for one server, None to ask the server.
        command_timeout: seconds a command may take before `BusTimeoutError` (10).
        connect_timeout: seconds to connect before `BusConnectionError` (5).
        max_connections: connections for commands (4); a burst waits for a free one. The
            shared reader and worker queues use dedicated connections on top of these.
        on_error: called with errors met in the background (a reader reconnecting); by
            default they are logged as warnings on the `ait.bus` logger.
        reader_linger: seconds a shared reader connection left without channels stays
            open for the next subscription (30); 0 closes it at once, as does a cluster.
        subscriber_buffer: entries a subscription may hold unread (4096) before the shared
            reader detaches it (`SubscriberLagged`); what bounds the memory a slow
            subscriber takes. `channel.subscribe(buffer=...)` sets it for one.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
        retention: Retention | None = None,
        cluster: bool | None = None,
        command_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        max_connections: int = 4,
        on_error: Callable[[BaseException], None] | None = None,
        reader_keys_per_connection: int = READER_KEYS_PER_CONNECTION,
        reader_block_ms: int = READER_BLOCK_MS,
        reader_linger: float = READER_LINGER,
        subscriber_buffer: int = SUBSCRIBER_BUFFER,
        _embedded: EmbeddedRedis | None = None,
        _handle_factory: HandleFactory | None = None,
    ) -> None:
        if url is None and _embedded is None and _handle_factory is None:
            raise UsageError("a Bus needs a URL: use Bus.from_url(url) or Bus.embedded()")
        if not prefix or "{" in prefix or "}" in prefix:
            raise UsageError(f"invalid key prefix {prefix!r}: non-empty, without braces")
        if max_entry_bytes < 1024:
            raise UsageError("max_entry_bytes must be at least 1024")
        self.url = url
        self.prefix = prefix
        self.max_entry_bytes = max_entry_bytes
        self.retention = retention
        self.cluster = cluster
        self.command_timeout = command_timeout
        self.connect_timeout = connect_timeout
        if max_connections < 1:
            raise UsageError("max_connections must be at least 1")
        self.max_connections = max_connections
        #: Entries a subscription may hold unread before it is detached as lagged.
        self.subscriber_buffer = check_buffer("subscriber_buffer", subscriber_buffer)
        self._on_error = on_error
        self._keys_per_connection = reader_keys_per_connection
        self._block_ms = reader_block_ms
        self._linger = reader_linger
        self._embedded = _embedded
        self._handle_factory = _handle_factory
        self._state = "unopened"
        self._handle: RedisHandle | None = None
        self._hub: ReaderHub | None = None
        self._tasks = BackgroundTasks()
        self._subscriptions: set[Subscription] = set()

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Bus:
        """A bus on the Redis at `url`: `redis://`, `rediss://` (TLS) or `unix://`.

        A Redis Cluster node's URL works too: the bus asks the server (or pass `cluster=`).
        """
        if not isinstance(url, str) or "://" not in url:  # pyright: ignore[reportUnnecessaryIsInstance]
            raise UsageError(f"invalid Redis URL {url!r}: expected redis://, rediss:// or unix://")
        return cls(url, **options)

    @classmethod
    def embedded(
        cls,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        appendfsync: AppendFsync = "everysec",
        **options: Any,
    ) -> Bus:
        """A bus on a private redis-server started on open and stopped on close.

        Args:
            data_dir: keep the data in this directory (AOF) so it survives restarts; by
                default the server is ephemeral, in a temporary directory.
            appendfsync: the AOF fsync policy when `data_dir` is given.
        """
        server = EmbeddedRedis(data_dir, appendfsync=appendfsync)
        return cls(None, _embedded=server, **options)

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """`unopened`, `open` or `closed`."""
        return self._state

    @property
    def server(self) -> EmbeddedRedis | None:
        """The embedded redis-server, for a bus made by `Bus.embedded()`."""
        return self._embedded

    async def __aenter__(self) -> Bus:
        if self._state != "unopened":
            raise UsageError(f"unable to open the bus; it is {self._state} (make a new Bus)")
        self._state = "opening"
        try:
            if self._embedded is not None:
                await self._embedded.__aenter__()
                self.url = self._embedded.url
            self._handle = await (self._handle_factory or self._connect)()
            await self._tasks.enter()
        except BaseException:
            self._state = "open"
            with anyio.CancelScope(shield=True):
                await self.aclose()
            await self._tasks.exit()
            raise
        self._hub = ReaderHub(
            self._handle,
            self._tasks,
            keys_per_connection=self._keys_per_connection,
            block_ms=self._block_ms,
            count=READER_COUNT,
            on_error=self.report,
            linger=self._linger,
        )
        self._state = "open"
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.aclose()
        finally:
            await self._tasks.exit()  # not under any other scope: it must nest correctly

    async def aclose(self) -> None:
        """End every subscription, stop the shared reader, close connections. Idempotent.

        Safe to call from anywhere (another task, nested scopes); the bus's background
        tasks are stopped at once and awaited when the `async with` block exits.
        """
        if self._state in ("closed", "unopened"):
            self._state = "closed"
            return
        self._state = "closed"
        for subscription in list(self._subscriptions):
            subscription.bus_closed()
        self._tasks.stop()
        with anyio.CancelScope(shield=True), anyio.move_on_after(15):
            if self._handle is not None:
                await self._handle.aclose()
            if self._embedded is not None:
                await self._embedded.__aexit__(None, None, None)

    async def _connect(self) -> RedisHandle:
        assert self.url is not None
        options: dict[str, Any] = {
            "command_timeout": self.command_timeout,
            "connect_timeout": self.connect_timeout,
            "reader_timeout": self._block_ms / 1000 + self.command_timeout,
            "max_connections": self.max_connections,
        }
        cluster = self.cluster
        handle = RedisHandle.from_url(self.url, cluster=bool(cluster), **options)
        try:
            with translate_errors(f"connect to Redis at {self.url}"):
                if cluster is None:
                    info = await handle.client.execute_command("INFO", "cluster")
                    cluster = bool(info.get("cluster_enabled")) if isinstance(info, dict) else False  # pyright: ignore[reportUnknownMemberType]
                    if cluster:
                        await handle.aclose()
                        handle = RedisHandle.from_url(self.url, cluster=True, **options)
                await handle.client.execute_command("PING")
        except BaseException:
            await handle.aclose()
            raise
        self.cluster = cluster
        return handle

    # -- use ------------------------------------------------------------------------------

    def channel(self, name: str, *, retention: Retention | None = None) -> Channel:
        """The channel `name` (1-200 characters of `A-Za-z0-9._-:`).

        Raises:
            InvalidName: the name is not allowed; nothing touched Redis.
        """
        return Channel(self, name, retention=retention)

    def pool(self, name: str = "default") -> Pool:
        """The invocation queue of worker pool `name` (see `ait.AgentWorker`).

        Raises:
            InvalidName: the name is not allowed.
        """
        return Pool(self, name)

    def require_open(self, action: str) -> None:
        if self._state != "open":
            raise UsageError(
                f"unable to {action}; the bus is {self._state} (use `async with bus:`)"
            )

    @property
    def handle(self) -> RedisHandle:
        """The Redis clients (internal)."""
        if self._handle is None or self._state != "open":
            raise UsageError(f"unable to use the bus; it is {self._state} (use `async with bus:`)")
        return self._handle

    @property
    def hub(self) -> ReaderHub:
        """The shared reader (internal)."""
        if self._hub is None or self._state != "open":
            raise UsageError(f"unable to subscribe; the bus is {self._state}")
        return self._hub

    def report(self, error: BaseException) -> None:
        """Hand a background error to `on_error` (or the log). Never raises."""
        if self._on_error is None:
            log.warning("ait bus: %s", error)
            return
        try:
            self._on_error(error)
        except Exception:
            log.exception("ait bus: on_error callback failed")

    def track(self, subscription: Subscription) -> None:
        self._subscriptions.add(subscription)

    def untrack(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)
