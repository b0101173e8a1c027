"""A scripted provider: tokens with delays, failures on cue, for tests and examples."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import anyio
import anyio.lowlevel

from ..providers import Finish, Metrics, ProviderEvent, TextDelta, Usage
from ..providers.base import Stopwatch

__all__ = ["ScriptedProvider"]

Script = Sequence[str | ProviderEvent]


class ScriptedProvider:
    """Plays a script instead of calling a model, so tests of agents are fast and exact.

    It is a `Provider`: it streams `TextDelta` events, then a `Finish` with usage and
    timings, like a real model would. A script may hold provider events too (a
    `ToolCallStart`/`ToolCallEnd` pair, say), which are streamed as they are.

    ```python
    provider = ScriptedProvider(["Hel", "lo"], delay=0.01)
    result = await run.pipe(provider.stream(request))
    ```

    Args:
        tokens: the text pieces (or provider events) to stream, or a function of the
            request returning them.
        delay: seconds between tokens (0: as fast as the loop goes).
        first_token_delay: seconds before the first token.
        fail_after: raise `error` after this many tokens (0: before the first).
        error: the exception to raise (a RuntimeError by default).
        finish_reason: the finish reason of the closing `finish` event.

    After a stream ends, `emitted` tells how many tokens went out, `closed` whether the
    consumer closed the stream early (a cancel), and `requests` holds every request.
    """

    def __init__(
        self,
        tokens: Script | Callable[[Any], Script] = ("Hello", ",", " world", "!"),
        *,
        delay: float = 0.0,
        first_token_delay: float = 0.0,
        fail_after: int | None = None,
        error: BaseException | None = None,
        finish_reason: str = "stop",
    ) -> None:
        self.name = "scripted"
        self.model = "scripted"
        self.tokens = tokens
        self.delay = delay
        self.first_token_delay = first_token_delay
        self.fail_after = fail_after
        self.error = error
        self.finish_reason = finish_reason
        self.requests: list[Any] = []
        self.emitted = 0
        self.closed = False

    def stream(self, request: Any = None) -> AsyncIterator[ProviderEvent]:
        """The scripted stream for `request`: text deltas, then a `Finish` event."""
        self.requests.append(request)
        tokens = self.tokens(request) if callable(self.tokens) else self.tokens
        return self._play(list(tokens))

    async def _play(self, tokens: list[str | ProviderEvent]) -> AsyncIterator[ProviderEvent]:
        self.emitted = 0
        self.closed = False
        watch = Stopwatch()
        try:
            if self.first_token_delay:
                await anyio.sleep(self.first_token_delay)
            for index, token in enumerate(tokens):
                if self.fail_after is not None and index >= self.fail_after:
                    raise self.error or RuntimeError("scripted provider failure")
                if index and self.delay:
                    await anyio.sleep(self.delay)
                else:
                    await anyio.lowlevel.checkpoint()
                self.emitted += 1
                watch.token()
                yield TextDelta(text=token) if isinstance(token, str) else token
            if self.fail_after is not None and self.fail_after >= len(tokens):
                raise self.error or RuntimeError("scripted provider failure")
            usage = Usage(prompt_tokens=0, completion_tokens=len(tokens))
            metrics: Metrics = watch.metrics(None, len(tokens))
            yield Finish(reason=self.finish_reason, usage=usage, metrics=metrics)
        except GeneratorExit:
            self.closed = True
            raise
        except anyio.get_cancelled_exc_class():
            self.closed = True
            raise

    async def aclose(self) -> None:
        """Nothing to release; here for the provider protocol."""
