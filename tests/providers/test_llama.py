"""LlamaCppProvider with the real SmolLM2-135M model: tokens, determinism, cancel, the event
loop, metrics, the fair queue, GPU options, bad model files, and aborting a long prompt.

One thread of CPU (the test machine has two cores, shared), small max_tokens.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any, cast

import anyio
import pytest

import ait
from ait.providers import (
    Finish,
    LlamaCppProvider,
    ProviderEvent,
    TextDelta,
    smollm2_path,
)

from .helpers import collect, finish_of, generation_threads, request, text_of

pytestmark = pytest.mark.slow

OPTIONS: dict[str, Any] = {"n_threads": 1, "n_ctx": 2048}
STORY = "Write a long story about a dragon who learns to bake bread."


@pytest.fixture(scope="module")
async def llama() -> AsyncIterator[LlamaCppProvider]:
    provider = LlamaCppProvider(smollm2_path(), **OPTIONS)
    await provider.load()
    yield provider
    await provider.aclose()


def evaluated(provider: LlamaCppProvider) -> int:
    """Tokens in the model's context now (prompt + generated)."""
    return int(provider._llm.n_tokens)  # pyright: ignore[reportPrivateUsage]


def as_generator(stream: AsyncIterator[ProviderEvent]) -> AsyncGenerator[ProviderEvent, None]:
    return cast(AsyncGenerator[ProviderEvent, None], stream)


async def test_streams_real_tokens(llama: LlamaCppProvider) -> None:
    events = await collect(llama.stream(request("Say hello to Ada.", max_tokens=16)))
    texts = [e for e in events if isinstance(e, TextDelta)]
    assert len(texts) >= 2 and text_of(events).strip()
    finish = finish_of(events)
    assert finish.reason in ("stop", "length")
    assert finish.usage is not None
    assert finish.usage.prompt_tokens and finish.usage.prompt_tokens > 5
    assert finish.usage.completion_tokens and 0 < finish.usage.completion_tokens <= 16


async def test_deterministic_with_temperature_zero_and_a_seed(llama: LlamaCppProvider) -> None:
    req = request(
        "What is the capital of France? Answer in one short sentence.",
        max_tokens=12,
        temperature=0,
        seed=42,
    )
    first = text_of(await collect(llama.stream(req)))
    second = text_of(await collect(llama.stream(req)))
    assert first == second
    assert "Paris" in first


async def test_metrics_are_plausible(llama: LlamaCppProvider) -> None:
    events = await collect(llama.stream(request(STORY, max_tokens=24, temperature=0, seed=1)))
    finish = finish_of(events)
    assert finish.reason == "length"
    metrics, usage = finish.metrics, finish.usage
    assert metrics is not None and usage is not None
    assert metrics.time_to_first_token_ms is not None and metrics.time_to_first_token_ms > 0
    assert metrics.tokens_per_second is not None and 1 < metrics.tokens_per_second < 5000
    assert metrics.queue_wait_ms is not None and metrics.queue_wait_ms >= 0
    assert metrics.prompt_tokens_per_second is not None and metrics.prompt_tokens_per_second > 0
    assert usage.prompt_tokens is not None and usage.prompt_tokens > 10
    assert usage.completion_tokens == 24
    print(  # noqa: T201
        f"\nllama metrics: ttft={metrics.time_to_first_token_ms:.1f} ms, "
        f"{metrics.tokens_per_second:.1f} tokens/s, "
        f"prompt {metrics.prompt_tokens_per_second:.0f} tokens/s, "
        f"queue wait {metrics.queue_wait_ms:.2f} ms, usage {usage}"
    )


async def test_close_mid_generation_stops_within_a_token(llama: LlamaCppProvider) -> None:
    stream = as_generator(llama.stream(request(STORY, max_tokens=300, temperature=0.8, seed=3)))
    tokens = 0
    async for event in stream:
        if isinstance(event, TextDelta):
            tokens += 1
            if tokens == 5:
                break
    before = evaluated(llama)
    started = time.perf_counter()
    await stream.aclose()
    latency = time.perf_counter() - started
    after = evaluated(llama)
    print(f"\nllama close latency: {latency * 1000:.1f} ms, {after - before} token(s) after")  # noqa: T201
    assert latency < 0.5
    assert after - before <= 2  # the token being computed, at most one more
    assert generation_threads() == []
    assert llama.waiting == 0

    # The same provider answers the next request at once.
    events = await collect(llama.stream(request("Say yes.", max_tokens=4)))
    assert isinstance(events[-1], Finish) and text_of(events)


