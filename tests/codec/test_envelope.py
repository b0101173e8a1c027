"""The entry envelope (`v`, `t`, `h`, `d`) of docs/protocol.md: examples of every rule."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

import ait
from ait.codec import decode_entry, decode_or_bad, encode_event, entry_size
from ait.events import Cancel, Input, Output, RunEnd, RunResume, RunStart, RunSuspend

ENTRY_ID = "1700000000000-7"

# One valid header map per wire type, as another writer would put it on the stream.
HEADERS: dict[str, dict[str, str]] = {
    "input": {"event-id": "e1", "message-id": "m1", "role": "user", "client-id": "alice"},
    "run.start": {
        "run-id": "r1",
        "invocation-id": "i1",
        "input-event-id": "e1",
        "input-message-id": "m1",
        "run-client-id": "alice",
    },
    "run.resume": {
        "run-id": "r1",
        "invocation-id": "i2",
        "input-event-id": "e2",
        "input-message-id": "m2",
        "run-client-id": "alice",
    },
    "run.suspend": {"run-id": "r1", "invocation-id": "i1"},
    "run.end": {"run-id": "r1", "invocation-id": "i1", "reason": "complete"},
    "output": {"run-id": "r1", "message-id": "a1", "role": "assistant", "parent": "m1"},
    "cancel": {"event-id": "e9", "client-id": "alice", "run-id": "r1"},
}

# The same events as models.
EVENTS: dict[str, ait.Event] = {
    "input": Input(event_id="e1", message_id="m1", role="user", client_id="alice"),
    "run.start": RunStart(
        run_id="r1",
        invocation_id="i1",
        input_event_id="e1",
        input_message_id="m1",
        run_client_id="alice",
    ),
    "run.resume": RunResume(
        run_id="r1",
        invocation_id="i2",
        input_event_id="e2",
        input_message_id="m2",
        run_client_id="alice",
    ),
    "run.suspend": RunSuspend(run_id="r1", invocation_id="i1"),
    "run.end": RunEnd(run_id="r1", invocation_id="i1", reason="complete"),
    "output": Output(run_id="r1", message_id="a1", role="assistant", parent="m1"),
    "cancel": Cancel(event_id="e9", client_id="alice", run_id="r1"),
}
TYPES = sorted(HEADERS)


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def entry(t: bytes, headers: Any, payload: Any = None, *, raw_d: bytes | None = None) -> list[Any]:
    """The flat field list of an entry, as hiredis returns it."""
    fields: list[Any] = [b"v", b"1", b"t", t, b"h", pack(headers)]
    if raw_d is not None:
        fields += [b"d", raw_d]
    elif payload is not None:
        fields += [b"d", pack(payload)]
    return fields


def wire(type_name: str, **changes: Any) -> list[Any]:
    """A valid entry of `type_name` with headers changed (None drops one)."""
    headers: dict[str, Any] = {**HEADERS[type_name], **changes}
    headers = {k: v for k, v in headers.items() if v is not None}
    return entry(type_name.encode(), headers, [] if type_name == "output" else None)


def as_mapping(fields: list[Any]) -> dict[Any, Any]:
    return dict(zip(fields[0::2], fields[1::2], strict=True))


# -- encoding -----------------------------------------------------------------------------


def test_encode_layout() -> None:
    event = Input(
        event_id="e1",
        message_id="m1",
        role="user",
        client_id="alice",
        parent="m0",
        run_id="r1",
        payload=[{"type": "text", "text": "hi"}],
    )
    fields = encode_event(event)
    assert all(type(f) is bytes for f in fields)
    assert fields[0::2] == [b"v", b"t", b"h", b"d"]
    assert fields[1] == b"1"
    assert fields[3] == b"input"
    assert msgpack.unpackb(fields[5]) == {
        "event-id": "e1",
        "message-id": "m1",
        "role": "user",
        "client-id": "alice",
        "parent": "m0",
        "run-id": "r1",
    }
    assert msgpack.unpackb(fields[7]) == [{"type": "text", "text": "hi"}]


@pytest.mark.parametrize("type_name", TYPES)
def test_encode_writes_the_wire_headers_of_every_type(type_name: str) -> None:
    fields = encode_event(EVENTS[type_name])
    assert fields[:5] == [b"v", b"1", b"t", type_name.encode(), b"h"]
    assert msgpack.unpackb(fields[5]) == HEADERS[type_name]


@pytest.mark.parametrize("type_name", TYPES)
def test_encode_writes_d_only_with_a_payload(type_name: str) -> None:
    fields = encode_event(EVENTS[type_name])
    if type_name == "output":
        assert fields[6:] == [b"d", pack([])]
    else:
        assert len(fields) == 6
    with_payload = EVENTS[type_name].model_copy(update={"payload": [0]})
    assert encode_event(with_payload)[6:] == [b"d", pack([0])]


@pytest.mark.parametrize("payload", [0, False, "", {}, []])
def test_encode_writes_falsy_payloads(payload: Any) -> None:
    fields = encode_event(Input(**_input_kwargs(), payload=payload))
    assert fields[6] == b"d"
    assert msgpack.unpackb(fields[7]) == payload


def test_encode_leaves_out_absent_optional_headers() -> None:
    headers = msgpack.unpackb(encode_event(Input(**_input_kwargs()))[5])
    assert None not in headers.values()
    assert set(headers) == {"event-id", "message-id", "role", "client-id"}


def test_encode_writes_every_header_in_dash_case() -> None:
    event = RunStart(
        run_id="r",
        invocation_id="i",
        input_event_id="e",
        input_message_id="m",
        run_client_id="c",
        parent="p",
        fork_of="f",
        regenerate="g",
    )
    headers = msgpack.unpackb(encode_event(event)[5])
    assert sorted(headers) == [
        "fork-of",
        "input-event-id",
        "input-message-id",
        "invocation-id",
        "parent",
        "regenerate",
        "run-client-id",
        "run-id",
    ]


def test_encode_writes_extra_headers() -> None:
    event = RunSuspend(run_id="r1", invocation_id="i1", extra_headers={"x-trace": "t", "z": ""})
    headers = msgpack.unpackb(encode_event(event)[5])
    assert headers == {"run-id": "r1", "invocation-id": "i1", "x-trace": "t", "z": ""}


@pytest.mark.parametrize(
    "payload",
    [object(), {1, 2}, 2**64, -(2**63) - 1, [1, [2, {"k": object()}]], {"when": pytest}],
    ids=["object", "set", "u64-overflow", "i64-underflow", "nested-object", "module"],
)
def test_encode_refuses_a_payload_msgpack_cannot_pack(payload: Any) -> None:
    with pytest.raises(ait.CodecError, match="cannot encode input event as msgpack") as caught:
        encode_event(Input(**_input_kwargs(), payload=payload))
    assert caught.value.entry_id is None
    assert caught.value.reason.startswith("cannot encode input event as msgpack: ")


def test_a_failed_encode_leaves_the_encoder_usable() -> None:
    """The packer is shared: a payload that fails half-way must not leave bytes behind."""
    good = Input(**_input_kwargs(), payload=["after"])
    expected = encode_event(good)
    with pytest.raises(ait.CodecError):
        encode_event(Input(**_input_kwargs(), payload=["x" * 100, {"k": object()}]))
    assert encode_event(good) == expected
    assert decode_entry(ENTRY_ID, encode_event(good)) == good


def test_entry_size_counts_every_field_name_and_value() -> None:
    fields = encode_event(Output(run_id="r", message_id="a", role="assistant", parent="m"))
    h = pack({"run-id": "r", "message-id": "a", "role": "assistant", "parent": "m"})
    assert entry_size(fields) == len(b"v1t" + b"output" + b"h" + h + b"d" + b"\x90")
    assert entry_size([]) == 0
    big = Input(**_input_kwargs(), payload="x" * 100_000)
    assert 100_000 < entry_size(encode_event(big)) < 100_200


# -- decoding valid entries ---------------------------------------------------------------


@pytest.mark.parametrize("type_name", TYPES)
def test_decode_a_foreign_writers_entry(type_name: str) -> None:
    event = decode_entry(ENTRY_ID, wire(type_name))
    assert event == EVENTS[type_name]
    assert type(event) is type(EVENTS[type_name])


@pytest.mark.parametrize("type_name", TYPES)
def test_decode_a_mapping(type_name: str) -> None:
    event = decode_entry(ENTRY_ID, as_mapping(wire(type_name)))
    assert event == EVENTS[type_name]


@pytest.mark.parametrize("type_name", TYPES)
def test_decode_fields_in_another_order(type_name: str) -> None:
    fields = encode_event(EVENTS[type_name].model_copy(update={"payload": [1, "two"]}))
    pairs = list(zip(fields[0::2], fields[1::2], strict=True))
    for reordered in (
        pairs[::-1],
        pairs[1:] + pairs[:1],
        [pairs[2], pairs[0], *pairs[1:2], *pairs[3:]],
    ):
        flat = [part for pair in reordered for part in pair]
        assert decode_entry(ENTRY_ID, flat).payload == [1, "two"]
        assert decode_entry(ENTRY_ID, flat) == decode_entry(ENTRY_ID, fields)


def test_decode_a_tuple() -> None:
    assert decode_entry(ENTRY_ID, tuple(wire("run.end"))) == EVENTS["run.end"]


def test_decode_keeps_unknown_headers() -> None:
    fields = wire("run.suspend", **{"x-trace": "t1", "future-header": "", "a": "b"})
    event = decode_entry(ENTRY_ID, fields)
    assert event.extra_headers == {"x-trace": "t1", "future-header": "", "a": "b"}
    assert (event.run_id, event.invocation_id) == ("r1", "i1")


def test_decode_every_optional_header() -> None:
    fields = wire("input", parent="m0", **{"fork-of": "m1", "regenerate": "a1", "run-id": "r1"})
    event = decode_entry(ENTRY_ID, fields)
    assert isinstance(event, Input)
    assert (event.parent, event.fork_of, event.regenerate, event.run_id) == ("m0", "m1", "a1", "r1")
    assert event.extra_headers == {}


def test_decode_a_payload() -> None:
    payload = {"text": "h\u00e9llo", "n": -1, "big": 2**64 - 1, "f": 0.5, "raw": b"\x00\xff"}
    fields = entry(b"input", HEADERS["input"], payload)
    assert decode_entry(ENTRY_ID, fields).payload == payload


def test_lifecycle_payloads_round_trip() -> None:
    suspend = RunSuspend(run_id="r1", invocation_id="i1", payload={"awaiting": ["c1", "c2"]})
    decoded = decode_entry(ENTRY_ID, encode_event(suspend))
    assert isinstance(decoded, RunSuspend) and decoded.awaiting == ("c1", "c2")
    resume = entry(b"run.resume", HEADERS["run.resume"], {"answers": ["e2", "e5"]})
    decoded = decode_entry(ENTRY_ID, resume)
    assert isinstance(decoded, RunResume) and decoded.answers == ("e2", "e5")
    foreign = entry(b"run.suspend", HEADERS["run.suspend"], {"awaiting": 7})
    decoded = decode_entry(ENTRY_ID, foreign)  # kept, not a bad entry: the hint is optional
    assert isinstance(decoded, RunSuspend) and decoded.payload == {"awaiting": 7}
    assert decoded.awaiting == ()


def test_a_field_other_than_d_is_not_taken_for_the_payload() -> None:
    """Four fields whose last is not `d`: that value is no payload (`d` is missing)."""
    fields = [*entry(b"input", HEADERS["input"]), b"x", pack(["not", "d"])]
    assert decode_entry(ENTRY_ID, fields).payload is None
    output = [*entry(b"output", HEADERS["output"]), b"x", pack([])]
    with pytest.raises(ait.CodecError, match="misses field 'd'"):
        decode_entry(ENTRY_ID, output)


@pytest.mark.parametrize("reason", ["complete", "cancelled"])
def test_decode_run_end(reason: str) -> None:
    event = decode_entry(ENTRY_ID, wire("run.end", reason=reason))
    assert isinstance(event, RunEnd)
    assert event.reason == reason


def test_decode_run_end_with_an_error() -> None:
    fields = wire("run.end", reason="error", **{"error-code": "boom", "error-message": "it broke"})
    event = decode_entry(ENTRY_ID, fields)
    assert isinstance(event, RunEnd)
    assert (event.reason, event.error_code, event.error_message) == ("error", "boom", "it broke")


@pytest.mark.parametrize(
    "target",
    [{"run-id": "r1"}, {"input-message-id": "m1"}, {"scope": "client"}, {"scope": "all"}],
    ids=["run", "input", "client", "all"],
)
def test_decode_cancel_targets(target: dict[str, str]) -> None:
    headers = {"event-id": "e9", "client-id": "alice", **target}
    event = decode_entry(ENTRY_ID, entry(b"cancel", headers))
    assert event == Cancel(
        event_id="e9",
        client_id="alice",
        run_id=target.get("run-id"),
        input_message_id=target.get("input-message-id"),
        scope=target.get("scope"),  # pyright: ignore[reportArgumentType]
    )


@pytest.mark.parametrize("type_name", TYPES)
def test_decode_or_bad_returns_good_events(type_name: str) -> None:
    assert decode_or_bad(ENTRY_ID, wire(type_name)) == EVENTS[type_name]


@pytest.mark.parametrize("type_name", TYPES)
def test_decoded_events_are_valid_models(type_name: str) -> None:
    """The decoder skips pydantic: what it builds must still be what pydantic would build."""
    fields = wire(type_name, **{"x-extra": "1"})
    event = decode_entry(ENTRY_ID, fields)
    again = type(event).model_validate(event.model_dump())
    assert again == event
    assert again.model_dump() == event.model_dump()
    assert repr(again) == repr(event)
    assert event.model_copy(update={"payload": [9]}).payload == [9]


# -- decoding malformed entries -----------------------------------------------------------

_GOOD_H = pack(HEADERS["input"])

MALFORMED: list[tuple[str, Any, str]] = [
    # version and type
    ("version-2", [b"v", b"2", b"t", b"input", b"h", _GOOD_H], "unknown protocol version b'2'"),
    ("version-01", [b"v", b"01", b"t", b"input", b"h", _GOOD_H], "unknown protocol version"),
    ("version-missing", [b"t", b"input", b"h", _GOOD_H], "unknown protocol version None"),
    ("type-unknown", entry(b"run.pause", HEADERS["input"]), "unknown event type b'run.pause'"),
    ("type-case", entry(b"Input", HEADERS["input"]), "unknown event type"),
    ("type-missing", [b"v", b"1", b"h", _GOOD_H], "unknown event type None"),
    ("type-str", {b"v": b"1", b"t": "input", b"h": _GOOD_H}, "unknown event type 'input'"),
    ("type-bad-entry", entry(b"bad-entry", HEADERS["input"]), "unknown event type"),
    # h
    ("h-missing", [b"v", b"1", b"t", b"input"], "missing field 'h'"),
    ("h-reserved-byte", [b"v", b"1", b"t", b"input", b"h", b"\xc1"], "field 'h' is not msgpack"),
    ("h-truncated", [b"v", b"1", b"t", b"input", b"h", _GOOD_H[:-3]], "field 'h' is not msgpack"),
    ("h-trailing", [b"v", b"1", b"t", b"input", b"h", _GOOD_H + b"\x00"], "'h' is not msgpack"),
    ("h-empty", [b"v", b"1", b"t", b"input", b"h", b""], "field 'h' is not msgpack"),
    ("h-json", [b"v", b"1", b"t", b"input", b"h", b'{"role": "user"}'], "'h' is not msgpack"),
    ("h-int-keys", entry(b"input", {1: "x", **HEADERS["input"]}), "field 'h' is not msgpack"),
    ("h-list", entry(b"input", list(HEADERS["input"])), "'h' must be a msgpack map, not list"),
    ("h-str", entry(b"input", "event-id"), "'h' must be a msgpack map, not str"),
    ("h-nil", entry(b"input", None), "'h' must be a msgpack map, not NoneType"),
    ("h-str-type", {b"v": b"1", b"t": b"input", b"h": "x"}, "field 'h' is not msgpack"),
    # header values
    ("header-int", wire("input", role=5), "header 'role' must be a non-empty string, not 5"),
    ("header-empty", wire("input", role=""), "header 'role' must be a non-empty string"),
    ("header-bytes", wire("output", parent=b"m1"), "header 'parent' must be a non-empty"),
    ("header-list", wire("run.suspend", **{"run-id": ["r"]}), "header 'run-id' must be"),
    ("header-bool", wire("cancel", scope=True), "header 'scope' must be"),
    ("optional-empty", wire("input", parent=""), "header 'parent' must be a non-empty string"),
    ("extra-int", wire("input", **{"x-n": 1}), "header 'x-n': 1 is not a string pair"),
    ("extra-bytes-key", entry(b"input", {**HEADERS["input"], b"k": "v"}), "b'k': 'v' is not"),
    ("extra-bytes-value", wire("input", k=b"v"), "header 'k': b'v' is not a string"),
    # named header given as nil: a map of str to str has no nil
    ("required-nil", entry(b"input", {**HEADERS["input"], "role": None}), "header 'role'"),
    ("optional-nil", entry(b"input", {**HEADERS["input"], "parent": None}), "header 'parent'"),
    ("extra-nil", entry(b"input", {**HEADERS["input"], "x": None}), "header 'x': None"),
    # Literal headers
    ("reason-unknown", wire("run.end", reason="done"), "header 'reason' is 'done'; expected one"),
    ("reason-case", wire("run.end", reason="Complete"), "expected one of"),
    ("scope-unknown", wire("cancel", **{"run-id": None, "scope": "everyone"}), "'scope' is"),
    # rules across headers
    ("error-bare", wire("run.end", reason="error"), "needs error-code and error-message"),
    (
        "error-no-message",
        wire("run.end", reason="error", **{"error-code": "boom"}),
        "run.end with reason 'error' needs error-code and error-message",
    ),
    (
        "error-no-code",
        wire("run.end", reason="error", **{"error-message": "it broke"}),
        "needs error-code and error-message",
    ),
    ("cancel-no-target", wire("cancel", **{"run-id": None}), "cancel needs exactly one of"),
    ("cancel-two", wire("cancel", scope="all"), "exactly one of run-id, input-message-id or scope"),
    (
        "cancel-three",
        wire("cancel", scope="client", **{"input-message-id": "m1"}),
        "cancel needs exactly one of",
    ),
    # d
    ("output-no-d", entry(b"output", HEADERS["output"]), "output event misses field 'd'"),
    ("output-d-map", entry(b"output", HEADERS["output"], {"a": 1}), "must be a list, not dict"),
    ("output-d-int", entry(b"output", HEADERS["output"], 7), "output payload must be a list"),
    ("output-d-nil", entry(b"output", HEADERS["output"], raw_d=b"\xc0"), "not NoneType"),
    ("output-d-junk", entry(b"output", HEADERS["output"], raw_d=b"\xc1"), "'d' is not msgpack"),
    ("input-d-junk", entry(b"input", HEADERS["input"], raw_d=b"\x92\x01"), "'d' is not msgpack"),
    ("input-d-empty", entry(b"input", HEADERS["input"], raw_d=b""), "field 'd' is not msgpack"),
    # the field list itself
    ("odd-list", [b"v", b"1", b"t", b"input", b"h"], "odd number of field names and values"),
    ("odd-list-7", [*wire("input"), b"d"], "odd number of field names and values"),
    ("one-field", [b"v"], "odd number"),
    ("empty-list", [], "unknown protocol version None"),
    ("empty-map", {}, "unknown protocol version None"),
    ("str-keys", {"v": b"1", "t": b"input", "h": _GOOD_H}, "unknown protocol version None"),
    # non-bytes junk
    ("junk-none", None, "undecodable entry"),
    ("junk-int", 42, "undecodable entry"),
    ("junk-object", object(), "undecodable entry"),
    ("junk-generator", (f for f in wire("input")), "undecodable entry"),
    ("junk-bytes", b"v1tinputh", "odd number"),
    ("junk-str", "v1tinputhh", "unknown protocol version"),
    ("junk-items", [None, None, 1, 2, 3.0, object()], "unknown protocol version None"),
    ("junk-v", [b"v", 1, b"t", b"input", b"h", _GOOD_H], "unknown protocol version 1"),
    ("junk-h", [b"v", b"1", b"t", b"input", b"h", 12], "field 'h' is not msgpack"),
    ("junk-d", [*entry(b"input", HEADERS["input"]), b"d", 3.5], "field 'd' is not msgpack"),
]


@pytest.mark.parametrize(
    ("fields", "reason"), [(f, r) for _, f, r in MALFORMED], ids=[i for i, _, _ in MALFORMED]
)
def test_decode_entry_refuses_malformed_entries(fields: Any, reason: str) -> None:
    with pytest.raises(ait.CodecError) as caught:
        decode_entry(ENTRY_ID, fields)
    error = caught.value
    assert type(error) is ait.CodecError
    assert error.entry_id == ENTRY_ID
    assert reason in error.reason
    assert str(error) == f"entry {ENTRY_ID}: {error.reason}"
    # Foreign exceptions (msgpack's, TypeError) do not show through the chain.
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


@pytest.mark.parametrize(
    ("fields", "reason"), [(f, r) for _, f, r in MALFORMED], ids=[i for i, _, _ in MALFORMED]
)
def test_decode_or_bad_reports_malformed_entries(fields: Any, reason: str) -> None:
    if hasattr(fields, "__next__"):  # a generator is used up by the first decode
        fields = (f for f in wire("input"))
    bad = decode_or_bad(ENTRY_ID, fields)
    assert isinstance(bad, ait.BadEntry)
    assert bad.entry_id == ENTRY_ID
    assert reason in bad.reason
    if hasattr(fields, "__next__"):
        fields = (f for f in wire("input"))
    with pytest.raises(ait.CodecError) as caught:
        decode_entry(ENTRY_ID, fields)
    assert bad.reason == caught.value.reason
    assert all(type(k) is bytes and type(v) is bytes for k, v in bad.fields.items())


def test_bad_entry_keeps_the_raw_fields() -> None:
    fields = entry(b"run.pause", {"run-id": "r1"})
    bad = decode_or_bad(ENTRY_ID, fields)
    assert isinstance(bad, ait.BadEntry)
    assert bad.fields == as_mapping(fields)
    assert bad.reason == "unknown event type b'run.pause'"


def test_bad_entry_drops_what_is_not_bytes() -> None:
    bad = decode_or_bad(ENTRY_ID, [b"v", b"9", b"t", 5, 6, b"h", b"x", b"y"])
    assert isinstance(bad, ait.BadEntry)
    assert bad.fields == {b"v": b"9", b"x": b"y"}


def _input_kwargs() -> dict[str, str]:
    return {"event_id": "e1", "message_id": "m1", "role": "user", "client_id": "alice"}


def test_payload_with_integer_map_keys_round_trips() -> None:
    """The encoder accepts integer keys, so every reader must decode them too."""
    event = ait.Input(
        event_id="e", message_id="m", role="user", client_id="c", payload={1: "one", "k": [2]}
    )
    assert decode_entry("1-0", encode_event(event)) == event


# -- headers checked once per message -------------------------------------------------------


def test_entries_sharing_headers_decode_to_independent_events() -> None:
    """The checked headers of a message are reused for its next entries; nothing a caller
    does to one decoded event may leak into the next."""
    fields = encode_event(
        Output(
            run_id="r1",
            message_id="m1",
            role="assistant",
            parent="u1",
            payload=[{"type": "text-delta", "id": "t1", "delta": "a"}],
            extra_headers={"x-trace": "abc"},
        )
    )
    first = decode_entry("1-0", fields)
    first.extra_headers["x-trace"] = "changed"
    first.payload.append("changed")
    second = decode_entry("2-0", fields)
    assert isinstance(second, Output)
    assert second.extra_headers == {"x-trace": "abc"}
    assert second.payload == [{"type": "text-delta", "id": "t1", "delta": "a"}]
    assert (second.run_id, second.message_id, second.parent) == ("r1", "m1", "u1")


def test_the_same_header_bytes_under_another_type_are_checked_for_that_type() -> None:
    output = encode_event(
        Output(run_id="r1", message_id="m1", role="assistant", parent="u1", payload=[])
    )
    decode_entry("1-0", output)
    as_run_start = [b"v", output[1], b"t", b"run.start", b"h", output[5]]
    with pytest.raises(ait.CodecError, match="run.start event misses header"):
        decode_entry("2-0", as_run_start)


def test_bad_headers_fail_every_time() -> None:
    bad = [b"v", b"1", b"t", b"output", b"h", msgpack.packb({"run-id": "r1"})]
    for entry_id in ("1-0", "2-0"):
        with pytest.raises(ait.CodecError) as info:
            decode_entry(entry_id, bad + [b"d", msgpack.packb([])])
        assert info.value.entry_id == entry_id


# -- the resend key `k` -------------------------------------------------------------------


@pytest.mark.parametrize("type_name", TYPES)
def test_a_resend_key_travels_as_field_k(type_name: str) -> None:
    event = EVENTS[type_name].model_copy(update={"entry_key": "3f2a9c0d1e4b5a67-1c"})
    fields = encode_event(event)
    assert fields[-2:] == [b"k", b"3f2a9c0d1e4b5a67-1c"]
    for shape in (fields, as_mapping(fields), tuple(fields)):
        decoded = decode_entry(ENTRY_ID, shape)
        assert decoded == event
        assert decoded.entry_key == "3f2a9c0d1e4b5a67-1c"
    assert decode_entry(ENTRY_ID, fields) != EVENTS[type_name]  # a key is part of the entry
    assert decode_entry(ENTRY_ID, wire(type_name)).entry_key is None
    assert "entry_key" not in repr(event)


def test_a_keyed_delta_keeps_the_checked_headers_of_its_message() -> None:
    """Keys vary per entry, headers do not: the headers of one message are checked once
    and the key read apart, so two entries never share a key by way of a cache."""
    first = encode_event(EVENTS["output"].model_copy(update={"payload": [1], "entry_key": "a"}))
    second = [*first[:-1], b"b"]
    assert decode_entry(ENTRY_ID, first).entry_key == "a"
    assert decode_entry(ENTRY_ID, second).entry_key == "b"
    assert decode_entry(ENTRY_ID, first[:-2]).entry_key is None


@pytest.mark.parametrize("raw", [b"", b"\xff\xfe"])
def test_a_broken_resend_key_makes_a_bad_entry(raw: bytes) -> None:
    fields = [*encode_event(EVENTS["output"]), b"k", raw]
    with pytest.raises(ait.CodecError, match="field 'k'"):
        decode_entry(ENTRY_ID, fields)
    assert isinstance(decode_or_bad(ENTRY_ID, fields), ait.BadEntry)
