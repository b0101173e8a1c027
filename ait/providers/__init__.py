"""Providers: token sources for runs, behind one protocol.

- `LlamaCppProvider`: a GGUF model in this process (CPU, or GPU offload), extra `llama`;
- `OpenAIProvider`: OpenAI and any OpenAI-compatible server (llama.cpp server, vLLM, gateways);
- `AnthropicProvider`: Claude over the Messages API;
- `ProviderRegistry` and `from_spec`: several providers, chosen per run by model id.

This layer never imports the bus or the sessions: providers know nothing of channels.
"""

from __future__ import annotations

from ._http import RetryPolicy as RetryPolicy
from .anthropic import AnthropicProvider as AnthropicProvider
from .base import Provider as Provider
from .events import Finish as Finish
from .events import Metrics as Metrics
from .events import ProviderEvent as ProviderEvent
from .events import ReasoningDelta as ReasoningDelta
from .events import TextDelta as TextDelta
from .events import ToolCallDelta as ToolCallDelta
from .events import ToolCallEnd as ToolCallEnd
from .events import ToolCallStart as ToolCallStart
from .events import Usage as Usage
from .llama import LlamaCppProvider as LlamaCppProvider
from .openai import OpenAIProvider as OpenAIProvider
from .registry import ProviderRegistry as ProviderRegistry
from .registry import from_spec as from_spec
from .registry import smollm2_path as smollm2_path
from .request import ChatMessage as ChatMessage
from .request import ChatRequest as ChatRequest
from .request import ContentPart as ContentPart
from .request import ResponseFormat as ResponseFormat
from .request import Tool as Tool
from .request import ToolCall as ToolCall
from .sse import ServerSentEvent as ServerSentEvent
from .sse import SSEDecoder as SSEDecoder

__all__ = [
    "AnthropicProvider",
    "ChatMessage",
    "ChatRequest",
    "ContentPart",
    "Finish",
    "LlamaCppProvider",
    "Metrics",
    "OpenAIProvider",
    "Provider",
    "ProviderEvent",
    "ProviderRegistry",
    "ReasoningDelta",
    "ResponseFormat",
    "RetryPolicy",
    "SSEDecoder",
    "ServerSentEvent",
    "TextDelta",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallEnd",
    "ToolCallStart",
    "Usage",
    "from_spec",
    "smollm2_path",
]