async def test_cancelling_the_consumer_stops_generation(llama: LlamaCppProvider) -> None:
    tokens = 0
    cancelled_at = 0.0
    with anyio.CancelScope() as scope:
        async for event in llama.stream(request(STORY, max_tokens=300, seed=4)):
            if isinstance(event, TextDelta):
                tokens += 1
                if tokens == 3:
                    cancelled_at = time.perf_counter()
                    scope.cancel()
    latency = time.perf_counter() - cancelled_at
    print(f"\nllama cancel latency: {latency * 1000:.1f} ms")  # noqa: T201
    assert scope.cancelled_caught and latency < 0.5
    assert generation_threads() == []
    assert text_of(await collect(llama.stream(request("Say yes.", max_tokens=4))))


async def test_the_event_loop_stays_responsive(llama: LlamaCppProvider) -> None:
    gaps: list[float] = []
    done = anyio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await anyio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        events = await collect(llama.stream(request(STORY, max_tokens=48, seed=5)))
        done.set()
    worst = max(gaps)
    print(f"\nllama loop: {len(gaps)} ticks, max gap {worst * 1000:.1f} ms")  # noqa: T201
    assert len([e for e in events if isinstance(e, TextDelta)]) > 10
    assert worst < 0.2


async def test_concurrent_streams_are_served_in_turn(llama: LlamaCppProvider) -> None:
    marks: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    finishes: dict[str, Finish] = {}
    seen_waiting: set[int] = set()
    first_token = anyio.Event()

    async def consume(name: str, text: str) -> None:
        async for event in llama.stream(request(text, max_tokens=10, seed=6)):
            marks[name].append(time.perf_counter())
            if name == "a":
                first_token.set()
            if isinstance(event, Finish):
                finishes[name] = event

    async def watch() -> None:
        while len(finishes) < 3:
            seen_waiting.add(llama.waiting)
            await anyio.sleep(0.002)

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        tg.start_soon(consume, "a", STORY)
        await first_token.wait()
        tg.start_soon(consume, "b", "Name three fruits.")
        await anyio.sleep(0.02)
        tg.start_soon(consume, "c", "Name three colours.")

    assert {1, 2} <= seen_waiting and llama.waiting == 0
    # One after the other, in the order they came (FIFO).
    assert marks["a"][-1] < marks["b"][0] and marks["b"][-1] < marks["c"][0]
    waits = {name: f.metrics.queue_wait_ms for name, f in finishes.items() if f.metrics}
    print(f"\nllama queue waits (ms): {waits}")  # noqa: T201
    assert waits["b"] is not None and waits["b"] > 0
    assert waits["c"] is not None and waits["b"] is not None and waits["c"] > waits["b"]


async def test_n_gpu_layers_passes_through(llama: LlamaCppProvider) -> None:
    assert llama._llm.model_params.n_gpu_layers == 0  # pyright: ignore[reportPrivateUsage]
    offload = LlamaCppProvider(smollm2_path(), n_gpu_layers=-1, main_gpu=0, **OPTIONS)
    try:
        events = await collect(offload.stream(request("Say hi.", max_tokens=4)))
        assert text_of(events) and isinstance(events[-1], Finish)
        # llama-cpp-python spells "all layers" as INT32_MAX; on a CPU build they stay on CPU.
        params = offload._llm.model_params  # pyright: ignore[reportPrivateUsage]
        assert params.n_gpu_layers in (-1, 0x7FFFFFFF)
    finally:
        await offload.aclose()
    assert not offload.loaded
    await offload.aclose()  # idempotent


