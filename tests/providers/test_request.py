"""ChatRequest: every bad field is refused with ProviderRequestError when the request is built,
and a folded conversation becomes the right prompt."""

from __future__ import annotations

import math
from typing import Any

import pydantic
import pytest

import ait
from ait.codec.chat import ChatCodec
from ait.conversation import Message, ReasoningPart, TextPart, ToolCallPart
from ait.events import Input, Output, RunEnd, RunStart
from ait.providers import ChatMessage, ChatRequest, ContentPart, ResponseFormat, Tool, ToolCall

USER = {"role": "user", "content": "hi"}
WEATHER = {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}

# -- validation ---------------------------------------------------------------------------------

BAD_REQUESTS: dict[str, dict[str, Any]] = {
    "no messages": {"messages": []},
    "messages missing": {"messages": None},
    "messages not a list": {"messages": "hi"},
    "unknown role": {"messages": [{"role": "robot", "content": "x"}]},
    "tool message without call id": {"messages": [{"role": "tool", "content": "x"}]},
    "tool calls on a user message": {
        "messages": [{"role": "user", "tool_calls": [{"id": "c1", "name": "f"}]}]
    },
    "tool call without id": {
        "messages": [{"role": "assistant", "tool_calls": [{"id": "", "name": "f"}]}]
    },
    "tool call without name": {
        "messages": [{"role": "assistant", "tool_calls": [{"id": "c1", "name": ""}]}]
    },
    "tool call arguments not an object": {
        "messages": [
            {"role": "assistant", "tool_calls": [{"id": "c", "name": "f", "arguments": 3}]}
        ]
    },
    "text part without text": {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
    "image part without url": {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
    "unknown part type": {"messages": [{"role": "user", "content": [{"type": "video"}]}]},
    "unknown message field": {"messages": [{"role": "user", "content": "x", "name": "bob"}]},
    "max_tokens zero": {"max_tokens": 0},
    "max_tokens negative": {"max_tokens": -5},
    "max_tokens text": {"max_tokens": "many"},
    "temperature below 0": {"temperature": -0.1},
    "temperature above 2": {"temperature": 2.5},
    "temperature nan": {"temperature": math.nan},
    "top_p zero": {"top_p": 0},
    "top_p above 1": {"top_p": 1.01},
    "top_k zero": {"top_k": 0},
    "too many stop strings": {"stop": [str(i) for i in range(17)]},
    "stop not a list": {"stop": 5},
    "seed text": {"seed": "lucky"},
    "repetition_penalty zero": {"repetition_penalty": 0},
    "repetition_penalty infinite": {"repetition_penalty": math.inf},
    "model not a string": {"model": 42},
    "enable_thinking not a bool": {"enable_thinking": "maybe"},
    "thinking_budget zero": {"thinking_budget": 0},
    "tool name with spaces": {"tools": [{"name": "get weather"}]},
    "tool name too long": {"tools": [{"name": "x" * 65}]},
    "tool name empty": {"tools": [{"name": ""}]},
    "duplicate tool names": {"tools": [WEATHER, WEATHER]},
    "tool parameters not JSON": {"tools": [{"name": "f", "parameters": {"a": object()}}]},
    "tool parameters with NaN": {"tools": [{"name": "f", "parameters": {"maximum": math.nan}}]},
    "tool call arguments not JSON": {
        "messages": [
            {"role": "assistant", "tool_calls": [{"id": "c", "name": "f", "arguments": {"s": {1}}}]}
        ]
    },
    "tool_choice names no tool": {"tools": [WEATHER], "tool_choice": "get_time"},
    "tool_choice names a tool but there are none": {"tool_choice": "get_weather"},
    "tool_choice required without tools": {"tool_choice": "required"},
    "json_schema format without schema": {"response_format": {"type": "json_schema"}},
    "unknown format type": {"response_format": {"type": "xml"}},
    "format schema not JSON": {
        "response_format": {"type": "json_schema", "schema": {"type": object()}}
    },
    "unknown request field": {"frequency_penalty": 0.5},
}


@pytest.mark.parametrize("fields", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_every_bad_field_raises_provider_request_error(fields: dict[str, Any]) -> None:
    data = {"messages": [USER], **fields}
    if data["messages"] is None:
        del data["messages"]
    with pytest.raises(ait.ProviderRequestError) as caught:
        ChatRequest(**data)
    error = caught.value
    assert not isinstance(error, pydantic.ValidationError)
    assert isinstance(error, ait.ProviderError) and isinstance(error, ValueError)
    assert error.code == "invalid-request"
    assert str(error).startswith("invalid ")
    assert error.__cause__ is None and error.__suppress_context__  # no pydantic trace


def test_the_message_names_the_field() -> None:
    with pytest.raises(ait.ProviderRequestError, match="max_tokens"):
        ChatRequest(messages=[USER], max_tokens=0)
    with pytest.raises(ait.ProviderRequestError, match=r"messages\.0: .*role"):
        ChatRequest(messages=[{"role": "robot"}])
    with pytest.raises(ait.ProviderRequestError, match="not among the tools"):
        ChatRequest(messages=[USER], tools=[WEATHER], tool_choice="nope")


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (ChatMessage, {"role": "tool", "content": "x"}),
        (ContentPart, {"type": "text"}),
        (ToolCall, {"id": "", "name": "f"}),
        (Tool, {"name": "a b"}),
        (ResponseFormat, {"type": "json_schema"}),
    ],
)
def test_the_parts_of_a_request_are_checked_too(model: type[Any], fields: dict[str, Any]) -> None:
    with pytest.raises(ait.ProviderRequestError, match=f"invalid {model.__name__}"):
        model(**fields)


def test_a_good_request_keeps_its_fields() -> None:
    req = ChatRequest(
        messages=[
            ChatMessage(role="system", content="Be brief."),
            ChatMessage(
                role="user",
                content=[
                    ContentPart(type="text", text="what is this?"),
                    ContentPart(type="image_url", image_url="data:image/png;base64,AAAA"),
                ],
            ),
        ],
        model="m",
        tools=[Tool(name="get_weather", description="d")],
        tool_choice="get_weather",
        max_tokens=10,
        temperature=0,
        top_p=1,
        top_k=1,
        stop=["\n"] * 16,
        seed=-1,
        response_format=ResponseFormat(type="json_schema", schema={"type": "object"}),
        enable_thinking=False,
        thinking_budget=1,
    )
    assert req.messages[1].text == "what is this?"
    assert req.response_format is not None and req.response_format.schema_ == {"type": "object"}
    assert req.tools[0].parameters == {"type": "object", "properties": {}}
    with pytest.raises(pydantic.ValidationError):  # frozen
        req.max_tokens = 5  # type: ignore[misc]


# -- from_conversation --------------------------------------------------------------------------


class Channel:
    """Entries of one channel with increasing ids, folded with the Tree clients use."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, Any]] = []

    def add(self, event: Any) -> None:
        self.entries.append((f"{len(self.entries) + 1}-0", event))

    def user(self, message_id: str, text: str, parent: str | None = None) -> None:
        self.add(
            Input(
                event_id=f"ev-{message_id}",
                message_id=message_id,
                role="user",
                client_id="alice",
                parent=parent,
                payload=ChatCodec.user_text(text),
            )
        )

    def amend(self, message_id: str, payload: list[dict[str, Any]]) -> None:
        self.add(
            Input(
                event_id=f"ev-amend-{len(self.entries)}",
                message_id=message_id,
                role="tool",
                client_id="alice",
                payload=payload,
            )
        )

    def answer(self, run_id: str, input_id: str, message_id: str, *payload: dict[str, Any]) -> None:
        self.add(
            RunStart(
                run_id=run_id,
                invocation_id=f"inv-{run_id}",
                input_event_id=f"ev-{input_id}",
                input_message_id=input_id,
                run_client_id="alice",
                parent=input_id,
            )
        )
        self.add(
            Output(
                run_id=run_id,
                message_id=message_id,
                role="assistant",
                parent=input_id,
                payload=list(payload),
            )
        )
        self.add(RunEnd(run_id=run_id, invocation_id=f"inv-{run_id}", reason="complete"))

    def path_to(self, message_id: str) -> list[Message]:
        tree = ait.Tree()
        assert tree.apply(self.entries) == []
        return tree.path_to(message_id)


def tool_call(call_id: str, name: str, arguments: str) -> list[dict[str, Any]]:
    return [
        {"type": "tool-input-start", "id": call_id, "name": name},
        {"type": "tool-input-delta", "id": call_id, "delta": arguments},
    ]


def test_from_a_folded_conversation() -> None:
    chat = Channel()
    chat.user("u1", "Weather in Paris, London and Rome?")
    chat.answer(
        "r1",
        "u1",
        "a1",
        {"type": "reasoning-delta", "id": "r0", "delta": "I should call the tool."},
        {"type": "text-delta", "id": "t0", "delta": "Let me "},
        {"type": "text-delta", "id": "t0", "delta": "check."},
        *tool_call("c1", "get_weather", '{"city": "Paris"}'),
        {
            "type": "tool-input-available",
            "id": "c1",
            "name": "get_weather",
            "input": {"city": "Paris"},
        },
        {"type": "tool-output-available", "id": "c1", "output": {"temp": 18}},
        *tool_call("c2", "get_weather", '{"city": "London"}'),
        {
            "type": "tool-input-available",
            "id": "c2",
            "name": "get_weather",
            "input": {"city": "London"},
        },
        *tool_call("c3", "get_weather", '{"city": "Rome"}'),
        {
            "type": "tool-input-available",
            "id": "c3",
            "name": "get_weather",
            "input": {"city": "Rome"},
        },
        {"type": "tool-approval-request", "id": "c3"},
        {"type": "finish", "finish_reason": "tool_calls", "status": "complete"},
    )
    # The client's answers arrive as amendments of the assistant message.
    chat.amend("a1", ChatCodec.tool_error("c2", "service down"))
    chat.amend("a1", ChatCodec.approval("c3", approved=False, reason="not Rome"))
    chat.user("u2", "Thanks!", parent="a1")
    chat.answer("r2", "u2", "a2", {"type": "text-delta", "id": "t0", "delta": "You're welcome."})

    messages = chat.path_to("a2")
    assert [m.id for m in messages] == ["u1", "a1", "u2", "a2"]
    request = ChatRequest.from_conversation(messages, system="Be brief.", max_tokens=50)

    assert request.max_tokens == 50
    assert [m.model_dump(exclude_defaults=True) for m in request.messages] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris, London and Rome?"},
        {
            "role": "assistant",
            "content": "Let me check.",  # the reasoning is left out
            "tool_calls": [
                {"id": "c1", "name": "get_weather", "arguments": {"city": "Paris"}},
                {"id": "c2", "name": "get_weather", "arguments": {"city": "London"}},
                {"id": "c3", "name": "get_weather", "arguments": {"city": "Rome"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 18}'},
        {"role": "tool", "tool_call_id": "c2", "content": "error: service down"},
        {"role": "tool", "tool_call_id": "c3", "content": "the user denied this call: not Rome"},
        {"role": "user", "content": "Thanks!"},
        {"role": "assistant", "content": "You're welcome."},
    ]


def test_system_prompt_comes_first_and_is_optional() -> None:
    chat = Channel()
    chat.user("u1", "hi")
    (user,) = chat.path_to("u1")
    assert [m.role for m in ChatRequest.from_conversation([user], system="S").messages] == [
        "system",
        "user",
    ]
    assert [m.role for m in ChatRequest.from_conversation([user]).messages] == ["user"]
    assert [m.role for m in ChatRequest.from_conversation([user], system="").messages] == ["user"]


def call(call_id: str = "c1", **fields: Any) -> ToolCallPart:
    defaults: dict[str, Any] = {"id": call_id, "name": "f", "state": "input-available"}
    return ToolCallPart(**{**defaults, **fields})


def assistant(*parts: Any, **fields: Any) -> Message:
    return Message(
        **{"id": "a", "role": "assistant", "parts": parts, "status": "complete", **fields}
    )


def test_tool_results_of_every_kind() -> None:
    message = assistant(
        call("c1", state="output-available", input={"x": 1}, output="plain text"),
        call("c2", state="output-available", output=[1, 2]),
        call("c3", state="output-available", output=None),
        call("c4", state="output-error", error="boom"),
        call("c5", approval="denied"),
        call("c6", approval="approved"),  # approved, not run yet: no result
        call("c7"),  # pending (a client-side tool): no result yet
    )
    prompt = ChatRequest.from_conversation([message]).messages
    assert [(m.tool_call_id, m.content) for m in prompt[1:]] == [
        ("c1", "plain text"),
        ("c2", "[1, 2]"),
        ("c3", "null"),
        ("c4", "error: boom"),
        ("c5", "the user denied this call"),
    ]
    # Calls still waiting for an answer are left out: APIs refuse a tool call that no
    # tool message follows.
    assert [c.id for c in prompt[0].tool_calls] == [f"c{i}" for i in range(1, 6)]


def test_tool_arguments_from_input_or_from_the_streamed_text() -> None:
    answered = {"error": "timed out"}  # an answer of some kind, so the call is kept
    message = assistant(
        call("c1", input={"a": 1}, input_text='{"a": 2}', state="output-error", **answered),
        call("c2", state="output-error", input_text='{"b": 2}', **answered),
        call("c3", state="output-error", input_text='{"b": ', **answered),  # cut short
        call("c4", state="output-error", input_text="[1, 2]", **answered),  # not an object
        call("c5", state="output-error", **answered),
    )
    prompt, *_results = ChatRequest.from_conversation([message]).messages
    assert [c.arguments for c in prompt.tool_calls] == [
        {"a": 1},
        {"b": 2},
        {"_raw": '{"b": '},
        {"value": [1, 2]},
        {},
    ]


def test_errors_and_cancellations_keep_their_partial_text() -> None:
    failed = assistant(
        TextPart(id="t0", text="Half an ans"),
        status="error",
        error={"code": "provider-stream", "message": "dropped"},
    )
    (prompt,) = ChatRequest.from_conversation([failed]).messages
    assert (prompt.role, prompt.content) == ("assistant", "Half an ans")


def test_messages_that_carry_nothing_for_the_model_are_left_out() -> None:
    user = Message(id="u", role="user", parts=(TextPart(id="t", text="hi"),), status="complete")
    thinking_only = assistant(ReasoningPart(id="r", text="hmm"))
    cancelled_at_once = assistant(status="cancelled")
    empty_system = Message(id="s", role="system", status="complete")
    prompt = ChatRequest.from_conversation(
        [empty_system, user, thinking_only, cancelled_at_once]
    ).messages
    assert [(m.role, m.content) for m in prompt] == [("user", "hi")]


def test_an_empty_user_message_is_kept() -> None:
    # A user message of only data parts still asks for an answer.
    user = Message(id="u", role="user", status="complete")
    assert [(m.role, m.content) for m in ChatRequest.from_conversation([user]).messages] == [
        ("user", "")
    ]


def test_other_roles_become_user_messages() -> None:
    # Any client may publish an input with any role: a prompt must still be valid.
    for role in ("tool", "developer", "observer"):
        message = Message(id="x", role=role, parts=(TextPart(id="t", text="note"),))
        prompt = ChatRequest.from_conversation([message]).messages
        assert [(m.role, m.content) for m in prompt] == [("user", "note")]


def test_from_conversation_checks_its_options() -> None:
    user = Message(id="u", role="user", parts=(TextPart(id="t", text="hi"),))
    with pytest.raises(ait.ProviderRequestError, match="temperature"):
        ChatRequest.from_conversation([user], temperature=9)
    with pytest.raises(ait.ProviderRequestError, match="messages"):
        ChatRequest.from_conversation([])
