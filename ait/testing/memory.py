"""An in-memory bus backed by fakeredis (extra `testing`)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread

try:  # imported here, not on first use: importing reads files, which blocks an event loop
    import fakeredis
except ImportError:  # pragma: no cover - depends on the install
    fakeredis = None

from ..bus import Bus
from ..bus._redis import RedisHandle
from ..errors import UsageError

__all__ = ["memory_bus"]


def memory_bus(server: Any = None, **options: Any) -> Bus:
    """A `Bus` whose Redis is fakeredis, in this process. Open it with `async with`.

    Args:
        server: a `fakeredis.FakeServer` to share data between several memory buses (for a
            test with an agent bus and a client bus); a fresh one by default.
        options: as for `Bus.from_url` (prefix, max_entry_bytes, retention, ...).
    """
    if fakeredis is None:  # pragma: no cover - depends on the install
        raise UsageError("memory_bus() needs fakeredis: pip install 'ait[testing]'")
    module = fakeredis
    block_ms = options.get("reader_block_ms", 5_000)

    async def factory() -> RedisHandle:
        # A FakeServer reads its command table from files: not on the event loop's thread.
        shared = server if server is not None else await anyio.to_thread.run_sync(module.FakeServer)
        client = await anyio.to_thread.run_sync(
            lambda: module.FakeAsyncRedis(server=shared, decode_responses=False)
        )
        return RedisHandle(client, cluster=False, reader_timeout=block_ms / 1000 + 10)

    return Bus(None, cluster=False, _handle_factory=factory, **options)
