"""LlamaCppProvider and the context window (`n_ctx`), with the real SmolLM2-135M model.

A prompt that does not fit is refused with `ProviderRequestError` before anything is
generated, giving both numbers; an answer that reaches the end of the context stops with
`length`. llama.cpp pads the context it allocates (n_ctx=64 gets 256, 1000 gets 1024) while
llama-cpp-python's buffers hold n_ctx tokens: a conversation between the two used to fail
with "could not broadcast input array" (a `ProviderStreamError`).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import cast

import anyio.to_thread
import pytest

import ait
from ait.providers import ChatRequest, Finish, LlamaCppProvider, from_spec, smollm2_path
from ait.providers.llama import _translate  # pyright: ignore[reportPrivateUsage]

from .helpers import (
    collect,
    collect_until_error,
    finish_of,
    generation_threads,
    request,
    text_of,
)

#: About 200 words: some 230 tokens once formatted, far over n_ctx=64.
LONG = " ".join(["the quick brown fox jumps over the lazy dog"] * 22)
STORY = "Write a long story about a dragon who learns to bake bread."


@pytest.fixture(scope="module")
async def small() -> AsyncIterator[LlamaCppProvider]:
    """SmolLM2 with a 64-token context, from the spec of the bug report."""
    provider = cast(LlamaCppProvider, from_spec("llama-cpp:smollm2?n_threads=1&n_ctx=64"))
    await provider.load()
    yield provider
    await provider.aclose()


async def prompt_tokens(provider: LlamaCppProvider, req: ChatRequest) -> int:
    """The provider's own count of `req`'s prompt (off the event loop, as it runs)."""
    llm = provider._llm  # pyright: ignore[reportPrivateUsage]
    kwargs = provider._kwargs(req)  # pyright: ignore[reportPrivateUsage]
    count = await anyio.to_thread.run_sync(provider._prompt_tokens, llm, kwargs)  # pyright: ignore[reportPrivateUsage]
    assert count is not None
    return count


def counted(error: BaseException) -> int:
    found = re.search(r"it is (\d+) tokens", str(error))
    assert found is not None, str(error)
    return int(found[1])


async def assert_usable(provider: LlamaCppProvider) -> None:
    assert generation_threads() == [] and provider.waiting == 0
    events = await collect(provider.stream(request("Say yes.", max_tokens=4)))
    assert text_of(events) and isinstance(events[-1], Finish)


@pytest.mark.slow
async def test_a_prompt_over_n_ctx_is_refused_before_any_output(small: LlamaCppProvider) -> None:
    req = request(LONG, max_tokens=8)
    started = time.perf_counter()
    events, error = await collect_until_error(small.stream(req))
    refused_in = time.perf_counter() - started
    assert events == []  # nothing was generated
    assert isinstance(error, ait.ProviderRequestError)
    print(f"\nllama refused a {counted(error)}-token prompt in {refused_in * 1000:.1f} ms")  # noqa: T201
    assert error.code == "invalid-request" and error.provider == "llama-cpp"
    message = str(error)
    assert counted(error) == await prompt_tokens(small, req) > 64
    assert "context window holds 64 (n_ctx)" in message
    assert "raise n_ctx or shorten the conversation" in message
    assert refused_in < 0.5  # counted, not evaluated: one 64-token batch alone takes longer
    await assert_usable(small)


@pytest.mark.slow
async def test_the_count_is_exact_at_the_boundary(small: LlamaCppProvider) -> None:
    """63 prompt tokens leave room for one token of answer; 64 leave none (llama-cpp-python's
    rule: the answer is cut to what is left, but a prompt must leave room for one token)."""
    by_count: dict[int, ChatRequest] = {}
    for words in range(20, 45):
        req = request(" ".join(["a"] * words), max_tokens=8)
        by_count.setdefault(await prompt_tokens(small, req), req)
    assert {63, 64} <= by_count.keys()

    events = await collect(small.stream(by_count[63]))
    finish = finish_of(events)
    assert finish.reason == "length"
    assert finish.usage is not None
    assert (finish.usage.prompt_tokens, finish.usage.completion_tokens) == (63, 1)

    events, error = await collect_until_error(small.stream(by_count[64]))
    assert events == [] and isinstance(error, ait.ProviderRequestError)
    assert counted(error) == 64
    await assert_usable(small)


@pytest.mark.slow
async def test_an_answer_stops_at_the_end_of_the_context(small: LlamaCppProvider) -> None:
    req = request(STORY, max_tokens=200, temperature=0, seed=1)
    prompt = await prompt_tokens(small, req)
    events, error = await collect_until_error(small.stream(req))
    assert error is None  # was: ProviderStreamError "could not broadcast input array" mid-answer
    finish = finish_of(events)
    assert finish.reason == "length"
    assert finish.usage is not None
    assert finish.usage.prompt_tokens == prompt
    assert finish.usage.completion_tokens == 64 - prompt
    await assert_usable(small)


@pytest.mark.slow
async def test_a_named_chat_format_is_refused_too() -> None:
    """`chatml` is not the model's own template, so the provider does not count the prompt:
    llama-cpp-python's check refuses it, against the n_ctx its buffers hold."""
    provider = LlamaCppProvider(smollm2_path(), n_threads=1, n_ctx=64, chat_format="chatml")
    try:
        await provider.load()
        assert provider._formatter is None  # pyright: ignore[reportPrivateUsage]
        events, error = await collect_until_error(provider.stream(request(LONG, max_tokens=8)))
        assert events == [] and isinstance(error, ait.ProviderRequestError)
        assert counted(error) > 64 and "context window holds 64 (n_ctx)" in str(error)
        events = await collect(provider.stream(request(STORY, max_tokens=200)))
        assert finish_of(events).reason == "length"
        await assert_usable(provider)
    finally:
        await provider.aclose()


