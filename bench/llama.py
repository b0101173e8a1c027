"""llama.cpp through ait, measured: raw llama-cpp-python vs `LlamaCppProvider.stream` vs a
full run to a subscribed client, the same generation, in the same run.

    .venv/bin/python bench/llama.py [--rounds N] [--quick] [--threads T] [--max-tokens N]

One generation, three ways, interleaved in every round (provider, full run, raw):
  A   = ait provider: `async for event in LlamaCppProvider.stream(request)` on the event loop
  e2e = full run: an `AgentSession` run doing `run.pipe(provider.stream(request))` and a
        `ClientSession` in this process counting `ActiveRun.text_stream()` items
  B   = raw: `llama_cpp.Llama.create_chat_completion(stream=True)` consumed in a loop in a
        thread (`anyio.to_thread.run_sync`)
The same model file and settings (n_threads, n_ctx, n_batch), temperature 0, the same seed,
prompt and max_tokens; the prompt asks for a long story, so every side generates exactly
max_tokens tokens (checked: the token counts and texts are reported). Before every
generation the model's context is reset (`Llama.reset()`): each side processes the whole
prompt, no side reuses another's prompt cache.

Tokens/s = (tokens - 1) / (last token - first token), where a token arrives: in the thread
(raw), as a `TextDelta` on the loop (provider), as a `text_stream()` item in the client
(e2e). Time to first token: from the call (raw: `to_thread.run_sync`; provider: the first
`__anext__`; e2e: `run.pipe(...)`) to the first token's arrival.

Targets: provider >= 0.95x raw tokens/s; full run >= 0.9x raw tokens/s; full-run time to
first token <= 1.1x raw + 5 ms.

Scenario 2 (cancel): a client's `active.cancel()` while the model streams through a full
run, until the client sees the run end (`await active.wait()`), against a raw thread loop
that checks a `threading.Event` after every chunk, from `set()` until the thread returns.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import llama_cpp
from _harness import (
    BenchBase,
    Check,
    Metrics,
    Scenario,
    Side,
    arguments,
    median,
    parse,
    percentile,
    render_tail,
    report,
    selected,
    serve,
)

import ait
from ait.providers import (
    ChatMessage,
    ChatRequest,
    Finish,
    LlamaCppProvider,
    TextDelta,
    smollm2_path,
)

PROMPT = "Write a long story about a dragon who learns to bake bread."
PROVIDER_TARGET = 0.95
E2E_TARGET = 0.9
TTFT_FACTOR = 1.1
TTFT_PLUS_MS = 5.0


@dataclass(frozen=True)
class Settings:
    threads: int
    n_ctx: int
    max_tokens: int
    seed: int
    cancels: int  # scenario 2, per side and round
    cancel_after: int  # tokens streamed before the cancel


class Bench(BenchBase):
    def __init__(self, url: str, settings: Settings) -> None:
        super().__init__(url)
        self.s = settings
        self.provider = LlamaCppProvider(
            smollm2_path(), n_threads=settings.threads, n_ctx=settings.n_ctx
        )
        self.llm: Any = None
        self.request = ChatRequest(
            messages=[ChatMessage(role="user", content=PROMPT)],
            max_tokens=settings.max_tokens,
            temperature=0,
            seed=settings.seed,
        )
        self.reference = ""  # the text of a first, untimed raw generation

    async def load(self) -> None:
        """Load the provider's model, then the raw program's own, with the same options."""
        await self.provider.load()
        options = {k: v for k, v in self.provider.options.items() if v is not None}
        self.llm = await anyio.to_thread.run_sync(
            partial(llama_cpp.Llama, model_path=str(self.provider.model_path), **options)
        )
        # Fairness: the raw call takes exactly the arguments the provider passes.
        provider_kwargs = self.provider._kwargs(self.request)  # pyright: ignore[reportPrivateUsage]
        if provider_kwargs != self.raw_kwargs():
            raise SystemExit(f"bench bug: raw kwargs differ: {provider_kwargs}")
        # A first generation, untimed: warms the machine up and gives the reference text.
        await self.raw_side()

    def raw_kwargs(self) -> dict[str, Any]:
        return {
            "messages": [{"role": "user", "content": PROMPT}],
            "stream": True,
            "max_tokens": self.s.max_tokens,
            "stop": None,
            "seed": self.s.seed,
            "temperature": 0,
        }

    async def aclose(self) -> None:
        await self.provider.aclose()
        if self.llm is not None:
            self.llm.close()
        await self.admin.aclose()

    def reset(self) -> None:
        """Every generation processes the whole prompt (no prompt cache from the last one)."""
        self.provider._llm.reset()  # pyright: ignore[reportPrivateUsage]
        self.llm.reset()

    def metrics(self, side: str, called: float, arrivals: list[float], text: str) -> Metrics:
        n = len(arrivals)
        self.reference = self.reference or text
        rate = (n - 1) / (arrivals[-1] - arrivals[0]) if n > 1 else float("nan")
        return {
            "rate": rate,
            "ttft_ms": (arrivals[0] - called) * 1000 if arrivals else float("nan"),
            "tokens": float(n),
            "same_text": float(text == self.reference),
        }

    # 1. one generation, three ways -------------------------------------------------------

    async def raw_side(self) -> Metrics:
        self.reset()
        llm = self.llm
        kwargs = self.raw_kwargs()
        arrivals: list[float] = []
        pieces: list[str] = []

        def consume() -> None:
            for chunk in llm.create_chat_completion(**kwargs):
                content = chunk["choices"][0]["delta"].get("content")
                if content:
                    arrivals.append(time.perf_counter())
                    pieces.append(content)

        called = time.perf_counter()
        await anyio.to_thread.run_sync(consume)
        return self.metrics("raw", called, arrivals, "".join(pieces))

    async def provider_side(self) -> Metrics:
        self.reset()
        arrivals: list[float] = []
        pieces: list[str] = []
        finish: Finish | None = None
        called = time.perf_counter()
        async for event in self.provider.stream(self.request):
            if isinstance(event, TextDelta):
                arrivals.append(time.perf_counter())
                pieces.append(event.text)
            elif isinstance(event, Finish):
                finish = event
        assert finish is not None and finish.reason == "length", finish
        return self.metrics("provider", called, arrivals, "".join(pieces))

    async def e2e_side(self) -> Metrics:
        self.reset()
        arrivals: list[float] = []
        pieces: list[str] = []
        errors: list[object] = []
        async with ait.Bus.from_url(self.url, on_error=errors.append) as bus:
            name = self.name("llama")
            async with (
                ait.AgentSession(bus, name, on_error=errors.append) as agent,
                ait.ClientSession(
                    bus, name, client_id="alice", invoke=None, on_error=errors.append
                ) as client,
            ):
                active = await client.view.send(PROMPT)
                run = agent.create_run(
                    ait.Invocation(channel=name, input_event_id=active.input_event_id)
                )
                await run.start()
                await active.run_id
                async with anyio.create_task_group() as tg:

                    async def follow() -> None:
                        async for text in active.text_stream():
                            arrivals.append(time.perf_counter())
                            pieces.append(text)

                    tg.start_soon(follow)
                    called = time.perf_counter()
                    result = await run.pipe(self.provider.stream(self.request))
                    await run.end(result.reason)
                info = await active.wait()
        assert result.reason == "complete" and info.status == "complete", (result, info)
        metrics = self.metrics("e2e", called, arrivals, "".join(pieces))
        metrics["errors"] = float(len(errors))
        return metrics

    # 2. cancel -----------------------------------------------------------------------------

    async def cancel_ait(self) -> Metrics:
        """The client cancels after `cancel_after` tokens; latency until it sees run.end."""
        samples: list[float] = []
        extra_tokens: list[float] = []
        async with ait.Bus.from_url(self.url) as bus:
            name = self.name("cancel")
            async with (
                ait.AgentSession(bus, name) as agent,
                ait.ClientSession(bus, name, client_id="alice", invoke=None) as client,
            ):
                for _ in range(self.s.cancels):
                    self.reset()
                    active = await client.view.send(PROMPT)
                    invocation = ait.Invocation(channel=name, input_event_id=active.input_event_id)
                    run = agent.create_run(invocation)
                    await run.start()
                    outcome: list[str] = []
                    async with anyio.create_task_group() as tg:

                        async def serve(run: ait.Run = run, outcome: list[str] = outcome) -> None:
                            result = await run.pipe(self.provider.stream(self.long_request()))
                            await run.end(result.reason)
                            outcome.append(result.reason)

                        tg.start_soon(serve)
                        seen = 0
                        async for _text in active.text_stream():
                            seen += 1
                            if seen == self.s.cancel_after:
                                before = self.evaluated()
                                cancelled = time.perf_counter()
                                await active.cancel()
                                break
                        info = await active.wait()
                        samples.append((time.perf_counter() - cancelled) * 1000)
                        extra_tokens.append(self.evaluated() - before)
                    assert outcome == ["cancelled"] and info.status == "cancelled", outcome
        return self.cancel_metrics(samples, extra_tokens)

    async def cancel_raw(self) -> Metrics:
        """A thread consumes the stream and checks a threading.Event after every chunk;
        latency from `set()` (after `cancel_after` tokens) until the thread returned."""
        samples: list[float] = []
        extra_tokens: list[float] = []
        llm = self.llm
        kwargs = {**self.raw_kwargs(), "max_tokens": self.s.max_tokens * 4}
        for _ in range(self.s.cancels):
            self.reset()
            stop = threading.Event()
            tokens = [0]
            reached = anyio.Event()
            token = anyio.lowlevel.current_token()

            def consume(
                stop: threading.Event = stop,
                tokens: list[int] = tokens,
                reached: anyio.Event = reached,
                token: Any = token,
            ) -> None:
                stream = llm.create_chat_completion(**kwargs)
                try:
                    for chunk in stream:
                        if stop.is_set():
                            break
                        if chunk["choices"][0]["delta"].get("content"):
                            tokens[0] += 1
                            if tokens[0] == self.s.cancel_after:
                                anyio.from_thread.run_sync(reached.set, token=token)
                finally:
                    stream.close()

            async with anyio.create_task_group() as tg:

                async def generate() -> None:
                    await anyio.to_thread.run_sync(consume)

                tg.start_soon(generate)
                await reached.wait()
                before = int(llm.n_tokens)
                cancelled = time.perf_counter()
                stop.set()
            samples.append((time.perf_counter() - cancelled) * 1000)
            extra_tokens.append(int(llm.n_tokens) - before)
        return self.cancel_metrics(samples, extra_tokens)

    def long_request(self) -> ChatRequest:
        return self.request.model_copy(update={"max_tokens": self.s.max_tokens * 4})

    def evaluated(self) -> int:
        return int(self.provider._llm.n_tokens)  # pyright: ignore[reportPrivateUsage]

    def cancel_metrics(self, samples: list[float], extra: list[float]) -> Metrics:
        return {
            "p50": percentile(samples, 50),
            "max": max(samples),
            "extra_max": max(extra),
            "extra_median": median(extra),
        }


def scenarios(bench: Bench) -> list[Scenario]:
    s = bench.s
    same = (
        f"SmolLM2-135M-Instruct Q4_1, n_threads={s.threads} (n_threads_batch the same), "
        f"n_ctx={s.n_ctx}, n_batch 512, temperature 0, seed {s.seed}, max_tokens "
        f"{s.max_tokens}, the prompt {PROMPT!r}; the context reset before each generation"
    )
    token_checks = [
        Check("tokens generated", "tokens", "tokens", "info"),
        Check("same text as a reference raw generation (1 = yes)", "same_text", "flag", "info"),
    ]
    return [
        Scenario(
            name="generate",
            number="1",
            title=f"one generation of {s.max_tokens} tokens: provider, full run, raw",
            ait_side="`async for event in LlamaCppProvider.stream(request)`, TextDelta "
            "events counted on the event loop",
            raw_side="`Llama.create_chat_completion(stream=True)` consumed in a loop in a "
            "thread (`anyio.to_thread.run_sync`), content chunks counted in the thread",
            common=same,
            run_ait=bench.provider_side,
            run_raw=bench.raw_side,
            extra_sides=[
                Side(
                    "e2e",
                    "full run: `AgentSession` run `run.pipe(provider.stream(request))` + "
                    "`run.end()`, a `ClientSession` here counting `active.text_stream()` "
                    "items (one Bus, one process, the embedded redis-server)",
                    bench.e2e_side,
                )
            ],
            checks=[
                Check("tokens/s", "rate", "tokens/s", "higher", PROVIDER_TARGET, digits=1),
                Check("tokens/s", "rate", "tokens/s", "higher", E2E_TARGET, digits=1, side="e2e"),
                Check(
                    "time to first token",
                    "ttft_ms",
                    "ms",
                    "plus",
                    TTFT_PLUS_MS,
                    digits=1,
                    side="e2e",
                    factor=TTFT_FACTOR,
                ),
                Check("time to first token", "ttft_ms", "ms", "info", digits=1),
                Check("time to first token", "ttft_ms", "ms", "info", digits=1, side="e2e"),
                *token_checks,
                *(replace_side(c, "e2e") for c in token_checks),
                Check("errors ait reported", "errors", "errors", "info", side="e2e"),
            ],
        ),
        Scenario(
            name="cancel",
            number="2",
            title=f"{s.cancels} cancels per side after {s.cancel_after} streamed tokens",
            ait_side="full run as in 1 (max_tokens x4); the client calls `active.cancel()` "
            "after its Nth text_stream() item; latency until `await active.wait()` returns "
            "(the client folded run.end)",
            raw_side="the raw thread loop of 1 checking a threading.Event after every chunk; "
            "latency from `set()` until the thread returned (no Redis, no client)",
            common=same + "; tokens after = llama's n_tokens after minus at the cancel",
            run_ait=bench.cancel_ait,
            run_raw=bench.cancel_raw,
            checks=[
                Check("median cancel latency", "p50", "ms", "info", digits=1),
                Check("slowest cancel latency", "max", "ms", "info", digits=1),
                Check("tokens evaluated after the cancel, worst", "extra_max", "tokens", "info"),
            ],
        ),
    ]


def replace_side(check: Check, side: str) -> Check:
    return replace(check, side=side)


async def run(args: argparse.Namespace, url: str, dump: dict[str, Any]) -> None:
    settings = Settings(
        threads=args.threads,
        n_ctx=2048,
        max_tokens=args.max_tokens or (48 if args.quick else 200),
        seed=args.seed,
        cancels=3 if args.quick else 10,
        cancel_after=5,
    )
    bench = Bench(url, settings)
    try:
        await bench.load()
        chosen = selected(scenarios(bench), args.only)
        started = time.perf_counter()
        results = await report(
            f"ait llama benchmark: {args.rounds} rounds; each round runs provider, e2e, raw",
            args,
            bench,
            chosen,
            dump,
            extra=f"llama-cpp-python {llama_cpp.__version__}, n_threads={settings.threads}, ",
            quick_note="--quick: fewer tokens, for a smoke run; numbers are noisier.",
        )
        print(render_tail(results, args.rounds))
        print(f"Total time {time.perf_counter() - started:.0f} s.")
    finally:
        await bench.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp n_threads (1)")
    parser.add_argument("--max-tokens", type=int, default=None, help="(default 200; 48 quick)")
    args = parse(parser, argv)
    return serve(run, args, {})


if __name__ == "__main__":
    sys.exit(main())
