"""Provider events: what every provider's stream yields, whatever the model behind it.

Each event knows its ChatCodec form (`to_chat`), so `run.pipe(provider.stream(request))`
writes a provider's stream to the channel as it is.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..codec.chat import ChatEncoder

__all__ = [
    "Finish",
    "Metrics",
    "ProviderEvent",
    "ReasoningDelta",
    "TextDelta",
    "ToolCallDelta",
    "ToolCallEnd",
    "ToolCallStart",
    "Usage",
]


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True)


class TextDelta(_Event):
    type: Literal["text"] = "text"
    text: str

    def to_chat(self, encoder: ChatEncoder) -> list[dict[str, Any]]:
        return [encoder.text(self.text)] if self.text else []


class ReasoningDelta(_Event):
    type: Literal["reasoning"] = "reasoning"
    text: str

    def to_chat(self, encoder: ChatEncoder) -> list[dict[str, Any]]:
        return [encoder.reasoning(self.text)] if self.text else []


class ToolCallStart(_Event):
    """The model begins a call to tool `name`; its arguments stream next."""

    type: Literal["tool-call-start"] = "tool-call-start"
    id: str
    name: str

    def to_chat(self, encoder: ChatEncoder) -> list[dict[str, Any]]:
        return [encoder.other({"type": "tool-input-start", "id": self.id, "name": self.name})]


class ToolCallDelta(_Event):
    """A piece of the call's arguments, as JSON text."""

    type: Literal["tool-call-delta"] = "tool-call-delta"
    id: str
    delta: str

    def to_chat(self, encoder: ChatEncoder) -> list[dict[str, Any]]:
        if not self.delta:
            return []
        return [encoder.other({"type": "tool-input-delta", "id": self.id, "delta": self.delta})]


class ToolCallEnd(_Event):
    """The call is complete; `arguments` is the parsed JSON (raw text under `_raw` if it was
    not valid JSON)."""

    type: Literal["tool-call-end"] = "tool-call-end"
    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict[str, Any])

    def to_chat(self, encoder: ChatEncoder) -> list[dict[str, Any]]:
        event: dict[str, Any] = {"type": "tool-input-available", "id": self.id}
        event.update(name=self.name, input=self.arguments)
        return [encoder.other(event)]


class Usage(_Event):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class Metrics(_Event):
    """Timings of one generation, measured by the provider."""

    time_to_first_token_ms: float | None = None
    tokens_per_second: float | None = None
    prompt_tokens_per_second: float | None = None
    queue_wait_ms: float | None = None


class Finish(_Event):
    """The end of a generation: why it stopped (as the model said), usage and timings."""

    type: Literal["finish"] = "finish"
    reason: str | None = None
    usage: Usage | None = None
    metrics: Metrics | None = None

    def to_chat(self, encoder: ChatEncoder) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if self.usage is not None:
            usage = self.usage.model_dump(exclude_none=True)
            if usage:
                events.append(encoder.other({"type": "usage", **usage}))
        if self.metrics is not None:
            metrics = self.metrics.model_dump(exclude_none=True)
            if metrics:
                events.append(encoder.other({"type": "metrics", **metrics}))
        finish: dict[str, Any] = {"type": "finish", "status": "complete"}
        if self.reason:
            finish["finish_reason"] = self.reason
        events.append(encoder.other(finish))
        return events


ProviderEvent = TextDelta | ReasoningDelta | ToolCallStart | ToolCallDelta | ToolCallEnd | Finish
"""Any event of a provider's stream."""
