"""ChatCodec: the default payload vocabulary of `input` and `output` entries.

A payload (`d`) is a list of codec events, each a msgpack map with a `type` key. Folding
the events of one message id, in entry order, gives the message (see
`ait.conversation.message`). The same vocabulary serves both directions: a user's message is
`[text-delta]`, a client-side tool result is `[tool-output-available]` targeting the
assistant message that holds the call.

```python
from ait.codec.chat import TextDelta, ChatCodec

payload = ChatCodec.encode([TextDelta(id="t0", delta="Hello")])   # [{"type": "text-delta", ...}]
events = ChatCodec.decode(payload)                                  # [TextDelta(...)]
ChatCodec.user_text("hi")                                           # an input payload
```

The models document and validate the vocabulary; hot paths (a token stream, the fold) use
the wire maps directly and check them with `wire_problem`, which applies the same rules.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ..errors import CodecError

__all__ = [
    "AMENDMENT_TYPES",
    "CHAT_EVENT_TYPES",
    "ChatCodec",
    "ChatConvertible",
    "ChatEncoder",
    "ChatEvent",
    "Data",
    "Error",
    "Finish",
    "MessageStatus",
    "Metrics",
    "ReasoningDelta",
    "Start",
    "TextDelta",
    "ToolApprovalRequest",
    "ToolApprovalResponse",
    "ToolInputAvailable",
    "ToolInputDelta",
    "ToolInputStart",
    "ToolOutputAvailable",
    "ToolOutputError",
    "Usage",
    "wire_problem",
]

MessageStatus = Literal["streaming", "complete", "cancelled", "error"]


class _ChatEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: (field, required, allowed python types, allowed values or None) for the wire check.
    wire_spec: ClassVar[tuple[tuple[str, bool, tuple[type, ...], frozenset[Any] | None], ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.wire_spec = tuple(
            (name, info.is_required(), _python_types(info.annotation), _literals(info.annotation))
            for name, info in cls.model_fields.items()
            if name != "type"
        )

    def to_wire(self) -> dict[str, Any]:
        """The msgpack-ready map of this event (optional fields left out when None)."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _python_types(annotation: Any) -> tuple[type, ...]:
    """The runtime types a wire value of this annotation may have (Any: everything)."""
    args = (
        typing.get_args(annotation)
        if typing.get_origin(annotation) in (typing.Union, types.UnionType)
        else (annotation,)
    )
    found: list[type] = []
    for arg in args:
        origin = typing.get_origin(arg) or arg
        if arg is Any:
            return (object,)
        if origin is Literal:
            found.append(str)
        elif origin is float:
            found += [float, int]
        elif isinstance(origin, type) and origin is not type(None):
            found.append(origin)
    return tuple(found)


def _literals(annotation: Any) -> frozenset[Any] | None:
    if typing.get_origin(annotation) is Literal:
        return frozenset(typing.get_args(annotation))
    return None


_Id = Annotated[str, Field(min_length=1)]


class Start(_ChatEvent):
    """A message begins (optional: the first content event starts it too)."""

    type: Literal["start"] = "start"
    metadata: dict[str, Any] | None = None


class TextDelta(_ChatEvent):
    """Text appended to the text part `id` (created by its first delta)."""

    type: Literal["text-delta"] = "text-delta"
    id: _Id
    delta: str


class ReasoningDelta(_ChatEvent):
    """Reasoning ("thinking") text appended to the reasoning part `id`."""

    type: Literal["reasoning-delta"] = "reasoning-delta"
    id: _Id
    delta: str


class ToolInputStart(_ChatEvent):
    """A tool call `id` to tool `name` begins; its input streams next."""

    type: Literal["tool-input-start"] = "tool-input-start"
    id: _Id
    name: _Id


class ToolInputDelta(_ChatEvent):
    """A piece of the tool call's input, as JSON text."""

    type: Literal["tool-input-delta"] = "tool-input-delta"
    id: _Id
    delta: str


class ToolInputAvailable(_ChatEvent):
    """The tool call's input is complete (parsed)."""

    type: Literal["tool-input-available"] = "tool-input-available"
    id: _Id
    name: _Id
    input: Any = None