async def test_a_closed_provider_loads_again_on_demand() -> None:
    provider = LlamaCppProvider(smollm2_path(), **OPTIONS)
    try:
        assert not provider.loaded
        events = await collect(provider.stream(request("Hi.", max_tokens=3)))
        assert text_of(events)
        metrics = finish_of(events).metrics
        assert metrics is not None and metrics.queue_wait_ms is not None
        assert metrics.queue_wait_ms < 20  # loading the model is not waiting in the queue
        await provider.aclose()
        assert not provider.loaded
        assert text_of(await collect(provider.stream(request("Hi.", max_tokens=3))))
    finally:
        await provider.aclose()


def test_a_missing_model_file() -> None:
    with pytest.raises(ait.ProviderConfigError, match="no model file at"):
        LlamaCppProvider("/no/such/model.gguf")


async def test_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"this is not a gguf file" * 100)
    provider = LlamaCppProvider(bogus, **OPTIONS)
    with pytest.raises(ait.ProviderConfigError, match="unable to load"):
        await collect(provider.stream(request()))
    assert not provider.loaded
    await provider.aclose()


async def test_a_prompt_over_the_context_is_a_request_error(llama: LlamaCppProvider) -> None:
    too_long = "word " * 3000  # over n_ctx=2048
    # Counted before anything is evaluated; it is the request's fault, not the stream's
    # (tests/providers/test_llama_context.py has the details).
    with pytest.raises(ait.ProviderRequestError, match=r"holds 2048 \(n_ctx\)"):
        await collect(llama.stream(request(too_long, max_tokens=4)))
    assert generation_threads() == [] and llama.waiting == 0
    assert text_of(await collect(llama.stream(request("Say yes.", max_tokens=4))))


async def test_closing_before_the_first_token_interrupts_the_prompt() -> None:
    """A long prompt (about 2,500 tokens) is cancelled while llama.cpp still processes it.

    Evidence that llama.cpp's abort callback interrupted the prompt: the cancel returns in
    milliseconds, while one batch of 512 prompt tokens alone takes about a second on one
    thread; and the model's context holds fewer tokens than the prompt.
    """
    provider = LlamaCppProvider(smollm2_path(), n_threads=1, n_ctx=4096)
    await provider.load()
    facts = " ".join(f"Fact {i} about mountains: it is item number {i}." for i in range(150))
    text = f"{facts}\nSummarise the facts about mountains."
    prompt_tokens = len(provider._llm.tokenize(text.encode()))  # pyright: ignore[reportPrivateUsage]
    assert prompt_tokens > 2000
    try:
        tokens: list[float] = []
        cancel_after = 0.5
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def consume() -> None:
                    async for _ in provider.stream(request(text, max_tokens=4)):
                        tokens.append(time.perf_counter())

                tg.start_soon(consume)
                await anyio.sleep(cancel_after)
                cancelled_at = time.perf_counter()
                scope.cancel()
        abort = time.perf_counter() - cancelled_at
        processed = evaluated(provider)
        print(  # noqa: T201
            f"\nllama prompt abort: cancelled {cancel_after:.2f} s into a {prompt_tokens}-token "
            f"prompt; returned in {abort * 1000:.1f} ms with {processed} tokens processed"
        )
        assert tokens == []  # no token came: the cancel landed during prompt processing
        assert processed < prompt_tokens  # interrupted, not finished
        assert abort < 0.5
        assert generation_threads() == []
        # The model is still usable.
        assert text_of(await collect(provider.stream(request("Say yes.", max_tokens=4))))
    finally:
        await provider.aclose()


def test_a_process_that_loaded_the_model_exits_without_a_resource_warning() -> None:
    # llama-cpp-python leaves two /dev/null files open; the provider swaps them for raw
    # descriptors, so `-W error` runs (the suite, `-X dev`) end without "Exception ignored".
    script = (
        "import anyio\n"
        "from ait.providers import from_spec\n"
        "async def main():\n"
        "    provider = from_spec('llama-cpp:smollm2?n_threads=1&n_ctx=256')\n"
        "    await provider.load()\n"
        "    await provider.aclose()\n"
        "anyio.run(main)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
