"""The SSE decoder on raw bytes: any chunking, every line ending, every field."""

from __future__ import annotations

import pytest

from ait.providers import ServerSentEvent, SSEDecoder


def decode(chunks: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for piece in chunks:
        events.extend(decoder.feed(piece))
    events.extend(decoder.flush())
    return events


def bytewise(raw: bytes) -> list[bytes]:
    return [raw[i : i + 1] for i in range(len(raw))]


def every_split(raw: bytes) -> list[list[bytes]]:
    """The whole body, then the body cut in two at every offset."""
    return [[raw]] + [[raw[:i], raw[i:]] for i in range(1, len(raw))]


BODY = (
    ": keep-alive comment\n"
    "event: message_start\n"
    'data: {"a": 1}\n'
    "\n"
    "id: 7\n"
    "data: first line\n"
    "data: second line\n"
    "\n"
    "event: ping\n"
    "data:\n"
    "\n"
    "retry: 1500\n"
    "data:no space after the colon\n"
    "\n"
)

EXPECTED = [
    ServerSentEvent(event="message_start", data='{"a": 1}'),
    ServerSentEvent(event="message", data="first line\nsecond line", id="7"),
    ServerSentEvent(event="ping", data="", id="7"),  # the last event id carries over
    ServerSentEvent(event="message", data="no space after the colon", id="7", retry=1500),
]


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_every_line_ending_and_every_chunking(ending: str) -> None:
    raw = BODY.replace("\n", ending).encode()
    assert decode([raw]) == EXPECTED
    assert decode(bytewise(raw)) == EXPECTED
    for chunks in every_split(raw):
        assert decode(chunks) == EXPECTED, chunks


def test_mixed_line_endings_in_one_stream() -> None:
    raw = b"data: a\r\n\r\ndata: b\n\ndata: c\r\rdata: d\r\n\n"
    expected = [ServerSentEvent(data=d) for d in "abcd"]
    assert decode([raw]) == expected
    assert decode(bytewise(raw)) == expected


def test_crlf_split_between_cr_and_lf_is_one_line_ending() -> None:
    # A CR at the end of a chunk may be half of a CRLF: the decoder must wait to see.
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r") == []
    assert decoder.feed(b"\n\r") == []
    assert decoder.feed(b"\n") == [ServerSentEvent(data="x")]
    assert decoder.flush() == []


def test_comments_produce_nothing() -> None:
    assert decode([b": one\n: two\n\n:\n\n"]) == []


def test_unknown_fields_and_bad_retry_are_ignored() -> None:
    raw = b"foo: bar\nretry: soon\ndata: x\nid: a\x00b\n\n"
    assert decode([raw]) == [ServerSentEvent(data="x")]


def test_a_line_without_colon_is_a_field_with_empty_value() -> None:
    assert decode([b"data\ndata\n\n"]) == [ServerSentEvent(data="\n")]


def test_only_one_space_after_the_colon_is_stripped() -> None:
    assert decode([b"data:  two spaces\n\n"]) == [ServerSentEvent(data=" two spaces")]


def test_final_event_without_blank_line_is_flushed() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: one\n\ndata: two\n") == [ServerSentEvent(data="one")]
    assert decoder.flush() == [ServerSentEvent(data="two")]
    assert decoder.flush() == []  # once


@pytest.mark.parametrize(
    "tail",
    [b"", b"\n", b"\r", b"\r\n", b"\r\r", b"\n\r", b"\r\n\r"],
    ids=["none", "LF", "CR", "CRLF", "CR-CR", "LF-CR", "CRLF-CR"],
)
def test_flush_of_a_last_line_with_or_without_its_ending(tail: bytes) -> None:
    assert decode([b"event: last\ndata: [DONE]" + tail]) == [
        ServerSentEvent(event="last", data="[DONE]")
    ]
    assert decode(bytewise(b"data: [DONE]" + tail)) == [ServerSentEvent(data="[DONE]")]


def test_utf8_split_inside_a_multibyte_character() -> None:
    text = "héllo wörld 你好 🙂"
    raw = f"data: {text}\n\n".encode()
    assert len(raw) > len(text) + 8  # there are multibyte characters to split
    for chunks in [bytewise(raw), *every_split(raw)]:
        assert decode(chunks) == [ServerSentEvent(data=text)]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert decode([b"data: \xff\xfe ok\n\n"]) == [ServerSentEvent(data="\ufffd\ufffd ok")]


def test_a_blank_line_alone_dispatches_nothing() -> None:
    assert decode([b"\n\n\r\n\r\r"]) == []


def test_event_name_without_data_is_dispatched() -> None:
    # Anthropic's decoder does the same: a named event with no data still counts.
    assert decode([b"event: ping\n\n"]) == [ServerSentEvent(event="ping")]


def test_many_events_in_one_chunk() -> None:
    raw = b"".join(f"data: {i}\n\n".encode() for i in range(500))
    assert [e.data for e in decode([raw])] == [str(i) for i in range(500)]
