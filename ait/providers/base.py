"""The provider protocol, and the stopwatch every provider uses for its metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from .events import Metrics, ProviderEvent
from .request import ChatRequest

__all__ = ["Provider", "Stopwatch"]


@runtime_checkable
class Provider(Protocol):
    """A source of tokens. Every provider in `ait.providers` implements it.

    ```python
    async for event in provider.stream(request):   # TextDelta, ToolCall..., Finish
        ...
    await provider.aclose()
    ```

    `stream` checks the request before any call (`ProviderRequestError`), raises only
    `ProviderError`s, ends with one `Finish` event, and stops its producer when the stream
    is closed early (`aclose()`, or the consuming task cancelled).
    """

    name: str

    def stream(self, request: ChatRequest) -> AsyncIterator[ProviderEvent]: ...

    async def aclose(self) -> None: ...


class Stopwatch:
    """Measures one generation: queue wait, time to first token, tokens per second."""

    def __init__(self) -> None:
        self.created = time.perf_counter()
        self.started = self.created
        self.first: float | None = None
        self.last: float | None = None
        self.tokens = 0

    def start(self) -> None:
        """The request left the queue and went to the model."""
        self.started = time.perf_counter()

    def token(self) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.last = now
        self.tokens += 1

    def metrics(
        self, prompt_tokens: int | None = None, completion_tokens: int | None = None
    ) -> Metrics:
        ttft = (self.first - self.started) * 1000 if self.first is not None else None
        produced = completion_tokens if completion_tokens is not None else self.tokens
        rate = None
        if (
            self.first is not None
            and self.last is not None
            and self.last > self.first
            and produced > 1
        ):
            rate = (produced - 1) / (self.last - self.first)
        prompt_rate = None
        if prompt_tokens and ttft:
            prompt_rate = prompt_tokens / (ttft / 1000)
        queue = (self.started - self.created) * 1000
        return Metrics(
            time_to_first_token_ms=None if ttft is None else round(ttft, 3),
            tokens_per_second=None if rate is None else round(rate, 3),
            prompt_tokens_per_second=None if prompt_rate is None else round(prompt_rate, 3),
            queue_wait_ms=round(queue, 3),
        )
