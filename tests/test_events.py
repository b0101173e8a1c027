"""The transport event models: their wire headers, defaults and validation rules."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

import ait
from ait.events import (
    EVENT_TYPES,
    BadEntry,
    Cancel,
    Input,
    Output,
    RunEnd,
    RunResume,
    RunStart,
    RunSuspend,
)

# The table of docs/protocol.md, written out by hand: type -> (required, optional) headers.
PROTOCOL_HEADERS: dict[str, tuple[set[str], set[str]]] = {
    "input": (
        {"event-id", "message-id", "role", "client-id"},
        {"parent", "fork-of", "regenerate", "run-id", "multitask"},
    ),
    "run.start": (
        {"run-id", "invocation-id", "input-event-id", "input-message-id", "run-client-id"},
        {"parent", "fork-of", "regenerate"},
    ),
    "run.resume": (
        {"run-id", "invocation-id", "input-event-id", "input-message-id", "run-client-id"},
        set(),
    ),
    "run.suspend": ({"run-id", "invocation-id"}, set()),
    "run.end": ({"run-id", "invocation-id", "reason"}, {"error-code", "error-message"}),
    "output": ({"run-id", "message-id", "role", "parent"}, set()),
    "cancel": ({"event-id", "client-id"}, {"run-id", "input-message-id", "scope"}),
}

# The smallest valid keyword arguments of each event type.
MINIMAL: dict[type[Any], dict[str, Any]] = {
    Input: {"event_id": "e1", "message_id": "m1", "role": "user", "client_id": "alice"},
    RunStart: {
        "run_id": "r1",
        "invocation_id": "i1",
        "input_event_id": "e1",
        "input_message_id": "m1",
        "run_client_id": "alice",
    },
    RunResume: {
        "run_id": "r1",
        "invocation_id": "i2",
        "input_event_id": "e2",
        "input_message_id": "m2",
        "run_client_id": "alice",
    },
    RunSuspend: {"run_id": "r1", "invocation_id": "i1"},
    RunEnd: {"run_id": "r1", "invocation_id": "i1", "reason": "complete"},
    Output: {"run_id": "r1", "message_id": "a1", "role": "assistant", "parent": "m1"},
    Cancel: {"event_id": "e9", "client_id": "alice", "scope": "all"},
}
CLASSES = list(MINIMAL)


def ids(cls: type[Any]) -> str:
    return cls.__name__


def test_event_types_maps_every_wire_type_to_its_class() -> None:
    assert dict(EVENT_TYPES) == {
        "input": Input,
        "run.start": RunStart,
        "run.resume": RunResume,
        "run.suspend": RunSuspend,
        "run.end": RunEnd,
        "output": Output,
        "cancel": Cancel,
    }
    for name, cls in EVENT_TYPES.items():
        assert cls(**MINIMAL[cls]).type == name


@pytest.mark.parametrize("type_name", sorted(PROTOCOL_HEADERS))
def test_header_table_matches_the_protocol(type_name: str) -> None:
    cls = EVENT_TYPES[type_name]
    required, optional = PROTOCOL_HEADERS[type_name]
    assert {header for _, header, req, _ in cls.header_table if req} == required
    assert {header for _, header, req, _ in cls.header_table if not req} == optional
    assert cls.header_names == required | optional
    for field, header, _, _ in cls.header_table:
        assert header == field.replace("_", "-")
        assert header.islower()


def test_header_table_knows_the_allowed_values_of_literal_headers() -> None:
    allowed = {
        (cls.__name__, header): values
        for cls in CLASSES
        for _, header, _, values in cls.header_table
        if values is not None
    }
    assert allowed == {
        ("RunEnd", "reason"): frozenset({"complete", "cancelled", "error"}),
        ("Cancel", "scope"): frozenset({"client", "all"}),
        ("Input", "multitask"): frozenset({"parallel", "interrupt", "enqueue", "reject"}),
    }


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_defaults(cls: type[Any]) -> None:
    event = cls(**MINIMAL[cls])
    assert event.extra_headers == {}
    assert event.payload == ([] if cls is Output else None)
    for field, _, required, _ in cls.header_table:
        if not required and field not in MINIMAL[cls]:
            assert getattr(event, field) is None


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_events_are_frozen(cls: type[Any]) -> None:
    event = cls(**MINIMAL[cls])
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        event.payload = [1]  # pyright: ignore
    field = next(iter(MINIMAL[cls]))
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        setattr(event, field, "changed")
    assert getattr(event, field) == MINIMAL[cls][field]


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_unknown_fields_are_refused(cls: type[Any]) -> None:
    with pytest.raises(pydantic.ValidationError, match="extra"):
        cls(**MINIMAL[cls], colour="blue")


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_the_type_cannot_be_another_events(cls: type[Any]) -> None:
    own = cls(**MINIMAL[cls]).type
    assert cls(**MINIMAL[cls], type=own).type == own
    other = "cancel" if own != "cancel" else "input"
    with pytest.raises(pydantic.ValidationError):
        cls(**MINIMAL[cls], type=other)


@pytest.mark.parametrize(
    ("cls", "field"),
    [(cls, field) for cls in CLASSES for field in MINIMAL[cls]],
    ids=lambda x: x.__name__ if isinstance(x, type) else x,
)
def test_ids_must_not_be_empty(cls: type[Any], field: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        cls(**{**MINIMAL[cls], field: ""})


@pytest.mark.parametrize(
    ("cls", "field"),
    [(cls, field) for cls in CLASSES for field, _, req, _ in cls.header_table if req],
    ids=lambda x: x.__name__ if isinstance(x, type) else x,
)
def test_required_headers_are_required(cls: type[Any], field: str) -> None:
    kwargs = dict(MINIMAL[cls])
    del kwargs[field]
    with pytest.raises(pydantic.ValidationError, match=field):
        cls(**kwargs)


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
@pytest.mark.parametrize("value", [1, 1.5, ["x"], {"x": "y"}])
def test_headers_must_be_strings(cls: type[Any], value: object) -> None:
    field = next(iter(MINIMAL[cls]))
    with pytest.raises(pydantic.ValidationError):
        cls(**{**MINIMAL[cls], field: value})


@pytest.mark.parametrize(
    ("cls", "header"),
    [(cls, header) for cls in CLASSES for _, header, _, _ in cls.header_table],
    ids=lambda x: x.__name__ if isinstance(x, type) else x,
)
def test_extra_headers_must_not_repeat_a_named_header(cls: type[Any], header: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="extra_headers repeat named headers"):
        cls(**MINIMAL[cls], extra_headers={header: "x"})


def test_extra_headers_are_kept() -> None:
    event = Input(**MINIMAL[Input], extra_headers={"trace-id": "t1", "x-future": ""})
    assert event.extra_headers == {"trace-id": "t1", "x-future": ""}


@pytest.mark.parametrize("extra", [{"trace-id": 1}, {1: "x"}, {"trace-id": None}])
def test_extra_headers_are_strings(extra: dict[Any, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        Input(**MINIMAL[Input], extra_headers=extra)


def test_input_with_every_optional_header() -> None:
    event = Input(
        **MINIMAL[Input], parent="m0", fork_of="m1", regenerate="a1", run_id="r1", payload={"k": 1}
    )
    assert (event.parent, event.fork_of, event.regenerate, event.run_id) == ("m0", "m1", "a1", "r1")
    assert event.payload == {"k": 1}


def test_run_resume_has_no_place_in_the_tree() -> None:
    """A resumed run keeps the place its run.start gave it: no parent, fork-of or regenerate."""
    for field in ("parent", "fork_of", "regenerate"):
        with pytest.raises(pydantic.ValidationError):
            RunResume(**MINIMAL[RunResume], **{field: "m0"})


@pytest.mark.parametrize("reason", ["complete", "cancelled", "error"])
def test_run_end_reasons(reason: str) -> None:
    event = RunEnd(
        run_id="r1", invocation_id="i1", reason=reason, error_code="c", error_message="m"
    )  # pyright: ignore[reportArgumentType]
    assert event.reason == reason


@pytest.mark.parametrize("reason", ["done", "", "Complete", "errored"])
def test_run_end_reason_out_of_range(reason: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        RunEnd(run_id="r1", invocation_id="i1", reason=reason)  # pyright: ignore[reportArgumentType]


@pytest.mark.parametrize(
    "error",
    [{}, {"error_code": "boom"}, {"error_message": "it broke"}],
    ids=["none", "code", "msg"],
)
def test_run_end_error_needs_code_and_message(error: dict[str, str]) -> None:
    with pytest.raises(pydantic.ValidationError, match="needs error-code and error-message"):
        RunEnd(run_id="r1", invocation_id="i1", reason="error", **error)


def test_run_end_error_with_code_and_message() -> None:
    event = RunEnd(
        run_id="r1", invocation_id="i1", reason="error", error_code="boom", error_message="broke"
    )
    assert (event.error_code, event.error_message) == ("boom", "broke")


@pytest.mark.parametrize(
    "target",
    [{"run_id": "r1"}, {"input_message_id": "m1"}, {"scope": "client"}, {"scope": "all"}],
    ids=["run", "input", "client", "all"],
)
def test_cancel_with_one_target(target: dict[str, str]) -> None:
    event = Cancel(event_id="e1", client_id="alice", **target)
    for field in ("run_id", "input_message_id", "scope"):
        assert getattr(event, field) == target.get(field)


@pytest.mark.parametrize(
    "targets",
    [
        {},
        {"run_id": "r1", "input_message_id": "m1"},
        {"run_id": "r1", "scope": "all"},
        {"input_message_id": "m1", "scope": "client"},
        {"run_id": "r1", "input_message_id": "m1", "scope": "all"},
    ],
    ids=["none", "run+input", "run+scope", "input+scope", "all-three"],
)
def test_cancel_needs_exactly_one_target(targets: dict[str, str]) -> None:
    with pytest.raises(pydantic.ValidationError, match="exactly one of"):
        Cancel(event_id="e1", client_id="alice", **targets)


@pytest.mark.parametrize("scope", ["everyone", "run", "", "ALL"])
def test_cancel_scope_out_of_range(scope: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        Cancel(event_id="e1", client_id="alice", scope=scope)  # pyright: ignore[reportArgumentType]


@pytest.mark.parametrize("payload", [None, {"type": "text"}, "text", 3])
def test_output_payload_is_a_list(payload: object) -> None:
    with pytest.raises(pydantic.ValidationError):
        Output(**MINIMAL[Output], payload=payload)


def test_output_payload_keeps_its_order() -> None:
    deltas = [{"type": "text-delta", "delta": str(i)} for i in range(5)]
    assert Output(**MINIMAL[Output], payload=deltas).payload == deltas


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_event_union_picks_the_class_by_type(cls: type[Any]) -> None:
    event = cls(**MINIMAL[cls], payload=[1])
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ait.Event)
    parsed = adapter.validate_python(event.model_dump())
    assert type(parsed) is cls
    assert parsed == event
    assert adapter.validate_json(event.model_dump_json()) == event


def test_event_union_refuses_unknown_types() -> None:
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ait.Event)
    with pytest.raises(pydantic.ValidationError):
        adapter.validate_python({"type": "run.pause", "run_id": "r1"})


def test_events_compare_by_value() -> None:
    assert Input(**MINIMAL[Input]) == Input(**MINIMAL[Input])
    assert Input(**MINIMAL[Input]) != Input(**{**MINIMAL[Input], "role": "system"})
    assert Input(**MINIMAL[Input], payload=[1]) != Input(**MINIMAL[Input], payload=[2])
    assert Input(**MINIMAL[Input]) != Input(**MINIMAL[Input], extra_headers={"x": "y"})
    # Same fields, other type: never equal.
    assert RunStart(**MINIMAL[RunStart]) != RunResume(**MINIMAL[RunStart])


def test_bad_entry() -> None:
    bad = BadEntry(entry_id="1-0", reason="unknown event type b'x'", fields={b"t": b"x"})
    assert (bad.type, bad.entry_id, bad.fields) == ("bad-entry", "1-0", {b"t": b"x"})
    assert BadEntry(entry_id="1-0", reason="r").fields == {}
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        bad.reason = "other"  # pyright: ignore


# -- lifecycle payloads ---------------------------------------------------------------------------


def test_a_suspend_names_the_calls_it_awaits() -> None:
    suspend = RunSuspend(**MINIMAL[RunSuspend], payload={"awaiting": ["c1", "c2"]})
    assert suspend.awaiting == ("c1", "c2")
    assert RunSuspend(**MINIMAL[RunSuspend]).awaiting == ()


def test_a_resume_names_the_answers_it_took() -> None:
    taken = RunResume(**MINIMAL[RunResume], payload={"answers": ["e2", "e3"]})
    assert taken.answers == ("e2", "e3")
    assert RunResume(**MINIMAL[RunResume]).answers == ("e2",)  # its input, when not listed


@pytest.mark.parametrize(
    "payload",
    [[1], "x", {"awaiting": "c1"}, {"awaiting": [1]}, {"awaiting": [""]}, {"other": ["c1"]}],
)
def test_a_lifecycle_payload_of_another_shape_is_kept_and_read_as_absent(payload: Any) -> None:
    """A foreign writer's payload does not cost the lifecycle event: the entry decodes, the
    payload stays on it, and the hint reads as if absent."""
    suspend = RunSuspend(**MINIMAL[RunSuspend], payload=payload)
    assert suspend.payload == payload and suspend.awaiting == ()
    resume = RunResume(
        **MINIMAL[RunResume], payload=payload if not isinstance(payload, dict) else {"answers": 1}
    )
    assert resume.answers == ("e2",)
