"""Builders for the HTTP provider tests: SSE bodies, scripted transports, stream collectors.

```python
script = Script(ok(openai_sse(text_chunk("Hel"), text_chunk("lo"), finish_chunk("stop"))))
provider = OpenAIProvider("m", base_url="http://test/v1", client=mock_client(script))
events = await collect(provider.stream(request))
assert script.count == 1 and script.bodies[0]["model"] == "m"
```
"""

from __future__ import annotations

import inspect
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import anyio
import httpx

import ait
from ait.conversation import Message
from ait.ids import new_id
from ait.providers import (
    ChatMessage,
    ChatRequest,
    Finish,
    ProviderEvent,
    RetryPolicy,
    ServerSentEvent,
    SSEDecoder,
    TextDelta,
)

Responder = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]

#: Retries fast enough for tests, with the default count (2).
FAST_RETRY = RetryPolicy(initial_delay=0.001, max_delay=0.004, jitter=0)


def request(text: str = "hi", **options: Any) -> ChatRequest:
    return ChatRequest(messages=[ChatMessage(role="user", content=text)], **options)


# -- SSE bodies ---------------------------------------------------------------------------------


def sse_event(data: Any, event: str | None = None) -> bytes:
    """One SSE event: `data` (JSON-encoded unless already a string), then a blank line."""
    text = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()


def decode_sse(chunks: Iterable[bytes]) -> list[ServerSentEvent]:
    """The events of a body fed chunk by chunk to one `SSEDecoder`, flushed at the end."""
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.flush())
    return events


def openai_sse(*chunks: Any, done: bool = True) -> list[bytes]:
    """The SSE body of an OpenAI stream: one event per chunk, then `[DONE]`."""
    body = [sse_event(chunk) for chunk in chunks]
    if done:
        body.append(b"data: [DONE]\n\n")
    return body


def chunk(
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    *,
    usage: dict[str, int] | None = None,
    choices: bool = True,
) -> dict[str, Any]:
    """An OpenAI `chat.completion.chunk`."""
    out: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if choices else [],
    }
    if usage is not None:
        out["usage"] = usage
    return out


def text_chunk(text: str) -> dict[str, Any]:
    return chunk({"content": text})


def tool_chunk(
    index: int, *, id: str | None = None, name: str | None = None, arguments: str | None = None
) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index}
    if id is not None:
        call["id"] = id
        call["type"] = "function"
    function: dict[str, Any] = {}
    if name is not None:
        function["name"] = name
    if arguments is not None:
        function["arguments"] = arguments
    if function:
        call["function"] = function
    return chunk({"tool_calls": [call]})


def anthropic_sse(*events: dict[str, Any]) -> list[bytes]:
    """The SSE body of an Anthropic stream: each event named by its `type`."""
    return [sse_event(event, event=event["type"]) for event in events]


def anthropic_text(*pieces: str, stop_reason: str = "end_turn") -> list[bytes]:
    """A whole, minimal Anthropic text answer."""
    return anthropic_sse(
        {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 5}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}
            for p in pieces
        ),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason},
            "usage": {"output_tokens": 2},
        },
        {"type": "message_stop"},
    )


# -- responses ----------------------------------------------------------------------------------


class Chunks(httpx.AsyncByteStream):
    """A response body yielding `chunks` one by one (with an optional pause before each),
    then raising `error` if given: a connection that drops mid-stream."""

    def __init__(
        self, chunks: Iterable[bytes], *, error: Exception | None = None, pause: float = 0
    ) -> None:
        self.chunks = list(chunks)
        self.error = error
        self.pause = pause
        self.sent = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.chunks:
            if self.pause:
                await anyio.sleep(self.pause)
            self.sent += 1
            yield piece
        if self.error is not None:
            raise self.error

    async def aclose(self) -> None:
        self.closed = True


class ok:
    """A 200 SSE response streaming `body` (then raising `error`, if given). Keeps the
    bodies it served in `streams` (to check they were closed)."""

    def __init__(
        self,
        body: Iterable[bytes],
        *,
        error: Exception | None = None,
        headers: dict[str, str] | None = None,
        pause: float = 0,
    ) -> None:
        self.chunks = list(body)
        self.error = error
        self.headers = headers or {}
        self.pause = pause
        self.streams: list[Chunks] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        stream = Chunks(self.chunks, error=self.error, pause=self.pause)
        self.streams.append(stream)
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream", **self.headers},
            stream=stream,
            request=request,
        )


