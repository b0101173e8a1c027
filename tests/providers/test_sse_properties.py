"""The SSE decoder against the events a stream was written from, and against httpx-sse.

Random streams of blocks (the field lines of one event, then its blank line), each line
ended by LF, CRLF or CR at random, with values holding what trips decoders up (colons, NUL,
a byte order mark, the separators str.splitlines() breaks at, multibyte characters). The
decoder must give the events the generator meant, for the whole stream in one chunk, byte
by byte, cut right after every CR, and cut at random places (empty chunks included).
Where httpx-sse follows the same rules (every block dispatches, the stream ends with its
blank line, no retry value that int() reads but the standard refuses, no byte order mark),
it must give the same events too.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import httpx
from httpx_sse import EventSource
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ait.providers import ServerSentEvent

from .helpers import decode_sse as decode

ENDINGS = ["\n", "\r\n", "\r"]
TRICKY = ": \0\x0b\x0c\x1c\x1e\x85\u2028\ufeffé你🙂"
VALUES = st.text(
    st.one_of(
        st.sampled_from(TRICKY),
        st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"),
    ),
    max_size=8,
)
IDS = st.one_of(VALUES, st.builds("{}\0{}".format, VALUES, VALUES))  # an id with NUL is ignored
UNKNOWN_NAMES = ["foo", "Data", "data ", "ID", "retry2"]
RETRIES = st.text("0123456789", min_size=1, max_size=7)  # leading zeros included
#: Retry values both decoders refuse, and those int() (so httpx-sse) takes but the standard
#: does not.
REFUSED_BY_BOTH = ["", "soon", "1.5", "12a", "\u00b2"]
REFUSED_BY_US = ["-1", "+1", " 1", "1_0", "\u0661"]

Field = tuple[str, str]  # (name, value); the name "" is a comment


@dataclass(frozen=True)
class Stream:
    raw: bytes
    events: list[ServerSentEvent]  # what the blocks it was written from dispatch


def dispatches(fields: list[Field]) -> bool:
    return any(name == "data" or (name == "event" and value) for name, value in fields)


@st.composite
def blocks(draw: st.DrawFn, like_httpx: bool) -> list[Field]:
    fields: list[Field] = [("data", value) for value in draw(st.lists(VALUES, max_size=3))]
    if draw(st.booleans()):
        fields.append(("event", draw(VALUES)))
    if draw(st.booleans()):
        fields.append(("id", draw(IDS)))
    if draw(st.booleans()):
        refused = REFUSED_BY_BOTH if like_httpx else REFUSED_BY_BOTH + REFUSED_BY_US
        fields.append(("retry", draw(st.one_of(RETRIES, st.sampled_from(refused)))))
    fields += [("", value) for value in draw(st.lists(VALUES, max_size=2))]
    fields += draw(st.lists(st.tuples(st.sampled_from(UNKNOWN_NAMES), VALUES), max_size=1))
    fields = draw(st.permutations(fields))
    if like_httpx and not dispatches(fields):
        fields.append(("data", draw(VALUES)))
    return fields


def events_of(written: list[list[Field]]) -> list[ServerSentEvent]:
    """What the blocks dispatch: the model, from the fields rather than from bytes."""
    events: list[ServerSentEvent] = []
    last_id: str | None = None
    retry: int | None = None  # a retry waits for the next event dispatched
    for fields in written:
        event = ""
        for name, value in fields:
            if name == "event":
                event = value
            elif name == "id" and "\0" not in value:
                last_id = value
            elif name == "retry" and value.isascii() and value.isdigit():
                retry = int(value)
        if dispatches(fields):
            data = "\n".join(value for name, value in fields if name == "data")
            events.append(ServerSentEvent(event or "message", data, last_id, retry))
            retry = None
    return events


def field_line(draw: st.DrawFn, name: str, value: str) -> str:
    if not name:
        return ":" + value
    if not value and draw(st.booleans()):
        return name  # no colon: a field with an empty value
    space = " " if value.startswith(" ") or draw(st.booleans()) else ""
    return f"{name}:{space}{value}"


@st.composite
def streams(draw: st.DrawFn, like_httpx: bool = False) -> Stream:
    written = draw(st.lists(blocks(like_httpx), max_size=6))
    lines: list[str] = []
    for fields in written:
        lines += [field_line(draw, *field) + draw(st.sampled_from(ENDINGS)) for field in fields]
        # A blank line ended by LF after a CR would be the CR's CRLF, not a blank line.
        after_cr = bool(lines) and lines[-1].endswith("\r")
        lines.append(draw(st.sampled_from(ENDINGS[1:] if after_cr else ENDINGS)))
    if not like_httpx:
        if lines and draw(st.booleans()):  # the last event without its blank line
            lines.pop()
            if lines and draw(st.booleans()):  # nor its last line's ending
                lines[-1] = lines[-1].rstrip("\r\n")
        if draw(st.booleans()):
            lines.insert(0, "\ufeff")
    return Stream("".join(lines).encode(), events_of(written))


def cut(raw: bytes, at: list[int]) -> list[bytes]:
    return [raw[start:end] for start, end in pairwise([0, *sorted(at), len(raw)])]


def chunkings(raw: bytes, at: list[int]) -> dict[str, list[bytes]]:
    return {
        "whole": [raw],
        "bytewise": cut(raw, list(range(1, len(raw)))),
        "after every CR": cut(raw, [i + 1 for i, byte in enumerate(raw) if byte == 0x0D]),
        "random": cut(raw, at),
    }


def cuts(raw: bytes) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, len(raw)), max_size=12)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_chunking_decodes_the_events_written(data: st.DataObject) -> None:
    stream = data.draw(streams())
    for name, chunks in chunkings(stream.raw, data.draw(cuts(stream.raw))).items():
        assert decode(chunks) == stream.events, name


def httpx_sse_events(chunks: list[bytes]) -> list[tuple[str, str, str, int | None]]:
    response = httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=iter(chunks)
    )
    return [(e.event, e.data, e.id, e.retry) for e in EventSource(response).iter_sse()]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_same_events_as_httpx_sse_where_its_rules_are_the_same(data: st.DataObject) -> None:
    stream = data.draw(streams(like_httpx=True))
    for name, chunks in chunkings(stream.raw, data.draw(cuts(stream.raw))).items():
        ours = decode(chunks)
        assert ours == stream.events, name
        # httpx-sse has "" for an id never set, where we have None.
        assert [(e.event, e.data, e.id or "", e.retry) for e in ours] == httpx_sse_events(
            [chunk for chunk in chunks if chunk]  # httpx hands over no empty chunk
        ), name


#: Pieces of SSE and of UTF-8, valid or not, to glue at random.
PIECES = [b"data", b"event", b"id", b"retry", b":", b" ", b"\r", b"\n", b"\r\n", b"x", b"7"]
PIECES += [b"\xff", b"\xc3", b"\xa9", b"\xf0\x9f\x99", b"\x82", b"\xef\xbb\xbf", b"\0"]


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_any_bytes_decode_the_same_in_any_chunking(data: st.DataObject) -> None:
    raw = b"".join(data.draw(st.lists(st.sampled_from(PIECES), max_size=40)))
    whole = decode([raw])
    for name, chunks in chunkings(raw, data.draw(cuts(raw))).items():
        assert decode(chunks) == whole, name
