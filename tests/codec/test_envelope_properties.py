"""Properties of the envelope: every event round-trips, and no entry makes a reader crash."""

from __future__ import annotations

from typing import Any

import msgpack
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ait
from ait.codec import decode_entry, decode_or_bad, encode_event, entry_size
from ait.events import EVENT_TYPES, Cancel, Input, Output, RunEnd, RunResume, RunStart, RunSuspend

ENTRY_ID = "1700000000000-0"
CLASSES = list(EVENT_TYPES.values())
ALL_HEADERS = sorted({header for cls in CLASSES for header in cls.header_names})

# -- strategies ---------------------------------------------------------------------------

ids = st.text(min_size=1, max_size=12) | st.uuids().map(lambda u: u.hex)
maybe_ids = st.none() | ids

# What msgpack carries back unchanged: no tuples (they come back as lists), no NaN (never
# equal to itself), map keys str or bytes (msgpack refuses other keys when it unpacks).
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
payloads = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.binary(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


def extra_headers(cls: type[Any]) -> st.SearchStrategy[dict[str, str]]:
    keys = st.from_regex(r"\A[a-z][a-z0-9-]{0,15}\Z") | st.text(max_size=10)
    return st.dictionaries(
        keys.filter(lambda k: k not in cls.header_names), st.text(max_size=10), max_size=3
    )


def common(cls: type[Any]) -> dict[str, st.SearchStrategy[Any]]:
    return {"extra_headers": extra_headers(cls), "payload": st.none() | payloads}


inputs = st.builds(
    Input,
    event_id=ids,
    message_id=ids,
    role=st.sampled_from(["user", "tool", "system"]) | ids,
    client_id=ids,
    parent=maybe_ids,
    fork_of=maybe_ids,
    regenerate=maybe_ids,
    run_id=maybe_ids,
    **common(Input),
)
run_starts = st.builds(
    RunStart,
    run_id=ids,
    invocation_id=ids,
    input_event_id=ids,
    input_message_id=ids,
    run_client_id=ids,
    parent=maybe_ids,
    fork_of=maybe_ids,
    regenerate=maybe_ids,
    **common(RunStart),
)
run_resumes = st.builds(
    RunResume,
    run_id=ids,
    invocation_id=ids,
    input_event_id=ids,
    input_message_id=ids,
    run_client_id=ids,
    **common(RunResume),
)
run_suspends = st.builds(RunSuspend, run_id=ids, invocation_id=ids, **common(RunSuspend))


@st.composite
def run_ends(draw: st.DrawFn) -> RunEnd:
    reason = draw(st.sampled_from(["complete", "cancelled", "error"]))
    needed = ids if reason == "error" else maybe_ids
    return RunEnd(
        run_id=draw(ids),
        invocation_id=draw(ids),
        reason=reason,  # pyright: ignore[reportArgumentType]
        error_code=draw(needed),
        error_message=draw(needed),
        extra_headers=draw(extra_headers(RunEnd)),
        payload=draw(st.none() | payloads),
    )


outputs = st.builds(
    Output,
    run_id=ids,
    message_id=ids,
    role=ids,
    parent=ids,
    extra_headers=extra_headers(Output),
    payload=st.lists(payloads, max_size=6),
)


@st.composite
def cancels(draw: st.DrawFn) -> Cancel:
    field = draw(st.sampled_from(["run_id", "input_message_id", "scope"]))
    value = draw(st.sampled_from(["client", "all"]) if field == "scope" else ids)
    return Cancel(
        event_id=draw(ids),
        client_id=draw(ids),
        extra_headers=draw(extra_headers(Cancel)),
        payload=draw(st.none() | payloads),
        **{field: value},
    )


BY_CLASS: dict[type[Any], st.SearchStrategy[Any]] = {
    Input: inputs,
    RunStart: run_starts,
    RunResume: run_resumes,
    RunSuspend: run_suspends,
    RunEnd: run_ends(),
    Output: outputs,
    Cancel: cancels(),
}
events: st.SearchStrategy[Any] = st.one_of(*BY_CLASS.values())


def test_there_is_a_strategy_for_every_event_type() -> None:
    assert set(BY_CLASS) == set(CLASSES)


# -- round trip ---------------------------------------------------------------------------


def _check_round_trip(event: Any, order: list[int]) -> None:
    fields = encode_event(event)
    assert all(type(f) is bytes for f in fields)
    assert entry_size(fields) == sum(len(f) for f in fields)

    decoded = decode_entry(ENTRY_ID, fields)
    assert type(decoded) is type(event)
    assert decoded == event
    assert decoded.model_dump() == event.model_dump()

    # As a mapping, and with the fields in another order than the writer's.
    mapping = dict(zip(fields[0::2], fields[1::2], strict=True))
    assert decode_entry(ENTRY_ID, mapping) == event
    pairs = list(mapping.items())
    shuffled = [part for i in order if i < len(pairs) for part in pairs[i]]
    assert decode_entry(ENTRY_ID, shuffled) == event

    assert decode_or_bad(ENTRY_ID, fields) == event
    # Encoding is deterministic: what was decoded encodes to the same bytes.
    assert encode_event(decoded) == fields


@given(event=events, order=st.permutations(range(4)))
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_every_event_round_trips(event: Any, order: list[int]) -> None:
    _check_round_trip(event, order)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@given(data=st.data(), order=st.permutations(range(4)))
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
def test_each_event_type_round_trips(cls: type[Any], data: st.DataObject, order: list[int]) -> None:
    event = data.draw(BY_CLASS[cls])
    assert type(event) is cls
    _check_round_trip(event, order)


@given(event=events)
@settings(max_examples=200)
def test_decoded_events_pass_pydantic_validation(event: Any) -> None:
    decoded = decode_entry(ENTRY_ID, encode_event(event))
    assert type(decoded).model_validate(decoded.model_dump()) == decoded
    # Same fields in the same order: it dumps and prints like the event it came from.
    assert list(decoded.model_dump()) == list(event.model_dump())
    assert repr(decoded) == repr(event)


# -- the decoder checks what pydantic checks ----------------------------------------------

header_values = (
    ids
    | st.sampled_from(["complete", "cancelled", "error", "client", "all", ""])
    | st.none()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.binary(max_size=4)
    | st.lists(st.text(max_size=2), max_size=2)
)


@st.composite
def header_maps(draw: st.DrawFn, cls: type[Any]) -> dict[str, Any]:
    """Headers of `cls`, each absent, valid, or wrong; plus unknown ones."""
    headers: dict[str, Any] = {}
    for _, header, _, _ in cls.header_table:
        if draw(st.integers(0, 4)):  # present four times out of five
            headers[header] = draw(header_values)
    headers.update(draw(st.dictionaries(st.text(max_size=6), st.text(max_size=4), max_size=2)))
    return headers


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@given(data=st.data())
@settings(max_examples=150)
def test_decoder_agrees_with_pydantic(cls: type[Any], data: st.DataObject) -> None:
    """An entry decodes exactly when pydantic accepts its headers as the model's fields."""
    headers = data.draw(header_maps(cls))
    payload = data.draw(st.none() | st.lists(scalars, max_size=2) | scalars)
    fields = [b"v", b"1", b"t", cls.model_fields["type"].default.encode(), b"h"]
    fields.append(msgpack.packb(headers, use_bin_type=True))
    if payload is not None:
        fields += [b"d", msgpack.packb(payload, use_bin_type=True)]

    kwargs: dict[str, Any] = {"extra_headers": {}, "payload": payload}
    on_the_wire_ok = True
    for key, value in headers.items():
        field = key.replace("-", "_")
        if key in cls.header_names:
            kwargs[field] = value
            # Headers are a map of str to str: nil is no value, not an absent header.
            on_the_wire_ok &= type(value) is str
        else:
            kwargs["extra_headers"][key] = value
    if cls is Output and payload is None:
        del kwargs["payload"]
        on_the_wire_ok = False  # an output always has its d
    try:
        expected = cls.model_validate(kwargs, strict=True)
    except pydantic.ValidationError:
        expected = None

    try:
        decoded = decode_entry(ENTRY_ID, fields)
    except ait.CodecError as error:
        assert error.entry_id == ENTRY_ID
        assert expected is None or not on_the_wire_ok, (expected, error.reason)
    else:
        assert on_the_wire_ok
        assert decoded == expected


# -- hostile entries ----------------------------------------------------------------------

field_names = st.sampled_from([b"v", b"t", b"h", b"d"]) | st.binary(max_size=3)
type_names = st.sampled_from([name.encode() for name in EVENT_TYPES]) | st.binary(max_size=10)
msgpack_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(ALL_HEADERS) | st.text(max_size=6), inner, max_size=6)
    ),
    max_leaves=10,
)
packed = msgpack_values.map(lambda v: msgpack.packb(v, use_bin_type=True))
field_values = (
    st.sampled_from([b"1", b"", b"\xc0", b"\x80", b"\x90"]) | type_names | st.binary() | packed
)


