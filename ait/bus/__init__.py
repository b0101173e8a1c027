"""The bus layer: channels on Redis Streams, the shared reader, the coalescing writer, embedded
Redis."""

from __future__ import annotations

from .bus import Bus as Bus
from .channel import Channel as Channel
from .channel import Entry as Entry
from .channel import Retention as Retention
from .embedded import EmbeddedRedis as EmbeddedRedis
from .embedded import find_redis_server as find_redis_server
from .pool import Pool as Pool
from .subscription import Subscription as Subscription
from .writer import CoalescingWriter as CoalescingWriter
from .writer import MessageOutput as MessageOutput

__all__ = [
    "Bus",
    "Channel",
    "CoalescingWriter",
    "EmbeddedRedis",
    "Entry",
    "MessageOutput",
    "Pool",
    "Retention",
    "Subscription",
    "find_redis_server",
]
