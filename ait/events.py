"""The transport vocabulary: one frozen model per event type of docs/protocol.md.

Each event's fields are its wire headers (`run_id` travels as the header `run-id`); headers
this version does not know are kept in `extra_headers`, the codec payload `d` (already
msgpack-decoded) is in `payload`, and the entry's resend key `k`, if any, in `entry_key`.

```python
from ait.events import Input, RunEnd

Input(event_id="e1", message_id="m1", role="user", client_id="alice", payload=[...])
RunEnd(run_id="r1", invocation_id="i1", reason="error", error_code="boom", error_message="...")
```

Decoding (`ait.codec`) builds these without pydantic validation for speed, after checking the
same rules pydantic enforces here; both paths share the tables built in `_Event`.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, Self, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import CodecError
from .ids import check_name

__all__ = [
    "EVENT_TYPES",
    "BadEntry",
    "Cancel",
    "CancelScope",
    "Event",
    "Input",
    "Invocation",
    "Multitask",
    "Output",
    "RunEnd",
    "RunEndReason",
    "RunResume",
    "RunStart",
    "RunSuspend",
]

RunEndReason = Literal["complete", "cancelled", "error"]
Multitask = Literal["parallel", "interrupt", "enqueue", "reject"]
CancelScope = Literal["client", "all"]

_Id = Annotated[str, Field(min_length=1)]

_NOT_HEADERS = frozenset({"type", "extra_headers", "payload", "entry_key"})


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Headers this version of the protocol does not name, kept as they came.
    extra_headers: Mapping[str, str] = Field(default_factory=dict[str, str])
    #: The codec payload (`d`), msgpack-decoded; None when the entry has none.
    payload: Any = None
    #: The entry's resend key (the `k` field): a writer that may write an entry twice (it
    #: resends what Redis did not acknowledge) keys it, and readers fold one entry per key,
    #: the first. None for an entry written once at most.
    entry_key: _Id | None = Field(default=None, repr=False)

    #: Built once per class: (field name, header name, required, allowed values or None
    #: for any non-empty string). The decoder checks headers with it.
    header_table: ClassVar[tuple[tuple[str, str, bool, frozenset[str] | None], ...]] = ()
    header_names: ClassVar[frozenset[str]] = frozenset()
    #: True for types with rules across headers (`wire_problem` overridden).
    has_cross_rules: ClassVar[bool] = False

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        table: list[tuple[str, str, bool, frozenset[str] | None]] = []
        for name, info in cls.model_fields.items():
            if name in _NOT_HEADERS:
                continue
            table.append(
                (name, name.replace("_", "-"), info.is_required(), _literal_values(info.annotation))
            )
        cls.header_table = tuple(table)
        cls.has_cross_rules = cls.wire_problem is not _Event.wire_problem
        cls.header_names = frozenset(header for _, header, _, _ in table)

    @model_validator(mode="after")
    def _validate_wire_rules(self) -> Self:
        clash = self.header_names.intersection(self.extra_headers)
        if clash:
            raise ValueError(f"extra_headers repeat named headers: {sorted(clash)}")
        problem = self.wire_problem()
        if problem:
            raise ValueError(problem)
        return self

    def wire_problem(self) -> str | None:
        """A rule across fields that this event breaks, in words, or None."""
        return None


def _literal_values(annotation: Any) -> frozenset[str] | None:
    """The allowed strings of a `Literal[...]` or `Literal[...] | None` annotation."""
    if typing.get_origin(annotation) is Literal:
        return frozenset(typing.get_args(annotation))
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if typing.get_origin(arg) is Literal:
                return frozenset(typing.get_args(arg))
    return None


class Input(_Event):
    """A client's input: a message, or a tool result/approval targeting `message_id`."""

    type: Literal["input"] = "input"
    event_id: _Id
    message_id: _Id
    role: _Id
    client_id: _Id
    parent: _Id | None = None
    fork_of: _Id | None = None
    regenerate: _Id | None = None
    run_id: _Id | None = None
    #: What to do when another run is active on the channel: `parallel` (default),
    #: `interrupt`, `enqueue` or `reject` (docs/concepts/runs.md).
    multitask: Multitask | None = None


class RunStart(_Event):
    """A run opened for an input; the canonical record of the run's place in the tree."""

    type: Literal["run.start"] = "run.start"
    run_id: _Id
    invocation_id: _Id
    input_event_id: _Id
    input_message_id: _Id
    run_client_id: _Id
    parent: _Id | None = None
    fork_of: _Id | None = None
    regenerate: _Id | None = None