@st.composite
def garbage_headers(draw: st.DrawFn) -> bytes:
    """`h` that is almost right: a map of known and unknown headers to odd values."""
    keys = st.sampled_from(ALL_HEADERS) | st.text(max_size=6) | st.binary(max_size=3)
    values = header_values | st.sampled_from(["complete", "error", "all"]) | msgpack_values
    headers = draw(st.dictionaries(keys, values, max_size=10))
    raw = msgpack.packb(headers, use_bin_type=True)
    if draw(st.booleans()):  # damage it
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut] + draw(st.binary(max_size=3)) + raw[cut + 1 :]
    return raw


@st.composite
def almost_valid(draw: st.DrawFn) -> list[Any]:
    """Valid `v` and `t` with garbage `h` and `d`."""
    fields: list[Any] = [b"v", b"1", b"t", draw(type_names), b"h", draw(garbage_headers())]
    if draw(st.booleans()):
        fields += [b"d", draw(field_values)]
    return fields


@st.composite
def damaged(draw: st.DrawFn) -> list[bytes]:
    """A valid entry with a byte of one value changed, cut, or dropped."""
    fields = list(encode_event(draw(events)))
    i = draw(st.sampled_from(range(1, len(fields), 2)))
    value = fields[i]
    at = draw(st.integers(0, max(len(value) - 1, 0)))
    fields[i] = draw(
        st.sampled_from(
            [
                value[:at],
                value[:at] + bytes([(value[at : at + 1] or b"\x00")[0] ^ 0xFF]) + value[at + 1 :],
                value + b"\x00",
            ]
        )
    )
    return fields