class ToolOutputAvailable(_ChatEvent):
    """The tool call's result (from the agent, or from a client running the tool)."""

    type: Literal["tool-output-available"] = "tool-output-available"
    id: _Id
    output: Any = None


class ToolOutputError(_ChatEvent):
    """The tool call failed."""

    type: Literal["tool-output-error"] = "tool-output-error"
    id: _Id
    error: str


class ToolApprovalRequest(_ChatEvent):
    """The agent asks a human to approve tool call `id` before running it."""

    type: Literal["tool-approval-request"] = "tool-approval-request"
    id: _Id


class ToolApprovalResponse(_ChatEvent):
    """A human's answer to an approval request."""

    type: Literal["tool-approval-response"] = "tool-approval-response"
    id: _Id
    approved: bool
    reason: str | None = None


class Data(_ChatEvent):
    """Application data shown with the message (a citation, a chart spec, a file ref)."""

    type: Literal["data"] = "data"
    id: _Id
    name: _Id
    data: Any = None


class Usage(_ChatEvent):
    """Token counts of the generation."""

    type: Literal["usage"] = "usage"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class Metrics(_ChatEvent):
    """Timing of the generation."""

    type: Literal["metrics"] = "metrics"
    time_to_first_token_ms: float | None = None
    tokens_per_second: float | None = None
    prompt_tokens_per_second: float | None = None
    queue_wait_ms: float | None = None


class Finish(_ChatEvent):
    """The message ends: why (`finish_reason`, as the model said) and how (`status`)."""

    type: Literal["finish"] = "finish"
    finish_reason: str | None = None
    status: Literal["complete", "cancelled", "error"] = "complete"


class Error(_ChatEvent):
    """An error shown in the message (the message's status becomes `error`)."""

    type: Literal["error"] = "error"
    code: _Id
    message: str


ChatEvent = Annotated[
    Start
    | TextDelta
    | ReasoningDelta
    | ToolInputStart
    | ToolInputDelta
    | ToolInputAvailable
    | ToolOutputAvailable
    | ToolOutputError
    | ToolApprovalRequest
    | ToolApprovalResponse
    | Data
    | Usage
    | Metrics
    | Finish
    | Error,
    Field(discriminator="type"),
]
"""Any ChatCodec event; `event.type` tells which."""

CHAT_EVENT_TYPES: Mapping[str, type[_ChatEvent]] = {
    cls.model_fields["type"].default: cls for cls in typing.get_args(typing.get_args(ChatEvent)[0])
}

#: Events an input may carry to amend an existing assistant message (tool results,
#: approvals) rather than to be a message of its own.
AMENDMENT_TYPES = frozenset(
    {"tool-output-available", "tool-output-error", "tool-approval-response"}
)

_ADAPTER: TypeAdapter[list[ChatEvent]] = TypeAdapter(list[ChatEvent])


def wire_problem(item: object) -> str | None:
    """What is wrong with one wire event (a map), in words; None when it is well formed."""
    if type(item) is not dict:
        return f"a codec event must be a map, not {type(item).__name__}"
    event = typing.cast(dict[str, Any], item)
    kind = event.get("type")
    cls = CHAT_EVENT_TYPES.get(kind) if type(kind) is str else None
    if cls is None:
        return f"unknown codec event type {kind!r}"
    for name, required, allowed, values in cls.wire_spec:
        value = event.get(name)
        if value is None:
            if required:
                return f"{kind} misses {name!r}"
            if name in event and cls.model_fields[name].default is not None:
                return f"{kind}: {name!r} is nil; leave it out for its default"
        elif not isinstance(value, allowed) or (value == "" and name in ("id", "name", "code")):
            return f"{kind}: {name!r} has the wrong type or is empty ({value!r})"
        elif values is not None and value not in values:
            return f"{kind}: {name!r} is {value!r}; expected one of {sorted(values)}"
        elif allowed == (dict,) and not all(type(k) is str for k in value):
            return f"{kind}: {name!r} must have string keys ({value!r})"
    return None


