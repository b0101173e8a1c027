"""ChatCodec: the payload vocabulary round-trips, malformed maps are named, helpers build inputs."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ait
from ait.codec.chat import (
    AMENDMENT_TYPES,
    CHAT_EVENT_TYPES,
    ChatCodec,
    Data,
    Error,
    Finish,
    Metrics,
    ReasoningDelta,
    Start,
    TextDelta,
    ToolApprovalRequest,
    ToolApprovalResponse,
    ToolInputAvailable,
    ToolInputDelta,
    ToolInputStart,
    ToolOutputAvailable,
    ToolOutputError,
    Usage,
    wire_problem,
)

# -- strategies ---------------------------------------------------------------------------

ids = st.text(min_size=1, max_size=8)
texts = st.text(max_size=12)
maybe_texts = st.none() | texts
counts = st.none() | st.integers(min_value=0, max_value=2**40)
rates = st.none() | st.floats(min_value=0, max_value=1e9, allow_nan=False)
# What msgpack carries back as it was: no tuples, no NaN, string map keys.
json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
maybe_json = st.none() | json_like

EVENTS: dict[str, st.SearchStrategy[Any]] = {
    "start": st.builds(Start, metadata=st.none() | st.dictionaries(texts, json_like, max_size=3)),
    "text-delta": st.builds(TextDelta, id=ids, delta=texts),
    "reasoning-delta": st.builds(ReasoningDelta, id=ids, delta=texts),
    "tool-input-start": st.builds(ToolInputStart, id=ids, name=ids),
    "tool-input-delta": st.builds(ToolInputDelta, id=ids, delta=texts),
    "tool-input-available": st.builds(ToolInputAvailable, id=ids, name=ids, input=maybe_json),
    "tool-output-available": st.builds(ToolOutputAvailable, id=ids, output=maybe_json),
    "tool-output-error": st.builds(ToolOutputError, id=ids, error=texts),
    "tool-approval-request": st.builds(ToolApprovalRequest, id=ids),
    "tool-approval-response": st.builds(
        ToolApprovalResponse, id=ids, approved=st.booleans(), reason=maybe_texts
    ),
    "data": st.builds(Data, id=ids, name=ids, data=maybe_json),
    "usage": st.builds(Usage, prompt_tokens=counts, completion_tokens=counts),
    "metrics": st.builds(
        Metrics,
        time_to_first_token_ms=rates,
        tokens_per_second=rates,
        prompt_tokens_per_second=rates,
        queue_wait_ms=rates,
    ),
    "finish": st.builds(
        Finish,
        finish_reason=maybe_texts,
        status=st.sampled_from(["complete", "cancelled", "error"]),
    ),
    "error": st.builds(Error, code=ids, message=texts),
}
any_event = st.one_of(*EVENTS.values())


def test_the_strategies_cover_the_whole_vocabulary() -> None:
    assert set(EVENTS) == set(CHAT_EVENT_TYPES)


# -- round trip ---------------------------------------------------------------------------


@given(st.lists(any_event, max_size=6))
def test_encode_then_decode_gives_the_same_events(events: list[Any]) -> None:
    payload = ChatCodec.encode(events)
    assert ChatCodec.decode(payload) == events


@given(st.lists(any_event, max_size=6))
def test_the_round_trip_survives_msgpack(events: list[Any]) -> None:
    wire = msgpack.unpackb(msgpack.packb(ChatCodec.encode(events)), raw=False)
    assert ChatCodec.decode(wire) == events


@given(any_event)
def test_every_encoded_event_is_well_formed_on_the_wire(event: Any) -> None:
    (item,) = ChatCodec.encode([event])
    assert item["type"] == event.type
    assert None not in item.values()  # optional fields left out, not sent as nil
    assert wire_problem(item) is None


@pytest.mark.parametrize("kind", sorted(CHAT_EVENT_TYPES))
@settings(max_examples=25)
@given(data=st.data())
def test_each_event_type_round_trips(kind: str, data: st.DataObject) -> None:
    event = data.draw(EVENTS[kind])
    (decoded,) = ChatCodec.decode(ChatCodec.encode([event]))
    assert type(decoded) is CHAT_EVENT_TYPES[kind]
    assert decoded == event


# -- malformed maps -----------------------------------------------------------------------

VALID: dict[str, dict[str, Any]] = {
    "start": {"type": "start"},
    "text-delta": {"type": "text-delta", "id": "t0", "delta": "hi"},
    "reasoning-delta": {"type": "reasoning-delta", "id": "r0", "delta": "hm"},
    "tool-input-start": {"type": "tool-input-start", "id": "c1", "name": "calc"},
    "tool-input-delta": {"type": "tool-input-delta", "id": "c1", "delta": "{"},
    "tool-input-available": {"type": "tool-input-available", "id": "c1", "name": "calc"},
    "tool-output-available": {"type": "tool-output-available", "id": "c1", "output": 3},
    "tool-output-error": {"type": "tool-output-error", "id": "c1", "error": "boom"},
    "tool-approval-request": {"type": "tool-approval-request", "id": "c1"},
    "tool-approval-response": {"type": "tool-approval-response", "id": "c1", "approved": True},
    "data": {"type": "data", "id": "d1", "name": "chart", "data": [1, 2]},
    "usage": {"type": "usage", "prompt_tokens": 3},
    "metrics": {"type": "metrics", "tokens_per_second": 12.5},
    "finish": {"type": "finish", "status": "complete"},
    "error": {"type": "error", "code": "rate-limit", "message": "slow down"},
}

REQUIRED = [
    (kind, name)
    for kind, cls in CHAT_EVENT_TYPES.items()
    for name, required, _, _ in cls.wire_spec
    if required
]


def test_the_valid_samples_cover_the_vocabulary_and_are_valid() -> None:
    assert set(VALID) == set(CHAT_EVENT_TYPES)
    for item in VALID.values():
        assert wire_problem(item) is None
    assert len(ChatCodec.decode(list(VALID.values()))) == len(VALID)


@pytest.mark.parametrize("item", [None, "text-delta", 3, ["text-delta"], ("a", "b")])
def test_a_codec_event_must_be_a_map(item: object) -> None:
    assert wire_problem(item) == f"a codec event must be a map, not {type(item).__name__}"


@pytest.mark.parametrize(
    "item",
    [{"type": "text-chunk", "id": "t0", "delta": "x"}, {"id": "t0", "delta": "x"}, {"type": 1}],
)
def test_unknown_or_missing_types_are_refused(item: dict[str, Any]) -> None:
    assert wire_problem(item) == f"unknown codec event type {item.get('type')!r}"


@pytest.mark.parametrize(("kind", "name"), REQUIRED)
def test_a_missing_required_field_is_named(kind: str, name: str) -> None:
    item = {**VALID[kind]}
    del item[name]
    assert wire_problem(item) == f"{kind} misses {name!r}"
    item[name] = None  # msgpack nil is as good as absent
    assert wire_problem(item) == f"{kind} misses {name!r}"


@pytest.mark.parametrize(
    ("kind", "name", "value"),
    [
        ("text-delta", "delta", 5),
        ("text-delta", "id", 0),
        ("text-delta", "id", b"t0"),
        ("tool-approval-response", "approved", "yes"),
        ("tool-approval-response", "approved", 1),
        ("tool-approval-response", "reason", False),
        ("usage", "prompt_tokens", 1.5),
        ("usage", "completion_tokens", "7"),
        ("metrics", "tokens_per_second", "fast"),
        ("start", "metadata", ["a"]),
        ("finish", "finish_reason", 0),
        ("error", "message", {"text": "boom"}),
    ],
)
def test_a_field_of_the_wrong_type_is_refused(kind: str, name: str, value: object) -> None:
    item = {**VALID[kind], name: value}
    assert wire_problem(item) == f"{kind}: {name!r} has the wrong type or is empty ({value!r})"


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("text-delta", "id"),
        ("tool-input-start", "name"),
        ("tool-input-available", "name"),
        ("data", "name"),
        ("error", "code"),
    ],
)
def test_an_empty_id_name_or_code_is_refused(kind: str, name: str) -> None:
    assert wire_problem({**VALID[kind], name: ""}) is not None


def test_a_map_field_needs_string_keys() -> None:
    """msgpack carries integer keys; the models (and snapshots built from them) refuse them."""
    assert wire_problem({"type": "start", "metadata": {1: "x"}}) == (
        "start: 'metadata' must have string keys ({1: 'x'})"
    )
    assert wire_problem({"type": "data", "id": "d", "name": "n", "data": {1: "x"}}) is None


def test_an_empty_delta_is_fine() -> None:
    assert wire_problem({"type": "text-delta", "id": "t0", "delta": ""}) is None


@pytest.mark.parametrize("status", ["done", "streaming", "COMPLETE", ""])
def test_finish_status_is_one_of_the_terminal_statuses(status: str) -> None:
    problem = wire_problem({"type": "finish", "status": status})
    assert problem == (
        f"finish: 'status' is {status!r}; expected one of ['cancelled', 'complete', 'error']"
    )


@pytest.mark.parametrize("payload", [None, {"type": "text-delta"}, "text", b"x", 3])
def test_decode_wants_a_list(payload: object) -> None:
    with pytest.raises(ait.CodecError, match="must be a list"):
        ChatCodec.decode(payload)


@pytest.mark.parametrize(
    "item",
    [
        {"type": "finish", "status": "done"},
        {"type": "tool-input-start", "id": "c1"},
        {"type": "text-delta", "id": "", "delta": "x"},
        {"type": "nope"},
        "text-delta",
        {"type": "text-delta", "id": "t0", "delta": "x", "unknown-field": 1},
    ],
)
def test_decode_raises_codec_error_for_malformed_events(item: object) -> None:
    with pytest.raises(ait.CodecError):
        ChatCodec.decode([VALID["text-delta"], item])


scalars = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=5)
)
field_names = st.sampled_from(
    sorted({name for cls in CHAT_EVENT_TYPES.values() for name in cls.model_fields})
)
wire_maps = st.dictionaries(
    field_names,
    st.sampled_from(sorted(CHAT_EVENT_TYPES)) | scalars | st.lists(scalars, max_size=2),
    max_size=5,
)
garbage = st.recursive(
    scalars | wire_maps,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=10,
)


@given(st.lists(garbage, max_size=4) | garbage)
def test_decode_never_raises_anything_but_codec_error(payload: object) -> None:
    try:
        events = ChatCodec.decode(payload)
    except ait.CodecError:
        return
    assert isinstance(payload, list)
    assert [event.type for event in events] == [item["type"] for item in payload]


@given(
    st.sampled_from(sorted(CHAT_EVENT_TYPES)).flatmap(
        lambda kind: st.fixed_dictionaries(
            {"type": st.just(kind)},
            optional={
                name: scalars
                | st.dictionaries(st.text(max_size=3) | st.integers(0, 3), scalars, max_size=2)
                for name in CHAT_EVENT_TYPES[kind].model_fields
                if name != "type"
            },
        )
    )
)
def test_what_wire_problem_accepts_the_models_accept(item: dict[str, Any]) -> None:
    """The fold trusts `wire_problem` alone: it must never accept what the models refuse."""
    if wire_problem(item) is None:
        (event,) = ChatCodec.decode([item])
        assert event.type == item["type"]
    else:
        with pytest.raises(ait.CodecError):
            ChatCodec.decode([item])


# -- helpers ------------------------------------------------------------------------------


def test_user_text_is_one_text_part() -> None:
    assert ChatCodec.user_text("hi") == [{"type": "text-delta", "id": "t0", "delta": "hi"}]
    assert ChatCodec.decode(ChatCodec.user_text("hi", part_id="p9")) == [
        TextDelta(id="p9", delta="hi")
    ]


def test_tool_result_and_error_target_a_call() -> None:
    assert ChatCodec.decode(ChatCodec.tool_result("c1", {"sum": 3})) == [
        ToolOutputAvailable(id="c1", output={"sum": 3})
    ]
    assert ChatCodec.decode(ChatCodec.tool_error("c1", "division by zero")) == [
        ToolOutputError(id="c1", error="division by zero")
    ]


def test_approval_carries_the_reason_only_when_given() -> None:
    assert ChatCodec.approval("c1", True) == [
        {"type": "tool-approval-response", "id": "c1", "approved": True}
    ]
    assert ChatCodec.decode(ChatCodec.approval("c1", False, "too expensive")) == [
        ToolApprovalResponse(id="c1", approved=False, reason="too expensive")
    ]


def test_client_results_are_amendments_and_a_user_message_is_not() -> None:
    for payload in (
        ChatCodec.tool_result("c1", 1),
        ChatCodec.tool_error("c1", "x"),
        ChatCodec.approval("c1", True),
    ):
        assert {item["type"] for item in payload} <= AMENDMENT_TYPES
    assert not {item["type"] for item in ChatCodec.user_text("hi")} & AMENDMENT_TYPES