@pytest.mark.slow
async def test_an_n_ctx_that_llama_cpp_pads() -> None:
    """n_ctx=1000: llama.cpp allocates 1024. A 1,010-token prompt used to be evaluated for a
    second or more, then fail while writing past the buffers."""
    provider = LlamaCppProvider(smollm2_path(), n_threads=1, n_ctx=1000)
    try:
        await provider.load()
        req = request(" ".join(["a"] * 990), max_tokens=4)
        words = 990
        while (count := await prompt_tokens(provider, req)) < 1001:
            words += 1001 - count
            req = request(" ".join(["a"] * words), max_tokens=4)
        assert 1000 < count < 1024
        started = time.perf_counter()
        events, error = await collect_until_error(provider.stream(req))
        refused_in = time.perf_counter() - started
        assert events == [] and isinstance(error, ait.ProviderRequestError)
        assert counted(error) == count and "context window holds 1000 (n_ctx)" in str(error)
        assert refused_in < 0.5
        await assert_usable(provider)
    finally:
        await provider.aclose()


def test_buffer_overflow_is_translated() -> None:
    """The fallback when llama-cpp-python overflows its buffers all the same."""
    overflow = ValueError("could not broadcast input array from shape (64,) into shape (0,)")
    before = _translate(overflow, "llama-cpp", 64, produced=False)
    assert isinstance(before, ait.ProviderRequestError)
    assert "context window of 64 tokens (n_ctx)" in str(before)
    assert "raise n_ctx or shorten the conversation" in str(before)
    during = _translate(overflow, "llama-cpp", 64, produced=True)
    assert isinstance(during, ait.ProviderStreamError)  # output was streamed already
    assert "context window of 64 tokens" in str(during)

    exceeded = ValueError("Requested tokens (270) exceed context window of 256")
    refused = _translate(exceeded, "llama-cpp", 64, produced=False)
    assert isinstance(refused, ait.ProviderRequestError)
    assert "it is 270 tokens" in str(refused) and "holds 64 (n_ctx)" in str(refused)

    other = _translate(RuntimeError("boom"), "llama-cpp", 64, produced=False)
    assert isinstance(other, ait.ProviderStreamError) and "boom" in str(other)
