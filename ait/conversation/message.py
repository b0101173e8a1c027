"""Messages: the frozen snapshots a UI renders, and the mutable state the fold builds them from.

`MessageState` folds ChatCodec events (wire maps) of one message id. It keeps each entry's
events as a segment keyed by entry id, so the result never depends on arrival order: in
order (the common case) a segment applies at once; a segment older than the newest applied
(a history page loaded after live entries) makes the state rebuild from all segments.

Snapshots (`Message`) are built only when asked for and cached until the next change, so a
stream of deltas costs a list append each, whatever the length of the conversation.
"""

from __future__ import annotations

from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict

from ..codec.chat import MessageStatus

__all__ = [
    "DataPart",
    "Message",
    "MessageError",
    "MessageState",
    "Part",
    "ReasoningPart",
    "TextPart",
    "ToolCallPart",
]

EntryKey = tuple[float, float]
"""Sort key of an entry id; optimistic entries sort after all real ones."""

ToolCallState = Literal["input-streaming", "input-available", "output-available", "output-error"]
ApprovalState = Literal["requested", "approved", "denied"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class TextPart(_Frozen):
    type: Literal["text"] = "text"
    id: str
    text: str


class ReasoningPart(_Frozen):
    type: Literal["reasoning"] = "reasoning"
    id: str
    text: str


class ToolCallPart(_Frozen):
    """A tool call: its input as it streams, then its output or error, and any approval."""

    type: Literal["tool-call"] = "tool-call"
    id: str
    name: str
    state: ToolCallState
    input_text: str = ""
    input: Any = None
    output: Any = None
    error: str | None = None
    approval: ApprovalState | None = None
    approval_reason: str | None = None


class DataPart(_Frozen):
    type: Literal["data"] = "data"
    id: str
    name: str
    data: Any = None


Part = TextPart | ReasoningPart | ToolCallPart | DataPart


class MessageError(_Frozen):
    code: str
    message: str


class Message(_Frozen):
    """One message of the conversation, as it stands now.

    `status` is `streaming` while its run produces it, then `complete`, `cancelled` or
    `error`; input messages are `complete` at once. `optimistic` is True for a message
    this client published that the channel has not echoed yet.
    """

    id: str
    role: str
    parts: tuple[Part, ...] = ()
    status: MessageStatus = "streaming"
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    metrics: dict[str, float] | None = None
    error: MessageError | None = None
    metadata: dict[str, Any] | None = None
    run_id: str | None = None
    parent: str | None = None
    client_id: str | None = None
    optimistic: bool = False

    @property
    def text(self) -> str:
        """The message's text parts, joined."""
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))


_TERMINAL: frozenset[str] = frozenset({"complete", "cancelled", "error"})


class _PartState:
    __slots__ = ("approval", "approval_reason", "chunks", "data", "error", "id", "input",
                 "input_chunks", "kind", "name", "output", "state")  # fmt: skip

    def __init__(self, kind: str, part_id: str) -> None:
        self.kind = kind
        self.id = part_id
        self.chunks: list[str] = []
        self.input_chunks: list[str] = []
        self.name = ""
        self.state: ToolCallState = "input-streaming"
        self.input: Any = None
        self.output: Any = None
        self.error: str | None = None
        self.approval: ApprovalState | None = None
        self.approval_reason: str | None = None
        self.data: Any = None

    def _joined(self) -> str:
        # Keep one joined chunk: a long streamed reply read after every delta stays linear.
        chunks = self.chunks
        if len(chunks) > 1:
            chunks[:] = ["".join(chunks)]
        return chunks[0] if chunks else ""

    def snapshot(self) -> Part:
        if self.kind == "text":
            return TextPart(id=self.id, text=self._joined())
        if self.kind == "reasoning":
            return ReasoningPart(id=self.id, text=self._joined())
        if self.kind == "data":
            return DataPart(id=self.id, name=self.name, data=self.data)
        return ToolCallPart(
            id=self.id,
            name=self.name,
            state=self.state,
            input_text="".join(self.input_chunks),
            input=self.input,
            output=self.output,
            error=self.error,
            approval=self.approval,
            approval_reason=self.approval_reason,
        )


