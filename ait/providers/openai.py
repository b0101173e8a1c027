"""OpenAIProvider: the OpenAI Chat Completions dialect, for OpenAI and every compatible server.

```python
OpenAIProvider("gpt-4o-mini")                                             # OPENAI_API_KEY
OpenAIProvider("local", base_url="http://localhost:8080/v1")              # llama.cpp server
OpenAIProvider("Qwen/Qwen3-8B", base_url="http://gpu:8000/v1", api_key="...")  # vLLM, a gateway
```

Streams with `stream_options.include_usage`; assembles tool calls across chunks (by index);
reads `reasoning_content`/`reasoning` deltas where servers send them; raises an error chunk
in the stream as `ProviderStreamError` (never yields it); stops at `[DONE]`.

Request fields outside the OpenAI API (`top_k`, `repetition_penalty`, `enable_thinking`) are
sent only when set: OpenAI itself refuses them; llama.cpp's server and vLLM accept them.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any, cast

import httpx

from ..errors import ProviderConfigError, ProviderStreamError
from ._http import HttpProvider, RetryPolicy
from ._json import as_dict, as_list
from .base import Stopwatch
from .events import (
    Finish,
    ProviderEvent,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
)
from .request import ChatMessage, ChatRequest
from .sse import aiter_sse

__all__ = ["OpenAIProvider"]

OPENAI_URL = "https://api.openai.com/v1"


class OpenAIProvider(HttpProvider):
    """A model behind an OpenAI-compatible `/chat/completions` endpoint.

    Args:
        model: the model id sent in each request.
        base_url: the API root (`.../v1`).
        api_key: the bearer token. For api.openai.com it defaults to `OPENAI_API_KEY` (and is
            required); another server gets a key only when you pass one.
        client: an `httpx.AsyncClient` to use (tests pass one with a MockTransport).
        timeout: seconds for connect, read and write (per chunk while streaming).
        retry: the retry policy (2 retries by default, before the first token only).
        headers: extra HTTP headers.
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str = OPENAI_URL,
        api_key: str | None = None,
        client: httpx.AsyncClient | None = None,
        timeout: float | httpx.Timeout = 60.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        is_openai = base_url.rstrip("/") == OPENAI_URL
        # The environment's OpenAI key goes to OpenAI only, never to another server.
        key = (
            api_key
            if api_key is not None
            else (os.environ.get("OPENAI_API_KEY") if is_openai else None)
        )
        if not key and base_url.rstrip("/") == OPENAI_URL:
            raise ProviderConfigError(
                "OpenAI needs an API key: pass api_key= or set OPENAI_API_KEY", provider=self.name
            )
        super().__init__(
            base_url=base_url,
            model=model,
            client=client,
            timeout=timeout,
            retry=retry,
            headers=headers,
        )
        self.api_key = key

    def _request(self, request: ChatRequest) -> httpx.Request:
        body: dict[str, Any] = {
            "model": request.model or self.model,
            "messages": [openai_message(m) for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        optional = {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
            "top_k": request.top_k,
            "repetition_penalty": request.repetition_penalty,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        if request.stop:
            body["stop"] = request.stop
        if request.tools:
            body["tools"] = [
                {"type": "function", "function": t.model_dump(exclude_none=True)}
                for t in request.tools
            ]
        if request.tool_choice is not None:
            choice = request.tool_choice
            body["tool_choice"] = (
                choice
                if choice in ("auto", "none", "required")
                else {"type": "function", "function": {"name": choice}}
            )
        if request.response_format is not None:
            fmt = request.response_format
            if fmt.type == "json_object":
                body["response_format"] = {"type": "json_object"}
            else:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": fmt.name, "schema": fmt.schema_, "strict": True},
                }
        if request.enable_thinking is not None:
            body["chat_template_kwargs"] = {"enable_thinking": request.enable_thinking}
        headers = {"accept": "text/event-stream", **self.headers}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return self._client.build_request(
            "POST", f"{self.base_url}/chat/completions", json=body, headers=headers
        )

    async def _events(
        self, lines: AsyncIterator[bytes], watch: Stopwatch
    ) -> AsyncIterator[ProviderEvent]:
        calls: dict[int, dict[str, Any]] = {}
        finish_reason: str | None = None
        usage: Usage | None = None
        done = False
        async with aclosing(aiter_sse(lines)) as events:
            async for sse in events:
                if sse.data == "[DONE]":
                    done = True
                    break
                data = _parse(sse.data, self.name)
                if data.get("usage"):
                    usage = _usage(as_dict(data["usage"]))
                for raw_choice in as_list(data.get("choices")):
                    choice = as_dict(raw_choice)
                    for event in stream_deltas(as_dict(choice.get("delta")), calls):
                        watch.token()
                        yield event
                    finish_reason = choice.get("finish_reason") or finish_reason
        if not done and finish_reason is None:
            raise ProviderStreamError(f"{self.name} stream ended before [DONE]", provider=self.name)
        for call in calls.values():
            if not call["started"]:
                yield ToolCallStart(id=call["id"], name=call["name"] or "unknown")
            yield ToolCallEnd(
                id=call["id"], name=call["name"], arguments=parse_arguments(call["args"])
            )
        prompt = usage.prompt_tokens if usage else None
        completion = usage.completion_tokens if usage else None
        yield Finish(reason=finish_reason, usage=usage, metrics=watch.metrics(prompt, completion))


def _parse(data: str, provider: str) -> dict[str, Any]:
    try:
        parsed = json.loads(data)
    except ValueError:
        raise ProviderStreamError(
            f"{provider} sent a malformed chunk: {data[:200]!r}", provider=provider
        ) from None
    if not isinstance(parsed, dict):
        raise ProviderStreamError(
            f"{provider} sent a chunk that is not an object", provider=provider
        )
    chunk = as_dict(cast(object, parsed))
    error = chunk.get("error")
    if error:
        message = as_dict(error).get("message") or str(error)
        raise ProviderStreamError(
            f"{provider} reported an error mid-stream: {message}", provider=provider
        )
    return chunk


def stream_deltas(delta: dict[str, Any], calls: dict[int, dict[str, Any]]) -> list[ProviderEvent]:
    events: list[ProviderEvent] = []
    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        events.append(ReasoningDelta(text=reasoning))
    content = delta.get("content")
    if isinstance(content, str) and content:
        events.append(TextDelta(text=content))
    for raw in as_list(delta.get("tool_calls")):
        item = as_dict(raw)
        index = int(item.get("index", 0))
        function = as_dict(item.get("function"))
        call = calls.get(index)
        if call is None:
            call = calls[index] = {
                "id": item.get("id") or f"call_{index}",
                "name": "",
                "args": [],
                "started": False,
            }
        if function.get("name"):
            call["name"] = function["name"]
        if not call["started"] and call["name"]:
            call["started"] = True
            events.append(ToolCallStart(id=call["id"], name=call["name"]))
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            call["args"].append(arguments)
            if call["started"]:
                events.append(ToolCallDelta(id=call["id"], delta=arguments))
    return events


def parse_arguments(pieces: list[str]) -> dict[str, Any]:
    text = "".join(pieces)
    if not text.strip():
        return {}
    try:
        parsed = json.loads(text)
    except ValueError:
        return {"_raw": text}
    return as_dict(cast(object, parsed)) if isinstance(parsed, dict) else {"value": parsed}


def _usage(raw: dict[str, Any]) -> Usage:
    return Usage(
        prompt_tokens=raw.get("prompt_tokens"), completion_tokens=raw.get("completion_tokens")
    )


def openai_message(message: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role}
    if isinstance(message.content, str):
        out["content"] = message.content
    else:
        out["content"] = [
            {"type": "text", "text": p.text}
            if p.type == "text"
            else {"type": "image_url", "image_url": {"url": p.image_url}}
            for p in message.content
        ]
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    return out