def status(code: int, body: Any = None, headers: dict[str, str] | None = None) -> Responder:
    """An error status with a JSON body (or a text body when `body` is a str)."""

    def respond(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(code, text=body, headers=headers, request=request)
        return httpx.Response(code, json=body, headers=headers, request=request)

    return respond


def fail(error: type[httpx.HTTPError], message: str = "boom") -> Responder:
    """Raise an httpx error instead of answering (a refused connection, a timeout...)."""

    def respond(request: httpx.Request) -> httpx.Response:
        if issubclass(error, httpx.RequestError):
            raise error(message, request=request)
        raise error(message)  # type: ignore[call-arg]

    return respond


class Script:
    """A MockTransport handler answering the n-th request with the n-th responder (the
    last one repeats). Records each request, its parsed JSON body and arrival time."""

    def __init__(self, *responders: Responder) -> None:
        assert responders
        self.responders = list(responders)
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append(time.monotonic())
        responder = self.responders[min(len(self.requests), len(self.responders)) - 1]
        answer = responder(request)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer

    @property
    def count(self) -> int:
        return len(self.requests)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]

    def gaps(self) -> list[float]:
        """Seconds between consecutive requests (the retry waits)."""
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]


# -- consuming ----------------------------------------------------------------------------------


async def collect(stream: AsyncIterator[ProviderEvent]) -> list[ProviderEvent]:
    return [event async for event in stream]


async def collect_until_error(
    stream: AsyncIterator[ProviderEvent],
) -> tuple[list[ProviderEvent], BaseException | None]:
    """The events a stream yielded before it raised, and what it raised."""
    events: list[ProviderEvent] = []
    try:
        async for event in stream:
            events.append(event)
    except Exception as exc:
        return events, exc
    return events, None


def text_of(events: Iterable[ProviderEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def finish_of(events: list[ProviderEvent]) -> Finish:
    assert events and isinstance(events[-1], Finish), events
    assert sum(isinstance(e, Finish) for e in events) == 1
    return events[-1]


# -- a run on a real channel --------------------------------------------------------------------


async def fold_channel(channel: ait.Channel) -> ait.Tree:
    """The channel folded from its first entry, as a fresh client would see it."""
    tree = ait.Tree()
    after = "0-0"
    while True:
        page = await channel.read(after=after, count=1000)
        assert tree.apply(page) == []
        if len(page) < 1000:
            break
        after = page[-1][0]
    tree.history_complete = True
    return tree


async def publish_user(channel: ait.Channel, text: str, *, parent: str | None = None) -> ait.Input:
    """Publish a user message as a client does."""
    event = ait.Input(
        event_id=new_id(),
        message_id=new_id(),
        role="user",
        client_id="alice",
        parent=parent,
        payload=ait.ChatCodec.user_text(text),
    )
    await channel.publish(event)
    return event


async def run_turn(
    session: ait.AgentSession,
    event: ait.Input,
    stream_for: Callable[[list[Message]], AsyncIterator[Any]],
) -> ait.PipeResult:
    """The canonical agent handler for input `event`: start, load, pipe, end."""
    run = session.create_run(
        ait.Invocation(channel=session.channel.name, input_event_id=event.event_id)
    )
    await run.start()
    conversation = await run.load_conversation()
    result = await run.pipe(stream_for(conversation))
    await run.end(result.reason, error=result.error)
    return result


async def answer_on_channel(
    bus: ait.Bus,
    channel_name: str,
    stream_for: Callable[[list[Message]], AsyncIterator[Any]],
    text: str = "hi",
) -> tuple[ait.PipeResult, Message, list[Message]]:
    """Publish a user input, run an agent that pipes `stream_for(conversation)` into the
    channel, and fold the channel: the pipe's result, the assistant message, the branch."""
    channel = bus.channel(channel_name)
    event = await publish_user(channel, text)
    async with ait.AgentSession(bus, channel_name) as session:
        result = await run_turn(session, event, stream_for)
    tree = await fold_channel(channel)
    message = tree.message(result.message_id)
    assert message is not None
    branch = tree.path_to(result.message_id)
    assert [m.id for m in branch] == [event.message_id, result.message_id]
    return result, message, branch


def generation_threads() -> list[threading.Thread]:
    """Generation threads still running (a finished one may take a moment to exit)."""
    threads = [t for t in threading.enumerate() if t.name == "ait llama"]
    for thread in threads:
        thread.join(timeout=0.2)
    return [t for t in threads if t.is_alive()]