class MessageState:
    """The fold of one message id's codec events. Owned by a `Tree`."""

    __slots__ = ("_cache", "_contents", "_keys", "_last", "_parts", "client_id", "error",
                 "finish_reason", "id", "is_input", "metadata", "metrics", "optimistic",
                 "parent", "role", "run_id", "status", "usage")  # fmt: skip

    def __init__(self, message_id: str, role: str = "assistant", *, is_input: bool = False) -> None:
        self.id = message_id
        self.role = role
        #: An input message is whole when published: `complete`, never `streaming`.
        self.is_input = is_input
        self.run_id: str | None = None
        self.parent: str | None = None
        self.client_id: str | None = None
        self.optimistic = False
        # The entries folded into this message, in entry order: their keys and events, in
        # two lists rather than one list of pairs, so that a streamed delta leaves no new
        # object for the garbage collector to track (with 100 sessions in a process, a pair
        # per delta and session made its full collections several times more frequent).
        self._keys: list[EntryKey] = []
        self._contents: list[list[dict[str, Any]]] = []
        self._last: EntryKey | None = None
        self._cache: Message | None = None
        self._reset()

    def _reset(self) -> None:
        self._parts: dict[str, _PartState] = {}
        self.status: MessageStatus = "complete" if self.is_input else "streaming"
        self.finish_reason: str | None = None
        self.usage: dict[str, int] | None = None
        self.metrics: dict[str, float] | None = None
        self.error: MessageError | None = None
        self.metadata: dict[str, Any] | None = None

    @property
    def has_content(self) -> bool:
        return bool(self._keys)

    @property
    def first_key(self) -> EntryKey | None:
        """The key of the oldest entry folded into this message."""
        return self._keys[0] if self._keys else None

    def segment(self, key: EntryKey) -> list[dict[str, Any]] | None:
        """The events of the entry with `key`, if it was folded into this message."""
        for index, segment_key in enumerate(self._keys):
            if segment_key == key:
                return self._contents[index]
        return None

    def _set_segments(self, segments: list[tuple[EntryKey, list[dict[str, Any]]]]) -> None:
        segments.sort(key=lambda segment: segment[0])
        self._keys = [key for key, _ in segments]
        self._contents = [events for _, events in segments]
        self._rebuild()

    def _segments(self) -> list[tuple[EntryKey, list[dict[str, Any]]]]:
        return list(zip(self._keys, self._contents, strict=True))

    def add(self, key: EntryKey, events: list[dict[str, Any]]) -> None:
        """Fold one entry's events (already checked with `wire_problem`)."""
        self._cache = None
        if self._last is None or key > self._last:
            self._keys.append(key)
            self._contents.append(events)
            self._last = key
            parts = self._parts
            for event in events:
                if event["type"] == "text-delta":  # the common case, inline
                    part = parts.get(event["id"])
                    if part is not None and part.kind == "text":
                        part.chunks.append(event["delta"])
                        continue
                _APPLY[event["type"]](self, event)
            return
        # Older than what we have: file it in order and fold everything again.
        self._set_segments([*self._segments(), (key, events)])

    def rekey(self, old: EntryKey, new: EntryKey) -> None:
        """An optimistic segment was echoed: give it its real entry key."""
        self._set_segments([(new if k == old else k, e) for k, e in self._segments()])

    def replace(self, key: EntryKey, events: list[dict[str, Any]]) -> None:
        """Set the content of one segment (an echo replacing the optimistic copy)."""
        self._set_segments([(k, e) for k, e in self._segments() if k != key] + [(key, events)])

    def drop(self, key: EntryKey) -> None:
        self._set_segments([(k, e) for k, e in self._segments() if k != key])

    def _rebuild(self) -> None:
        self._cache = None
        self._reset()
        self._last = self._keys[-1] if self._keys else None
        for events in self._contents:
            for event in events:
                _APPLY[event["type"]](self, event)

    def snapshot(self, run_status: str | None = None) -> Message:
        """The message now. A run that ended leaves no message `streaming`."""
        status = self.status
        if status == "streaming" and run_status in _TERMINAL:
            status = cast(MessageStatus, run_status)
        cached = self._cache
        if cached is not None and cached.status == status:
            return cached
        message = Message(
            id=self.id,
            role=self.role,
            parts=tuple(part.snapshot() for part in self._parts.values()),
            status=status,
            finish_reason=self.finish_reason,
            usage=self.usage,
            metrics=self.metrics,
            error=self.error,
            metadata=self.metadata,
            run_id=self.run_id,
            parent=self.parent,
            client_id=self.client_id,
            optimistic=self.optimistic,
        )
        self._cache = message
        return message

    def invalidate(self) -> None:
        self._cache = None

    # -- appliers: one per ChatCodec event type ----------------------------------------------

    def _part(self, kind: str, part_id: str) -> _PartState:
        part = self._parts.get(part_id)
        if part is None or part.kind != kind:
            part = _PartState(kind, part_id)
            self._parts[part_id] = part
        return part


