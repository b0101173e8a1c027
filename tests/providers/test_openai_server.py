"""The OpenAI dialect against a real OpenAI-compatible server: llama-cpp-python's own,
started by the test on loopback with the SmolLM2 model."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import ait
from ait.conversation import Message
from ait.providers import (
    ChatRequest,
    Finish,
    OpenAIProvider,
    ProviderEvent,
    RetryPolicy,
    TextDelta,
    smollm2_path,
)

from .helpers import answer_on_channel, collect, collect_until_error, finish_of, request, text_of

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A llama-cpp-python server on a free loopback port; its `/v1` base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(smollm2_path()),
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--n_threads", "1", "--n_threads_batch", "1",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"the llama.cpp server exited:\n{Path(log).read_text()[-3000:]}")
            try:
                if httpx.get(f"{base_url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the llama.cpp server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
async def local(server: str) -> AsyncIterator[OpenAIProvider]:
    provider = OpenAIProvider("local", base_url=server, timeout=60)
    yield provider
    await provider.aclose()


async def test_a_real_streamed_answer(local: OpenAIProvider) -> None:
    events = await collect(local.stream(request("Say hello to Ada.", max_tokens=16)))
    texts = [e for e in events if isinstance(e, TextDelta)]
    assert len(texts) >= 2 and text_of(events).strip()
    finish = finish_of(events)
    assert finish.reason in ("stop", "length")
    assert finish.metrics is not None and finish.metrics.time_to_first_token_ms is not None
    # llama-cpp-python's server ignores stream_options.include_usage: no usage chunk.
    assert finish.usage is None or (finish.usage.completion_tokens or 0) > 0


async def test_a_deterministic_answer(local: OpenAIProvider) -> None:
    req = request(
        "What is the capital of France? Answer in one short sentence.",
        max_tokens=12,
        temperature=0,
        seed=42,
    )
    first = text_of(await collect(local.stream(req)))
    assert first == text_of(await collect(local.stream(req)))
    assert "Paris" in first


async def test_max_tokens_is_honoured(local: OpenAIProvider) -> None:
    events = await collect(local.stream(request("Write a long story.", max_tokens=5, seed=1)))
    assert finish_of(events).reason == "length"
    assert 1 <= len([e for e in events if isinstance(e, TextDelta)]) <= 5


async def test_closing_early_leaves_the_server_usable(local: OpenAIProvider) -> None:
    stream = local.stream(request("Write a long story about the sea.", max_tokens=200))
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()  # type: ignore[attr-defined]
    assert text_of(await collect(local.stream(request("Say yes.", max_tokens=4))))


async def test_a_prompt_over_the_context(local: OpenAIProvider) -> None:
    # The server answers 200 and closes the stream without a word (the error is in its log).
    events, error = await collect_until_error(local.stream(request("word " * 3000, max_tokens=4)))
    assert events == [] and isinstance(error, ait.ProviderStreamError)


async def test_a_refused_connection_after_retries(server: str) -> None:
    port = free_port()  # nothing listens there
    provider = OpenAIProvider(
        "local", base_url=f"http://127.0.0.1:{port}/v1", retry=RetryPolicy(initial_delay=0.01)
    )
    try:
        with pytest.raises(ait.ProviderConnectionError):
            await collect(provider.stream(request()))
    finally:
        await provider.aclose()


async def test_through_run_pipe_into_a_channel(
    local: OpenAIProvider, bus: ait.Bus, channel_name: str
) -> None:
    seen: list[ProviderEvent] = []

    async def tee(conversation: list[Message]) -> AsyncIterator[Any]:
        req = ChatRequest.from_conversation(
            conversation, system="Answer briefly.", max_tokens=24, temperature=0, seed=7
        )
        async for event in local.stream(req):
            seen.append(event)
            yield event

    result, message, _ = await answer_on_channel(
        bus, channel_name, tee, text="What is the capital of France?"
    )
    assert result.reason == "complete" and result.error is None
    finish = seen[-1]
    assert isinstance(finish, Finish)
    assert message.role == "assistant" and message.status == "complete"
    assert message.text.strip() and message.text == text_of(seen)  # every token, in order
    assert message.finish_reason == finish.reason
    assert message.metrics and message.metrics["time_to_first_token_ms"] > 0
