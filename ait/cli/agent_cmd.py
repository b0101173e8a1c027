"""`ait agent`: a worker answering a pool with a model."""

from __future__ import annotations

import argparse
import signal
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

import anyio

from ..agent import AgentWorker, Run
from ..errors import AitError, ProviderConfigError
from ..providers import ChatRequest, Finish, Provider, from_spec
from ..providers.llama import LlamaCppProvider
from ..testing import ScriptedProvider
from ._common import Style, fail, open_bus, resolve_redis

__all__ = ["agent_command", "load_provider", "make_handler"]


async def load_provider(spec: str, style: Style) -> Provider:
    """The provider of a spec, its model loaded (with progress), or a clear failure.

    Besides the specs of `ait.providers.from_spec`, `scripted:TEXT[?delay=SECONDS]` plays
    TEXT word by word (no model: for trying things out and for tests).
    """
    if spec.startswith("scripted:"):
        return _scripted(spec)
    try:
        provider = from_spec(spec)
    except ProviderConfigError as exc:
        fail(str(exc), 2)
    if isinstance(provider, LlamaCppProvider):
        style.out(f"loading {provider.model_path.name} ...", end=" ")
        began = time.monotonic()
        try:
            await provider.load()
        except ProviderConfigError as exc:
            fail(str(exc), 2)
        style.out(f"done in {time.monotonic() - began:.1f} s")
    return provider


def _scripted(spec: str) -> Provider:
    text, _, query = spec[len("scripted:") :].partition("?")
    delay = 0.0
    for key, value in parse_qsl(query):
        if key != "delay":
            fail(f"bad model spec {spec!r}: scripted takes only delay=SECONDS", 2)
        try:
            delay = float(value)
        except ValueError:
            fail(f"bad model spec {spec!r}: delay={value!r} is not a number", 2)
    words = text.split(" ") if text else ["Hello", "from", "a", "script."]
    tokens = [words[0], *(" " + word for word in words[1:])]
    return ScriptedProvider(tokens, delay=delay)


def make_handler(
    provider: Provider, *, system: str | None, max_tokens: int, style: Style | None
) -> Any:
    """The run handler: the branch's conversation to the model, its answer to the channel."""

    async def handle(run: Run) -> None:
        await run.start()
        messages = await run.load_conversation()
        request = ChatRequest.from_conversation(messages, system=system, max_tokens=max_tokens)
        finish: list[Finish] = []

        async def tapped() -> AsyncIterator[Any]:
            async for event in provider.stream(request):
                if isinstance(event, Finish):
                    finish.append(event)
                yield event

        result = await run.pipe(tapped())
        await run.end(result.reason, error=result.error)
        if style is not None:
            _report(style, run, result.reason, finish[0] if finish else None, result.error)

    return handle


def _report(style: Style, run: Run, reason: str, finish: Finish | None, error: Any) -> None:
    tokens = finish.usage.completion_tokens if finish and finish.usage else None
    rate = finish.metrics.tokens_per_second if finish and finish.metrics else None
    color = {"complete": style.green, "cancelled": style.yellow}.get(reason, style.red)
    parts = [
        style.cyan(run.invocation.channel),
        f"run {(run.run_id or '?')[:8]}",
        f"{tokens if tokens is not None else '?'} tokens",
        f"{rate:.1f} tok/s" if rate else "- tok/s",
        color(reason),
    ]
    if error is not None:
        parts.append(style.red(str(error)))
    style.out("  ".join(parts))


async def agent_command(args: argparse.Namespace) -> int:
    style = Style()
    if args.concurrency < 1:
        fail("--concurrency must be at least 1", 2)
    provider = await load_provider(args.model, style)
    bus = await open_bus(resolve_redis(args.redis))
    try:
        handler = make_handler(
            provider, system=args.system, max_tokens=args.max_tokens, style=style
        )
        worker: AgentWorker

        async def once(run: Run) -> None:
            try:
                await handler(run)
            finally:
                worker.stop()

        worker = AgentWorker(
            bus,
            once if args.once else handler,
            pool=args.pool,
            concurrency=args.concurrency,
            on_error=lambda exc: style.out(style.red(f"error: {exc}")),
        )
        style.out(
            f"agent ready: pool {style.bold(args.pool)}, model {style.bold(args.model)}, "
            f"{args.concurrency} at once (Ctrl-C to stop)"
        )
        async with anyio.create_task_group() as tg:

            async def on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    count = 0
                    async for _ in signals:
                        count += 1
                        if count == 1:
                            style.out(
                                "stopping: finishing the runs in flight (Ctrl-C again to cut)"
                            )
                            worker.stop()
                        else:
                            tg.cancel_scope.cancel()

            tg.start_soon(on_signal)
            await worker.run()
            tg.cancel_scope.cancel()
    except AitError as exc:
        fail(str(exc))
    finally:
        with anyio.CancelScope(shield=True):
            await bus.aclose()
            await provider.aclose()
    return 0
