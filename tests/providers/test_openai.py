"""OpenAIProvider on a MockTransport: the stream it reads, the request it sends, its config."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import ait
from ait.providers import (
    ChatMessage,
    ChatRequest,
    ContentPart,
    OpenAIProvider,
    ReasoningDelta,
    ResponseFormat,
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
    chunk,
    collect,
    collect_until_error,
    finish_of,
    ok,
    openai_sse,
    request,
    text_chunk,
    text_of,
    tool_chunk,
)

MakeClient = Callable[[Any], httpx.AsyncClient]
URL = "http://llm.test/v1"


def provider(client: httpx.AsyncClient, **options: Any) -> OpenAIProvider:
    return OpenAIProvider("test-model", base_url=URL, client=client, retry=FAST_RETRY, **options)


async def sent(mock_client: MakeClient, req: ChatRequest, **options: Any) -> httpx.Request:
    """The HTTP request the provider sends for `req` (answered with a short stream)."""
    script = Script(ok(openai_sse(text_chunk("ok"), chunk(finish="stop"))))
    await collect(provider(mock_client(script), **options).stream(req))
    assert script.count == 1
    return script.requests[0]


def body_of(http_request: httpx.Request) -> dict[str, Any]:
    return json.loads(http_request.content)


# -- the stream ---------------------------------------------------------------------------------


async def test_text_deltas_usage_and_done(mock_client: MakeClient) -> None:
    script = Script(
        ok(
            openai_sse(
                chunk({"role": "assistant", "content": ""}),
                text_chunk("Hel"),
                text_chunk("lo"),
                text_chunk(""),
                chunk(finish="stop"),
                chunk(choices=False, usage={"prompt_tokens": 9, "completion_tokens": 2}),
            ),
            pause=0.002,
        )
    )
    events = await collect(provider(mock_client(script)).stream(request()))
    assert events[:2] == [TextDelta(text="Hel"), TextDelta(text="lo")]
    finish = finish_of(events)
    assert len(events) == 3
    assert finish.reason == "stop"
    assert finish.usage == Usage(prompt_tokens=9, completion_tokens=2)
    assert finish.metrics is not None
    assert finish.metrics.time_to_first_token_ms is not None
    assert finish.metrics.time_to_first_token_ms > 0
    assert finish.metrics.tokens_per_second is not None and finish.metrics.tokens_per_second > 0
    assert finish.metrics.queue_wait_ms is not None and finish.metrics.queue_wait_ms >= 0
    assert script.count == 1


async def test_nothing_after_done_is_read(mock_client: MakeClient) -> None:
    body = [*openai_sse(text_chunk("a"), chunk(finish="stop")), b"data: {not json\n\n"]
    events = await collect(provider(mock_client(Script(ok(body)))).stream(request()))
    assert text_of(events) == "a" and finish_of(events).reason == "stop"


async def test_a_stream_cut_before_done_and_finish_is_an_error(mock_client: MakeClient) -> None:
    body = openai_sse(text_chunk("a"), done=False)
    script = Script(ok(body))
    events, error = await collect_until_error(provider(mock_client(script)).stream(request()))
    assert events == [TextDelta(text="a")]
    assert isinstance(error, ait.ProviderStreamError) and "[DONE]" in str(error)
    assert script.count == 1


async def test_a_finish_reason_without_done_is_enough(mock_client: MakeClient) -> None:
    body = openai_sse(text_chunk("a"), chunk(finish="length"), done=False)
    events = await collect(provider(mock_client(Script(ok(body)))).stream(request()))
    assert finish_of(events).reason == "length"


async def test_the_last_event_without_its_blank_line_is_read(mock_client: MakeClient) -> None:
    # Some servers close right after the last line: the decoder's flush must be used.
    usage = chunk(choices=False, usage={"prompt_tokens": 3, "completion_tokens": 1})
    body = [*openai_sse(text_chunk("a"), chunk(finish="stop"), done=False)]
    body.append(b"data: " + json.dumps(usage).encode())
    events = await collect(provider(mock_client(Script(ok(body)))).stream(request()))
    assert finish_of(events).usage == Usage(prompt_tokens=3, completion_tokens=1)

    body = [*openai_sse(text_chunk("a"), done=False), b"data: [DONE]"]
    events = await collect(provider(mock_client(Script(ok(body)))).stream(request()))
    assert finish_of(events).reason is None and text_of(events) == "a"


async def test_a_body_cut_at_every_byte_gives_the_same_events(mock_client: MakeClient) -> None:
    whole = b"".join(
        openai_sse(
            text_chunk("h\u00e9llo \U0001f642"),
            tool_chunk(0, id="c1", name="f", arguments='{"a":'),
            tool_chunk(0, arguments=" 1}"),
            chunk(finish="tool_calls"),
            chunk(choices=False, usage={"prompt_tokens": 1, "completion_tokens": 2}),
        )
    ).replace(b"\n", b"\r\n")
    reference = await collect(provider(mock_client(Script(ok([whole])))).stream(request()))
    bytewise = [whole[i : i + 1] for i in range(len(whole))]
    events = await collect(provider(mock_client(Script(ok(bytewise)))).stream(request()))
    strip = [e for e in events if e.type != "finish"]
    assert strip == [e for e in reference if e.type != "finish"]
    assert text_of(events) == "h\u00e9llo \U0001f642"
    assert finish_of(events).usage == finish_of(reference).usage


async def test_tool_calls_assembled_across_chunks(mock_client: MakeClient) -> None:
    script = Script(
        ok(
            openai_sse(
                chunk({"role": "assistant", "content": None}),
                tool_chunk(0, id="call_a", name="get_weather", arguments=""),
                tool_chunk(0, arguments='{"ci'),
                tool_chunk(1, id="call_b", name="get_time", arguments='{"tz"'),
                tool_chunk(0, arguments='ty": "Pa'),
                tool_chunk(1, arguments=': "CET"}'),
                tool_chunk(0, arguments='ris"}'),
                chunk(finish="tool_calls"),
            )
        )
    )
    events = await collect(provider(mock_client(script)).stream(request()))
    assert events[:-1] == [
        ToolCallStart(id="call_a", name="get_weather"),
        ToolCallDelta(id="call_a", delta='{"ci'),
        ToolCallStart(id="call_b", name="get_time"),
        ToolCallDelta(id="call_b", delta='{"tz"'),
        ToolCallDelta(id="call_a", delta='ty": "Pa'),
        ToolCallDelta(id="call_b", delta=': "CET"}'),
        ToolCallDelta(id="call_a", delta='ris"}'),
        ToolCallEnd(id="call_a", name="get_weather", arguments={"city": "Paris"}),
        ToolCallEnd(id="call_b", name="get_time", arguments={"tz": "CET"}),
    ]
    assert finish_of(events).reason == "tool_calls"


async def test_tool_call_oddities(mock_client: MakeClient) -> None:
    script = Script(
        ok(
            openai_sse(
                text_chunk("Calling."),
                tool_chunk(0, name="no_id", arguments="{}"),  # some servers leave the id out
                tool_chunk(1, id="c1", name="broken", arguments='{"a": '),  # never completed
                tool_chunk(2, id="c2", name="listy", arguments="[1]"),
                tool_chunk(3, id="c3", name="empty"),
                chunk(finish="tool_calls"),
            )
        )
    )
    events = await collect(provider(mock_client(script)).stream(request()))
    ends = [e for e in events if isinstance(e, ToolCallEnd)]
    assert [(e.id, e.name, e.arguments) for e in ends] == [
        ("call_0", "no_id", {}),
        ("c1", "broken", {"_raw": '{"a": '}),
        ("c2", "listy", {"value": [1]}),
        ("c3", "empty", {}),
    ]
    assert events[0] == TextDelta(text="Calling.")


async def test_reasoning_deltas(mock_client: MakeClient) -> None:
    script = Script(
        ok(
            openai_sse(
                chunk({"reasoning_content": "Think"}),
                chunk({"reasoning": "ing."}),  # vLLM's newer field name
                chunk({"reasoning_content": "", "content": "Done."}),
                chunk(finish="stop"),
            )
        )
    )
    events = await collect(provider(mock_client(script)).stream(request()))
    assert events[:-1] == [
        ReasoningDelta(text="Think"),
        ReasoningDelta(text="ing."),
        TextDelta(text="Done."),
    ]


async def test_closing_the_stream_early_closes_the_response(mock_client: MakeClient) -> None:
    responder = ok(openai_sse(*(text_chunk(str(i)) for i in range(50))), pause=0.001)
    script = Script(responder)
    stream = provider(mock_client(script)).stream(request())
    assert await anext(stream) == TextDelta(text="0")
    await stream.aclose()  # type: ignore[attr-defined]
    (body,) = responder.streams
    assert body.closed and body.sent < 50


# -- the request --------------------------------------------------------------------------------


async def test_minimal_body_and_headers(mock_client: MakeClient) -> None:
    http = await sent(mock_client, request("hello"))
    assert http.method == "POST" and str(http.url) == f"{URL}/chat/completions"
    assert http.headers["accept"] == "text/event-stream"
    assert http.headers["content-type"] == "application/json"
    assert "authorization" not in http.headers  # no key: a local server
    assert body_of(http) == {
        "model": "test-model",
        "messages": [{"role": "user", "content": "hello"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_every_field_when_set(mock_client: MakeClient) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    req = ChatRequest(
        model="other-model",
        messages=[
            ChatMessage(role="system", content="Be brief."),
            ChatMessage(
                role="user",
                content=[
                    ContentPart(type="text", text="look"),
                    ContentPart(type="image_url", image_url="data:image/png;base64,AA=="),
                ],
            ),
            ChatMessage(
                role="assistant",
                content="",
                tool_calls=[ToolCall(id="c1", name="get_weather", arguments={"city": "Paris"})],
            ),
            ChatMessage(role="tool", tool_call_id="c1", content="18C"),
        ],
        tools=[Tool(name="get_weather", description="Weather now", parameters=schema)],
        tool_choice="get_weather",
        max_tokens=7,
        temperature=0.5,
        top_p=0.9,
        top_k=40,
        stop=["\n\n", "END"],
        seed=1234,
        repetition_penalty=1.1,
        response_format=ResponseFormat(type="json_schema", schema=schema, name="answer"),
        enable_thinking=False,
    )
    body = body_of(await sent(mock_client, req))
    assert body == {
        "model": "other-model",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
                ],
            },
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "content": "18C", "tool_call_id": "c1"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 7,
        "temperature": 0.5,
        "top_p": 0.9,
        "seed": 1234,
        "top_k": 40,
        "repetition_penalty": 1.1,
        "stop": ["\n\n", "END"],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather now",
                    "parameters": schema,
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": True},
        },
        "chat_template_kwargs": {"enable_thinking": False},
    }


@pytest.mark.parametrize("choice", ["auto", "none", "required"])
async def test_tool_choice_keywords(mock_client: MakeClient, choice: str) -> None:
    req = request(tools=[Tool(name="f")], tool_choice=choice)
    assert body_of(await sent(mock_client, req))["tool_choice"] == choice


async def test_optional_fields_only_when_set(mock_client: MakeClient) -> None:
    body = body_of(await sent(mock_client, request(tools=[Tool(name="f")], temperature=0)))
    assert body["temperature"] == 0  # zero is a value, not "unset"
    absent = ["top_k", "seed", "stop", "tool_choice", "response_format", "max_tokens"]
    absent += ["chat_template_kwargs", "repetition_penalty", "top_p"]
    assert [name for name in absent if name in body] == []
    empty = {"type": "object", "properties": {}}
    assert body["tools"] == [
        {"type": "function", "function": {"name": "f", "description": "", "parameters": empty}}
    ]


async def test_json_object_format_and_thinking_on(mock_client: MakeClient) -> None:
    req = request(response_format=ResponseFormat(type="json_object"), enable_thinking=True)
    body = body_of(await sent(mock_client, req))
    assert body["response_format"] == {"type": "json_object"}
    assert body["chat_template_kwargs"] == {"enable_thinking": True}


async def test_authorization_only_with_a_key(
    mock_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    http = await sent(mock_client, request(), api_key="sk-test", headers={"x-extra": "1"})
    assert http.headers["authorization"] == "Bearer sk-test"
    assert http.headers["x-extra"] == "1"

    assert "authorization" not in (await sent(mock_client, request(), api_key="")).headers

    # The environment's OpenAI key goes to OpenAI only, never to another server.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert "authorization" not in (await sent(mock_client, request())).headers
    script = Script(ok(openai_sse(text_chunk("hi"), chunk(finish="stop"))))
    await collect(OpenAIProvider("m", client=mock_client(script)).stream(request()))
    assert script.requests[0].url.host == "api.openai.com"
    assert script.requests[0].headers["authorization"] == "Bearer sk-env"


async def test_base_url_with_trailing_slash(mock_client: MakeClient) -> None:
    script = Script(ok(openai_sse(chunk(finish="stop"))))
    client = mock_client(script)
    llm = OpenAIProvider("m", base_url="http://llm.test:8080/v1/", client=client)
    await collect(llm.stream(request()))
    assert str(script.requests[0].url) == "http://llm.test:8080/v1/chat/completions"


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "",
        "not a url",
        "ftp://llm.test/v1",
        "http://",
        "llm.test/v1",
        "http://[::1/v1",
        "http:///v1",
    ],
)
def test_bad_base_url(base_url: str) -> None:
    with pytest.raises(ait.ProviderConfigError, match="base URL"):
        OpenAIProvider("m", base_url=base_url, api_key="k")


def test_openai_itself_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ait.ProviderConfigError, match="OPENAI_API_KEY"):
        OpenAIProvider("gpt-x")
    with pytest.raises(ait.ProviderConfigError, match="OPENAI_API_KEY"):
        OpenAIProvider("gpt-x", base_url="https://api.openai.com/v1/", api_key="")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert OpenAIProvider("gpt-x").api_key == "sk-env"
    assert OpenAIProvider("gpt-x", api_key="sk-arg").api_key == "sk-arg"


def test_a_compatible_server_needs_no_key() -> None:
    assert OpenAIProvider("local", base_url="http://127.0.0.1:8080/v1").api_key is None


async def test_an_injected_client_is_left_open(mock_client: MakeClient) -> None:
    client = mock_client(Script(ok(openai_sse(chunk(finish="stop")))))
    llm = provider(client)
    await llm.aclose()
    assert not client.is_closed
    await collect(llm.stream(request()))  # still usable


async def test_an_own_client_is_closed() -> None:
    llm = OpenAIProvider("m", base_url=URL)
    await llm.aclose()
    assert llm._client.is_closed  # pyright: ignore[reportPrivateUsage]
