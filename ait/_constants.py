"""Numbers and names fixed by the wire protocol (docs/protocol.md) and the library's defaults."""

from __future__ import annotations

PROTOCOL_VERSION = "1"
DEFAULT_PREFIX = "ait:"
MAX_NAME_LENGTH = 200
NAME_CHARACTERS = "A-Z a-z 0-9 . _ - :"

#: Entries over this many bytes (all field names and values) are refused before writing.
DEFAULT_MAX_ENTRY_BYTES = 1024 * 1024

#: Keys one shared reader connection follows with a single blocking XREAD.
READER_KEYS_PER_CONNECTION = 64
#: How long one blocking XREAD waits before it is issued again (milliseconds).
READER_BLOCK_MS = 5_000
#: How long a shared reader connection left without channels stays open for new ones (s).
READER_LINGER = 30.0
#: Entries one XREAD may return per key.
READER_COUNT = 512
#: Seconds a session waits before following again a channel Redis refused to read.
REFUSED_CHANNEL_RETRY = 1.0
#: Entries a subscriber may hold unread before it is detached as lagged (it takes one
#: batch of the shared reader, up to READER_COUNT entries, when it holds nothing).
SUBSCRIBER_BUFFER = 4096

#: Longest a coalesced event may wait for its batch to be written (seconds).
WRITER_MAX_WAIT = 0.050
#: Under load (events much faster than this apart), the least time between writes (s).
WRITER_LINGER = 0.005

#: How long a run rides out an outage of Redis before it gives up (seconds): its writer
#: resends what was not acknowledged, and `end()`/`suspend()` wait for Redis as long. Under
#: two thirds of a worker's default lease (30 s, renewed every 10 s): Redis counts the
#: outage in an invocation's idle time, and past the lease another worker takes it over.
OUTAGE_BOUND = 15.0
#: Codec events a run's pipe may have waiting for Redis; past it, it stops reading the
#: model's stream until they are written (or the outage bound passes).
PIPE_BACKLOG = 50_000
