"""A server-sent events decoder working on raw bytes (the HTML living standard's rules).

```python
decoder = SSEDecoder()
for chunk in response_bytes:
    for event in decoder.feed(chunk):
        ...                      # event.event, event.data, event.id
for event in decoder.flush():    # a last event without its blank line
    ...
```

Where it departs from the standard, on purpose: an event with a name and no `data:` line is
dispatched (with empty data), as Anthropic's decoder does; `retry` is handed over with the
next event dispatched instead of being kept as a reconnection time; and `flush()` ends the
stream with a blank line, so a server that closes right after its last `data:` line loses
nothing.
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
    """Incremental: feed bytes as they come, in any chunking; lines may end in CRLF, LF or CR.

    Linear in the input, whatever the chunking: a chunk is searched for line endings once,
    and the start of a line still open is kept as pieces, joined once when its line ends.
    """

    def __init__(self) -> None:
        self._open: list[bytes] = []  # the pieces of a line whose ending has not come yet
        self._after_cr = False  # the last chunk ended in CR: an LF opening the next is its CRLF
        self._at_start = True  # a byte order mark may open the stream
        self._event = ""
        self._data: list[str] = []
        self._last_id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if not chunk:
            return []
        if self._after_cr:
            self._after_cr = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
        # Everything up to the last line ending is whole lines: decode them in one go. A CR
        # last in the chunk ends its line whatever follows; only the LF after it may be owed.
        end = max(chunk.rfind(b"\n"), chunk.rfind(b"\r")) + 1
        if not end:
            self._open.append(chunk)
            return []
        whole = chunk[:end]
        if self._open:
            whole = b"".join([*self._open, whole])
            self._open = []
        if end < len(chunk):
            self._open.append(chunk[end:])
        else:
            self._after_cr = chunk[-1] == 0x0D
        lines = self._text(whole).split("\n")
        lines.pop()  # the empty rest after the last line's ending
        return self._lines(lines)

    def flush(self) -> list[ServerSentEvent]:
        """The event left when the stream ended without a final blank line (if any)."""
        lines = [self._text(b"".join(self._open))] if self._open else []
        self._open, self._after_cr = [], False
        events = self._lines(lines)
        event = self._dispatch()
        if event is not None:
            events.append(event)
        return events

    def _text(self, raw: bytes) -> str:
        """Lines ending in LF: line endings are ASCII, so no character spans two lines and
        decoding many lines at once replaces bad bytes as decoding each line would."""
        text = raw.decode("utf-8", errors="replace")
        if self._at_start:
            self._at_start = False
            text = text.removeprefix("\ufeff")
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        return text

    def _lines(self, lines: list[str]) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        for line in lines:
            if not line:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
                continue
            name, _, value = line.partition(":")
            if value[:1] == " ":
                value = value[1:]
            if name == "data":
                self._data.append(value)
            elif name == "event":
                self._event = value
            elif name == "id":
                if "\0" not in value:
                    self._last_id = value
            elif name == "retry":
                self._retry = _retry(value, self._retry)
            # Otherwise a comment (no name: the line starts with a colon) or an unknown field.
        return events

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data and not self._event:
            return None
        event = ServerSentEvent(
            event=self._event or "message",
            data="\n".join(self._data),
            id=self._last_id,
            retry=self._retry,
        )
        self._event, self._data, self._retry = "", [], None
        return event


def _retry(value: str, current: int | None) -> int | None:
    """A retry field counts only when its value is all ASCII digits (`int()` would also take
    spaces, signs, underscores and other scripts' digits), and not past `int()`'s limit."""
    if not (value.isascii() and value.isdigit()):
        return current
    try:
        return int(value)
    except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits())
        return current


async def aiter_sse(chunks: AsyncIterable[bytes]) -> AsyncGenerator[ServerSentEvent, None]:
    """The events of a byte stream, the last one included when the stream ends without its
    blank line (servers that close right after the last `data:` line)."""
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.flush():
        yield event