junk = st.one_of(
    st.lists(st.tuples(field_names, field_values), max_size=6).map(
        lambda pairs: [part for pair in pairs for part in pair]
    ),
    st.dictionaries(field_names, field_values, max_size=6),
    st.lists(field_names | field_values, max_size=9),  # often odd-length
    almost_valid(),
    almost_valid().map(lambda f: dict(zip(f[0::2], f[1::2], strict=True))),
    damaged(),
    st.lists(st.none() | st.integers() | st.text(max_size=3) | st.binary(max_size=3), max_size=8),
    st.none() | st.integers() | st.text(max_size=8) | st.binary(max_size=8),
)


@given(fields=junk)
@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
def test_hostile_entries_raise_only_codec_error(fields: Any) -> None:
    try:
        event = decode_entry(ENTRY_ID, fields)
    except ait.CodecError as error:
        assert type(error) is ait.CodecError
        assert error.entry_id == ENTRY_ID
        assert error.reason
        reason: str | None = error.reason
    else:
        reason = None
        assert type(event) in CLASSES
        # Whatever the decoder accepts, pydantic accepts too.
        assert type(event).model_validate(event.model_dump()) == event

    result = decode_or_bad(ENTRY_ID, fields)
    if reason is None:
        assert result == event
    else:
        assert isinstance(result, ait.BadEntry)
        assert result.entry_id == ENTRY_ID
        assert result.reason == reason