class RunResume(_Event):
    """A suspended run re-entered by a later invocation.

    `input_event_id` names the first answer it took. When it took several (answers to
    parallel tool calls, sent apart), the payload lists them all, that one first:
    `{"answers": [event id, ...]}`; see `answers`.
    """

    type: Literal["run.resume"] = "run.resume"
    run_id: _Id
    invocation_id: _Id
    input_event_id: _Id
    input_message_id: _Id
    run_client_id: _Id

    @property
    def answers(self) -> tuple[str, ...]:
        """The event ids of the inputs this resume took, in channel order."""
        listed = _id_list(self.payload, "answers")
        return listed if listed else (self.input_event_id,)


class RunSuspend(_Event):
    """A run paused, awaiting a participant (a client-side tool, an approval). Not terminal.

    The payload may name the tool calls it waits for, `{"awaiting": [call id, ...]}`: it is
    resumed once each of them has an answer. Without it, the first answer resumes it.
    """

    type: Literal["run.suspend"] = "run.suspend"
    run_id: _Id
    invocation_id: _Id

    @property
    def awaiting(self) -> tuple[str, ...]:
        """The ids of the tool calls this suspend waits for; empty: any answer resumes."""
        return _id_list(self.payload, "awaiting")


def _id_list(payload: object, key: str) -> tuple[str, ...]:
    """`payload[key]` when it is a list of ids, else ().

    Lifecycle payloads are hints a reader may do without: one of another shape (a foreign
    writer's) is kept on the event as it came, and read as if absent, so the lifecycle
    event itself is never lost over it.
    """
    if not isinstance(payload, dict):
        return ()
    items = cast(dict[object, object], payload).get(key)
    if not isinstance(items, list | tuple):
        return ()
    ids = cast(list[object], items)
    if not all(isinstance(item, str) and item for item in ids):
        return ()
    return tuple(cast(list[str], ids))


class RunEnd(_Event):
    """A run ended. With reason `error`, `error_code` and `error_message` say why."""

    type: Literal["run.end"] = "run.end"
    run_id: _Id
    invocation_id: _Id
    reason: RunEndReason
    error_code: _Id | None = None
    error_message: _Id | None = None

    def wire_problem(self) -> str | None:
        if self.reason == "error" and (self.error_code is None or self.error_message is None):
            return "run.end with reason 'error' needs error-code and error-message"
        return None


class Output(_Event):
    """Codec output for one message of a run: `payload` is a list of codec events, in order."""

    type: Literal["output"] = "output"
    run_id: _Id
    message_id: _Id
    role: _Id
    parent: _Id
    payload: list[Any] = Field(default_factory=list[Any])


class Cancel(_Event):
    """A request to cancel: one run, the run of one input, every run of a client, or all."""

    type: Literal["cancel"] = "cancel"
    event_id: _Id
    client_id: _Id
    run_id: _Id | None = None
    input_message_id: _Id | None = None
    scope: CancelScope | None = None

    def wire_problem(self) -> str | None:
        targets = sum(x is not None for x in (self.run_id, self.input_message_id, self.scope))
        if targets != 1:
            return "cancel needs exactly one of run-id, input-message-id or scope"
        return None


Event = Annotated[
    Input | RunStart | RunResume | RunSuspend | RunEnd | Output | Cancel,
    Field(discriminator="type"),
]
"""Any transport event; `event.type` tells which."""

EVENT_TYPES: Mapping[str, type[_Event]] = {
    cls.model_fields["type"].default: cls
    for cls in (Input, RunStart, RunResume, RunSuspend, RunEnd, Output, Cancel)
}


class BadEntry(BaseModel):
    """A stream entry that could not be decoded, reported in place of the event.

    Readers yield it where the entry stands, so nothing is dropped silently and cursors
    move past it. `fields` holds the raw fields as Redis returned them.
    """

    model_config = ConfigDict(frozen=True)

    type: Literal["bad-entry"] = "bad-entry"
    entry_id: str
    reason: str
    fields: Mapping[bytes, bytes] = Field(default_factory=dict[bytes, bytes])


class Invocation(BaseModel):
    """One wake-up of an agent for one input: which channel, which input event.

    It travels as JSON to an HTTP doorbell (`to_json`/`from_json`) or as an entry of a
    worker pool's queue (docs/protocol.md). The conversation itself stays on the channel.

    ```python
    invocation = Invocation(channel="chat-42", input_event_id=active.input_event_id)
    body = invocation.to_json()                   # POST it to your agent endpoint
    Invocation.from_json(body)                    # in the endpoint
    ```
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    channel: _Id
    input_event_id: _Id
    #: When the invocation was queued (ms since the epoch), if it went through a pool.
    enqueued_at: int | None = None

    @model_validator(mode="after")
    def _check_channel(self) -> Self:
        check_name("channel", self.channel)
        return self

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def from_json(cls, data: str | bytes) -> Invocation:
        """Parse an invocation from JSON.

        Raises:
            CodecError: not JSON, or not an invocation (missing or invalid fields).
        """
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
            )
            raise CodecError(f"not a valid invocation: {problems}") from None
