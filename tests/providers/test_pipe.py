"""Every provider streams through `run.pipe` into a real channel: text, reasoning, tool calls
with their input, usage and finish end up on the assistant message (folded with ait.Tree);
failures and cancels end the message as they should."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import pytest

import ait
from ait.conversation import Message, ReasoningPart, ToolCallPart
from ait.ids import new_id
from ait.providers import (
    AnthropicProvider,
    ChatRequest,
    LlamaCppProvider,
    OpenAIProvider,
    Provider,
    TextDelta,
    Tool,
    smollm2_path,
)

from .helpers import (
    FAST_RETRY,
    Script,
    answer_on_channel,
    anthropic_sse,
    chunk,
    fold_channel,
    ok,
    openai_sse,
    publish_user,
    run_turn,
    status,
    text_chunk,
    tool_chunk,
)
from .test_anthropic import DOCUMENTED, TOOL_ID

MakeClient = Callable[[Any], httpx.AsyncClient]

WEATHER = Tool(
    name="get_weather",
    description="The weather in a city now.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string", "enum": ["Paris", "London"]}},
        "required": ["city"],
    },
)


def streaming(provider: Provider, **options: Any) -> Callable[[list[Message]], AsyncIterator[Any]]:
    """The agent's side: a request from the run's conversation, streamed by `provider`."""

    def stream_for(conversation: list[Message]) -> AsyncIterator[Any]:
        return provider.stream(ChatRequest.from_conversation(conversation, **options))

    return stream_for


def parts(message: Message, kind: type[Any]) -> list[Any]:
    return [p for p in message.parts if isinstance(p, kind)]


OPENAI_TOOL_ANSWER = openai_sse(
    chunk({"role": "assistant", "content": ""}),
    text_chunk("Let me "),
    text_chunk("check."),
    tool_chunk(0, id="call_w1", name="get_weather", arguments=""),
    tool_chunk(0, arguments='{"ci'),
    tool_chunk(0, arguments='ty": "Paris"}'),
    chunk(finish="tool_calls"),
    chunk(choices=False, usage={"prompt_tokens": 30, "completion_tokens": 12}),
)


async def test_openai_tool_call_on_the_channel(
    bus: ait.Bus, channel_name: str, mock_client: MakeClient
) -> None:
    script = Script(ok(OPENAI_TOOL_ANSWER))
    provider = OpenAIProvider("m", base_url="http://llm.test/v1", client=mock_client(script))
    result, message, _ = await answer_on_channel(
        bus, channel_name, streaming(provider, tools=[WEATHER]), text="Weather in Paris?"
    )
    assert result.reason == "complete" and result.error is None
    assert script.bodies[0]["messages"] == [{"role": "user", "content": "Weather in Paris?"}]
    assert message.status == "complete" and message.finish_reason == "tool_calls"
    assert message.text == "Let me check."
    (call,) = parts(message, ToolCallPart)
    assert (call.id, call.name, call.state) == ("call_w1", "get_weather", "input-available")
    assert call.input == {"city": "Paris"}
    assert call.input_text == '{"city": "Paris"}'
    assert message.usage == {"prompt_tokens": 30, "completion_tokens": 12}
    assert message.metrics is not None and "time_to_first_token_ms" in message.metrics


async def test_anthropic_tool_call_on_the_channel(
    bus: ait.Bus, channel_name: str, mock_client: MakeClient
) -> None:
    script = Script(ok(anthropic_sse(*DOCUMENTED)))
    provider = AnthropicProvider("claude-x", api_key="k", client=mock_client(script))
    result, message, _ = await answer_on_channel(
        bus, channel_name, streaming(provider, system="Be brief."), text="Weather in SF?"
    )
    assert result.reason == "complete"
    body = script.bodies[0]
    assert body["system"] == "Be brief."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in SF?"}]}
    ]
    assert message.status == "complete" and message.finish_reason == "tool_use"
    assert [type(p).__name__ for p in message.parts] == [
        "ReasoningPart",
        "TextPart",
        "ToolCallPart",
    ]
    (thought,) = parts(message, ReasoningPart)
    assert thought.text == "The user wants the weather."
    assert message.text == "Okay, let's check the weather for San Francisco, CA:"
    (call,) = parts(message, ToolCallPart)
    assert (call.id, call.name, call.state) == (TOOL_ID, "get_weather", "input-available")
    assert call.input == {"location": "San Francisco, CA", "unit": "fahrenheit"}
    assert message.usage == {"prompt_tokens": 472, "completion_tokens": 89}


async def test_llama_tool_call_on_the_channel(bus: ait.Bus, channel_name: str) -> None:
    provider = LlamaCppProvider(
        smollm2_path(), n_threads=1, n_ctx=2048, chat_format="chatml-function-calling"
    )
    try:
        result, message, _ = await answer_on_channel(
            bus,
            channel_name,
            streaming(
                provider,
                tools=[WEATHER],
                tool_choice="get_weather",
                max_tokens=32,
                temperature=0,
                seed=1,
            ),
            text="What is the weather in Paris?",
        )
    finally:
        await provider.aclose()
    assert result.reason == "complete" and result.error is None
    assert message.status == "complete" and message.finish_reason == "tool_calls"
    (call,) = parts(message, ToolCallPart)
    assert call.name == "get_weather" and call.state == "input-available"
    assert call.input in ({"city": "Paris"}, {"city": "London"})  # the grammar allows these
    assert json.loads(call.input_text) == call.input
    assert message.usage is not None
    assert message.usage["completion_tokens"] > 0 and message.usage["prompt_tokens"] > 0


async def test_llama_text_on_the_channel(bus: ait.Bus, channel_name: str) -> None:
    provider = LlamaCppProvider(smollm2_path(), n_threads=1, n_ctx=2048)
    try:
        result, message, _ = await answer_on_channel(
            bus,
            channel_name,
            streaming(provider, max_tokens=16, temperature=0, seed=2),
            text="What is the capital of France?",
        )
    finally:
        await provider.aclose()
    assert result.reason == "complete"
    assert message.status == "complete" and message.finish_reason in ("stop", "length")
    assert message.text.strip()
    assert message.metrics is not None and message.metrics["tokens_per_second"] > 0


async def test_the_tool_result_goes_back_on_the_next_turn(
    bus: ait.Bus, channel_name: str, mock_client: MakeClient
) -> None:
    script = Script(
        ok(OPENAI_TOOL_ANSWER),
        ok(openai_sse(text_chunk("It is 18C in Paris."), chunk(finish="stop"))),
    )
    provider = OpenAIProvider("m", base_url="http://llm.test/v1", client=mock_client(script))
    channel = bus.channel(channel_name)
    async with ait.AgentSession(bus, channel_name) as session:
        question = await publish_user(channel, "Weather in Paris?")
        first = await run_turn(session, question, streaming(provider, tools=[WEATHER]))
        # The client ran the tool and sends its result, then asks on.
        await channel.publish(
            ait.Input(
                event_id=new_id(),
                message_id=first.message_id,
                role="tool",
                client_id="alice",
                payload=ait.ChatCodec.tool_result("call_w1", {"temp": 18}),
            )
        )
        follow_up = await publish_user(channel, "So?", parent=first.message_id)
        second = await run_turn(session, follow_up, streaming(provider, tools=[WEATHER]))
    assert second.reason == "complete"
    assert script.bodies[1]["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "call_w1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": '{"temp": 18}', "tool_call_id": "call_w1"},
        {"role": "user", "content": "So?"},
    ]
    tree = await fold_channel(channel)
    answer = tree.message(second.message_id)
    assert answer is not None and answer.text == "It is 18C in Paris."


async def test_a_stream_that_breaks_ends_the_message_with_an_error(
    bus: ait.Bus, channel_name: str, mock_client: MakeClient
) -> None:
    broken = ok(openai_sse(text_chunk("Half an "), done=False), error=httpx.ReadError("reset"))
    script = Script(broken, ok(OPENAI_TOOL_ANSWER))
    provider = OpenAIProvider(
        "m", base_url="http://llm.test/v1", client=mock_client(script), retry=FAST_RETRY
    )
    result, message, _ = await answer_on_channel(bus, channel_name, streaming(provider))
    assert result.reason == "error" and isinstance(result.error, ait.ProviderStreamError)
    assert script.count == 1  # not retried once output was published
    assert message.status == "error" and message.text == "Half an "
    assert message.error is not None and message.error.code == "provider-stream"
    tree = await fold_channel(bus.channel(channel_name))
    run = tree.run(message.run_id or "")
    assert run is not None and run.status == "error"
    assert run.error is not None and run.error.code == "provider-stream"


@pytest.mark.parametrize(
    ("code", "error_code"),
    [(401, "authentication"), (400, "bad-request"), (503, "provider-server-error")],
)
async def test_a_status_error_before_any_output(
    bus: ait.Bus, channel_name: str, mock_client: MakeClient, code: int, error_code: str
) -> None:
    script = Script(status(code, {"error": {"message": "no"}}))
    provider = OpenAIProvider(
        "m", base_url="http://llm.test/v1", client=mock_client(script), retry=FAST_RETRY
    )
    result, message, _ = await answer_on_channel(bus, channel_name, streaming(provider))
    assert result.reason == "error" and isinstance(result.error, ait.ProviderStatusError)
    assert message.status == "error" and message.parts == ()
    assert message.error is not None and message.error.code == error_code


async def test_a_user_cancel_stops_llama_within_a_token(bus: ait.Bus, channel_name: str) -> None:
    provider = LlamaCppProvider(smollm2_path(), n_threads=1, n_ctx=2048)
    channel = bus.channel(channel_name)
    tokens = 0
    cancelled_at = 0.0

    try:
        async with ait.AgentSession(bus, channel_name) as session:
            question = await publish_user(channel, "Write a long story about a lighthouse.")
            run = session.create_run(
                ait.Invocation(channel=channel_name, input_event_id=question.event_id)
            )
            await run.start()
            conversation = await run.load_conversation()
            request = ChatRequest.from_conversation(conversation, max_tokens=300, seed=9)

            async def counted() -> AsyncIterator[Any]:
                nonlocal tokens, cancelled_at
                async for event in provider.stream(request):
                    if isinstance(event, TextDelta):
                        tokens += 1
                        if tokens == 5:  # a client cancels now
                            cancelled_at = time.perf_counter()
                            await channel.publish(
                                ait.Cancel(event_id=new_id(), client_id="alice", run_id=run.run_id)
                            )
                    yield event

            with anyio.fail_after(30):
                result = await run.pipe(counted())
            stopped = time.perf_counter() - cancelled_at
            await run.end(result.reason)
        shown = f"{stopped * 1000:.1f} ms"
        print(f"\nllama cancel through a channel: pipe returned {shown} after it")  # noqa: T201
        assert result.reason == "cancelled"
        assert stopped < 1.0
        assert provider.waiting == 0
        # The provider still answers.
        events = [
            e
            async for e in provider.stream(
                ChatRequest.from_conversation(conversation, max_tokens=3)
            )
        ]
        assert events[-1].type == "finish"
    finally:
        await provider.aclose()
    tree = await fold_channel(channel)
    message = tree.message(result.message_id)
    assert message is not None and message.status == "cancelled" and message.text
