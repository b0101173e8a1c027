"""Codecs: the transport envelope of every stream entry, and the chat payload codec.

The envelope (`v`, `t`, `h`, `d`) is fixed by docs/protocol.md; encode and decode are pure,
synchronous and never do I/O. Decoding anything malformed raises `CodecError` and nothing
else.
"""

from __future__ import annotations

from .chat import ChatCodec as ChatCodec
from .envelope import (
    decode_entry as decode_entry,
)
from .envelope import (
    decode_invocation as decode_invocation,
)
from .envelope import (
    decode_or_bad as decode_or_bad,
)
from .envelope import (
    encode_event as encode_event,
)
from .envelope import (
    encode_invocation as encode_invocation,
)
from .envelope import (
    entry_size as entry_size,
)

__all__ = [
    "ChatCodec",
    "decode_entry",
    "decode_invocation",
    "decode_or_bad",
    "encode_event",
    "encode_invocation",
    "entry_size",
]
