"""AnthropicProvider on a MockTransport replaying the documented Messages stream."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import ait
from ait.providers import (
    AnthropicProvider,
    ChatMessage,
    ChatRequest,
    ContentPart,
    ReasoningDelta,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
)

from .helpers import (
    FAST_RETRY,
    Script,
    anthropic_sse,
    anthropic_text,
    collect,
    collect_until_error,
    finish_of,
    ok,
    request,
)

MakeClient = Callable[[Any], httpx.AsyncClient]

TOOL_ID = "toolu_01T1x1fJ34qAmk2tNTrN7Up6"


def block_start(index: int, **block: Any) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def block_delta(index: int, **delta: Any) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def block_stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def json_piece(index: int, piece: str) -> dict[str, Any]:
    return block_delta(index, type="input_json_delta", partial_json=piece)


# The documented example stream (docs.anthropic.com, "Streaming Messages"), with a thinking
# block first and pings in between.
DOCUMENTED = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_014p7gG3wDgGV9EUtLvnow3U",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 472, "output_tokens": 2},
        },
    },
    block_start(0, type="thinking", thinking=""),
    block_delta(0, type="thinking_delta", thinking="The user wants"),
    {"type": "ping"},
    block_delta(0, type="thinking_delta", thinking=" the weather."),
    block_delta(0, type="signature_delta", signature="EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkz"),
    block_stop(0),
    block_start(1, type="text", text=""),
    block_delta(1, type="text_delta", text="Okay, let's check"),
    block_delta(1, type="text_delta", text=" the weather for San Francisco, CA:"),
    block_stop(1),
    block_start(2, type="tool_use", id=TOOL_ID, name="get_weather", input={}),
    json_piece(2, ""),
    json_piece(2, '{"location":'),
    json_piece(2, ' "San Fra'),
    {"type": "ping"},
    json_piece(2, 'ncisco, CA", "unit": "fahrenheit"}'),
    block_stop(2),
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 89},
    },
    {"type": "message_stop"},
]


def provider(client: httpx.AsyncClient, **options: Any) -> AnthropicProvider:
    return AnthropicProvider(
        "claude-x", api_key="sk-ant-test", client=client, retry=FAST_RETRY, **options
    )


async def sent(mock_client: MakeClient, req: ChatRequest, **options: Any) -> httpx.Request:
    script = Script(ok(anthropic_text("ok")))
    await collect(provider(mock_client(script), **options).stream(req))
    return script.requests[0]


def body_of(http_request: httpx.Request) -> dict[str, Any]:
    return json.loads(http_request.content)


# -- the stream ---------------------------------------------------------------------------------


async def test_the_documented_stream(mock_client: MakeClient) -> None:
    script = Script(ok(anthropic_sse(*DOCUMENTED), pause=0.001))
    events = await collect(provider(mock_client(script)).stream(request()))
    assert events[:-1] == [
        ReasoningDelta(text="The user wants"),
        ReasoningDelta(text=" the weather."),
        TextDelta(text="Okay, let's check"),
        TextDelta(text=" the weather for San Francisco, CA:"),
        ToolCallStart(id=TOOL_ID, name="get_weather"),
        ToolCallDelta(id=TOOL_ID, delta='{"location":'),
        ToolCallDelta(id=TOOL_ID, delta=' "San Fra'),
        ToolCallDelta(id=TOOL_ID, delta='ncisco, CA", "unit": "fahrenheit"}'),
        ToolCallEnd(
            id=TOOL_ID,
            name="get_weather",
            arguments={"location": "San Francisco, CA", "unit": "fahrenheit"},
        ),
    ]
    finish = finish_of(events)
    assert finish.reason == "tool_use"
    assert finish.usage == Usage(prompt_tokens=472, completion_tokens=89)
    assert finish.metrics is not None
    assert finish.metrics.time_to_first_token_ms is not None
    assert finish.metrics.time_to_first_token_ms > 0
    assert finish.metrics.tokens_per_second is not None and finish.metrics.tokens_per_second > 0


async def test_the_documented_stream_cut_at_every_byte(mock_client: MakeClient) -> None:
    whole = b"".join(anthropic_sse(*DOCUMENTED)).replace(b"\n", b"\r\n")
    bytewise = [whole[i : i + 1] for i in range(len(whole))]
    events = await collect(provider(mock_client(Script(ok(bytewise)))).stream(request()))
    reference = await collect(
        provider(mock_client(Script(ok(anthropic_sse(*DOCUMENTED))))).stream(request())
    )
    assert events[:-1] == reference[:-1]
    assert finish_of(events).usage == finish_of(reference).usage


async def test_text_in_the_block_start_and_a_tool_with_its_input_given_whole(
    mock_client: MakeClient,
) -> None:
    body = anthropic_sse(
        {"type": "message_start", "message": {"usage": {"input_tokens": 3}}},
        block_start(0, type="text", text="Hi"),
        block_stop(0),
        block_start(1, type="tool_use", id="t1", name="f", input={"a": 1}),
        block_stop(1),
        block_start(2, type="tool_use", id="t2", name="g", input={}),
        json_piece(2, '{"broken": '),
        block_stop(2),
        block_delta(3, type="future_delta", x=1),
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}},
        {"type": "message_stop"},
    )
    events = await collect(provider(mock_client(Script(ok(body)))).stream(request()))
    assert events[:-1] == [
        TextDelta(text="Hi"),
        ToolCallStart(id="t1", name="f"),
        ToolCallEnd(id="t1", name="f", arguments={"a": 1}),
        ToolCallStart(id="t2", name="g"),
        ToolCallDelta(id="t2", delta='{"broken": '),
        ToolCallEnd(id="t2", name="g", arguments={"_raw": '{"broken": '}),
    ]


async def test_a_stream_without_message_stop_is_an_error(mock_client: MakeClient) -> None:
    script = Script(ok(anthropic_text("Hi")[:-1]))
    events, error = await collect_until_error(provider(mock_client(script)).stream(request()))
    assert events == [TextDelta(text="Hi")]
    assert isinstance(error, ait.ProviderStreamError) and "message_stop" in str(error)


async def test_message_stop_without_its_blank_line(mock_client: MakeClient) -> None:
    body = anthropic_text("Hi")
    body[-1] = body[-1].rstrip(b"\n")
    events = await collect(provider(mock_client(Script(ok(body)))).stream(request()))
    assert finish_of(events).reason == "end_turn"


async def test_an_error_event_by_name_only(mock_client: MakeClient) -> None:
    # The type may be missing from the data: the SSE event name says it.
    body = [
        *anthropic_text("Hi")[:3],
        b'event: error\ndata: {"error": {"type": "api_error", "message": "Internal"}}\n\n',
    ]
    events, error = await collect_until_error(
        provider(mock_client(Script(ok(body)))).stream(request())
    )
    assert events == [TextDelta(text="Hi")]
    assert isinstance(error, ait.ProviderStreamError) and "Internal" in str(error)


# -- the request --------------------------------------------------------------------------------


async def test_headers_and_minimal_body(mock_client: MakeClient) -> None:
    http = await sent(mock_client, request("hello"))
    assert str(http.url) == "https://api.anthropic.com/v1/messages"
    assert http.headers["x-api-key"] == "sk-ant-test"
    assert http.headers["anthropic-version"] == "2023-06-01"
    assert http.headers["accept"] == "text/event-stream"
    assert "authorization" not in http.headers
    assert body_of(http) == {
        "model": "claude-x",
        "max_tokens": 1024,  # the API needs one: the provider's default
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
        "stream": True,
    }


async def test_every_field_when_set(mock_client: MakeClient) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    req = ChatRequest(
        model="claude-other",
        messages=[
            ChatMessage(role="system", content="Be brief."),
            ChatMessage(role="system", content="Use metric units."),
            ChatMessage(
                role="user",
                content=[
                    ContentPart(type="text", text="Weather here and there?"),
                    ContentPart(type="image_url", image_url="https://img.test/a.png"),
                ],
            ),
            ChatMessage(
                role="assistant",
                content="Checking.",
                tool_calls=[
                    ToolCall(id="toolu_1", name="get_weather", arguments={"city": "Paris"}),
                    ToolCall(id="toolu_2", name="get_weather", arguments={"city": "Rome"}),
                ],
            ),
            ChatMessage(role="tool", tool_call_id="toolu_1", content="18C"),
            ChatMessage(role="tool", tool_call_id="toolu_2", content="error: down"),
            ChatMessage(role="user", content="Thanks"),
        ],
        tools=[Tool(name="get_weather", description="Weather now", parameters=schema)],
        tool_choice="get_weather",
        max_tokens=300,
        temperature=0.2,
        top_p=0.9,
        top_k=5,
        stop=["END"],
        seed=7,  # no such field in the Messages API: not sent
        enable_thinking=True,
        thinking_budget=2048,
    )
    assert body_of(await sent(mock_client, req)) == {
        "model": "claude-other",
        "max_tokens": 300,
        "system": "Be brief.\n\nUse metric units.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather here and there?"},
                    {"type": "image", "source": {"type": "url", "url": "https://img.test/a.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                    {
                        "type": "tool_use",
                        "id": "toolu_2",
                        "name": "get_weather",
                        "input": {"city": "Rome"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "error: down"},
                ],
            },
            {"role": "user", "content": [{"type": "text", "text": "Thanks"}]},
        ],
        "stream": True,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 5,
        "stop_sequences": ["END"],
        "tools": [{"name": "get_weather", "description": "Weather now", "input_schema": schema}],
        "tool_choice": {"type": "tool", "name": "get_weather"},
        "thinking": {"type": "enabled", "budget_tokens": 2048},
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("auto", {"type": "auto"}), ("required", {"type": "any"}), ("none", {"type": "none"})],
)
async def test_tool_choice(mock_client: MakeClient, choice: str, expected: dict[str, str]) -> None:
    req = request(tools=[Tool(name="f")], tool_choice=choice)
    assert body_of(await sent(mock_client, req))["tool_choice"] == expected


async def test_thinking_defaults_and_off(mock_client: MakeClient) -> None:
    body = body_of(await sent(mock_client, request(enable_thinking=True)))
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert "thinking" not in body_of(await sent(mock_client, request(enable_thinking=False)))


async def test_own_max_tokens_and_headers(mock_client: MakeClient) -> None:
    http = await sent(mock_client, request(), max_tokens=77, headers={"anthropic-beta": "x"})
    assert body_of(http)["max_tokens"] == 77
    assert http.headers["anthropic-beta"] == "x"


# -- configuration ------------------------------------------------------------------------------


def test_a_key_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ait.ProviderConfigError, match="ANTHROPIC_API_KEY"):
        AnthropicProvider("claude-x")
    with pytest.raises(ait.ProviderConfigError, match="ANTHROPIC_API_KEY"):
        AnthropicProvider("claude-x", api_key="")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env")
    assert AnthropicProvider("claude-x").api_key == "sk-ant-env"


@pytest.mark.parametrize("base_url", ["", "api.anthropic.com", "ws://api.anthropic.com/v1"])
def test_bad_base_url(base_url: str) -> None:
    with pytest.raises(ait.ProviderConfigError, match="base URL"):
        AnthropicProvider("claude-x", api_key="k", base_url=base_url)
