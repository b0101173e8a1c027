"""ChatRequest: what a run asks a model, the same for every provider.

```python
request = ChatRequest(messages=[ChatMessage(role="user", content="hi")], max_tokens=200)
request = ChatRequest.from_conversation(await run.load_conversation(), system="Be brief.")
```

Every field is checked when the request is built: a bad value raises
`ProviderRequestError` before any network or model call.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Self, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from ..conversation import Message, TextPart, ToolCallPart
from ..errors import ProviderRequestError
from ._json import as_dict

__all__ = [
    "ChatMessage",
    "ChatRequest",
    "ContentPart",
    "ResponseFormat",
    "Tool",
    "ToolCall",
]


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    # Checked here, or a non-JSON value would fail later, inside a provider, as a foreign error.
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_json_object)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or type(self).__name__}: {e['msg']}"
                for e in exc.errors()
            )
            raise ProviderRequestError(f"invalid {type(self).__name__}: {problems}") from None


class ContentPart(_Model):
    """A piece of a message's content: text, or an image by URL (data: URLs work)."""

    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.type == "text" and self.text is None:
            raise ValueError("a text part needs text")
        if self.type == "image_url" and not self.image_url:
            raise ValueError("an image part needs image_url")
        return self


class ToolCall(_Model):
    """A call the model made to one of the request's tools."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: JsonObject = Field(default_factory=dict[str, Any])


class ChatMessage(_Model):
    """One message of the prompt."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[ContentPart] = ""
    tool_calls: list[ToolCall] = Field(default_factory=list[ToolCall])
    #: For role `tool`: the call this message answers.
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        return self

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text or "" for part in self.content if part.type == "text")


class Tool(_Model):
    """A function the model may call, described by a JSON schema of its arguments."""

    name: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    description: str = ""
    parameters: JsonObject = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ResponseFormat(_Model):
    """Constrain the output: any JSON object, or JSON matching `schema`."""

    type: Literal["json_object", "json_schema"]
    schema_: JsonObject | None = Field(default=None, alias="schema")
    name: str = "response"

    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, populate_by_name=True
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.type == "json_schema" and not self.schema_:
            raise ValueError("a json_schema response format needs a schema")
        return self


class ChatRequest(_Model):
    """A request for a chat completion, streamed.

    Fields a provider cannot honour are documented per provider (docs/concepts/providers.md).
    """

    messages: list[ChatMessage] = Field(min_length=1)
    #: The model id; providers built for one model ignore it, a registry routes by it.
    model: str | None = None
    tools: list[Tool] = Field(default_factory=list[Tool])
    tool_choice: Literal["auto", "none", "required"] | str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=1)
    stop: list[str] = Field(default_factory=list[str], max_length=16)
    seed: int | None = None
    repetition_penalty: float | None = Field(default=None, gt=0)
    response_format: ResponseFormat | None = None
    #: Ask a reasoning model to think first (where the model supports a switch).
    enable_thinking: bool | None = None
    #: Token budget for thinking (Anthropic).
    thinking_budget: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> Self:
        names = {tool.name for tool in self.tools}
        if len(names) != len(self.tools):
            raise ValueError("tool names must be unique")
        choice = self.tool_choice
        if choice not in (None, "auto", "none", "required") and choice not in names:
            raise ValueError(f"tool_choice names {choice!r}, which is not among the tools")
        if choice == "required" and not self.tools:
            raise ValueError("tool_choice 'required' needs tools")
        return self

    @classmethod
    def from_conversation(
        cls, messages: Sequence[Message], *, system: str | None = None, **options: Any
    ) -> ChatRequest:
        """A request from a run's conversation (`run.load_conversation()`).

        Text parts become content; tool calls become `tool_calls` followed by `tool`
        messages with their results (or errors, or a refused approval); reasoning is left
        out (models do not take their own thoughts back).
        """
        prompt: list[ChatMessage] = []
        if system:
            prompt.append(ChatMessage(role="system", content=system))
        for message in messages:
            prompt.extend(_from_message(message))
        return cls(messages=prompt, **options)


def _from_message(message: Message) -> list[ChatMessage]:
    text = "".join(p.text for p in message.parts if isinstance(p, TextPart))
    # A `tool` message needs the call it answers; tool results live on the assistant message,
    # so any role but these (a client may publish any) speaks as the user.
    role = message.role if message.role in ("system", "user", "assistant") else "user"
    if role != "assistant":
        return [ChatMessage(role=role, content=text)] if text or role == "user" else []
    # A call without an answer yet (the run is waiting for it) cannot go to a model: APIs
    # refuse a tool call that no tool message follows.
    calls = [
        p for p in message.parts if isinstance(p, ToolCallPart) and _tool_result(p) is not None
    ]
    if not text and not calls:
        return []  # nothing the model can read (reasoning only, cancelled at once)
    out = [
        ChatMessage(
            role="assistant",
            content=text,
            tool_calls=[ToolCall(id=c.id, name=c.name, arguments=_arguments(c)) for c in calls],
        )
    ]
    for call in calls:
        result = _tool_result(call)
        if result is not None:
            out.append(ChatMessage(role="tool", tool_call_id=call.id, content=result))
    return out


def _arguments(call: ToolCallPart) -> dict[str, Any]:
    given = as_dict(cast(object, call.input))
    if given:
        return dict(given)
    if call.input_text:
        try:
            parsed = json.loads(call.input_text)
        except ValueError:
            return {"_raw": call.input_text}
        return as_dict(cast(object, parsed)) if isinstance(parsed, dict) else {"value": parsed}
    return {}


def _tool_result(call: ToolCallPart) -> str | None:
    if call.state == "output-available":
        return call.output if isinstance(call.output, str) else json.dumps(call.output)
    if call.state == "output-error":
        return f"error: {call.error}"
    if call.approval == "denied":
        reason = f": {call.approval_reason}" if call.approval_reason else ""
        return f"the user denied this call{reason}"
    return None