class ChatCodec:
    """Encode and decode ChatCodec payloads; build common input payloads."""

    name: ClassVar[str] = "chat"
    version: ClassVar[int] = 1

    @staticmethod
    def encode(events: Sequence[_ChatEvent]) -> list[dict[str, Any]]:
        """The wire payload (a list of maps) of typed events."""
        return [event.to_wire() for event in events]

    @staticmethod
    def decode(payload: object) -> list[ChatEvent]:
        """Typed events of a wire payload.

        Raises:
            CodecError: the payload is not a list of well-formed ChatCodec events.
        """
        if type(payload) is not list:
            raise CodecError(f"a ChatCodec payload must be a list, not {type(payload).__name__}")
        for item in typing.cast(list[object], payload):
            problem = wire_problem(item)
            if problem:
                raise CodecError(problem)
        try:
            return _ADAPTER.validate_python(payload)
        except ValidationError as exc:
            raise CodecError(f"malformed ChatCodec payload: {exc.errors()[0]['msg']}") from None

    @staticmethod
    def user_text(text: str, *, part_id: str = "t0") -> list[dict[str, Any]]:
        """The payload of a user message made of one text part."""
        return [{"type": "text-delta", "id": part_id, "delta": text}]

    @staticmethod
    def tool_result(call_id: str, output: Any) -> list[dict[str, Any]]:
        """The payload of a client-side tool's result for tool call `call_id`."""
        return [{"type": "tool-output-available", "id": call_id, "output": output}]

    @staticmethod
    def tool_error(call_id: str, error: str) -> list[dict[str, Any]]:
        """The payload of a client-side tool's failure for tool call `call_id`."""
        return [{"type": "tool-output-error", "id": call_id, "error": error}]

    @staticmethod
    def approval(call_id: str, approved: bool, reason: str | None = None) -> list[dict[str, Any]]:
        """The payload of a human's answer to the approval request of tool call `call_id`."""
        item: dict[str, Any] = {
            "type": "tool-approval-response",
            "id": call_id,
            "approved": approved,
        }
        if reason is not None:
            item["reason"] = reason
        return [item]


class ChatConvertible(Protocol):
    """A stream item that knows its ChatCodec events (provider events implement this)."""

    def to_chat(self, encoder: ChatEncoder) -> list[dict[str, Any]]: ...


class ChatEncoder:
    """Turns the items of an output stream into ChatCodec wire events, keeping part ids.

    Items may be `str` (text), ChatCodec models, wire maps, or objects with a
    `to_chat(encoder)` method (provider events). Consecutive text goes to one text part;
    text after anything else (a tool call, reasoning) opens a new one.
    """

    def __init__(self) -> None:
        self._parts = 0
        self._text: str | None = None
        self._reasoning: str | None = None

    def encode(self, item: object) -> list[dict[str, Any]]:
        """The wire events of one stream item.

        Raises:
            CodecError: the item is not something a message can hold.
        """
        if isinstance(item, str):
            return [self.text(item)] if item else []
        if isinstance(item, _ChatEvent):
            return [self._seen(item.to_wire())]
        if isinstance(item, dict):
            problem = wire_problem(typing.cast(object, item))
            if problem:
                raise CodecError(problem)
            return [self._seen(typing.cast(dict[str, Any], item))]
        to_chat = getattr(item, "to_chat", None)
        if callable(to_chat):
            return typing.cast(list[dict[str, Any]], to_chat(self))
        raise CodecError(f"cannot put a {type(item).__name__} in a message")

    def _seen(self, event: dict[str, Any]) -> dict[str, Any]:
        kind = event["type"]
        if kind != "text-delta":
            self._text = None
        if kind != "reasoning-delta":
            self._reasoning = None
        return event

    def _new_id(self, prefix: str) -> str:
        self._parts += 1
        return f"{prefix}{self._parts}"

    def text(self, delta: str) -> dict[str, Any]:
        if self._text is None:
            self._text = self._new_id("t")
        self._reasoning = None
        return {"type": "text-delta", "id": self._text, "delta": delta}

    def reasoning(self, delta: str) -> dict[str, Any]:
        if self._reasoning is None:
            self._reasoning = self._new_id("r")
        self._text = None
        return {"type": "reasoning-delta", "id": self._reasoning, "delta": delta}

    def other(self, event: dict[str, Any]) -> dict[str, Any]:
        """Any other wire event (tool calls, usage, ...): closes the open text part."""
        return self._seen(event)
