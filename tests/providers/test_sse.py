"""The SSE decoder on raw bytes: any chunking, every line ending, every field."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ait.providers import ServerSentEvent, SSEDecoder
from ait.providers.sse import aiter_sse

from .helpers import decode_sse as decode


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


#: Chunk by chunk around a CR that ends a chunk: (chunk, the data of the events it gives);
#: None for `flush()`. A CR ends its line at once, whatever follows: a blank line it closes
#: dispatches now, not when the next chunk comes (which may be a while). An LF opening the
#: next chunk, even after empty chunks, is the rest of a CRLF, not a blank line of its own.
CR_LAST_IN_A_CHUNK = {
    "crlf-split": [(b"data: x\r", []), (b"\ndata: y\r", []), (b"\n", []), (b"\r\n", ["x\ny"])],
    "blank-line-at-once": [(b"data: x\r", []), (b"\n\r", ["x"]), (b"\n", []), (b"\r", [])],
    "through-empty-chunks": [
        (b"data: x\r", []),
        (b"", []),
        (b"\n", []),
        (b"data: y\r\r", ["x\ny"]),
    ],
    "then-cr": [(b"data: x\r", []), (b"\rdata: y", ["x"]), (None, ["y"])],
}


@pytest.mark.parametrize("steps", CR_LAST_IN_A_CHUNK.values(), ids=CR_LAST_IN_A_CHUNK.keys())
def test_a_cr_last_in_a_chunk(steps: list[tuple[bytes | None, list[str]]]) -> None:
    decoder = SSEDecoder()
    for chunk, data in steps:
        events = decoder.flush() if chunk is None else decoder.feed(chunk)
        assert [event.data for event in events] == data, (chunk, data)
    assert decoder.flush() == []


def test_comments_produce_nothing() -> None:
    assert decode([b": one\n: two\n\n:\n\n"]) == []


def test_unknown_fields_and_bad_retry_are_ignored() -> None:
    raw = b"foo: bar\nretry: soon\ndata: x\nid: a\x00b\n\n"
    assert decode([raw]) == [ServerSentEvent(data="x")]


#: Retry values the standard refuses (it takes only ASCII digits): int() would take the signs,
#: spaces, underscores and other scripts' digits, and raise on more digits than it converts.
NOT_A_RETRY = {
    "empty": "", "word": "soon", "decimal": "1.5", "minus": "-1", "plus": "+1", "space": " 1",
    "underscore": "1_000", "arabic": "\u0661\u0662", "superscript": "\u00b2", "huge": "1" * 5000,
}  # fmt: skip


@pytest.mark.parametrize("value", NOT_A_RETRY.values(), ids=NOT_A_RETRY.keys())
def test_retry_counts_only_when_all_ascii_digits(value: str) -> None:
    raw = f"retry: 7\ndata: a\n\nretry: {value}\ndata: b\n\n".encode()
    assert decode([raw]) == [ServerSentEvent(data="a", retry=7), ServerSentEvent(data="b")]


def test_retry_waits_for_the_next_event_dispatched() -> None:
    raw = b"retry: 100\n\n: nothing to dispatch above\ndata: x\n\ndata: y\n\n"
    assert decode([raw]) == [ServerSentEvent(data="x", retry=100), ServerSentEvent(data="y")]


def test_an_id_alone_sets_the_last_event_id() -> None:
    raw = b"data: a\n\nid: 5\n\ndata: b\n\nid\ndata: c\n\n"
    assert decode([raw]) == [
        ServerSentEvent(data="a"),
        ServerSentEvent(data="b", id="5"),
        ServerSentEvent(data="c", id=""),  # an empty id resets it to the empty string
    ]


def test_a_byte_order_mark_opening_the_stream_is_skipped() -> None:
    raw = "\ufeffdata: x\n\ndata: \ufeffy\n\n".encode()
    expected = [ServerSentEvent(data="x"), ServerSentEvent(data="\ufeffy")]
    assert decode([raw]) == expected
    assert decode(bytewise(raw)) == expected
    # Only at the start of the stream: a second one is part of the field name.
    assert decode(["\ufeff\ufeffdata: x\n\n".encode()]) == []


def test_only_cr_and_lf_end_lines() -> None:
    # str.splitlines() would also break at these; the standard does not.
    text = "a\x0bb\x0cc\x1cd\x1de\x1ef\x85g\u2028h\u2029i"
    assert decode([f"data: {text}\n\n".encode()]) == [ServerSentEvent(data=text)]


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


def test_a_long_last_line_in_many_chunks_without_its_ending_is_flushed() -> None:
    value = "x" * 100_000
    raw = f"event: big\ndata: {value}".encode()
    decoder = SSEDecoder()
    for start in range(0, len(raw), 1000):
        assert decoder.feed(raw[start : start + 1000]) == []
    assert decoder.flush() == [ServerSentEvent(event="big", data=value)]


async def test_aiter_sse_yields_the_last_event_without_its_blank_line() -> None:
    async def body() -> AsyncIterator[bytes]:
        for chunk in (b"data: one\r\n\r\nda", b"ta: two\r"):
            yield chunk

    assert [event async for event in aiter_sse(body())] == [
        ServerSentEvent(data="one"),
        ServerSentEvent(data="two"),
    ]


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


# -- linear in the input ---------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def growth(body: str, size: int) -> float:
    """Decoding 4x `body`'s size over 1x (`sse_growth.py`), in a fresh interpreter whose glibc
    keeps the memory it frees: about 4 if linear, 16 if quadratic, whatever the machine's
    speed or load."""
    keep = {"MALLOC_TRIM_THRESHOLD_": str(1 << 30), "MALLOC_MMAP_THRESHOLD_": str(1 << 25)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.providers.sse_growth", body, str(size)],
        cwd=ROOT,
        env={**os.environ, **keep},
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return float(done.stdout)


def test_one_long_line_in_many_chunks_decodes_in_linear_time() -> None:
    ratio = growth("long-line", 512 * 1024)  # the decoder that rescanned per chunk: 12-15x
    assert ratio < 6, f"4x the bytes took {ratio:.1f}x the time"


def test_many_events_in_one_chunk_decode_in_linear_time() -> None:
    ratio = growth("events", 10_000)  # the one that copied the rest per line: 16x
    assert ratio < 6, f"4x the events took {ratio:.1f}x the time"
