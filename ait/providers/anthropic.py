"""AnthropicProvider: the Messages API, streamed.

```python
AnthropicProvider("claude-sonnet-4-5")        # ANTHROPIC_API_KEY
```

Maps the documented stream events: `message_start` (input tokens), `content_block_start`
/ `_delta` / `_stop` for text, thinking and tool use (`input_json_delta` pieces), and
`message_delta` (stop reason, output tokens); `ping` is ignored; an `error` event is raised
as `ProviderStreamError`. System messages go to `system`; tool results go back as
`tool_result` blocks of a user message.
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
from ._json import as_dict
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

__all__ = ["AnthropicProvider"]

ANTHROPIC_URL = "https://api.anthropic.com/v1"
API_VERSION = "2023-06-01"


class AnthropicProvider(HttpProvider):
    """A Claude model over the Messages API.

    Args:
        model: the model id.
        api_key: `ANTHROPIC_API_KEY` by default; required.
        max_tokens: used when the request does not say (the API requires a value).
        base_url, client, timeout, retry, headers: as for `OpenAIProvider`.
    """

    name = "anthropic"

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str = ANTHROPIC_URL,
        max_tokens: int = 1024,
        client: httpx.AsyncClient | None = None,
        timeout: float | httpx.Timeout = 60.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise ProviderConfigError(
                "Anthropic needs an API key: pass api_key= or set ANTHROPIC_API_KEY",
                provider=self.name,
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
        self.max_tokens = max_tokens

    def _request(self, request: ChatRequest) -> httpx.Request:
        system = "\n\n".join(m.text for m in request.messages if m.role == "system")
        body: dict[str, Any] = {
            "model": request.model or self.model,
            "max_tokens": request.max_tokens or self.max_tokens,
            "messages": _messages(request.messages),
            "stream": True,
        }
        if system:
            body["system"] = system
        optional = {
            "temperature": request.temperature,
            "top_p": request.top_p,
            "top_k": request.top_k,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        if request.stop:
            body["stop_sequences"] = request.stop
        if request.tools:
            body["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
        choice = request.tool_choice
        if choice is not None:
            body["tool_choice"] = {
                "auto": {"type": "auto"},
                "required": {"type": "any"},
                "none": {"type": "none"},
            }.get(choice, {"type": "tool", "name": choice})
        if request.enable_thinking:
            body["thinking"] = {"type": "enabled", "budget_tokens": request.thinking_budget or 1024}
        headers = {
            "x-api-key": self.api_key,
            "anthropic-version": API_VERSION,
            "accept": "text/event-stream",
            **self.headers,
        }
        return self._client.build_request(
            "POST", f"{self.base_url}/messages", json=body, headers=headers
        )

    async def _events(
        self, lines: AsyncIterator[bytes], watch: Stopwatch
    ) -> AsyncIterator[ProviderEvent]:
        blocks: dict[int, dict[str, Any]] = {}
        prompt_tokens: int | None = None
        output_tokens: int | None = None
        stop_reason: str | None = None
        stopped = False
        async with aclosing(aiter_sse(lines)) as events:
            async for sse in events:
                data = _parse(sse.data, self.name) if sse.data else {}
                kind = data.get("type") or sse.event
                if kind == "error":
                    error = data.get("error")
                    message = as_dict(error).get("message") or error
                    raise ProviderStreamError(
                        f"{self.name} reported an error mid-stream: {message}", provider=self.name
                    )
                if kind == "message_start":
                    usage = as_dict(as_dict(data.get("message")).get("usage"))
                    prompt_tokens = usage.get("input_tokens", prompt_tokens)
                elif kind == "content_block_start":
                    block = as_dict(data.get("content_block"))
                    index = int(data.get("index", 0))
                    blocks[index] = {**block, "json": []}
                    if block.get("type") == "tool_use":
                        watch.token()
                        yield ToolCallStart(
                            id=block.get("id", f"tool_{index}"), name=block.get("name", "")
                        )
                    elif block.get("type") == "text" and block.get("text"):
                        watch.token()
                        yield TextDelta(text=block["text"])
                elif kind == "content_block_delta":
                    for event in _delta(data, blocks):
                        watch.token()
                        yield event
                elif kind == "content_block_stop":
                    block = blocks.get(int(data.get("index", 0))) or {}
                    if block.get("type") == "tool_use":
                        yield ToolCallEnd(
                            id=block.get("id", ""),
                            name=block.get("name", ""),
                            arguments=_arguments(block["json"], block.get("input")),
                        )
                elif kind == "message_delta":
                    stop_reason = as_dict(data.get("delta")).get("stop_reason") or stop_reason
                    usage = as_dict(data.get("usage"))
                    output_tokens = usage.get("output_tokens", output_tokens)
                elif kind == "message_stop":
                    stopped = True
        if not stopped:
            raise ProviderStreamError(
                f"{self.name} stream ended before message_stop", provider=self.name
            )
        usage_event = Usage(prompt_tokens=prompt_tokens, completion_tokens=output_tokens)
        yield Finish(
            reason=stop_reason,
            usage=usage_event,
            metrics=watch.metrics(prompt_tokens, output_tokens),
        )


def _parse(data: str, provider: str) -> dict[str, Any]:
    try:
        parsed = json.loads(data)
    except ValueError:
        raise ProviderStreamError(
            f"{provider} sent a malformed event: {data[:200]!r}", provider=provider
        ) from None
    if not isinstance(parsed, dict):
        raise ProviderStreamError(
            f"{provider} sent an event that is not an object", provider=provider
        )
    return as_dict(cast(object, parsed))


def _delta(data: dict[str, Any], blocks: dict[int, dict[str, Any]]) -> list[ProviderEvent]:
    delta = as_dict(data.get("delta"))
    index = int(data.get("index", 0))
    kind = delta.get("type")
    if kind == "text_delta" and delta.get("text"):
        return [TextDelta(text=delta["text"])]
    if kind == "thinking_delta" and delta.get("thinking"):
        return [ReasoningDelta(text=delta["thinking"])]
    if kind == "input_json_delta":
        block = blocks.setdefault(index, {"type": "tool_use", "json": []})
        piece = delta.get("partial_json") or ""
        block["json"].append(piece)
        if piece:
            return [ToolCallDelta(id=block.get("id", f"tool_{index}"), delta=piece)]
    return []  # signature_delta and future kinds carry nothing to show


def _arguments(pieces: list[str], initial: Any) -> dict[str, Any]:
    text = "".join(pieces)
    if not text.strip():
        return dict(as_dict(initial))
    try:
        parsed = json.loads(text)
    except ValueError:
        return {"_raw": text}
    return as_dict(cast(object, parsed)) if isinstance(parsed, dict) else {"value": parsed}


def _messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": message.text,
            }
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                cast(list[Any], out[-1]["content"]).append(block)
            else:
                out.append({"role": "user", "content": [block]})
            continue
        content: list[dict[str, Any]] = []
        if isinstance(message.content, str):
            if message.content:
                content.append({"type": "text", "text": message.content})
        else:
            for part in message.content:
                if part.type == "text":
                    content.append({"type": "text", "text": part.text or ""})
                else:
                    content.append(
                        {"type": "image", "source": {"type": "url", "url": part.image_url}}
                    )
        for call in message.tool_calls:
            content.append(
                {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
            )
        out.append({"role": message.role, "content": content})
    return out
