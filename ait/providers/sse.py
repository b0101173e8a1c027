"""A server-sent events decoder working on raw bytes (the HTML living standard's rules).

```python
decoder = SSEDecoder()
for chunk in response_bytes:
    for event in decoder.feed(chunk):
        ...                      # event.event, event.data, event.id
for event in decoder.flush():    # a last event without its blank line
    ...
```
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass

__all__ = ["SSEDecoder", "ServerSentEvent", "aiter_sse"]


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Incremental: feed bytes as they come, in any chunking; lines may end in CRLF, LF or CR."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None
        self._last_id: str | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        self._buffer += chunk
        events: list[ServerSentEvent] = []
        while True:
            line, ending = self._take_line()
            if ending is None:
                return events
            event = self._line(line)
            if event is not None:
                events.append(event)

    def flush(self) -> list[ServerSentEvent]:
        """The event left when the stream ended without a final blank line (if any)."""
        events: list[ServerSentEvent] = []
        if self._buffer:
            # A CR last in the stream ends its line: the LF it waited for will not come.
            line, self._buffer = self._buffer.removesuffix(b"\r"), b""
            event = self._line(line)
            if event is not None:
                events.append(event)
        event = self._dispatch()
        if event is not None:
            events.append(event)
        return events

    def _take_line(self) -> tuple[bytes, bytes | None]:
        buffer = self._buffer
        for index, byte in enumerate(buffer):
            if byte == 0x0A:  # LF
                self._buffer = buffer[index + 1 :]
                return buffer[:index], b"\n"
            if byte == 0x0D:  # CR, maybe CRLF: wait for the next byte to know
                if index + 1 == len(buffer):
                    return b"", None
                skip = 2 if buffer[index + 1] == 0x0A else 1
                self._buffer = buffer[index + skip :]
                return buffer[:index], b"\r"
        return b"", None

    def _line(self, raw: bytes) -> ServerSentEvent | None:
        line = raw.decode("utf-8", errors="replace")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry":
            if value.isdigit():
                self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if self._id is not None:
            self._last_id = self._id
        if not self._data and not self._event:
            self._id = None
            return None
        event = ServerSentEvent(
            event=self._event or "message",
            data="\n".join(self._data),
            id=self._last_id,
            retry=self._retry,
        )
        self._event, self._data, self._id, self._retry = "", [], None, None
        return event


async def aiter_sse(chunks: AsyncIterable[bytes]) -> AsyncGenerator[ServerSentEvent, None]:
    """The events of a byte stream, the last one included when the stream ends without its
    blank line (servers that close right after the last `data:` line)."""
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.flush():
        yield event