def _start(m: MessageState, e: dict[str, Any]) -> None:
    if e.get("metadata"):
        m.metadata = {**(m.metadata or {}), **e["metadata"]}


def _text(m: MessageState, e: dict[str, Any]) -> None:
    m._part("text", e["id"]).chunks.append(e["delta"])  # pyright: ignore[reportPrivateUsage]


def _reasoning(m: MessageState, e: dict[str, Any]) -> None:
    m._part("reasoning", e["id"]).chunks.append(e["delta"])  # pyright: ignore[reportPrivateUsage]


def _tool(m: MessageState, e: dict[str, Any]) -> _PartState:
    part = m._part("tool", e["id"])  # pyright: ignore[reportPrivateUsage]
    if e.get("name"):
        part.name = e["name"]
    return part


def _tool_input_start(m: MessageState, e: dict[str, Any]) -> None:
    _tool(m, e).state = "input-streaming"


def _tool_input_delta(m: MessageState, e: dict[str, Any]) -> None:
    _tool(m, e).input_chunks.append(e["delta"])


def _tool_input_available(m: MessageState, e: dict[str, Any]) -> None:
    part = _tool(m, e)
    part.input = e.get("input")
    if part.state == "input-streaming":
        part.state = "input-available"


# A call has one result and one approval answer: the first on the channel. A later one (a
# second client answering the same call) is not what the run resumed with, so it is not
# shown either; entries fold in channel order, so every client keeps the same one.
_ANSWERED = ("output-available", "output-error")


def _tool_output(m: MessageState, e: dict[str, Any]) -> None:
    part = _tool(m, e)
    if part.state in _ANSWERED:
        return
    part.output = e.get("output")
    part.state = "output-available"


def _tool_error(m: MessageState, e: dict[str, Any]) -> None:
    part = _tool(m, e)
    if part.state in _ANSWERED:
        return
    part.error = e["error"]
    part.state = "output-error"


def _approval_request(m: MessageState, e: dict[str, Any]) -> None:
    part = _tool(m, e)
    if part.approval is None:
        part.approval = "requested"


def _approval_response(m: MessageState, e: dict[str, Any]) -> None:
    part = _tool(m, e)
    if part.approval in ("approved", "denied"):
        return
    part.approval = "approved" if e["approved"] else "denied"
    part.approval_reason = e.get("reason")


def _data(m: MessageState, e: dict[str, Any]) -> None:
    part = m._part("data", e["id"])  # pyright: ignore[reportPrivateUsage]
    part.name = e["name"]
    part.data = e.get("data")


def _usage(m: MessageState, e: dict[str, Any]) -> None:
    m.usage = {**(m.usage or {}), **{k: v for k, v in e.items() if k != "type" and v is not None}}


def _metrics(m: MessageState, e: dict[str, Any]) -> None:
    m.metrics = {
        **(m.metrics or {}),
        **{k: v for k, v in e.items() if k != "type" and v is not None},
    }


def _finish(m: MessageState, e: dict[str, Any]) -> None:
    m.finish_reason = e.get("finish_reason")
    if m.status != "error":
        m.status = e.get("status", "complete")


def _error(m: MessageState, e: dict[str, Any]) -> None:
    m.error = MessageError(code=e["code"], message=e["message"])
    m.status = "error"


_APPLY = {
    "start": _start,
    "text-delta": _text,
    "reasoning-delta": _reasoning,
    "tool-input-start": _tool_input_start,
    "tool-input-delta": _tool_input_delta,
    "tool-input-available": _tool_input_available,
    "tool-output-available": _tool_output,
    "tool-output-error": _tool_error,
    "tool-approval-request": _approval_request,
    "tool-approval-response": _approval_response,
    "data": _data,
    "usage": _usage,
    "metrics": _metrics,
    "finish": _finish,
    "error": _error,
}
